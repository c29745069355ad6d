"""Whole plates from a style plate and generated characters: erase its characters, place new ones.

The style plate keeps everything outside its character boxes (EU band, state name, artwork,
frame, dirt); inside each box only the ink is replaced. A generated character is a square
framed like a real crop (`glyphs.frame_square`: 1.2x the box's longer side, centred on it),
so it goes back on exactly that square. Only its strokes are placed, as a soft coverage in
the style plate's own ink colour over the erased paper, so the generated paper (and its
square edge) never shows; a feathered window round the box keeps the fragments of
neighbours that the generator draws at the frame's sides off the plate. Where the content
glyph a character was drawn from is known, only strokes within GLYPH_REACH of that glyph are
placed: what the generator paints further away (a neighbour's edge, the Chinese separator dot
that real crops show beside many characters, a light cloud on the paper) is not the character.
"""

from __future__ import annotations

import functools
from typing import Sequence

import cv2
import numpy as np

from plategen.glyphs import frame_square
from plategen.plates import Box

INK_SHARE = 0.3  # a pixel is ink when it differs from the paper by this share of the box's strongest contrast
INK_CORE_SHARE = 0.7  # ... and the stroke's core, whose colour new strokes take, differs by this share
MIN_INK_CONTRAST = 8.0  # ... and by at least this many grey levels (below it is noise, not print)
INK_GROWTH = 0.08  # the ink mask grows by this share of the box height, to take the anti-aliased rim too
INPAINT_RADIUS = 0.15  # share of the median box height that cv2.inpaint looks around
INPAINT_MAX_RADIUS = 6.0  # px, at most (`_inpaint`)
INPAINT_HEIGHT = 32.0  # px: the paper model of plates with taller boxes is blurred on a copy scaled to it (`_smooth`)
RIM_SHARE = 0.15  # a rim pixel touching the ink lies on the ink side of the paper by this share of the box's contrast
PAPER_SMOOTH = (1.0, 0.08)  # the paper model's Gaussian along and across the rows, in median box heights
FILL_TOLERANCE = 0.04  # an inpainted pixel may stray from the paper model by this share of the strokes' contrast
PAPER_SUPPORT = 0.02  # ... fully where this blurred share of nearby pixels is paper, less where fewer are
MISFIT = 4.0  # ... and where the paper round it strays from the model by at most this many tolerances, none at twice
WINDOW_PAD = 0.08  # placed ink may reach this share of the box height past the box, then fades out over as much
SOFT_INK = (0.3, 0.8)  # ink coverage ramps from 0 to 1 between these shares of a typical stroke's contrast
GLYPH_REACH = 2  # px of the S x S frame: strokes this far from the content glyph's ink are still the character's


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _box_contrast(image: np.ndarray, box: Box) -> np.ndarray:
    """Grey level minus the paper's inside `box` (float32, box-sized). Paper is the median of the box's edge
    pixels: a box is drawn round a character, so its edge is mostly paper."""
    x0, y0, x1, y1 = box
    gray = _gray(image[y0:y1, x0:x1])
    return gray - np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))


def _ink_side(diffs: Sequence[np.ndarray]) -> float:
    """+1 where the characters are lighter than the paper, -1 where darker: the side most of the boxes'
    clear ink pixels (`_box_contrast` of each box) lie on."""
    return 1.0 if sum(float(np.sign(d[_beyond(np.abs(d), INK_SHARE)]).sum()) for d in diffs) > 0 else -1.0


def dark_ink(image: np.ndarray, boxes: Sequence[Box]) -> bool:
    """Whether a plate's characters are darker than its paper (`_ink_side`)."""
    return bool(boxes) and _ink_side([_box_contrast(image, box) for box in boxes]) < 0


def _beyond(diff: np.ndarray, share: float) -> np.ndarray:
    """Where `diff` exceeds `share` of its strongest (98th percentile) value and MIN_INK_CONTRAST."""
    return diff > max(MIN_INK_CONTRAST, share * float(np.percentile(diff, 98)))


