"""A small CNN that reads one 32x32 RGB character crop, with its train and evaluate functions.

It knows nothing about where its images came from (real, rendered or generated):
it takes uint8 arrays and integer labels. Training follows a fixed `Schedule`
(a number of optimiser steps at a fixed batch size), so that two training sets
of different sizes get exactly the same amount of training.

Light augmentation runs on the batch in torch: a small random affine warp
(shift, scale, rotation, shear), contrast / brightness jitter and pixel noise.
The network standardises every image by its own mean and spread first, so it
does not lean on the absolute colours of a plate design.

Beside it, a whole-plate recogniser (`PlateSchedule`, `train_plate_recognizer`,
`read_plates`, `evaluate_plates`): what users train, measured by plate accuracy.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plategen.errors import PlategenError


@dataclass(frozen=True)
class Schedule:
    """The same for every training set of a benchmark: `steps` batches of `batch_size`."""

    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3  # peak of a one-cycle schedule (AdamW)
    weight_decay: float = 5e-4
    augment: bool = True
    eval_points: int = 0  # >0: evaluate this many times during training (accuracy-vs-steps curve)

    def to_dict(self) -> dict:
        return asdict(self)


class Recognizer(nn.Module):
    """conv16 -> pool -> conv32 x2 -> pool -> conv64 x2 -> pool -> fc128 -> classes (~0.2M weights).

    Sized for CPU: about 3,000 training images per second on 2 cores.
    """

    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        w = width

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(3, w), nn.MaxPool2d(2),
            block(w, 2 * w), block(2 * w, 2 * w), nn.MaxPool2d(2),
            block(2 * w, 4 * w), block(4 * w, 4 * w), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * w * 16, 128), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(128, num_classes))
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, 32, 32] float in [0, 1]."""
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(0.02)
        return self.head(self.features((x - mean) / std))


@dataclass
class ClassScore:
    count: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None


@dataclass
class Evaluation:
    accuracy: float
    count: int
    per_class: dict[str, ClassScore]
    confusions: list[tuple[str, str, int]]  # (true, predicted, count), most frequent first

    def to_dict(self, top: int = 10) -> dict:
        return {
            "accuracy": self.accuracy,
            "count": self.count,
            "per_class": {c: {"count": s.count, "accuracy": s.accuracy} for c, s in self.per_class.items()},
            "confusions": [{"true": t, "predicted": p, "count": n} for t, p, n in self.confusions[:top]],
        }


@dataclass
class Trained:
    model: Recognizer
    schedule: Schedule
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, accuracy on the curve set)


def to_tensor(images: np.ndarray) -> Tensor:
    """[N, H, W, 3] uint8 -> [N, 3, H, W] float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def augment_batch(x: Tensor, gen: torch.Generator) -> Tensor:
    """Light, label-preserving variation of a batch in [0, 1]."""
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return torch.rand(b, *shape, generator=gen) * (hi - lo) + lo

    angle = u(-8, 8) * (np.pi / 180)
    scale = u(0.9, 1.1)
    shear = u(-0.1, 0.1)
    tx, ty = u(-0.08, 0.08), u(-0.08, 0.08)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = u(0.7, 1.3, 1, 1, 1)
    bright = u(-0.1, 0.1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    x = x + torch.randn(x.shape, generator=gen) * u(0, 0.04, 1, 1, 1)
    return x.clamp_(0, 1)


def _check(images: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise PlategenError(f"recogniser: expected [N, H, W, 3] uint8 images, got {images.shape} {images.dtype}")
    if len(images) != len(labels):
        raise PlategenError(f"recogniser: {len(images)} images but {len(labels)} labels")
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise PlategenError(f"recogniser: labels must lie in 0..{num_classes - 1}")


def epoch_batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of `steps` batches walking through seeded permutations of the n samples (epochs),
    so every sample is used equally often whatever the set's size."""
    order = np.empty(0, np.int64)
    cursor = 0
    for _ in range(steps):
        if cursor + batch_size > len(order):
            order = np.concatenate([order[cursor:], rng.permutation(n)])
            while len(order) < batch_size:
                order = np.concatenate([order, rng.permutation(n)])
            cursor = 0
        yield order[cursor:cursor + batch_size]
        cursor += batch_size


