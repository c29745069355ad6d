"""Character samples: (real crop of y, label y, the plate it came from as style), grouped by physical plate."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from plategen.glyphs import frame_square, warp_to_frame
from plategen.plates import Box, Plate, read_image
from plategen.sizes import GLYPH_SIZE, STYLE_SIZE



@dataclass
class CharSamples:
    """Arrays for training and evaluation; `plate_index` ties every crop to its style plate."""

    crops: np.ndarray  # [N, S, S, 3] uint8 RGB
    labels: np.ndarray  # [N] int64, index into charset
    plate_index: np.ndarray  # [N] int64, index into plates / styles
    styles: np.ndarray  # [P, Hs, Ws, 3] uint8 RGB, each plate resized whole
    charset: list[str]
    plates: list[Plate]
    aspects: np.ndarray  # [N] float64: each crop's box width / height, the width its content glyph is narrowed to (NaN: no box)

    def subset(self, plate_ids: Sequence[int]) -> "CharSamples":
        """The samples of the given plates only, re-indexed; plates keep their order."""
        plate_ids = np.asarray(sorted(set(int(i) for i in plate_ids)), dtype=np.int64)
        remap = np.full(len(self.plates), -1, dtype=np.int64)
        remap[plate_ids] = np.arange(len(plate_ids))
        keep = remap[self.plate_index] >= 0
        return CharSamples(self.crops[keep], self.labels[keep], remap[self.plate_index[keep]],
                           self.styles[plate_ids], self.charset, [self.plates[i] for i in plate_ids], self.aspects[keep])


def charset_of(plates: Iterable[Plate]) -> list[str]:
    """Every character seen, ASCII first in code order, then the rest (e.g. CJK) in code order."""
    seen = {c for p in plates for c in p.text}
    return sorted(seen, key=lambda c: (not c.isascii(), c))


def crop_character(image: np.ndarray, box: Box, size: int = GLYPH_SIZE) -> np.ndarray:
    """The character in `box`, framed like a content glyph (`glyphs.frame_square`)."""
    cx, cy, side = frame_square(box)
    return warp_to_frame(image, cx, cy, side, size, border_mode=cv2.BORDER_REPLICATE)


def style_image(image: np.ndarray, size: tuple[int, int] = STYLE_SIZE) -> np.ndarray:
    """The whole plate resized (not cropped) to the fixed style size."""
    height, width = size
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def build_samples(plates: Sequence[Plate], charset: Sequence[str] | None = None, crop_size: int = GLYPH_SIZE,
                  style_size: tuple[int, int] = STYLE_SIZE,
                  progress: Callable[[Iterable], Iterable] = lambda it: it) -> CharSamples:
    """Cut every boxed character whose label is in `charset` (default: all seen)."""
    charset = list(charset) if charset is not None else charset_of(plates)
    index = {c: i for i, c in enumerate(charset)}
    crops, labels, owners, aspects = [], [], [], []
    styles = np.empty((len(plates), *style_size, 3), np.uint8)
    for p, plate in enumerate(progress(plates)):
        image = read_image(plate.image_path)
        styles[p] = style_image(image, style_size)
        for ch, box in zip(plate.text, plate.boxes):
            if ch in index:
                crops.append(crop_character(image, box, crop_size))
                labels.append(index[ch])
                owners.append(p)
                aspects.append((box[2] - box[0]) / max(box[3] - box[1], 1))
    return CharSamples(
        np.stack(crops) if crops else np.empty((0, crop_size, crop_size, 3), np.uint8),
        np.asarray(labels, np.int64), np.asarray(owners, np.int64), styles, charset, list(plates),
        np.asarray(aspects, np.float64),
    )


def plate_key(plate: Plate) -> str:
    """What makes two images one physical plate: the same characters from the same folder.

    Datasets hold several frames of one plate; splitting by image would leak it. Annotated
    characters are keyed left to right by box centre, as the YOLO importer ordered them before
    two-row plates were read top row first: the key fixes `is_holdout`, and keeping it keeps the
    shipped model's held-out plates the ones it never trained on (all 2,056 uc3m-lp plates fall
    on the same side as before).
    """
    text = plate.text
    if plate.box_origin == "annotated":
        order = sorted(range(len(plate.boxes)), key=lambda i: plate.boxes[i][0] + plate.boxes[i][2])
        text = "".join(plate.text[i] for i in order)
    return f"{Path(plate.source).name}/{text}"


HOLDOUT_FRACTION = 0.2


def is_holdout(plate: Plate, fraction: float = HOLDOUT_FRACTION) -> bool:
    """The project's fixed validation plates, chosen by a hash of `plate_key` so that all
    frames of one physical plate fall on the same side and the choice survives renames,
    re-ordering and re-imports. The shipped model never trains on them."""
    return _holdout_value(plate_key(plate)) < fraction


def _holdout_value(key: str) -> float:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def holdout_split(plates: Sequence[Plate]) -> tuple[list[Plate], list[Plate]]:
    """Train-side and held-out plates by `is_holdout`; where that leaves a side empty (a few plates, whose hashes
    all fall on one side), the physical plate hashed lowest is held out, or the one hashed highest trains, so
    any two physical plates split. Whether a folder of 12 plates could train depended on its name."""
    train = [p for p in plates if not is_holdout(p)]
    held = [p for p in plates if is_holdout(p)]
    keys = sorted({plate_key(p) for p in plates}, key=_holdout_value)
    if len(keys) >= 2 and not held:
        held = [p for p in plates if plate_key(p) == keys[0]]
        train = [p for p in plates if plate_key(p) != keys[0]]
    elif len(keys) >= 2 and not train:
        train = [p for p in plates if plate_key(p) == keys[-1]]
        held = [p for p in plates if plate_key(p) != keys[-1]]
    return train, held