def ink_mask(image: np.ndarray, box: Box, grow: bool = True) -> np.ndarray:
    """The pixels of the character in `box` (uint8 0/255, image-sized), never outside the box: what differs
    clearly from the paper, grown by a pixel or two to take the anti-aliased rim (unless `grow` is off)."""
    x0, y0, x1, y1 = box
    ink = _beyond(np.abs(_box_contrast(image, box)), INK_SHARE).astype(np.uint8) * 255
    if grow:
        reach = max(1, round(INK_GROWTH * (y1 - y0)))
        ink = cv2.dilate(ink, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = ink
    return mask


def ink_colour(image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """The plate's own ink for `place_characters`: median RGB of its characters' stroke cores, the colour a
    full-coverage stroke takes. Ink is darker or lighter than the paper (the side most of the boxes' clear
    ink pixels lie on); a stroke's core lies on that side by INK_CORE_SHARE of the box's strongest such
    contrast. All ink pixels would take in the blurred rims, and a dim plate's highlights, and draw the
    new characters paler than the old, or light on a dark-on-light plate."""
    diffs = [_box_contrast(image, box) for box in boxes]
    side = _ink_side(diffs)
    mask = np.zeros(image.shape[:2], bool)
    for (x0, y0, x1, y1), diff in zip(boxes, diffs):
        mask[y0:y1, x0:x1] |= _beyond(side * diff, INK_CORE_SHARE)
    if not mask.any():  # no contrast anywhere (every box masked or blank): the characters take the paper's colour
        for x0, y0, x1, y1 in boxes:
            mask[y0:y1, x0:x1] = True
    return np.median(image[mask], axis=0).astype(np.float32)


def erase_characters(image: np.ndarray, boxes: Sequence[Box], keep: Sequence[Box] = ()) -> np.ndarray:
    """The plate with the characters in `boxes` inpainted (Telea) from the paper round them, each inpainted
    pixel held within FILL_TOLERANCE of a smooth model of the plate's paper.

    Telea fills from the mask's edge; on a small plate whose boxes touch the frame and each other (CCPD crops)
    that edge is frame and neighbours' rims, and the fill came out as pale blotches. The paper model is
    what the rows of the boxes show between the strokes, smoothed along the rows. Only the characters'
    pixels change (`erase_mask`), never those in `keep` (a separator dot the plate keeps), so the paper's
    texture between strokes and everything beyond the characters' rims stays byte for byte.
    """
    diffs = [_box_contrast(image, box) for box in boxes]
    side = _ink_side(diffs)
    mask = np.zeros(image.shape[:2], bool)
    for box in boxes:
        mask |= erase_mask(image, box, side)
    for x0, y0, x1, y1 in keep:
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = False
    height = _box_height(boxes)
    filled = _inpaint(image, mask, height)
    paper, known, misfit = _paper_model(image, boxes, mask, height)
    stroke = float(np.median([np.percentile(side * d, 98) for d in diffs]))
    filled = _held_to(filled.astype(np.float32), paper, known, misfit, FILL_TOLERANCE * max(stroke, MIN_INK_CONTRAST))
    background = image.copy()
    background[mask] = np.clip(np.rint(filled[mask]), 0, 255).astype(np.uint8)
    return background


def erases_large(boxes: Sequence[Box]) -> bool:
    """Whether `erase_characters` treats a plate with these character boxes as one with large characters (over
    INPAINT_HEIGHT px high): its inpainting radius is capped (`_inpaint`) and its paper model blurred on a
    scaled copy (`_smooth`)."""
    return _box_height(boxes) > INPAINT_HEIGHT


def _box_height(boxes: Sequence[Box]) -> float:
    return max(1.0, float(np.median([y1 - y0 for _, y0, _, y1 in boxes])))


def _inpaint(image: np.ndarray, mask: np.ndarray, height: float) -> np.ndarray:
    """Telea's fill of `mask` (RGB, image-sized), looking INPAINT_RADIUS box heights round, at most
    INPAINT_MAX_RADIUS px, over the masked region and its surroundings only. Telea's time grows with the
    radius squared: US plates' 60 px characters (a 9 px radius) took 0.12-0.15 s a plate, and a folder of
    600 style plates over a minute. Inpainting a copy scaled to 32 px characters was 5x faster but drew the
    boxes' outlines on smooth paper (pink rectangles on a DC plate); the capped radius does not."""
    radius = max(2.0, min(INPAINT_RADIUS * height, INPAINT_MAX_RADIUS))
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return image
    margin = int(np.ceil(radius)) + 2
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, mask.shape[0])
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, mask.shape[1])
    fill = cv2.inpaint(np.ascontiguousarray(image[y0:y1, x0:x1, ::-1]), mask[y0:y1, x0:x1].astype(np.uint8), radius,
                       cv2.INPAINT_TELEA)
    filled = image.copy()
    filled[y0:y1, x0:x1] = fill[..., ::-1]
    return filled


