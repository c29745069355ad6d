"""Train the SAAE: import plates, cut character samples, run the three-step loop, write checkpoints.

Reads top to bottom: options and presets, data (samples + a glyph bank), the three steps,
validation and sample grids, the loop (`fit_saae`, also the benchmark's), then `train_saae`,
which ties them together.

One sample is (glyph of y from a shipped font, the real plate y was cut from as style, that
real crop as target). A class with fewer real crops than `rendered_share` x the median class
is topped up with rendered pairs (`top_up_with_rendered`): y rendered from a font in a real
plate's colours as target, that plate as style, so every character of the charset has a class
in D. Every iteration runs three steps, each with its own loss in the log:
  (1) reconstruction: G on rec_weight * L1(G(glyph, plate), crop)
  (2) discriminator:  D on CE(D(crop), y) + CE(D(G(glyph, plate)), k)      (k = "generated")
  (3) adversarial:    G on adv_weight * CE(D(G(glyph, plate)), y) + rec_weight * L1 (+ fm_weight * feature matching)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from plategen import __version__, distributed
from plategen.atomic import (OutputLock, atomic_save_png, is_own_sheet, lock_beside, require_no_file_in_the_way,
                             require_writable_folder, temp_leftovers)
from plategen.charset import parse_charset
from plategen.checkpoint import (OPTIMIZER_SUFFIX, LoadedCheckpoint, load_checkpoint, load_optimizers, optimizer_path,
                                 optimizer_owner, require_finite, save_checkpoint, save_optimizers)
from plategen.dataset import CharSamples, build_samples, charset_of, holdout_split
from plategen.device import resolve_device, usable_cores
from plategen.distributed import SOLO, World
from plategen.errors import PlategenError, RankStopped, require_utf8_name
from plategen.glyphs import (ASPECTS, GlyphJitter, check_coverage, fonts_for, narrowest, render_glyph, sample_jitter,
                             shipped_fonts)
from plategen.model import Discriminator, Generator, SAAEConfig
from plategen.plates import Plate, load_many
from plategen.render import render_characters
from plategen.sizes import MAX_BATCH_SIZE
from plategen.synth.recolour import plate_colours


@dataclass
class TrainOptions:
    steps: int | None = 3000  # total iterations (a resumed run continues to this total)
    more_steps: int | None = None  # instead of steps: iterations to add to the resumed model (fine-tuning)
    epochs: float | None = None  # alternative to steps: passes over the training crops
    batch_size: int = 64
    lr: float = 2e-4  # Adam, both networks
    warmup: int = 0  # iterations over which lr ramps up from 0 at the start of a run: Adam restarted on a
    # trained model (the optimizer state is not shipped) otherwise takes full steps on raw moment estimates
    betas: tuple[float, float] = (0.5, 0.999)  # the usual GAN Adam betas
    rec_weight: float = 10.0  # L1 weight in steps 1 and 3; L1 is ~0.1, CE ~1, so 10 makes them comparable
    adv_weight: float = 1.0  # class-conditional adversarial CE in step 3
    freeze_discriminator: bool = False  # keep D (eval mode, no updates): a critic refitted to a few plates
    # memorises their crops within a few hundred steps and G, chasing it, loses the style (fine-tuning)
    fm_weight: float = 0.0  # feature matching on D's hidden layer in step 3 (beyond the paper; 0 = paper)
    class_balance: float = 0.5  # sample crops with weight count(y)^-balance: 0 = as in the data, 1 = uniform over classes
    glyph_variants: int = 1  # glyphs per (character, font): 1 = the clean glyph, so G learns to follow its geometry
    # a new model's content glyphs narrowed to each crop's box (`SAAEConfig.glyph_aspect`); off by default: the one run
    # (checkpoints/README.md) drew US plates' M and W better, Chinese plates' characters and single characters worse
    narrow_glyphs: bool = False
    chars: str | None = None  # --chars spec of the classes to train; None: the resumed model's, else the plates'
    rendered_share: float = 0.0  # >0: classes with fewer real crops than this x the median class are topped up to it
    # (off by default: the one measured run with 0.5, a fine-tune of the shipped model, was not better; checkpoints/README.md)
    val_crops: int = 1024  # held-out crops scored for validation L1
    val_every: int = 250
    sample_every: int = 500  # sample grid and checkpoint interval
    samples_dir: Path | None = None
    device: str = "auto"
    seed: int = 0
    num_threads: int = 1  # CPU threads; on a shared 2-core machine 2 threads ran 2.5x slower per step than 1
    model: dict = field(default_factory=dict)  # SAAEConfig fields to override (widths, style_pool, ...)


FINETUNE_STEPS = 800
MAX_RENDERED_SHARE = 4.0  # every class topped up to 4x the median class already quadruples a balanced set

PRESETS: dict[str, dict] = {
    # 2 CPU cores: ~25 min on all of ../shared/data (see checkpoints/README.md).
    "cpu": dict(batch_size=64, steps=3000),
    # a GPU: larger batches, more steps; lr scaled for the larger batch.
    "gpu": dict(batch_size=512, steps=6000, lr=5e-4, val_every=500, sample_every=1000, val_crops=4096),
    # a trained model (--resume) to a user's few plates: <= 10 min on 2 cores (benchmarks/adaptation.py).
    # Reconstruction only, D fixed: against a fixed D the adversarial term found D's blind spots (adv CE 0.06,
    # garish colours); without it the generated crops alone trained a recogniser 8 points better (README).
    "finetune": dict(batch_size=32, steps=None, more_steps=FINETUNE_STEPS, lr=5e-5, warmup=100,
                     freeze_discriminator=True, adv_weight=0.0, val_every=100, sample_every=200, val_crops=512),
}


@dataclass
class TrainResult:
    checkpoint: Path
    optimizer_state: Path | None  # None: no sidecar of these weights (a resume with nothing to run found none)
    samples: list[Path]
    steps: int  # the model's, the resumed checkpoint's included
    seconds: float
    losses: dict[str, float]  # the last logged value of each loss
    val_l1: float
    plates: int
    crops: int  # real character crops
    rendered: int = 0  # rendered pairs topping up scarce classes
    ranks: int = 1  # torchrun processes that trained it
    bad_records: list[str] = field(default_factory=list)  # records of --data left out (malformed, unreadable)
    resumed_at: int = 0  # the step this run started from
    adam_restarted: bool = False  # a run continued without its optimizer state: not an unbroken run's weights
    changed_options: list[str] = field(default_factory=list)  # an unfinished run resumed with other such options
    earlier_departures: list[str] = field(default_factory=list)  # what earlier resumes of the run changed (meta)
    outside_charset: dict[str, int] = field(default_factory=dict)  # crops per character left out: not in the classes
    untrained: list[str] = field(default_factory=list)  # new classes with no crop and no rendered pair
    repeated: list[str] = field(default_factory=list)  # images of --data left out: the bytes of an earlier one


def options_for(preset: str, **overrides) -> TrainOptions:
    """A preset's options with the given ones (None: the preset's) over them; a run length given outright,
    --steps or --epochs, replaces the preset's."""
    if preset not in PRESETS:
        raise PlategenError(f"--preset {preset!r}: unknown; choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if "steps" in given and "epochs" in given:
        raise PlategenError("--steps and --epochs: give one, not both")
    if "steps" in given or "epochs" in given:
        given["more_steps"] = None
    if "epochs" in given:
        given["steps"] = None
    return replace(TrainOptions(), **{**PRESETS[preset], **given})


# ---------------------------------------------------------------- data


def load_split(data_dirs: Sequence[Path | str], allow_outside: bool = False
               ) -> tuple[list[Plate], list[Plate], dict, list[str], list[str]]:
    """Train-side and held-out plates of every folder (the fixed `is_holdout` split, `holdout_split`), a summary, and the
    bad records and repeated images left out (so the run can say so; `once_each`).
    CSV image paths outside their folder are followed only with `allow_outside` (see `load_plates`)."""
    if not data_dirs:
        raise PlategenError("no --data folder given")
    for folder in data_dirs:
        require_utf8_name(folder, "train writes its --data folders into the checkpoint's header")
    result = load_many([Path(d) for d in data_dirs], allow_outside=allow_outside)
    plates, repeats = once_each(result.plates)
    train, held = holdout_split(plates)
    if not train or not held:
        raise PlategenError(f"{', '.join(map(str, data_dirs))}: {len(plates)} image(s) of one physical plate "
                            "(the same text in one folder) cannot be split into training and validation plates; "
                            "give at least two plates")
    per_folder = {os.path.abspath(d): sum(1 for p in plates if Path(p.source) == Path(d)) for d in data_dirs}
    # absolute: a checkpoint of `--data .` names its folder too (the benchmark's copy warning reads the names)
    summary = {"folders": [os.path.abspath(d) for d in data_dirs], "plates_per_folder": per_folder,
               "train_plates": len(train), "holdout_plates": len(held),
               "problems": len(result.problems), "skipped": len(result.skipped), "repeated_images": len(repeats)}
    return train, held, summary, [str(problem) for problem in result.problems], repeats


def once_each(plates: Sequence[Plate]) -> tuple[list[Plate], list[str]]:
    """The plates with each image's bytes once (the first), and a line for each left out. A copy of a folder given as
    a second --data trained every image twice, and its keys (the folder's name) split the copies apart: held-out
    validation plates were byte for byte training plates."""
    first: dict[str, Plate] = {}
    kept, repeats = [], []
    for plate in plates:
        earlier = first.get(plate.sha256)
        if earlier is None:
            first[plate.sha256] = plate
            kept.append(plate)
            continue
        labelled = "" if plate.text == earlier.text else f", labelled {earlier.text!r} there and {plate.text!r} here"
        repeats.append(f"{plate.image_path}: the same bytes as {earlier.image_path}{labelled}; kept once, as there")
    return kept, repeats


def top_up_with_rendered(samples: CharSamples, share: float, rng: np.random.Generator
                         ) -> tuple[CharSamples, np.ndarray]:
    """`samples` plus rendered pairs for every class with fewer real crops than `share` x the median
    class (of those with any), up to that floor, and the rendered count per class. A class without
    real crops would have no reconstruction target and no class in D, so the label check could not
    read it; the floor follows the data, so common classes learn from real crops only. A pair's style is a random training plate
    whose text shares the character's script (a province gets a Chinese plate); its target is the
    character rendered by `render.render_characters` (shipped font, neighbour fragments, lighting,
    degradations) in that plate's paper and ink colours (`recolour.plate_colours`)."""
    counts = np.bincount(samples.labels, minlength=len(samples.charset))
    floor = round(share * float(np.median(counts[counts > 0]))) if counts.any() else 0
    wanted = np.maximum(floor - counts, 0)
    if not wanted.any():
        return samples, wanted
    by_script = {script: [i for i, p in enumerate(samples.plates) if any(c.isascii() == script for c in p.text)]
                 for script in (True, False)}
    labels: list[int] = []
    owners: list[int] = []
    for label in np.flatnonzero(wanted):
        pool = by_script[samples.charset[label].isascii()] or list(range(len(samples.plates)))
        owners += rng.choice(pool, size=int(wanted[label])).tolist()
        labels += [int(label)] * int(wanted[label])
    colours = {p: plate_colours(samples.styles[p]) for p in set(owners)}
    crops = render_characters([samples.charset[y] for y in labels], rng, neighbours=samples.charset,
                              colours=[colours[p] for p in owners])
    topped = CharSamples(np.concatenate([samples.crops, crops]),
                         np.concatenate([samples.labels, np.asarray(labels, np.int64)]),
                         np.concatenate([samples.plate_index, np.asarray(owners, np.int64)]),
                         samples.styles, samples.charset, samples.plates,
                         np.concatenate([samples.aspects, np.full(len(labels), np.nan)]))  # drawn as the font draws them
    return topped, wanted


def require_drawable_texts(plates: Sequence[Plate], charset: Sequence[str]) -> None:
    """Every character of `charset` on the plates has a content glyph in a shipped font; else one line naming the
    first plate that holds one (the error used to name the characters only, which the user never asked for).
    Characters outside `charset` are never cut out (`--chars` leaves them out)."""
    fonts = shipped_fonts()
    wanted = set(charset)
    covered: dict[str, bool] = {}
    bad = [(p, c) for p in plates for c in p.text
           if c in wanted and not covered.setdefault(c, bool(fonts_for(c, fonts)))]
    if bad:
        plate, ch = bad[0]
        raise PlategenError(f"{plate.image_path}: its text {plate.text!r} holds {ch!r} (U+{ord(ch):04X}), which no "
                            f"shipped font draws, so it has no content glyph ({len({id(p) for p, _ in bad})} plate(s) "
                            "hold such characters); correct the labels, or leave those plates out")


class GlyphBank:
    """Pre-rendered content glyphs per class: every covering font x `variants` (the first clean); with `narrow`
    (`SAAEConfig.glyph_aspect`), each of them at every width of `glyphs.ASPECTS` and as drawn, one picked per crop's
    box (as drawn for a crop without one: a rendered pair, drawn as the font draws it)."""

    def __init__(self, charset: Sequence[str], variants: int, rng: np.random.Generator, size: int, narrow: bool = False):
        fonts = shipped_fonts()
        check_coverage(charset, fonts)
        self.fonts = [f.name for f in fonts]
        self.widths = len(ASPECTS) + 1 if narrow else 1
        widths = [*range(len(ASPECTS)), None] if narrow else [None]
        images, self.start, self.count = [], [], []
        for ch in charset:
            self.start.append(len(images))
            for font in fonts_for(ch, fonts):
                jitters = [GlyphJitter()] + [sample_jitter(rng) for _ in range(variants - 1)]
                images += [render_glyph(ch, font, size, jitter, width) for jitter in jitters for width in widths]
            self.count.append((len(images) - self.start[-1]) // self.widths)
        self.images = torch.from_numpy(np.stack(images)).unsqueeze(1)  # [M,1,S,S] uint8
        self.start_t, self.count_t = torch.tensor(self.start), torch.tensor(self.count)

    def _at(self, labels: torch.Tensor, variant: torch.Tensor, aspects: np.ndarray) -> torch.Tensor:
        width = torch.from_numpy(np.where(np.isnan(aspects), len(ASPECTS), narrowest(aspects))) if self.widths > 1 else 0
        return self.images[self.start_t[labels] + variant * self.widths + width]

    def sample(self, labels: torch.Tensor, gen: torch.Generator, aspects: np.ndarray) -> torch.Tensor:
        """A random variant of each label's glyph, narrowed to its crop's box `aspects` (width / height)."""
        return self._at(labels, (torch.rand(len(labels), generator=gen) * self.count_t[labels]).long(), aspects)

    def first(self, labels: torch.Tensor, aspects: np.ndarray) -> torch.Tensor:
        return self._at(labels, torch.zeros(len(labels), dtype=torch.long), aspects)


def glyph_fit(samples: CharSamples, opts: TrainOptions) -> dict:
    """The `SAAEConfig` field of a new model trained on these crops: with `opts.narrow_glyphs`, their median box width /
    height (its glyphs are narrowed, `GlyphBank`); else none (glyphs as drawn)."""
    return {"glyph_aspect": round(float(np.nanmedian(samples.aspects)), 3)} if opts.narrow_glyphs else {}


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC (or N1HW) -> float NCHW in [0,1] on the device."""
    images = images.to(device)
    if images.dim() == 4 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    return images.float().div_(255)


# ---------------------------------------------------------------- the three steps


def train_step(G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               glyph: torch.Tensor, style: torch.Tensor, real: torch.Tensor, y: torch.Tensor,
               opts: TrainOptions, ddp: tuple[nn.Module, nn.Module] | None = None) -> dict[str, float]:
    """The three steps on one batch. `ddp`: G and `Both(D)` in DistributedDataParallel
    (`distribute`), whose forwards make each backward average the gradients over the ranks."""
    k = G.config.num_classes
    g, both = ddp if ddp is not None else (G, Both(D))
    # (1) reconstruction: G learns to draw the glyph as the real crop on that plate
    fake = g(glyph, style)
    loss_rec = F.l1_loss(fake, real)
    opt_g.zero_grad(set_to_none=True)
    (opts.rec_weight * loss_rec).backward()
    opt_g.step()

    # (2) discriminator: real crops -> their class, generated crops -> class k (only logged when D is frozen)
    fake = fake.detach()
    if opts.freeze_discriminator:
        with torch.no_grad():
            loss_d = F.cross_entropy(D(real), y) + F.cross_entropy(D(fake), torch.full_like(y, k))
    else:
        on_real, on_fake = both(real, fake)
        loss_d = F.cross_entropy(on_real, y) + F.cross_entropy(on_fake, torch.full_like(y, k))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

    # (3) adversarial: G makes D read the generated crop as class y, keeping the reconstruction
    fake = g(glyph, style)
    loss_l1 = F.l1_loss(fake, real)
    loss_fm = torch.zeros(())
    if opts.adv_weight == 0 and opts.fm_weight == 0:  # reconstruction only (--preset finetune): D just reports,
        with torch.no_grad():  # so G's backward does not run through it for a zero gradient
            loss_adv = F.cross_entropy(D(fake), y)
        loss_g = opts.rec_weight * loss_l1
    else:
        fake_features = D.features_of(fake)  # D's gradients here are dropped (zeroed in step 2): no sync needed
        loss_adv = F.cross_entropy(D.out(fake_features), y)
        loss_g = opts.adv_weight * loss_adv + opts.rec_weight * loss_l1
    if opts.fm_weight > 0:
        with torch.no_grad():
            real_features = D.features_of(real)
        loss_fm = F.l1_loss(fake_features.mean(0), real_features.mean(0))
        loss_g = loss_g + opts.fm_weight * loss_fm
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"rec": loss_rec.item(), "d": loss_d.item(), "adv": loss_adv.item(), "fm": loss_fm.item()}


class Both(nn.Module):
    """D on real and generated crops in one forward, each batch with its own BN statistics:
    DistributedDataParallel allows one forward per backward."""

    def __init__(self, D: Discriminator):
        super().__init__()
        self.D = D

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.D(real), self.D(fake)


def distribute(fit: "SAAEFit", device: torch.device) -> None:
    """Wrap G and D for DistributedDataParallel: rank 0's weights go to every rank, and every
    backward averages the gradients, so the ranks keep the same weights step after step."""
    ids = [device.index] if device.type == "cuda" else None
    fit.ddp = (DistributedDataParallel(fit.G, device_ids=ids), DistributedDataParallel(Both(fit.D), device_ids=ids))


def weights_digest(*models: nn.Module | None) -> str:
    """The parameters of G and D, hashed: equal on every rank of a sound distributed run."""
    h = hashlib.sha256()
    for model in filter(None, models):
        for p in model.parameters():
            h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- validation and sample grids


@torch.no_grad()
def validation_l1(G: Generator, val: CharSamples, bank: GlyphBank, device: torch.device, batch: int = 256) -> float:
    """Mean L1 of G(clean glyph, held-out plate) against the held-out real crop, in eval mode; NaN with no held-out
    crop of a trained character (0 read as a perfect score)."""
    if len(val.labels) == 0:
        return float("nan")
    G.eval()
    total = 0.0
    for i in range(0, len(val.labels), batch):
        y = torch.from_numpy(val.labels[i:i + batch])
        glyph = to_float(bank.first(y, val.aspects[i:i + batch]), device)
        style = to_float(torch.from_numpy(val.styles[val.plate_index[i:i + batch]]), device)
        real = to_float(torch.from_numpy(val.crops[i:i + batch]), device)
        total += F.l1_loss(G(glyph, style), real, reduction="sum").item() / real[0].numel()
    G.train()
    return total / len(val.labels)


@torch.no_grad()
def sample_grid(G: Generator, samples: CharSamples, plate_ids: Sequence[int], bank: GlyphBank,
                device: torch.device, columns: int = 36) -> np.ndarray:
    """Rows: real plates as style (the plate on the left); columns: characters. Under each row
    of generated characters, the plate's real crop of that character where it has one."""
    G.eval()
    size = G.config.glyph_size
    hs, ws = G.config.style_size
    chars = [i for i, c in enumerate(samples.charset) if c.isascii()][:columns]
    chars += [i for i, c in enumerate(samples.charset) if not c.isascii()][:max(columns - len(chars), 4)]
    y = torch.tensor(chars)
    unknown = np.full(len(chars), np.nan)
    rows = [np.concatenate([np.zeros((size, ws, 3), np.uint8)]
                           + [bank.first(y, unknown)[j, 0].numpy()[..., None].repeat(3, 2) for j in range(len(chars))], 1)]
    for p in plate_ids:
        own = samples.aspects[samples.plate_index == p]  # each row's glyphs as narrow as that plate's characters
        glyph = to_float(bank.first(y, unknown if np.isnan(own).all() else np.full(len(chars), np.nanmedian(own))), device)
        style = to_float(torch.from_numpy(samples.styles[p:p + 1]), device).expand(len(chars), -1, -1, -1)
        fake = (G(glyph, style).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        plate = np.zeros((2 * size, ws, 3), np.uint8)
        plate[:hs] = samples.styles[p]
        real_row = np.full((len(chars), size, size, 3), 32, np.uint8)
        for crop, label in zip(samples.crops[samples.plate_index == p], samples.labels[samples.plate_index == p]):
            if label in chars:
                real_row[chars.index(label)] = crop
        body = np.concatenate([np.concatenate(list(fake), 1), np.concatenate(list(real_row), 1)], 0)
        rows.append(np.concatenate([plate, body], 1))
    G.train()
    return np.concatenate(rows, 0)


def grid_plates(samples: CharSamples, n: int, rng: np.random.Generator) -> list[int]:
    """`n` plates spread over the data folders, so every source's style shows up."""
    sources = sorted({p.source for p in samples.plates})
    per = max(1, n // len(sources))
    picked: list[int] = []
    for source in sources:
        ids = [i for i, p in enumerate(samples.plates) if p.source == source]
        picked += sorted(rng.choice(ids, size=min(per, len(ids)), replace=False).tolist())
    return picked[:n]


# ---------------------------------------------------------------- the loop


@dataclass
class SAAEFit:
    """The two networks, their optimizers and how far they have trained: what the loop advances."""

    G: Generator
    D: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0
    run_start: int = 0  # the step this run began at (a run resumed after a kill keeps its own): the warmup counts from it
    losses: dict[str, float] = field(default_factory=dict)  # of the last step (averaged over the ranks)
    ddp: tuple[nn.Module, nn.Module] | None = None  # under torchrun: G and Both(D) in DDP (`distribute`)


def new_fit(config: SAAEConfig, opts: TrainOptions, device: torch.device) -> SAAEFit:
    """Fresh G and D (initialised from torch's global RNG) with Adam for each, in training mode."""
    G, D = Generator(config).to(device), Discriminator(config).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=opts.betas)
    return SAAEFit(G, D, opt_g, opt_d)


def fit_saae(fit: SAAEFit, samples: CharSamples, bank: GlyphBank, opts: TrainOptions, device: torch.device,
             total_steps: int, budget_s: float | None = None,
             on_step: Callable[[SAAEFit], None] = lambda fit: None, world: World = SOLO) -> SAAEFit:
    """The three-step loop on class-balanced batches of `samples` until `fit.step` reaches `total_steps`
    (or `budget_s` seconds have passed); `on_step` runs after every step. The one loop both
    `train_saae` and the benchmark's same-budget regime train with.

    Under torchrun (`world`, `fit.ddp`) every rank draws the whole batch as one process would and
    trains on its equal slice of it (`rank_slice`); DDP averages the gradients."""
    counts = np.bincount(samples.labels, minlength=len(samples.charset)).astype(np.float64)
    weights = torch.from_numpy(np.maximum(counts[samples.labels], 1) ** -opts.class_balance)
    crops_t, labels_t = torch.from_numpy(samples.crops), torch.from_numpy(samples.labels)
    styles_t, owner_t = torch.from_numpy(samples.styles), torch.from_numpy(samples.plate_index)
    mine = rank_slice(opts.batch_size, world)
    start = time.perf_counter()
    fit.G.train(), fit.D.train(not opts.freeze_discriminator), fit.D.requires_grad_(not opts.freeze_discriminator)
    while fit.step < total_steps and not (budget_s is not None and world.any(time.perf_counter() - start >= budget_s)):
        gen = batch_generator(opts.seed, fit.step)
        idx = torch.multinomial(weights, opts.batch_size, replacement=True, generator=gen)
        glyphs = bank.sample(labels_t[idx], gen, samples.aspects[idx.numpy()])  # the whole batch's: every rank's `gen` stays in step
        idx, glyphs = idx[mine], glyphs[mine]
        y = labels_t[idx]
        if opts.warmup:
            for group in (*fit.opt_g.param_groups, *fit.opt_d.param_groups):
                group["lr"] = opts.lr * min(1.0, (fit.step - fit.run_start + 1) / opts.warmup)
        glyph = to_float(glyphs, device)
        style = to_float(styles_t[owner_t[idx]], device)
        real = to_float(crops_t[idx], device)
        fit.losses = world.mean(train_step(fit.G, fit.D, fit.opt_g, fit.opt_d, glyph, style, real, y.to(device),
                                           opts, fit.ddp))
        fit.step += 1
        on_step(fit)
    return fit


def batch_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one step's batch, from the run's seed and the step alone: a run resumed from any
    checkpoint draws the batches an unbroken run would, so (with the optimizer state) it ends on the same weights."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0]))


def rank_slice(batch_size: int, world: World) -> slice:
    """This rank's part of every batch: equal contiguous slices, together the whole batch."""
    if batch_size % world.size:
        raise PlategenError(f"--batch-size {batch_size}: split over {world.size} torchrun processes, it must be "
                            f"a multiple of {world.size}")
    per = batch_size // world.size
    return slice(world.rank * per, (world.rank + 1) * per)


# ---------------------------------------------------------------- the run


def check_options(opts: TrainOptions, world: World = SOLO) -> None:
    """Refuse options that would train nothing or fail later, before any data is read."""
    if opts.more_steps is not None and opts.more_steps < 1:
        raise PlategenError(f"more_steps {opts.more_steps}: need at least 1")
    if opts.epochs is None and opts.more_steps is None and (opts.steps is None or opts.steps < 1):
        raise PlategenError(f"--steps {opts.steps}: need at least 1")
    if opts.warmup < 0:
        raise PlategenError(f"warmup {opts.warmup}: must be 0 or more")
    if opts.epochs is not None and not (math.isfinite(opts.epochs) and opts.epochs > 0):
        raise PlategenError(f"--epochs {opts.epochs}: must be a positive number")
    if opts.epochs is not None and opts.freeze_discriminator:  # epochs give a total, below any trained model's steps
        raise PlategenError(f"--epochs {opts.epochs}: a fine-tune counts steps; give --steps, the total (the "
                            f"model's own steps plus those to add), or neither for {FINETUNE_STEPS} more")
    if not 1 <= opts.batch_size <= MAX_BATCH_SIZE:
        raise PlategenError(f"--batch-size {opts.batch_size}: need 1 to {MAX_BATCH_SIZE}")
    if not (math.isfinite(opts.lr) and 0 < opts.lr <= 1):
        raise PlategenError(f"--lr {opts.lr}: must be a positive number, at most 1")
    cores = usable_cores()
    if not 1 <= opts.num_threads <= cores:  # far more threads than cores crashed torch and OpenCV (segfault)
        raise PlategenError(f"--threads {opts.num_threads}: need 1 to {cores}, the cores of this machine")
    if not (math.isfinite(opts.rendered_share) and 0 <= opts.rendered_share <= MAX_RENDERED_SHARE):
        raise PlategenError(f"--rendered-share {opts.rendered_share}: must be 0 to {MAX_RENDERED_SHARE} "
                            "(a share of the median class)")
    if not 0 <= opts.seed < 2 ** 63:
        raise PlategenError(f"--seed {opts.seed}: must be 0 or more (and below 2^63)")
    if opts.chars is not None:
        check_coverage(parse_charset(opts.chars), shipped_fonts())
    rank_slice(opts.batch_size, world)


def run_total(opts: TrainOptions, step: int, resumed_meta: dict, train_crops: int) -> int:
    """The step this run trains to. `more_steps` adds to a finished model; a resumed run that stopped
    before its own total (killed) goes on to that total, so a fine-tune resumed after a kill ends
    where it would have."""
    if opts.more_steps is not None:
        unfinished = resumed_meta.get("total", 0) > step
        return resumed_meta["total"] if unfinished else step + opts.more_steps
    return opts.steps if opts.epochs is None else math.ceil(opts.epochs * train_crops / opts.batch_size)


def require_ahead(resume: Path | None, step: int, total: int, epochs: float | None = None) -> None:
    """A resumed model already past this run's total would train nothing and write nothing. `epochs`: the run's
    length was given as --epochs (a total from step 0 too)."""
    if step > total:
        given = (f"--epochs {epochs:g} ({total} steps of this batch size over the training crops)"
                 if epochs is not None else f"the total of {total}")
        raise PlategenError(f"{resume}: already trained {step} steps, past {given}; give a larger "
                            f"{'--epochs' if epochs is not None else '--steps'} (the total, not what to add)")


GRID_PREFIX = "step"  # a sample grid is <samples dir>/step<step, 6 digits>.png


# the options that shape the weights: an unfinished run resumed with another of them is not an unbroken run
WEIGHT_OPTIONS = ("batch_size", "lr", "warmup", "betas", "rec_weight", "adv_weight", "freeze_discriminator", "fm_weight",
                  "class_balance", "glyph_variants", "rendered_share", "seed", "model",
                  "num_threads")  # threads change the float sums, and so the weights, a little (the device too: meta)
OPTION_NAMES = {"num_threads": "threads"}  # the CLI's name where it is not the field's


def require_same_training(world: World, opts: TrainOptions, charset: Sequence[str], plates: Sequence[Plate],
                          previous: LoadedCheckpoint | None) -> None:
    """Under torchrun every rank trains its slice of batches its own options and data draw: a rank started with
    another --seed trained on other batches with exit 0, one with another --data stopped in a DDP traceback, and
    one whose label files gave a plate another text or other boxes trained on them (its images are the same)."""
    mine = json.loads(json.dumps({k: v for k, v in asdict(opts).items() if k not in ("samples_dir", "device", "num_threads")}))
    mine |= {"chars": list(charset), "resume": previous.sha256 if previous is not None else None,
             "data": data_digest(plates)}
    world.require_same(mine, lambda differ, first, theirs: list(dict.fromkeys(
        f"--{k.replace('_', '-')}" if k in RANK_OPTIONS else "--preset" for k in differ)))


def data_digest(plates: Sequence[Plate]) -> str:
    """The training data as the ranks compare it: each plate's image bytes, text and boxes, in any order."""
    return hashlib.sha256(json.dumps(sorted([p.sha256, p.text, list(map(list, p.boxes))] for p in plates))
                          .encode()).hexdigest()


# the settings `train` sets by an option of their own name; the others by --preset
RANK_OPTIONS = ("steps", "epochs", "batch_size", "lr", "seed", "chars", "rendered_share", "narrow_glyphs", "data",
                "resume")


def changed_on_resume(began: dict, opts: TrainOptions) -> list[str]:
    """'--seed 3 -> 0' for each weight-shaping option this run sets otherwise than the run it resumes began with
    (a killed run resumed without its --seed went on at seed 0, silently)."""
    now = json.loads(json.dumps(asdict(opts)))  # as meta.json holds it (tuples as lists)
    return [f"--{OPTION_NAMES.get(key, key).replace('_', '-')} {began[key]} -> {now[key]}" for key in WEIGHT_OPTIONS
            if key in began and began[key] != now[key]]


def remove_killed_writes(out: Path, samples_dir: Path) -> None:
    """The temporary files a run killed mid-write left of this checkpoint, its optimizer state and its grids (a
    6 MB one stayed through --resume and --overwrite). Called with the checkpoint's lock held."""
    temp = r"\.[a-z0-9_]{8}\.tmp"  # what atomic_write_bytes adds to a name: another file's temporaries stay
    mine = re.compile(f"\\.({re.escape(out.name)}|{re.escape(optimizer_path(out).name)}){temp}")
    leftovers = [p for p in temp_leftovers(out.parent) if mine.fullmatch(p.name)]
    if samples_dir.is_dir():
        grid = re.compile(f"\\.{re.escape(GRID_PREFIX)}\\d{{6}}\\.png{temp}")
        leftovers += [p for p in temp_leftovers(samples_dir) if grid.fullmatch(p.name)]
    for path in leftovers:
        path.unlink(missing_ok=True)


def grid_files(samples_dir: Path) -> list[Path]:
    """The files in `samples_dir` named as sample grids are (`GRID_PREFIX`, 6 digits)."""
    return [p for p in sorted(samples_dir.glob(f"{GRID_PREFIX}*.png")) if re.fullmatch(GRID_PREFIX + r"\d{6}\.png", p.name)]


def replaced_grids(out: Path, samples_dir: Path) -> list[Path]:
    """The sample grids the checkpoint at `out` wrote (its meta's `grids`, in its resolved `samples_dir`) that lie in
    `samples_dir`: an --overwrite run replaces them; other runs' grids in a shared folder, those of a model it was
    resumed from, and those of a file that is no checkpoint (or one from before `grids` was recorded) stay."""
    try:
        meta = load_checkpoint(out).meta if out.is_file() else {}
    except PlategenError:
        return []
    wrote, grids = (meta.get("train") or {}).get("samples_dir"), meta.get("grids")
    if not (isinstance(wrote, str) and isinstance(grids, list)) or Path(wrote) != samples_dir.resolve():
        return []
    return [samples_dir / name for name in grids if isinstance(name, str) and re.fullmatch(
        GRID_PREFIX + r"\d{6}\.png", name) and is_own_sheet(samples_dir / name)]


def continues(out: Path, resume: Path | None) -> bool:
    """Whether the run goes on with the checkpoint it writes (a killed run resumed in place)."""
    return resume is not None and out.resolve() == resume.resolve()


def check_out(out: Path, samples_dir: Path, resume: Path | None, overwrite: bool) -> None:
    """Refuse an --out or --samples-dir training could not write, before any data is read."""
    require_no_file_in_the_way(out)
    require_no_file_in_the_way(samples_dir)
    if samples_dir.exists() and not samples_dir.is_dir():
        raise PlategenError(f"--samples-dir {samples_dir}: exists and is not a folder")
    foreign = [p for p in grid_files(samples_dir) if not is_own_sheet(p)]
    if foreign and not (overwrite or resume):
        raise PlategenError(f"--samples-dir {samples_dir}: holds {foreign[0].name}, a sample grid's name, without the "
                            "mark of a plategen sheet (someone else's file, or a grid of an older plategen); choose "
                            "another folder, or pass --overwrite to replace it")
    if out.is_dir():
        raise PlategenError(f"{out}: is a folder; --out names the checkpoint file, e.g. {out / 'saae.safetensors'}")
    if out.suffix != ".safetensors":
        raise PlategenError(f"--out {out}: a checkpoint is a .safetensors file; give a name ending in .safetensors")
    if out.name.endswith(OPTIMIZER_SUFFIX):
        raise PlategenError(f"--out {out}: a name ending in {OPTIMIZER_SUFFIX} is where a checkpoint's optimizer state "
                            "goes; give the checkpoint another name")
    taken = {out.resolve(), optimizer_path(out).resolve()}
    if taken & {samples_dir.resolve(), *samples_dir.resolve().parents}:  # its grid made a folder of that name
        raise PlategenError(f"--samples-dir {samples_dir}: is, or lies under, where the checkpoint (or its optimizer "
                            "state) goes; give the sample grids another folder")
    if not out.parent.is_dir():
        raise PlategenError(f"--out {out}: the folder {out.parent} does not exist")
    require_writable_folder(out.parent, f"--out {out}")
    require_writable_folder(samples_dir, f"--samples-dir {samples_dir}")
    continued = continues(out, resume)
    if out.exists() and not overwrite and not continued:
        raise PlategenError(f"{out}: already exists; pass --overwrite to replace it (or --resume {out} to continue it)")
    sidecar = optimizer_path(out)
    if sidecar.is_dir():  # --overwrite replaces files, and the write failed only after the whole training
        raise PlategenError(f"{sidecar}: is a folder, and this run writes its optimizer state there; move it, or give "
                            "--out another name")
    if sidecar.exists() and not overwrite and not continued:  # a checkpoint of that name, or a user's file
        raise PlategenError(f"{sidecar}: already exists, and this run writes its optimizer state there; pass "
                            "--overwrite to replace it, or give --out another name")


def restore_optimizers(path: Path, fit: SAAEFit) -> None:
    """The sidecar's Adam state, refused in one line when its shapes are not the model's."""
    optimizers = {"g": fit.opt_g, "d": fit.opt_d}
    load_optimizers(path, optimizers)
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            for param in group["params"]:
                for key, value in opt.state.get(param, {}).items():
                    if key != "step" and torch.is_tensor(value) and value.shape != param.shape:
                        raise PlategenError(f"{path}: optimizer state does not match the model ({name}.{key} has "
                                            f"shape {tuple(value.shape)}, the weights {tuple(param.shape)})")


def carry_discriminator(D: Discriminator, previous: Discriminator, previous_charset: Sequence[str],
                        charset: Sequence[str]) -> None:
    """Load `previous`'s weights into `D`, whose classes are `charset`: every character keeps its
    output row, a new character keeps D's fresh row, and "generated" moves to the last index."""
    rows = [previous_charset.index(c) if c in previous_charset else -1 for c in charset] + [len(previous_charset)]
    fresh, state = D.state_dict(), previous.state_dict()
    for key, value in state.items():
        if key.startswith("out.") and value.shape[:1] == (len(previous_charset) + 1,):
            widened = fresh[key].clone()
            for row, old in enumerate(rows):
                if old >= 0:
                    widened[row] = value[old]
            state[key] = widened
    D.load_state_dict(state)


def train_saae(data_dirs: Sequence[Path | str], out: Path | str, options: TrainOptions = TrainOptions(),
               resume: Path | str | None = None, overwrite: bool = False, progress: bool = True,
               allow_outside: bool = False) -> TrainResult:
    """Train on the train-side plates of `data_dirs`, validate on the held-out ones, write `out`.

    Under torchrun every rank reads the data and trains on its slice of every batch (DDP, see
    `fit_saae`); rank 0 alone validates, draws the sample grids and writes the checkpoint, after
    checking that every rank holds the same weights."""
    with distributed.joined() as world, contextlib.ExitStack() as held:
        return _train(data_dirs, Path(out), options, resume, overwrite, progress, allow_outside, world, held)


def _train(data_dirs: Sequence[Path | str], out: Path, opts: TrainOptions, resume: Path | str | None,
           overwrite: bool, progress: bool, allow_outside: bool, world: World, held: contextlib.ExitStack
           ) -> TrainResult:
    started = time.time()
    with world.together():  # one refusal stops every rank and is printed once
        resume = Path(resume) if resume is not None else None
        check_options(opts, world)
        samples_dir = Path(opts.samples_dir) if opts.samples_dir is not None else out.parent / f"{out.stem}-samples"
        check_out(out, samples_dir, resume, overwrite)
        if world.leader:  # two runs writing one checkpoint ended on a mix of both
            held.callback(OutputLock(lock_beside(out), lambda: PlategenError(
                f"{out}: another plategen train run is writing this checkpoint ({lock_beside(out).name} is locked); "
                "wait for it to finish or choose another --out")).release)
            remove_killed_writes(out, samples_dir)
        if (opts.more_steps is not None or opts.freeze_discriminator) and resume is None:  # D is kept, so must be trained
            raise PlategenError("--preset finetune: adds steps to a trained model; give --resume CHECKPOINT "
                                "(e.g. --resume checkpoints/saae-default.safetensors)")
        previous: LoadedCheckpoint | None = load_checkpoint(resume) if resume is not None else None
        if previous is not None and previous.discriminator is None:
            raise PlategenError(f"{resume}: has no discriminator weights, so training cannot resume from it")
        if previous is not None:
            require_finite(str(resume), previous.generator, previous.discriminator)
            if previous.meta.get("charset") is None:
                raise PlategenError(f"{resume}: its meta names no charset (the characters of its classes), so "
                                    "training cannot resume from it")
        if opts.narrow_glyphs and previous is not None and previous.config.glyph_aspect is None:
            raise PlategenError(f"--narrow-glyphs: {resume} was trained on content glyphs as drawn, and a model keeps "
                                "the glyphs it began with; train a new model with it")
        if previous is not None:  # a model keeps the glyphs it began with, and its meta says which
            opts = replace(opts, narrow_glyphs=previous.config.glyph_aspect is not None)
        if previous is not None and opts.epochs is None:  # the total is known before the data is read
            step = int(previous.meta.get("step", 0))
            require_ahead(resume, step, run_total(opts, step, previous.meta, 0))
        device = world.place(resolve_device(opts.device))
        if device.type == "cuda" and world.local_size > torch.cuda.device_count():
            raise PlategenError(f"--nproc-per-node {world.local_size}: DDP training takes one GPU per process and "
                                f"this machine has {torch.cuda.device_count()}")
        torch.set_num_threads(opts.num_threads)
        torch.manual_seed(opts.seed)
        rng = np.random.default_rng(opts.seed)

        # data: train-side plates for training, the fixed held-out plates for validation and grids
        train_plates, held_plates, data_summary, bad_records, repeated = load_split(data_dirs, allow_outside)
        previous_charset = previous.meta["charset"] if previous is not None else None
        earlier = previous.meta.get("data") if previous is not None else None
        if isinstance(earlier, dict) and isinstance(earlier.get("folders"), list):  # every stage's, as plate_sha256
            data_summary["folders"] = list(dict.fromkeys([f for f in earlier["folders"] if isinstance(f, str)]
                                                         + data_summary["folders"]))
        charset = parse_charset(opts.chars) if opts.chars is not None else previous_charset or charset_of(train_plates)
        require_drawable_texts(train_plates + held_plates, charset)
        if opts.freeze_discriminator and previous_charset is not None and set(charset) - set(previous_charset):
            raise PlategenError(f"--chars {opts.chars}: a fine-tune keeps the discriminator fixed, so it cannot learn "
                                f"{''.join(c for c in charset if c not in previous_charset)} (not in {resume}); "
                                "give --preset cpu with --resume to add characters")
        if opts.freeze_discriminator and previous_charset is not None and set(previous_charset) - set(charset):
            # the fine-tuned model lost those classes, and synth's label check with them
            raise PlategenError(f"--chars {opts.chars}: a fine-tune keeps the model's classes, and would drop "
                                f"{''.join(c for c in previous_charset if c not in charset)} of {resume}; leave --chars "
                                "out (characters the model has no class for are left out of its data)")
        real = build_samples(train_plates, charset)
        held = build_samples(held_plates, charset)
        if len(real.labels) == 0:
            asked = f" of --chars {opts.chars}" if opts.chars is not None else ""
            raise PlategenError(f"{', '.join(map(str, data_dirs))}: no character crops{asked} on the training plates"
                                + (" (--rendered-share trains characters without real crops from rendered pairs "
                                   "beside the others)" if asked else ""))
        val_ids = rng.permutation(len(held.labels))[:opts.val_crops]
        val = CharSamples(held.crops[val_ids], held.labels[val_ids], held.plate_index[val_ids], held.styles,
                          charset, held.plates, held.aspects[val_ids])
        train, rendered = top_up_with_rendered(real, opts.rendered_share, rng)
        counts = np.bincount(real.labels, minlength=len(charset))
        data_summary |= {"train_crops": int(len(real.labels)), "val_crops": int(len(val.labels)),
                         "crops_per_class": {c: int(n) for c, n in zip(charset, counts)},
                         "rendered_per_class": {c: int(n) for c, n in zip(charset, rendered) if n}}

        # model and optimizers (restored on --resume)
        config = (replace(previous.config, num_classes=len(charset)) if previous is not None
                  else SAAEConfig(num_classes=len(charset), **(glyph_fit(real, opts) | opts.model)))
        bank = GlyphBank(charset, opts.glyph_variants, rng, config.glyph_size, config.glyph_aspect is not None)
        fit = new_fit(config, opts, device)
        restored = belongs = False
        changed_options: list[str] = []
        if previous is not None:
            fit.G.load_state_dict(previous.generator.state_dict())
            carry_discriminator(fit.D, previous.discriminator, previous_charset, charset)
            fit.step = int(previous.meta.get("step", 0))
            sidecar = optimizer_path(resume)
            # a kill between the two writes leaves the sidecar stale, or that of the run an --overwrite replaced, at
            # the same step: its weights digest tells whether it is the resumed checkpoint's
            same_classes = charset == previous_charset  # else D's Adam state has other shapes: Adam starts afresh
            try:
                owner = optimizer_owner(sidecar) if sidecar.is_file() else None
                belongs = owner is not None and owner[0] in (None, fit.step) and owner[1] in (
                    None, weights_digest(previous.generator, previous.discriminator))
                restored = belongs and same_classes
                if restored:
                    restore_optimizers(sidecar, fit)
            except PlategenError as exc:  # damaged: say how to go on, where it would have been used
                if same_classes:
                    raise PlategenError(f"{exc}; delete it to resume with Adam restarted (the summary says so)") from None
            if restored:
                for group in (*fit.opt_g.param_groups, *fit.opt_d.param_groups):
                    group["lr"] = opts.lr  # the sidecar holds the earlier run's rate; this run's --lr wins
            left_off = int(previous.meta.get("total", 0))
            changed_options = changed_on_resume(previous.meta.get("train") or {}, opts) if left_off > fit.step else []
            new_plates = {p.sha256 for p in train_plates} - set(previous.meta.get("plate_sha256", []))
            if left_off > fit.step and new_plates:  # other --data: it went on without a word
                changed_options.append(f"--data: {len(new_plates)} training plate(s) the run began without")
            ranks, began_on = previous.meta.get("ranks"), previous.meta.get("device")
            if left_off > fit.step and isinstance(ranks, int) and ranks != world.size:  # each rank draws its slice
                changed_options.append(f"torchrun ranks {ranks} -> {world.size}")
            if left_off > fit.step and isinstance(began_on, str) and began_on.split(":")[0] != device.type:  # auto too
                changed_options.append(f"device {began_on.split(':')[0]} -> {device.type}")
            fit.run_start = int(previous.meta.get("run_start", fit.step)) if left_off > fit.step else fit.step
            # a fine-tune (D fixed) resumed onto a plain run's unfinished steps, with --steps N too
            began = previous.meta.get("train") or {}
            if left_off > fit.step and not (began.get("freeze_discriminator") or began.get("more_steps") is not None) \
                    and (opts.freeze_discriminator or opts.more_steps is not None):
                raise PlategenError(f"{resume}: an unfinished training run (step {fit.step} of {left_off}), not a "
                                    f"fine-tune; finish it first (plategen train --resume {resume} with its own "
                                    "options), then fine-tune the finished checkpoint")
        total = run_total(opts, fit.step, previous.meta if previous is not None else {}, len(train.labels))
        require_ahead(resume, fit.step, total, opts.epochs if opts.more_steps is None else None)
    # a run that cannot go on as it was: an unfinished one, or a finished one trained further, without its sidecar (a
    # fine-tune starts Adam afresh on a model shipped without one, by design)
    adam_restarted = previous is not None and not restored and (int(previous.meta.get("total", 0)) > fit.step or (
        total > fit.step and not (opts.more_steps is not None or opts.freeze_discriminator)  # a fine-tune: by --steps too
        and charset == previous_charset))  # new classes: a new Adam
    # kept in the checkpoint, so a later resume still says so: it compares with the options saved last, and a restart
    # is not seen once a sidecar of the restarted run lies beside the checkpoint
    recorded = previous.meta.get("departures") if previous is not None else None
    earlier_departures = [d for d in recorded if isinstance(d, str)] if isinstance(recorded, list) else []
    departures = earlier_departures + [f"step {fit.step:,}: {what}" for what in
                                       (["optimizer state restarted"] if adam_restarted else []) + changed_options]
    # a finished model trained further begins a stage of its own: `train` holds that stage's options, and the
    # stages before it are kept (a fine-tune of the shipped model still says how the model it began from was trained)
    earlier_stages = [stage for stage in previous.meta.get("earlier_stages") or [] if isinstance(stage, dict)] \
        if previous is not None else []
    if previous is not None and int(previous.meta.get("total", 0)) <= fit.step < total and previous.meta.get("train"):
        earlier_stages.append({"until_step": fit.step, "train": previous.meta["train"]})
    # a resume with no step left keeps the options that trained the weights, whatever options it was given
    trained_by = previous.meta["train"] if previous is not None and fit.step >= total and previous.meta.get("train") \
        else {**asdict(opts), "samples_dir": str(samples_dir.resolve())}
    with world.together():  # a collective of its own: a rank that refused above never reaches it
        require_same_training(world, opts, charset, train_plates, previous)
    if world.size > 1:
        distribute(fit, device)

    # every plate any stage of this model saw: a resumed run keeps the earlier runs' plates
    trained_on = sorted({p.sha256 for p in train_plates} | set(previous.meta.get("plate_sha256", []) if previous else []))
    grid_ids = grid_plates(held, 8, np.random.default_rng(opts.seed))
    written: list[Path] = []
    saved: list[int] = []  # the steps save() wrote a checkpoint and its sidecar at
    # a resume that runs no step keeps the weights, and so their validation L1
    earlier = previous.meta.get("val_l1") if previous else None
    val_l1 = float(earlier) if earlier is not None else float("nan")

    def save() -> None:
        meta = {"charset": charset, "fonts": bank.fonts, "plate_sha256": trained_on,
                "data": data_summary, "train": trained_by,
                "grids": sorted({*earlier_grids, *(p.name for p in written)}),
                "step": fit.step, "total": total, "run_start": fit.run_start, "losses": fit.losses,
                "val_l1": val_l1 if math.isfinite(val_l1) else None, "seconds": round(time.time() - started, 1),
                "device": str(device), "plategen_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "resumed_from": str(resume) if resume is not None else None, "ranks": world.size,
                "departures": departures, "earlier_stages": earlier_stages}
        save_checkpoint(out, fit.G, config, meta, fit.D)
        save_optimizers(optimizer_path(out), {"g": fit.opt_g, "d": fit.opt_d}, fit.step, weights_digest(fit.G, fit.D))
        saved.append(fit.step)

    # the grids of the checkpoint an --overwrite run replaces; they go once this run has written its first grid, so a
    # run that stops before it leaves the earlier run whole
    stale = replaced_grids(out, samples_dir) if overwrite and world.leader and not continues(out, resume) else []
    # a run resumed in place goes on with its checkpoint, so its grids are this run's too
    earlier_grids = previous.meta.get("grids", []) if previous is not None and continues(out, resume) else []

    def write_grid() -> None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        path = samples_dir / f"{GRID_PREFIX}{fit.step:06d}.png"
        atomic_save_png(Image.fromarray(sample_grid(fit.G, held, grid_ids, bank, device)), path)
        written.append(path)
        while stale:
            old = stale.pop()
            if old != path:
                old.unlink(missing_ok=True)

    bar = tqdm(total=total, initial=fit.step, disable=not (progress and world.leader), desc="train", unit="it",
               dynamic_ncols=True)

    def log_validate_save(fit: SAAEFit) -> None:
        nonlocal val_l1
        losses = fit.losses
        if world.leader and (fit.step % opts.val_every == 0 or fit.step == total):
            val_l1 = validation_l1(fit.G, val, bank, device)
            bar.write(f"step {fit.step}: (1) rec L1 {losses['rec']:.4f}  (2) D CE {losses['d']:.3f}  "
                      f"(3) adv CE {losses['adv']:.3f}  val L1 {val_l1:.4f}")
        if fit.step % opts.sample_every == 0 or fit.step == total:
            same_weights(fit, world)
            require_finite_weights(fit, world, out)
            if world.leader:
                write_grid()
                save()
        bar.set_postfix(rec=f"{losses['rec']:.4f}", d=f"{losses['d']:.3f}", adv=f"{losses['adv']:.3f}",
                        val=f"{val_l1:.4f}", refresh=False)
        bar.update()

    resumed_at = fit.step
    fit_saae(fit, train, bank, opts, device, total, on_step=log_validate_save, world=world)
    bar.close()
    # resumed at its total, nothing ran: still write `out`, unless it is the checkpoint resumed (an --overwrite of
    # another file kept that file and the summary named it as written)
    if world.leader and fit.step == total and (not out.exists() or (resumed_at == total and not continues(out, resume))):
        save()
        for old in stale:  # no grid was written to take them away: the replaced checkpoint's grids go with it
            old.unlink(missing_ok=True)
    # resumed in place with nothing to run, nothing was saved: the sidecar beside it is the one found, or none (a kill
    # while it was written; the summary named it as written)
    sidecar_ok = bool(saved) or (continues(out, resume) and belongs)
    return TrainResult(out, optimizer_path(out) if sidecar_ok else None, written, fit.step, time.time() - started, fit.losses, val_l1,
                       len(train_plates), int(len(real.labels)), int(rendered.sum()), world.size, bad_records, resumed_at,
                       adam_restarted, changed_options, earlier_departures, outside_charset(train_plates, charset),
                       [c for c, n, r in zip(charset, counts, rendered) if n + r == 0 and c not in (previous_charset or ())],
                       repeated)


def outside_charset(plates: Sequence[Plate], charset: Sequence[str]) -> dict[str, int]:
    """The boxed characters of `plates` no class of the model takes, with their counts: a fine-tune on a new
    design (its charset the resumed model's) left them out without a word."""
    known = set(charset)
    counts = Counter(ch for p in plates if p.boxes for ch in p.text if ch not in known)
    return dict(sorted(counts.items()))


def require_finite_weights(fit: SAAEFit, world: World, out: Path) -> None:
    """A diverged run stops before it overwrites the last good checkpoint with NaN weights. Every rank holds
    the same weights here (`same_weights`), so every rank stops alike."""
    try:
        require_finite(f"step {fit.step}", fit.G, fit.D)
    except PlategenError as exc:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in fit.losses.items())
        raise (PlategenError if world.leader else RankStopped)(
            f"{exc}: training diverged (losses {losses}); {out} is not written at this step, the last one written "
            "(if any) is kept; lower --lr, or --resume from an earlier checkpoint") from None


def same_weights(fit: SAAEFit, world: World) -> None:
    """Every rank must hold rank 0's weights before rank 0 writes them; anything else is a bug."""
    digests = world.gather(weights_digest(fit.G, fit.D))
    if len(set(digests)) > 1:
        raise (PlategenError if world.leader else RankStopped)(f"internal error: after step {fit.step} the ranks' weights differ "
                            f"({', '.join(d[:8] for d in digests)}); the checkpoint is not written")
