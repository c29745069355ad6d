"""The whole-plate recogniser trained on real plates only: the ceiling reference of issue 11.

    python benchmarks/plate_recognizer.py [--data ../shared/data] [--seeds 2] [--steps 1600] [--head ctc]
        [--sources uc3m-lp] [--real-plates 50 all] [--threads 2] [--size 32x128] [--lr 6e-3]
        [--batch-size 16] [--width 16] [--columns 16] [--warmup 0.05] [--frame 1.0]
        [--validation] [--first-seed 0]

For each real folder, plates are split by `dataset.is_holdout` (a fixed, plate-disjoint 20%;
training images whose content hash appears among the test images are dropped as well). The
recogniser trains on 50 real plates (a seeded draw, one image per physical plate) and on all
training plates (`--real-plates 50 all`), once per seed, and is tested on the held-out plates: plate accuracy (every
character right) and character accuracy (1 - CER), mean and sd over seeds, seconds per training.
Times depend on the load of the machine, so the load average is printed before and after
and beside every training (1-minute figure at its end), and the process CPU seconds beside the
wall seconds (on one thread, about what the training takes on an idle core).

`--validation` compares recogniser settings without looking at the held-out plates: the training
plates are split once more by plate (another 20% by a second hash of `plate_key`), and the
recogniser is tested on that validation part.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads wait passively: with the default (spinning), 2 torch threads on a 2-core
# machine shared with other jobs ran a training step 15x slower than 1 thread (607 vs 42 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench.plate_pools import as_input  # noqa: E402
from plategen.dataset import is_holdout, plate_key  # noqa: E402
from plategen.plates import Plate, load_plates, read_image  # noqa: E402
from plategen.recognizer import PlateSchedule, evaluate_plates, train_plate_recognizer  # noqa: E402

SOURCES = ("uc3m-lp", "ccpd-crops", "openalpr-us")


def images_of(plates: list[Plate], size: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """As the plate benchmark feeds its recognisers: at the input size, two-row plates as one row, box centres."""
    return as_input([read_image(p.image_path) for p in plates], [p.boxes for p in plates], size)


def one_per_plate(plates: list[Plate], count: int, seed: int) -> list[int]:
    """`count` indices of distinct physical plates, drawn by the seed."""
    first: dict[str, int] = {}
    for i in np.random.default_rng(seed).permutation(len(plates)):
        first.setdefault(plate_key(plates[i]), int(i))
    return sorted(list(first.values())[:count])


def is_validation(plate: Plate, fraction: float = 0.2) -> bool:
    """A second plate-disjoint split, independent of `is_holdout` (another part of the same hash)."""
    return int(hashlib.sha256(plate_key(plate).encode("utf-8")).hexdigest()[8:16], 16) / 2**32 < fraction


def measure(folder: Path, schedule: PlateSchedule, seeds: range, sizes: list[str], validation: bool) -> list[str]:
    result = load_plates(folder)
    plates = result.plates
    if validation:
        plates = [p for p in plates if not is_holdout(p)]
    held_out = is_validation if validation else is_holdout
    test = [p for p in plates if held_out(p)]
    test_hashes = {p.sha256 for p in test}
    train = [p for p in plates if not held_out(p) and p.sha256 not in test_hashes]
    alphabet = "".join(sorted({c for p in plates for c in p.text}))
    (x_train, centres), (x_test, _) = images_of(train, schedule.input_size), images_of(test, schedule.input_size)
    texts_train, texts_test = [p.text for p in train], [p.text for p in test]
    rows = []
    print(f"{folder.name}: {len(plates)} plates imported ({len(result.skipped)} refused by segmentation), "
          f"{len(train)} train, {len(test)} test, alphabet {len(alphabet)}", flush=True)
    for label in sizes:
        plate_acc, char_acc, seconds, cpu_seconds, loads = [], [], [], [], []
        for seed in seeds:
            ids = list(range(len(train))) if label == "all" else one_per_plate(train, int(label), seed)
            cpu_start = time.process_time()
            trained = train_plate_recognizer(x_train[ids], [texts_train[i] for i in ids], alphabet, schedule, seed,
                                             centres=[centres[i] for i in ids])
            cpu_seconds.append(time.process_time() - cpu_start)
            ev = evaluate_plates(trained, x_test, texts_test)
            plate_acc.append(ev.plate_accuracy)
            char_acc.append(ev.char_accuracy)
            seconds.append(trained.seconds)
            loads.append(os.getloadavg()[0])
            print(f"  {label:>4} plates seed {seed}: plate {ev.plate_accuracy:.3f} char {ev.char_accuracy:.3f} "
                  f"{trained.seconds:.0f}s ({cpu_seconds[-1]:.0f}s CPU) at load {loads[-1]:.1f}; "
                  f"top confusions {ev.confusions[:3]}", flush=True)
        rows.append(f"| {folder.name} | {label} ({len(ids)}) | {len(test)} "
                    f"| {np.mean(plate_acc):.1%} ± {np.std(plate_acc):.1%} "
                    f"| {np.mean(char_acc):.1%} ± {np.std(char_acc):.1%} | {np.mean(seconds):.0f} "
                    f"| {np.mean(cpu_seconds):.0f} "
                    f"| {np.mean(loads):.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--real-plates", nargs="+", default=["50", "all"], help="training set sizes: a number or all")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=PlateSchedule.steps)
    parser.add_argument("--head", choices=("ctc", "slots"), default=PlateSchedule.head)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="x".join(map(str, PlateSchedule.input_size)), help="input HxW")
    parser.add_argument("--lr", type=float, default=PlateSchedule.lr)
    parser.add_argument("--batch-size", type=int, default=PlateSchedule.batch_size)
    parser.add_argument("--width", type=int, default=PlateSchedule.width)
    parser.add_argument("--columns", type=int, default=PlateSchedule.columns, help="CTC time steps")
    parser.add_argument("--warmup", type=float, default=PlateSchedule.warmup, help="share of the steps the lr rises")
    parser.add_argument("--frame", type=float, default=PlateSchedule.frame,
                        help="CTC: weight of the per-column loss at the box centres (0: none)")
    parser.add_argument("--validation", action="store_true", help="test on a validation split of the training "
                                                                    "plates, not on the held-out plates")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = map(int, args.size.lower().split("x"))
    schedule = PlateSchedule(steps=args.steps, head=args.head, input_size=(height, width), lr=args.lr,
                             batch_size=args.batch_size, width=args.width, columns=args.columns,
                             warmup=args.warmup, frame=args.frame)
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores, {args.threads} threads; "
          f"schedule {schedule.to_dict()}", flush=True)
    start = time.perf_counter()
    rows = [row for source in args.sources for row in measure(args.data / source, schedule, range(args.first_seed, args.first_seed + args.seeds),
                                                                     args.real_plates, args.validation)]
    print(f"\nload after: {os.getloadavg()[0]:.2f} (1 min); {time.perf_counter() - start:.0f}s in all\n")
    print("| source | real training plates | test plates | plate accuracy | char accuracy | s / training "
          "| CPU s / training | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
