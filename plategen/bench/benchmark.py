"""`run_benchmark`: one plate's way from the data folder to the report, in order.

request (checked) -> plates -> generators (what the checkpoint saw) -> splits (all seeds, checked)
-> per seed: crops -> generated pools -> recogniser runs -> judge -> summary and targets -> report files.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import Counter
from typing import Callable

import numpy as np
import torch

from plategen.atomic import OutputLock
from plategen.bench.judge import JUDGE_MIN_CROPS, judge_job
from plategen.bench.pools import (Generators, Pool, augmented_real, class_shares, per_class_need, render_pool,
                                  require_distinct_counts, saae_pool, train_fresh_saae)
from plategen.bench.plate_benchmark import run_plate_benchmark
from plategen.bench.prepare import prepare_run
from plategen.bench.report import BenchmarkReport, BenchmarkResult, check_targets, summarize, write_report
from plategen.bench.request import MAX_SYNTHETIC_SIZE, BenchmarkRequest, check_request
from plategen.bench.runs import (Run, SeedSet, Timing, char_job_log, ratio_jobs, run_char_job, synthetic_jobs,
                                 trainings_per_seed)
from plategen.bench.workers import Trainings
from plategen.bench.splits import Split, drawn_in_some_seed, drawn_outside_test, judge_plates, split_record
from plategen.dataset import CharSamples, build_samples
from plategen.errors import PlategenError
from plategen.glyphs import Font
from plategen.plates import Plate, read_image
from plategen.synth.writers import LOCK


def run_benchmark(req: BenchmarkRequest, log: Callable[[str], None] = lambda msg: None,
                  warn: Callable[[str], None] = lambda msg: None,
                  progress: Callable[[int, int], None] = lambda done, total: None) -> BenchmarkResult:
    """Every input is checked before any training; `req.out` is created when the run starts and
    the report files are written (atomically) at the end. `--level plates` runs `run_plate_benchmark`.
    `progress(done, total)` counts recognisers trained. A run that stops before writing anything
    leaves no empty `req.out` behind. With `req.workers` > 1 (the default where there are 2 cores) recognisers train
    in spawned processes, which import the calling script again: call it under `if __name__ == "__main__":`."""
    # the standard library's own test (multiprocessing.spawn._check_not_importing_main): a spawned process imports
    # the script again while it inherits its parent's state
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise PlategenError("run_benchmark called while a worker process starts: the script that calls it must do "
                            "so under if __name__ == \"__main__\":")
    made = [p for p in (*reversed(req.out.resolve().parents), req.out.resolve()) if not p.exists()]
    with contextlib.ExitStack() as held:
        try:
            # two runs into one --out both passed its checks, and the later report replaced the earlier one; the lock
            # lies in --out (beside it, it touched the folder above), so --out is made first (and removed below if the
            # run writes nothing)
            with contextlib.suppress(OSError):  # a file in the way: check_request names it
                req.out.mkdir(parents=True, exist_ok=True)
            if req.out.is_dir():
                held.callback(OutputLock(req.out / LOCK, lambda: PlategenError(
                    f"--out {req.out}: another plategen run (benchmark or synth) is writing there ({LOCK} is locked); "
                    "wait for it to finish or choose another folder"),
                    lambda path, exc: PlategenError(f"--out {req.out}: cannot write in it")).release)
            if req.level == "plates":
                return run_plate_benchmark(req, log, warn, progress)
            return _run_char_benchmark(req, log, warn, progress)
        except BaseException:
            held.close()  # the lock file goes first, so the folders it made are empty again
            for folder in reversed(made):  # innermost first; only what this run made, and only while empty
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise


def _run_char_benchmark(req: BenchmarkRequest, log: Callable[[str], None], warn: Callable[[str], None],
                        progress: Callable[[int, int], None]) -> BenchmarkResult:
    started = time.perf_counter()
    check_request(req)
    torch.set_num_threads(req.threads)
    timing = Timing()
    prep = prepare_run(req, warn, timing, with_text_only=False)
    data_plates, test_source, charset, fonts, gens, splits = (prep.data_plates, prep.test_source, prep.charset,
                                                              prep.fonts, prep.gens, prep.splits)
    require_judge_classes(req, splits, data_plates)
    drawn = [drawn_outside_test(req, gens.drawable, data_plates, split) for split in splits]
    warnings = prep.warnings + [w for _, left_out in drawn for w in left_out]
    for w in warnings:
        warn(w)
    warnings = prep.leak_warnings + warnings

    with timing("crops"):
        data_samples = build_samples(data_plates, charset)
        test_samples = build_samples(test_source, charset) if test_source is not None else data_samples
    for split in splits:
        require_distinct_counts(req.ratios, int(np.isin(data_samples.plate_index, split.train).sum()), "crops",
                                split.seed, MAX_SYNTHETIC_SIZE["chars"])
    req.out.mkdir(parents=True, exist_ok=True)
    records = []
    fresh_steps: list[int] = []
    gen_seconds = {g: 0.0 for g in gens.infos}
    with Trainings(run_char_job, req.workers, req.threads, len(splits) * trainings_per_seed(req, len(gens.infos)),
                   char_job_log, log, progress) as trainings:
        for split, (chars, _) in zip(splits, drawn):
            ss = seed_set(req, split, data_samples, test_samples, chars, timing, log)
            records.append(split_record(req, split, data_plates, test_source or data_plates, len(ss.train.labels),
                                        len(ss.test.labels), chars))
            log(f"seed {split.seed}: {len(split.train)} training plates ({len(ss.train.labels)} crops), "
                f"{len(split.test)} test plates ({len(ss.test.labels)} crops)")
            if req.train_generator:  # the fresh SAAE's time budget is its alone: no recogniser trains beside it
                trainings.wait()
            pools, seconds, steps = draw_pools(req, ss, [data_plates[i] for i in split.train], gens, fonts)
            gen_seconds = {g: gen_seconds[g] + seconds[g] for g in gen_seconds}
            fresh_steps += [steps] if steps is not None else []
            augmented = None
            if req.augment_reference:
                with timing("augmentation"):
                    augmented = augmented_real(ss.train, req.ratios, split.seed)
            judge_set = data_samples.subset(judge_plates(split, len(data_plates), req.test is not None))
            with timing("recogniser_training"):  # with one worker, the jobs run here as they are submitted
                trainings.submit(ratio_jobs(ss, req.ratios, pools, augmented)
                                 + synthetic_jobs(ss, req.synthetic_count, pools)
                                 + [judge_job(ss, judge_set, pools, req.synthetic_count)])
        with timing("recogniser_training"):
            runs: list[Run] = trainings.runs()

    if fresh_steps:
        gens.infos["saae"].description += f"; steps reached per seed: {fresh_steps}"
    generated = drawn_in_some_seed(records, charset)
    for info in gens.infos.values():
        info.chars = generated
    summary = summarize(runs, req.ratios, list(gens.infos))
    report = BenchmarkReport(req, req.regime, warnings, charset, generated, gens.infos, records, runs, summary,
                             check_targets(summary, req.regime, req.ratios),
                             {**timing.seconds, "total": time.perf_counter() - started}, gen_seconds)
    files = write_report(req.out, report)
    return BenchmarkResult(req.out, report, files, time.perf_counter() - started)


def seed_set(req: BenchmarkRequest, split: Split, data_samples: CharSamples, test_samples: CharSamples,
             drawn: list[str], timing: Timing, log: Callable[[str], None]) -> SeedSet:
    """The seed's real training and test crops, and the classes (`drawn`) and shares its generated crops follow."""
    train = data_samples.subset(split.train)
    test = test_samples.subset(split.test)
    if len(train.labels) == 0 or len(test.labels) == 0:
        raise PlategenError(f"seed {split.seed}: the split has {len(train.labels)} training and "
                            f"{len(test.labels)} test crops")
    classes = [data_samples.charset.index(c) for c in drawn]
    real_counts = np.bincount(train.labels, minlength=len(data_samples.charset))[classes]
    return SeedSet(split.seed, train, test, classes, class_shares(real_counts, req.balance), req.schedule, timing, log)


