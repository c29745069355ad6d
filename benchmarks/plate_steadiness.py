"""How steadily the plate recogniser leaves the CTC plateau on the plate benchmark's own training sets (issue 11).

    python benchmarks/plate_steadiness.py [--seeds 3] [--inits 1] [--sets synthetic ratio4]
        [--variant '{"warmup": 0.1}' ...] [--workers 2] [--cache DIR]

With CTC alone, the spread of `plategen benchmark --level plates` over seeds came from when each
recogniser left the CTC plateau (all blanks): early, it read 40-60% of plates; late, a few percent
(the per-column loss of `PlateSchedule.frame` was chosen with this script). It compares recogniser settings on exactly the benchmark's training sets without looking at its test
plates. Per benchmark seed (uc3m-lp, the default split: 50 real training plates), the SAAE plates are
drawn as the benchmark draws them (with the shipped checkpoint; cached in --cache), and the
validation plates are 300 real plates outside the seed's test and training plates. Sets:
`synthetic` (the first 1,000 SAAE plates alone) and `ratio4` (the 50 real plates + 200 SAAE plates).
Each variant (a JSON object of `PlateSchedule` fields over the benchmark's default; `{}` is the
default) trains once per seed and init (`--inits`), and the script prints its validation plate
accuracy at 8 points of training and at the end, then mean, sd and minimum per set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see plate_recognizer.py
import multiprocessing  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench.plate_benchmark import draw_plate_pools  # noqa: E402
from plategen.bench.plate_pools import as_input, real_images  # noqa: E402
from plategen.bench.plate_runs import PLATE_TIMING_PARTS, PlateSeedSet  # noqa: E402
from plategen.bench.pools import open_generators  # noqa: E402
from plategen.bench.request import DEFAULT_PLATE_SCHEDULE, BenchmarkRequest, level_options  # noqa: E402
from plategen.bench.runs import Timing  # noqa: E402
from plategen.bench.splits import judge_plates, plan_splits  # noqa: E402
from plategen.dataset import charset_of  # noqa: E402
from plategen.glyphs import shipped_fonts  # noqa: E402
from plategen.plates import load_plates  # noqa: E402
from plategen.recognizer import evaluate_plates, train_plate_recognizer  # noqa: E402

VALIDATION_PLATES = 300
SETS = ("synthetic", "ratio4")


def draw_seed_sets(data: Path, seeds: int, cache: Path) -> None:
    """The benchmark's seed sets (real training plates, SAAE plates, validation plates) into `cache`."""
    req = BenchmarkRequest(data=data, generators=("saae",), **level_options("plates", None, None, None, None, 1, 1))
    imported = load_plates(req.data)
    plates = imported.plates + imported.text_only
    charset = charset_of(plates)
    fonts = shipped_fonts()
    gens = open_generators(req, charset, fonts)
    splits, _ = plan_splits(req, plates, None, gens.seen)
    size = req.plate_schedule.input_size
    for split in splits[:seeds]:
        path = cache / f"seed{split.seed}.npz"
        if path.exists():
            continue
        train = [plates[i] for i in split.train]
        rest = sorted(set(judge_plates(split, len(plates), False)) - set(split.train))
        validation = [plates[i] for i in np.random.default_rng(99).choice(rest, VALIDATION_PLATES, replace=False)]
        images = real_images(train)
        real, centres = as_input(images, [p.boxes for p in train], size)
        ps = PlateSeedSet(split.seed, real, [p.text for p in train], centres, np.empty((0, *size, 3), np.uint8), [],
                          "".join(charset), req.plate_schedule)
        chars = [c for c in gens.drawable if c in set("".join(ps.train_texts))]
        pools, _, _ = draw_plate_pools(req, ps, train, chars, charset, gens, fonts, Timing(PLATE_TIMING_PARTS),
                                       lambda msg: print(msg, flush=True))
        saae = pools["saae"]
        np.savez(path, real=ps.train, real_texts=ps.train_texts, real_centres=padded(ps.train_centres),
                 saae=saae.images, saae_texts=saae.texts, saae_centres=padded(saae.centres),
                 validation=as_input(real_images(validation), [p.boxes for p in validation], size)[0], validation_texts=[p.text for p in validation],
                 alphabet="".join(charset))


def padded(centres: list[np.ndarray]) -> np.ndarray:
    """[N, 16, 2] with NaN after each plate's own centres: one array for the cache."""
    out = np.full((len(centres), 16, 2), np.nan, np.float32)
    for row, c in zip(out, centres):
        row[:len(c)] = c
    return out


def unpadded(centres: np.ndarray) -> list[np.ndarray]:
    return [row[~np.isnan(row[:, 0])] for row in centres]


def train_one(task: tuple[str, str, Path, int]) -> dict:
    variant, name, path, init = task
    torch.set_num_threads(1)
    d = np.load(path)
    real, real_texts = d["real"], list(d["real_texts"])
    saae, saae_texts = d["saae"], list(d["saae_texts"])
    real_c, saae_c = unpadded(d["real_centres"]), unpadded(d["saae_centres"])
    if name == "synthetic":
        x, texts, centres = saae[:1000], saae_texts[:1000], saae_c[:1000]
    else:
        n = 4 * len(real)
        x, texts, centres = np.concatenate([real, saae[:n]]), real_texts + saae_texts[:n], real_c + saae_c[:n]
    schedule = replace(DEFAULT_PLATE_SCHEDULE, **json.loads(variant))
    seed = int(path.stem.removeprefix("seed"))
    cpu = time.process_time()
    trained = train_plate_recognizer(x, texts, str(d["alphabet"]), schedule, seed=seed * 1000 + init,
                                     curve_set=(d["validation"], list(d["validation_texts"])), centres=centres)
    ev = evaluate_plates(trained, d["validation"], list(d["validation_texts"]))
    return dict(variant=variant, set=name, seed=seed, init=init, plate=ev.plate_accuracy, char=ev.char_accuracy,
                curve=[round(a, 2) for _, a in trained.curve], cpu=time.process_time() - cpu,
                loss=[round(float(np.mean(trained.losses[i:i + 100])), 2) for i in range(0, len(trained.losses), 200)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "uc3m-lp")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--inits", type=int, default=1, help="recogniser initialisations per seed")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--variant", nargs="+", default=["{}"], help="JSON objects of PlateSchedule fields")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/plategen-steadiness"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    draw_seed_sets(args.data, args.seeds, args.cache)
    paths = sorted(args.cache.glob("seed*.npz"))[:args.seeds]
    tasks = [(v, s, p, i) for v in args.variant for s in args.sets for p in paths for i in range(args.inits)]
    print(f"{len(tasks)} trainings on {args.workers} workers; load {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for r in pool.map(train_one, tasks):
            results.append(r)
            print(f"{r['variant']} {r['set']} seed {r['seed']} init {r['init']}: plate {r['plate']:.3f} "
                  f"char {r['char']:.3f} curve {r['curve']} loss {r['loss']} ({r['cpu']:.0f} s CPU)", flush=True)
    print("\n| variant | set | validation plate accuracy | sd | min | char accuracy | CPU s / training |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for v in args.variant:
        for s in args.sets:
            rs = [r for r in results if r["variant"] == v and r["set"] == s]
            plate = [r["plate"] for r in rs]
            print(f"| {v} | {s} | {np.mean(plate):.1%} | {np.std(plate):.1%} | {min(plate):.1%} "
                  f"| {np.mean([r['char'] for r in rs]):.1%} | {np.mean([r['cpu'] for r in rs]):.0f} |")


if __name__ == "__main__":
    main()