def erase_mask(image: np.ndarray, box: Box, side: float) -> np.ndarray:
    """The pixels `erase_characters` repaints for the character in `box` (bool, image-sized): its ink
    (`ink_mask`) and its rim: pixels on the ink side of the paper by RIM_SHARE of the box's contrast that touch
    the ink, up to INK_GROWTH of the box height away, past a tight box too (Telea filled from a rim the box
    cut through: grey bars on a Delaware plate). Ink-side pixels that run on past that reach (a state band,
    a plate's frame) are no rim."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    reach = max(1, round(INK_GROWTH * (y1 - y0)))
    X0, Y0, X1, Y1 = max(x0 - reach, 0), max(y0 - reach, 0), min(x1 + reach, width), min(y1 + reach, height)
    diff = _box_contrast(image, box)
    paper = float(np.median(_gray(image[y0:y1, x0:x1]) - diff))
    threshold = max(MIN_INK_CONTRAST / 2, RIM_SHARE * float(np.percentile(side * diff, 98)))
    rim = (side * (_gray(image[Y0:Y1, X0:X1]) - paper) > threshold).astype(np.uint8)
    outside = np.ones(rim.shape, bool)
    outside[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = False
    _, parts = cv2.connectedComponents(rim & outside)
    beyond = np.unique(np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]]))
    rim[np.isin(parts, beyond[beyond > 0])] = 0  # past the box, what runs on past the reach (a band) is no rim
    grown = (ink_mask(image, box)[Y0:Y1, X0:X1] > 0).astype(np.uint8)
    for _ in range(reach):
        grown |= cv2.dilate(grown, np.ones((3, 3), np.uint8)) & rim
    mask = np.zeros((height, width), bool)
    mask[Y0:Y1, X0:X1] = grown > 0
    return mask


def _paper_model(image: np.ndarray, boxes: Sequence[Box], mask: np.ndarray, height: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth paper under the characters (HxWx3 float32), from the boxes' pixels at least a pixel clear of
    `mask` and near their box's paper grey (not a glare or a shadow), blurred PAPER_SMOOTH along and across
    the rows (a plate's light changes along its height more than along its rows); and where it is known
    (0-1: the blurred share of such pixels near, over PAPER_SUPPORT); and how far, in grey levels, those pixels
    stray from it around each pixel (their blurred absolute difference)."""
    inside = np.zeros(image.shape[:2], np.uint8)
    for box in boxes:
        x0, y0, x1, y1 = box
        diff = np.abs(_box_contrast(image, box))
        inside[y0:y1, x0:x1] = diff <= max(MIN_INK_CONTRAST, RIM_SHARE * float(np.percentile(diff, 98)))
    weight = (inside & (cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0)).astype(np.float32)
    blur = functools.partial(_smooth, sigmas=[max(1.0, share * height) for share in PAPER_SMOOTH],
                             scale=min(1.0, INPAINT_HEIGHT / height))
    near = np.maximum(blur(weight), 1e-6)
    paper = blur(image.astype(np.float32) * weight[..., None]) / near[..., None]
    misfit = blur(np.abs(_gray(image) - _gray(paper)) * weight) / near  # the paper's own departures from the model
    return paper, np.clip(near / PAPER_SUPPORT, 0.0, 1.0), misfit


