"""Read as asked by an outside reader: do two checkpoints draw the asked characters on held-out designs?

    OMP_NUM_THREADS=1 python benchmarks/read_as_asked.py --checkpoint A.safetensors --checkpoint B.safetensors

Each model's label check reads with its own discriminator, so label-check failure rates of two
models are read by different readers. This script reads both with one judge: a character
recogniser trained on the real crops of the train-side plates of all three sources
(`dataset.is_holdout` false; the shipped models trained on the same side), with its accuracy on
the held-out plates' real crops beside it. Per source, each checkpoint draws `--per-class`
characters of every class the judge has at least `JUDGE_MIN_CROPS` crops of from that source, in
the style of `--styles` held-out plates, exactly as `plategen synth` does (label check on); the
figure is the share the judge reads as the asked character, and the characters read worst.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench import JUDGE_MIN_CROPS  # noqa: E402
from plategen.checkpoint import load_checkpoint  # noqa: E402
from plategen.dataset import build_samples, charset_of, is_holdout  # noqa: E402
from plategen.plates import load_plates, read_image  # noqa: E402
from plategen.recognizer import Schedule, evaluate, train_recognizer  # noqa: E402
from plategen.synth import generate_arrays  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SOURCES = ("uc3m-lp", "ccpd-crops", "openalpr-us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--styles", type=int, default=40, help="held-out style plates per source")
    parser.add_argument("--judge-steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=SOURCES,
                        help="sources whose held-out plates are drawn and read (the judge trains on all three)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, GPU none used, torch {torch.__version__}")
    start = time.perf_counter()
    plates = {s: load_plates(args.data / s).plates for s in SOURCES}
    charset = charset_of(p for ps in plates.values() for p in ps)
    train = {s: [p for p in ps if not is_holdout(p)] for s, ps in plates.items()}
    held = {s: [p for p in ps if is_holdout(p)] for s, ps in plates.items()}
    train_samples = build_samples([p for ps in train.values() for p in ps], charset)
    held_samples = build_samples([p for ps in held.values() for p in ps], charset)
    judge = train_recognizer(train_samples.crops, train_samples.labels, len(charset),
                             Schedule(steps=args.judge_steps), seed=args.seed + 999).model
    on_real = evaluate(judge, held_samples.crops, held_samples.labels, charset).accuracy
    print(f"judge: {len(train_samples.labels)} train-side crops, {len(charset)} classes; "
          f"{100 * on_real:.1f}% of {len(held_samples.labels)} held-out real crops")
    models = {path: load_checkpoint(path) for path in args.checkpoint}
    table = Table(title=f"read as asked by the judge (%), {args.per_class} per character, "
                        f"label check on, {args.styles} held-out styles per source")
    table.add_column("source")
    table.add_column("judge on real held-out crops")
    for path in models:
        table.add_column(path.name)
    rng = np.random.default_rng(args.seed)
    for source in args.sources:
        counts = np.bincount(build_samples(train[source], charset).labels, minlength=len(charset))
        chars = [c for c, k in zip(charset, counts) if k >= JUDGE_MIN_CROPS]
        picked = rng.choice(len(held[source]), min(args.styles, len(held[source])), replace=False)
        styles = [read_image(held[source][i].image_path) for i in sorted(picked)]
        own = build_samples(held[source], chars)
        real = evaluate(judge, own.crops, np.array([charset.index(chars[i]) for i in own.labels]), charset)
        cells = [source, f"{100 * real.accuracy:.1f}"]
        for path, model in models.items():
            images, idx = generate_arrays(model, styles, chars, args.per_class * len(chars), seed=args.seed + 1)
            read = evaluate(judge, images, np.array([charset.index(chars[i]) for i in idx]), charset)
            worst = sorted(read.per_class.items(), key=lambda kv: kv[1].accuracy)[:4]
            worst_text = " ".join(f"{c} {100 * s.accuracy:.0f}" for c, s in worst)
            cells.append(f"{100 * read.accuracy:.1f} (worst: {worst_text})")
            scripts = " ".join(f"{c} {100 * s.accuracy:.0f}" for c, s in read.per_class.items() if not c.isascii())
            print(f"{source} {path.name}: {100 * read.accuracy:.1f}% of {len(idx)} ({len(chars)} characters); "
                  f"worst {worst_text}" + (f"; provinces {scripts}" if scripts else ""))
        table.add_row(*cells)
    Console().print(table)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