def draw_pools(req: BenchmarkRequest, ss: SeedSet, style_plates: list[Plate], gens: Generators,
               fonts: list[Font]) -> tuple[dict[str, Pool], dict[str, float], int | None]:
    """Each generator's crops for this seed, styled by the seed's real training plates only (never a
    test plate); in the same-budget regime the SAAE is trained fresh on the seed's crops first.
    Returns the pools, the seconds each generator drew for, and the fresh SAAE's steps (None without one)."""
    per_class = per_class_need(req, ss.shares, len(ss.train.labels))
    drawn = [ss.train.charset[i] for i in ss.classes]
    style_images = [read_image(p.image_path) for p in style_plates]
    pools, seconds, steps = {}, {}, None
    for g in gens.infos:
        generator = gens.checkpoint
        if g == "saae" and req.train_generator:
            start = time.perf_counter()
            with ss.timing("generator_training"):
                generator, steps = train_fresh_saae(ss.train, req.budget_s, seed=1000 + ss.seed,
                                                    threads=req.threads * req.workers,
                                                    max_steps=req.generator_max_steps)
            ss.log(f"seed {ss.seed}: fresh SAAE trained {steps} steps in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        with ss.timing("generation"):
            if g == "render":
                pools[g] = render_pool(ss.train.charset, ss.classes, per_class, drawn, fonts, ss.seed)
            else:
                pools[g] = saae_pool(generator, style_images, ss.classes, per_class, drawn, ss.seed,
                                     None if req.train_generator else gens.chinese)
        seconds[g] = time.perf_counter() - start
    return pools, seconds, steps


def require_judge_classes(req: BenchmarkRequest, splits: list[Split], data_plates: list[Plate]) -> None:
    """Refuse before any training a run whose judge would know no class: read-as-asked on the classes it
    has >= JUDGE_MIN_CROPS real crops of would have nothing to read."""
    for split in splits:
        crops = Counter(ch for i in judge_plates(split, len(data_plates), req.test is not None)
                        for ch in data_plates[i].text)
        if max(crops.values(), default=0) < JUDGE_MIN_CROPS:
            advice = ("give more --data plates (with --test, every one of them trains the judge)" if req.test is not None
                      else "give more plates, or fewer --test-plates")
            raise PlategenError(f"{req.data}: no character has {JUDGE_MIN_CROPS} real crops outside seed {split.seed}'s "
                                f"test plates (at most {max(crops.values(), default=0)}); the read-as-asked judge "
                                f"needs them: {advice}")
