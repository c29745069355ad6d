"""Does generated data help a recogniser? Accuracy versus generated-data ratio, with honest baselines.

For every seed:
  1. a plate-disjoint split of the real data (`split_for_seed`): N real training plates and
     test plates, whole physical plates (all frames of one plate) on one side only. In the
     product regime the test plates, and the training plates where enough remain, are drawn
     from plates the checkpoint never saw (by content hash).
  2. generated crops from each generator, with the N real training plates as the only
     styles, class-balanced: the same count for every character both generators can draw.
  3. one recogniser per training set, every one with the same `Schedule` (a fixed number of
     optimiser steps at a fixed batch size), evaluated on the real test crops:
       real only (ratio 0), real + r x generated for each generator and ratio, real + r x
       classical augmentation of the real crops ("augment"), generated only ("synthetic
       only", train-on-synthetic / test-on-real), and a judge trained on all real crops
       outside the test plates, which reads the generated crops ("read as asked class").
Results are reported as mean and standard deviation over seeds, in report.json, report.md
and benchmark.png (accuracy vs ratio, and accuracy vs training steps).

Two regimes, never mixed in one report:
  product     - the shipped or given checkpoint; a test plate it trained on is refused
                (or, with allow_overlap, reported as a loud warning);
  same-budget - (`train_generator`) a fresh SAAE trained inside the benchmark on only the N
                real training plates of each seed, for a fixed time budget.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from plategen import __version__
from plategen.atomic import atomic_write_bytes, atomic_write_text
from plategen.dataset import CharSamples, build_samples, charset_of, plate_key
from plategen.errors import PlategenError
from plategen.glyphs import fonts_for, shipped_fonts
from plategen.plates import Plate, load_plates, read_image
from plategen.recognizer import Schedule, evaluate, train_recognizer
from plategen.render import augment_crops, render_characters

GENERATORS = ("saae", "render")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "uc3m-lp"
MIN_TEST_IMAGES = 100  # training plates come from unseen plates only when this many unseen remain for test
REPORT_FILES = ("report.json", "report.md", "benchmark.png")
BALANCES = ("data", "uniform")
DATA_SHARE = 0.8  # --balance data: this share follows the real class frequencies, the rest is uniform
JUDGE_MIN_CROPS = 20  # "read as asked" on judge-known classes: classes with at least this many real crops


# ---------------------------------------------------------------- options


def parse_ratios(text: str) -> tuple[float, ...]:
    """'0,1,2,4' -> (0.0, 1.0, 2.0, 4.0); ratio 0 (real only) is always included."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or not str(text).strip() or any(p == "" for p in parts):
        raise PlategenError(f"--ratios {text!r}: expected comma-separated numbers such as 0,1,2,4")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise PlategenError(f"--ratios {text!r}: {p!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise PlategenError(f"--ratios {text!r}: {p!r} must be a finite number >= 0")
        if v > 64:
            raise PlategenError(f"--ratios {text!r}: {p!r} is implausibly large (at most 64)")
        values.append(v)
    if len(set(values)) != len(values):
        raise PlategenError(f"--ratios {text!r}: a ratio is listed twice")
    return tuple(sorted(set(values) | {0.0}))


def parse_generators(text: str) -> tuple[str, ...]:
    key = str(text).strip().lower()
    if key == "both":
        return GENERATORS
    if key in GENERATORS:
        return (key,)
    raise PlategenError(f"--generator {text!r}: choose saae, render or both")


@dataclass(frozen=True)
class BenchmarkRequest:
    data: Path = DEFAULT_DATA
    out: Path = Path("runs/benchmark")
    ratios: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    real_plates: int = 50
    seeds: int = 3
    generators: tuple[str, ...] = GENERATORS
    checkpoint: Path | None = None  # None: the shipped checkpoint (product regime)
    test: Path | None = None  # an external test folder instead of a split of `data`
    test_plates: int = 400  # images held out for test (at most; see split_for_seed)
    allow_overlap: bool = False
    train_generator: bool = False  # same-budget regime
    generator_budget_s: float = 240.0  # per seed, same-budget regime
    schedule: Schedule = Schedule(eval_points=8)
    synthetic_size: int = 4000  # generated crops for the synthetic-only reference
    balance: str = "data"  # class shares of generated crops: see class_shares
    augment_reference: bool = True
    overwrite: bool = False
    threads: int = 2
    command: str = ""


# ---------------------------------------------------------------- splits


@dataclass
class Split:
    seed: int
    train: list[int]  # plate indices into the data plates
    test: list[int]  # plate indices into the test plates (the data plates unless --test)
    train_seen: int  # training plates the generator saw


def _groups(plates: Sequence[Plate], ids: Sequence[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i in ids:
        groups.setdefault(plate_key(plates[i]), []).append(i)
    return groups


def _draw(groups: dict[str, list[int]], order: Sequence[str], want: int, exact: bool) -> tuple[list[int], list[str]]:
    """Whole groups in `order` until `want` images; with `exact`, the last group is cut to fit
    (its other frames are then used nowhere). Returns (ids, groups used)."""
    ids: list[int] = []
    used: list[str] = []
    for key in order:
        if len(ids) >= want:
            break
        take = groups[key][: want - len(ids)] if exact else groups[key]
        ids.extend(take)
        used.append(key)
    return ids, used


def split_for_seed(plates: Sequence[Plate], n_train: int, n_test: int, seed: int,
                   seen: set[str] | frozenset[str] = frozenset(), external_test: bool = False,
                   allow_seen_test: bool = False) -> Split:
    """Plate-disjoint split of `plates` (grouped by physical plate, `dataset.plate_key`).

    Test plates (up to `n_test` images, whole groups) come only from groups none of whose
    frames the generator saw (`seen`: content hashes). The `n_train` training plates come from
    the other unseen groups when at least `MIN_TEST_IMAGES` unseen images still remain for
    test, else from seen groups (counted in `train_seen`). Only with `allow_seen_test`, and
    when fewer than `MIN_TEST_IMAGES` images are unseen, may test plates be seen ones.
    With `external_test`, all of `plates` may train and `test` is empty.
    """
    rng = np.random.default_rng([seed, 7])
    groups = _groups(plates, range(len(plates)))
    keys = sorted(groups)
    unseen = [k for k in keys if not any(plates[i].sha256 in seen for i in groups[k])]
    unseen_set = set(unseen)
    seen_keys = [k for k in keys if k not in unseen_set]
    unseen = [unseen[i] for i in rng.permutation(len(unseen))]
    seen_keys = [seen_keys[i] for i in rng.permutation(len(seen_keys))]
    n_unseen = sum(len(groups[k]) for k in unseen)
    if external_test:
        train, _ = _draw(groups, unseen + seen_keys, n_train, exact=True)
        return Split(seed, sorted(train), [], sum(plates[i].sha256 in seen for i in train))
    if n_unseen >= n_train + MIN_TEST_IMAGES:
        train, used = _draw(groups, unseen, n_train, exact=True)
        rest = [k for k in unseen if k not in set(used)]
    elif n_unseen >= MIN_TEST_IMAGES or not allow_seen_test:
        train, _ = _draw(groups, seen_keys, n_train, exact=True)
        rest = unseen
    else:  # --allow-overlap and hardly any unseen plates: test plates may be seen ones (reported)
        train, used = _draw(groups, seen_keys + unseen, n_train, exact=True)
        rest = unseen + [k for k in seen_keys if k not in set(used)]
    test, _ = _draw(groups, rest, n_test, exact=False)
    return Split(seed, sorted(train), sorted(test), sum(plates[i].sha256 in seen for i in train))


def generated_count(ratio: float, real_crops: int) -> int:
    """Generated crops added at `ratio`: r times as many as the real training crops."""
    return int(round(ratio * real_crops))


def balanced_counts(n: int, k: int) -> list[int]:
    """n spread over k classes as evenly as possible (the first n % k get one more)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def class_shares(real_counts: Sequence[int], balance: str) -> np.ndarray:
    """The share of each generated class. `uniform`: equal. `data`: DATA_SHARE following the
    real training crops' class frequencies, the rest spread equally, so every class is covered."""
    k = len(real_counts)
    uniform = np.full(k, 1.0 / k)
    total = float(np.sum(real_counts))
    if balance == "uniform" or total == 0:
        return uniform
    if balance != "data":
        raise PlategenError(f"--balance {balance!r}: choose data or uniform")
    return DATA_SHARE * np.asarray(real_counts, np.float64) / total + (1 - DATA_SHARE) * uniform


def apportion(n: int, shares: Sequence[float]) -> list[int]:
    """n split by `shares` (summing to 1) with the largest-remainder rule: integers summing to n."""
    exact = np.asarray(shares, np.float64) * n
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts.tolist()


def take_balanced(labels: np.ndarray, classes: Sequence[int], n: int,
                  shares: Sequence[float] | None = None) -> np.ndarray:
    """Indices of a subset of size n with class counts `apportion(n, shares)` (equal by default),
    taking the first occurrences of each class in pool order."""
    shares = np.full(len(classes), 1.0 / len(classes)) if shares is None else shares
    picked = []
    for c, count in zip(classes, apportion(n, shares)):
        where = np.flatnonzero(labels == c)
        if len(where) < count:
            raise PlategenError(f"internal: pool has {len(where)} crops of class {c}, need {count}")
        picked.append(where[:count])
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, np.int64)


# ---------------------------------------------------------------- generators


@dataclass
class GeneratorInfo:
    name: str
    description: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    records_plates: bool | None = None
    plates_seen: int | None = None
    chars: list[str] = field(default_factory=list)


def _saae_pool(generator, style_images: list[np.ndarray], chars: Sequence[str], n: int,
               seed: int, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """n crops, balanced over `chars` in that order, via the product's synth path (label check on)."""
    from plategen.synth import generate_arrays

    return generate_arrays(generator, style_images, list(chars), n, seed=seed, check=check)


def train_fresh_saae(train: CharSamples, budget_s: float, seed: int, max_steps: int = 100_000):
    """Same-budget regime: a fresh SAAE on these crops only, three-step loop of `train.train_step`,
    until `budget_s` seconds or `max_steps`. Returns (the model as a checkpoint in eval mode, with
    its discriminator for synth's label check; steps; seconds)."""
    from plategen.checkpoint import LoadedCheckpoint
    from plategen.model import Discriminator, Generator, SAAEConfig
    from plategen.train import GlyphBank, TrainOptions, to_float, train_step

    opts = TrainOptions(seed=seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        config = SAAEConfig(num_classes=len(train.charset), **opts.model)
        G, D = Generator(config), Discriminator(config)
        opt_g = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=opts.betas)
        bank = GlyphBank(train.charset, opts.glyph_variants, rng, config.glyph_size)
        counts = np.bincount(train.labels, minlength=len(train.charset)).astype(np.float64)
        weights = torch.from_numpy(np.maximum(counts[train.labels], 1) ** -opts.class_balance)
        crops_t, labels_t = torch.from_numpy(train.crops), torch.from_numpy(train.labels)
        styles_t, owner_t = torch.from_numpy(train.styles), torch.from_numpy(train.plate_index)
        device = torch.device("cpu")
        G.train(), D.train()
        steps = 0
        while steps < max_steps and time.perf_counter() - start < budget_s:
            idx = torch.multinomial(weights, opts.batch_size, replacement=True, generator=gen)
            y = labels_t[idx]
            train_step(G, D, opt_g, opt_d, to_float(bank.sample(y, gen), device),
                       to_float(styles_t[owner_t[idx]], device), to_float(crops_t[idx], device), y, opts)
            steps += 1
    model = LoadedCheckpoint(config, G.eval(), {"charset": list(train.charset)}, sha256="", discriminator=D.eval())
    return model, steps, time.perf_counter() - start


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    seed: int
    name: str  # real | saae | render | augment | judge
    kind: str  # ratio | synthetic | judge
    ratio: float
    real_crops: int
    generated_crops: int
    accuracy: float
    seconds: float
    curve: list[tuple[int, float]]
    per_class: dict
    confusions: list


@dataclass
class BenchmarkResult:
    out: Path
    report: dict
    files: list[Path]
    seconds: float


def _stats(values: Sequence[float]) -> dict:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()) if len(a) else None, "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "n": int(len(a)), "values": [float(v) for v in a]}


def _check_request(req: BenchmarkRequest) -> None:
    if req.seeds < 1:
        raise PlategenError(f"--seeds {req.seeds}: need at least 1")
    if req.real_plates < 1:
        raise PlategenError(f"--real-plates {req.real_plates}: need at least 1")
    if req.test_plates < 1:
        raise PlategenError(f"--test-plates {req.test_plates}: need at least 1")
    if req.balance not in BALANCES:
        raise PlategenError(f"--balance {req.balance!r}: choose {' or '.join(BALANCES)}")
    if req.synthetic_size < 1:
        raise PlategenError(f"--synthetic-size {req.synthetic_size}: need at least 1")
    if req.schedule.steps < 1 or req.schedule.batch_size < 1:
        raise PlategenError("--steps and --batch-size must be at least 1")
    if req.train_generator and "saae" not in req.generators:
        raise PlategenError("--train-generator trains a fresh SAAE: use it with --generator saae or both")
    if req.train_generator and req.checkpoint is not None:
        raise PlategenError("--train-generator and --checkpoint exclude each other (same-budget vs product regime)")
    if req.generator_budget_s <= 0:
        raise PlategenError(f"--budget {req.generator_budget_s}: must be positive")
    if not req.data.is_dir():
        raise PlategenError(f"--data {req.data}: no such folder")
    if req.test is not None and not req.test.is_dir():
        raise PlategenError(f"--test {req.test}: no such folder")
    out = req.out
    if out.exists() and not out.is_dir():
        raise PlategenError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not req.overwrite:
        raise PlategenError(f"--out {out}: exists and is not empty; pass --overwrite or choose another folder")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def run_benchmark(req: BenchmarkRequest, log: Callable[[str], None] = lambda msg: None,
                  warn: Callable[[str], None] = lambda msg: None) -> BenchmarkResult:
    """Every input is checked before any training; `req.out` is created when the run starts and
    the report files are written (atomically) at the end."""
    started = time.perf_counter()
    timing: dict[str, float] = {}
    _check_request(req)
    torch.set_num_threads(max(1, req.threads))

    # --- inputs
    t = time.perf_counter()
    data_plates = load_plates(req.data).plates
    test_source = load_plates(req.test).plates if req.test is not None else None
    timing["import"] = time.perf_counter() - t
    all_plates = data_plates + (test_source or [])
    charset = charset_of(all_plates)
    fonts = shipped_fonts()

    # --- generator(s) and what they saw
    infos: dict[str, GeneratorInfo] = {}
    warnings: list[str] = []
    seen: set[str] = set()
    ckpt = None
    regime = ("same-budget" if req.train_generator else "product") if "saae" in req.generators else "no model"
    drawable = [c for c in charset if fonts_for(c, fonts)]
    if "saae" in req.generators and not req.train_generator:
        from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

        path = req.checkpoint if req.checkpoint is not None else DEFAULT_CHECKPOINT
        if not Path(path).is_file():
            raise PlategenError(f"--checkpoint {path}: no such file" + (
                " (the shipped checkpoint is missing; train one or pass --checkpoint)" if req.checkpoint is None else ""))
        ckpt = load_checkpoint(path)
        records = "plate_sha256" in ckpt.meta
        seen = set(ckpt.meta.get("plate_sha256") or [])
        if not records:
            msg = (f"{path}: the checkpoint does not record its training plates, so no test plate can be "
                   "proven unseen")
            if not req.allow_overlap:
                raise PlategenError(msg + "; pass --allow-overlap to run anyway (the report will say so)")
            warnings.append(msg)
        ck_chars = set(ckpt.meta.get("charset") or charset)
        drawable = [c for c in drawable if c in ck_chars]
        infos["saae"] = GeneratorInfo("saae", "SAAE checkpoint (product regime)", str(path), ckpt.sha256, records,
                                      len(seen))
    elif "saae" in req.generators:
        infos["saae"] = GeneratorInfo("saae", f"fresh SAAE trained on the N real training plates of each seed "
                                      f"for {req.generator_budget_s:.0f} s (same-budget regime)", plates_seen=req.real_plates)
    if "render" in req.generators:
        infos["render"] = GeneratorInfo("render", "font rendering + classical augmentation (render.py)", plates_seen=0)
    if not drawable:
        raise PlategenError("no character of the data can be drawn by every chosen generator")
    for info in infos.values():
        info.chars = list(drawable)

    # --- splits (all seeds, checked before anything is trained)
    splits = []
    test_plates = test_source if test_source is not None else data_plates
    for s in range(req.seeds):
        split = split_for_seed(data_plates, req.real_plates, req.test_plates, s, seen,
                               external_test=req.test is not None, allow_seen_test=req.allow_overlap)
        if req.test is not None:
            split.test = list(range(len(test_source)))
        if len(split.train) < req.real_plates:
            raise PlategenError(f"--real-plates {req.real_plates}: only {len(split.train)} of the {len(data_plates)} "
                                f"plates of {req.data} can train once the {len(split.test)} test plates (and, "
                                f"for a checkpoint, plates it never saw) are held out")
        if not split.test:
            n_seen = sum(p.sha256 in seen for p in data_plates)
            raise PlategenError(f"{req.data}: no plates left for test: the checkpoint saw {n_seen} of its "
                                f"{len(data_plates)} plates; give --test with plates it never saw "
                                f"(or --allow-overlap to test on seen plates, which flatters it)"
                                if n_seen else f"{req.data}: no plates left for test; give --test DATA or more data")
        train_sha = {data_plates[i].sha256 for i in split.train}
        test_sha = {test_plates[i].sha256 for i in split.test}
        if train_sha & test_sha:
            raise PlategenError(f"{len(train_sha & test_sha)} test plate(s) are the same images as training plates "
                                f"(by content hash); the test data must be separate")
        if req.test is None:
            train_keys = {plate_key(data_plates[i]) for i in split.train}
            assert not train_keys & {plate_key(data_plates[i]) for i in split.test}, "split is not plate-disjoint"
        overlap = len(test_sha & seen)
        if overlap:
            msg = (f"seed {s}: {overlap} of {len(split.test)} test plates were among the checkpoint's training "
                   "plates (by content hash); its accuracy on them is not a fair measure")
            if not req.allow_overlap:
                raise PlategenError(msg + ". Use plates it never saw (--test) or pass --allow-overlap")
            warnings.append(msg)
        splits.append(split)
    for w in warnings:
        warn(w)

    # --- the run starts: create --out
    req.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    data_samples = build_samples(data_plates, charset)
    test_samples = build_samples(test_source, charset) if test_source is not None else data_samples
    timing["crops"] = time.perf_counter() - t
    gen_classes = [charset.index(c) for c in drawable]
    timing.update({"generator_training": 0.0, "generation": 0.0, "augmentation": 0.0, "recogniser_training": 0.0,
                   "evaluation": 0.0})
    gen_timing = {g: 0.0 for g in infos}
    runs: list[Run] = []
    split_records = []
    fresh_steps: list[int] = []
    sched = req.schedule

    for s, split in enumerate(splits):
        train = data_samples.subset(split.train)
        test = test_samples.subset(split.test)
        if len(train.labels) == 0 or len(test.labels) == 0:
            raise PlategenError(f"seed {s}: the split has {len(train.labels)} training and {len(test.labels)} test crops")
        n_real = len(train.labels)
        # styles: the real training plates only, never a test plate
        style_plates = [data_plates[i] for i in split.train]
        assert not {p.sha256 for p in style_plates} & {test_plates[i].sha256 for i in split.test}
        style_images = [read_image(p.image_path) for p in style_plates]
        real_counts = np.bincount(train.labels, minlength=len(charset))[gen_classes]
        shares = class_shares(real_counts, req.balance)
        sizes = [generated_count(r, n_real) for r in req.ratios] + [req.synthetic_size]
        per_class = np.max([apportion(n, shares) for n in sizes], axis=0) + 1  # what any size takes of a class
        split_records.append({
            "seed": s, "train_plates": [_rel(data_plates[i].image_path, req.data) for i in split.train],
            "train_sha256": [data_plates[i].sha256 for i in split.train],
            "test_plates": [_rel(test_plates[i].image_path, req.test or req.data) for i in split.test],
            "test_sha256": [test_plates[i].sha256 for i in split.test],
            "train_crops": n_real, "test_crops": int(len(test.labels)),
            "train_plates_seen_by_checkpoint": split.train_seen,
        })
        log(f"seed {s}: {len(split.train)} training plates ({n_real} crops), {len(split.test)} test plates "
            f"({len(test.labels)} crops)")

        # generated pools, class-balanced over `drawable`; each generator has its own RNG stream
        pools: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        unchecked: dict[str, np.ndarray] = {}  # the SAAE pool without synth's label check, to show its effect
        for g in infos:
            t = time.perf_counter()
            if g == "render":
                labels = np.repeat(np.asarray(gen_classes), per_class)
                images = render_characters([charset[i] for i in labels], np.random.default_rng([s, 101]), fonts,
                                           neighbours=drawable)
            else:
                generator = ckpt
                if req.train_generator:
                    tg = time.perf_counter()
                    generator, steps, _ = train_fresh_saae(train, req.generator_budget_s, seed=1000 + s)
                    timing["generator_training"] += time.perf_counter() - tg
                    fresh_steps.append(steps)
                    log(f"seed {s}: fresh SAAE trained {steps} steps in {time.perf_counter() - tg:.0f} s")
                    t = time.perf_counter()
                n_pool, pool_seed = int(per_class.max()) * len(drawable), int(1_000_003 * (s + 1))
                images, idx = _saae_pool(generator, style_images, drawable, n_pool, seed=pool_seed)
                labels = np.asarray(gen_classes)[idx]
                unchecked[g] = _saae_pool(generator, style_images, drawable, n_pool, seed=pool_seed, check=False)[0]
            pools[g] = (images, labels)
            gen_timing[g] += time.perf_counter() - t
            timing["generation"] += time.perf_counter() - t

        def fit(name: str, kind: str, ratio: float, x: np.ndarray, y: np.ndarray, n_gen: int, k: int,
                curve: bool = True, eval_on=(test.crops, test.labels)) -> Run:
            t0 = time.perf_counter()
            schedule = sched if curve else replace(sched, eval_points=0)
            trained = train_recognizer(x, y, len(charset), schedule, seed=s * 1000 + k,
                                       curve_set=(test.crops, test.labels) if curve else None)
            t1 = time.perf_counter()
            ev = evaluate(trained.model, *eval_on, charset)
            timing["recogniser_training"] += t1 - t0
            timing["evaluation"] += time.perf_counter() - t1
            run = Run(s, name, kind, ratio, len(x) - n_gen, n_gen, ev.accuracy, t1 - t0, trained.curve,
                      ev.to_dict()["per_class"], ev.to_dict()["confusions"])
            runs.append(run)
            log(f"seed {s}: {name:8s} {kind:9s} r={ratio:g} real={run.real_crops} gen={n_gen} "
                f"acc={ev.accuracy:.4f} ({t1 - t0:.1f} s)")
            return run

        # ratio 0 and the ratios of each generator; the same recogniser seed for every training set
        fit("real", "ratio", 0.0, train.crops, train.labels, 0, k=0)
        for g, (images, labels) in pools.items():
            for r in req.ratios:
                if r == 0:
                    continue
                pick = take_balanced(labels, gen_classes, generated_count(r, n_real), shares)
                fit(g, "ratio", r, np.concatenate([train.crops, images[pick]]),
                    np.concatenate([train.labels, labels[pick]]), len(pick), k=0)
        if req.augment_reference:
            t = time.perf_counter()
            aug_rng = np.random.default_rng([s, 102])
            max_r = max(req.ratios)
            reps = int(math.ceil(max_r)) or 1
            aug = augment_crops(np.concatenate([train.crops] * reps), aug_rng)
            aug_labels = np.concatenate([train.labels] * reps)
            timing["augmentation"] += time.perf_counter() - t
            for r in req.ratios:
                if r == 0:
                    continue
                n = generated_count(r, n_real)
                fit("augment", "ratio", r, np.concatenate([train.crops, aug[:n]]),
                    np.concatenate([train.labels, aug_labels[:n]]), n, k=0)
        # synthetic only (train on generated, test on real)
        for g, (images, labels) in pools.items():
            pick = take_balanced(labels, gen_classes, req.synthetic_size, shares)
            fit(g, "synthetic", -1.0, images[pick], labels[pick], len(pick), k=0)
        # judge: all real crops outside the test plates; reads the generated crops
        if req.test is None:
            judge_ids = sorted(set(range(len(data_plates))) - set(split.test))
        else:
            judge_ids = list(range(len(data_plates)))
        judge_set = data_samples.subset(judge_ids)
        t0 = time.perf_counter()
        judge = train_recognizer(judge_set.crops, judge_set.labels, len(charset), replace(sched, eval_points=0),
                                 seed=s * 1000 + 999)
        timing["recogniser_training"] += time.perf_counter() - t0
        jt = evaluate(judge.model, test.crops, test.labels, charset)
        runs.append(Run(s, "judge", "judge", 0.0, len(judge_set.labels), 0, jt.accuracy, judge.seconds, [],
                        jt.to_dict()["per_class"], jt.to_dict()["confusions"]))
        log(f"seed {s}: judge (all {len(judge_set.labels)} real crops outside the test plates) acc={jt.accuracy:.4f}")
        judge_counts = np.bincount(judge_set.labels, minlength=len(charset))
        known = [c for c in gen_classes if judge_counts[c] >= JUDGE_MIN_CROPS]
        for g, (images, labels) in pools.items():
            pick = take_balanced(labels, gen_classes, req.synthetic_size, shares)
            ev = evaluate(judge.model, images[pick], labels[pick], charset)
            runs.append(Run(s, g, "read_as_asked", 0.0, 0, len(pick), ev.accuracy, 0.0, [],
                            ev.to_dict()["per_class"], ev.to_dict()["confusions"]))
            mask = np.isin(labels[pick], known)
            ev_known = evaluate(judge.model, images[pick][mask], labels[pick][mask], charset)
            runs.append(Run(s, g, "read_as_asked_known", 0.0, 0, int(mask.sum()), ev_known.accuracy, 0.0, [],
                            ev_known.to_dict()["per_class"], ev_known.to_dict()["confusions"]))
            log(f"seed {s}: {g} generated crops read as asked class: {ev.accuracy:.4f} "
                f"({ev_known.accuracy:.4f} on the {len(known)} classes the judge has >= {JUDGE_MIN_CROPS} crops of)")
            if g in unchecked:  # same plan, first draws only
                ev_raw = evaluate(judge.model, unchecked[g][pick], labels[pick], charset)
                runs.append(Run(s, g, "read_as_asked_unchecked", 0.0, 0, len(pick), ev_raw.accuracy, 0.0, [],
                                ev_raw.to_dict()["per_class"], ev_raw.to_dict()["confusions"]))
                log(f"seed {s}: {g} without the label check: {ev_raw.accuracy:.4f}")

    timing["total"] = time.perf_counter() - started
    report = build_report(req, regime, charset, drawable, infos, split_records, runs, timing, gen_timing,
                          warnings, fresh_steps)
    files = write_report(req.out, report)
    return BenchmarkResult(req.out, report, files, time.perf_counter() - started)


# ---------------------------------------------------------------- report


def summarize(runs: Sequence[Run], ratios: Sequence[float], generators: Sequence[str]) -> dict:
    def acc(name: str, kind: str, ratio: float | None = None) -> list[float]:
        return [r.accuracy for r in runs if r.name == name and r.kind == kind and (ratio is None or r.ratio == ratio)]

    lines = {}
    for g in [*generators, "augment"]:
        if not acc(g, "ratio") and g == "augment":
            continue
        lines[g] = {f"{r:g}": _stats(acc("real", "ratio", 0.0) if r == 0 else acc(g, "ratio", r)) for r in ratios}
    paired = {}
    if "saae" in generators and "render" in generators:
        for r in ratios:
            if r == 0:
                continue
            a = {x.seed: x.accuracy for x in runs if x.name == "saae" and x.kind == "ratio" and x.ratio == r}
            b = {x.seed: x.accuracy for x in runs if x.name == "render" and x.kind == "ratio" and x.ratio == r}
            paired[f"{r:g}"] = _stats([a[k] - b[k] for k in sorted(a) if k in b])
    return {
        "accuracy_vs_ratio": lines,
        "saae_minus_render_paired": paired,  # per seed (same split, same recogniser seed), then mean/std
        "real_only": _stats(acc("real", "ratio", 0.0)),
        "synthetic_only": {g: _stats(acc(g, "synthetic")) for g in generators},
        "read_as_asked": {g: _stats(acc(g, "read_as_asked")) for g in generators},
        "read_as_asked_known_classes": {g: _stats(acc(g, "read_as_asked_known")) for g in generators},
        "read_as_asked_without_label_check": {g: _stats(acc(g, "read_as_asked_unchecked")) for g in generators
                                              if acc(g, "read_as_asked_unchecked")},
        "all_real_judge": _stats(acc("judge", "judge")),
    }


def _targets(summary: dict, regime: str, ratios: Sequence[float]) -> list[dict]:
    """The issue's targets, checked where this run measured them."""
    out = []
    lines = summary["accuracy_vs_ratio"]
    real = summary["real_only"]["mean"]
    err0 = 1 - real if real is not None else None
    if "saae" in lines and 4.0 in ratios and err0:
        err4 = 1 - lines["saae"]["4"]["mean"]
        if regime == "product":
            out.append({"target": "product regime, ratio 4: character error at most half of real-only",
                        "measured": f"error {err4:.4f} vs real-only {err0:.4f} ({err4 / err0:.2f}x)",
                        "met": bool(err4 <= err0 / 2)})
        else:
            out.append({"target": "same-budget regime, ratio 4: error at least 25% below real-only",
                        "measured": f"error {err4:.4f} vs real-only {err0:.4f} ({1 - err4 / err0:+.0%} reduction)",
                        "met": bool(err4 <= 0.75 * err0)})
    if "saae" in lines and "render" in lines and regime == "product":
        for r in (2.0, 4.0):
            if r in ratios:
                a, b = lines["saae"][f"{r:g}"], lines["render"][f"{r:g}"]
                d = summary["saae_minus_render_paired"][f"{r:g}"]
                sd = max(a["std"], b["std"])
                out.append({"target": f"ratio {r:g}: SAAE above render by more than 2 std over seeds "
                                      "(std of either line)",
                            "measured": f"saae {a['mean']:.4f}±{a['std']:.4f}, render {b['mean']:.4f}±{b['std']:.4f}; "
                                        f"difference {a['mean'] - b['mean']:+.4f} vs 2 std {2 * sd:.4f}",
                            "met": bool(a["n"] > 1 and a["mean"] - b["mean"] > 2 * sd)})
                out.append({"target": f"ratio {r:g}: SAAE above render by more than 2 std over seeds "
                                      "(paired: std of the per-seed differences, same split and recogniser seed)",
                            "measured": f"difference {d['mean']:+.4f} ± {d['std']:.4f} over {d['n']} seeds",
                            "met": bool(d["n"] > 1 and d["mean"] > 2 * d["std"])})
    if "saae" in summary["synthetic_only"] and summary["synthetic_only"]["saae"]["n"]:
        m = summary["synthetic_only"]["saae"]["mean"]
        out.append({"target": "train-on-synthetic / test-on-real (SAAE) >= 90%", "measured": f"{m:.4f}",
                    "met": bool(m >= 0.90)})
    if "saae" in summary["read_as_asked"] and summary["read_as_asked"]["saae"]["n"]:
        m = summary["read_as_asked"]["saae"]["mean"]
        k = summary["read_as_asked_known_classes"]["saae"]["mean"]
        raw = summary.get("read_as_asked_without_label_check", {}).get("saae")
        out.append({"target": "generated characters read as asked class >= 97%",
                    "measured": f"{m:.4f} on all generated classes; {k:.4f} on classes the judge has at least "
                                f"{JUDGE_MIN_CROPS} real crops of"
                                + (f"; {raw['mean']:.4f} without synth's label check" if raw else ""),
                    "met": bool(m >= 0.97)})
    return out


def build_report(req: BenchmarkRequest, regime: str, charset: list[str], drawable: list[str],
                 infos: dict[str, GeneratorInfo], splits: list[dict], runs: list[Run], timing: dict,
                 gen_timing: dict, warnings: list[str], fresh_steps: list[int]) -> dict:
    summary = summarize(runs, req.ratios, list(infos))
    if fresh_steps:
        infos["saae"].description += f"; steps reached per seed: {fresh_steps}"
    return {
        "tool": "plategen benchmark",
        "plategen_version": __version__,
        "command": req.command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "regime": regime,
        "regime_note": {"product": "product regime: the SAAE is the given checkpoint; test plates are plates it "
                                   "never saw (by content hash) unless a warning below says otherwise",
                        "same-budget": "same-budget regime: a fresh SAAE per seed saw only that seed's N real "
                                       "training plates",
                        "no model": "no SAAE in this run: render and classical augmentation only"}[regime],
        "warnings": warnings,
        "data": str(req.data),
        "test": str(req.test) if req.test is not None else None,
        "charset": charset,
        "generated_chars": drawable,
        "balance": req.balance,
        "balance_note": (f"generated crops: {DATA_SHARE:.0%} follow the class frequencies of the seed's real "
                         f"training crops, {1 - DATA_SHARE:.0%} are spread equally over generated_chars, so every "
                         "class is covered (largest-remainder rounding)" if req.balance == "data" else
                         "generated crops: the same count for every character in generated_chars") +
                        "; real crops keep their natural frequencies; the synthetic-only and read-as-asked sets "
                        "use the same class shares",
        "ratios": list(req.ratios),
        "ratio_definition": "ratio r: the real training crops plus round(r x their count) generated crops",
        "seeds": list(range(req.seeds)),
        "seed_controls": "the split, the generated crops and the recogniser initialisation; every training set of "
                         "one seed uses the same recogniser initialisation and batch seed",
        "real_plates": req.real_plates,
        "test_plates_requested": req.test_plates,
        "synthetic_size": req.synthetic_size,
        "schedule": {**req.schedule.to_dict(),
                     "note": f"every recogniser (every ratio, generator and reference) trains for exactly "
                             f"{req.schedule.steps} steps of {req.schedule.batch_size} crops, whatever its "
                             f"training set size"},
        "generators": {g: asdict(i) for g, i in infos.items()},
        "styles": "generated crops use as styles only the seed's real training plates; no test plate is a style",
        "splits": splits,
        "summary": summary,
        "targets": _targets(summary, regime, req.ratios),
        "timing_s": {k: round(v, 2) for k, v in timing.items()},
        "generation_timing_s": {k: round(v, 2) for k, v in gen_timing.items()},
        "runs": [asdict(r) for r in runs],
    }


def _fmt(stat: dict) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def report_markdown(report: dict) -> str:
    s = report["summary"]
    ratios = [f"{r:g}" for r in report["ratios"]]
    lines = [f"# plategen benchmark ({report['regime']} regime)", "",
             f"`{report['command']}`", "",
             f"- {report['regime_note']}",
             f"- data: `{report['data']}`" + (f"; test: `{report['test']}`" if report["test"] else
                                              "; test: plate-disjoint split of the data, per seed"),
             f"- {report['real_plates']} real training plates, seeds {report['seeds']}; "
             f"test crops per seed: {[sp['test_crops'] for sp in report['splits']]}; "
             f"training crops per seed: {[sp['train_crops'] for sp in report['splits']]}",
             f"- schedule: {report['schedule']['note']} (AdamW one-cycle, peak lr {report['schedule']['lr']}, "
             f"light augmentation {'on' if report['schedule']['augment'] else 'off'})",
             f"- {report['ratio_definition']}; {report['balance_note']}",
             f"- {report['styles']}",
             f"- machine: {report['machine']['cpu_count']} CPU cores, torch {report['machine']['torch']} with "
             f"{report['machine']['torch_threads']} threads; total {report['timing_s']['total']:.0f} s", ""]
    for w in report["warnings"]:
        lines += [f"> **WARNING:** {w}", ""]
    lines += ["## Accuracy on real test crops (mean ± std over seeds, %)", "",
              "| training data | " + " | ".join(f"ratio {r}" for r in ratios) + " |",
              "|---|" + "---|" * len(ratios)]
    names = {"saae": "real + SAAE", "render": "real + render", "augment": "real + classical augmentation of real"}
    for g, line in s["accuracy_vs_ratio"].items():
        lines.append(f"| {names.get(g, g)} | " + " | ".join(_fmt(line[r]) for r in ratios) + " |")
    if s.get("saae_minus_render_paired"):
        lines += ["", "| SAAE minus render, paired per seed (points) | " +
                  " | ".join(f"ratio {r}" for r in s["saae_minus_render_paired"]) + " |",
                  "|---|" + "---|" * len(s["saae_minus_render_paired"]),
                  "| mean ± std | " + " | ".join(_fmt(v) for v in s["saae_minus_render_paired"].values()) + " |"]
    lines += ["", "| reference | accuracy (%) |", "|---|---|",
              f"| real only (ratio 0) | {_fmt(s['real_only'])} |"]
    for g, st in s["synthetic_only"].items():
        lines.append(f"| {g} synthetic only ({report['synthetic_size']} crops), test on real | {_fmt(st)} |")
    for g, st in s["read_as_asked"].items():
        lines.append(f"| {g} generated crops read as asked class by the judge | {_fmt(st)} |")
        lines.append(f"| ... on classes the judge has >= {JUDGE_MIN_CROPS} real crops of | "
                     f"{_fmt(s['read_as_asked_known_classes'][g])} |")
        if g in s.get("read_as_asked_without_label_check", {}):
            lines.append(f"| ... without synth's label check (first draws only) | "
                         f"{_fmt(s['read_as_asked_without_label_check'][g])} |")
    lines.append(f"| judge (all real crops outside the test plates) on the test crops | {_fmt(s['all_real_judge'])} |")
    lines += ["", "## Generators", ""]
    for g, info in report["generators"].items():
        extra = f"; checkpoint `{info['checkpoint']}` sha256 {info['checkpoint_sha256'][:12]}…, trained on " \
                f"{info['plates_seen']} plates" if info.get("checkpoint") else ""
        lines.append(f"- **{g}**: {info['description']}{extra}")
    seen = [sp["train_plates_seen_by_checkpoint"] for sp in report["splits"]]
    if any(seen):
        lines.append(f"- training plates the checkpoint had seen, per seed: {seen} (too few unseen plates remained)")
    if report["targets"]:
        lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |" for t in report["targets"]]
    tm = report["timing_s"]
    lines += ["", "## Time (s)", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in tm.items()]
    lines += ["", "![accuracy vs ratio and vs steps](benchmark.png)", ""]
    return "\n".join(lines)


def plot_png(report: dict) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = {"saae": "tab:blue", "render": "tab:orange", "augment": "tab:green", "real": "black"}
    s = report["summary"]
    ratios = report["ratios"]
    for g, line in s["accuracy_vs_ratio"].items():
        means = [100 * line[f"{r:g}"]["mean"] for r in ratios]
        stds = [100 * line[f"{r:g}"]["std"] for r in ratios]
        ax1.errorbar(ratios, means, yerr=stds, marker="o", capsize=4, label=f"real + {g}", color=colours.get(g))
    for g, st in s["synthetic_only"].items():
        if st["n"]:
            ax1.axhline(100 * st["mean"], ls="--", lw=1, color=colours.get(g), label=f"{g} synthetic only")
    ax1.set_xlabel("generated : real crops (ratio)")
    ax1.set_ylabel("accuracy on real test crops (%)")
    ax1.set_title(f"{report['real_plates']} real plates, {len(report['seeds'])} seed(s) ({report['regime']})")
    ax1.set_xticks(ratios)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    top = max(ratios)
    curves: dict[str, list] = {}
    for run in report["runs"]:
        key = None
        if run["kind"] == "ratio" and run["name"] == "real":
            key = "real only"
        elif run["kind"] == "ratio" and run["ratio"] == top:
            key = f"real + {top:g}x {run['name']}"
        elif run["kind"] == "synthetic":
            key = f"{run['name']} synthetic only"
        if key and run["curve"]:
            curves.setdefault(key, []).append(run["curve"])
    for key, cs in curves.items():
        steps = [c[0] for c in cs[0]]
        acc = np.array([[c[1] for c in curve] for curve in cs]) * 100
        name = key.split()[-1] if key.startswith("real +") else key.split()[0]
        ax2.errorbar(steps, acc.mean(0), yerr=acc.std(0, ddof=1) if len(acc) > 1 else None, marker=".",
                     capsize=3, label=key, color=colours.get("real" if key == "real only" else name),
                     ls="--" if "synthetic" in key else "-")
    ax2.set_xlabel("recogniser training steps")
    ax2.set_ylabel("accuracy on real test crops (%)")
    ax2.set_title("accuracy vs training steps")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write_report(out: Path, report: dict) -> list[Path]:
    """report.json, report.md and benchmark.png, each written atomically."""
    png = plot_png(report)
    md = report_markdown(report)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    paths = [out / name for name in REPORT_FILES]
    atomic_write_bytes(paths[2], png)
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[0], text)  # last: its presence means the run completed
    return paths