def one_cycle(opt: torch.optim.Optimizer, lr: float, steps: int, warmup: float) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's one-cycle schedule, `warmup` the share of `steps` spent rising. torch takes a phase's length as
    warmup x steps - 1, so a warmup of exactly one step divided by zero (`--steps 20` at a 0.05 warmup); it is
    none instead."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                               pct_start=0.0 if abs(warmup * steps - 1) < 1e-9 else warmup)


def eval_steps(steps: int, points: int) -> set[int]:
    """The steps at which an accuracy-versus-steps curve is measured: `points` evenly spaced."""
    return {int(round(steps * (i + 1) / points)) for i in range(points)} if points > 0 else set()


def train_recognizer(images: np.ndarray, labels: np.ndarray, num_classes: int, schedule: Schedule = Schedule(),
                     seed: int = 0, curve_set: tuple[np.ndarray, np.ndarray] | None = None) -> Trained:
    """Train a fresh `Recognizer` for exactly `schedule.steps` batches drawn from (images, labels).

    Batches walk through seeded permutations of the whole set (epochs), so every
    sample is used equally often. With `curve_set` and `schedule.eval_points`,
    accuracy on it is recorded during training. Same seed, same weights on CPU.
    """
    labels = np.asarray(labels, np.int64)
    _check(images, labels, num_classes)
    if len(images) == 0:
        raise PlategenError("recogniser: no training images")
    if schedule.steps < 1 or schedule.batch_size < 1:
        raise PlategenError("recogniser: steps and batch size must be positive")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))  # weight init and dropout
        model = Recognizer(num_classes)
        x_all, y_all = to_tensor(images), torch.from_numpy(labels)
        opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
        sched = one_cycle(opt, schedule.lr, schedule.steps, 0.15)
        evals = eval_steps(schedule.steps, schedule.eval_points) if curve_set is not None else set()
        curve: list[tuple[int, float]] = []
        model.train()
        for step, batch in enumerate(epoch_batches(len(images), schedule.batch_size, schedule.steps, rng), 1):
            idx = torch.from_numpy(batch)
            x, y = x_all[idx], y_all[idx]
            if schedule.augment:
                x = augment_batch(x, gen)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step in evals:
                curve.append((step, evaluate(model, *curve_set).accuracy))  # type: ignore[misc]
                model.train()
    model.eval()
    return Trained(model, schedule, time.perf_counter() - start, curve)


