"""The classical baseline: font rendering plus augmentation, what users can do without a model.

`render_characters` draws each asked character with the shipped fonts
(`glyphs.render_glyph`, the same content glyphs the SAAE gets), puts it on a
plate-like background with a plate-like ink colour (a generic palette, not tuned
to any one dataset), adds fragments of neighbouring characters at the frame's
edges as real crops have them, and degrades it like a camera would: uneven
lighting, affine jitter, resolution loss, blur, noise and JPEG.

`augment_crops` applies the same degradations (and a colour jitter) to real
crops: the "classical augmentation" reference of the benchmark (`augment_image`
does one image, a crop or a whole plate).

`render_plates` is the whole-plate baseline: the SAAE plates' own canvas (each
style plate with its characters erased, `synth.plates.Canvas`), the same plan
(texts and layouts), characters from the shipped fonts placed by compose's
placement in the plate's own ink colour, then lighting and the degradations.

Randomness comes only from the `numpy.random.Generator` passed in; this module
never touches the SAAE path's generators or any global random state.
"""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from plategen.errors import PlategenError
from plategen.glyphs import (Font, GlyphJitter, check_coverage, covers, fonts_for, frame_square, render_glyph,
                             sample_jitter, shipped_fonts)
from plategen.plates import Box, clip_box, warp_boxes
from plategen.sizes import GLYPH_SIZE
from plategen.synth.compose import place_characters

if TYPE_CHECKING:
    from plategen.synth.plates import Canvas, PlatePlan

# (background RGB, ink RGB, weight): common plate designs worldwide.
PALETTE: tuple[tuple[tuple[int, int, int], tuple[int, int, int], float], ...] = (
    ((235, 235, 235), (20, 20, 20), 0.30),  # white, black ink (EU, many US states)
    ((240, 215, 60), (20, 20, 20), 0.12),  # yellow, black ink (UK rear, NL, CN large vehicles)
    ((200, 200, 195), (30, 30, 35), 0.10),  # light grey
    ((30, 70, 170), (235, 235, 235), 0.15),  # blue, white ink (CN)
    ((225, 235, 245), (25, 45, 120), 0.10),  # white, blue ink (some US states)
    ((30, 120, 60), (235, 235, 235), 0.06),  # green, white ink
    ((25, 25, 25), (230, 230, 230), 0.09),  # black, white ink
    ((240, 240, 240), (160, 30, 30), 0.08),  # white, red ink
)