def _smooth(values: np.ndarray, sigmas: Sequence[float], scale: float) -> np.ndarray:
    """`values` (HxW or HxWxC float32) blurred by Gaussians of `sigmas` (along, across the rows). Below a `scale`
    of 1 the blur runs on a copy scaled by it and comes back scaled up: the paper model's blur along the rows
    is a box height wide, 60 px on US plates, and cost 20 ms a plate at full size."""
    if scale >= 1.0:
        return cv2.GaussianBlur(values, (0, 0), sigmaX=sigmas[0], sigmaY=sigmas[1])
    height, width = values.shape[:2]
    small = cv2.resize(values, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(0.5, sigmas[0] * scale), sigmaY=max(0.5, sigmas[1] * scale))
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _held_to(filled: np.ndarray, paper: np.ndarray, known: np.ndarray, misfit: np.ndarray, tolerance: float
             ) -> np.ndarray:
    """`filled` moved toward `paper`, by as much as its grey level strays beyond `tolerance`, times how well
    the paper is `known` (0-1: fading out where the model has little support, so no edge shows) and how well
    it fits the paper around (fading out where the paper itself strays from it by over MISFIT tolerances, as
    artwork behind the characters does: there the model is no better than Telea's fill)."""
    gap = _gray(paper) - _gray(filled)
    trust = known * np.clip(2.0 - misfit / (MISFIT * tolerance), 0.0, 1.0)
    beyond = np.maximum(np.abs(gap) - tolerance, 0.0) * trust
    share = np.where(beyond > 0, beyond / np.maximum(np.abs(gap), 1e-3), 0.0)
    return filled + share[..., None] * (paper - filled)