@torch.no_grad()
def predict(model: Recognizer, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Predicted class index of every image."""
    was_training = model.training
    model.eval()
    out = [model(to_tensor(images[i:i + batch_size])).argmax(1).numpy() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return np.concatenate(out) if out else np.empty(0, np.int64)


def evaluate(model: Recognizer, images: np.ndarray, labels: np.ndarray,
             class_names: Sequence[str] | None = None) -> Evaluation:
    """Accuracy, per-class accuracy (classes present in `labels`) and the most frequent confusions."""
    labels = np.asarray(labels, np.int64)
    _check(images, labels)
    if len(labels) == 0:
        raise PlategenError("recogniser: nothing to evaluate")
    names = list(class_names) if class_names is not None else [str(i) for i in range(model.num_classes)]
    pred = predict(model, images)
    hit = pred == labels
    per_class = {}
    for c in sorted(set(labels.tolist())):
        mask = labels == c
        per_class[names[c]] = ClassScore(int(mask.sum()), int(hit[mask].sum()))
    wrong = Counter((names[t], names[p]) for t, p in zip(labels[~hit].tolist(), pred[~hit].tolist()))
    confusions = [(t, p, n) for (t, p), n in wrong.most_common()]
    return Evaluation(float(hit.mean()), int(len(labels)), per_class, confusions)


# --- Whole plates -----------------------------------------------------------------------------
# A plate reader of the kind users train: a small conv net over the whole plate, read either by
# CTC over a feature sequence (LPRNet / CRNN style) or by fixed slots with a pad class
# (fast-plate-ocr style). Class 0 is the CTC blank or the slot pad; class i + 1 is alphabet[i].
# The CTC sequence is the feature map pooled to one row of T columns, so one classifier reads every
# position: with 50 real plates that sharing is what the slot heads (one classifier per slot) lack.
# A two-row plate is read column by column, not top row first, so it is mostly misread (23 of
# 2,056 uc3m-lp plates have two rows; ccpd-crops and openalpr-us none). Reading 2 rows x T columns
# row after row never left the CTC plateau (0.0% of validation plates).


@dataclass(frozen=True)
class PlateSchedule:
    """How a plate recogniser is sized and trained; the same for every training set of a benchmark."""

    # with the per-column loss (`frame`), 1,400 steps read 65.4% ± 1.5 of validation plates from 1,000 SAAE
    # plates and 66.0% ± 2.0 from 50 real + 200 SAAE, 1,600 steps 69.1% ± 3.4 and 64.3% ± 2.0 for 1.17x the
    # CPU seconds (benchmarks/plate_steadiness.py, 3 seeds): 1,400 keeps the default plate benchmark in 25 min
    steps: int = 1400
    batch_size: int = 16  # half the cost of 32 for 3 points less plate accuracy (uc3m-lp, all real plates)
    lr: float = 6e-3  # peak of a one-cycle schedule (AdamW)
    # the share of the steps the lr rises: CTC leaves its plateau once the lr is high, and at 0.15 it did
    # so late or never on some seeds (250 uc3m-lp plates: 20.5-71.5% of validation plates, at 0.05 71-76%)
    warmup: float = 0.05
    weight_decay: float = 1e-4
    input_size: tuple[int, int] = (32, 128)  # height, width every plate is resized to
    # CTC over 16 columns read 81.2% of validation plates, fixed slots 54.4% (uc3m-lp, all real plates,
    # 1 seed); 32 columns stayed on the CTC plateau for most of the 1,600 steps (0.0%)
    head: str = "ctc"  # CTC over one row of columns, or "slots": fixed slots with a pad class
    columns: int = 16  # CTC: time steps along the plate, more than the longest text
    slots: int = 10  # slots: the longest text the head can read
    # CTC: the weight of a per-column cross-entropy where a training plate has character boxes (the
    # column under each box centre: that character; columns away from every centre: blank). It aligns CTC
    # from the first steps, so no recogniser waits on the CTC plateau: on the plate benchmark's own training
    # sets (benchmarks/plate_steadiness.py, uc3m-lp, 3 seeds, 300 validation plates, 1,600 steps) 1,000 SAAE
    # plates read 69.1% ± 3.4 of validation plates with it, 34.8% ± 23.8 (3.0% on one seed) with the
    # auxiliary slot loss it replaced; 50 real + 200 SAAE plates 64.3% ± 2.0 against 31.1% ± 16.0
    frame: float = 1.0
    width: int = 16
    augment: bool = True
    eval_points: int = 0  # >0: evaluate this many times during training (plate-accuracy-vs-steps curve)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def longest(self) -> int:
        """The longest text the recogniser can learn: the slot count, or the CTC columns."""
        return self.slots if self.head == "slots" else self.columns


class PlateRecognizer(nn.Module):
    """conv w /2 -> 2w -> 3w /2 -> 4w -> 4w /2 rows -> 6w (H/8 x W/4) -> one row of columns -> context conv ->
    classes (CTC), or 2 rows x 16 -> slots.

    Six 3x3 convolutions, so that a feature column sees about 35 px of the 32x128 plate (a whole
    character and its neighbours); the earlier four-layer net saw 15 px and read 39.0% of
    validation plates against 54.4% for this one (both with slot heads; uc3m-lp, all real plates,
    `benchmarks/plate_recognizer.py --validation`). Strided convolutions rather than max pooling: on
    a CPU, PyTorch's pooling of these small maps costs more than the convolutions. About 29M
    multiply-adds per plate (the earlier net 12M), so that a benchmark can afford dozens of
    trainings on a CPU. Weights and activations are channels-last: a training step of 16 plates
    (with the slot head then trained beside CTC) took 47.0 ms on one thread against 57.9 ms
    (`benchmarks/plate_recognizer_speed.py`).
    """

    def __init__(self, num_classes: int, schedule: PlateSchedule):
        super().__init__()
        w = schedule.width

        def block(cin: int, cout: int, kernel: tuple[int, int] = (3, 3), stride: int | tuple[int, int] = 1
                  ) -> nn.Sequential:
            pad = (kernel[0] // 2, kernel[1] // 2)
            return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(3, w, stride=2), block(w, 2 * w), block(2 * w, 3 * w, stride=2),
                                      block(3 * w, 4 * w), block(4 * w, 4 * w, stride=(2, 1)),
                                      block(4 * w, 6 * w))  # H/8 x W/4
        self.head_kind = schedule.head
        self.num_classes = num_classes
        self.slots = schedule.slots

        if schedule.head == "ctc":
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d((1, schedule.columns)), block(6 * w, 8 * w, (1, 3)),
                                      nn.Dropout(0.2), nn.Conv2d(8 * w, num_classes, 1))
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d((2, 16)), nn.Flatten(), nn.Dropout(0.3),
                                      nn.Linear(6 * w * 32, schedule.slots * num_classes))
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, H, W] float in [0, 1] -> logits [B, L, classes], L = columns (CTC) or slots."""
        x = x.contiguous(memory_format=torch.channels_last)
        var, mean = torch.var_mean(x, dim=(1, 2, 3), keepdim=True)
        out = self.head(self.features((x - mean) / var.sqrt().clamp_min(0.02)))
        if self.head_kind == "ctc":
            return out.flatten(2).transpose(1, 2)  # [B, T, C]
        return out.view(len(out), self.slots, self.num_classes)


@dataclass
class LengthScore:
    count: int
    plate_accuracy: float
    char_accuracy: float


@dataclass
class PlateEvaluation:
    plate_accuracy: float  # every character right
    char_accuracy: float  # 1 - CER (edit distance over true characters)
    count: int
    per_length: dict[int, LengthScore]  # by true text length
    confusions: list[tuple[str, str, int]]  # (true, read, count) from the edit alignment; "" = missing / extra

    def to_dict(self, top: int = 10) -> dict:
        return {
            "plate_accuracy": self.plate_accuracy,
            "char_accuracy": self.char_accuracy,
            "count": self.count,
            "per_length": {n: asdict(s) for n, s in self.per_length.items()},
            "confusions": [{"true": t, "read": p, "count": n} for t, p, n in self.confusions[:top]],
        }


@dataclass
class TrainedPlates:
    model: PlateRecognizer
    alphabet: str
    schedule: PlateSchedule
    seconds: float
    losses: list[float]  # training loss of every step
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, plate accuracy on the curve set)


