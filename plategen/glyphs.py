"""Shipped fonts, character coverage, and content glyphs with seeded per-sample variation.

Glyphs are grayscale uint8 arrays, ink = 255 on background = 0, framed exactly
like real character crops (see `frame_square`): a square around the ink box
with a fixed margin, so a glyph and the crop it should become line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import math
import numbers

import cv2
import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from plategen.errors import PlategenError
from plategen.sizes import GLYPH_SIZE

FONTS_DIR = Path(__file__).resolve().parents[1] / "fonts"
CROP_MARGIN = 1.2  # square side = CROP_MARGIN * longer side of the ink / character box
# Widths a content glyph is narrowed to (ink width / height), in steps: a model trained on narrowed glyphs
# (`SAAEConfig.glyph_aspect`) gets each glyph narrowed to the step nearest the width of the box it is drawn into
# (`narrowest`), where the glyph is wider.
ASPECTS = tuple(round(0.30 + 0.05 * i, 2) for i in range(19))  # 0.30 ... 1.20
WIDEST = len(ASPECTS) - 1  # the step of a box wider than that, or unknown (the shipped fonts' widest glyph, W, is 1.43)
_RENDER_PX = 128  # glyphs are drawn large, then reduced with area averaging


@dataclass(frozen=True)
class Font:
    name: str
    path: Path


@dataclass(frozen=True)
class GlyphJitter:
    """Per-sample variation of a content glyph; the identity is `GlyphJitter()`."""

    scale: float = 1.0  # >1 draws the glyph larger in its frame
    dx: float = 0.0  # shift as a fraction of the frame side
    dy: float = 0.0
    angle: float = 0.0  # degrees, counter-clockwise
    stroke: int = 0  # pixels at render size (128 px): >0 bolder, <0 thinner


@dataclass(frozen=True)
class JitterRange:
    scale: tuple[float, float] = (0.92, 1.08)
    shift: float = 0.05
    angle: float = 4.0
    stroke: tuple[int, int] = (-2, 3)

    def __post_init__(self):
        """Checked when made: a zero scale, a backwards range or nan failed deep in numpy at the first jittered
        glyph, and beyond these bounds glyphs come out blank (of 0-9A-Z in the 4 shipped fonts: stroke -5 9 of 144,
        -8 99; scale 2.5 1, 4 13; shift 0.5 2) or crash. Any pair of numbers is taken, numpy's too (as plain
        numbers; plain ones as given, so meta.json keeps them)."""
        def plain(value, low: float, high: float, whole: bool = False):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                return None
            try:
                number = float(value)  # numpy's and Python's numbers alike
            except OverflowError:  # an int past any float
                return None
            if not (math.isfinite(number) and low <= number <= high) or (whole and not number.is_integer()):
                return None
            if whole:
                return int(number)
            return value if type(value) in (int, float) else number

        for name, low, high, whole in (("scale", 0.5, 2.0, False), ("stroke", -4, 8, True)):
            value = getattr(self, name)
            pair = not isinstance(value, (str, bytes)) and np.ndim(value) == 1 and len(value) == 2
            both = [plain(v, low, high, whole) for v in value] if pair else []
            if len(both) != 2 or None in both or both[0] > both[1]:
                raise PlategenError(f"JitterRange.{name} {value!r}: need (low, high), {low:g} <= low <= high <= "
                                    f"{high:g}" + (", whole pixels" if whole else ""))
            object.__setattr__(self, name, tuple(both))
        for name, high in (("shift", 0.25), ("angle", 45.0)):
            value = plain(getattr(self, name), 0.0, high)
            if value is None:
                raise PlategenError(f"JitterRange.{name} {getattr(self, name)!r}: need a number from 0 to {high:g}")
            object.__setattr__(self, name, value)


def shipped_fonts(fonts_dir: Path = FONTS_DIR) -> list[Font]:
    paths = sorted(p for p in fonts_dir.glob("*") if p.suffix.lower() in {".ttf", ".otf"})
    if not paths:
        raise PlategenError(f"{fonts_dir}: no .ttf/.otf fonts found (is the repository complete?)")
    return [Font(p.stem, p) for p in paths]


@lru_cache(maxsize=None)
def _codepoints(path: Path) -> frozenset[int]:
    try:
        return frozenset(TTFont(path, lazy=True).getBestCmap() or {})
    except Exception as exc:  # fontTools raises many types for damaged files
        raise PlategenError(f"{path}: not a readable font ({exc})") from exc


def covers(font: Font, ch: str) -> bool:
    return ord(ch) in _codepoints(font.path)


# Glyph shapes no plate of ../shared/data prints, left out where another font has the character: the 1 of DejaVu
# and Liberation carries a foot, which the generator keeps and which reads as L (benchmarks/composition_gap.py,
# placed 1s read as asked on held-out uc3m / ccpd / US styles: 0.95 / 0.92 / 0.93 with them, 0.97 / 0.94 / 0.98 without).
NOT_ON_PLATES = {"1": ("DejaVuSans-Bold", "LiberationSansNarrow-Bold")}


def fonts_for(ch: str, fonts: Sequence[Font]) -> list[Font]:
    """The fonts that draw `ch` the way plates print it (every font that covers it, when none does)."""
    covering = [f for f in fonts if covers(f, ch)]
    return [f for f in covering if f.name not in NOT_ON_PLATES.get(ch, ())] or covering


SHOWN_MISSING = 10


def check_coverage(chars: Sequence[str], fonts: Sequence[Font]) -> None:
    """Raise one error naming the characters that no font can draw (the first SHOWN_MISSING of them: a range of
    thousands named every one, a 123 KB line)."""
    missing = [c for c in chars if not fonts_for(c, fonts)]
    if missing:
        names = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:SHOWN_MISSING])
        names += f", and {len(missing) - SHOWN_MISSING:,} more" if len(missing) > SHOWN_MISSING else ""
        raise PlategenError(
            f"no shipped font covers {len(missing)} character(s): {names}; "
            f"fonts searched: {', '.join(f.name for f in fonts)}"
        )


def sample_jitter(rng: np.random.Generator, spread: JitterRange = JitterRange()) -> GlyphJitter:
    return GlyphJitter(
        scale=float(rng.uniform(*spread.scale)),
        dx=float(rng.uniform(-spread.shift, spread.shift)),
        dy=float(rng.uniform(-spread.shift, spread.shift)),
        angle=float(rng.uniform(-spread.angle, spread.angle)),
        stroke=int(rng.integers(spread.stroke[0], spread.stroke[1] + 1)),
    )


@lru_cache(maxsize=16)
def _pil_font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), _RENDER_PX)


@lru_cache(maxsize=4096)
def _draw_large(ch: str, font_path: Path, stroke: int) -> np.ndarray:
    canvas = Image.new("L", (_RENDER_PX * 2, _RENDER_PX * 2), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(stroke, 0)
    draw.text((_RENDER_PX, _RENDER_PX), ch, font=_pil_font(font_path), fill=255, anchor="mm",
              stroke_width=width, stroke_fill=255)
    ink = np.asarray(canvas)
    if stroke < 0:
        kernel = np.ones((1 - 2 * stroke, 1 - 2 * stroke), np.uint8)
        ink = cv2.erode(ink, kernel)
    return ink


def _narrowed(ch: str, font_path: Path, stroke: int, width: int | None) -> np.ndarray:
    """The large glyph, its ink squeezed about its centre to at most ASPECTS[width] of its height (None: as drawn)."""
    ink = _draw_large(ch, font_path, stroke)
    if width is None:
        return ink
    x0, y0, x1, y1 = ink_box(_draw_large(ch, font_path, 0))
    factor = ASPECTS[width] * (y1 - y0) / (x1 - x0)
    if factor >= 1:
        return ink
    cx = (x0 + x1) / 2
    matrix = np.float32([[factor, 0, cx - factor * cx], [0, 1, 0]])
    return cv2.warpAffine(ink, matrix, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_AREA)


def narrowest(aspects: np.ndarray | Sequence[float]) -> np.ndarray:
    """The ASPECTS step nearest each box width / height (int64; past the last, WIDEST)."""
    aspects = np.asarray(aspects, np.float64)
    steps = np.rint((np.nan_to_num(aspects, nan=np.inf) - ASPECTS[0]) / 0.05)
    return np.clip(steps, 0, WIDEST).astype(np.int64)


@lru_cache(maxsize=16384)
def _plain_frame(ch: str, font_path: Path, width: int | None = None) -> tuple[float, float, float]:
    """The frame of the undistorted glyph (jitter moves the glyph within it), worked out once per character, font
    and width."""
    return frame_square(ink_box(_narrowed(ch, font_path, 0, width)))


def ink_box(ink: np.ndarray, threshold: int = 64) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(ink > threshold)
    if len(xs) == 0:
        raise PlategenError("glyph has no ink")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def frame_square(box: tuple[float, float, float, float], margin: float = CROP_MARGIN) -> tuple[float, float, float]:
    """Centre and side of the square frame used for both glyphs and real character crops."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * margin
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def warp_to_frame(image: np.ndarray, cx: float, cy: float, side: float, size: int,
                  angle: float = 0.0, border_value: int | tuple[int, ...] = 0,
                  border_mode: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """Resample the square (cx, cy, side), rotated by `angle`, to size x size.

    Large reductions are pre-blurred so thin strokes do not alias away.
    """
    factor = side / size
    src = image
    if factor > 2:
        sigma = 0.45 * factor
        src = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0 / factor)
    matrix[0, 2] += size / 2 - cx
    matrix[1, 2] += size / 2 - cy
    return cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=border_mode, borderValue=border_value)


def render_glyph(ch: str, font: Font, size: int = GLYPH_SIZE, jitter: GlyphJitter = GlyphJitter(),
                 width: int | None = None) -> np.ndarray:
    """A size x size uint8 glyph (ink 255 on 0), framed like a real crop; same jitter, same pixels. `width`: the
    ASPECTS step its ink is narrowed to where it is wider (None: as the font draws it); a plate's M is as narrow as its
    other characters, a font's up to twice as wide."""
    if not covers(font, ch):
        raise PlategenError(f"font {font.name} ({font.path}) has no glyph for {ch!r} (U+{ord(ch):04X})")
    cx, cy, side = _plain_frame(ch, font.path, width)
    ink = _narrowed(ch, font.path, jitter.stroke, width)
    side /= jitter.scale
    return warp_to_frame(ink, cx - jitter.dx * side, cy - jitter.dy * side, side, size, jitter.angle)
