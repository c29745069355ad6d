"""Plate designs (`synth --plates --design`): a style plate's lighting, blur and dirt in another design's colours.

Chinese plates come in designs a user's few real plates may not show: white on blue (ordinary
cars), black on yellow (large vehicles), and the new-energy plate, black on a green that fades
from white at the top to green at the bottom, with eight characters and no separator dot. A
design repaints the erased style plate: every pixel of the plate is read as lighting times a mix
of the plate's own paper and ink (`palette_mix`), and written back as the same lighting times the
same mix of the design's paper and ink. So shading, blur, noise, the frame and dirt stay where they
were, the frame and the separator dot take the new ink, and what is not the plate (the car, the
road) stays as it was. New characters are then placed in the design's ink.

On the paper only the lighting's smooth part (`LIGHT_SMOOTH`) scales the new colours; small departures
from it (sensor noise, what erasing left of the old characters) are added in the grey levels they had
on the style plate. Scaled too, they grew with the paper's brightness: a tenth of a dark blue paper is
a few grey levels, of the green plate's near-white paper it was blotches (`benchmarks/erase_quality.py
--design`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from plategen.errors import PlategenError

RGB = tuple[int, int, int]
FIT_TOLERANCE = 0.25  # a pixel is plate where its colour is this share of the paper-ink distance off the mix
REGION_GROWTH = 0.15  # the plate region grows by this share of a character's height (to take the frame)
DOT_SIZE = 0.14  # a drawn separator dot's diameter, as a share of the characters' height
# a pixel takes the new ink as its mix of the old ink rises through this range; below it is paper: the faint
# rims that erasing leaves round the old characters would otherwise print as grey smudges in the new ink
INK_MIX = (0.2, 0.6)
LIGHT_SMOOTH = 1.0  # the lighting that scales the design's colours: the paper's, blurred over this many character heights
DETAIL_SCALE = 0.5  # a pixel's light departs from that by about this much or less: noise, not the car or a glare
LUMA = np.float32([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Design:
    name: str
    top: RGB  # the paper at the plate's top edge
    bottom: RGB  # ... and at its bottom edge (the same for a plain colour)
    ink: RGB
    pattern: str | None  # the layout new texts fill unless --pattern says otherwise (None: the style plate's)
    dot: bool  # a separator dot between the city letter and the serial
    description: str


DESIGNS = {d.name: d for d in (
    Design("blue", (18, 64, 178), (18, 64, 178), (238, 238, 238), None, True, "white on blue (cars)"),
    Design("yellow", (240, 186, 16), (240, 186, 16), (22, 22, 22), None, True, "black on yellow (large vehicles)"),
    # the serial of a small new-energy plate starts with D (electric) or F (hybrid); I and O are never used
    Design("green", (236, 246, 236), (64, 184, 96), (22, 22, 22), "PL.[DF][A-HJ-NP-Z0-9]DDDD", False,
           "new energy: black on green fading from white at the top, 8 characters"),
)}


def design_named(name: str | None) -> Design | None:
    if name is None:
        return None
    if name not in DESIGNS:
        raise PlategenError(f"--design {name!r}: choose one of {', '.join(DESIGNS)}")
    return DESIGNS[name]


def palette_mix(image: np.ndarray, paper: np.ndarray, ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel as `light * (paper + mix * (ink - paper))`, least squares: (light, mix, misfit), each [H,W].

    misfit is the distance of the pixel from that model over the paper-ink distance: small on the
    plate (paper, ink and the blur between them, in any light), large on colours the plate does not have.
    """
    pixels = image.astype(np.float32)
    basis = np.stack([paper, ink - paper], axis=1).astype(np.float32)  # [3, 2]
    coef, *_ = np.linalg.lstsq(basis, pixels.reshape(-1, 3).T, rcond=None)  # [2, N]
    fitted = (basis @ coef).T.reshape(pixels.shape)
    scale = max(float(np.linalg.norm(ink - paper)), 1.0)
    misfit = np.linalg.norm(pixels - fitted, axis=2) / scale
    light = coef[0].reshape(image.shape[:2])
    mix = np.where(light > 0.05, coef[1].reshape(image.shape[:2]) / np.maximum(light, 0.05), 0.0)
    return light, mix, misfit


