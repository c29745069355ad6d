"""How clean is a style plate once its characters are erased (`synth.compose.erase_characters`)?

    python benchmarks/erase_quality.py [--plates 150]

On up to `--plates` held-out plates (`dataset.is_holdout`) of each source whose characters all have boxes,
two figures per plate, median over the plates:
- ink left: the share of the boxes' pixels still far (half the box's contrast) from the paper at the box's
  edge, as a share of the same before erasing (0: no stroke, rim or bar left);
- spread: the grey standard deviation inside the boxes after erasing, as a share of before (blotches and
  bars raise it; the paper's own texture keeps it above 0).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from plategen.dataset import is_holdout
from plategen.layout import layout_of
from plategen.plates import load_plates, read_image
from plategen.synth.compose import erase_characters

SOURCES = ("uc3m-lp", "ccpd-crops", "openalpr-us")


def ink_left(image: np.ndarray, erased: np.ndarray, boxes) -> float:
    """Pixels of the erased boxes still far from the paper (half the box's contrast, both from the unerased
    plate), over the same count before erasing."""
    before = after = 0
    for x0, y0, x1, y1 in boxes:
        gray, gone = (cv2.cvtColor(im[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) for im in (image, erased))
        paper = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
        far = 0.5 * max(float(np.abs(gray - paper).max()), 1.0)
        before += int((np.abs(gray - paper) > far).sum())
        after += int((np.abs(gone - paper) > far).sum())
    return after / max(before, 1)


def spread(image: np.ndarray, boxes) -> float:
    return float(np.std(np.concatenate([cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).ravel()
                                        for x0, y0, x1, y1 in boxes]).astype(np.float32)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--plates", type=int, default=150)
    args = ap.parse_args()
    start = time.perf_counter()
    for source in SOURCES:
        plates = [p for p in load_plates(Path(args.data) / source).plates
                  if is_holdout(p) and p.boxes and len(p.boxes) == len(p.text)][:args.plates]
        left, spreads = [], []
        for plate in plates:
            image = read_image(plate.image_path)
            boxes = [s.box for s in layout_of(plate, (image.shape[1], image.shape[0]))[0].char_slots]
            erased = erase_characters(image, boxes)
            left.append(ink_left(image, erased, boxes))
            spreads.append(spread(erased, boxes) / max(spread(image, boxes), 1e-6))
        print(f"{source}: {len(plates)} held-out plates; ink left {np.median(left):.3f} (p90 {np.percentile(left, 90):.3f}); "
              f"spread {np.median(spreads):.3f} (p90 {np.percentile(spreads, 90):.3f})")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
