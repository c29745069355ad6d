"""Adaptation: does `plategen train --preset finetune` teach a trained model a plate design it never saw?

    OMP_NUM_THREADS=1 python benchmarks/adaptation.py --base BASE.safetensors --out /tmp/adapt/run

BASE must not have trained on `--source` (for example a model trained on uc3m-lp and ccpd-crops
only: `plategen train --data ../shared/data/uc3m-lp --data ../shared/data/ccpd-crops --steps 6000`).
The user's plates are `--plates` plates of `--source`: that many times 0.8 from its train side
(`dataset.is_holdout` false) and the rest from its held-out side (the fine-tune holds out about 20%
of them by its own split, as it would for a user's folder). The test plates are the source's other
held-out plates: no model here trained on them, the shipped one included. Both folders are written
under `--out` in the source's own format.

`--dev` chooses a recipe without touching those test plates: the user's plates and 150 test plates
are drawn from the source's train side (which BASE never saw either), the reference is skipped (it
trained on them), and `--set KEY=VALUE` (repeatable) overrides a `TrainOptions` field of the preset,
for example `--set adv_weight=0.0` or `--set more_steps=300`.

It fine-tunes BASE on the user's plates with the preset (timed), then runs the benchmark of each
of `--levels` (`plategen benchmark --level chars|plates`: the user's plates as the real training
plates, the test folder as `--test`, ratios 0 and 4, SAAE only) for BASE, the fine-tuned model and `--reference` (default:
the shipped model, which trained on the source's train side: its figure is "the gain on its own
designs"). Read as asked by an outside judge is `benchmarks/read_as_asked.py --sources SOURCE`
on the checkpoints this prints.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench import BenchmarkRequest, level_options, run_benchmark  # noqa: E402
from plategen.bench.splits import drop_test_plates  # noqa: E402
from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint  # noqa: E402
from plategen.dataset import is_holdout  # noqa: E402
from plategen.errors import PlategenError  # noqa: E402
from plategen.plates import Plate, load_plates  # noqa: E402
from plategen.train import TrainOptions, options_for, train_saae  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def write_subset(source: Path, plates: list[Plate], out: Path) -> Path:
    """`plates` of an openalpr-style folder (labels.csv + images/) as a folder of their own."""
    names = {p.image_path.name for p in plates}
    (out / "images").mkdir(parents=True)
    with open(source / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if Path(r["image_path"]).name in names]
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    for row in kept:
        shutil.copy2(source / row["image_path"], out / row["image_path"])
    return out


def write_replay(data: Path, sources: list[str], n: int, seed: int, out: Path) -> list[Path]:
    """`n` train-side plates (`dataset.is_holdout` false), split evenly over `sources`, copied into folders of their
    own in each source's format (YOLO: images, labels and classes.txt; a folder of images named by their text): the
    replay that a fine-tune mixes in with the user's plates (`--replay`)."""
    rng = np.random.default_rng([seed, 11])
    folders = []
    for i, name in enumerate(sources):
        source = data / name
        plates = [p for p in load_plates(source).plates if not is_holdout(p)]
        take = min(n // len(sources) + (i < n % len(sources)), len(plates))
        chosen = [plates[j] for j in sorted(rng.choice(len(plates), take, replace=False))]
        folder = out / f"replay-{name}"
        if (source / "labels.csv").is_file():  # a CSV source: its rows, not its images' names, hold the texts
            write_subset(source, chosen, folder)
            folders.append(folder)
            continue
        (folder / "images").mkdir(parents=True)
        labels = source / "labels"
        if labels.is_dir():
            (folder / "labels").mkdir()
            shutil.copy2(source / "classes.txt", folder / "classes.txt")
        for plate in chosen:
            shutil.copy2(plate.image_path, folder / "images" / plate.image_path.name)
            if labels.is_dir():
                label = plate.image_path.with_suffix(".txt").name
                shutil.copy2(labels / label, folder / "labels" / label)
        folders.append(folder)
    return folders


def split_plates(plates: list[Plate], n: int, seed: int) -> tuple[list[Plate], list[Plate]]:
    """The user's `n` plates (80% train side, 20% held-out side) and the test plates (the rest of the held-out side)."""
    rng = np.random.default_rng(seed)
    train_side = [p for p in plates if not is_holdout(p)]
    held_side = [p for p in plates if is_holdout(p)]
    n_held = round(0.2 * n)
    user_held = [held_side[i] for i in sorted(rng.choice(len(held_side), n_held, replace=False))]
    user_train = [train_side[i] for i in sorted(rng.choice(len(train_side), n - n_held, replace=False))]
    test = [p for p in held_side if p not in user_held]
    return user_train + user_held, test


def dev_split(plates: list[Plate], n: int, seed: int, tests: int = 150) -> tuple[list[Plate], list[Plate]]:
    """The user's `n` plates and `tests` test plates, both from the train side (`--dev`)."""
    train_side = [p for p in plates if not is_holdout(p)]
    order = np.random.default_rng(seed).permutation(len(train_side))
    return [train_side[i] for i in sorted(order[:n])], [train_side[i] for i in sorted(order[n:n + tests])]


def parse_setting(text: str) -> tuple[str, object]:
    """'adv_weight=0.0' -> ('adv_weight', 0.0): a `TrainOptions` field and a Python literal."""
    key, _, value = text.partition("=")
    if key not in TrainOptions.__dataclass_fields__ or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE with a TrainOptions field")
    return key, ast.literal_eval(value)


def benchmark(level: str, checkpoint: Path, user: Path, test: Path, out: Path, seeds: int, workers: int) -> dict:
    """`plategen benchmark --level LEVEL` with the user's plates as the real training plates and `test` as --test."""
    req = BenchmarkRequest(data=user, test=test, checkpoint=checkpoint, out=out, ratios=(0.0, 4.0), seeds=seeds,
                           generators=("saae",), augment_reference=False,
                           command=f"benchmarks/adaptation.py -> {checkpoint.name}, level {level}",
                           **level_options(level, None, None, None, None, threads=1, workers=workers))
    summary = run_benchmark(req).report.summary
    return {"real_only": summary.real_only, "ratio4": summary.accuracy_vs_ratio["saae"]["4"],
            "synthetic_only": summary.synthetic_only["saae"], "read_as_asked_by_user_judge": summary.read_as_asked["saae"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a model that never trained on --source")
    parser.add_argument("--reference", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--source", default="openalpr-us")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--plates", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3, help="benchmark seeds")
    parser.add_argument("--levels", type=lambda text: tuple(text.split(",")), default=("chars",),
                        help="benchmark levels to run: chars, plates or chars,plates")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the fine-tune")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev", action="store_true", help="user and test plates from the train side; no reference")
    parser.add_argument("--set", type=parse_setting, action="append", default=[], dest="settings",
                        metavar="FIELD=VALUE", help="override a TrainOptions field of the finetune preset")
    parser.add_argument("--replay", type=int, default=0, help="mix this many of the base's own training plates "
                        "(train side of --replay-sources) into the fine-tune's data")
    parser.add_argument("--replay-sources", type=lambda text: text.split(","), default=["uc3m-lp", "ccpd-crops"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if set(args.levels) - {"chars", "plates"}:
        sys.exit(f"--levels {','.join(args.levels)}: choose chars, plates or chars,plates")
    if args.replay and args.source in args.replay_sources:  # its replayed plates could be the test plates
        sys.exit(f"--replay-sources: holds --source {args.source}; replay the base's own sources only")
    if args.out.exists():
        sys.exit(f"{args.out}: exists; give a new folder")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    base_meta = load_checkpoint(args.base).meta
    source = args.data / args.source
    plates = load_plates(source).plates
    if set(base_meta.get("plate_sha256", [])) & {p.sha256 for p in plates}:
        sys.exit(f"{args.base}: trained on plates of {source}; give a model that never saw them")
    user_plates, test_plates = (dev_split if args.dev else split_plates)(plates, args.plates, args.seed)
    # a test plate that shows a user plate (the same text and state: openalpr-us has several ANYTEXT plates) is the
    # fine-tuned model's training plate to the benchmark's leakage guard, which refused the run
    test_plates = drop_test_plates(test_plates, user_plates)[0]
    user = write_subset(source, user_plates, args.out / "user-plates")
    test = write_subset(source, test_plates, args.out / "test-plates")
    print(f"{len(user_plates)} user plates -> {user}; {len(test_plates)} test plates -> {test}")

    replay = write_replay(args.data, args.replay_sources, args.replay, args.seed, args.out) if args.replay else []
    tuned = args.out / "finetuned.safetensors"
    started = time.perf_counter()
    result = train_saae([user, *replay], tuned, options_for("finetune", num_threads=args.threads, **dict(args.settings)), resume=args.base)
    minutes = (time.perf_counter() - started) / 60
    print(f"fine-tune: {result.steps - base_meta['step']} steps on {result.plates} plates ({args.replay} replayed) ({result.crops} crops) "
          f"in {minutes:.1f} min, {args.threads} thread(s); sample grids in {result.samples[-1].parent}")

    models = (("base", args.base), ("finetuned", tuned)) + (() if args.dev else (("reference", args.reference),))
    figures = {level: {name: benchmark(level, checkpoint, user, test, args.out / f"bench-{level}-{name}", args.seeds,
                                       args.workers) for name, checkpoint in models} for level in args.levels}
    for level, rows in figures.items():
        side = "train-side (dev)" if args.dev else "held-out"
        table = Table(title=f"{level} benchmark on {len(test_plates)} {side} {args.source} plates, "
                            f"{len(user_plates)} user plates, {args.seeds} seeds (% of {level} read right)")
        for column in ("model", "real only", "real + 4x SAAE", "gain", "SAAE only", "read as asked (user-plate judge)"):
            table.add_column(column)
        for name, f in rows.items():
            gain = f["ratio4"].mean - f["real_only"].mean
            table.add_row(name, *(f"{100 * s.mean:.1f} ± {100 * s.std:.1f}" for s in
                                  (f["real_only"], f["ratio4"])), f"{100 * gain:+.1f}",
                          *(f"{100 * s.mean:.1f} ± {100 * s.std:.1f}" for s in
                            (f["synthetic_only"], f["read_as_asked_by_user_judge"])))
        Console().print(table)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "finetune_minutes": minutes,
              "finetune_steps": result.steps - base_meta["step"], "user_plates": [str(p.image_path) for p in user_plates],
              "figures": {level: {n: {k: vars(v) for k, v in f.items()} for n, f in rows.items()}
                         for level, rows in figures.items()}}
    (args.out / "adaptation.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"report: {args.out / 'adaptation.json'}; outside judge: python benchmarks/read_as_asked.py "
          f"--sources {args.source} --checkpoint {args.base} --checkpoint {tuned} --checkpoint {args.reference}")


if __name__ == "__main__":
    try:
        main()
    except PlategenError as error:
        sys.exit(f"error: {error}")
