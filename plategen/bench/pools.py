"""Generated crops: which generator draws them, how many of each class, and the pools each seed picks from.

The SAAE draws through the product's synth path (`synth.generate_arrays`, label check on); in the
same-budget regime it is first trained fresh on the seed's training crops with `train.fit_saae`.
The render baseline draws with `render.py`. Each generator has its own RNG stream per seed.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from plategen.bench.request import BenchmarkRequest
from plategen.checkpoint import LoadedCheckpoint, checkpoint_path, load_checkpoint
from plategen.synth.engine import chinese_model, if_drawing, with_chinese
from plategen.dataset import CharSamples
from plategen.errors import PlategenError
from plategen.glyphs import Font, fonts_for
from plategen.model import SAAEConfig
from plategen.render import augment_crops, render_characters
from plategen.synth import generate_arrays
from plategen.train import GlyphBank, TrainOptions, fit_saae, glyph_fit, new_fit

DATA_SHARE = 0.8  # --balance data: this share follows the real class frequencies, the rest is uniform


# ---------------------------------------------------------------- how many of each class


def generated_count(ratio: float, real_crops: int) -> int:
    """Generated crops added at `ratio`: r times as many as the real training crops."""
    return int(round(ratio * real_crops))


def require_distinct_counts(ratios: Sequence[float], real: int, unit: str, seed: int, limit: int) -> None:
    """Every ratio above 0 adds some generated `unit`, and no two add the same number: a ratio of 0.001 beside 25 real
    crops ran as a second real-only line and was reported as a ratio. None adds more than `limit` (--synthetic-size's
    bound): --ratios 64 beside 7,515 real crops planned 481,000 and sat in generation at 1.2 GB and growing."""
    counts: dict[int, float] = {}
    for ratio in ratios:
        if ratio <= 0 or real == 0:  # a split without real crops is refused with its own message (`seed_set`)
            continue
        n = generated_count(ratio, real)
        if n == 0:  # the smallest ratio that rounds to one, up to 4 decimals (0.5 rounds to even: 0)
            raise PlategenError(f"--ratios: {ratio:g} x the {real} real training {unit} of seed {seed} rounds to no "
                                f"generated {unit}; give ratios of at least {math.ceil(5000 / real + 1) / 10000:g}")
        if n > limit:
            raise PlategenError(f"--ratios: {ratio:g} x the {real} real training {unit} of seed {seed} is {n:,} generated "
                                f"{unit}, more than {limit:,} (--synthetic-size's bound too); give smaller ratios or "
                                "fewer --real-plates")
        if n in counts:
            raise PlategenError(f"--ratios: {counts[n]:g} and {ratio:g} both add {n} generated {unit} to the {real} real "
                                f"training {unit} of seed {seed}; give ratios further apart")
        counts[n] = ratio


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


# ---------------------------------------------------------------- the generators


@dataclass
class GeneratorInfo:
    name: str
    description: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    records_plates: bool | None = None
    plates_seen: int | None = None
    chars: list[str] = field(default_factory=list)


@dataclass
class Generators:
    """The chosen generators, what the checkpoint saw (content hashes) and the characters all of them can draw (a seed
    draws some of them: at the character level those its non-test plates show, `splits.drawn_outside_test`; at the
    plate level those its training plates show)."""

    infos: dict[str, GeneratorInfo]
    checkpoint: LoadedCheckpoint | None
    seen: set[str]
    drawable: list[str]
    warnings: list[str]
    chinese: LoadedCheckpoint | None = None  # draws the Chinese characters, as in synth (`chinese_model`)


def copy_of_training_folder(gens: Generators, folder: Path, hashes: Sequence[str]) -> list[str]:
    """A warning where the test plates' `folder` (its images' content `hashes`) is named as a folder the checkpoint
    trained on, none of whose images it trained on: a re-encoded or edited copy of its training data, whose plates
    the content-hash guard takes for unseen ones."""
    trained: dict[str, str] = {}
    for model in (gens.checkpoint, gens.chinese):
        data = model.meta.get("data") if model is not None else None
        listed = data.get("folders") if isinstance(data, dict) else None  # every training stage's (train.py)
        trained |= {Path(f).name: f for f in listed if isinstance(f, str)} if isinstance(listed, list) else {}
    name = Path(os.path.abspath(folder)).name  # as train names its folders
    if name not in trained or not hashes or gens.seen & set(hashes):
        return []
    return [f"{folder}: the checkpoint trained on a folder of this name ({trained[name]}) but on none of these images, "
            "by content: if this is a copy of it, re-encoded or edited, the plates it trained on count as unseen here "
            "and flatter its figures; test on plates you know it never saw"]


def open_generators(req: BenchmarkRequest, charset: Sequence[str], fonts: Sequence[Font],
                    data_chars: Sequence[str] | None = None) -> Generators:
    """Load the product checkpoint (refusing one that cannot prove which plates it saw, unless
    allow_overlap) and describe each generator. Only characters of `data_chars` (--data's; None: all of
    `charset`) are drawn: one that only --test shows would hand the generated lines its test labels."""
    infos: dict[str, GeneratorInfo] = {}
    warnings: list[str] = []
    seen: set[str] = set()
    ckpt = chinese = None
    shown = set(charset if data_chars is None else data_chars)
    drawable = [c for c in charset if c in shown and fonts_for(c, fonts)]
    if req.regime == "product":
        path = checkpoint_path(req.checkpoint)
        if not Path(path).is_file():
            what = "a folder, not a checkpoint file" if Path(path).is_dir() else "no such file"
            raise PlategenError(f"--checkpoint {path}: {what}" + (
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
        description = "SAAE checkpoint (product regime)"
        if "saae" in req.generators:  # draws as synth does, characters and whole plates alike
            chinese = if_drawing(chinese_model(req.checkpoint), drawable)
        ck_chars = set(with_chinese(ckpt.meta.get("charset"), chinese) or charset)
        if chinese is not None:  # its plates are kept out of the tests too
            seen |= set(chinese.meta.get("plate_sha256") or [])
            description += (f"; Chinese characters drawn by {chinese.path} (sha256 {chinese.sha256}), as in "
                            "synth without --checkpoint")
        drawable = [c for c in drawable if c in ck_chars]
        infos["saae"] = GeneratorInfo("saae", description, str(path), ckpt.sha256, records, len(seen))
    elif req.regime == "same-budget":
        infos["saae"] = GeneratorInfo("saae", f"fresh SAAE trained on the N real training plates of each seed "
                                      f"for {req.budget_s:.0f} s (same-budget regime)", plates_seen=req.real_plates)
    if "render" in req.generators:
        infos["render"] = GeneratorInfo("render", "font rendering + classical augmentation (render.py)", plates_seen=0)
    if not drawable:
        raise PlategenError("no character of the data can be drawn by every chosen generator")
    return Generators(infos, ckpt, seen, drawable, warnings, chinese)


def train_fresh_saae(train: CharSamples, budget_s: float, seed: int, threads: int,
                     max_steps: int | None = None) -> tuple[LoadedCheckpoint, int]:
    """Same-budget regime: a fresh SAAE on these crops only, trained with `train.fit_saae` on `threads`
    torch threads until `budget_s` seconds (counted from here) or `max_steps`. Returns the model as a
    checkpoint in eval mode, with its discriminator for synth's label check, and the steps it reached."""
    start = time.perf_counter()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    opts = TrainOptions(seed=seed)
    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        config = SAAEConfig(num_classes=len(train.charset), **(glyph_fit(train, opts) | opts.model))
        fit = new_fit(config, opts, device)
        bank = GlyphBank(train.charset, opts.glyph_variants, rng, config.glyph_size, config.glyph_aspect is not None)
        try:
            fit_saae(fit, train, bank, opts, device, total_steps=max_steps or 100_000,
                     budget_s=budget_s - (time.perf_counter() - start))
        finally:
            torch.set_num_threads(before)
    if fit.step == 0:  # an untrained generator's crops were scored as the same-budget SAAE's
        raise PlategenError(f"--budget {budget_s:g}: the time ran out before the fresh SAAE trained a single step; "
                            "give a longer --budget")
    model = LoadedCheckpoint(config, fit.G.eval(), {"charset": list(train.charset)}, sha256="",
                             discriminator=fit.D.eval())
    return model, fit.step


