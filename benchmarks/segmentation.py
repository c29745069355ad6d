"""Text-guided segmentation measured on the real plate folders.

    python benchmarks/segmentation.py [--data ../shared/data] [--sheets /tmp/sheets]

uc3m-lp has hand-drawn character boxes: they are set aside, each plate is segmented from
its text alone and every character's box is compared with the drawn one (IoU; refused
plates count as IoU 0). ccpd-crops and openalpr-us have text only, so the share that
segments is reported; --sheets writes contact sheets of them to look at, because only
eyes can tell there whether a box holds the character it is labelled with.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.plates import Plate, load_plates, read_image  # noqa: E402
from plategen.segment import iou, segment_plate  # noqa: E402

ANNOTATED = "uc3m-lp"
TEXT_ONLY = ("ccpd-crops", "openalpr-us")


def measure_annotated(plates: list[Plate]) -> str:
    """Per-character IoU of estimated against drawn boxes; the text is the drawn boxes' classes in reading order."""
    ious: list[float] = []
    refused, wrong_plates, seconds = 0, 0, 0.0
    reasons: Counter[str] = Counter()
    for plate in plates:
        image = read_image(plate.image_path)
        start = time.perf_counter()
        seg = segment_plate(image, plate.text)
        seconds += time.perf_counter() - start
        if seg.boxes is None:
            refused += 1
            reasons[seg.reason] += 1
            ious.extend([0.0] * len(plate.boxes))
            continue
        scores = [iou(a, b) for a, b in zip(seg.boxes, plate.boxes)]
        wrong_plates += min(scores) < 0.25
        ious.extend(scores)
    share = np.mean(np.array(ious) >= 0.5)
    return (f"{len(plates)} plates, {len(ious)} characters: IoU>=0.5 {share:.1%} of characters, "
            f"mean IoU {np.mean(ious):.3f}, refused {refused} plates ({refused / len(plates):.1%}), "
            f"segmented plates with a box off its character (IoU<0.25): {wrong_plates}; "
            f"segmentation {seconds:.1f} s ({1000 * seconds / len(plates):.1f} ms/plate)\n"
            f"    top refusals: {reasons.most_common(4)}")


def sheet(plates: list[Plate], path: Path, count: int = 40) -> None:
    """A contact sheet of segmented plates, boxes drawn and labelled, to check by eye."""
    rng = np.random.default_rng(0)
    picked = [plates[i] for i in sorted(rng.choice(len(plates), min(count, len(plates)), replace=False))]
    tiles = []
    for plate in picked:
        image = cv2.cvtColor(read_image(plate.image_path), cv2.COLOR_RGB2BGR)
        zoom = max(1, round(320 / image.shape[1]))
        image = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        for i, ((x0, y0, x1, y1), char) in enumerate(zip(plate.boxes, plate.text)):
            colour = (0, 0, 255) if i % 2 else (255, 0, 0)
            cv2.rectangle(image, (x0 * zoom, y0 * zoom), (x1 * zoom - 1, y1 * zoom - 1), colour, 2)
            cv2.putText(image, char if char.isascii() else "*", (x0 * zoom + 2, y1 * zoom - 3),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 220, 0), 2)
        tiles.append(cv2.resize(image, (320, 160)))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 4)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sheets", type=Path, help="write a contact sheet per text-only folder here")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")

    start = time.perf_counter()
    annotated = load_plates(args.data / ANNOTATED).plates
    print(f"{ANNOTATED}: {measure_annotated(annotated)}")
    for name in TEXT_ONLY:
        load_start = time.perf_counter()
        result = load_plates(args.data / name)  # segments every plate as it imports it
        seconds = time.perf_counter() - load_start
        total = len(result.plates) + len(result.skipped)
        reasons = Counter(p.message.removeprefix("not segmented: ") for p in result.skipped)
        print(f"{name}: segmented {len(result.plates)}/{total} ({len(result.plates) / total:.1%}), "
              f"import with segmentation {seconds:.1f} s ({1000 * seconds / total:.1f} ms/plate)\n"
              f"    top refusals: {reasons.most_common(4)}")
        if args.sheets:
            args.sheets.mkdir(parents=True, exist_ok=True)
            sheet(result.plates, args.sheets / f"{name}.png")
    print(f"all folders: {time.perf_counter() - start:.1f} s wall")


if __name__ == "__main__":
    main()
