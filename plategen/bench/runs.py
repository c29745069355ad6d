"""Recogniser runs of one seed: real only, real + r x generated per generator, real + r x augmentation, synthetic only.

Every recogniser of a seed has the same `Schedule`, initialisation and batch seed; only its
training set differs. Each is evaluated on the seed's real test crops. Each recogniser is a
`CharJob` that trains and scores in a worker process (`workers.Trainings`), carrying every array it
needs and returning plain `Run`s.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from plategen.bench.pools import Pool, generated_count, take_balanced
from plategen.bench.request import BenchmarkRequest
from plategen.dataset import CharSamples
from plategen.recognizer import Evaluation, Schedule, evaluate, train_recognizer

# recogniser_training: the time spent waiting for the recognisers (trained and scored in workers,
# while this process draws the next seed's crops)
TIMING_PARTS = ("import", "crops", "generator_training", "generation", "augmentation", "recogniser_training")


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


def trainings_per_seed(req: BenchmarkRequest, generators: int) -> int:
    """Recognisers one seed trains (either level): real only, each generator and augment at each
    ratio > 0, each generator's data only, and the judge."""
    ratios = sum(r > 0 for r in req.ratios)
    return 1 + (generators + (1 if req.augment_reference else 0)) * ratios + generators + 1


@dataclass
class SeedTest:
    """What every recogniser job of a seed carries to its worker: the real test crops and the schedule."""

    seed: int
    crops: np.ndarray
    labels: np.ndarray
    charset: list[str]
    schedule: Schedule


@dataclass
class CharRead:
    """Crops a trained recogniser reads as the class they were asked to be (the judge on a pool)."""

    name: str
    kind: str  # read_as_asked | read_as_asked_known | read_as_asked_unchecked
    images: np.ndarray
    labels: np.ndarray


@dataclass
class CharJob:
    """One recogniser to train on (x, y) and score on the seed's test crops, then on each of `reads`."""

    test: SeedTest
    name: str
    kind: str  # ratio | synthetic | judge
    ratio: float
    x: np.ndarray
    y: np.ndarray
    generated: int
    init_seed: int
    reads: list[CharRead] = field(default_factory=list)


def run_char_job(job: CharJob) -> list[Run]:
    """Train the job's recogniser (with its accuracy-vs-steps curve, except the judge's), score it on the
    real test crops as its own run, then one run per read."""
    t = job.test
    trained = train_recognizer(job.x, job.y, len(t.charset), t.schedule, seed=job.init_seed,
                               curve_set=None if job.kind == "judge" else (t.crops, t.labels))
    runs = [Run.scored(t.seed, job.name, job.kind, job.ratio, len(job.x) - job.generated, job.generated,
                       evaluate(trained.model, t.crops, t.labels, t.charset), trained.seconds, trained.curve)]
    runs += [Run.scored(t.seed, r.name, r.kind, 0.0, 0, len(r.labels),
                        evaluate(trained.model, r.images, r.labels, t.charset)) for r in job.reads]
    return runs


def char_job_log(runs: list[Run]) -> str:
    """The log line(s) of a finished job."""
    own, reads = runs[0], runs[1:]
    if own.kind != "judge":
        return (f"seed {own.seed}: {own.name:8s} {own.kind:9s} r={own.ratio:g} real={own.real_crops} "
                f"gen={own.generated_crops} acc={own.accuracy:.4f} ({own.seconds:.1f} s)")
    lines = [f"seed {own.seed}: judge (all {own.real_crops} real crops outside the test plates) "
             f"acc={own.accuracy:.4f} ({own.seconds:.1f} s)"]
    for r in reads:
        if r.kind == "read_as_asked":
            lines.append(f"seed {own.seed}: {r.name} generated crops read as asked class: {r.accuracy:.4f}")
        elif r.kind == "read_as_asked_known":
            lines[-1] += f" ({r.accuracy:.4f} on the {len(r.per_class)} classes the judge has enough real crops of)"
        else:
            lines.append(f"seed {own.seed}: {r.name} without the label check: {r.accuracy:.4f}")
    return "\n".join(lines)


def seed_test(ss: SeedSet) -> SeedTest:
    return SeedTest(ss.seed, ss.test.crops, ss.test.labels, ss.train.charset, ss.schedule)


def ratio_jobs(ss: SeedSet, ratios: Sequence[float], pools: dict[str, Pool],
               augmented: tuple[np.ndarray, np.ndarray] | None) -> list[CharJob]:
    """Real only, then real + r x each generator's crops, then real + r x augmented real crops."""
    train, n_real, test = ss.train, len(ss.train.labels), seed_test(ss)

    def job(name: str, ratio: float, images: np.ndarray, labels: np.ndarray) -> CharJob:
        return CharJob(test, name, "ratio", ratio, np.concatenate([train.crops, images]),
                       np.concatenate([train.labels, labels]), len(labels), ss.seed * 1000)

    jobs = [job("real", 0.0, train.crops[:0], train.labels[:0])]
    for g, pool in pools.items():
        for r in ratios:
            if r > 0:
                pick = take_balanced(pool.labels, ss.classes, generated_count(r, n_real), ss.shares)
                jobs.append(job(g, r, pool.images[pick], pool.labels[pick]))
    if augmented is not None:
        images, labels = augmented
        for r in ratios:
            if r > 0:
                n = generated_count(r, n_real)
                jobs.append(job("augment", r, images[:n], labels[:n]))
    return jobs


def synthetic_jobs(ss: SeedSet, synthetic_size: int, pools: dict[str, Pool]) -> list[CharJob]:
    """Train on generated crops only, test on real (train-on-synthetic / test-on-real)."""
    jobs = []
    for g, pool in pools.items():
        pick = take_balanced(pool.labels, ss.classes, synthetic_size, ss.shares)
        jobs.append(CharJob(seed_test(ss), g, "synthetic", -1.0, pool.images[pick], pool.labels[pick], len(pick),
                            ss.seed * 1000))
    return jobs
