"""Text-guided character segmentation: one box per character of a known plate text, or a refusal.

The boxes become labelled training crops, so a wrong box is worse than none: every
hypothesis must explain the text exactly (one blob per character, in a consistent row)
or the plate is refused with a reason. Hypotheses come from several binarisations
(both polarities, global and local thresholds); the best consistent one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive

WORK_HEIGHT = 64  # small plates are upscaled to this height so thresholds see strokes, not pixels
NARROW = frozenset("1I")  # characters whose blob may be a bare stroke


@dataclass(frozen=True)
class Segmentation:
    boxes: tuple[Box, ...] | None  # one per text character, in text order; None when refused
    reason: str  # "" when boxes were found, else why not


class _Candidate(NamedTuple):
    score: float
    boxes: tuple[Box, ...]


class _Row(NamedTuple):
    """A text line: centre line y = a*x + b and the character height."""

    a: float
    b: float
    height: float


def segment_plate(image: np.ndarray, text: str) -> Segmentation:
    """Boxes for `text` in `image` (HxWx3 uint8 RGB), or a refusal saying why."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return Segmentation(None, f"expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if len(text) < 2:
        return Segmentation(None, f"text {text!r} is too short to check a consistent row")
    if any(not c.isascii() for c in text[1:]):
        return Segmentation(None, "only a leading non-Latin (e.g. province) character is supported")
    gray, scale = _work_gray(image)
    forbidden = _masked_areas(gray)
    candidates: list[_Candidate] = []
    misses: list[tuple[int, str]] = []
    for binary in _binarisations(gray, forbidden, len(text)):
        comps = _components(binary)
        for row in _rows(comps, gray.shape):
            found = _segment_row(comps, row, text)
            if isinstance(found, _Candidate):
                candidates.append(found)
            else:
                misses.append(found)
    if not candidates:
        return Segmentation(None, min(misses)[1] if misses else "no row of character-sized blobs found")
    best = max(candidates)
    return Segmentation(_to_image_boxes(best.boxes, scale, image.shape), "")


