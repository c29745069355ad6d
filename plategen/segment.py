"""Text-guided character segmentation: one box per character of a known plate text, or a refusal.

The boxes become labelled training crops, so a wrong box is worse than none. Each of
several binarisations (global and local thresholds, the likelier text polarity first)
offers rows of similar-height blobs; a row becomes a hypothesis only if, after privacy
masks, colour bands, flat patches and frames are set aside, broken characters joined
and touching ones cut at clear valleys, it has exactly one blob per character, with
consistent heights, widths, baseline, ink and paper. Hypotheses vote: the box set most
binarisations agree on wins, unless a rival is nearly as popular or other binarisations
keep finding a character-sized blob the boxes leave out. Anything else is refused with
the reason, and the caller keeps the plate out of the labelled set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive

WORK_HEIGHTS = (64, 96)  # plates are rescaled into this height range: strokes span pixels, work stays cheap
NARROW = frozenset("1I")  # characters whose blob may be a bare stroke
PAD = 0.03  # margin added round each box, as a share of the character height (annotators' habit)
INK_TOLERANCE = 30.0  # Lab distance of a character's ink or paper colour from the plate's median
MIN_CONTRAST = 12.0  # Lab lightness between ink and paper below which a blob is noise, not print
EDGE_MARGIN = 0.35  # a first character closer than this (share of its height) to the left edge ...
EDGE_HEIGHT = 1.06  # ... and taller than the others by this factor is more likely an EU colour band
BAND_MARGIN = 0.1  # a taller blob this close (share of the row height) to the left edge is the band itself
BAND_CHROMA = 12.0  # a leading blob this far in hue (Lab chroma) from the characters' ink is a colour band
MASK_CHROMA = 15.0  # privacy masks are grey: Lab chroma above this is plate paint ...
MAX_CAST = 12.0  # ... measured from the photo's colour cast, taken as at most this chroma
MIN_SLANTED_VOTES = 2  # binarisations that must agree on a box set found only by slanted cuts
DECISIVE_VOTES = 3  # binarisations agreeing on one box set before the other polarity is skipped
MAX_SLOPE = 0.5  # steepest character row: photos from the side tilt plates up to ~25 degrees
MASK_BRIDGE = 0.05  # flat bridges this thin (share of the plate height) may join a mask to plain paper
MASK_PIECE = 0.4  # a mask hides a whole character, so a piece of one spans this share of the plate height;
#                   paper in a character's hollow (beside an F's or L's arm, a 1's flag) is shorter
CUT_SLANTS = (0.0, -0.1, 0.1, -0.2, 0.2, -0.3, 0.3)  # x shift per row of a cut between characters, upright first
CJK_WIDTH = 1.55  # widest a leading CJK character may be, in typical Latin character widths
ROW_GAP = 0.5  # a jump in box centres of this share of the box height may start a second row


@dataclass(frozen=True)
class Segmentation:
    boxes: tuple[Box, ...] | None  # one per text character, in text order; None when refused
    reason: str  # "" when boxes were found, else why not


class _Candidate(NamedTuple):
    score: float
    boxes: tuple[Box, ...]
    binarisation: tuple[bool, int]  # (dark text, index) of the map it came from
    slanted: bool  # whether touching characters had to be cut apart along a slanted line to find it


class _Scene(NamedTuple):
    """The plate at working scale, with what every hypothesis needs to look up."""

    gray: np.ndarray
    lab: np.ndarray
    sums: tuple[np.ndarray, ...]  # integral images of g, g*g, x*g, y*g for O(1) flatness tests
    forbidden: np.ndarray  # privacy-mask pixels: never part of a character


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
    scene, scale = _scene(image)
    candidates: list[_Candidate] = []
    misses: list[tuple[int, str]] = [(99, "no row of character-sized blobs found")]
    seen: list[np.ndarray] = []  # every character-like blob found, tagged with its binarisation
    first = _likely_dark_text(scene.gray)
    for dark_text in (first, not first):
        for index, binary in enumerate(_binarisations(scene, len(text), dark_text)):
            found, missed, blobs = _hypotheses(binary, (dark_text, index), scene, text)
            candidates += found
            misses += missed
            seen += blobs
        votes = _vote(candidates)
        if votes and votes[0][0] >= DECISIVE_VOTES:
            break  # the other polarity is only searched when this one is not convincing
    if not votes:
        return Segmentation(None, "only one binarisation finds the characters, and only by slanted cuts"
                            if candidates else _likeliest_reason(misses))
    if len(votes) > 1 and votes[1][0] >= 0.5 * votes[0][0]:
        return Segmentation(None, "binarisations disagree on where the characters are")
    if _unexplained(votes[0][1], text, np.concatenate(seen)):
        return Segmentation(None, "a character-like blob next to the characters is not in the text")
    return Segmentation(_to_image_boxes(_padded(votes[0][1], text), scale, image.shape), "")


def reading_rows(boxes: Sequence[tuple[float, float, float, float]]) -> list[list[int]]:
    """Indices of `boxes` (x0, y0, x1, y1, any unit) per row in reading order: top row first, each
    row left to right by box centre. One row unless the boxes split into bands.

    Two rows need a gap in box centres of `ROW_GAP` box heights AND x ranges that overlap
    (the lower row sits under the upper one); a single row photographed at a slant has
    spread-out centres too, but its left and right halves do not overlap in x. Each row so
    found splits again the same way (three rows read 304152 as 304512 when only one cut was made).
    """
    height = float(np.median([b[3] - b[1] for b in boxes]))
    return [sorted(row, key=lambda i: boxes[i][0] + boxes[i][2])
            for row in _bands(boxes, list(range(len(boxes))), height)]


def _bands(boxes: Sequence[tuple[float, float, float, float]], members: list[int], height: float) -> list[list[int]]:
    """`members` as rows, top first: cut at the widest gap in centres if it makes two rows, then each again."""
    centres = np.array([(boxes[i][1] + boxes[i][3]) / 2 for i in members])
    order = [members[k] for k in np.argsort(centres, kind="stable")]
    gaps = np.diff(np.sort(centres, kind="stable"))
    if not len(gaps) or gaps.max() < ROW_GAP * height:
        return [members]
    cut = int(gaps.argmax()) + 1
    top, bottom = sorted(order[:cut]), sorted(order[cut:])
    top_left, top_right = min(boxes[i][0] for i in top), max(boxes[i][2] for i in top)
    bottom_left, bottom_right = min(boxes[i][0] for i in bottom), max(boxes[i][2] for i in bottom)
    if min(top_right, bottom_right) <= max(top_left, bottom_left):
        return [members]
    return _bands(boxes, top, height) + _bands(boxes, bottom, height)


def _likeliest_reason(misses: list[tuple[int, str]]) -> str:
    """The commonest reason among the hypotheses that came closest to the text."""
    closest = min(distance for distance, _ in misses)
    return Counter(reason for distance, reason in misses if distance == closest).most_common(1)[0][0]


def _hypotheses(binary: np.ndarray, source: tuple[bool, int], scene: _Scene, text: str
                ) -> tuple[list[_Candidate], list[tuple[int, str]], list[np.ndarray]]:
    """The rows of one binarisation that explain the text, the (distance, reason) of those
    that do not, and the row blobs clear of privacy masks tagged with the binarisation."""
    comps = _components(binary)
    tag = 2 * source[1] + source[0]
    inside = comps[(comps[:, 0] > 0) & (comps[:, 2] < binary.shape[1])]
    candidates, misses, seen = [], [], []
    for row in _rows(inside, binary.shape):
        blobs, band = _row_blobs(comps, row, scene)
        clear = [not scene.forbidden[y0:y1, max(x0 - 2, 0):x1 + 2].any() for x0, y0, x1, y1, _ in blobs]
        seen.append(np.column_stack([blobs[clear, :4], np.full(sum(clear), tag)]))
        for slants in (CUT_SLANTS[:1], CUT_SLANTS):  # a slanted cut is tried only when upright ones fail
            found = _assign(blobs, band, row, text, binary, scene, slants)
            if not isinstance(found[0], int):
                break
        if isinstance(found[0], int):
            misses.append(found)
            continue
        problem = _implausible(found, text) or _colour_outlier(found, text, binary, scene.lab)
        if problem:
            misses.append((1, problem))
        else:
            candidates.append(_Candidate(_score(found, row), found, source, len(slants) > 1))
    return candidates, misses, seen


def _unexplained(boxes: tuple[Box, ...], text: str, seen: np.ndarray) -> bool:
    """Whether blobs of the characters' size, on their line and clear of the boxes, keep turning
    up (in two or more binarisations) between them or within a pitch and a half of the ends:
    a character the boxes skipped, or one the text does not have."""
    b = np.array([box for box, char in zip(boxes, text) if char.isascii()], float)
    h = float(np.median(b[:, 3] - b[:, 1]))
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    slope, offset = _median_line(cx, cy)
    pitch = float(np.median(np.diff(cx))) if len(cx) > 1 else h
    s_cx, s_cy = (seen[:, 0] + seen[:, 2]) / 2, (seen[:, 1] + seen[:, 3]) / 2
    s_w, s_h = seen[:, 2] - seen[:, 0], seen[:, 3] - seen[:, 1]
    all_boxes = np.array(boxes, float)
    overlap = np.minimum.outer(seen[:, 2], all_boxes[:, 2]) - np.maximum.outer(seen[:, 0], all_boxes[:, 0])
    covered = np.clip(overlap, 0, None).sum(axis=1) >= 0.2 * s_w  # count only blobs clear of the boxes
    near = ((s_h >= 0.88 * h) & (s_h <= 1.1 * h) & (s_w >= 0.25 * h) & (s_w <= 1.0 * h)
            & (np.abs(s_cy - (slope * s_cx + offset)) <= 0.15 * h) & (seen[:, 0] >= EDGE_MARGIN * h)  # not a colour band
            & (s_cx >= all_boxes[0, 0] - 1.5 * pitch) & (s_cx <= all_boxes[-1, 2] + 1.5 * pitch))
    loose = seen[near & ~covered]
    for blob in loose:
        shared = np.minimum(loose[:, 2], blob[2]) - np.maximum(loose[:, 0], blob[0])
        if len(np.unique(loose[shared >= 0.5 * (blob[2] - blob[0]), 4])) >= 2:
            return True
    return False


def _likely_dark_text(gray: np.ndarray) -> bool:
    """Paper covers more of a plate than ink, so the median grey sits nearer the paper's end."""
    low, mid, high = np.percentile(gray, (10, 50, 90))
    return bool(high - mid < mid - low)