def plate_region(misfit: np.ndarray, light: np.ndarray, mix: np.ndarray, boxes, height: float) -> np.ndarray:
    """[H,W] float 0-1: the plate, as the plate-coloured area round the character boxes, holes filled, grown
    a little so its frame is inside."""
    paperish = ((misfit < FIT_TOLERANCE) & (light > 0.25) & (mix < 0.5)).astype(np.uint8)
    seeds = np.zeros_like(paperish)
    for x0, y0, x1, y1 in boxes:
        seeds[y0:y1, x0:x1] = 1
    close = max(3, int(round(height * 0.5)) | 1)
    joined = cv2.morphologyEx(paperish, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    count, labels = cv2.connectedComponents(joined)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[(seeds > 0) & (joined > 0)])] = True
    keep[0] = False
    region = keep[labels].astype(np.uint8)
    filled = region.copy()
    for row in range(filled.shape[0]):  # fill holes along rows (characters, dots, bolts inside the plate)
        xs = np.flatnonzero(region[row])
        if len(xs):
            filled[row, xs[0]:xs[-1] + 1] = 1
    grow = max(1, int(round(REGION_GROWTH * height)))
    filled = cv2.dilate(filled, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return cv2.GaussianBlur(filled.astype(np.float32), (0, 0), max(0.5, grow / 2))


def repaint(background: np.ndarray, paper: np.ndarray, ink: np.ndarray, boxes, design: Design, keep=()
            ) -> tuple[np.ndarray, np.ndarray]:
    """The erased style plate in `design`'s colours, and the ink new characters take on it.

    `paper` and `ink` are the style plate's own (median paper inside the erased boxes, `compose.ink_colour`);
    `keep`: boxes erasing kept (a separator dot), the middle half of whose ink stays ink though a character's rim
    pixel reaches it.
    """
    height = float(np.median([y1 - y0 for _, y0, _, y1 in boxes]))
    light, mix, misfit = palette_mix(background, paper, ink)
    region = plate_region(misfit, light, mix, boxes, height)
    rows = np.flatnonzero(region.max(axis=1) > 0.5)
    top, bottom = (rows[0], rows[-1]) if len(rows) else (0, background.shape[0] - 1)
    along = np.clip((np.arange(background.shape[0], dtype=np.float32) - top) / max(bottom - top, 1), 0, 1)
    new_paper = (np.float32(design.top) + along[:, None] * (np.float32(design.bottom) - np.float32(design.top)))
    new_paper = new_paper[:, None, :]  # [H,1,3]: one colour per row
    new_ink = np.float32(design.ink)
    low, high = INK_MIX
    t = np.clip((mix - low) / (high - low), 0.0, 1.0)
    dot = np.zeros(t.shape, bool)
    for x0, y0, x1, y1 in keep:  # a kept dot's box spans its neighbours' height: the dot is its middle half
        dot[y0 + (y1 - y0) // 4:y1 - (y1 - y0) // 4, x0:x1] = True
    own = t.copy()
    for x0, y0, x1, y1 in boxes:  # the erased character boxes (and their rim pixel) are paper: the old ink's rest goes
        t[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = 0.0
    t = np.where(dot, own, t)
    t = t[..., None]
    shading = _smooth_within(light, region * (1 - t[..., 0]), LIGHT_SMOOTH * height)
    # the paper's small departures from its smooth light (noise, what erasing left) go on in the grey levels they
    # had; a large one (the dark car beside the plate, a glare) and ink (the frame, a dot) keep their own light
    small = (np.exp(-((light - shading) / DETAIL_SCALE) ** 2) * (1 - t[..., 0]))[..., None]
    departure = light[..., None] - shading[..., None]
    lit_here = light[..., None] - small * departure
    detail = small * departure * float(LUMA @ np.float32(paper))
    painted = lit_here * (new_paper + t * (new_ink - new_paper)) + detail
    out = background + region[..., None] * (painted - background)
    band = np.zeros(background.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        band[y0:y1, x0:x1] = True
    lit = float(np.median(shading[band])) if band.any() else 1.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), np.clip(lit * new_ink, 0, 255).astype(np.float32)


def _smooth_within(values: np.ndarray, region: np.ndarray, sigma: float) -> np.ndarray:
    """`values` blurred with a Gaussian of `sigma` px, weighted by `region` (0-1): the car round a plate does
    not darken its edge."""
    weight = cv2.GaussianBlur(region, (0, 0), sigma)
    blurred = cv2.GaussianBlur((values * region).astype(np.float32), (0, 0), sigma)
    return np.where(weight > 1e-3, blurred / np.maximum(weight, 1e-3), values).astype(np.float32)


def draw_dot(image: np.ndarray, box, height: float, ink: np.ndarray) -> np.ndarray:
    """A separator dot (soft disk in `ink`) at the middle of `box`, on the characters' centre line."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    radius = max(0.8, DOT_SIZE * height / 2)
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
    cover = np.clip(radius + 0.5 - np.hypot(xs + 0.5 - cx, ys + 0.5 - cy), 0.0, 1.0)[..., None]
    out = image.astype(np.float32) + cover * (ink - image.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