def place_characters(background: np.ndarray, glyph_images: Sequence[np.ndarray], boxes: Sequence[Box],
                     ink: np.ndarray | None = None, noise: float = 0.0, seed: int = 0,
                     contents: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """One plate of `place_on_plates`: generated characters (SxSx3 uint8) on the erased plate at `boxes`."""
    glyphs = np.stack(glyph_images)[None] if len(glyph_images) else np.zeros((1, 0, 1, 1, 3), np.uint8)
    return place_on_plates(background, glyphs, boxes, ink, noise, [seed],
                           contents=None if contents is None else np.stack(contents)[None])[0]


def place_on_plates(background: np.ndarray, glyphs: np.ndarray, boxes: Sequence[Box], ink: np.ndarray | None = None,
                    noise: float = 0.0, seeds: Sequence[int] = (), known: "Coverages | None" = None,
                    contents: np.ndarray | None = None) -> np.ndarray:
    """Plates [P,H,W,3] uint8 from one erased `background` and `glyphs` [P,C,S,S,3] (plate p's
    characters, framed like real crops) placed at `boxes` (C); `contents` [P,C,S,S] uint8: the content
    glyph each was drawn from (None: every stroke the generator drew is placed).

    Each glyph gives a soft ink coverage (0 on its paper, 1 on its strokes); the plate
    becomes `background + coverage * (ink - background)`. `ink` is the style plate's own
    ink colour (`ink_colour`); without it each character keeps the generator's ink, taken
    relative to its paper and put on the plate's paper under the box. `noise` (sigma, 0-255)
    adds Gaussian noise to the whole composed plate, a field fixed by the plate's seed (`seeds`,
    P), before rounding: the characters are placed as noiseless coverage, so the noise goes on here.
    The plates of one background are composed together (per-call numpy and OpenCV overheads cost
    more than a small plate's arithmetic); every plate gets the same bytes as on its own.
    `known`: the coverages of glyphs seen before (a run's glyphs repeat), kept across calls.
    """
    count, slots = glyphs.shape[:2]
    plates = np.repeat(background.astype(np.float32)[None], count, axis=0)
    if slots:
        flat_contents = None if contents is None else contents.reshape(count * slots, *contents.shape[2:])
        coverages, directions = (known or _coverages)(glyphs.reshape(count * slots, *glyphs.shape[2:]), flat_contents)
        coverages = coverages.reshape(count, slots, *coverages.shape[1:])
        directions = directions.reshape(count, slots, 3)
        for j, box in enumerate(boxes):
            _add_ink(plates, coverages[:, j], directions[:, j], box, ink)
    if noise > 0:
        for plate, seed in zip(plates, seeds):
            rng = np.random.default_rng([seed, 7])  # 7: the plate-noise stream of the plate's seed
            plate += rng.standard_normal(plate.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(np.rint(plates), 0, 255).astype(np.uint8)


class Coverages:
    """`_coverages` that works out each distinct glyph once: a plate run draws its characters from a
    few hundred distinct images (`engine.DrawMemo`), each a glyph of many plates. A glyph's coverage
    depends on its own pixels only, so it is the same bytes whichever call first met it. Keeps up
    to `limit` glyphs (then starts afresh)."""

    def __init__(self, limit: int = 8192):
        self.limit = limit
        self.known: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, glyphs: np.ndarray, contents: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        keys = [glyph.tobytes() + (b"" if contents is None else content.tobytes())
                for glyph, content in zip(glyphs, glyphs if contents is None else contents)]
        found = {key: self.known.get(key) for key in keys}
        missing = [key for key, value in found.items() if value is None]
        if missing:
            where = {key: i for i, key in reversed(list(enumerate(keys)))}
            first = [where[key] for key in missing]
            coverages, directions = _coverages(glyphs[first], None if contents is None else contents[first])
            made = dict(zip(missing, zip(coverages, directions)))
            found.update(made)
            if len(self.known) + len(made) > self.limit:
                self.known.clear()
            self.known.update(made)
        return np.stack([found[key][0] for key in keys]), np.stack([found[key][1] for key in keys])


def _coverages(glyphs: np.ndarray, contents: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per glyph [N,S,S,3]: its soft ink coverage [N,S,S] and its ink relative to its paper [N,3].

    Paper is the glyph's median colour; the strokes' direction from it is the mean of its
    strongest tenth of pixels, or with `contents` [N,S,S] (the content glyphs drawn) of the stronger
    half of the pixels under the content glyph's strokes (`_stroke_cores`), and coverage further than
    GLYPH_REACH from a content glyph's ink is dropped (`glyph_reach`). All glyphs at once: per-glyph
    numpy calls cost more than the arithmetic of a 32x32 image.
    """
    pixels = glyphs.astype(np.float32)
    # the same values as the median and norm over the pixels' last axes, but on contiguous rows (a few times faster)
    paper = np.median(np.ascontiguousarray(glyphs.reshape(len(glyphs), -1, 3).transpose(0, 2, 1)), axis=2)
    delta = pixels - paper.astype(np.float32)[:, None, None, :]
    square = delta * delta
    strength = np.sqrt(square[..., 0] + square[..., 1] + square[..., 2])
    threshold = np.percentile(strength.reshape(len(pixels), -1), 90, axis=1)
    strong = strength >= threshold[:, None, None]
    if contents is not None:
        strong = _stroke_cores(strength, contents, strong)
    counts = strong.reshape(len(pixels), -1).sum(axis=1)
    # each glyph's strong pixels summed in order, as their mean over axis 0 would (same bytes)
    sums = np.add.reduceat(delta[strong], np.concatenate([[0], np.cumsum(counts)[:-1]]), axis=0)
    direction = sums / counts[:, None].astype(np.float32)
    contrast = np.maximum(np.linalg.norm(direction, axis=1), np.float32(1.0))
    unit = direction / contrast[:, None]
    along = (delta @ unit[:, None, :, None])[..., 0] / contrast[:, None, None]  # 1 on a typical stroke, <= 0 on paper
    low, high = SOFT_INK
    coverage = np.clip((along - low) / (high - low), 0.0, 1.0)
    if contents is not None:
        coverage *= glyph_reach(contents)
    return coverage, direction


def _stroke_cores(strength: np.ndarray, contents: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """[N,S,S] bool: the pixels under each content glyph's strokes (>= 128) at least as strong as their
    median. The strongest tenth of a generated crop is often not its ink: a plate's coloured band, a
    glare or a neighbour drawn more vividly than the character; the content glyph says where the ink is.
    A glyph with no content ink keeps `fallback`."""
    core = contents >= 128
    has = core.reshape(len(core), -1).any(axis=1)
    under = np.where(core, strength, np.nan).reshape(len(core), -1)
    median = np.nanmedian(np.where(has[:, None], under, 0.0), axis=1)
    return np.where(has[:, None, None], core & (strength >= median[:, None, None]), fallback)


def glyph_reach(contents: np.ndarray) -> np.ndarray:
    """[N,S,S] float32: 1 within GLYPH_REACH px of each content glyph's ink (uint8 [N,S,S], ink 255),
    fading to 0 over one more pixel."""
    distance = [cv2.distanceTransform((content <= 64).astype(np.uint8), cv2.DIST_L2, 5) for content in contents]
    return np.clip(GLYPH_REACH + 1 - np.stack(distance), 0.0, 1.0).astype(np.float32)


def _add_ink(plates: np.ndarray, coverage: np.ndarray, direction: np.ndarray, box: Box, ink: np.ndarray | None) -> None:
    """Blend each plate's glyph coverage ([P,S,S]) into `plates` ([P,H,W,3] float32, in place), on its
    frame square round `box`."""
    height, width = plates.shape[1:3]
    placement = _placement(tuple(box), height, width, coverage.shape[1])
    if placement is None:
        return
    (x0, y0, x1, y1), blur, matrix, window = placement
    # OpenCV takes the plates' coverages as the channels of one image, 4 at a time (its cubic warp's limit)
    warped = []
    for a in range(0, len(coverage), 4):
        part = np.ascontiguousarray(coverage[a:a + 4].transpose(1, 2, 0))
        if blur:  # a reduction: smooth first, or thin strokes alias into dots (as warp_to_frame does)
            part = cv2.GaussianBlur(part, (0, 0), blur)
        part = cv2.warpAffine(part, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC, borderValue=0)
        warped.append(part.reshape(y1 - y0, x1 - x0, -1).transpose(2, 0, 1))
    coverage = np.clip(np.concatenate(warped), 0.0, 1.0) * window
    under = plates[:, y0:y1, x0:x1]
    if ink is None:
        bx0, by0, bx1, by1 = box
        ink = (np.median(plates[:, by0:by1, bx0:bx1].reshape(len(plates), -1, 3), axis=1) + direction)[:, None, None]
    under += coverage[..., None] * (ink - under)


@functools.lru_cache(maxsize=4096)
def _placement(box: Box, height: int, width: int, size: int
               ) -> tuple[Box, float, np.ndarray, np.ndarray] | None:
    """Where a size x size glyph goes for `box` on a height x width plate: its frame square
    clipped to the plate, the pre-blur sigma (0: none), the warp and the window. The same for
    every plate of one style plate, so it is worked out once (None: the square is off the plate)."""
    cx, cy, side = frame_square(box)
    scale = side / size
    x0, y0 = max(int(np.floor(cx - side / 2)), 0), max(int(np.floor(cy - side / 2)), 0)
    x1, y1 = min(int(np.ceil(cx + side / 2)), width), min(int(np.ceil(cy + side / 2)), height)
    if x1 <= x0 or y1 <= y0:
        return None
    matrix = np.float32([[scale, 0, cx - scale * size / 2 - x0], [0, scale, cy - scale * size / 2 - y0]])
    window = _window(box, x0, y0, (x1 - x0, y1 - y0))
    matrix.flags.writeable = window.flags.writeable = False  # shared by every call: never changed in place
    return (x0, y0, x1, y1), 0.45 / scale if scale < 1 else 0.0, matrix, window


def _window(box: Box, x0: int, y0: int, region: tuple[int, int]) -> np.ndarray:
    """1 on the box grown by WINDOW_PAD of its height, fading linearly to 0 over as much again."""
    bx0, by0, bx1, by1 = box
    pad = max(1.0, WINDOW_PAD * (by1 - by0))
    xs = np.arange(region[0], dtype=np.float32) + x0 + 0.5
    ys = np.arange(region[1], dtype=np.float32) + y0 + 0.5
    wx = np.clip((np.minimum(xs - bx0, bx1 - xs) + 2 * pad) / pad, 0.0, 1.0)
    wy = np.clip((np.minimum(ys - by0, by1 - ys) + 2 * pad) / pad, 0.0, 1.0)
    return wy[:, None] * wx[None, :]