def _palette_choice(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    weights = np.array([w for _, _, w in PALETTE])
    bg, ink, _ = PALETTE[int(rng.choice(len(PALETTE), p=weights / weights.sum()))]
    tint = rng.normal(0, 12, 3)
    bg_c = np.clip(np.array(bg, np.float32) + tint + rng.normal(0, 10, 3), 0, 255)
    ink_c = np.clip(np.array(ink, np.float32) + tint * 0.5 + rng.normal(0, 10, 3), 0, 255)
    return bg_c, ink_c


def _lighting(rng: np.random.Generator, height: int, width: int | None = None) -> np.ndarray:
    """A smooth multiplicative illumination field around 1 (square unless `width` is given)."""
    width = height if width is None else width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / height - 0.5, xx / width - 0.5
    gx, gy = rng.normal(0, 0.25, 2)
    field = 1 + gx * xx + gy * yy
    if rng.random() < 0.3:  # a soft shadow edge
        angle = rng.uniform(0, np.pi)
        edge = np.cos(angle) * xx + np.sin(angle) * yy - rng.uniform(-0.4, 0.4)
        field *= 1 - rng.uniform(0.2, 0.5) / (1 + np.exp(-edge * 25))
    return field[..., None]


def degrade(image: np.ndarray, rng: np.random.Generator, unit: float | None = None, boxes: Sequence[Box] = ()
            ) -> tuple[np.ndarray, tuple[Box, ...]]:
    """Camera-like degradations of one HxWx3 float32 image in 0..255 (a character crop or a whole
    plate): the image as uint8 and its character `boxes` moved as the affine jitter moved their
    characters (a whole-pixel box around each, inside the image). `unit`: how many pixels of this image
    one pixel of a GLYPH_SIZE crop is (a plate's characters' frame side / GLYPH_SIZE); shifts, blur and
    resolution loss scale with it, so a plate's characters are degraded as much as a crop's. Default:
    the image is a crop."""
    height, width = image.shape[:2]
    unit = height / GLYPH_SIZE if unit is None else unit
    # affine jitter (rotation, shear, scale, shift), edges replicated like a real crop's surroundings
    angle, scale = rng.uniform(-5, 5), rng.uniform(0.92, 1.08)
    m = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    m[0, 1] += rng.uniform(-0.12, 0.12)
    m[:, 2] += rng.uniform(-1.5, 1.5, 2) * unit
    image = cv2.warpAffine(image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved = tuple(clip_box(b, image.shape) for b in warp_boxes(np.array(boxes, np.float64), m)) if boxes else ()
    # resolution loss: characters on plates are often 12-24 px high in the camera image
    if rng.random() < 0.7:
        factor = int(rng.integers(10, GLYPH_SIZE)) / GLYPH_SIZE / max(unit, 1e-6)
        if factor < 1:
            small = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (width, height),
                               interpolation=cv2.INTER_LINEAR)
    sigma = rng.uniform(0, 1.2) * unit
    if sigma > 0.3 * unit:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    # global exposure and contrast, then sensor noise
    contrast, bright = rng.uniform(0.7, 1.15), rng.uniform(-25, 20)
    image = (image - 128) * contrast + 128 + bright
    image = image + rng.normal(0, rng.uniform(0, 10), image.shape)
    out = np.clip(image, 0, 255).astype(np.uint8)
    quality = int(rng.integers(25, 96))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(out.shape)
    return out, moved


def _neighbour_ink(ch_pool: Sequence[str], fonts: Sequence[Font], font: Font, rng: np.random.Generator,
                   size: int) -> np.ndarray:
    """Ink of a neighbouring character cut by the frame's left or right edge (or none)."""
    ink = np.zeros((size, size), np.float32)
    for side in (-1, 1):
        if rng.random() < 0.5:
            continue
        other = ch_pool[int(rng.integers(len(ch_pool)))]
        use = font if font in fonts_for(other, fonts) else fonts_for(other, fonts)[0]
        jitter = GlyphJitter(dx=side * rng.uniform(0.42, 0.62), dy=rng.uniform(-0.03, 0.03))
        ink = np.maximum(ink, render_glyph(other, use, size, jitter).astype(np.float32) / 255)
    return ink


def render_characters(labels: Sequence[str], rng: np.random.Generator, fonts: Sequence[Font] | None = None,
                      size: int = GLYPH_SIZE, neighbours: Sequence[str] | None = None,
                      colours: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """[N, size, size, 3] uint8 RGB crops of `labels`, rendered and degraded; seeded by `rng` only.

    `neighbours`: characters that may appear cut at the frame edges (default: the labels' set).
    `colours`: each crop's (paper, ink) RGB, e.g. a real plate's (`recolour.plate_colours`);
    default: a draw from the generic PALETTE per crop.
    """
    fonts = list(fonts) if fonts is not None else shipped_fonts()
    check_coverage(sorted(set(labels)), fonts)
    pool = sorted(set(neighbours if neighbours is not None else labels))
    pool = [c for c in pool if fonts_for(c, fonts)] or sorted(set(labels))
    out = np.empty((len(labels), size, size, 3), np.uint8)
    for i, ch in enumerate(labels):
        choices = fonts_for(ch, fonts)
        font = choices[int(rng.integers(len(choices)))]
        ink = render_glyph(ch, font, size, sample_jitter(rng)).astype(np.float32) / 255
        if pool and rng.random() < 0.7:
            ink = np.maximum(ink, _neighbour_ink(pool, fonts, font, rng, size))
        bg, fg = _palette_choice(rng) if colours is None else colours[i]
        texture = rng.normal(0, rng.uniform(0, 8), (size, size, 1)).astype(np.float32)
        image = (bg + texture) * (1 - ink[..., None]) + fg * ink[..., None]
        image = image * _lighting(rng, size)
        out[i], _ = degrade(image.astype(np.float32), rng)
    return out


def augment_crops(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Classical augmentation of real crops: colour jitter plus the same degradations as rendering."""
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise PlategenError(f"augment_crops: expected [N, H, W, 3] crops, got {crops.shape}")
    out = np.empty_like(crops)
    for i, crop in enumerate(crops):
        out[i], _ = augment_image(crop, rng)
    return out


def augment_image(image: np.ndarray, rng: np.random.Generator, unit: float | None = None, boxes: Sequence[Box] = ()
                  ) -> tuple[np.ndarray, tuple[Box, ...]]:
    """One HxWx3 uint8 image (a crop, or a whole plate with `unit` and `boxes` as in `degrade`) with a
    colour jitter, uneven lighting and `degrade`."""
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)  # white balance
    out = image.astype(np.float32) * gain
    return degrade(out * _lighting(rng, *image.shape[:2]), rng, unit, boxes)


def plate_unit(boxes: Sequence[tuple[int, int, int, int]]) -> float:
    """`degrade`'s unit for a plate: its characters' median frame side over a crop's side."""
    return float(np.median([frame_square(b)[2] for b in boxes])) / GLYPH_SIZE


def render_plates(canvas: "Canvas", plan: "PlatePlan", fonts: Sequence[Font], rng: np.random.Generator
                  ) -> list[tuple[np.ndarray, tuple[Box, ...]]]:
    """The planned plates drawn with fonts instead of the SAAE: per plate one shipped font (one that
    covers its whole text where there is one), each character with a seeded jitter, rendered at its
    frame's size and placed at its slot's box in the style plate's ink colour on the erased style
    plate, then uneven lighting and `degrade` over the whole plate. Each an HxWx3 uint8 image of the style
    plate's size and its characters' boxes there (the slots' boxes, moved as `degrade` moved the plate)."""
    check_coverage(sorted({c for t in plan.texts for c in t}), fonts)
    out = []
    for i, text in enumerate(plan.texts):
        k = int(plan.style[i])
        background, ink = canvas.get(k)
        boxes = [slot.box for slot in plan.layouts[k].char_slots]
        whole = [f for f in fonts if all(covers(f, c) for c in text)]
        plate_font = whole[int(rng.integers(len(whole)))] if whole else None
        size = max(GLYPH_SIZE, ceil(max(frame_square(b)[2] for b in boxes)))
        glyphs = []
        for ch in text:
            font = plate_font or fonts_for(ch, fonts)[int(rng.integers(len(fonts_for(ch, fonts))))]
            glyphs.append(np.repeat(render_glyph(ch, font, size, sample_jitter(rng))[..., None], 3, axis=2))
        plate = place_characters(background, glyphs, boxes, ink).astype(np.float32)
        out.append(degrade(plate * _lighting(rng, *plate.shape[:2]), rng, plate_unit(boxes), boxes))
    return out
