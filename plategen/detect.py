"""A small learned character detector: a map of character centres and extents, decoded with the text.

The plate is resized to a fixed INPUT_SIZE and a tiny fully convolutional network predicts,
per cell of a map at 1/STRIDE scale, how likely a character centre lies there (a heatmap),
where in the cell, and the character's width and height. With a known text the len(text)
confident peaks are taken and put in reading order (`reading_rows`: two-row plates top row
first); the plate is refused when fewer than that many peaks are confident. When more are (an
emblem between character groups, a sticker, stacked small letters, a separator dot), the
len(text) peaks that make the most regular rows and the surest centres are the characters
(`_likeliest_characters`); the plate is refused when another choice is nearly as good or a
peak set aside looks like one more character, since a wrong box is worse than none, and when the
chosen boxes do not lie on rows (`OFF_ROW`, `HEIGHT_SPREAD`). Without a text, every confident peak
is a character. `segment.segment_plate` stays as the classical
method; the importers try this detector first and fall back to it (`segment_with_text`).

Weights live in checkpoints/detector.safetensors (`save_detector`/`load_detector`, the JSON
header records how they were trained); `train_detector` is the training loop.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plategen.checkpoint import read_safetensors, write_safetensors
from plategen.errors import PlategenError
from plategen.plates import clip_box, warp_boxes
from plategen.recognizer import one_cycle
from plategen.segment import Box, Segmentation, reading_rows, segment_plate

INPUT_SIZE = (48, 128)  # height, width the plate is resized to (plates run from 2:1 US to 4:1 Chinese)
STRIDE = 4  # input pixels per map cell
CONFIDENT = 0.3  # a peak this strong is a character ...
MIN_INK_STD = 3.0  # ... if its box is not flat (grey spread; drawn uc3m boxes: >= 4): the net fires on a blank image too
MAX_EXTRA = 3  # confident peaks beyond the text's length that decoding may set aside
CHOICE_MARGIN = 0.2  # how much more irregular (`_irregularity`) the next best choice of characters must be
SET_ASIDE_COST = 0.6  # how much less like a character than those chosen each peak set aside must look
# A classical segmentation is refused where the detector surely sees a character of the text's size outside its
# boxes (a text missing a character). US plates' artwork (a cactus, a lighthouse, a horse, emblems) is detected too:
# 26 of the 30 openalpr-us plates only the fallback boxes with their full text show such a detection, at 0.45-0.79
# (3 at 0.7 or more), where a CCPD or US plate given its text less one character shows its missing one at 0.56-0.89
SIZE_LIKE = 0.75  # a detected character at least this much of the text's boxes' height is one of the text's kind
# texts less their first / last / middle character, first 40 segmentable plates a source: still boxed on 2 / 1 / 1
# CCPD and 3 / 3 / 3 openalpr-us plates (8 / 2 / 2 and 6 / 6 / 6 without the check); 3 of 620 US plates refused
SURE_UNBOXED = 0.7
# The characters decoded must lie on rows: every box's centre within OFF_ROW of its row's median height from the
# row's line, its height within HEIGHT_SPREAD (|log|: 1.5x) of that median. Random-noise images named as plate texts
# had 110 of 300 accepted with boxes strewn about; on the real text-only plates the detector accepts (786 ccpd-crops,
# 538 openalpr-us) the worst are 0.23 / 0.16 off the line and 0.18 / 0.26 in log height, but for one ccpd plate
# whose province box holds another box (0.89): this refuses that plate and 43 of the 110 noise images.
OFF_ROW = 0.3
HEIGHT_SPREAD = 0.4
HEADER_KEY = "plategen-detector"
DEFAULT_DETECTOR = Path(__file__).resolve().parents[1] / "checkpoints" / "detector.safetensors"


class DetectorNet(nn.Module):
    """Centre heatmap (1 channel, a logit), centre offset in the cell (2) and log width, height in cells (2)."""

    def __init__(self, width: int = 32):
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(3, 24, 2), *block(24, 32, 2), *block(32, width),
                                  *block(width, width, dilation=2), *block(width, width, dilation=4),
                                  *block(width, width))  # dilations: a cell sees its character and neighbours
        self.head = nn.Conv2d(width, 5, 1)
        nn.init.constant_(self.head.bias[:1], -4.0)  # start with few peaks, as focal-loss detectors do

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def to_input(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB plate as the 3xHxW float input at INPUT_SIZE."""
    resized = cv2.resize(image, INPUT_SIZE[::-1], interpolation=cv2.INTER_AREA)
    return resized.transpose(2, 0, 1).astype(np.float32) / 255.0


