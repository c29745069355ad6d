"""How clean is a style plate once its characters are erased (`synth.compose.erase_characters`)?

    python benchmarks/erase_quality.py [--plates 150]

On up to `--plates` held-out plates (`dataset.is_holdout`) of each source whose characters all have boxes,
two figures per plate, median over the plates:
- ink left: the share of the boxes' pixels still far (half the box's contrast) from the paper at the box's
  edge, as a share of the same before erasing (0: no stroke, rim or bar left);
- spread: the grey standard deviation inside the boxes after erasing, as a share of before (blotches and
  bars raise it; the paper's own texture keeps it above 0).

    python benchmarks/erase_quality.py --design green [--plates 150]

measures a design's repainting instead, on the held-out ccpd-crops plates (designs repaint Chinese plates):
the grey standard deviation inside the erased boxes (less a linear fit from top to bottom) over the grey distance
between the paper and the ink new characters take, in the plate's own colours and repainted (median over plates). Noise and erasing's remains
that look alike on both are repainted well; blotches raise the second.
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
from plategen.synth.designs import DESIGNS
from plategen.synth.plates import Canvas, plate_layouts, style_plate

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


def blotches(background: np.ndarray, ink: np.ndarray, boxes) -> float:
    """Grey spread inside an erased plate's boxes, less a linear fit along the rows (the green design fades from
    top to bottom), over the grey distance from its paper there to `ink`."""
    luma = np.float32([0.299, 0.587, 0.114])
    grey = np.concatenate([(background[y0:y1, x0:x1].astype(np.float32) @ luma).ravel() for x0, y0, x1, y1 in boxes])
    rows = np.concatenate([np.repeat(np.arange(y0, y1, dtype=np.float32), x1 - x0) for x0, y0, x1, y1 in boxes])
    residual = grey - np.polyval(np.polyfit(rows, grey, 1), rows)
    return float(np.std(residual) / max(abs(float(np.median(grey)) - float(ink @ luma)), 1.0))


def repainting(data: Path, design: str, count: int) -> None:
    plates = [p for p in load_plates(data / "ccpd-crops").plates
              if is_holdout(p) and p.boxes and len(p.boxes) == len(p.text)][:count]
    own, repainted = [], []
    for plate in plates:
        style = style_plate(plate)
        boxes = [s.box for s in style.layout.char_slots]
        own.append(blotches(*Canvas([style]).get(0), boxes))
        layouts = plate_layouts([style], DESIGNS[design].pattern)
        repainted.append(blotches(*Canvas([style], layouts, DESIGNS[design]).get(0), boxes))
    print(f"ccpd-crops, --design {design}: {len(plates)} held-out plates; erased boxes' grey spread over paper-ink "
          f"distance: own colours {np.median(own):.3f} (p90 {np.percentile(own, 90):.3f}), repainted "
          f"{np.median(repainted):.3f} (p90 {np.percentile(repainted, 90):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--plates", type=int, default=150)
    ap.add_argument("--design", choices=list(DESIGNS), default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    if args.design is not None:
        repainting(Path(args.data), args.design, args.plates)
        print(f"{time.perf_counter() - start:.0f} s")
        return
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
