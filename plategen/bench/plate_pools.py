"""Plates for the plate level: real plates at the recogniser's input size, generated plates, augmented real plates.

Per seed, one plan (`synth.plates.plan_plates`: style plate, text and seed of every plate) over
the seed's real training plates as the only styles serves both generators, so SAAE and render
plates have the same layouts and texts: the SAAE plates come from `synth.plates.make_plates`
(the synth run's own path, label check on; and once more without it, for read-as-asked), the
render plates from `render.render_plates` on the same erased style plates. Texts are drawn
balanced per slot kind over the characters of the seed's training plates that every generator
draws. Each generator has its own RNG stream per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from plategen.bench.pools import pool_seed
from plategen.glyphs import Font
from plategen.layout import one_row
from plategen.plates import Box, Plate, read_image
from plategen.recognizer import box_centres
from plategen.render import augment_image, plate_unit, render_plates
from plategen.segment import reading_rows
from plategen.synth.plates import Canvas, PlatePlan, StylePlate, make_plates, plan_plates


TEXT_ONLY_UNIT_SHARE = 0.025  # `degrade`'s unit per pixel of plate height when no plate has boxes (0.8 / 32)


def at_size(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Plates of any size as one [N, H, W, 3] uint8 array at the recogniser's input size (area resampling)."""
    height, width = size
    if not len(images):
        return np.empty((0, height, width, 3), np.uint8)
    return np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in images])


def as_input(images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]], size: tuple[int, int],
             drawn: Sequence[Sequence[Box]] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Plates at the recogniser's input size, a plate of several rows laid out as one (`layout.one_row`: the
    recogniser reads one row, as LPRNet does), and each plate's character box centres there
    (`recognizer.box_centres`; none for a text-only plate). `drawn`: for warped copies, the boxes before the
    warp, which tell the rows (a tilt can make a two-row plate's boxes read as one row)."""
    rows = [reading_rows(b) if b else [] for b in drawn] if drawn is not None else [None] * len(images)
    laid = [one_row(image, plate_boxes, plate_rows) for image, plate_boxes, plate_rows in zip(images, boxes, rows)]
    return (at_size([image for image, _ in laid], size),
            [box_centres(plate_boxes, image.shape[1], image.shape[0]) for image, plate_boxes in laid])


@dataclass
class PlatePool:
    """One generator's plates of one seed, at the input size; `texts` are exactly what each plate shows,
    `centres` their characters' box centres (`recognizer.box_centres`).
    `unchecked`: the SAAE's first draws of the same plan, without synth's label check."""

    images: np.ndarray
    texts: list[str]
    centres: list[np.ndarray]
    unchecked: np.ndarray | None = None


def plan_boxes(plan: PlatePlan) -> list[tuple[Box, ...]]:
    """Every planned plate's character boxes: its style plate's slots, where the characters are drawn."""
    per_style = [tuple(s.box for s in layout.char_slots) for layout in plan.layouts]
    return [per_style[k] for k in plan.style]


def plate_plan(styles: Sequence[StylePlate], n: int, chars: Sequence[str], seed: int) -> PlatePlan:
    """The seed's plan of generated plates, shared by every generator."""
    return plan_plates(styles, n, list(chars), seed=pool_seed(seed))


def saae_plates(checkpoint, styles: Sequence[StylePlate], plan: PlatePlan, chars: Sequence[str],
                fonts: Sequence[Font], seed: int, size: tuple[int, int], chinese=None) -> PlatePool:
    """The planned plates drawn by the SAAE (label check on), and the same plan's first draws without it.
    `chinese`: the model that draws the Chinese characters, as in synth (`engine.chinese_model`)."""
    charset, seed = checkpoint.meta.get("charset"), pool_seed(seed)
    made = make_plates(checkpoint.generator, checkpoint.discriminator, charset, styles, plan, chars, fonts, seed,
                       chinese=chinese)
    first = make_plates(checkpoint.generator, None, charset, styles, plan, chars, fonts, seed, chinese=chinese)
    boxes = plan_boxes(plan)
    images, centres = as_input(made.images, boxes, size)
    return PlatePool(images, made.texts, centres, as_input(first.images, boxes, size)[0])


def rendered_plates(styles: Sequence[StylePlate], plan: PlatePlan, fonts: Sequence[Font], seed: int,
                    size: tuple[int, int]) -> PlatePool:
    drawn = render_plates(Canvas(styles), plan, fonts, np.random.default_rng([seed, 103]))
    images, centres = as_input([image for image, _ in drawn], [boxes for _, boxes in drawn], size, plan_boxes(plan))
    return PlatePool(images, list(plan.texts), centres)


def augmented_plates(plates: Sequence[Plate], images: Sequence[np.ndarray], ratios: Sequence[float], seed: int,
                     size: tuple[int, int]) -> PlatePool:
    """Classical augmentation of the real training plates (at their own size, degraded as much as a
    crop per character; a text-only plate as much as the boxed ones, by its height), enough for the
    largest ratio: copy 1 of every plate, then copy 2, ... Their boxes move with the degradation's warp."""
    reps = int(math.ceil(max(ratios))) or 1
    rng = np.random.default_rng([seed, 104])
    share = [plate_unit(p.boxes) / image.shape[0] for p, image in zip(plates, images) if p.boxes]
    fallback = float(np.median(share)) if share else TEXT_ONLY_UNIT_SHARE
    units = [plate_unit(p.boxes) if p.boxes else fallback * image.shape[0] for p, image in zip(plates, images)]
    out = [augment_image(image, rng, unit, plate.boxes)
           for _ in range(reps) for plate, image, unit in zip(plates, images, units)]
    images, centres = as_input([image for image, _ in out], [boxes for _, boxes in out], size,
                               [p.boxes for p in plates] * reps)
    return PlatePool(images, [p.text for _ in range(reps) for p in plates], centres)


def real_images(plates: Sequence[Plate]) -> list[np.ndarray]:
    return [read_image(p.image_path) for p in plates]
