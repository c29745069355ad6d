"""Whole plates: characters drawn one by one (today) or the whole text line drawn at once? (issue 10)

    OMP_NUM_THREADS=1 python benchmarks/whole_plate.py [--data ../shared/data] [--styles 12] [--per-style 4]
        [--sheet docs/whole-plate-vs-characters.png] [--steps 600] [--json out.json]

The shipped checkpoint, no training of the SAAE. For each source (uc3m-lp, ccpd-crops, openalpr-us),
`--styles` held-out style plates (`dataset.is_holdout`: the model never trained on them) and the same
plan for every kind (`plates.plan_plates`: texts, seeds; no --noise, so nothing but the drawing differs):

- today: `plates.make_plates`, each character drawn by the SAAE on a 32x32 frame and its strokes placed
  in the plate's ink on the erased plate; with the label check (what synth ships) and without (first
  draws, the same glyph and style entry the whole-line path uses);
- whole line: the generator is fully convolutional, so the content encoder runs on one wide image with
  every slot's glyph (the same pool entries as today's first draws) at its frame square, scaled so a
  frame is 32 px as in training. The style code's 32x32 map must cover the band: `resize` (bilinear to
  the band), `tile` (repeated every 32 px from the band's corner), `slots` (the map on each slot's frame,
  as the per-character path sees it, tent-weighted where frames overlap, the map's mean elsewhere),
  `mean` (the map's spatial mean everywhere). With `fit` the glyphs are not on their frame squares but
  scaled so their ink is as tall as the slot's box (narrowed if wider), centred on it: a clean rendered
  text line with the real plate's character sizes. The output is put on the plate as `ink` (its soft ink
  coverage in the plate's own ink on the erased plate, today's compositing) or as `band` (the
  generator's colour-matched pixels as the character band, feathered at its border, on the erased plate).

Measured on every kind (and on the real style plates as the reference):
- read: a character recogniser (`recognizer.train_recognizer`, `--steps` steps) trained once on the
  real crops of the train-side plates of all three sources reads the crops cut at the plates' boxes
  (`dataset.crop_character`); share read as asked, over all characters and over classes it has at
  least `JUDGE_MIN_CROPS` training crops of, and the share of plates read entirely right;
- seams: at every edge of a pasted block (the frame squares today draws, the band the whole line
  draws), the mean absolute luma step across the edge divided by the mean step 3 px to either side,
  parallel to it (1.0: the edge is no different from its surroundings; a visible block edge is > 1);
- CPU ms per plate (process time, 1 torch thread): drawing + compositing, setup (pools, erasing) not
  counted; the kinds alternate per source, so they see the same load. The load average is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench.judge import JUDGE_MIN_CROPS  # noqa: E402
from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint  # noqa: E402
from plategen.dataset import build_samples, crop_character, is_holdout  # noqa: E402
from plategen.glyphs import FONTS_DIR, fonts_for, frame_square, ink_box, shipped_fonts  # noqa: E402
from plategen.plates import load_plates  # noqa: E402
from plategen.recognizer import Schedule, predict, train_recognizer  # noqa: E402
from plategen.synth.compose import WINDOW_PAD, _coverages, _window  # noqa: E402
from plategen.synth.engine import Synthesizer  # noqa: E402
from plategen.synth.plates import (Canvas, PlatePlan, StylePlate, character_synth, compose_plates,  # noqa: E402
                                   plan_plates, plate_characters, style_plate)
from plategen.synth.recolour import match_colours  # noqa: E402

SOURCES = ("uc3m-lp", "ccpd-crops", "openalpr-us")
MAP_MODES = ("resize", "tile", "slots", "mean")
FIT_MAP_MODES = ("slots", "mean")  # the maps tried with glyphs fitted to their boxes
PLACEMENTS = ("ink", "band")
SEAM_OFFSET = 3  # px: a seam's step is compared with the steps this far to either side


# ---------------------------------------------------------------- the whole-line path


@dataclass(frozen=True)
class Band:
    """A style plate's character band in generator space: frames scaled so their median side is S."""

    x0: float  # plate px of the band's corner
    y0: float
    scale: float  # generator px per plate px
    width: int  # generator px
    height: int
    frames: tuple[tuple[int, int, int], ...]  # per char slot: left, top, side in generator px
    boxes: tuple[tuple[float, float, float, float], ...]  # per char slot: its box in generator px


