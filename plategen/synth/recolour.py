"""Colour matching: each generated character takes its style plate's paper and ink colours.

On designs it never saw the shipped generator draws the right shapes in the wrong colours
(issue 12: navy-on-white California plates come out with blue-grey or purple paper and a
bright blue bar at the left edge; black Spanish ink comes out blue-grey). Retraining is
costly, so synthesis measures and corrects instead:

- the style entry's paper and ink: Otsu on the luminance of its central band (the EU band,
  the frame and the state name lie outside it); paper is the larger class, ink the smaller;
  each colour is the class median (benchmarks/style_fidelity.py --trained-plates: medians
  follow the real crops better than means, US ink 4.5 against 8.5 ΔE);
- the generated crop's own paper and ink: a two-class split of its luminance (iterated
  mean threshold), ink being the class the clean content glyph covers more; class means;
- each pixel's place t on the crop's paper (0) -> ink (1) colour axis, held to [0, 1],
  becomes the style's colour at t, plus RESIDUAL of what the axis does not explain
  (texture, dirt; a tint such as the blue bar is cut by as much).

A crop is left as it is when its two classes hardly differ (nothing drawn) or when its ink is
lighter than its paper and the style's darker, or the reverse: a plate whose centre is mostly
masks, frame or artwork can fool the split, and turning a legible character inside out is
worse than a wrong tint (the label check reads such characters badly).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from plategen.synth.plan import StylePool

BAND_ROWS = (0.2, 0.85)  # central band of the style entry whose pixels give its paper and ink
BAND_COLUMNS = (0.15, 0.95)  # (the EU band and a left frame lie left of it)
RESIDUAL = 0.5  # share of the off-axis colour (texture, tint) kept
MIN_CONTRAST = 12.0  # luminance gap (0-255) between a crop's paper and ink below which it is left alone
SPLIT_ROUNDS = 4  # iterations of the mean-threshold split of a crop's luminance
AUGMENTED_DRIFT = 60.0  # RGB distance from the as-given plate's colours beyond which an augmented entry's are not trusted
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Palette:
    """Paper and ink colour of every style entry, RGB 0-255."""

    background: np.ndarray  # [P, 3] float32
    ink: np.ndarray  # [P, 3] float32


def plate_colours(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(paper, ink) RGB of one style entry [H,W,3] uint8: Otsu on the luminance of its central band."""
    h, w = image.shape[:2]
    band = image[round(BAND_ROWS[0] * h):round(BAND_ROWS[1] * h), round(BAND_COLUMNS[0] * w):round(BAND_COLUMNS[1] * w)]
    pixels = band.reshape(-1, 3)
    luma = cv2.cvtColor(band, cv2.COLOR_RGB2GRAY).reshape(-1)
    threshold, _ = cv2.threshold(luma, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = luma > threshold
    if light.all() or not light.any():
        colour = np.median(pixels, 0).astype(np.float32)
        return colour, colour
    paper = light if light.mean() >= 0.5 else ~light
    return np.median(pixels[paper], 0).astype(np.float32), np.median(pixels[~paper], 0).astype(np.float32)


def style_palette(pool: StylePool) -> Palette:
    """The palette of a style pool's entries.

    An augmented entry keeps its own colours (the pool's colour jitter is part of the variety)
    unless its crop moved a band or a frame into the centre: when its paper and ink swap
    lightness or either lies over AUGMENTED_DRIFT from its plate's as-given entry, it takes the
    plate's. An interpolated entry mixes its two plates' colours as its style code is mixed.
    """
    parts = [plate_colours(image) for image in pool.images]
    background = np.array([p[0] for p in parts], np.float32)
    ink = np.array([p[1] for p in parts], np.float32)
    plate_bg, plate_ink = background[pool.primary], ink[pool.primary]  # entry j < plates is plate j as given
    luma = np.asarray(LUMA, np.float32)
    swapped = np.sign((background - ink) @ luma) != np.sign((plate_bg - plate_ink) @ luma)
    drift = np.maximum(np.linalg.norm(background - plate_bg, axis=1), np.linalg.norm(ink - plate_ink, axis=1))
    astray = swapped | (drift > AUGMENTED_DRIFT)
    background[astray], ink[astray] = plate_bg[astray], plate_ink[astray]
    mixed = pool.partner >= 0
    if mixed.any():
        w = pool.weight[mixed, None]
        background[mixed] = (1 - w) * background[mixed] + w * background[pool.partner[mixed]]
        ink[mixed] = (1 - w) * ink[mixed] + w * ink[pool.partner[mixed]]
    return Palette(background, ink)


def match_colours(images: Tensor, glyphs: Tensor, background: Tensor, ink: Tensor) -> Tensor:
    """Generated crops [B,3,S,S] (0-255) recoloured to paper `background` and `ink` [B,3];
    `glyphs` [B,1,S,S] (0-1, ink high) are their content glyphs, which tell ink from paper.

    Per crop: its paper goes to `background`, its ink to `ink`, what lies off the paper-ink
    axis is scaled by RESIDUAL. A few passes over the pixels, batched: cheap next to the generator.
    """
    b = images.shape[0]
    pixels = images.reshape(b, 3, -1)
    n = pixels.shape[2]
    luma_w = pixels.new_tensor(LUMA)
    luma = torch.einsum("c,bcn->bn", luma_w, pixels)
    threshold = luma.mean(1, keepdim=True)
    luma_sum = luma.sum(1, keepdim=True)
    for _ in range(SPLIT_ROUNDS):
        light = (luma > threshold).to(luma.dtype)
        n_light = light.sum(1, keepdim=True)
        sum_light = (luma * light).sum(1, keepdim=True)
        mean_light = sum_light / n_light.clamp_min(1)
        mean_dark = (luma_sum - sum_light) / (n - n_light).clamp_min(1)
        threshold = torch.where((n_light > 0) & (n_light < n), (mean_light + mean_dark) / 2, threshold)
    light = (luma > threshold).to(luma.dtype)
    n_light = light.sum(1)
    split = (n_light > 0) & (n_light < n)
    glyph = glyphs.reshape(b, -1)
    glyph_light = (glyph * light).sum(1)
    on_light = glyph_light / n_light.clamp_min(1)
    on_dark = (glyph.sum(1) - glyph_light) / (n - n_light).clamp_min(1)
    sum_light = torch.bmm(pixels, light.unsqueeze(2)).squeeze(2)  # [B,3]
    mean_light = sum_light / n_light.clamp_min(1).unsqueeze(1)
    mean_dark = (pixels.sum(2) - sum_light) / (n - n_light).clamp_min(1).unsqueeze(1)
    ink_is_light = (on_light > on_dark).unsqueeze(1)
    gen_ink = torch.where(ink_is_light, mean_light, mean_dark)
    gen_paper = torch.where(ink_is_light, mean_dark, mean_light)
    axis = gen_ink - gen_paper  # [B,3]
    along = axis / (axis * axis).sum(1, keepdim=True).clamp_min(1e-6)
    # t: each pixel's place on the paper -> ink axis, held to [0, 1] (the generator's paper and
    # ink are softer than a printed plate's: nothing may go past the style's)
    t = (torch.bmm(along.unsqueeze(1), pixels) - (along * gen_paper).sum(1)[:, None, None]).clamp_(0, 1)
    # background + t (ink - background) + RESIDUAL (pixel - paper - t axis)
    span = (ink - background - RESIDUAL * axis).unsqueeze(2)  # [B,3,1]
    bias = (background - RESIDUAL * gen_paper).unsqueeze(2)
    out = torch.baddbmm(bias, span, t).add_(pixels, alpha=RESIDUAL).clamp_(0, 255)
    gap = (axis * luma_w).sum(1)
    same_polarity = (gap > 0) == (((ink - background) * luma_w).sum(1) > 0)
    recolour = split & (gap.abs() >= MIN_CONTRAST) & same_polarity
    return torch.where(recolour[:, None, None], out, pixels).reshape(images.shape)
