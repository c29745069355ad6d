"""Plate recogniser runs of one seed: real only, real + r x generated plates per generator, real + r x
augmented real plates, generated only; and the judge, trained on all real plates outside the test plates.

Every recogniser of a seed has the same `PlateSchedule`, initialisation and batch seed; only its
training set differs. Each is scored on the seed's real test plates: plate accuracy (every
character right) and character accuracy (1 - CER).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from plategen.bench.plate_pools import PlatePool
from plategen.bench.pools import generated_count
from plategen.bench.runs import Timing
from plategen.recognizer import PlateEvaluation, PlateSchedule, TrainedPlates, evaluate_plates, train_plate_recognizer

PLATE_TIMING_PARTS = ("import", "styles", "generator_training", "generation", "augmentation", "recogniser_training",
                      "evaluation")


@dataclass
class PlateRun:
    seed: int
    name: str  # real | saae | render | augment | judge
    kind: str  # ratio | synthetic | judge | read_as_asked | read_as_asked_unchecked
    ratio: float
    real_plates: int
    generated_plates: int
    accuracy: float  # plate accuracy: the share of plates read exactly
    char_accuracy: float  # 1 - CER
    seconds: float
    curve: list[tuple[int, float]]  # (step, plate accuracy on the seed's real test plates)
    per_length: dict
    confusions: list

    @classmethod
    def scored(cls, seed: int, name: str, kind: str, ratio: float, real: int, generated: int, ev: PlateEvaluation,
               seconds: float = 0.0, curve: list[tuple[int, float]] | None = None) -> "PlateRun":
        scores = ev.to_dict()
        return cls(seed, name, kind, ratio, real, generated, ev.plate_accuracy, ev.char_accuracy, seconds,
                   [tuple(c) for c in curve or []], scores["per_length"], scores["confusions"])


@dataclass
class PlateSeedSet:
    """What every run of one seed shares: its real training and test plates (at the input size) and texts."""

    seed: int
    train: np.ndarray
    train_texts: list[str]
    test: np.ndarray
    test_texts: list[str]
    alphabet: str
    schedule: PlateSchedule
    timing: Timing
    log: Callable[[str], None]
    trained: Callable[[], None]  # called after each recogniser training (the progress bar)


def train_plates(ps: PlateSeedSet, x: np.ndarray, texts: Sequence[str], seed: int, curve: bool = True) -> TrainedPlates:
    with ps.timing("recogniser_training"):
        trained = train_plate_recognizer(x, list(texts), ps.alphabet, ps.schedule, seed=seed,
                                         curve_set=(ps.test, ps.test_texts) if curve else None)
    ps.trained()
    return trained


def scored(ps: PlateSeedSet, trained: TrainedPlates, name: str, kind: str, ratio: float, real: int, generated: int,
           images: np.ndarray | None = None, texts: Sequence[str] | None = None) -> PlateRun:
    """`trained` reading `images` (default: the seed's real test plates) as `texts`, as one run."""
    images, texts = (ps.test, ps.test_texts) if images is None else (images, texts)
    with ps.timing("evaluation"):
        ev = evaluate_plates(trained, images, list(texts))
    own = kind in ("ratio", "synthetic", "judge")
    return PlateRun.scored(ps.seed, name, kind, ratio, real, generated, ev, trained.seconds if own else 0.0,
                           trained.curve if own else None)


def train_and_test(ps: PlateSeedSet, name: str, kind: str, ratio: float, x: np.ndarray, texts: Sequence[str],
                   n_gen: int) -> PlateRun:
    run = scored(ps, train_plates(ps, x, texts, ps.seed * 1000), name, kind, ratio, len(x) - n_gen, n_gen)
    ps.log(f"seed {ps.seed}: {name:8s} {kind:9s} r={ratio:g} real={run.real_plates} gen={n_gen} "
           f"plate={run.accuracy:.4f} char={run.char_accuracy:.4f} ({run.seconds:.1f} s)")
    return run


def plate_ratio_runs(ps: PlateSeedSet, ratios: Sequence[float], pools: dict[str, PlatePool],
                     augmented: tuple[np.ndarray, list[str]] | None) -> list[PlateRun]:
    """Real only, then real + r x each generator's plates, then real + r x augmented real plates;
    the generated plates of ratio r are the first round(r x N) of the seed's pool."""
    n_real = len(ps.train)
    runs = [train_and_test(ps, "real", "ratio", 0.0, ps.train, ps.train_texts, 0)]
    extra = dict(pools)
    if augmented is not None:
        extra["augment"] = PlatePool(*augmented)
    for g, pool in extra.items():
        for r in ratios:
            if r == 0:
                continue
            n = generated_count(r, n_real)
            runs.append(train_and_test(ps, g, "ratio", r, np.concatenate([ps.train, pool.images[:n]]),
                                       ps.train_texts + pool.texts[:n], n))
    return runs


def plate_synthetic_runs(ps: PlateSeedSet, synthetic_size: int, pools: dict[str, PlatePool]) -> list[PlateRun]:
    """Train on generated plates only (the real training plates were only their styles), test on real."""
    return [train_and_test(ps, g, "synthetic", -1.0, pool.images[:synthetic_size], pool.texts[:synthetic_size],
                           min(synthetic_size, len(pool.texts))) for g, pool in pools.items()]


def plate_judge_runs(ps: PlateSeedSet, judge_x: np.ndarray, judge_texts: Sequence[str], pools: dict[str, PlatePool],
                     synthetic_size: int) -> list[PlateRun]:
    """The judge (all real plates outside the test plates: real only at --real-plates all, the ceiling)
    on the real test plates, then reading each pool's plates as the texts they were asked to show."""
    judge = train_plates(ps, judge_x, judge_texts, ps.seed * 1000 + 999)
    runs = [scored(ps, judge, "judge", "judge", 0.0, len(judge_x), 0)]
    ps.log(f"seed {ps.seed}: judge (all {len(judge_x)} real plates outside the test plates) "
           f"plate={runs[0].accuracy:.4f} char={runs[0].char_accuracy:.4f}")
    for g, pool in pools.items():
        n = min(synthetic_size, len(pool.texts))
        runs.append(scored(ps, judge, g, "read_as_asked", 0.0, 0, n, pool.images[:n], pool.texts[:n]))
        line = f"seed {ps.seed}: {g} plates read exactly as asked by the judge: {runs[-1].accuracy:.4f}"
        if pool.unchecked is not None:
            runs.append(scored(ps, judge, g, "read_as_asked_unchecked", 0.0, 0, n, pool.unchecked[:n],
                               pool.texts[:n]))
            line += f" ({runs[-1].accuracy:.4f} without the label check)"
        ps.log(line)
    return runs
