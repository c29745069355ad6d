"""A small CNN that reads one 32x32 RGB character crop, with its train and evaluate functions.

It knows nothing about where its images came from (real, rendered or generated):
it takes uint8 arrays and integer labels. Training follows a fixed `Schedule`
(a number of optimiser steps at a fixed batch size), so that two training sets
of different sizes get exactly the same amount of training.

Light augmentation runs on the batch in torch: a small random affine warp
(shift, scale, rotation, shear), contrast / brightness jitter and pixel noise.
The network standardises every image by its own mean and spread first, so it
does not lean on the absolute colours of a plate design.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

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


def train_recognizer(images: np.ndarray, labels: np.ndarray, num_classes: int, schedule: Schedule = Schedule(),
                     seed: int = 0, curve_set: tuple[np.ndarray, np.ndarray] | None = None,
                     progress: Callable[[int], None] | None = None) -> Trained:
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
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=schedule.lr, total_steps=schedule.steps,
                                                    pct_start=0.15)
        evals = set()
        if curve_set is not None and schedule.eval_points > 0:
            evals = {int(round(schedule.steps * (i + 1) / schedule.eval_points)) for i in range(schedule.eval_points)}
        curve: list[tuple[int, float]] = []
        order = np.empty(0, np.int64)
        cursor = 0
        model.train()
        for step in range(1, schedule.steps + 1):
            if cursor + schedule.batch_size > len(order):
                order = np.concatenate([order[cursor:], rng.permutation(len(images))])
                while len(order) < schedule.batch_size:
                    order = np.concatenate([order, rng.permutation(len(images))])
                cursor = 0
            idx = torch.from_numpy(order[cursor:cursor + schedule.batch_size])
            cursor += schedule.batch_size
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
            if progress is not None:
                progress(step)
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