def _vote(candidates: list[_Candidate]) -> list[tuple[int, tuple[Box, ...]]]:
    """Group candidates that place every character alike; rank groups by how many
    binarisations found them. A box set only one threshold produces is the likeliest
    to have swapped a lost character for a band, mask edge or smudge; one that only
    slanted cuts produce counts only if MIN_SLANTED_VOTES binarisations agree on it."""
    groups: list[tuple[tuple[Box, ...], set[tuple[bool, int]], list[bool]]] = []
    for candidate in sorted(candidates, key=lambda c: (not c.slanted, c), reverse=True):  # upright ones lead
        for boxes, support, cuts in groups:
            if all(iou(a, b) >= 0.5 for a, b in zip(boxes, candidate.boxes)):
                support.add(candidate.binarisation)
                cuts.append(candidate.slanted)
                break
        else:
            groups.append((candidate.boxes, {candidate.binarisation}, [candidate.slanted]))
    kept = [(len(support), boxes) for boxes, support, cuts in groups
            if len(support) >= MIN_SLANTED_VOTES or not all(cuts)]
    return sorted(kept, key=lambda g: g[0], reverse=True)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (also the measure in benchmarks/segmentation.py)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _scene(image: np.ndarray) -> tuple[_Scene, float]:
    """The plate rescaled so its height lies in WORK_HEIGHTS, and the scale used."""
    height = image.shape[0]
    scale = float(np.clip(height, *WORK_HEIGHTS)) / height
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    g = gray.astype(np.float64)
    ys, xs = np.indices(gray.shape, dtype=np.float64)
    sums = tuple(cv2.integral(a) for a in (g, g * g, xs * g, ys * g))
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    return _Scene(gray, lab, sums, _masked_areas(gray, lab, sums)), scale


