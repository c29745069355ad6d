"""Character boxes from a plate's text: the classical segmentation and the learned detector side by side.

    OMP_NUM_THREADS=1 python benchmarks/segmentation.py [--data ../shared/data] [--sheets /tmp/sheets] [--all | --train]
        [--detector checkpoints/detector.safetensors]

Both methods run on the same plates: the held-out plates (`dataset.is_holdout`), which the
detector never trained on, with --train the others (where the detector's decoding constants
were chosen), or with --all every plate of each folder. Three methods are
reported: classical (`segment.segment_plate`), detector (`detect.detect_characters` decoded
with the text) and the importers' combination (`detect.segment_with_text`: the detector, then
classical when it refuses). uc3m-lp has hand-drawn character boxes: each plate is segmented
from its text alone and every character's box is compared with the drawn one (IoU; refused
plates count as IoU 0); a box that overlaps another drawn character more than its own is on a
wrong character. ccpd-crops and openalpr-us have text only, so the share of plates given boxes
is reported; --sheets writes contact sheets (per plate: classical left, detector right) to look
at, because only eyes can tell there whether a box holds the character it is labelled with.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.dataset import is_holdout  # noqa: E402
from plategen.detect import DEFAULT_DETECTOR, detect_characters, load_detector, segment_with_text  # noqa: E402
from plategen.plates import Plate, load_plates, read_image  # noqa: E402
from plategen.segment import Segmentation, iou, segment_plate  # noqa: E402

ANNOTATED = "uc3m-lp"
TEXT_ONLY = ("ccpd-crops", "openalpr-us")
Method = Callable[[np.ndarray, str], Segmentation]


def methods(detector: Path) -> dict[str, Method]:
    net = load_detector(detector)
    return {"classical": segment_plate, "detector": functools.partial(detect_characters, net=net),
            "detector+classical": functools.partial(segment_with_text, net=net)}


def run(method: Method, images: list[np.ndarray], plates: list[Plate]
        ) -> tuple[list[Segmentation], float]:
    start = time.perf_counter()
    segs = [method(image, plate.text) for image, plate in zip(images, plates)]
    return segs, time.perf_counter() - start


def measure_annotated(plates: list[Plate], segs: list[Segmentation]) -> str:
    """Per-character IoU of estimated against drawn boxes; the text is the drawn boxes' classes in reading order."""
    ious: list[float] = []
    emitted, wrong, refused = 0, 0, 0
    reasons: Counter[str] = Counter()
    for plate, seg in zip(plates, segs):
        if seg.boxes is None:
            refused += 1
            reasons[seg.reason] += 1
            ious.extend([0.0] * len(plate.boxes))
            continue
        for i, box in enumerate(seg.boxes):
            overlaps = [iou(box, drawn) for drawn in plate.boxes]
            ious.append(overlaps[i])
            emitted += 1
            wrong += max(overlaps) > overlaps[i]
    share = np.mean(np.array(ious) >= 0.5)
    return (f"{len(ious)} characters: IoU>=0.5 {share:.1%}, mean IoU {np.mean(ious):.3f}, refused {refused} plates "
            f"({refused / len(plates):.1%}), boxes on a wrong character {wrong}/{emitted} ({wrong / max(emitted, 1):.2%})"
            f"\n        top refusals: {reasons.most_common(3)}")


def measure_text_only(segs: list[Segmentation]) -> str:
    done = sum(s.boxes is not None for s in segs)
    reasons = Counter(s.reason for s in segs if s.boxes is None)
    return f"segmented {done}/{len(segs)} ({done / len(segs):.1%})\n        top refusals: {reasons.most_common(3)}"


def sheet(images: list[np.ndarray], plates: list[Plate], results: list[list[Segmentation]], path: Path,
          count: int = 32) -> None:
    """Per plate, one tile per method with its boxes drawn and labelled (a red bar: refused), to check by eye."""
    rng = np.random.default_rng(0)
    picked = sorted(rng.choice(len(plates), min(count, len(plates)), replace=False))
    rows = []
    for k in picked:
        tiles = []
        for segs in results:
            image = cv2.cvtColor(images[k], cv2.COLOR_RGB2BGR)
            zoom = max(1, round(320 / image.shape[1]))
            image = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
            boxes = segs[k].boxes
            for i, ((x0, y0, x1, y1), char) in enumerate(zip(boxes or (), plates[k].text)):
                colour = (0, 0, 255) if i % 2 else (255, 0, 0)
                cv2.rectangle(image, (x0 * zoom, y0 * zoom), (x1 * zoom - 1, y1 * zoom - 1), colour, 2)
                cv2.putText(image, char if char.isascii() else "*", (x0 * zoom + 2, y1 * zoom - 3),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 220, 0), 2)
            tile = cv2.resize(image, (320, 160))
            if boxes is None:
                tile[:12] = (0, 0, 255)
            tiles.append(tile)
        rows.append(np.hstack(tiles + [np.full((160, 8, 3), 255, np.uint8)]))
    rows += [np.zeros_like(rows[0])] * (-len(rows) % 2)
    cv2.imwrite(str(path), np.vstack([np.hstack(rows[i:i + 2]) for i in range(0, len(rows), 2)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sheets", type=Path, help="write a contact sheet per folder here (classical | detector)")
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--all", action="store_true", help="every plate, not only the held-out ones")
    side.add_argument("--train", action="store_true", help="the train-side plates instead of the held-out ones")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="the detector's weights to measure")
    parser.add_argument("--noise", type=int, default=300, help="random-noise images named as plate texts (seed 1), "
                        "which every method should refuse")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f}")
    print(f"detector: {args.detector}")
    measured = methods(args.detector)
    start = time.perf_counter()
    for name in (ANNOTATED, *TEXT_ONLY):
        result = load_plates(args.data / name)
        plates = [p for p in result.plates + result.text_only if args.all or is_holdout(p) != args.train]
        images = [read_image(p.image_path) for p in plates]
        print(f"{name}: {len(plates)} {'' if args.all else 'train-side ' if args.train else 'held-out '}plates")
        results = []
        for label, method in measured.items():
            segs, seconds = run(method, images, plates)
            results.append(segs)
            figures = measure_annotated(plates, segs) if name == ANNOTATED else measure_text_only(segs)
            print(f"    {label}: {figures}\n        {1000 * seconds / len(plates):.1f} ms/plate")
        if args.sheets:
            args.sheets.mkdir(parents=True, exist_ok=True)
            sheet(images, plates, results[:2], args.sheets / f"{name}.png")
    print(f"all folders: {time.perf_counter() - start:.1f} s wall")
    rng = np.random.default_rng(1)
    noise = []
    for i in range(args.noise):  # 12-60 px high, 2-5 times as wide: plate-sized noise
        height = int(rng.integers(12, 60))
        noise.append((rng.integers(0, 255, (height, int(height * rng.uniform(2, 5)), 3), dtype=np.uint8), f"AB{i:05d}"))
    for label, method in measured.items():
        boxed = sum(method(image, text).boxes is not None for image, text in noise)
        print(f"noise: {label} boxed {boxed} of {len(noise)} random-noise images named as plate texts")


if __name__ == "__main__":
    main()
