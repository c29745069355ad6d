"""Plate recogniser runs of one seed: real only, real + r x generated plates per generator, real + r x
augmented real plates, generated only; and the judge, trained on all real plates outside the test plates.

Every recogniser of a seed has the same `PlateSchedule`, initialisation and batch seed; only its
training set differs. Each is scored on the seed's real test plates: plate accuracy (every
character right) and character accuracy (1 - CER).

A seed's recognisers are `PlateJob`s: each trains and scores in a worker process (`workers.Trainings`),
carrying every array it needs and returning plain `PlateRun`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from plategen.bench.plate_pools import PlatePool
from plategen.bench.pools import generated_count
from plategen.recognizer import PlateEvaluation, PlateSchedule, evaluate_plates, train_plate_recognizer

# recogniser_training: the time spent waiting for the recognisers (trained and scored in workers,
# while this process draws the next seed's plates)
PLATE_TIMING_PARTS = ("import", "styles", "generator_training", "generation", "augmentation", "recogniser_training")


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
    train_centres: list[np.ndarray]  # their characters' box centres (`recognizer.box_centres`)
    test: np.ndarray
    test_texts: list[str]
    alphabet: str
    schedule: PlateSchedule


@dataclass
class PlateRead:
    """Plates a trained recogniser reads as the texts they were asked to show (the judge on a pool)."""

    name: str
    kind: str  # read_as_asked | read_as_asked_unchecked
    images: np.ndarray
    texts: list[str]


@dataclass
class PlateJob:
    """One recogniser to train on (x, texts) and score on the seed's test plates, then on each of `reads`."""

    ps: PlateSeedSet
    name: str
    kind: str  # ratio | synthetic | judge
    ratio: float
    x: np.ndarray
    texts: list[str]
    centres: list[np.ndarray]
    generated: int
    init_seed: int
    reads: list[PlateRead] = field(default_factory=list)


def run_plate_job(job: PlateJob) -> list[PlateRun]:
    """Train the job's recogniser (its accuracy-vs-steps curve on the test plates), score it: its own run
    (with its training seconds), then one run per read."""
    ps = job.ps
    trained = train_plate_recognizer(job.x, job.texts, ps.alphabet, ps.schedule, seed=job.init_seed,
                                     curve_set=(ps.test, ps.test_texts), centres=job.centres)
    runs = [PlateRun.scored(ps.seed, job.name, job.kind, job.ratio, len(job.x) - job.generated, job.generated,
                            evaluate_plates(trained, ps.test, ps.test_texts), trained.seconds, trained.curve)]
    runs += [PlateRun.scored(ps.seed, r.name, r.kind, 0.0, 0, len(r.texts), evaluate_plates(trained, r.images, r.texts))
             for r in job.reads]
    return runs


def job_log(runs: list[PlateRun]) -> str:
    """The log line(s) of a finished job."""
    own, reads = runs[0], runs[1:]
    if own.kind != "judge":
        return (f"seed {own.seed}: {own.name:8s} {own.kind:9s} r={own.ratio:g} real={own.real_plates} "
                f"gen={own.generated_plates} plate={own.accuracy:.4f} char={own.char_accuracy:.4f} "
                f"({own.seconds:.1f} s)")
    lines = [f"seed {own.seed}: judge (all {own.real_plates} real plates outside the test plates) "
             f"plate={own.accuracy:.4f} char={own.char_accuracy:.4f} ({own.seconds:.1f} s)"]
    for r in reads:
        if r.kind == "read_as_asked":
            lines.append(f"seed {own.seed}: {r.name} plates read exactly as asked by the judge: {r.accuracy:.4f}")
        else:
            lines[-1] += f" ({r.accuracy:.4f} without the label check)"
    return "\n".join(lines)


def plate_ratio_jobs(ps: PlateSeedSet, ratios: Sequence[float], pools: dict[str, PlatePool],
                     augmented: PlatePool | None) -> list[PlateJob]:
    """Real only, then real + r x each generator's plates, then real + r x augmented real plates;
    the generated plates of ratio r are the first round(r x N) of the seed's pool."""
    n_real = len(ps.train)
    jobs = [PlateJob(ps, "real", "ratio", 0.0, ps.train, ps.train_texts, ps.train_centres, 0, ps.seed * 1000)]
    extra = dict(pools)
    if augmented is not None:
        extra["augment"] = augmented
    for g, pool in extra.items():
        for r in ratios:
            if r == 0:
                continue
            n = generated_count(r, n_real)
            jobs.append(PlateJob(ps, g, "ratio", r, np.concatenate([ps.train, pool.images[:n]]),
                                 ps.train_texts + pool.texts[:n], ps.train_centres + pool.centres[:n], n,
                                 ps.seed * 1000))
    return jobs


def plate_synthetic_jobs(ps: PlateSeedSet, synthetic_size: int, pools: dict[str, PlatePool]) -> list[PlateJob]:
    """Train on generated plates only (the real training plates were only their styles), test on real."""
    return [PlateJob(ps, g, "synthetic", -1.0, pool.images[:synthetic_size], pool.texts[:synthetic_size],
                     pool.centres[:synthetic_size], min(synthetic_size, len(pool.texts)), ps.seed * 1000)
            for g, pool in pools.items()]


def plate_judge_job(ps: PlateSeedSet, judge: PlatePool, pools: dict[str, PlatePool], synthetic_size: int) -> PlateJob:
    """The judge (all real plates outside the test plates: real only at --real-plates all, the ceiling)
    on the real test plates, then reading each pool's plates as the texts they were asked to show."""
    reads = []
    for g, pool in pools.items():
        n = min(synthetic_size, len(pool.texts))
        reads.append(PlateRead(g, "read_as_asked", pool.images[:n], pool.texts[:n]))
        if pool.unchecked is not None:
            reads.append(PlateRead(g, "read_as_asked_unchecked", pool.unchecked[:n], pool.texts[:n]))
    return PlateJob(ps, "judge", "judge", 0.0, judge.images, judge.texts, judge.centres, 0, ps.seed * 1000 + 999,
                    reads)