# ---------------------------------------------------------------- the pools of one seed


@dataclass
class Pool:
    """Generated crops of one generator for one seed; `unchecked` are the SAAE's first draws,
    without synth's label check, to show what the check does."""

    images: np.ndarray
    labels: np.ndarray  # indices into the charset
    unchecked: np.ndarray | None = None


def per_class_need(req: BenchmarkRequest, shares: np.ndarray, real_crops: int) -> np.ndarray:
    """Crops of each class a pool must hold so that every ratio and the synthetic-only set can pick from it."""
    sizes = [generated_count(r, real_crops) for r in req.ratios] + [req.synthetic_count]
    return np.max([apportion(n, shares) for n in sizes], axis=0) + 1


def render_pool(charset: Sequence[str], classes: Sequence[int], per_class: np.ndarray, drawable: list[str],
                fonts: Sequence[Font], seed: int) -> Pool:
    labels = np.repeat(np.asarray(classes), per_class)
    images = render_characters([charset[i] for i in labels], np.random.default_rng([seed, 101]), fonts,
                               neighbours=drawable)
    return Pool(images, labels)


def pool_seed(seed: int) -> int:
    """The generators' draw seed of benchmark seed `seed`: apart from the split's and the recognisers' seeds."""
    return int(1_000_003 * (seed + 1))


def saae_pool(generator, style_images: list[np.ndarray], classes: Sequence[int], per_class: np.ndarray,
              drawable: list[str], seed: int, chinese: LoadedCheckpoint | None = None) -> Pool:
    """Class-balanced over `drawable` via the product's synth path, plus the same plan without the label check;
    `chinese` draws the Chinese characters, as in synth (`engine.chinese_model`)."""
    n_pool = int(per_class.max()) * len(drawable)
    draw = dict(seed=pool_seed(seed), chinese=chinese)
    images, idx = generate_arrays(generator, style_images, list(drawable), n_pool, check=True, **draw)
    unchecked, _ = generate_arrays(generator, style_images, list(drawable), n_pool, check=False, **draw)
    return Pool(images, np.asarray(classes)[idx], unchecked)


def augmented_real(train: CharSamples, ratios: Sequence[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Classical augmentation of the real training crops, enough for the largest ratio."""
    reps = int(math.ceil(max(ratios))) or 1
    images = augment_crops(np.concatenate([train.crops] * reps), np.random.default_rng([seed, 102]))
    return images, np.concatenate([train.labels] * reps)
