"""Which content glyphs should `synth` draw? Read-as-asked by glyph jitter, with and without the label check.

    python benchmarks/glyph_jitter.py [--data ../shared/data/uc3m-lp] [--per-class 60] [--seeds 1]

Per seed, the default benchmark's plate-disjoint split (`bench.split_for_seed`, 50
training plates, test plates the shipped model never saw): a judge recogniser is trained
on all real crops outside the test plates; the shipped model draws `--per-class` images of
every class the judge has at least `JUDGE_MIN_CROPS` crops of, in the style of the 50
training plates; the figure is the share the judge reads as the asked character. The
rows differ only in the synth glyph settings (and the label check, off unless named).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench import JUDGE_MIN_CROPS, split_for_seed  # noqa: E402
from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint  # noqa: E402
from plategen.dataset import build_samples, charset_of  # noqa: E402
from plategen.glyphs import JitterRange  # noqa: E402
from plategen.plates import load_plates, read_image  # noqa: E402
from plategen.recognizer import Schedule, evaluate, train_recognizer  # noqa: E402
from plategen.synth import Diversity, generate_arrays  # noqa: E402

JITTERED = 64  # the jittered glyphs per label synth drew before clean glyphs became the default
NONE = JitterRange(scale=(1.0, 1.0), shift=0.0, angle=0.0, stroke=(0, 0))
VARIANTS = {  # name: (diversity, label check)
    f"{JITTERED} jittered glyphs per label (scale, shift, rotation, stroke)": (
        Diversity(jittered_glyphs=JITTERED), False),
    "... shift only": (Diversity(jittered_glyphs=JITTERED, jitter=replace(NONE, shift=JitterRange().shift)), False),
    "... stroke only": (Diversity(jittered_glyphs=JITTERED, jitter=replace(NONE, stroke=JitterRange().stroke)), False),
    "... scale only": (Diversity(jittered_glyphs=JITTERED, jitter=replace(NONE, scale=JitterRange().scale)), False),
    "... rotation only": (Diversity(jittered_glyphs=JITTERED, jitter=replace(NONE, angle=JitterRange().angle)), False),
    "clean glyphs, one per font (the default)": (Diversity(), False),
    "clean glyphs + label check (the default synth)": (Diversity(), True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "uc3m-lp")
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, GPU none used, torch {torch.__version__}")
    plates = load_plates(args.data).plates
    charset = charset_of(plates)
    samples = build_samples(plates, charset)
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    seen = set(model.meta.get("plate_sha256") or [])
    scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for seed in range(args.seeds):
        split = split_for_seed(plates, 50, 400, seed, seen)
        judge_set = samples.subset(sorted(set(range(len(plates))) - set(split.test)))
        judge = train_recognizer(judge_set.crops, judge_set.labels, len(charset), Schedule(), seed=seed * 1000 + 999)
        counts = np.bincount(judge_set.labels, minlength=len(charset))
        chars = [c for c, k in zip(charset, counts) if k >= JUDGE_MIN_CROPS and c in model.meta["charset"]]
        styles = [read_image(plates[i].image_path) for i in split.train]
        for name, (diversity, check) in VARIANTS.items():
            images, idx = generate_arrays(model, styles, chars, args.per_class * len(chars), seed=1,
                                          diversity=diversity, check=check)
            labels = np.array([charset.index(chars[i]) for i in idx])
            scores[name].append(evaluate(judge.model, images, labels, charset).accuracy)
        test = samples.subset(split.test)
        judged = evaluate(judge.model, test.crops, test.labels, charset).accuracy
        print(f"seed {seed}: judge on real test crops {judged:.3f}; "
              f"{len(chars)} classes x {args.per_class} images per row")
    print("\n| synth glyphs | read as asked (%) |\n|---|---|")
    for name, values in scores.items():
        spread = f" ± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
        print(f"| {name} | {100 * np.mean(values):.1f}{spread} |")


if __name__ == "__main__":
    main()
