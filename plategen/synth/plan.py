"""The plan: fixed by the seed before any image is drawn, it says for image i its label, which
content-glyph variant and which style entry each of its draws combines, and its own seed.

Diversity comes from pools built once per run and combined without repetition:
- content: per label, the clean glyph of every font that covers it, plus
  `Diversity.jittered_glyphs` glyphs with their own scale / shift / rotation / stroke jitter
  (none by default: see `Diversity`);
- style: every style plate as given, plus random crops, shifts, scale, colour and blur
  changes of it, and (with several styles) codes interpolated between two plates;
- each (glyph variant, style entry) pair is used at most once per label, by a first draw or
  a label-check retry, while pairs last (the style pool grows to make them last).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np

from plategen.dataset import style_image
from plategen.errors import PlategenError
from plategen.glyphs import Font, GlyphJitter, JitterRange, fonts_for, render_glyph, sample_jitter
from plategen.synth.inputs import Style

MAX_STYLE_ENTRIES = 4096  # style entries
MAX_GLYPH_ENTRIES = 3072  # glyph variants over all labels
CHECK_ATTEMPTS = 4  # draws of one image at most, while the discriminator reads another character or is unsure
# ... or reads it as its label with less than this probability (among the k real classes); the best-read draw is
# kept. Characters placed on 500 plates of 50 held-out styles (`benchmarks/composition_gap.py`) read as asked by a
# CNN trained on real crops, argmax alone -> this: uc3m-lp 95.3 -> 95.6%, openalpr-us 92.3 -> 93.0%, ccpd-crops
# 75.8 -> 77.8% (0.99: openalpr-us 93.2%)
# a run's plan is held in memory: 10M characters take about 2 GB, 10M plates about 10 GB and minutes to plan
MAX_IMAGES = {False: 10_000_000, True: 1_000_000}  # by whole plates or not
CHECK_SURE = 0.9


DIVERSITY_RANGES = (("jittered_glyphs", 0, 4096), ("style_entries", 1, 1 << 20), ("crop", 0, 0.45), ("shift", 0, 0.5),
                    ("colour", 0, 0.5), ("blur", 0, 10), ("mix", 0, 1))
COUNTS = {"jittered_glyphs", "style_entries"}


def _finite(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


@dataclass(frozen=True)
class Diversity:
    """How far generated images vary; the defaults are what `plategen synth` uses."""

    # Jittered content glyphs per label, beyond one clean glyph per covering font. 0: the model
    # trains on clean glyphs, and jittered ones (shift and stroke most) made it draw characters
    # a recogniser trained on real crops misreads (benchmarks/glyph_jitter.py: read as asked
    # 87.9% with 64 jittered glyphs, 97.1% clean). Variety comes from the style side instead.
    jittered_glyphs: int = 0
    style_entries: int = 1024  # style codes in the pool, at least; more when pairs would repeat
    crop: float = 0.10  # up to this fraction of the plate's width / height is cut away
    shift: float = 0.03  # extra translation of the crop, fraction of the plate size
    colour: float = 0.08  # per-channel gain 1 +- colour, contrast 1 +- 1.5 colour, brightness +- 100 colour
    blur: float = 0.8  # largest Gaussian sigma (style pixels) applied to half of the variants
    mix: float = 0.5  # fraction of style entries interpolated towards a second plate (>1 style)
    noise: float = 2.0  # sigma (0-255 scale) of Gaussian noise added after generation; 0 = none
    match_colours: bool = True  # recolour each character to its style entry's paper and ink (synth/recolour.py)
    jitter: JitterRange = JitterRange()

    def __post_init__(self):
        if not (_finite(self.noise) and 0 <= self.noise <= 255):
            raise PlategenError(f"--noise {self.noise}: must be a sigma from 0 to 255 grey levels")
        # the library's callers reach the rest: crop nan raised numpy's OverflowError, style_entries -5 or mix 2 drew
        for name, low, high in DIVERSITY_RANGES:
            value = getattr(self, name)
            if not (_finite(value) and low <= value <= high) or (name in COUNTS and int(value) != value):
                raise PlategenError(f"Diversity.{name} {value!r}: need a {'whole ' if name in COUNTS else ''}number "
                                    f"from {low} to {high}")
        if not isinstance(self.match_colours, bool):
            raise PlategenError(f"Diversity.match_colours {self.match_colours!r}: need True or False")
        if not isinstance(self.jitter, JitterRange):
            raise PlategenError(f"Diversity.jitter {self.jitter!r:.60}: need a glyphs.JitterRange")

    def to_dict(self) -> dict:
        return asdict(self)


def label_counts(n: int, k: int) -> list[int]:
    """n spread over k labels: every label gets n // k, the first n % k one more."""
    if k <= 0:
        raise PlategenError("--chars: no characters to generate")
    if n < 1:
        raise PlategenError(f"--n {n}: need at least one image")
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def image_seeds(seed: int, ids: np.ndarray) -> np.ndarray:
    """A 64-bit seed per image (splitmix64 of run seed and index)."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)) + ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))



@dataclass
class GlyphPool:
    glyphs: np.ndarray  # [G, S, S] uint8, all labels' variants
    fonts: list[str]  # [G]
    offset: list[int]  # first entry of each label
    size: list[int]  # variants of each label


def build_glyph_pool(chars: Sequence[str], counts: Sequence[int], fonts: Sequence[Font], seed: int,
                     diversity: Diversity, size: int, widths: Sequence[int | None] | None = None) -> GlyphPool:
    """Per label, the clean glyph of each font that covers it, then `jittered_glyphs` more
    cycling over those fonts; never more than `count`. Each label has its own random stream, so
    a label's glyphs do not depend on which other labels are in the run. `widths`: per label, the
    `glyphs.ASPECTS` step its glyphs are narrowed to (None: as drawn), for a model trained so."""
    cap = max(8, MAX_GLYPH_ENTRIES // max(len(chars), 1))
    glyphs, names, offset, sizes = [], [], [], []
    for li, (ch, count) in enumerate(zip(chars, counts)):
        width = widths[li] if widths is not None else None
        rng = np.random.default_rng([seed, 2, ord(ch)])
        usable = fonts_for(ch, fonts)
        k = max(1, min(count, len(usable) + diversity.jittered_glyphs, cap))
        offset.append(len(glyphs))
        sizes.append(k)
        for v in range(k):
            font = usable[v % len(usable)]
            jitter = GlyphJitter() if v < len(usable) else sample_jitter(rng, diversity.jitter)
            glyphs.append(render_glyph(ch, font, size, jitter, width))
            names.append(font.name)
    return GlyphPool(np.stack(glyphs), names, offset, sizes)


@dataclass
class StylePool:
    images: np.ndarray  # [P, Hs, Ws, 3] uint8: the style input of each entry
    primary: np.ndarray  # [P] style index
    partner: np.ndarray  # [P] index of the entry mixed in, -1 for none
    weight: np.ndarray  # [P] float32 weight of the partner's code
    names: list[str]  # [P] manifest name of each entry


def _augment(image: np.ndarray, size: tuple[int, int], rng: np.random.Generator, d: Diversity) -> np.ndarray:
    """A random crop / shift / scale of the plate, resampled to the style size, with mild colour and blur."""
    height, width = size
    h, w = image.shape[:2]
    cut_x, cut_y = rng.uniform(0, d.crop, 2)
    cw, ch = w * (1 - cut_x), h * (1 - cut_y)
    x0 = rng.uniform(0, w - cw) + rng.uniform(-d.shift, d.shift) * w
    y0 = rng.uniform(0, h - ch) + rng.uniform(-d.shift, d.shift) * h
    sx, sy = width / cw, height / ch
    matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float64)
    src = image
    if w > 2 * width:  # reduce first so the warp does not alias
        src = cv2.resize(image, (2 * width, max(2, round(h * 2 * width / w))), interpolation=cv2.INTER_AREA)
        matrix[0, 0] *= w / src.shape[1]
        matrix[1, 1] *= h / src.shape[0]
    out = cv2.warpAffine(src, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.astype(np.float32)
    gain = 1 + rng.uniform(-d.colour, d.colour, 3).astype(np.float32)
    contrast = np.float32(1 + rng.uniform(-1.5 * d.colour, 1.5 * d.colour))
    bright = np.float32(rng.uniform(-100 * d.colour, 100 * d.colour))
    mean = out.mean()
    out = (out - mean) * contrast + mean
    out = out * gain + bright
    if d.blur > 0 and rng.random() < 0.5:
        sigma = rng.uniform(0.3, d.blur)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def build_style_pool(styles: Sequence[Style], n: int, seed: int, diversity: Diversity,
                     size: tuple[int, int], entries: int) -> StylePool:
    """`entries` style entries (at least one per plate, at most MAX_STYLE_ENTRIES).
    Entry j uses plate j % S; the first S entries are the plates as given, later ones are
    augmented, and with several plates a `mix` fraction of them is interpolated towards a
    second plate's as-given entry."""
    rng = np.random.default_rng([seed, 3])
    s = len(styles)
    p = min(max(entries, s), MAX_STYLE_ENTRIES, max(n * CHECK_ATTEMPTS, 1))
    images = np.empty((p, *size, 3), np.uint8)
    primary = np.arange(p) % s
    partner = np.full(p, -1, np.int64)
    weight = np.zeros(p, np.float32)
    names = []
    for j in range(p):
        style = styles[primary[j]]
        images[j] = style_image(style.image, size) if j < s else _augment(style.image, size, rng, diversity)
        name = style.name
        if s > 1 and j >= s and rng.random() < diversity.mix:
            other = int(rng.integers(0, min(s, p) - 1))
            other += other >= primary[j]  # a different plate
            if other < p:
                partner[j], weight[j] = other, rng.uniform(0.15, 0.5)
                name = f"{name}|{styles[other].name}"
        names.append(name)
    return StylePool(images, primary, partner, weight, names)


