"""Batched generation: content glyphs x style codes -> generator -> labelled character images.

One run is a *plan* fixed by the seed before any image is drawn: for image i, its label,
which content-glyph variant and which style entry it combines, and its own seed (which
picks its photometric noise). Images are generated in fixed chunks of the plan, so the
output is the same bytes whatever the timing of the writer threads, and an interrupted
run can be finished (`--resume`) by generating only the chunks it lacks.

Diversity comes from pools built once per run and combined without repetition:
- content: per label, the clean glyph of every font that covers it, plus
  `Diversity.jittered_glyphs` glyphs with their own scale / shift / rotation / stroke jitter
  (none by default: see `Diversity`);
- style: every style plate as given, plus random crops, shifts, scale, colour and blur
  changes of it, and (with several styles) codes interpolated between two plates;
- each (glyph variant, style entry) pair is used at most once per label, by a first draw or
  a label-check retry, while pairs last (the style pool grows to make them last); light noise
  after generation is optional (`Diversity.noise`).

Label check: when the checkpoint holds its discriminator, every image is read by the
discriminator's class head (the k real classes; the "generated" output is ignored). An image
read as another character is drawn again, up to `CHECK_ATTEMPTS` times, with (glyph variant,
style entry) pairs the plan set aside for it; the best-read attempt is kept and the manifest
says whether it passed. The retries of image i depend only on the plan and the model, so output
stays byte-identical per seed and `--resume` works; the journal records each image's attempt.

Speed: the generator is folded (BN into conv), and its first decoder conv is split into a
content half and a style half (a conv of a concatenation is the sum of two convs), which are
computed once per glyph variant and once per style entry. Per image only the rest of the
decoder runs. The split is checked numerically against `Generator.decode` and skipped
if the model does not have that shape.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plategen import __version__
from plategen.dataset import style_image
from plategen.device import resolve_device
from plategen.errors import PlategenError
from plategen.glyphs import Font, GlyphJitter, JitterRange, fonts_for, render_glyph, sample_jitter, shipped_fonts
from plategen.plates import IMAGE_SUFFIXES, read_image

# cached entries hold one decoder_width x S x S float map each (64 KiB at the default config)
MAX_STYLE_ENTRIES = 4096  # style entries
MAX_GLYPH_ENTRIES = 3072  # glyph variants over all labels
SAMPLES_KEPT = 32  # images per label kept in memory for the diversity figure and the preview
CHECK_ATTEMPTS = 4  # draws of one image at most, while the discriminator reads another character


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
    jitter: JitterRange = JitterRange()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Style:
    name: str  # how the manifest names it: the path as given
    image: np.ndarray  # HxWx3 uint8 RGB, the whole plate
    sha256: str


@dataclass
class Batch:
    """One chunk of the plan, generated."""

    ids: np.ndarray  # [B] int64 image index in the plan
    images: np.ndarray  # [B, S, S, 3] uint8 RGB
    labels: list[str]
    style_index: np.ndarray  # [B] int64 index of the (primary) style plate
    styles: list[str]  # style names; "a.jpg|b.jpg" for an interpolated style
    fonts: list[str]
    seeds: np.ndarray  # [B] uint64 per-image seed
    attempts: np.ndarray  # [B] int64 which draw was kept (0 = the plan's first)
    checks: list[str]  # "pass" / "fail": did the discriminator read the label; "" without one


# ---------------------------------------------------------------- inputs


def load_styles(specs: Sequence[Path | str]) -> list[Style]:
    """Style plates from image files and folders (a folder's `images/` or the folder itself).

    Any unreadable image is an error naming the file: a style is chosen on purpose.
    """
    if not specs:
        raise PlategenError("--style: give at least one plate image or folder")
    paths: list[Path] = []
    for spec in specs:
        spec = Path(spec)
        if spec.is_dir():
            folder = spec / "images" if (spec / "images").is_dir() else spec
            found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise PlategenError(f"{spec}: no plate images (.jpg, .png, ...) in this folder")
            paths.extend(found)
        elif spec.exists():
            paths.append(spec)
        else:
            raise PlategenError(f"{spec}: no such style image or folder")
    styles = []
    for path in paths:
        image = read_image(path)
        if min(image.shape[:2]) < 4:
            raise PlategenError(f"{path}: image is {image.shape[1]}x{image.shape[0]} px, too small for a plate")
        styles.append(Style(str(path), image, hashlib.sha256(path.read_bytes()).hexdigest()))
    return styles


def check_drawable(chars: Sequence[str], fonts: Sequence[Font], charset: Sequence[str] | None) -> None:
    """One error naming every character the checkpoint or the fonts cannot draw."""
    problems = []
    known = set(charset) if charset is not None else None
    for ch in chars:
        why = []
        if known is not None and ch not in known:
            why.append("not in the checkpoint's charset")
        if not fonts_for(ch, fonts):
            why.append("no font covers it")
        if why:
            problems.append(f"{ch!r} (U+{ord(ch):04X}): {' and '.join(why)}")
    if problems:
        have = "".join(charset) if charset is not None else "any"
        raise PlategenError(f"cannot draw {len(problems)} character(s): {'; '.join(problems)}. "
                            f"Checkpoint charset: {have}; fonts: {', '.join(f.name for f in fonts)}")


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


# ---------------------------------------------------------------- pools and plan


@dataclass
class GlyphPool:
    glyphs: np.ndarray  # [G, S, S] uint8, all labels' variants
    fonts: list[str]  # [G]
    offset: list[int]  # first entry of each label
    size: list[int]  # variants of each label


def build_glyph_pool(chars: Sequence[str], counts: Sequence[int], fonts: Sequence[Font], seed: int,
                     diversity: Diversity, size: int) -> GlyphPool:
    """Per label, the clean glyph of each font that covers it, then `jittered_glyphs` more
    cycling over those fonts; never more than `count`. Each label has its own random stream, so
    a label's glyphs do not depend on which other labels are in the run."""
    cap = max(8, MAX_GLYPH_ENTRIES // max(len(chars), 1))
    glyphs, names, offset, sizes = [], [], [], []
    for li, (ch, count) in enumerate(zip(chars, counts)):
        rng = np.random.default_rng([seed, 2, ord(ch)])
        usable = fonts_for(ch, fonts)
        k = max(1, min(count, len(usable) + diversity.jittered_glyphs, cap))
        offset.append(len(glyphs))
        sizes.append(k)
        for v in range(k):
            font = usable[v % len(usable)]
            jitter = GlyphJitter() if v < len(usable) else sample_jitter(rng, diversity.jitter)
            glyphs.append(render_glyph(ch, font, size, jitter))
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


def style_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The plate as the model saw it in training: resized whole to the style size."""
    return style_image(image, size)


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
        images[j] = style_input(style.image, size) if j < s else _augment(style.image, size, rng, diversity)
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


# ---------------------------------------------------------------- model


def _fold(generator: nn.Module) -> nn.Module:
    from plategen.model import fold_batchnorm

    try:
        return fold_batchnorm(generator)
    except Exception:  # an architecture fold_batchnorm does not know: run it as it is
        return generator


class LabelCheck:
    """The checkpoint's discriminator as a reader of generated images (its k class outputs)."""

    def __init__(self, discriminator: nn.Module, classes: Sequence[int], device: torch.device):
        self.model = discriminator.to(device).eval()
        self.classes = torch.as_tensor(list(classes), device=device)

    @torch.inference_mode()
    def read(self, images: Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B,3,S,S] in 0-255, labels [B] into the run's chars -> (read as the label, its
        probability among the k real classes)."""
        logits = self.model(images / 255)[:, :-1].float()
        want = self.classes[torch.from_numpy(labels).to(logits.device)]
        prob = torch.softmax(logits, 1).gather(1, want[:, None])[:, 0]
        return (logits.argmax(1) == want).cpu().numpy(), prob.cpu().numpy()


class Engine:
    """The generator prepared for inference over fixed glyph and style pools."""

    def __init__(self, generator: nn.Module, glyphs: np.ndarray, styles: StylePool, device: torch.device,
                 batch_size: int, channels_last: bool = True):
        self.device = device
        model = _fold(generator.to("cpu").eval()).to(device).eval()
        self.model = model
        self.channels_last = channels_last and device.type == "cpu"
        with torch.inference_mode():
            style_t = torch.from_numpy(styles.images).permute(0, 3, 1, 2)
            codes = torch.cat([model.encode_style(chunk.to(device).float() / 255)
                               for chunk in style_t.split(batch_size)])
            mixed = torch.from_numpy(styles.partner >= 0).to(device)
            if bool(mixed.any()):
                w = torch.from_numpy(styles.weight).to(device).unsqueeze(1)
                other = codes[torch.from_numpy(np.maximum(styles.partner, 0)).to(device)]
                codes = torch.where(mixed.unsqueeze(1), (1 - w) * codes + w * other, codes)
            self.codes = codes
            self.glyphs = torch.from_numpy(glyphs).unsqueeze(1).to(device).float() / 255
            self.split = self._split(batch_size)

    def _split(self, batch_size: int) -> tuple[Tensor, Tensor] | None:
        """Per glyph and per style entry halves of the first decoder conv, or None."""
        m = self.model
        try:
            first = m.decoder[0]
            conv, act = first[0], first[1]
            cw = m.config.content_width
            if not (isinstance(conv, nn.Conv2d) and conv.bias is not None and isinstance(act, nn.LeakyReLU)
                    and len(first) == 2 and conv.in_channels == 2 * cw):
                return None
            content = torch.cat([F.conv2d(m.content(g), conv.weight[:, :cw], None, conv.stride, conv.padding)
                                 for g in self.glyphs.split(batch_size)])
            s = m.config.glyph_size
            style = torch.cat([
                F.conv2d(F.leaky_relu(m.style_map(c), m.config.leak).view(-1, cw, s, s), conv.weight[:, cw:],
                         conv.bias, conv.stride, conv.padding) for c in self.codes.split(batch_size)])
            self.leak = act.negative_slope
            self.tail = m.decoder[1:]
            for module in self.tail.modules():  # activations in place: fewer passes over memory
                if isinstance(module, (nn.LeakyReLU, nn.ReLU)):
                    module.inplace = True
            if self.channels_last:
                content = content.contiguous(memory_format=torch.channels_last)
                style = style.contiguous(memory_format=torch.channels_last)
                self.tail = self.tail.to(memory_format=torch.channels_last)
            # the split must reproduce decode() before it is trusted
            gi = torch.arange(min(8, len(self.glyphs)), device=self.device)
            si = torch.arange(len(gi), device=self.device) % len(self.codes)
            ref = m.decode(self.glyphs[gi], self.codes[si])
            got = torch.sigmoid(self.tail(F.leaky_relu(content[gi] + style[si], self.leak)))
            if (ref - got).abs().max().item() > 1e-4:
                return None
            return content, style
        except (AttributeError, TypeError, IndexError, RuntimeError):
            return None

    @torch.inference_mode()
    def run(self, glyph: np.ndarray, style: np.ndarray) -> Tensor:
        """[B,3,S,S] float in [0,255] for glyph entries and style entries."""
        gi = torch.from_numpy(glyph).to(self.device)
        si = torch.from_numpy(style).to(self.device)
        if self.split is not None:
            content, style_part = self.split
            h = content.index_select(0, gi)
            h += style_part.index_select(0, si)
            return torch.sigmoid_(self.tail(F.leaky_relu_(h, self.leak))).mul_(255)
        return self.model.decode(self.glyphs.index_select(0, gi), self.codes.index_select(0, si)).mul_(255)


# ---------------------------------------------------------------- generation


def _noise_bank(seed: int, sigma: float, size: int) -> np.ndarray | None:
    if sigma <= 0:
        return None
    rng = np.random.default_rng([seed, 4])
    return (rng.standard_normal((64, 2 * size, 2 * size, 3), dtype=np.float32) * np.float32(sigma))


def _add_noise(images: np.ndarray, seeds: np.ndarray, bank: np.ndarray | None) -> np.ndarray:
    """images float [B,S,S,3] in 0-255 -> uint8; the noise field is a window of a shared bank
    that the image's seed picks (field, offset, sign)."""
    if bank is not None:
        size = images.shape[1]
        s = seeds
        field_i = (s % np.uint64(len(bank))).astype(np.int64)
        oy = ((s >> np.uint64(8)) % np.uint64(size)).astype(np.int64)
        ox = ((s >> np.uint64(16)) % np.uint64(size)).astype(np.int64)
        sign = np.where((s >> np.uint64(24)) & np.uint64(1), np.float32(-1), np.float32(1))
        r = np.arange(size)
        noise = bank[field_i[:, None, None], (oy[:, None] + r)[:, :, None], (ox[:, None] + r)[:, None, :]]
        images = images + noise * sign[:, None, None, None]
    return np.clip(images + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Synthesizer:
    """Everything fixed by the inputs and the seed; `batches()` generates the plan in chunks."""

    chars: list[str]
    n: int
    seed: int
    styles: list[Style]
    plan: Plan
    glyphs: GlyphPool
    style_pool: StylePool
    engine: Engine
    batch_size: int
    diversity: Diversity
    check: LabelCheck | None = None
    model_seconds: float = 0.0
    setup_seconds: float = 0.0
    _bank: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, generator: nn.Module, styles: Sequence[Style], chars: Sequence[str], n: int, seed: int = 0,
              *, batch_size: int = 256, device: str | torch.device = "cpu", diversity: Diversity = Diversity(),
              fonts: Sequence[Font] | None = None, charset: Sequence[str] | None = None,
              discriminator: nn.Module | None = None) -> "Synthesizer":
        """`discriminator` (with `charset`, the checkpoint's classes) turns on the label check."""
        start = time.perf_counter()
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise PlategenError("--chars: a character is listed twice")
        fonts = list(fonts) if fonts is not None else shipped_fonts()
        check_drawable(chars, fonts, charset)
        if batch_size < 1:
            raise PlategenError(f"--batch-size {batch_size}: must be at least 1")
        counts = label_counts(n, len(chars))
        config = generator.config
        glyphs = build_glyph_pool(chars, counts, fonts, seed, diversity, config.glyph_size)
        pool = build_style_pool(list(styles), n, seed, diversity, tuple(config.style_size),
                                entries=max(diversity.style_entries,
                                            style_entries_needed(counts, glyphs, CHECK_ATTEMPTS)))
        plan = make_plan(chars, counts, glyphs, len(pool.names), seed)
        engine = Engine(generator, glyphs.glyphs, pool, torch.device(device), batch_size)
        check = None
        if discriminator is not None and charset is not None:
            check = LabelCheck(discriminator, [list(charset).index(c) for c in chars], torch.device(device))
        synth = cls(chars, n, seed, list(styles), plan, glyphs, pool, engine, batch_size, diversity, check,
                    _bank=_noise_bank(seed, diversity.noise, config.glyph_size))
        synth.setup_seconds = time.perf_counter() - start
        return synth

    @property
    def num_batches(self) -> int:
        return -(-self.n // self.batch_size)

    def batch_ids(self, b: int) -> np.ndarray:
        return np.arange(b * self.batch_size, min((b + 1) * self.batch_size, self.n), dtype=np.int64)

    def entries(self, ids: np.ndarray, attempts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Glyph and style entries of draw `attempts` of images `ids`."""
        return self.plan.glyph[attempts, ids], self.plan.style[attempts, ids]

    @torch.inference_mode()
    def generate_batch(self, b: int) -> Batch:
        ids = self.batch_ids(b)
        labels = self.plan.label[ids]
        attempts = np.zeros(len(ids), np.int64)
        start = time.perf_counter()
        out = self.engine.run(*self.entries(ids, attempts))
        checks = [""] * len(ids)
        if self.check is not None:
            passed, score = self.check.read(out, labels)
            for t in range(1, CHECK_ATTEMPTS):
                redo = np.flatnonzero(~passed)
                if not len(redo):
                    break
                again = self.engine.run(*self.entries(ids[redo], np.full(len(redo), t)))
                ok, prob = self.check.read(again, labels[redo])
                better = ok | (prob > score[redo])  # every redo has failed so far
                take = redo[better]
                out[torch.from_numpy(take).to(out.device)] = again[torch.from_numpy(better).to(out.device)]
                attempts[take], passed[take], score[take] = t, ok[better], prob[better]
            checks = ["pass" if ok else "fail" for ok in passed]
        images = out.permute(0, 2, 3, 1).float().cpu().numpy()
        self.model_seconds += time.perf_counter() - start
        images = _add_noise(images, self.plan.seed[ids], self._bank)
        glyph, style = self.entries(ids, attempts)
        return Batch(ids, images, [self.chars[i] for i in labels], self.style_pool.primary[style],
                     [self.style_pool.names[i] for i in style], [self.glyphs.fonts[i] for i in glyph],
                     self.plan.seed[ids], attempts, checks)

    def batches(self, skip: Callable[[np.ndarray], bool] = lambda ids: False) -> Iterator[Batch]:
        """Every chunk of the plan in order, except those `skip(ids)` rejects."""
        for b in range(self.num_batches):
            if not skip(self.batch_ids(b)):
                yield self.generate_batch(b)

    def rows(self, attempts: np.ndarray) -> Iterator[tuple[int, str, str, str, int]]:
        """(id, label, style, font, seed) of every image, given the draw kept for each."""
        glyph, style = self.entries(np.arange(self.n), attempts)
        p = self.plan
        for i in range(self.n):
            yield (i, self.chars[p.label[i]], self.style_pool.names[style[i]], self.glyphs.fonts[glyph[i]],
                   int(p.seed[i]))


def generate(generator, style_images: Sequence[np.ndarray | Style], chars: Sequence[str], n: int, seed: int = 0,
             *, batch_size: int = 256, device: str = "cpu", diversity: Diversity = Diversity(),
             check: bool = True) -> Iterator[Batch]:
    """The library entry point: n labelled images in batches, nothing written.

    `generator` is a `Generator`, a `LoadedCheckpoint`, or a checkpoint path. Style images are
    HxWx3 uint8 RGB whole plates (or `Style`s). Each `Batch` holds `images` [B,S,S,3] uint8,
    `labels`, `style_index`, `fonts`, `seeds`, `attempts`, `checks`. Same inputs and seed, same
    bytes on CPU. The label check runs when `check` and the checkpoint holds a discriminator.
    """
    generator, charset, discriminator = _model_parts(generator, device)
    styles = [s if isinstance(s, Style) else Style(f"style{i}", np.ascontiguousarray(s),
                                                    hashlib.sha256(np.ascontiguousarray(s).tobytes()).hexdigest())
              for i, s in enumerate(style_images)]
    synth = Synthesizer.build(generator, styles, chars, n, seed, batch_size=batch_size, device=device,
                              diversity=diversity, charset=charset, discriminator=discriminator if check else None)
    yield from synth.batches()


def generate_arrays(generator, style_images: Sequence[np.ndarray], chars: Sequence[str], n: int, seed: int = 0,
                    **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """`generate` collected: images [n,S,S,3] uint8 and label indices [n] into `chars`."""
    index = {c: i for i, c in enumerate(chars)}
    images, labels = [], []
    for batch in generate(generator, style_images, chars, n, seed, **kwargs):
        images.append(batch.images)
        labels.extend(index[c] for c in batch.labels)
    return np.concatenate(images), np.asarray(labels, np.int64)


def _model_parts(generator, device: str = "cpu"):
    """(Generator, charset or None, Discriminator or None) from a Generator, a LoadedCheckpoint or a path."""
    if isinstance(generator, (str, Path)):
        from plategen.checkpoint import load_checkpoint

        generator = load_checkpoint(Path(generator), device=device)
    if hasattr(generator, "generator") and hasattr(generator, "meta"):
        return generator.generator, generator.meta.get("charset"), generator.discriminator
    return generator, None, None


# ---------------------------------------------------------------- measures


def image_hash(image: np.ndarray) -> str:
    """Identity of an image's pixels: equal hashes = exact duplicates."""
    return hashlib.blake2b(memoryview(np.ascontiguousarray(image)).cast("B"), digest_size=8).hexdigest()


def batch_hashes(images: np.ndarray) -> list[str]:
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(row.data, digest_size=8).hexdigest() for row in flat]


def within_class_diversity(samples: dict[str, list[np.ndarray]]) -> tuple[float, float]:
    """(mean, min) over labels of the pairwise RMS pixel distance (0-255) between that
    label's sampled images. Mean: how varied a class is; min: its closest pair (0 = a copy)."""
    means, closest = [], math.inf
    for images in samples.values():
        if len(images) < 2:
            continue
        x = np.stack(images).reshape(len(images), -1).astype(np.float32)
        sq = (x * x).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0) / x.shape[1]
        iu = np.triu_indices(len(x), 1)
        d = np.sqrt(d2[iu])
        means.append(float(d.mean()))
        closest = min(closest, float(d.min()))
    if not means:
        return 0.0, 0.0
    return float(np.mean(means)), closest



# ---------------------------------------------------------------- the synth command


@dataclass
class SynthRequest:
    styles: list[Path]
    chars: list[str]
    n: int
    out: Path
    checkpoint: Path | None = None  # None: the shipped model
    seed: int = 0
    device: str | None = None  # None: CUDA when present, else CPU
    batch_size: int = 256
    format: str = "files"
    shard_size: int = 10000
    workers: int = 2
    threads: int | None = None  # generator threads on CPU; None: one core is left to the writers
    resume: bool = False
    overwrite: bool = False
    preview: Path | None = None
    diversity: Diversity = Diversity()
    check: bool = True  # the label check (needs the checkpoint's discriminator)
    command: list[str] = field(default_factory=list)


@dataclass
class SynthReport:
    out: Path
    manifest: Path
    meta: Path
    preview: Path | None
    format: str
    n: int
    counts: dict[str, int]
    generated: int  # images made by this invocation (less than n after --resume)
    resumed: int  # images already there from an interrupted run
    duplicates: int  # images whose pixels equal an earlier image's
    diversity: float  # mean within-class pairwise RMS distance (0-255)
    closest: float  # smallest within-class pairwise RMS distance among the sampled images
    check_failed: int | None  # images no draw of which the discriminator read as their label; None: no check
    redrawn: int  # images of this invocation drawn more than once by the label check
    seconds: float
    images_per_s: float  # this invocation's images / wall time (setup included)
    model_images_per_s: float  # images / seconds spent inside the generator
    device: str
    shards: list[Path] = field(default_factory=list)


# what must match for --resume to continue a run
RESUME_KEYS = ("n", "charset", "seed", "checkpoint_sha256", "styles", "format", "shard_size", "batch_size",
               "diversity", "glyph_size", "label_check")


def synthesize(req: SynthRequest, progress: Callable[[int, int], None] = lambda done, total: None) -> SynthReport:
    """Write a labelled dataset to `req.out`; every input is checked before any image is made."""
    from plategen import writers
    from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

    start = time.perf_counter()
    device = str(resolve_device(req.device))
    if req.format not in writers.FORMATS:
        raise PlategenError(f"--format {req.format!r}: choose one of {', '.join(writers.FORMATS)}")
    if req.batch_size < 1:
        raise PlategenError(f"--batch-size {req.batch_size}: must be at least 1")
    label_counts(req.n, len(req.chars))
    ckpt_path = Path(req.checkpoint) if req.checkpoint is not None else DEFAULT_CHECKPOINT
    if req.checkpoint is None and not ckpt_path.is_file():
        raise PlategenError(f"{ckpt_path}: the shipped checkpoint is missing; pass --checkpoint or train one")
    ckpt = load_checkpoint(ckpt_path, device="cpu")
    fonts = shipped_fonts()
    check_drawable(req.chars, fonts, ckpt.meta.get("charset"))
    styles = load_styles(req.styles)
    params = {
        "n": req.n, "charset": list(req.chars), "seed": req.seed, "checkpoint_sha256": ckpt.sha256,
        "styles": [{"path": s.name, "sha256": s.sha256} for s in styles], "format": req.format,
        "shard_size": req.shard_size if req.format == "shards" else None, "batch_size": req.batch_size,
        "diversity": json_ready(req.diversity.to_dict()), "glyph_size": ckpt.config.glyph_size,
        "label_check": req.check and ckpt.discriminator is not None,
    }
    previous = writers.prepare_out(req.out, req.resume, req.overwrite)
    if previous is not None:
        params["batch_size"] = previous.get("batch_size", req.batch_size)  # chunks must match the first run
        differ = [k for k in RESUME_KEYS if previous.get(k) != params[k]]
        if differ:
            raise PlategenError(f"{req.out}: --resume with different settings than the interrupted run "
                                f"({', '.join(differ)}); repeat the first command's options")
    threads_before = torch.get_num_threads()
    if device == "cpu":  # the generator and the PNG writers share the cores; oversubscribing them is slower
        torch.set_num_threads(req.threads or max(1, usable_cores() - 1))
    try:
        return _run(req, device, ckpt, ckpt_path, fonts, styles, params, previous, progress, start)
    finally:
        torch.set_num_threads(threads_before)


def usable_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run(req: SynthRequest, device: str, ckpt, ckpt_path: Path, fonts, styles, params: dict, previous: dict | None,
         progress: Callable[[int, int], None], start: float) -> SynthReport:
    from plategen import writers

    synth = Synthesizer.build(ckpt.generator, styles, req.chars, req.n, req.seed, batch_size=params["batch_size"],
                              device=device, diversity=req.diversity, fonts=fonts, charset=ckpt.meta.get("charset"),
                              discriminator=ckpt.discriminator if params["label_check"] else None)
    writer = writers.make_writer(req.format, req.out, req.chars, req.n, req.workers, req.shard_size)
    label_of = [req.chars[i] for i in synth.plan.label]
    meta = {
        "tool": "plategen synth", "plategen_version": __version__, "command": req.command, "status": "running",
        **params, "checkpoint": str(ckpt_path), "device": device,
        "label_dirs": {c: writers.safe_label_dir(c) for c in req.chars} if req.format == "files" else {},
        "counts": dict(zip(req.chars, synth.plan.counts)),
        "manifest_columns": {"image_path": "relative to manifest.csv (shards: <shard>.tar#<member>)",
                             "label": "the character", "style": "style plate(s); a|b = interpolated",
                             "font": "font of the content glyph",
                             "seed": "the image's own seed (picks its noise); glyph and style choices "
                                     "come from the run seed",
                             "check": "pass: the model's discriminator reads the image as its label; fail: no "
                                      f"draw of {CHECK_ATTEMPTS} did (the best-read one is kept); empty: no check"},
    }
    journal = writers.Journal(req.out)
    complete = previous is not None and previous.get("status") == "complete"
    if complete:  # nothing left to do; its manifest stays (the journal with each image's draw is gone)
        done = {i: "" for i in range(req.n)}
    else:
        done = journal.load(req.n)
    done = writer.present(done, label_of)
    resumed = len(done)
    # per image: (draw kept, check verdict) as journalled, so the manifest names what was drawn
    draws: dict[int, list[str]] = {i: (journal.extra.get(i) or ["0", ""]) for i in done}
    redrawn = 0
    writers.write_meta(req.out, meta)
    done_mask = np.zeros(req.n, bool)
    done_mask[list(done)] = True
    samples: dict[str, list[np.ndarray]] = {c: [] for c in req.chars}
    pending = writers.Pending()
    progress(resumed, req.n)
    generated = 0
    in_flight = max(2, 2 * req.workers)

    def collect(block_until: int | None = None) -> None:
        nonlocal generated
        for items in pending.ready(block_until):
            journal.append(items, draws)
            for i, h in items:
                done[i] = h
            generated += len(items)
            progress(resumed + generated, req.n)

    try:
        for batch in synth.batches(skip=lambda ids: bool(done_mask[ids].all())):
            keep = ~done_mask[batch.ids]
            for i, attempt, verdict, new in zip(batch.ids, batch.attempts, batch.checks, keep):
                if new:
                    draws[int(i)] = [str(attempt), verdict]
                    redrawn += attempt > 0
            hashes = batch_hashes(batch.images)
            info = [{"label": lab, "style": st, "font": fo, "seed": int(se), "check": ch}
                    for lab, st, fo, se, ch in zip(batch.labels, batch.styles, batch.fonts, batch.seeds, batch.checks)
                    ] if req.format == "shards" else []
            pending.add(writer.submit(batch.ids, batch.images, batch.labels, hashes, info, keep))
            for k, lab in enumerate(batch.labels):
                if len(samples[lab]) < SAMPLES_KEPT:
                    samples[lab].append(batch.images[k])
            collect()
            collect(block_until=in_flight)
        collect(block_until=0)
        writer.close()
    except BaseException:
        writer.abort()
        try:  # keep what finished, so --resume redoes as little as possible
            collect(block_until=0)
        except BaseException:
            pass
        journal.close()
        try:
            writers.write_meta(req.out, {**meta, "status": "interrupted", "done": len(done)})
        except PlategenError:
            pass
        raise
    missing = req.n - len(done)
    if missing:
        raise PlategenError(f"{req.out}: internal error, {missing} image(s) were not written; run with --resume")
    if all(done.values()):
        duplicates = req.n - len(set(done.values()))
    else:  # resumed a complete run
        duplicates = int(previous.get("duplicates", 0))
    if complete:
        manifest = req.out / writers.MANIFEST
        check_failed = previous.get("check_failed")
    else:
        attempts = np.array([int(draws[i][0]) for i in range(req.n)], np.int64)
        rows = ((writer.path_of(i, label), label, style, font, seed, draws[i][1])
                for i, label, style, font, seed in synth.rows(attempts))
        manifest = writers.write_manifest(req.out, rows)
        check_failed = sum(d[1] == "fail" for d in draws.values()) if params["label_check"] else None
    if resumed:
        _top_up_samples(samples, req.out, req.format, writer, label_of)
    diversity, closest = within_class_diversity(samples)
    preview = None
    if req.preview is not None:
        headers = [render_glyph(c, fonts_for(c, fonts)[0], ckpt.config.glyph_size) for c in req.chars]
        preview = writers.write_preview(req.preview, [s.image for s in styles], req.chars, headers, samples)
    seconds = time.perf_counter() - start
    meta.update(status="complete", duplicates=duplicates, check_failed=check_failed,
                within_class_diversity=round(diversity, 3), closest_pair=round(closest, 3), seconds=round(seconds, 3),
                images_per_s=round(generated / seconds, 1) if seconds else None)
    writers.write_meta(req.out, meta)
    journal.close(remove=True)
    model_rate = generated / synth.model_seconds if synth.model_seconds else 0.0
    shards = sorted(req.out.glob("shard-*.tar")) if req.format == "shards" else []
    return SynthReport(req.out, manifest, req.out / writers.META, preview, req.format, req.n,
                       dict(zip(req.chars, synth.plan.counts)), generated, resumed, duplicates, diversity, closest,
                       check_failed, redrawn, seconds, generated / seconds if seconds else 0.0, model_rate, device,
                       shards)


def _top_up_samples(samples: dict[str, list[np.ndarray]], out: Path, fmt: str, writer,
                    label_of: Sequence[str]) -> None:
    """After a resume, fill the per-label samples from what is on disk."""
    from plategen.writers import decode_png, read_image_at, read_shards

    def full() -> bool:
        return all(len(s) >= SAMPLES_KEPT for s in samples.values())

    if fmt == "shards":
        for sample in read_shards(out):
            if len(samples[sample["label"]]) < SAMPLES_KEPT:
                samples[sample["label"]].append(decode_png(sample["png"]))
            if full():
                return
        return
    for i, label in enumerate(label_of):
        if len(samples[label]) < SAMPLES_KEPT:
            samples[label].append(read_image_at(out, writer.path_of(i, label)))
            if full():
                return


def json_ready(value):
    """Tuples -> lists, recursively, so values compare equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
