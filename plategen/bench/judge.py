"""The judge: a recogniser trained on all real crops outside the test plates, which reads the generated crops.

"Read as asked" is the share of generated crops the judge reads as the character they were asked
to be: over all generated classes, over the classes the judge has at least `JUDGE_MIN_CROPS`
real crops of, and for the SAAE also without synth's label check (the same plan, first draws only).
"""

from __future__ import annotations

import numpy as np

from plategen.bench.pools import Pool, take_balanced
from plategen.bench.runs import Run, SeedSet
from plategen.dataset import CharSamples
from plategen.recognizer import Recognizer, evaluate, train_recognizer

JUDGE_MIN_CROPS = 20  # "read as asked" on judge-known classes: classes with at least this many real crops


def judged(judge: Recognizer, ss: SeedSet, name: str, kind: str, images: np.ndarray, labels: np.ndarray,
           real_crops: int = 0, seconds: float = 0.0) -> Run:
    """The judge's reading of (images, labels) as one run: kind "judge", the judge itself on the real
    test crops (`real_crops`: what it trained on); any other kind, a generator's crops read as their
    asked class (counted as generated crops)."""
    with ss.timing("evaluation"):
        ev = evaluate(judge, images, labels, ss.train.charset)
    generated = 0 if kind == "judge" else len(labels)
    return Run.scored(ss.seed, name, kind, 0.0, real_crops, generated, ev, seconds)


def judge_runs(ss: SeedSet, judge_set: CharSamples, pools: dict[str, Pool], synthetic_size: int) -> list[Run]:
    """Train the judge on `judge_set`, score it on the test crops, then let it read every pool."""
    with ss.timing("recogniser_training"):
        judge = train_recognizer(judge_set.crops, judge_set.labels, len(ss.train.charset),
                                 ss.schedule, seed=ss.seed * 1000 + 999)
    runs = [judged(judge.model, ss, "judge", "judge", ss.test.crops, ss.test.labels, len(judge_set.labels),
                   judge.seconds)]
    ss.log(f"seed {ss.seed}: judge (all {len(judge_set.labels)} real crops outside the test plates) "
           f"acc={runs[0].accuracy:.4f}")
    counts = np.bincount(judge_set.labels, minlength=len(ss.train.charset))
    known = [c for c in ss.classes if counts[c] >= JUDGE_MIN_CROPS]
    for g, pool in pools.items():
        pick = take_balanced(pool.labels, ss.classes, synthetic_size, ss.shares)
        images, labels = pool.images[pick], pool.labels[pick]
        mask = np.isin(labels, known)
        runs.append(judged(judge.model, ss, g, "read_as_asked", images, labels))
        runs.append(judged(judge.model, ss, g, "read_as_asked_known", images[mask], labels[mask]))
        ss.log(f"seed {ss.seed}: {g} generated crops read as asked class: {runs[-2].accuracy:.4f} "
               f"({runs[-1].accuracy:.4f} on the {len(known)} classes the judge has >= {JUDGE_MIN_CROPS} crops of)")
        if pool.unchecked is not None:
            runs.append(judged(judge.model, ss, g, "read_as_asked_unchecked", pool.unchecked[pick], labels))
            ss.log(f"seed {ss.seed}: {g} without the label check: {runs[-1].accuracy:.4f}")
    return runs