@dataclass(frozen=True)
class Peaks:
    boxes: np.ndarray  # [k, 4] x0, y0, x1, y1 in the image's pixels, strongest first
    scores: np.ndarray  # [k] heatmap values, falling


def peaks(net: DetectorNet, image: np.ndarray, limit: int = 20) -> Peaks:
    """The strongest local maxima of the centre heatmap and their boxes."""
    with torch.no_grad():
        out = net(torch.from_numpy(to_input(image))[None])[0]
    heat = torch.sigmoid(out[0])
    local = heat == F.max_pool2d(heat[None, None], 3, 1, 1)[0, 0]
    scores, index = torch.topk((heat * local).flatten(), min(limit, heat.numel()))
    ys, xs = index // heat.shape[1], index % heat.shape[1]
    cx = (xs + out[1, ys, xs].clamp(0, 1)) * STRIDE
    cy = (ys + out[2, ys, xs].clamp(0, 1)) * STRIDE
    w, h = torch.exp(out[3, ys, xs].clamp(max=4)) * STRIDE, torch.exp(out[4, ys, xs].clamp(max=4)) * STRIDE
    sx, sy = image.shape[1] / INPUT_SIZE[1], image.shape[0] / INPUT_SIZE[0]
    boxes = torch.stack([(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx, (cy + h / 2) * sy], 1).numpy()
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    kept: list[int] = []
    for i, (x, y) in enumerate(centres):  # a second peak on a wide character (a province, an emblem) is not another
        if not any(boxes[j, 0] <= x <= boxes[j, 2] and boxes[j, 1] <= y <= boxes[j, 3] for j in kept):
            kept.append(i)
    return Peaks(boxes[kept], scores.numpy()[kept])


def _confident_characters(image: np.ndarray, net: DetectorNet | None) -> tuple[list[Box], np.ndarray]:
    """The boxes (pixels) and scores of the peaks sure enough to be characters, on ink (not flat paper)."""
    found = peaks(net or load_detector(), image)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    boxes = [clip_box(b, image.shape) for b in found.boxes]
    confident = [i for i, ((x0, y0, x1, y1), score) in enumerate(zip(boxes, found.scores))
                 if score >= CONFIDENT and gray[y0:y1, x0:x1].std() >= MIN_INK_STD]
    return [boxes[i] for i in confident], found.scores[confident]


def detect_characters(image: np.ndarray, text: str | None = None, net: DetectorNet | None = None) -> Segmentation:
    """Boxes for `text` in `image` (HxWx3 uint8 RGB) in text order, or a refusal saying why.
    Without `text`: every confident character in reading order, refused when there is none."""
    return _unusable(image, text) or _decode(*_confident_characters(image, net), text)


def _unusable(image: np.ndarray, text: str | None) -> Segmentation | None:
    """The refusal of an image or text the detector cannot take (None: it can)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 4:
        return Segmentation(None, f"expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if text is not None and not text:
        return Segmentation(None, "empty text")
    return None


def _decode(boxes: list[Box], scores: np.ndarray, text: str | None) -> Segmentation:
    """`detect_characters` from the confident peaks (`_confident_characters`)."""
    confident = list(range(len(boxes)))
    n = len(confident) if text is None else len(text)
    if n == 0:
        return Segmentation(None, "no character found")
    if len(confident) < n:
        return Segmentation(None, f"the detector is confident of {len(confident)} characters for {n}")
    if len(confident) > n + MAX_EXTRA:
        return Segmentation(None, f"the detector finds {len(confident)} characters for {n}: too many the text lacks")
    if len(confident) > n:
        chosen = _likeliest_characters(boxes, scores, n)
        if chosen is None:
            return Segmentation(None, f"the detector finds {len(confident)} characters for {n}: "
                                "which are the text's is unclear")
        confident = [confident[i] for i in chosen]
    chars = [boxes[i] for i in confident]
    off_line, log_height = _row_deviations(chars)
    if text is not None and (off_line.max() > OFF_ROW or log_height.max() > HEIGHT_SPREAD):  # without a text, every peak
        return Segmentation(None, f"the detector's characters do not lie on rows (a box {off_line.max():.2f} of "
                                  f"its row's height off the line, heights up to {np.exp(log_height.max()):.1f}x apart)")
    return Segmentation(tuple(chars[i] for row in reading_rows(chars) for i in row), "")


def _likeliest_characters(boxes: list[Box], scores: np.ndarray, n: int) -> tuple[int, ...] | None:
    """Which `n` of `boxes` are the text's characters: the choice with the least `_irregularity`.
    None when another choice comes within CHOICE_MARGIN of it, or when a box set aside would add
    less than SET_ASIDE_COST to the row (it looks like one more character: the text may lack one).
    Measured on the train-side plates (uc3m's drawn boxes, and the classical method's boxes where
    it accepts a plate), this keeps the characters and sets aside emblems, stickers and stacked
    small letters, which sit off the row, differ in height or are weak peaks."""

    def cost(chosen: Sequence[int]) -> float:
        return _irregularity([boxes[i] for i in chosen], scores[list(chosen)])

    (best, chosen), (runner_up, _) = sorted((cost(c), c) for c in itertools.combinations(range(len(boxes)), n))[:2]
    if runner_up - best < CHOICE_MARGIN:
        return None
    if any(cost(sorted((*chosen, extra))) - best < SET_ASIDE_COST for extra in set(range(len(boxes))) - set(chosen)):
        return None
    return chosen


def _irregularity(boxes: list[Box], scores: np.ndarray) -> float:
    """How little `boxes` look like rows of characters, summed over the boxes: `_row_deviations` and the
    heatmap's doubt (1 - peak)."""
    off_line, log_height = _row_deviations(boxes)
    return float((1 - scores).sum() + off_line.sum() + log_height.sum())


def _row_deviations(boxes: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
    """Per box: its distance from its row's centre line (least squares on 3+ boxes) in its row's median
    height, and the |log| of its height over that median."""
    b = np.array(boxes, np.float64)
    heights, cx, cy = b[:, 3] - b[:, 1], (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    off_line, log_height = np.zeros(len(b)), np.zeros(len(b))
    for row in reading_rows(list(boxes)):
        height = float(np.median(heights[row]))
        slope, offset = np.polyfit(cx[row], cy[row], 1) if len(row) >= 3 else (0.0, float(np.median(cy[row])))
        off_line[row] = np.abs(cy[row] - slope * cx[row] - offset) / height
        log_height[row] = np.abs(np.log(heights[row] / height))
    return off_line, log_height


def segment_with_text(image: np.ndarray, text: str, net: DetectorNet | None = None) -> Segmentation:
    """The importers' boxes for a text-only plate: the detector (default: the shipped one), then the
    classical method when the detector refuses (its refusal reason is kept when both refuse)."""
    refused = _unusable(image, text)
    found = None if refused else _confident_characters(image, net)  # the detector runs once: the fallback checks too
    learned = refused or _decode(*found, text)
    if learned.boxes is not None:
        return learned
    classical = segment_plate(image, text)
    if classical.boxes is not None:
        missed = _left_unboxed(*found, classical.boxes) if found else 0
        if missed:  # a character of the boxes' size outside every box: the text lacks it, and each box's label is off
            return Segmentation(None, f"{learned.reason}; classical: boxes {len(text)} characters, but the plate shows "
                                      f"{missed} more of their size (is the text complete?)")
        return classical
    return Segmentation(None, f"{learned.reason}; classical: {classical.reason}")


def _left_unboxed(found: Sequence[Box], scores: np.ndarray, boxes: Sequence[Box]) -> int:
    """How many surely detected characters (score >= `SURE_UNBOXED`) as high as the text's boxes (`SIZE_LIKE` of
    their median height) lie outside them (their centre in no box): a plate of 7 characters given 5 of its text got
    5 boxes over the wrong ones."""
    height = float(np.median([y1 - y0 for _, y0, _, y1 in boxes]))
    return sum(1 for (x0, y0, x1, y1), score in zip(found, scores)
               if score >= SURE_UNBOXED and y1 - y0 >= SIZE_LIKE * height
               and not any(bx0 <= (x0 + x1) / 2 <= bx1 and by0 <= (y0 + y1) / 2 <= by1 for bx0, by0, bx1, by1 in boxes))


# ---------------------------------------------------------------- weights


def save_detector(path: Path | str, net: DetectorNet, meta: dict) -> None:
    write_safetensors(Path(path), net.state_dict(), meta, HEADER_KEY)


@functools.lru_cache(maxsize=4)
def load_detector(path: Path | str = DEFAULT_DETECTOR) -> DetectorNet:
    """The detector in eval mode, or one PlategenError naming the file."""
    path = Path(path)
    tensors, meta = read_safetensors(path, "detector", HEADER_KEY)
    try:
        net = DetectorNet(int(meta["width"]))
        net.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlategenError(f"{path}: damaged detector header ({exc!r})") from None
    except RuntimeError as exc:
        raise PlategenError(f"{path}: weights do not match the detector ({str(exc).splitlines()[0]})") from exc
    return net.eval()


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # HxWx3 uint8 RGB
    boxes: np.ndarray  # [n, 4] x0, y0, x1, y1 pixels: every character on the plate


def augment(sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random crop jitter (a little tighter or looser than the plate, shifted, slightly tilted) and
    colour change (inversion, channel order, contrast, blur, noise), at INPUT_SIZE: the input and its boxes."""
    height, width = sample.image.shape[:2]
    left, right = rng.uniform(-0.04, 0.12, 2) * width
    top, bottom = rng.uniform(-0.04, 0.2, 2) * height
    src = np.float32([[-left, -top], [width + right, -top], [-left, height + bottom]])
    src[:, 1] += rng.normal(0, 0.03) * height * np.float32([0, 1, 0])  # shear: a slight tilt of the top edge
    dst = np.float32([[0, 0], [INPUT_SIZE[1], 0], [0, INPUT_SIZE[0]]])
    matrix = cv2.getAffineTransform(src, dst)
    image = cv2.warpAffine(sample.image, matrix, INPUT_SIZE[::-1], flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    boxes = warp_boxes(sample.boxes, matrix)
    if rng.random() < 0.3:
        image = 255.0 - image
    image = image[:, :, rng.permutation(3)]
    if rng.random() < 0.2:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    image = (image - 128.0) * rng.uniform(0.5, 1.3) + 128.0 + rng.uniform(-40, 40)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    image = image + rng.normal(0, rng.uniform(0, 8), image.shape)
    return np.clip(image, 0, 255).transpose(2, 0, 1).astype(np.float32) / 255.0, boxes


def targets(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian centre heatmap [H, W], regression targets [4, H, W] and where they apply [H, W]."""
    mh, mw = INPUT_SIZE[0] // STRIDE, INPUT_SIZE[1] // STRIDE
    heat = np.zeros((mh, mw), np.float32)
    reg = np.zeros((4, mh, mw), np.float32)
    mask = np.zeros((mh, mw), np.float32)
    ys, xs = np.mgrid[0:mh, 0:mw].astype(np.float32)
    for x0, y0, x1, y1 in boxes / STRIDE:
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        if not (0 <= cx < mw and 0 <= cy < mh) or w <= 0 or h <= 0:
            continue
        ix, iy = int(cx), int(cy)
        sx, sy = max(w / 6, 0.5), max(h / 6, 0.5)
        blob = np.exp(-((xs - ix) ** 2 / (2 * sx * sx) + (ys - iy) ** 2 / (2 * sy * sy)))
        heat = np.maximum(heat, blob)
        reg[:, iy, ix] = cx - ix, cy - iy, np.log(w), np.log(h)
        mask[iy, ix] = 1.0
    return heat, reg, mask


def detector_loss(out: torch.Tensor, heat: torch.Tensor, reg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CenterNet's focal loss on the heatmap plus L1 on offsets and log sizes at the centres."""
    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    centre = heat >= 1.0
    pos = -(torch.log(p) * (1 - p) ** 2)[centre].sum()
    neg = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4)[~centre].sum()
    count = centre.sum().clamp(min=1)
    l1 = (torch.abs(out[:, 1:] - reg) * mask[:, None]).sum() / count
    return (pos + neg) / count + l1


def train_detector(samples: Sequence[Sample], steps: int, seed: int = 0, batch: int = 32, lr: float = 3e-3,
                   net: DetectorNet | None = None, log=print) -> tuple[DetectorNet, dict]:
    """Train `net` (default: a new one) on augmented `samples`; the net in eval mode and a summary for the header."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = (net or DetectorNet()).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = one_cycle(optimiser, lr, steps, 0.1)
    start, losses = time.perf_counter(), []
    for step in range(steps):
        picked = rng.integers(len(samples), size=batch)
        inputs, maps = [], []
        for i in picked:
            image, boxes = augment(samples[i], rng)
            inputs.append(image)
            maps.append(targets(boxes))
        loss = detector_loss(net(torch.from_numpy(np.stack(inputs))),
                             *(torch.from_numpy(np.stack(m)) for m in zip(*maps)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step}: loss {np.mean(losses[-100:]):.3f} ({time.perf_counter() - start:.0f} s)")
    summary = {"width": net.body[6].out_channels, "steps": steps, "batch": batch, "lr": lr, "seed": seed, "samples": len(samples),
               "final_loss": round(float(np.mean(losses[-100:])), 4),
               "seconds": round(time.perf_counter() - start, 1)}
    return net.eval(), summary