def align(truth: str, read: str) -> list[tuple[str, str]]:
    """A minimal edit alignment as (true, read) pairs; "" marks a missing or an extra character."""
    n, m = len(truth), len(read)
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (truth[i - 1] != read[j - 1]))
    pairs: list[tuple[str, str]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            pairs.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((truth[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", read[j - 1]))
            j -= 1
    return pairs[::-1]


def edit_distance(truth: str, read: str) -> int:
    return sum(t != r for t, r in align(truth, read))


def decode(indices: Sequence[int], alphabet: str, ctc: bool) -> str:
    """CTC: merge repeats, then drop blanks (0). Slots: drop pads (0)."""
    out, previous = [], 0
    for k in indices:
        if k and not (ctc and k == previous):
            out.append(alphabet[k - 1])
        previous = k
    return "".join(out)


def plate_tensor(images: np.ndarray, size: tuple[int, int]) -> Tensor:
    """[N, H, W, 3] uint8 of any H, W -> [N, 3, *size] float in [0, 1]."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise PlategenError(f"plate recogniser: expected [N, H, W, 3] uint8 images, got {images.shape} {images.dtype}")
    height, width = size
    if images.shape[1:3] != (height, width):
        images = np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in images]) \
            if len(images) else np.empty((0, height, width, 3), np.uint8)
    return to_tensor(images)


def encode_texts(texts: Sequence[str], alphabet: str, longest: int) -> list[list[int]]:
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    encoded = []
    for text in texts:
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise PlategenError(f"plate recogniser: text {text!r} has characters outside the alphabet: "
                                f"{''.join(unknown)}")
        if not text or len(text) > longest:
            raise PlategenError(f"plate recogniser: text {text!r} must have 1..{longest} characters")
        encoded.append([index[c] for c in text])
    return encoded


def augment_plates(x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Label-preserving variation of a plate batch in [0, 1]: affine, colour, blur, noise. Returns the
    batch and its warp [B, 2, 3]: where each output point (normalised coordinates) was sampled from,
    input = warp[:, :, :2] @ output + warp[:, :, 2], so character boxes can follow their characters.

    Written for speed, as it runs on every training batch: the sampling grid is built by
    broadcasting, the blur from shifted slices, the noise is grey grain drawn at half
    resolution (drawing normal numbers is the costliest part of a batch's augmentation).
    """
    b, _, height, width = x.shape

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return torch.rand(b, *shape, generator=gen) * (hi - lo) + lo

    aspect = width / height
    angle = u(-4, 4, 1, 1) * (np.pi / 180)
    scale = u(0.92, 1.08, 1, 1)
    shear = u(-0.15, 0.15, 1, 1)
    tx, ty = u(-0.04, 0.04, 1, 1), u(-0.08, 0.08, 1, 1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width).view(1, 1, width)  # pixel centres, align_corners=False
    ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height).view(1, height, 1)
    # rotation in pixel units: normalised x spans `aspect` times more pixels than normalised y
    grid = torch.stack([cos * xs + (shear - sin) / aspect * ys + tx, sin * aspect * xs + cos * ys + ty], 3)
    warp = torch.cat([torch.cat([cos, (shear - sin) / aspect, tx], 2), torch.cat([sin * aspect, cos, ty], 2)], 1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = padded[..., :, :-2] + padded[..., :, 1:-1] + padded[..., :, 2:]
    blurred = (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9
    x = torch.lerp(x, blurred, u(0, 1, 1, 1, 1) * (u(0, 1, 1, 1, 1) < 0.5))
    x = x * u(0.8, 1.2, 3, 1, 1)  # colour cast
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.6, 1.3, 1, 1, 1) + mean + u(-0.1, 0.1, 1, 1, 1)
    grain = torch.randn(b, 1, (height + 1) // 2, (width + 1) // 2, generator=gen)
    x = x + F.interpolate(grain, scale_factor=2.0)[..., :height, :width] * u(0, 0.05, 1, 1, 1)
    return x.clamp_(0, 1), warp


def box_centres(boxes: Sequence[tuple[int, int, int, int]], width: int, height: int) -> np.ndarray:
    """[k, 2] float32: each box's centre as (x / width, y / height), the form `train_plate_recognizer` takes."""
    return np.array([((x0 + x1) / 2 / width, (y0 + y1) / 2 / height) for x0, y0, x1, y1 in boxes],
                    np.float32).reshape(-1, 2)


@dataclass
class FrameTargets:
    """Every training plate's character centres in normalised coordinates [N, L, 2] and classes [N, L]
    (0 where the plate has fewer characters, or no boxes)."""

    centres: Tensor
    classes: Tensor

    @classmethod
    def of(cls, centres: Sequence[np.ndarray], targets: Sequence[list[int]], longest: int) -> "FrameTargets":
        xy, classes = torch.zeros(len(targets), longest, 2), torch.zeros(len(targets), longest, dtype=torch.long)
        for i, (c, t) in enumerate(zip(centres, targets)):
            if len(c):
                xy[i, :len(t)] = torch.from_numpy(np.asarray(c, np.float32)) * 2 - 1
                classes[i, :len(t)] = torch.tensor(t)
        return cls(xy, classes)

    def labels(self, idx: Tensor, warp: Tensor | None, columns: int) -> Tensor:
        """[B, columns] per-column classes for the batch `idx` (moved by the augmentation's `warp`): the
        character at the column of its box centre, blank (0) at columns not next to any centre, -100
        (ignored) next to a centre. A plate without boxes, or whose centres do not fall on columns rising
        in reading order with a blank between repeated characters (a two-row plate), is ignored whole."""
        xy, classes = self.centres[idx], self.classes[idx]
        if warp is not None:  # output = inverse(A) @ (input - t)
            xy = torch.linalg.solve(warp[:, None, :, :2], (xy - warp[:, None, :, 2]).unsqueeze(-1)).squeeze(-1)
        col = ((xy[..., 0] + 1) / 2 * columns).floor().long()
        known = classes > 0
        step = col[:, 1:] - col[:, :-1]
        both = known[:, 1:] & known[:, :-1]
        bad = (both & ((step < 1) | ((step < 2) & (classes[:, 1:] == classes[:, :-1])))).any(1)
        bad |= (known & ((col < 0) | (col >= columns))).any(1) | ~known.any(1)
        use = known & ~bad[:, None]
        col = col.clamp(0, columns - 1)
        near = torch.zeros(len(idx), columns + 2)
        for offset in range(3):  # near[:, c + 1] counts the centres at columns c - 1, c and c + 1
            near.scatter_add_(1, col + offset, use.float())
        labels = torch.full((len(idx), columns), -100, dtype=torch.long)
        labels[(near[:, 1:-1] == 0) & ~bad[:, None]] = 0
        for k in range(classes.shape[1]):
            rows = use[:, k].nonzero().squeeze(1)
            labels[rows, col[rows, k]] = classes[rows, k]
        return labels


def _plate_loss(logits: Tensor, targets: list[list[int]], kind: str) -> Tensor:
    """CTC over the columns, or cross-entropy per slot against the text padded with class 0."""
    if kind == "ctc":
        log_probs = logits.log_softmax(2).transpose(0, 1)  # [L, B, C]
        flat = torch.tensor([k for t in targets for k in t], dtype=torch.long)
        lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        inputs = torch.full((len(targets),), log_probs.shape[0], dtype=torch.long)
        return F.ctc_loss(log_probs, flat, inputs, lengths, blank=0, zero_infinity=True)
    padded = torch.zeros(logits.shape[:2], dtype=torch.long)
    for row, t in zip(padded, targets):
        row[:len(t)] = torch.tensor(t)
    return F.cross_entropy(logits.flatten(0, 1), padded.flatten(), label_smoothing=0.05)


def plate_batch_loss(model: PlateRecognizer, x: Tensor, targets: list[list[int]], schedule: PlateSchedule,
                     frames: Tensor | None = None) -> Tensor:
    """One training batch's loss: the read-out's, plus the weighted per-column loss where `frames`
    (`FrameTargets.labels`) labels a column."""
    logits = model(x)
    loss = _plate_loss(logits, targets, schedule.head)
    if frames is not None and (frames >= 0).any():
        loss = loss + schedule.frame * F.cross_entropy(logits.flatten(0, 1), frames.flatten(), ignore_index=-100)
    return loss


def train_plate_recognizer(images: np.ndarray, texts: Sequence[str], alphabet: str,
                           schedule: PlateSchedule = PlateSchedule(), seed: int = 0,
                           curve_set: tuple[np.ndarray, Sequence[str]] | None = None,
                           centres: Sequence[np.ndarray] | None = None) -> TrainedPlates:
    """Train a fresh `PlateRecognizer` for exactly `schedule.steps` batches of (images, texts).

    `centres`: per plate, its characters' box centres (`box_centres`, one per character of its text,
    or none where it has no boxes); with a CTC head they add the per-column loss (`PlateSchedule.frame`).

    Batches walk through seeded permutations of the whole set. Same seed, same weights on CPU.
    """
    if schedule.head not in ("ctc", "slots"):
        raise PlategenError(f"plate recogniser: head {schedule.head!r} must be 'ctc' or 'slots'")
    if schedule.steps < 1 or schedule.batch_size < 1:
        raise PlategenError("plate recogniser: steps and batch size must be positive")
    if len(images) != len(texts):
        raise PlategenError(f"plate recogniser: {len(images)} images but {len(texts)} texts")
    if len(images) == 0:
        raise PlategenError("plate recogniser: no training images")
    targets = encode_texts(texts, alphabet, schedule.longest)
    frame_targets = None
    if centres is not None and schedule.head == "ctc" and schedule.frame > 0:
        if len(centres) != len(texts) or any(len(c) not in (0, len(t)) for c, t in zip(centres, texts)):
            raise PlategenError("plate recogniser: every plate needs one box centre per character of its text, "
                                "or none")
        frame_targets = FrameTargets.of(centres, targets, schedule.longest)
    x_all = plate_tensor(images, schedule.input_size)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))  # weight init and dropout
        model = PlateRecognizer(len(alphabet) + 1, schedule)
        opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay,
                                fused=True)  # one kernel: the step of the 1.2M weights was a fifth of a batch's CPU
        sched = one_cycle(opt, schedule.lr, schedule.steps, schedule.warmup)
        evals = eval_steps(schedule.steps, schedule.eval_points) if curve_set is not None else set()
        trained = TrainedPlates(model, alphabet, schedule, 0.0, [])
        model.train()
        for step, idx in enumerate(epoch_batches(len(images), schedule.batch_size, schedule.steps, rng), 1):
            batch = torch.from_numpy(idx)
            x, warp = augment_plates(x_all[batch], gen) if schedule.augment else (x_all[batch], None)
            frames = frame_targets.labels(batch, warp, schedule.columns) if frame_targets is not None else None
            loss = plate_batch_loss(model, x, [targets[i] for i in idx], schedule, frames)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            trained.losses.append(loss.item())
            if step in evals:
                trained.curve.append((step, evaluate_plates(trained, *curve_set).plate_accuracy))  # type: ignore[misc]
                model.train()
    model.eval()
    trained.seconds = time.perf_counter() - start
    return trained


@torch.no_grad()
def read_plates(trained: TrainedPlates, images: np.ndarray, batch_size: int = 256) -> list[str]:
    """The text the recogniser reads on every image (greedy decoding)."""
    model, schedule = trained.model, trained.schedule
    was_training = model.training
    model.eval()
    texts = []
    for i in range(0, len(images), batch_size):
        best = model(plate_tensor(images[i:i + batch_size], schedule.input_size)).argmax(2)
        texts += [decode(row, trained.alphabet, schedule.head == "ctc") for row in best.tolist()]
    model.train(was_training)
    return texts


def evaluate_plates(trained: TrainedPlates, images: np.ndarray, texts: Sequence[str]) -> PlateEvaluation:
    """Plate accuracy (exact match), character accuracy (1 - CER), per text length, top confusions."""
    if len(images) != len(texts):
        raise PlategenError(f"plate recogniser: {len(images)} images but {len(texts)} texts")
    if len(texts) == 0:
        raise PlategenError("plate recogniser: nothing to evaluate")
    read = read_plates(trained, images)
    errors = [edit_distance(t, r) for t, r in zip(texts, read)]
    per_length = {}
    for n in sorted({len(t) for t in texts}):
        ids = [i for i, t in enumerate(texts) if len(t) == n]
        per_length[n] = LengthScore(len(ids), sum(errors[i] == 0 for i in ids) / len(ids),
                                    1 - sum(errors[i] for i in ids) / (n * len(ids)))
    wrong = Counter(pair for t, r in zip(texts, read) for pair in align(t, r) if pair[0] != pair[1])
    return PlateEvaluation(
        sum(e == 0 for e in errors) / len(texts), 1 - sum(errors) / sum(len(t) for t in texts), len(texts),
        per_length, [(t, r, n) for (t, r), n in wrong.most_common()],
    )