def privacy_masks(image: np.ndarray) -> list[Box]:
    """The plate's privacy masks (the flat grey rectangles uc3m-lp paints over characters), in image pixels:
    what a layout that spreads new characters over them must paint over as paper."""
    scene, scale = _scene(image)
    height, width = image.shape[:2]
    return [(max(int(np.floor(x0 / scale)), 0), max(int(np.floor(y0 / scale)), 0),
             min(int(np.ceil(x1 / scale)), width), min(int(np.ceil(y1 / scale)), height))
            for x0, y0, x1, y1 in _mask_rects(scene.gray, scene.lab, scene.sums)]


def _mask_rects(gray: np.ndarray, lab: np.ndarray, sums: tuple[np.ndarray, ...]) -> list[Box]:
    """Privacy masks: flat rectangles.

    Masks carry noise and shading added after masking, so flatness is measured around a
    local plane; flat cores are then grown over JPEG ringing up to the mask's real edges.
    Cores must be wider than a stroke so the inside of a thick stroke is never taken, and
    grey under the photo's colour cast, so the plain paint of a coloured plate is not taken for one.
    """
    width = gray.shape[1]
    cast = _colour_cast(lab)
    rects = []
    for core in _flat_cores(_plane_residual(gray, 5) <= 1.5, sums):
        x, y, x1, y1 = core
        tint = lab[y:y1, x:x1, 1:].reshape(-1, 2).mean(axis=0) - 128.0
        if np.hypot(*(tint - cast)) > MASK_CHROMA:
            continue
        grown = _grow_flat(core, gray.astype(np.int16), reach=int(width / 40) + 1)
        rects.append(grown if _flat(sums, grown, tolerance=5.0) else core)
    return rects