def band_of(plate: StylePlate, size: int) -> Band:
    frames = [frame_square(slot.box) for slot in plate.layout.char_slots]
    scale = size / float(np.median([side for _, _, side in frames]))
    x0 = min(cx - side / 2 for cx, _, side in frames)
    y0 = min(cy - side / 2 for _, cy, side in frames)
    x1 = max(cx + side / 2 for cx, _, side in frames)
    y1 = max(cy + side / 2 for _, cy, side in frames)
    placed = tuple((round((cx - side / 2 - x0) * scale), round((cy - side / 2 - y0) * scale),
                    max(1, round(side * scale))) for cx, cy, side in frames)
    width = max(round((x1 - x0) * scale), *(l + s for l, _, s in placed))
    height = max(round((y1 - y0) * scale), *(t + s for _, t, s in placed))
    boxes = tuple(((bx0 - x0) * scale, (by0 - y0) * scale, (bx1 - x0) * scale, (by1 - y0) * scale)
                  for bx0, by0, bx1, by1 in (slot.box for slot in plate.layout.char_slots))
    return Band(x0, y0, scale, width, height, placed, boxes)


def paste(canvas: torch.Tensor, tile: torch.Tensor, frame: tuple[int, int, int], weight: torch.Tensor | None = None
          ) -> None:
    """Add (or max, without `weight`) `tile` [B,C,S,S] resized to the frame's side into `canvas` [B,C,H,W]."""
    left, top, side = frame
    if side != tile.shape[-1]:
        tile = F.interpolate(tile, size=(side, side), mode="bilinear", align_corners=False)
    region = canvas[:, :, top:top + side, left:left + side]
    if weight is None:
        torch.maximum(region, tile, out=region)
    else:
        region += tile * F.interpolate(weight, size=(side, side), mode="bilinear", align_corners=False)


