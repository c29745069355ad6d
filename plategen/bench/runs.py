"""Recogniser runs of one seed: real only, real + r x generated per generator, real + r x augmentation, synthetic only.

Every recogniser of a seed has the same `Schedule`, initialisation and batch seed; only its
training set differs. Each is evaluated on the seed's real test crops.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from plategen.bench.pools import Pool, generated_count, take_balanced
from plategen.dataset import CharSamples
from plategen.recognizer import Evaluation, Schedule, evaluate, train_recognizer

TIMING_PARTS = ("import", "crops", "generator_training", "generation", "augmentation", "recogniser_training",
                "evaluation")


class Timing:
    """Seconds spent in each part of the run, summed over seeds (`with timing("generation"): ...`)."""

    def __init__(self, parts: Sequence[str] = TIMING_PARTS):
        self.seconds = dict.fromkeys(parts, 0.0)

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start


@dataclass
class Run:
    seed: int
    name: str  # real | saae | render | augment | judge
    kind: str  # ratio | synthetic | judge | read_as_asked | read_as_asked_known | read_as_asked_unchecked
    ratio: float
    real_crops: int
    generated_crops: int
    accuracy: float
    seconds: float
    curve: list[tuple[int, float]]
    per_class: dict
    confusions: list

    @classmethod
    def scored(cls, seed: int, name: str, kind: str, ratio: float, real_crops: int, generated_crops: int,
               ev: Evaluation, seconds: float = 0.0, curve: list[tuple[int, float]] | None = None) -> "Run":
        scores = ev.to_dict()
        return cls(seed, name, kind, ratio, real_crops, generated_crops, ev.accuracy, seconds, curve or [],
                   scores["per_class"], scores["confusions"])


@dataclass
class SeedSet:
    """What every run of one seed shares: its real training and test crops, the generated classes and their shares."""

    seed: int
    train: CharSamples
    test: CharSamples
    classes: list[int]  # charset indices every generator draws
    shares: np.ndarray  # of each of `classes` among generated crops
    schedule: Schedule
    timing: Timing
    log: Callable[[str], None]


def train_and_test(ss: SeedSet, name: str, kind: str, ratio: float, x: np.ndarray, y: np.ndarray, n_gen: int) -> Run:
    """One recogniser on (x, y), scored on the seed's real test crops (with its accuracy-vs-steps curve)."""
    with ss.timing("recogniser_training"):
        trained = train_recognizer(x, y, len(ss.train.charset), ss.schedule, seed=ss.seed * 1000,
                                   curve_set=(ss.test.crops, ss.test.labels))
    with ss.timing("evaluation"):
        ev = evaluate(trained.model, ss.test.crops, ss.test.labels, ss.train.charset)
    run = Run.scored(ss.seed, name, kind, ratio, len(x) - n_gen, n_gen, ev, trained.seconds, trained.curve)
    ss.log(f"seed {ss.seed}: {name:8s} {kind:9s} r={ratio:g} real={run.real_crops} gen={n_gen} "
           f"acc={ev.accuracy:.4f} ({trained.seconds:.1f} s)")
    return run


def ratio_runs(ss: SeedSet, ratios: Sequence[float], pools: dict[str, Pool],
               augmented: tuple[np.ndarray, np.ndarray] | None) -> list[Run]:
    """Real only, then real + r x each generator's crops, then real + r x augmented real crops."""
    train, n_real = ss.train, len(ss.train.labels)
    runs = [train_and_test(ss, "real", "ratio", 0.0, train.crops, train.labels, 0)]
    for g, pool in pools.items():
        for r in ratios:
            if r == 0:
                continue
            pick = take_balanced(pool.labels, ss.classes, generated_count(r, n_real), ss.shares)
            runs.append(train_and_test(ss, g, "ratio", r, np.concatenate([train.crops, pool.images[pick]]),
                                       np.concatenate([train.labels, pool.labels[pick]]), len(pick)))
    if augmented is not None:
        images, labels = augmented
        for r in ratios:
            if r == 0:
                continue
            n = generated_count(r, n_real)
            runs.append(train_and_test(ss, "augment", "ratio", r, np.concatenate([train.crops, images[:n]]),
                                       np.concatenate([train.labels, labels[:n]]), n))
    return runs


def synthetic_runs(ss: SeedSet, synthetic_size: int, pools: dict[str, Pool]) -> list[Run]:
    """Train on generated crops only, test on real (train-on-synthetic / test-on-real)."""
    runs = []
    for g, pool in pools.items():
        pick = take_balanced(pool.labels, ss.classes, synthetic_size, ss.shares)
        runs.append(train_and_test(ss, g, "synthetic", -1.0, pool.images[pick], pool.labels[pick], len(pick)))
    return runs