def _masked_areas(gray: np.ndarray, lab: np.ndarray, sums: tuple[np.ndarray, ...]) -> np.ndarray:
    """Privacy-mask pixels (`_mask_rects`, and the slivers between them): never part of a character blob."""
    height = gray.shape[0]
    rects = _mask_rects(gray, lab, sums)
    forbidden = np.zeros(gray.shape, bool)
    for x0, y0, x1, y1 in rects + _flat_gaps(rects, sums, height):
        forbidden[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
    return forbidden


def _flat_cores(flat: np.ndarray, sums: tuple[np.ndarray, ...]) -> list[Box]:
    """Boxes of mask-shaped flat areas (tall, wider than a stroke, mostly filled, flat as a whole).
    An area that fails may be a mask joined to plain paper by a thin flat bridge (a mask next to
    a character's gap or the plate's margin), so the pieces of its eroded interior are tried too;
    only those as tall as a mask, so paper in a character's hollow does not eat its strokes."""
    height, width = flat.shape
    radius = max(1, int(MASK_BRIDGE * height))
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    flat = flat.astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    cores = []
    for i, (x, y, w, h, area) in enumerate(stats[1:], start=1):
        if h < 0.2 * height or w < max(4, 0.03 * width):
            continue
        if area >= 0.5 * w * h and _flat(sums, (x, y, x + w, y + h)):
            cores.append((x, y, x + w, y + h))
            continue
        area_mask = (labels[y:y + h, x:x + w] == i).astype(np.uint8)
        _, pieces, parts, _ = cv2.connectedComponentsWithStats(cv2.erode(area_mask, kernel), connectivity=4)
        for j in range(1, len(parts)):
            piece = cv2.dilate((pieces == j).astype(np.uint8), kernel) & area_mask  # grown back inside the area only
            ys, xs = np.nonzero(piece)
            core = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1)
            pw, ph = core[2] - core[0], core[3] - core[1]
            tall = ph >= MASK_PIECE * height and pw >= max(4, 0.03 * width)
            if tall and len(xs) >= 0.5 * pw * ph and _flat(sums, core):
                cores.append(core)
    return cores


def _colour_cast(lab: np.ndarray) -> np.ndarray:
    """The (a, b) tint a lighting or white-balance cast gives everything, grey masks included:
    the plate's median tint, shortened to MAX_CAST so a painted plate's colour is not all cast."""
    tint = np.median(lab[..., 1:].reshape(-1, 2), axis=0) - 128.0
    chroma = float(np.hypot(*tint))
    return tint * min(1.0, MAX_CAST / chroma) if chroma else tint


def _flat_gaps(rects: list[Box], sums: tuple[np.ndarray, ...], height: int) -> list[Box]:
    """The plain sliver of plate between two neighbouring masks, which would read as a "1"."""
    gaps = []
    for ax0, ay0, ax1, ay1 in rects:
        for bx0, by0, bx1, by1 in rects:
            y0, y1 = max(ay0, by0), min(ay1, by1)
            if 0 < bx0 - ax1 <= 0.5 * height and y1 - y0 >= 0.5 * min(ay1 - ay0, by1 - by0):
                if _flat(sums, (ax1 + 2, y0, bx0 - 2, y1), tolerance=8.0):  # plain but noisy plate
                    gaps.append((ax1, y0, bx0, y1))
    return gaps


def _plane_residual(gray: np.ndarray, size: int) -> np.ndarray:
    """Std of each size x size window around its best-fitting plane: ~noise on flat or shaded patches."""
    g = gray.astype(np.float32)
    ys, xs = np.indices(gray.shape, dtype=np.float32)

    def mean(a: np.ndarray) -> np.ndarray:
        return cv2.blur(a, (size, size))

    m = mean(g)
    coord_var = (size * size - 1) / 12.0
    cov_x = mean(g * xs) - m * mean(xs)
    cov_y = mean(g * ys) - m * mean(ys)
    var = mean(g * g) - m * m - (cov_x * cov_x + cov_y * cov_y) / coord_var
    return np.sqrt(np.maximum(var, 0))