@dataclass
class Plan:
    chars: list[str]
    counts: list[int]
    label: np.ndarray  # [n] int64 index into chars
    glyph: np.ndarray  # [draws, n] int64 entry of the glyph pool; row 0 the first draw, then retries
    style: np.ndarray  # [draws, n] int64 entry of the style pool
    seed: np.ndarray  # [n] uint64

    @property
    def n(self) -> int:
        return len(self.label)


def style_entries_needed(counts: Sequence[int], glyphs: GlyphPool, draws: int) -> int:
    """Style entries that give every draw of every image its own pair within its label."""
    return max(math.ceil(c * draws / k) for c, k in zip(counts, glyphs.size))


def make_plan(chars: Sequence[str], counts: Sequence[int], glyphs: GlyphPool, style_entries: int,
              seed: int, draws: int = CHECK_ATTEMPTS) -> Plan:
    """Per label, a seeded order of its (glyph variant, style entry) pairs: first draws take the
    first `count`, retry t the next `count`, so no pair repeats while pairs last (then the
    order starts again); then a seeded shuffle so every chunk mixes labels."""
    rng = np.random.default_rng([seed, 1])
    label, glyph, style = [], [], []
    for li, count in enumerate(counts):
        pairs = glyphs.size[li] * style_entries
        pick = np.resize(rng.permutation(pairs), (draws, count))
        label.append(np.full(count, li, np.int64))
        glyph.append(glyphs.offset[li] + pick // style_entries)
        style.append(pick % style_entries)
    order = rng.permutation(sum(counts))
    glyph_a, style_a = (np.concatenate(a, axis=1)[:, order].astype(np.int64) for a in (glyph, style))
    return Plan(list(chars), list(counts), np.concatenate(label)[order], glyph_a, style_a,
                image_seeds(seed, np.arange(len(order))))

