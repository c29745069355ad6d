"""`run_plate_benchmark`: does generated data help a whole-plate recogniser? In order, per seed:

request (checked) -> plates -> generators -> splits (all seeds, checked: plate-disjoint, no image on
both sides by content hash, test plates the checkpoint never saw) -> per seed: real plates at the
recogniser's input size -> style plates (the seed's training plates only) -> one plan of texts ->
SAAE plates and render plates -> augmented real plates -> plate recogniser runs -> the judge ->
summary and targets -> report files. The plates, generators and splits come as the character
level's do (`prepare`); only what a plate changes is here and in plate_pools / plate_runs / plate_report.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from plategen.bench.plate_pools import (PlatePool, as_input, augmented_plates, plate_plan, real_images, rendered_plates,
                                        saae_plates)
from plategen.bench.report import BenchmarkResult
from plategen.bench.plate_report import (PlateBenchmarkReport, PlateSplitRecord, check_plate_targets, is_default_run,
                                         plate_summary, write_plate_report)
from plategen.bench.plate_runs import (PLATE_TIMING_PARTS, PlateRun, PlateSeedSet, job_log, plate_judge_job,
                                       plate_ratio_jobs, plate_synthetic_jobs, run_plate_job)
from plategen.bench.pools import Generators, generated_count, require_distinct_counts, train_fresh_saae
from plategen.bench.prepare import prepare_run
from plategen.bench.request import MAX_SYNTHETIC_SIZE, BenchmarkRequest, check_request
from plategen.bench.runs import Timing, trainings_per_seed
from plategen.bench.workers import Trainings
from plategen.bench.splits import drawn_in_some_seed, judge_plates, split_record
from plategen.dataset import build_samples
from plategen.errors import PlategenError
from plategen.glyphs import Font
from plategen.plates import Plate
from plategen.synth.plates import style_plates, wants_chinese


def run_plate_benchmark(req: BenchmarkRequest, log: Callable[[str], None] = lambda msg: None,
                        warn: Callable[[str], None] = lambda msg: None,
                        progress: Callable[[int, int], None] = lambda done, total: None) -> BenchmarkResult:
    """Every input is checked before any training; `req.out` is created when the run starts and the
    report files are written (atomically) at the end. `progress(done, total)` counts recognisers trained."""
    started = time.perf_counter()
    check_request(req)
    torch.set_num_threads(req.threads)
    timing = Timing(PLATE_TIMING_PARTS)
    prep = prepare_run(req, warn, timing, with_text_only=True)
    data_plates, test_source, charset, fonts, gens, splits = (prep.data_plates, prep.test_source, prep.charset,
                                                              prep.fonts, prep.gens, prep.splits)
    alphabet = "".join(charset)
    for w in prep.warnings:
        warn(w)
    warnings = prep.leak_warnings + prep.warnings
    longest = max(len(p.text) for p in data_plates + (test_source or []))
    if longest > req.plate_schedule.longest:
        raise PlategenError(f"{req.data}: a plate text has {longest} characters; the plate recogniser reads at most "
                            f"{req.plate_schedule.longest}")

    for split in splits:
        require_distinct_counts(req.ratios, len(split.train), "plates", split.seed, MAX_SYNTHETIC_SIZE["plates"])
    req.out.mkdir(parents=True, exist_ok=True)
    records: list[PlateSplitRecord] = []
    fresh_steps: list[int] = []
    gen_seconds = {g: 0.0 for g in gens.infos}
    size = req.plate_schedule.input_size
    with Trainings(run_plate_job, req.workers, req.threads, len(splits) * trainings_per_seed(req, len(gens.infos)),
                   job_log, log, progress) as trainings:
        for split in splits:
            train_plates = [data_plates[i] for i in split.train]
            test_plates = [(test_source or data_plates)[i] for i in split.test]
            judge = [data_plates[i] for i in judge_plates(split, len(data_plates), req.test is not None)]
            with timing("import"):
                train_images = real_images(train_plates)
                train, train_centres = as_input(train_images, [p.boxes for p in train_plates], size)
                test, _ = as_input(real_images(test_plates), [p.boxes for p in test_plates], size)
                ps = PlateSeedSet(split.seed, train, [p.text for p in train_plates], train_centres, test,
                                  [p.text for p in test_plates], alphabet, req.plate_schedule)
                judge_images, judge_centres = as_input(real_images(judge), [p.boxes for p in judge], size)
                judge_pool = PlatePool(judge_images, [p.text for p in judge], judge_centres)
            chars = [c for c in gens.drawable if c in set("".join(ps.train_texts))]
            log(f"seed {split.seed}: {len(train_plates)} training plates, {len(test_plates)} test plates; generated "
                f"plates draw {len(chars)} characters")
            if req.train_generator:  # the fresh SAAE's time budget is its alone: no recogniser trains beside it
                trainings.wait()
            pools, seconds, steps = draw_plate_pools(req, ps, train_plates, chars, charset, gens, fonts, timing, log)
            gen_seconds = {g: gen_seconds[g] + seconds[g] for g in gen_seconds}
            fresh_steps += [steps] if steps is not None else []
            augmented = None
            if req.augment_reference:
                with timing("augmentation"):
                    augmented = augmented_plates(train_plates, train_images, req.ratios, split.seed, size)
            with timing("recogniser_training"):  # with one worker, the jobs run here as they are submitted
                trainings.submit(plate_ratio_jobs(ps, req.ratios, pools, augmented)
                                 + plate_synthetic_jobs(ps, req.synthetic_count, pools)
                                 + [plate_judge_job(ps, judge_pool, pools, req.synthetic_count)])
            records.append(PlateSplitRecord(**{k: v for k, v in vars(split_record(
                req, split, data_plates, test_source or data_plates, 0, 0, chars)).items() if not k.endswith("_crops")}))
        with timing("recogniser_training"):
            runs: list[PlateRun] = trainings.runs()

    if fresh_steps:
        gens.infos["saae"].description += f"; steps reached per seed: {fresh_steps}"
    for info in gens.infos.values():
        info.chars = drawn_in_some_seed(records, charset)
    summary = plate_summary(runs, req.ratios, list(gens.infos))
    seconds_so_far = time.perf_counter() - started
    targets = check_plate_targets(summary, req.regime, req.ratios, seconds_so_far if is_default_run(req) else None)
    report = PlateBenchmarkReport(req, req.regime, warnings, alphabet, len(data_plates), prep.text_only, gens.infos,
                                  records, runs, summary, targets, {**timing.seconds, "total": seconds_so_far},
                                  gen_seconds)
    files = write_plate_report(req.out, report)
    return BenchmarkResult(req.out, report, files, time.perf_counter() - started)


def draw_plate_pools(req: BenchmarkRequest, ps: PlateSeedSet, train_plates: list[Plate], chars: list[str],
                     charset: list[str], gens: Generators, fonts: list[Font], timing: Timing,
                     log: Callable[[str], None]) -> tuple[dict[str, PlatePool], dict[str, float], int | None]:
    """Each generator's plates for this seed, on one plan styled by the seed's training plates only (never a
    test plate); in the same-budget regime the SAAE is first trained fresh on those plates' crops.
    Returns the pools, the seconds each generator drew for, and the fresh SAAE's steps (None without one)."""
    n = max([generated_count(r, len(train_plates)) for r in req.ratios] + [req.synthetic_count])
    boxed = [p for p in train_plates if p.boxes]  # a text-only plate trains the recogniser but cannot be a style
    if not boxed:
        raise PlategenError(f"seed {ps.seed}: none of the {len(train_plates)} training plates has character boxes "
                            "(annotated or segmented), so none can be a style plate; give more --real-plates")
    with timing("styles"):
        styles, low = style_plates(boxed)  # a training plate too low to draw from trains the recogniser only
        if not styles:
            raise PlategenError(f"seed {ps.seed}: every training plate with character boxes is too low to be a style "
                                f"plate (first: {low[0]}); give more --real-plates")
        plan = plate_plan(styles, n, chars, ps.seed)
    pools, seconds, steps = {}, {}, None
    # as synth --plates draws: without --checkpoint, the allchars model draws the Chinese characters
    chinese = gens.chinese if wants_chinese(plan.layouts) else None
    for g in gens.infos:
        generator = gens.checkpoint
        if g == "saae" and req.train_generator:
            start = time.perf_counter()
            with timing("generator_training"):
                crops = build_samples(boxed, charset)
                generator, steps = train_fresh_saae(crops, req.budget_s, seed=1000 + ps.seed,
                                                    threads=req.threads * req.workers,
                                                    max_steps=req.generator_max_steps)
            log(f"seed {ps.seed}: fresh SAAE trained {steps} steps in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        with timing("generation"):
            if g == "render":
                pools[g] = rendered_plates(styles, plan, fonts, ps.seed, req.plate_schedule.input_size)
            else:
                pools[g] = saae_plates(generator, styles, plan, chars, fonts, ps.seed, req.plate_schedule.input_size,
                                       None if req.train_generator else chinese)
        seconds[g] = time.perf_counter() - start
        log(f"seed {ps.seed}: {n} {g} plates in {seconds[g]:.1f} s")
    return pools, seconds, steps