def _grow_flat(box: Box, gray: np.ndarray, reach: int) -> Box:
    """Extend a flat rectangle by up to `reach` pixels a side while each new row/column stays
    on the rectangle's shading plane (JPEG ringing), so a faint blurred stroke stops it."""
    x0, y0, x1, y1 = box
    height, width = gray.shape
    ys, xs = np.indices((y1 - y0, x1 - x0), dtype=np.float32)
    design = np.stack([xs.ravel() + x0, ys.ravel() + y0, np.ones(xs.size, np.float32)], axis=1)
    coef = np.linalg.lstsq(design, gray[y0:y1, x0:x1].astype(np.float32).ravel(), rcond=None)[0]
    wx0, wy0 = max(x0 - reach, 0), max(y0 - reach, 0)
    wy, wx = np.mgrid[wy0:min(y1 + reach, height), wx0:min(x1 + reach, width)]
    on = np.abs(gray[wy0:wy0 + wy.shape[0], wx0:wx0 + wx.shape[1]] - (coef[0] * wx + coef[1] * wy + coef[2])) <= 8

    def on_plane(ya: int, yb: int, xa: int, xb: int) -> bool:
        return float(on[ya - wy0:yb - wy0, xa - wx0:xb - wx0].mean()) >= 0.9

    for _ in range(reach):
        if x0 > 0 and on_plane(y0, y1, x0 - 1, x0):
            x0 -= 1
        if x1 < width and on_plane(y0, y1, x1, x1 + 1):
            x1 += 1
        if y0 > 0 and on_plane(y0 - 1, y0, x0, x1):
            y0 -= 1
        if y1 < height and on_plane(y1, y1 + 1, x0, x1):
            y1 += 1
    return x0, y0, x1, y1


