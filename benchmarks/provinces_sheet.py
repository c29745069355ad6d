"""A sheet of every Chinese province (and 警学挂港澳使领) drawn on held-out CCPD plates, one block per checkpoint.

    python benchmarks/provinces_sheet.py --checkpoint OLD --checkpoint NEW --out provinces.png

Per checkpoint and held-out plate (`dataset.is_holdout`: never trained on), the plate on the
left, then `--draws` rows of every character drawn as `plategen synth --style PLATE` does
(default diversity, label check on). Under each image a bar: green = the label check passed,
red = failed, grey = unchecked (no class in that checkpoint). For looking at, not a figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.charset import CHINESE_PROVINCES, CHINESE_SPECIAL  # noqa: E402
from plategen.checkpoint import load_checkpoint  # noqa: E402
from plategen.dataset import is_holdout  # noqa: E402
from plategen.glyphs import fonts_for, render_glyph, shipped_fonts  # noqa: E402
from plategen.plates import load_plate, read_image  # noqa: E402
from plategen.synth import generate  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "ccpd-crops" / "images"
PLATES = ("苏A53D97.jpg", "皖A0V262.jpg")
CELL, BAR, ZOOM = 32, 3, 2
VERDICT = {"pass": (40, 180, 40), "fail": (220, 30, 30), "unchecked": (128, 128, 128)}


def block(model, image: np.ndarray, chars: list[str], draws: int, seed: int) -> np.ndarray:
    """One plate: the plate, then `draws` rows of every character with its check bar under it."""
    cells: dict[str, list[np.ndarray]] = {c: [] for c in chars}
    for batch in generate(model, [image], chars, draws * len(chars), seed=seed):
        for img, label, check in zip(batch.images, batch.labels, batch.checks):
            cell = np.zeros((CELL + BAR, CELL, 3), np.uint8)
            cell[:CELL], cell[CELL:] = img, VERDICT.get(check, (0, 0, 0))
            cells[label].append(cell)
    rows = [np.concatenate([cells[c][r] for c in chars], 1) for r in range(draws)]
    plate = cv2.resize(image, (3 * CELL, CELL), interpolation=cv2.INTER_AREA)
    side = np.zeros((draws * (CELL + BAR), 3 * CELL, 3), np.uint8)
    side[:CELL] = plate
    return np.concatenate([side, np.concatenate(rows, 0)], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    chars = list(CHINESE_PROVINCES + CHINESE_SPECIAL)
    fonts = shipped_fonts()
    header = np.concatenate([np.zeros((CELL, 3 * CELL), np.uint8)]
                            + [255 - render_glyph(c, fonts_for(c, fonts)[0], CELL) for c in chars], 1)
    parts = [np.repeat(header[..., None], 3, 2)]
    for path in args.checkpoint:
        model = load_checkpoint(path)
        parts.append(np.full((4, header.shape[1], 3), 255, np.uint8))
        for name in PLATES:
            assert is_holdout(load_plate(DATA / name).plates[0]), f"{name} is not a held-out plate"
            parts.append(block(model, read_image(DATA / name), chars, args.draws, args.seed))
        print(f"block {len(parts) - 1}: {path}")
    sheet = np.concatenate(parts, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] * ZOOM, sheet.shape[0] * ZOOM), Image.NEAREST).save(args.out)
    print(f"sheet: {args.out}")


if __name__ == "__main__":
    main()