def style_band(style_map: torch.Tensor, band: Band, mode: str) -> torch.Tensor:
    """The style map [B,C,S,S] spread over the band [B,C,H,W] (see the module docstring for `mode`)."""
    b, c, s, _ = style_map.shape
    if mode == "resize":
        return F.interpolate(style_map, size=(band.height, band.width), mode="bilinear", align_corners=False)
    if mode == "tile":
        reps = (-(-band.height // s), -(-band.width // s))
        return style_map.repeat(1, 1, *reps)[:, :, :band.height, :band.width]
    mean = style_map.mean(dim=(2, 3), keepdim=True)
    if mode == "mean":
        return mean.expand(b, c, band.height, band.width).contiguous()
    ramp = 1 - (torch.arange(s, dtype=torch.float32) + 0.5 - s / 2).abs() / (s / 2)
    tent = (ramp[:, None] * ramp[None, :]).view(1, 1, s, s)
    total = mean.expand(b, c, band.height, band.width) * 1e-3
    weights = torch.full((1, 1, band.height, band.width), 1e-3)
    for frame in band.frames:
        paste(total, style_map, frame, tent)
        paste(weights, torch.ones(1, 1, s, s), frame, tent)
    return total / weights


def fitted_content(glyphs: np.ndarray, band: Band) -> torch.Tensor:
    """Content [B,1,H,W] 0-1 with each glyph ([B,C,S,S] uint8) scaled so its ink is as tall as its slot's box
    (and no wider: then narrowed), centred on the box."""
    b, slots = glyphs.shape[:2]
    content = np.zeros((b, band.height, band.width), np.float32)
    for p in range(b):
        for j, (bx0, by0, bx1, by1) in enumerate(band.boxes):
            gx0, gy0, gx1, gy1 = ink_box(glyphs[p, j])
            sy = (by1 - by0) / (gy1 - gy0)
            sx = min(sy, (bx1 - bx0) / (gx1 - gx0))
            tx = (bx0 + bx1) / 2 - sx * (gx0 + gx1) / 2
            matrix = np.float32([[sx, 0, tx], [0, sy, by0 - sy * gy0]])
            warped = cv2.warpAffine(glyphs[p, j], matrix, (band.width, band.height), flags=cv2.INTER_LINEAR)
            np.maximum(content[p], warped.astype(np.float32) / 255, out=content[p])
    return torch.from_numpy(content).unsqueeze(1)


@torch.inference_mode()
def draw_lines(synth: Synthesizer, band: Band, char_ids: np.ndarray, mode: str, fit: bool = False
               ) -> np.ndarray:
    """Plates' bands [B,H,W,3] float 0-255, colour matched to the style entry as synth's characters are;
    `char_ids` [B,C] are the plates' characters in the flat character plan (their first draws' entries).
    Each glyph sits on its frame square as today's path draws it, or with `fit` its ink fills the slot's box."""
    model, engine = synth.engine.model, synth.engine
    glyph, style = synth.entries(char_ids.reshape(-1), np.zeros(char_ids.size, np.int64))
    b, slots = char_ids.shape
    if fit:
        content = fitted_content(synth.glyphs.glyphs[glyph].reshape(b, slots, *synth.glyphs.glyphs.shape[1:]), band)
    else:
        glyphs = engine.glyphs[torch.from_numpy(glyph)].view(b, slots, 1, *engine.glyphs.shape[-2:])
        content = torch.zeros(b, 1, band.height, band.width)
        for j, frame in enumerate(band.frames):
            paste(content, glyphs[:, j], frame)
    entries = torch.from_numpy(style.reshape(b, slots)[:, 0])
    c = model.config
    maps = F.leaky_relu(model.style_map(engine.codes[entries]), c.leak).view(b, c.content_width, c.style_map_size,
                                                                             c.style_map_size)
    if c.style_map_size != c.glyph_size:
        maps = F.interpolate(maps, size=(c.glyph_size, c.glyph_size), mode="bilinear", align_corners=False)
    out = torch.sigmoid(model.decoder(torch.cat([model.content(content), style_band(maps, band, mode)], 1))) * 255
    if engine.palette is not None:
        background, ink = engine.palette
        out = match_colours(out, content, background[entries], ink[entries])
    return out.permute(0, 2, 3, 1).numpy()


def band_window(plate: StylePlate, band: Band, placement: str) -> np.ndarray:
    """Where the band may change the plate (HxW, 0-1): round the boxes (`ink`), or the band's rectangle (`band`),
    each fading out over WINDOW_PAD of a box height, as today's compositing does."""
    width, height = plate.layout.size
    boxes = [slot.box for slot in plate.layout.char_slots]
    if placement == "ink":
        return np.max([_window(box, 0, 0, (width, height)) for box in boxes], axis=0)
    x1, y1 = band.x0 + band.width / band.scale, band.y0 + band.height / band.scale
    pad = max(1.0, WINDOW_PAD * float(np.median([b[3] - b[1] for b in boxes])))
    inner = (band.x0 + 2 * pad, band.y0 + 2 * pad, x1 - 2 * pad, y1 - 2 * pad)
    return _window(tuple(inner), 0, 0, (width, height))


def to_plate(image: np.ndarray, band: Band, size: tuple[int, int]) -> np.ndarray:
    """A band-space image [H,W,C] (or [H,W]) resampled onto the plate's pixels (zero outside the band)."""
    inv = 1 / band.scale
    matrix = np.float32([[inv, 0, band.x0 + inv / 2 - 0.5], [0, inv, band.y0 + inv / 2 - 0.5]])
    if band.scale > 1:  # a reduction: smooth first, or thin strokes alias into dots
        image = cv2.GaussianBlur(image, (0, 0), 0.45 * band.scale)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)


def line_plates(synth: Synthesizer, canvas: Canvas, plan: PlatePlan, styles: list[StylePlate], mode: str,
                placement: str, fit: bool = False) -> list[np.ndarray]:
    """Every planned plate drawn as one text line; the plates of one style plate form one batch."""
    starts = plan.char_starts()
    out: list[np.ndarray] = [np.empty(0)] * plan.n
    size = synth.engine.size
    for k in np.unique(plan.style).tolist():
        ids = np.flatnonzero(plan.style == k)
        band = band_of(styles[k], size)
        char_ids = np.stack([np.arange(starts[i], starts[i + 1]) for i in ids])
        bands = draw_lines(synth, band, char_ids, mode, fit)
        background, ink = canvas.get(k)
        window = band_window(styles[k], band, placement)[..., None]
        size_wh = styles[k].layout.size
        if placement == "ink":
            coverage, _ = _coverages(np.clip(bands + 0.5, 0, 255).astype(np.uint8))
        for row, i in enumerate(ids.tolist()):
            under = background.astype(np.float32)
            if placement == "ink":
                alpha = to_plate(np.ascontiguousarray(coverage[row]), band, size_wh)[..., None] * window
                made = under + alpha * (ink - under)
            else:
                made = under + window * (to_plate(np.ascontiguousarray(bands[row]), band, size_wh) - under)
            out[i] = np.clip(np.rint(made), 0, 255).astype(np.uint8)
    return out


def today_plates(synth: Synthesizer, canvas: Canvas, plan: PlatePlan, batch: int = 32) -> list[np.ndarray]:
    """`plates.make_plates`' loop over an already built synthesizer (so its setup is not timed)."""
    starts = plan.char_starts()
    images: list[np.ndarray] = []
    for b0 in range(0, plan.n, batch):
        ids = range(b0, min(b0 + batch, plan.n))
        images += compose_plates(canvas, plan, ids, int(starts[b0]), plate_characters(synth, plan, ids))
    return images


# ---------------------------------------------------------------- measures


def seam_ratio(image: np.ndarray, rects: list[tuple[float, float, float, float]]) -> float:
    """Mean |luma step| across the edges of `rects` (x0, y0, x1, y1 plate px) over the mean step
    SEAM_OFFSET px to either side of each edge; edges within SEAM_OFFSET + 1 px of the plate's border are left out."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dx, dy = np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0))  # dx[:, x]: step between x and x + 1
    h, w = gray.shape
    at, beside = [], []
    o = SEAM_OFFSET
    for x0, y0, x1, y1 in rects:
        ys = slice(max(0, round(y0)), min(h, round(y1)))
        xs = slice(max(0, round(x0)), min(w, round(x1)))
        for x in (round(x0) - 1, round(x1) - 1):  # the step between the last outside and first inside column
            if o <= x < w - 1 - o:
                at.append(dx[ys, x].mean())
                beside.append((dx[ys, x - o].mean() + dx[ys, x + o].mean()) / 2)
        for y in (round(y0) - 1, round(y1) - 1):
            if o <= y < h - 1 - o:
                at.append(dy[y, xs].mean())
                beside.append((dy[y - o, xs].mean() + dy[y + o, xs].mean()) / 2)
    return float(np.mean(at) / max(np.mean(beside), 1e-6)) if at else float("nan")


def mean_measured(values: list[float]) -> float:
    """The mean of the plates that had an edge to measure (nan: none had)."""
    values = np.asarray(values, np.float64)
    return float(values[~np.isnan(values)].mean()) if not np.isnan(values).all() else float("nan")


def frame_rects(plate: StylePlate) -> list[tuple[float, float, float, float]]:
    return [(cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2) for cx, cy, s in
            (frame_square(slot.box) for slot in plate.layout.char_slots)]


def band_rect(plate: StylePlate, size: int) -> list[tuple[float, float, float, float]]:
    band = band_of(plate, size)
    return [(band.x0, band.y0, band.x0 + band.width / band.scale, band.y0 + band.height / band.scale)]


@dataclass
class KindScore:
    source: str
    kind: str
    plates: int
    characters: int
    read: float  # share of characters read as asked
    read_known: float  # ... of classes with >= JUDGE_MIN_CROPS training crops
    plates_read: float  # share of plates read entirely right
    seam_frames: float  # seam ratio at the frame squares' edges
    seam_band: float  # ... at the band's edges
    ms_per_plate: float | None  # CPU ms (process time)


def score(source: str, kind: str, images: list[np.ndarray], texts: list[str], styles: list[StylePlate],
          style_of: np.ndarray, model, index: dict[str, int], known: set[str], size: int,
          ms: float | None) -> tuple[KindScore, np.ndarray]:
    """The kind's figures, and per character whether it was read as asked (in plan order, for paired comparisons)."""
    crops, labels, owner = [], [], []
    for p, (image, text) in enumerate(zip(images, texts)):
        for ch, slot in zip(text, styles[style_of[p]].layout.char_slots):
            crops.append(crop_character(image, slot.box))
            labels.append(ch)
            owner.append(p)
    pred = predict(model, np.stack(crops))
    hit = np.array([index.get(ch, -1) == int(q) for ch, q in zip(labels, pred)])
    mask = np.array([ch in known for ch in labels])
    per_plate = np.bincount(owner, weights=(~hit).astype(np.float64), minlength=len(images)) == 0
    seams_f = mean_measured([seam_ratio(im, frame_rects(styles[k])) for im, k in zip(images, style_of)])
    seams_b = mean_measured([seam_ratio(im, band_rect(styles[k], size)) for im, k in zip(images, style_of)])
    return KindScore(source, kind, len(images), len(labels), float(hit.mean()), float(hit[mask].mean()),
                     float(per_plate.mean()), float(seams_f), float(seams_b), ms), hit


def pooled(kind: str, rows: list[KindScore]) -> KindScore:
    """One kind over every source, weighted by characters (plates for the share of plates, the seams and the time)."""
    chars, plates = np.array([r.characters for r in rows]), np.array([r.plates for r in rows])

    def mean(values, weights):  # a source without a measurable edge (nan) is left out
        values = np.asarray(values, np.float64)
        ok = ~np.isnan(values)
        return float(np.average(values[ok], weights=weights[ok])) if ok.any() else float("nan")

    known = mean([r.read_known for r in rows], chars)  # near enough: known classes are most characters
    ms = None if rows[0].ms_per_plate is None else mean([r.ms_per_plate for r in rows], plates)
    return KindScore("all", kind, int(plates.sum()), int(chars.sum()), mean([r.read for r in rows], chars), known,
                     mean([r.plates_read for r in rows], plates), mean([r.seam_frames for r in rows], plates),
                     mean([r.seam_band for r in rows], plates), ms)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test p-value of `wins` against `losses` (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


# ---------------------------------------------------------------- sheet


def write_sheet(path: Path, rows: list[tuple[str, list[np.ndarray]]], titles: list[str], height: int = 56) -> None:
    """One row per plate: style plate | each kind, at one height, with column titles and the text on the left."""
    font = ImageFont.truetype(str(FONTS_DIR / "DejaVuSans-Bold.ttf"), 12)
    cjk = ImageFont.truetype(str(FONTS_DIR / "WenQuanYiMicroHei-plates.ttf"), 12)
    widths = [max(round(font.getlength(title)), *(round(ims[c].shape[1] * height / ims[c].shape[0]) for _, ims in rows))
              for c, title in enumerate(titles)]
    label_w, gap = 110, 12
    sheet = Image.new("RGB", (label_w + sum(widths) + gap * len(widths), 22 + len(rows) * (height + 6)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    x = label_w
    for title, w in zip(titles, widths):
        draw.text((x, 4), title, fill=(230, 230, 230), font=font)
        x += w + gap
    for r, (text, images) in enumerate(rows):
        y = 22 + r * (height + 6)
        for line, ty in zip(text.split("\n"), (y + height // 2 - 16, y + height // 2 + 2)):
            tx = 4
            for ch in line:  # a province character needs the CJK font, lower case the Latin one
                face = font if ch.isascii() else cjk
                draw.text((tx, ty), ch, fill=(230, 230, 230), font=face)
                tx += face.getlength(ch)
        x = label_w
        for image, w in zip(images, widths):
            scale = height / image.shape[0]
            resized = cv2.resize(image, (round(image.shape[1] * scale), height),
                                 interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            sheet.paste(Image.fromarray(resized), (x, y))
            x += w + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


# ---------------------------------------------------------------- main


def train_judge(data: Path, sources: list[str], steps: int, console: Console):
    """The recogniser of real crops of train-side plates (all sources), and its classes with enough crops."""
    plates = [p for s in sources for p in load_plates(data / s).plates if not is_holdout(p)]
    samples = build_samples(plates)
    start = time.process_time()
    trained = train_recognizer(samples.crops, samples.labels, len(samples.charset), Schedule(steps=steps), seed=0)
    counts = np.bincount(samples.labels, minlength=len(samples.charset))
    known = {c for c, n in zip(samples.charset, counts) if n >= JUDGE_MIN_CROPS}
    console.print(f"judge: {len(samples.crops)} real crops of {len(plates)} train-side plates, {len(samples.charset)} "
                  f"classes ({len(known)} with >= {JUDGE_MIN_CROPS}), {steps} steps, "
                  f"{time.process_time() - start:.0f} CPU s")
    return trained.model, {c: i for i, c in enumerate(samples.charset)}, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--styles", type=int, default=12, help="held-out style plates per source (evenly spaced)")
    parser.add_argument("--per-style", type=int, default=4, help="plates per style plate")
    parser.add_argument("--steps", type=int, default=600, help="training steps of the judge recogniser")
    parser.add_argument("--sheet", type=Path, default=REPO / "docs" / "whole-plate-vs-characters.png")
    parser.add_argument("--sheet-rows", type=int, default=4, help="rows per source on the sheet")
    parser.add_argument("--sheet-kinds", nargs="+", default=["line slots fit / ink", "line slots / band"],
                        help="the whole-line kinds shown on the sheet after the style plate and today's")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console(width=200)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}, "
                  f"torch {torch.__version__}, 1 thread")
    judge, index, known = train_judge(args.data, args.sources, args.steps, console)
    ckpt = load_checkpoint(args.checkpoint)
    fonts = shipped_fonts()
    chars = [c for c in ckpt.meta["charset"] if fonts_for(c, fonts)]
    size = ckpt.config.glyph_size
    lines = {f"line {m}{' fit' if fit else ''} / {p}": (m, p, fit) for fit in (False, True) for p in PLACEMENTS
             for m in (MAP_MODES if not fit else FIT_MAP_MODES)}
    kinds = ["today (check)", "today (first draws)", *lines]
    scores: list[KindScore] = []
    hits: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    sheet_rows: list[tuple[str, list[np.ndarray]]] = []
    for turn, source in enumerate(args.sources):
        plates = [p for p in load_plates(args.data / source).plates if is_holdout(p)]
        pick = np.unique(np.linspace(0, len(plates) - 1, args.styles).round().astype(int))
        styles = [style_plate(plates[i]) for i in pick]
        plan = plan_plates(styles, len(styles) * args.per_style, chars, args.seed)
        made: dict[str, list[np.ndarray]] = {}
        ms: dict[str, float] = {}
        canvas = Canvas(styles)
        for k in range(len(styles)):
            canvas.get(k)  # erasing is setup, the same for every kind
        checked = character_synth(ckpt.generator, ckpt.discriminator, ckpt.meta["charset"], styles, plan, chars,
                                  fonts, args.seed, "cpu", 32)
        plain = character_synth(ckpt.generator, None, None, styles, plan, chars, fonts, args.seed, "cpu", 32)
        checked.threads = plain.threads = 1  # one core, as the whole-line path uses
        order = kinds if turn % 2 == 0 else kinds[::-1]  # alternate the order between sources
        for kind in order:
            start = time.process_time()
            if kind == "today (check)":
                made[kind] = today_plates(checked, canvas, plan)
            elif kind == "today (first draws)":
                made[kind] = today_plates(plain, canvas, plan)
            else:
                made[kind] = line_plates(plain, canvas, plan, styles, *lines[kind])
            ms[kind] = (time.process_time() - start) * 1000 / plan.n
        reference = [s.image for s in styles]
        scores.append(score(source, "real style plates", reference, [s.text for s in styles], styles,
                            np.arange(len(styles)), judge, index, known, size, None)[0])
        for kind in kinds:
            row, hit = score(source, kind, made[kind], plan.texts, styles, plan.style, judge, index, known, size,
                             ms[kind])
            scores.append(row)
            hits[kind].append(hit)
        first = [int(np.flatnonzero(plan.style == k)[0]) for k in range(len(styles))]
        for i in first[:: max(1, len(first) // args.sheet_rows)][:args.sheet_rows]:
            sheet_rows.append((f"{source}\n{plan.texts[i]}", [styles[plan.style[i]].image, made["today (check)"][i],
                                                             *(made[kind][i] for kind in args.sheet_kinds)]))
    for kind in ["real style plates", *kinds]:
        scores.append(pooled(kind, [s for s in scores if s.kind == kind]))
    table = Table(title=f"whole plates: per character (today) vs whole line, {args.checkpoint.name}, held-out "
                        f"style plates, load {os.getloadavg()[0]:.1f}")
    for column in ("source", "kind", "plates", "chars", "read as asked", "known classes", "plates all right",
                   "seam: frame edges", "seam: band edges", "CPU ms/plate"):
        table.add_column(column, justify="left" if column in ("source", "kind") else "right")
    for s, after in zip(scores, [*scores[1:], None]):
        table.add_row(s.source, s.kind, str(s.plates), str(s.characters), f"{s.read:.1%}", f"{s.read_known:.1%}",
                      f"{s.plates_read:.1%}", f"{s.seam_frames:.2f}", f"{s.seam_band:.2f}",
                      "" if s.ms_per_plate is None else f"{s.ms_per_plate:.1f}",
                      end_section=after is not None and after.source != s.source)
    console.print(table)
    paired = Table(title="paired, all sources: characters only the whole line reads right / only today's does")
    for column in ("whole-line kind", "vs today (first draws)", "p (sign test)", "vs today (check)", "p (sign test)"):
        paired.add_column(column, justify="left" if column == "whole-line kind" else "right")
    for kind in lines:
        cells = [kind]
        for base in ("today (first draws)", "today (check)"):
            line, today = np.concatenate(hits[kind]), np.concatenate(hits[base])
            wins, losses = int((line & ~today).sum()), int((today & ~line).sum())
            cells += [f"{wins} / {losses}", f"{sign_test(wins, losses):.2g}"]
        paired.add_row(*cells)
    console.print(paired)
    console.print(f"load after: {os.getloadavg()}")
    write_sheet(args.sheet, sheet_rows, ["style plate (held out)", "today: per character",
                                         *(f"whole {kind}" for kind in args.sheet_kinds)])
    console.print(f"sheet: {args.sheet}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(s) for s in scores], indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