def _binarisations(scene: _Scene, n_chars: int, dark_text: bool) -> list[np.ndarray]:
    """Foreground maps for one text polarity: a global and several local thresholds."""
    src = scene.gray if dark_text else 255 - scene.gray  # foreground = darker than surroundings
    height, width = src.shape
    contrast = float(src.std())
    run = max(int(1.3 * width / n_chars), 8)
    _, otsu = cv2.threshold(src, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    maps = [otsu]
    for block, offsets in ((_odd(height * 0.25), (0.05, 0.15, 0.3)), (_odd(height * 0.5), (0.15, 0.3))):
        for k in offsets:
            maps.append(cv2.adaptiveThreshold(src, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                              cv2.THRESH_BINARY_INV, block, k * contrast))
    return [_clean(m, scene.forbidden, run) for m in maps]


def _odd(value: float) -> int:
    return max(int(value) // 2 * 2 + 1, 3)


def _clean(binary: np.ndarray, forbidden: np.ndarray, run: int) -> np.ndarray:
    """Drop masked pixels and horizontal runs longer than any character (frames, edges)."""
    binary[forbidden] = 0
    long_runs = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    return cv2.subtract(binary, long_runs)


def _components(binary: np.ndarray) -> np.ndarray:
    """Connected components as rows (x0, y0, x1, y1, area), specks and frames removed."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    x, y, w, h, area = stats[1:].T
    keep = (area >= 4) & (h >= 0.05 * binary.shape[0]) & (w < 0.5 * binary.shape[1])
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
    linked = (ratio <= 1.35) & (v_overlap >= 0.5 * np.minimum.outer(h, h)) & (gap <= 3.0 * np.maximum.outer(h, h))
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
    """The members' centre line and height, its slope capped at MAX_SLOPE."""
    cx = (members[:, 0] + members[:, 2]) / 2.0
    cy = (members[:, 1] + members[:, 3]) / 2.0
    slope = float(np.clip(_median_line(cx, cy)[0], -MAX_SLOPE, MAX_SLOPE))
    return _Row(slope, float(np.median(cy - slope * cx)), float(np.median(members[:, 3] - members[:, 1])))


def _median_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and offset of the Theil-Sen line through (x, y): one stray point cannot tilt it."""
    dx, dy = np.subtract.outer(x, x), np.subtract.outer(y, y)
    pairs = dx > 0
    slope = float(np.median(dy[pairs] / dx[pairs])) if pairs.any() else 0.0
    return slope, float(np.median(y - slope * x))


def _row_blobs(comps: np.ndarray, row: _Row, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """Character-like blobs along a row (sorted by x), and all components inside the row's band."""
    cx = (comps[:, 0] + comps[:, 2]) / 2.0
    centre = row.a * cx + row.b
    tol = 0.3 * row.height
    in_band = (comps[:, 1] >= centre - row.height / 2 - tol) & (comps[:, 3] <= centre + row.height / 2 + tol)
    band = comps[in_band]
    cut = (band[:, 0] == 0) | (band[:, 2] == scene.gray.shape[1])  # by the crop edge: a band, frame or half a char
    blobs = _char_blobs(band[~cut], row)
    return blobs[np.array([_glyph_like(b, scene.sums, row) for b in blobs], bool)].reshape(-1, 5), band


def _assign(blobs: np.ndarray, band: np.ndarray, row: _Row, text: str, binary: np.ndarray,
            scene: _Scene, slants: tuple[float, ...]) -> tuple[Box, ...] | tuple[int, str]:
    """One box per text character from the row's blobs, cutting touching ones along lines
    of the given slants, or (how far off, why not)."""
    leading_wide = not text[0].isascii()
    n = len(text) - leading_wide
    if len(blobs) > n and _band_like(blobs, row, binary, scene.lab):
        blobs = blobs[1:]
        if _open_gap(blobs[len(blobs) - n:], scene.forbidden):
            return 1, "a gap between the characters could hold one the row lacks"
    if len(blobs) < n:
        blobs = _split_wide(blobs, n, binary, row, slants)
    if len(blobs) < n or (len(blobs) > n and not leading_wide):
        return abs(len(blobs) - n), f"found {len(blobs)} character blobs for {n} characters"
    latin = blobs[len(blobs) - n:]
    boxes = _snapped(latin, binary)
    if leading_wide:
        first = _wide_char(band, latin)
        if first is None:
            return 1, f"no plausible box for {text[0]!r} left of the other characters"
        boxes.insert(0, first)
    return tuple(boxes)


def _band_like(blobs: np.ndarray, row: _Row, binary: np.ndarray, lab: np.ndarray) -> bool:
    """Whether the leading blob is the EU band (or the plate's edge), to set aside when the row
    has a blob too many: it hugs the left crop edge and stands taller than the row, or is
    printed in another colour than the characters after it."""
    x0, y0, _, y1, _ = blobs[0]
    if x0 >= EDGE_MARGIN * row.height:
        return False
    if x0 < BAND_MARGIN * row.height and y1 - y0 > EDGE_HEIGHT * row.height:
        return True
    inks = [_ink(blob, binary, lab) for blob in blobs]
    diff = inks[0] - np.median(inks[1:], axis=0)
    return bool(np.linalg.norm(diff) > INK_TOLERANCE or np.hypot(*diff[1:]) > BAND_CHROMA)


def _open_gap(blobs: np.ndarray, forbidden: np.ndarray) -> bool:
    """Whether two neighbouring blobs leave a character's width of plate between them with no
    privacy mask in it: a lost character, so the blob set aside may have been a real one."""
    wide = np.flatnonzero(blobs[1:, 0] - blobs[:-1, 2] >= np.median(blobs[:, 2] - blobs[:, 0]))
    return any(not forbidden[:, blobs[i, 2]:blobs[i + 1, 0]].any() for i in wide)


def _ink(blob: np.ndarray, binary: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Mean Lab colour of a blob's foreground pixels."""
    x0, y0, x1, y1, _ = blob
    return lab[y0:y1, x0:x1][binary[y0:y1, x0:x1] > 0].astype(np.float32).mean(axis=0)


def _snapped(blobs: np.ndarray, binary: np.ndarray) -> list[Box]:
    """Boxes trimmed to the characters' common top and bottom lines (robust fits), so plate
    art a character touches (a sticker, a slogan, scenery) is cut off rather than boxed."""
    x0, y0, x1, y1 = (blobs[:, i].astype(float) for i in range(4))
    cx = (x0 + x1) / 2
    height = float(np.median(y1 - y0))
    top, bottom = _median_line(cx, y0), _median_line(cx, y1)
    boxes = []
    for i in range(len(blobs)):
        a = max(int(y0[i]), int(np.floor(top[0] * cx[i] + top[1] - 0.04 * height)))
        b = min(int(y1[i]), int(np.ceil(bottom[0] * cx[i] + bottom[1] + 0.04 * height)))
        cols = np.flatnonzero(binary[a:b, int(x0[i]):int(x1[i])].any(axis=0)) if b > a else np.zeros(0, int)
        if not len(cols):
            boxes.append((int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])))
            continue
        boxes.append((int(x0[i]) + int(cols[0]), a, int(x0[i]) + int(cols[-1]) + 1, b))
    return boxes


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
                seeds[best] = [min(s[0], frag[0]), min(s[1], frag[1]), max(s[2], frag[2]), max(s[3], frag[3]), s[4] + frag[4]]
            continue
        pool.append(frag)
    joined = _join_overlapping(np.array(pool, dtype=band.dtype).reshape(-1, 5))
    promoted = joined[(joined[:, 3] - joined[:, 1]) >= 0.8 * row.height]
    blobs = np.concatenate([seeds, promoted])
    return blobs[np.argsort(blobs[:, 0] + blobs[:, 2])]


def _glyph_like(blob: np.ndarray, sums: tuple[np.ndarray, ...], row: _Row) -> bool:
    """False for blobs no character makes: solid blocks (colour bands, masks), blobs much
    taller than the row, and blobs over a patch that is flat up to shading (masks, shadows)."""
    x0, y0, x1, y1, area = blob
    w, h = x1 - x0, y1 - y0
    if h > 1.2 * row.height or (area >= 0.75 * w * h and w >= 0.3 * h):
        return False
    dx, dy = w * 15 // 100, h * 15 // 100
    return not _flat(sums, (x0 + dx, y0 + dy, x1 - dx, y1 - dy))


def _flat(sums: tuple[np.ndarray, ...], box: Box, tolerance: float = 3.5) -> bool:
    """Flat up to a linear shading: the residual around the box's best-fitting plane is noise-sized.
    Computed from integral images, as it is asked for every blob of every hypothesis."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if w < 2 or h < 2:
        return False
    n = float(w * h)
    s_g, s_gg, s_xg, s_yg = (float(a[y1, x1] - a[y0, x1] - a[y1, x0] + a[y0, x0]) for a in sums)
    mean = s_g / n
    cov_x = s_xg / n - (x0 + x1 - 1) / 2.0 * mean
    cov_y = s_yg / n - (y0 + y1 - 1) / 2.0 * mean
    residual = s_gg / n - mean * mean - cov_x ** 2 / ((w * w - 1) / 12.0) - cov_y ** 2 / ((h * h - 1) / 12.0)
    return residual < tolerance ** 2


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
    return np.array(out, dtype=frags.dtype)


def _split_wide(blobs: np.ndarray, n: int, binary: np.ndarray, row: _Row, slants: tuple[float, ...]) -> np.ndarray:
    """Cut blobs of touching characters at their thinnest columns, but only when their
    widths account for exactly the missing characters and each cut is a clear valley."""
    widths = blobs[:, 2] - blobs[:, 0]
    normal = widths[(widths >= 0.35 * row.height) & (widths <= 0.9 * row.height)]
    typical = float(np.median(normal)) if len(normal) >= 2 else 0.6 * row.height
    gap = 0.15 * typical
    parts = [max(1, round((w + gap) / (typical + gap))) if w > 1.3 * typical else 1 for w in widths]
    if sum(parts) != n:
        return blobs
    out = []
    for blob, k in zip(blobs, parts):
        pieces = _cut(blob, k, binary, slants) if k > 1 else [blob]
        if pieces is None:
            return blobs
        out.extend(pieces)
    return np.array(out, dtype=blobs.dtype)


def _cut(blob: np.ndarray, k: int, binary: np.ndarray, slants: tuple[float, ...]) -> list[np.ndarray] | None:
    """`blob` cut into k pieces near even spacing, each along the first of `slants` (characters
    lean on plates photographed from the side) whose line there crosses no more ink than a clear
    valley holds, where it crosses the least; None if no slant gives a clear cut."""
    x0, y0, x1, y1, _ = blob
    ink = binary[y0:y1, x0:x1] > 0
    height, width = ink.shape
    limit = 0.35 * np.median(ink.sum(axis=0)[ink.any(axis=0)])
    step = width / k
    rows = np.arange(height)
    shifts = [np.round(s * (rows - (height - 1) / 2)).astype(int) for s in slants]
    costs = np.stack([_sheared(ink, shift).sum(axis=0) for shift in shifts])  # ink along each slanted line
    side = np.zeros(ink.shape, int)  # how many cuts lie left of each pixel
    for j in range(1, k):
        lo, hi = int(j * step - 0.3 * step), int(j * step + 0.3 * step) + 1
        clear = [i for i in range(len(slants)) if costs[i, lo:hi].min() <= limit]
        if not clear:
            return None
        slant = clear[0]  # the most upright clear cut
        at = lo + int(np.argmin(costs[slant, lo:hi]))
        side += np.arange(width)[None, :] >= (at + shifts[slant])[:, None]
    pieces = []
    for j in range(k):
        ys, xs = np.nonzero(ink & (side == j))
        if not len(xs):
            return None
        pieces.append(np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1, len(xs)]))
    return pieces


def _sheared(ink: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """`ink` with row y moved left by shift[y], so a slanted line becomes a column (ink moved out is dropped)."""
    out = np.zeros_like(ink)
    width = ink.shape[1]
    for y, d in enumerate(shift):
        if d >= 0:
            out[y, :width - d] = ink[y, d:]
        else:
            out[y, -d:] = ink[y, :width + d]
    return out


def _wide_char(band: np.ndarray, latin: np.ndarray) -> Box | None:
    """Box of a leading CJK character: the union of everything left of the Latin characters
    (its strokes fall apart into many blobs); a stray Latin character there makes it too wide."""
    x0, y0, _, y1, _ = latin[0]
    slack = 0.15 * (y1 - y0)  # frame and bolts above or below are not part of it
    parts = band[(band[:, 2] <= x0 + 1) & (band[:, 1] >= y0 - slack) & (band[:, 3] <= y1 + slack)]
    if not len(parts):
        return None
    return int(parts[:, 0].min()), int(parts[:, 1].min()), int(parts[:, 2].max()), int(parts[:, 3].max())


def _implausible(boxes: tuple[Box, ...], text: str) -> str:
    """Why these boxes cannot be the text's characters, or "" when they can."""
    b = np.array(boxes, float)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    latin = np.array([c.isascii() for c in text])
    ref = float(np.median(h[latin]))
    if np.any(h[latin] < 0.85 * ref) or np.any(h[latin] > 1.18 * ref):
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
    if np.any(wide_w < 0.55 * typical) or np.any(wide_w > 1.6 * typical):
        return "character widths are inconsistent (a logo or a broken character?)"
    if np.any(w[~latin] < 0.7 * typical) or np.any(w[~latin] > CJK_WIDTH * typical):
        return f"the {text[0]!r} box width does not match the other characters"
    overlap = b[:-1, 2] - b[1:, 0]
    if np.any(overlap > 0.3 * np.minimum(w[:-1], w[1:])):
        return "character boxes overlap"
    touching = overlap[latin[:-1] & latin[1:]] >= 0
    if len(touching) and touching.all():  # light characters' dark gaps read as dark characters
        return "no character stands clear of its neighbours: likely the gaps between characters"
    if np.any(-overlap > 3.0 * ref):
        return "implausibly wide gap between characters"
    cx = (b[latin, 0] + b[latin, 2]) / 2
    for edge in (b[latin, 1], b[latin, 3]):
        resid = edge - np.polyval(np.polyfit(cx, edge, 1), cx)
        if np.any(np.abs(resid) > 0.12 * ref):
            return "characters do not sit on a straight line"
    return ""


def _colour_outlier(boxes: tuple[Box, ...], text: str, binary: np.ndarray, lab: np.ndarray) -> str:
    """Characters of one plate share ink and paper colours; a colour band, logo or mask
    does not, and print stands out from its paper where noise does not."""
    inks, papers = [], []
    latin = [box for box, char in zip(boxes, text) if char.isascii()]
    for x0, y0, x1, y1 in latin:
        fg = binary[y0:y1, x0:x1] > 0
        pixels = lab[y0:y1, x0:x1].astype(np.float32)
        if fg.all() or not fg.any():
            return "a character box has no ink or no paper"
        inks.append(pixels[fg].mean(axis=0))
        papers.append(pixels[~fg].mean(axis=0))
    ink, paper = np.array(inks), np.array(papers)
    for colours in (ink, paper):
        if np.linalg.norm(colours - np.median(colours, axis=0), axis=1).max() > INK_TOLERANCE:
            return "a blob's colour differs from the other characters'"
    if np.abs(ink[:, 0] - paper[:, 0]).min() < MIN_CONTRAST:
        return "too little contrast between characters and plate"
    heights = np.array([b[3] - b[1] for b in latin], float)
    if latin[0][0] < EDGE_MARGIN * heights[0] and heights[0] > EDGE_HEIGHT * np.median(heights):
        return "the first blob hugs the left crop edge and stands taller: likely a colour band"
    return ""


def _score(boxes: tuple[Box, ...], row: _Row) -> float:
    """Prefer the tallest row (the main characters, not state names) with the tidiest geometry."""
    h = np.array([b[3] - b[1] for b in boxes], float)
    spread = float(h.std() / h.mean())
    return row.height * (1.0 - spread)


def _padded(boxes: tuple[Box, ...], text: str) -> tuple[Box, ...]:
    """Boxes with a small margin; a bare stroke ("1") widened to a crop that shows its shape."""
    height = float(np.median([b[3] - b[1] for b in boxes]))
    margin = PAD * height
    out = []
    for (x0, y0, x1, y1), char in zip(boxes, text):
        widen = max(0.0, 0.35 * height - (x1 - x0)) / 2 if char in NARROW else 0.0
        out.append((round(x0 - margin - widen), round(y0 - margin), round(x1 + margin + widen), round(y1 + margin)))
    return tuple(out)


def _to_image_boxes(boxes: tuple[Box, ...], scale: float, shape: tuple[int, ...]) -> tuple[Box, ...]:
    """Working-scale boxes back in the caller's pixels, clipped to the image."""
    height, width = shape[:2]
    out = []
    for x0, y0, x1, y1 in boxes:
        left, top = max(int(np.floor(x0 / scale)), 0), max(int(np.floor(y0 / scale)), 0)
        out.append((left, top, max(min(int(np.ceil(x1 / scale)), width), left + 1),
                    max(min(int(np.ceil(y1 / scale)), height), top + 1)))
    return tuple(out)