def _work_gray(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey image at a working scale where a stroke spans a few pixels."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = max(1.0, WORK_HEIGHT / gray.shape[0])
    if scale > 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return gray, scale


def _masked_areas(gray: np.ndarray) -> np.ndarray:
    """Privacy masks: flat grey rectangles. They must never become (or join) a character blob.

    Only the JPEG blocks wholly inside a mask are exactly flat, so flat cores are found
    first and then grown over the compression ringing up to the mask's real edges.
    """
    kernel = np.ones((3, 3), np.uint8)
    flat = (cv2.dilate(gray, kernel) - cv2.erode(gray, kernel) <= 2).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    forbidden = np.zeros(gray.shape, bool)
    height = gray.shape[0]
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if h < 0.1 * height or w < 4 or area < 0.5 * w * h:
            continue
        level = float(np.median(gray[labels == i]))
        if not 15 < level < 240:  # clipped black/white areas are flat too, but are not masks
            continue
        x0, y0, x1, y1 = _grow_flat((x, y, x + w, y + h), gray, level)
        if y1 - y0 >= 0.2 * height and _share_at(gray[y0:y1, x0:x1], level) >= 0.9:
            forbidden[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
    return forbidden


def _share_at(pixels: np.ndarray, level: float) -> float:
    """Share of pixels within a few grey levels of `level` (JPEG noise on a flat patch)."""
    return float(np.mean(np.abs(pixels.astype(np.int16) - level) <= 8)) if pixels.size else 0.0


def _grow_flat(box: Box, gray: np.ndarray, level: float) -> Box:
    """Extend a flat rectangle while the next row/column is (almost all) at the same grey level."""
    x0, y0, x1, y1 = box
    height, width = gray.shape

    grown = True
    while grown:
        grown = False
        if x0 > 0 and _share_at(gray[y0:y1, x0 - 1], level) >= 0.9:
            x0, grown = x0 - 1, True
        if x1 < width and _share_at(gray[y0:y1, x1], level) >= 0.9:
            x1, grown = x1 + 1, True
        if y0 > 0 and _share_at(gray[y0 - 1, x0:x1], level) >= 0.9:
            y0, grown = y0 - 1, True
        if y1 < height and _share_at(gray[y1, x0:x1], level) >= 0.9:
            y1, grown = y1 + 1, True
    return x0, y0, x1, y1


def _binarisations(gray: np.ndarray, forbidden: np.ndarray, n_chars: int) -> list[np.ndarray]:
    """Foreground maps for dark-on-light and light-on-dark text, global and local thresholds."""
    height, width = gray.shape
    contrast = float(gray.std())
    blocks = {_odd(height * 0.5), _odd(height * 0.25)}
    run = max(int(1.3 * width / n_chars), 8)
    maps = []
    for src in (gray, 255 - gray):  # foreground = darker than surroundings
        _, otsu = cv2.threshold(src, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        maps.append(otsu)
        for block in blocks:
            for k in (0.05, 0.15, 0.3):
                maps.append(cv2.adaptiveThreshold(src, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                                  cv2.THRESH_BINARY_INV, block, k * contrast))
    return [_clean(m, forbidden, run) for m in maps]


def _odd(value: float) -> int:
    return max(int(value) // 2 * 2 + 1, 3)


def _clean(binary: np.ndarray, forbidden: np.ndarray, run: int) -> np.ndarray:
    """Drop masked pixels and horizontal runs longer than any character (frames, edges)."""
    binary[forbidden] = 0
    long_runs = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    return cv2.subtract(binary, long_runs)


def _components(binary: np.ndarray) -> np.ndarray:
    """Connected components as rows (x0, y0, x1, y1, area), specks removed."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    x, y, w, h, area = stats[1:].T
    inside = (x > 0) & (x + w < binary.shape[1])  # cut by the crop edge: a band, frame or half a char
    keep = inside & (area >= 4) & (h >= 0.05 * binary.shape[0]) & (w < 0.5 * binary.shape[1])
    return np.stack([x, y, x + w, y + h, area], axis=1)[keep]


def _rows(comps: np.ndarray, shape: tuple[int, int]) -> list[_Row]:
    """Lines of similar-height blobs that overlap vertically: hypotheses for the character row."""
    heights = comps[:, 3] - comps[:, 1]
    tall = np.flatnonzero((heights >= 0.2 * shape[0]) & (heights <= 0.98 * shape[0]))
    if len(tall) < 2:
        return []
    c = comps[tall]
    h = heights[tall].astype(float)
    ratio = np.maximum.outer(h, h) / np.minimum.outer(h, h)
    v_overlap = np.minimum.outer(c[:, 3], c[:, 3]) - np.maximum.outer(c[:, 1], c[:, 1])
    gap = np.maximum.outer(c[:, 0], c[:, 0]) - np.minimum.outer(c[:, 2], c[:, 2])
    linked = (ratio <= 1.35) & (v_overlap >= 0.5 * np.minimum.outer(h, h)) & (gap <= 2.0 * np.maximum.outer(h, h))
    group = _groups(linked)
    rows = []
    for g in np.unique(group):
        members = c[group == g]
        if len(members) >= 2:
            rows.append(_fit_row(members))
    return rows


def _groups(linked: np.ndarray) -> np.ndarray:
    """Connected-component labels of a symmetric adjacency matrix."""
    label = np.full(len(linked), -1)
    for start in range(len(linked)):
        if label[start] >= 0:
            continue
        stack = [start]
        label[start] = start
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(linked[i] & (label < 0)):
                label[j] = start
                stack.append(j)
    return label


def _fit_row(members: np.ndarray) -> _Row:
    """Robust (Theil-Sen) centre line, so one stray member cannot tilt the row."""
    cx = (members[:, 0] + members[:, 2]) / 2.0
    cy = (members[:, 1] + members[:, 3]) / 2.0
    dx = np.subtract.outer(cx, cx)
    dy = np.subtract.outer(cy, cy)
    pairs = dx > 0
    a = float(np.median(dy[pairs] / dx[pairs])) if pairs.any() else 0.0
    a = float(np.clip(a, -0.3, 0.3))
    b = float(np.median(cy - a * cx))
    return _Row(a, b, float(np.median(members[:, 3] - members[:, 1])))


def _segment_row(comps: np.ndarray, row: _Row, text: str) -> _Candidate | tuple[int, str]:
    """Boxes for the text along one row hypothesis, or (how far off, why not)."""
    cx = (comps[:, 0] + comps[:, 2]) / 2.0
    centre = row.a * cx + row.b
    tol = 0.3 * row.height
    in_band = (comps[:, 1] >= centre - row.height / 2 - tol) & (comps[:, 3] <= centre + row.height / 2 + tol)
    band = comps[in_band]
    blobs = _char_blobs(band, row)
    leading_wide = not text[0].isascii()
    latin_text = text[1:] if leading_wide else text
    n = len(latin_text)
    if len(blobs) < n:
        blobs = _split_wide(blobs, n)
    if len(blobs) < n or (len(blobs) > n and not leading_wide):
        return abs(len(blobs) - n), f"found {len(blobs)} character blobs for {len(latin_text)} characters"
    latin = blobs[len(blobs) - n:]
    boxes = [tuple(int(v) for v in b[:4]) for b in latin]
    if leading_wide:
        first = _wide_char(band, latin, row)
        if first is None:
            return 1, f"no plausible box for {text[0]!r} left of the other characters"
        boxes.insert(0, first)
    problem = _implausible(boxes, text, row)
    if problem:
        return 1, problem
    return _Candidate(_score(boxes, text, row), tuple(boxes))


def _char_blobs(band: np.ndarray, row: _Row) -> np.ndarray:
    """Full-height blobs of the row, with fragments of broken characters joined to them."""
    heights = band[:, 3] - band[:, 1]
    full = heights >= 0.8 * row.height
    seeds = band[full].copy()
    pool = []
    for frag in band[~full]:
        overlap = np.minimum(seeds[:, 2], frag[2]) - np.maximum(seeds[:, 0], frag[0]) if len(seeds) else np.zeros(0)
        best = int(np.argmax(overlap)) if len(overlap) else -1
        width = frag[2] - frag[0]
        if best >= 0 and overlap[best] >= 0.5 * width:
            s = seeds[best]
            if frag[1] >= s[1] - 0.1 * row.height and frag[3] <= s[3] + 0.1 * row.height:
                seeds[best, :4] = [min(s[0], frag[0]), min(s[1], frag[1]), max(s[2], frag[2]), max(s[3], frag[3])]
            continue
        pool.append(frag)
    joined = _join_overlapping(np.array(pool).reshape(-1, 5))
    promoted = joined[(joined[:, 3] - joined[:, 1]) >= 0.8 * row.height]
    blobs = np.concatenate([seeds, promoted])
    return blobs[np.argsort(blobs[:, 0] + blobs[:, 2])]


def _join_overlapping(frags: np.ndarray) -> np.ndarray:
    """Union of fragments that overlap horizontally by half the narrower one (a char broken apart)."""
    if len(frags) < 2:
        return frags
    w = frags[:, 2] - frags[:, 0]
    overlap = np.minimum.outer(frags[:, 2], frags[:, 2]) - np.maximum.outer(frags[:, 0], frags[:, 0])
    group = _groups(overlap >= 0.5 * np.minimum.outer(w, w))
    out = []
    for g in np.unique(group):
        m = frags[group == g]
        out.append([m[:, 0].min(), m[:, 1].min(), m[:, 2].max(), m[:, 3].max(), m[:, 4].sum()])
    return np.array(out)


def _split_wide(blobs: np.ndarray, n: int) -> np.ndarray:
    """Placeholder: touching characters are not split yet."""
    return blobs


def _wide_char(band: np.ndarray, latin: np.ndarray, row: _Row) -> Box | None:
    """Box of a leading CJK character: the union of everything left of the Latin characters."""
    start = latin[0, 0]
    centres = (latin[:, 0] + latin[:, 2]) / 2.0
    pitch = float(np.median(np.diff(centres))) if len(latin) > 1 else row.height * 0.6
    parts = band[(band[:, 2] <= start + 1) & (band[:, 0] >= start - 1.7 * pitch) & (band[:, 0] > 0)]
    if not len(parts):
        return None
    return int(parts[:, 0].min()), int(parts[:, 1].min()), int(parts[:, 2].max()), int(parts[:, 3].max())


def _implausible(boxes: list[Box], text: str, row: _Row) -> str:
    """Why these boxes cannot be the text's characters, or "" when they can."""
    b = np.array(boxes, float)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    latin = np.array([c.isascii() for c in text])
    ref = float(np.median(h[latin]))
    if np.any(h[latin] < 0.8 * ref) or np.any(h[latin] > 1.25 * ref):
        return "character heights are inconsistent"
    if np.any(h[~latin] < 0.75 * ref) or np.any(h[~latin] > 1.35 * ref):
        return f"the {text[0]!r} box height does not match the other characters"
    narrow = np.array([c in NARROW for c in text])
    if np.any(w[latin & ~narrow] < 0.3 * ref):
        return "a blob is too narrow for its character"
    if np.any(w[latin] > 1.1 * ref):
        return "a blob is too wide for one character"
    wide_w = w[latin & ~narrow]
    typical = float(np.median(wide_w)) if len(wide_w) else 0.5 * ref
    if np.any(w[~latin] < 0.7 * typical) or np.any(w[~latin] > 1.6 * typical):
        return f"the {text[0]!r} box width does not match the other characters"
    overlap = b[:-1, 2] - b[1:, 0]
    if np.any(overlap > 0.3 * np.minimum(w[:-1], w[1:])):
        return "character boxes overlap"
    if np.any(-overlap > 3.0 * ref):
        return "implausibly wide gap between characters"
    cx = (b[:, 0] + b[:, 2]) / 2
    for edge in (b[:, 1], b[:, 3]):
        resid = edge[latin] - (row.a * cx[latin] + np.median(edge[latin] - row.a * cx[latin]))
        if np.any(np.abs(resid) > 0.15 * ref):
            return "characters do not sit on a straight line"
    return ""


def _score(boxes: list[Box], text: str, row: _Row) -> float:
    """Prefer the tallest row (the main characters, not state names) with the tidiest geometry."""
    h = np.array([b[3] - b[1] for b in boxes], float)
    spread = float(h.std() / h.mean())
    return row.height * (1.0 - spread)


def _to_image_boxes(boxes: tuple[Box, ...], scale: float, shape: tuple[int, ...]) -> tuple[Box, ...]:
    height, width = shape[:2]
    out = []
    for x0, y0, x1, y1 in boxes:
        out.append((max(int(np.floor(x0 / scale)), 0), max(int(np.floor(y0 / scale)), 0),
                    min(int(np.ceil(x1 / scale)), width), min(int(np.ceil(y1 / scale)), height)))
    return tuple(out)
