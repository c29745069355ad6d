"""The judge: a recogniser trained on all real crops outside the test plates, which reads the generated crops.

"Read as asked" is the share of generated crops the judge reads as the character they were asked
to be: over all generated classes, over the classes the judge has at least `JUDGE_MIN_CROPS`
real crops of, and for the SAAE also without synth's label check (the same plan, first draws only).
"""

from __future__ import annotations

import numpy as np

from plategen.bench.pools import Pool, take_balanced
from plategen.bench.runs import CharJob, CharRead, SeedSet, seed_test
from plategen.dataset import CharSamples

JUDGE_MIN_CROPS = 20  # "read as asked" on judge-known classes: classes with at least this many real crops


def judge_job(ss: SeedSet, judge_set: CharSamples, pools: dict[str, Pool], synthetic_size: int) -> CharJob:
    """The judge on `judge_set`, scored on the test crops, then reading every pool's crops."""
    counts = np.bincount(judge_set.labels, minlength=len(ss.train.charset))
    known = [c for c in ss.classes if counts[c] >= JUDGE_MIN_CROPS]
    reads = []
    for g, pool in pools.items():
        pick = take_balanced(pool.labels, ss.classes, synthetic_size, ss.shares)
        images, labels = pool.images[pick], pool.labels[pick]
        mask = np.isin(labels, known)
        reads += [CharRead(g, "read_as_asked", images, labels),
                  CharRead(g, "read_as_asked_known", images[mask], labels[mask])]
        if pool.unchecked is not None:
            reads.append(CharRead(g, "read_as_asked_unchecked", pool.unchecked[pick], labels))
    return CharJob(seed_test(ss), "judge", "judge", 0.0, judge_set.crops, judge_set.labels, 0, ss.seed * 1000 + 999,
                   reads)
