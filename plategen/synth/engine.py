"""The engine: glyph batch + style codes -> generator -> label check -> noise -> uint8 images.

Images are generated in fixed chunks of the plan, so the output is the same bytes whatever
the timing of the writer threads, and an interrupted run can be finished by generating only
the chunks it lacks. The retries of image i depend only on the plan and the model. Where draws
repeat (whole plates), a `DrawMemo` generates each distinct one once.

Speed: the generator is folded (BN into conv), and its first decoder conv is split into a
content half and a style half (a conv of a concatenation is the sum of two convs), which are
computed once per glyph variant and once per style entry. Per image only the rest of the
decoder runs. The split is checked numerically against `Generator.decode` and skipped
if the model does not have that shape.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plategen.checkpoint import SHIPPED_CHECKPOINTS, LoadedCheckpoint, checkpoint_path, load_checkpoint, require_finite
from plategen.charset import parse_charset
from plategen.device import resolve_device, usable_cores
from plategen.errors import PlategenError
from plategen.glyphs import Font, narrowest, shipped_fonts
from plategen.model import fold_batchnorm
from plategen.plates import too_small
from plategen.sizes import MAX_BATCH_SIZE
from plategen.synth.check import CPU_CHUNK, LabelCheck, SplitCheck
from plategen.synth.inputs import Style, check_drawable
from plategen.synth.plan import (CHECK_ATTEMPTS, CHECK_SURE, MAX_IMAGES, Diversity, GlyphPool, Plan, StylePool,
                                 build_glyph_pool, build_style_pool, label_counts, make_plan, style_entries_needed)
from plategen.synth.recolour import match_colours, style_palette


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
    checks: list[str]  # "pass" / "fail": read as the label or not; "unchecked": no class for it; "" no check

    @classmethod
    def concat(cls, parts: Sequence["Batch"]) -> "Batch":
        """One batch of consecutive parts."""
        columns = [[getattr(part, f.name) for part in parts] for f in fields(cls)]
        return cls(*(np.concatenate(c) if isinstance(c[0], np.ndarray) else sum(c, []) for c in columns))


def _fold(generator: nn.Module) -> nn.Module:
    try:
        return fold_batchnorm(generator)
    except Exception:  # an architecture fold_batchnorm does not know: run it as it is
        return generator


class Engine:
    """The generator prepared for inference over fixed glyph and style pools."""

    def __init__(self, generator: nn.Module, glyphs: np.ndarray, styles: StylePool, device: torch.device,
                 batch_size: int, channels_last: bool = True, recolour: bool = True):
        self.device = device
        self.palette = None
        if recolour:
            palette = style_palette(styles)
            self.palette = (torch.from_numpy(palette.background).to(device), torch.from_numpy(palette.ink).to(device))
        model = _fold(generator.to("cpu").eval()).to(device).eval()
        self.model = model
        self.channels_last = channels_last and device.type == "cpu"
        self.chunk = CPU_CHUNK if device.type == "cpu" else 0
        self.size = generator.config.glyph_size
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
            # rows are kept channels-last ([N,S,S,C], contiguous): a gathered batch of them is a plain
            # copy of rows, and permuted to [B,C,S,S] it is already the channels_last tensor the tail
            # convs take, with no layout conversion per batch
            if self.channels_last:
                self.tail = self.tail.to(memory_format=torch.channels_last)
            self.split = content.permute(0, 2, 3, 1).contiguous(), style.permute(0, 2, 3, 1).contiguous()
            # the split must reproduce decode() before it is trusted
            gi = torch.arange(min(8, len(self.glyphs)), device=self.device)
            si = torch.arange(len(gi), device=self.device) % len(self.codes)
            ref = m.decode(self.glyphs[gi], self.codes[si])
            if (ref * 255 - self._tail(gi, si)).abs().max().item() > 255e-4:
                return None
            return self.split
        except (AttributeError, TypeError, IndexError, RuntimeError):
            return None

    def _tail(self, gi: Tensor, si: Tensor) -> Tensor:
        """The split decoder for glyph rows `gi` and style rows `si`: [B,3,S,S] in [0,255]."""
        content, style = self.split
        h = content.index_select(0, gi)
        h += style.index_select(0, si)
        h = F.leaky_relu_(h, self.leak).permute(0, 3, 1, 2)
        return torch.sigmoid_(self.tail(h if self.channels_last else h.contiguous())).mul_(255)

    @torch.inference_mode()
    def run(self, glyph: np.ndarray, style: np.ndarray) -> Tensor:
        """[B,3,S,S] float in [0,255] for glyph entries and style entries, in the style entries'
        paper and ink colours (`recolour`)."""
        gi = torch.from_numpy(glyph).to(self.device)
        si = torch.from_numpy(style).to(self.device)
        out = self._draw(gi, si)
        if self.palette is None:
            return out
        background, ink = self.palette
        return match_colours(out, self.glyphs.index_select(0, gi), background.index_select(0, si),
                             ink.index_select(0, si))

    def _draw(self, gi: Tensor, si: Tensor) -> Tensor:
        """The generator's own images [B,3,S,S] in [0,255]."""
        if self.split is None:
            return self.model.decode(self.glyphs.index_select(0, gi), self.codes.index_select(0, si)).mul_(255)
        if not self.chunk or len(gi) <= self.chunk:
            return self._tail(gi, si)
        # on CPU a few dozen rows at a time: the activations stay in the core's cache, which is ~2x
        # faster than whole batches and gives the same bytes (every row is computed on its own)
        out = torch.empty((len(gi), 3, self.size, self.size), device=self.device,
                          memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        for a in range(0, len(gi), self.chunk):
            out[a:a + self.chunk] = self._tail(gi[a:a + self.chunk], si[a:a + self.chunk])
        return out


MEMO_ROWS = 4096  # images a DrawMemo keeps (12 KiB each at 32x32: 48 MiB)


class DrawMemo:
    """Draws that repeat, generated and checked once.

    A whole-plate run draws its characters from a few glyph variants per character (one per
    font) and a few style entries per style plate, so its draws repeat: 1,000 plates of one
    CCPD style take 14,000 draws of at most 704 distinct images. Each block (one style entry,
    every glyph variant of one label) is generated and checked on its own, as one batch, and
    kept (up to `rows` images, the least recently used go first). A block on its own, not the
    chunk that first needed it, fixes its bytes (small batches round differently, ~1e-4), so
    they do not depend on the chunking, the threads, an interruption or a torchrun rank.
    """

    def __init__(self, engine: Engine, check: LabelCheck | SplitCheck | None, glyphs: GlyphPool, rows: int = MEMO_ROWS,
                 routes: dict[int, Engine] | None = None):
        """`routes`: labels that another model's engine draws (`chinese_routes`)."""
        self.engine, self.check, self.routes = engine, check, routes or {}
        self.offset, self.size = np.asarray(glyphs.offset, np.int64), np.asarray(glyphs.size, np.int64)
        self.rows, self.limit = 0, rows
        self.blocks: OrderedDict[tuple[int, int], tuple[Tensor, np.ndarray | None, np.ndarray | None]] = OrderedDict()
        self.lock = threading.Lock()

    def draw(self, glyph: np.ndarray, style: np.ndarray, labels: np.ndarray
             ) -> tuple[Tensor, np.ndarray | None, np.ndarray | None]:
        """As `Synthesizer._draw`: images [B,3,S,S] (0-255), and with the check, (read as the label, probability)."""
        keys = list(zip(style.tolist(), labels.tolist()))
        blocks = {key: self._block(*key) for key in dict.fromkeys(keys)}
        variants = (glyph - self.offset[labels]).tolist()
        images = torch.stack([blocks[key][0][v] for key, v in zip(keys, variants)])
        if self.check is None:
            return images, None, None
        passed = np.array([blocks[key][1][v] for key, v in zip(keys, variants)])
        prob = np.array([blocks[key][2][v] for key, v in zip(keys, variants)])
        return images, passed, prob

    def _block(self, style: int, label: int) -> tuple[Tensor, np.ndarray | None, np.ndarray | None]:
        with self.lock:
            block = self.blocks.get((style, label))
            if block is not None:
                self.blocks.move_to_end((style, label))
                return block
        # outside the lock: two threads may make the same block at once, with the same bytes
        glyph = np.arange(self.offset[label], self.offset[label] + self.size[label])
        images = run_routed(self.engine, self.routes, glyph, np.full(len(glyph), style), np.full(len(glyph), label))
        passed = prob = None
        if self.check is not None:
            passed, prob = self.check.read(images, np.full(len(glyph), label))
        block = images, passed, prob
        with self.lock:
            if (style, label) not in self.blocks:
                self.blocks[(style, label)] = block
                self.rows += len(glyph)
            while self.rows > self.limit:
                _, dropped = self.blocks.popitem(last=False)
                self.rows -= len(dropped[0])
        return block


# ---------------------------------------------------------------- generation


def generate_threads(device: str | torch.device) -> int:
    """Threads that split a batch on CPU: 2 when torch runs one thread (synth's default, which
    leaves a core to the writers; the generator would otherwise wait on them), else 1."""

    if torch.device(device).type != "cpu" or torch.get_num_threads() != 1:
        return 1
    return min(2, usable_cores())


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
    check: LabelCheck | SplitCheck | None = None
    threads: int = 1  # CPU threads that split a batch between them (see `generate`)
    memo: DrawMemo | None = None  # repeated draws made once (whole plates); None: every draw is generated
    routes: dict[int, Engine] = field(default_factory=dict)  # labels another model draws (`chinese_routes`)
    model_seconds: float = 0.0
    setup_seconds: float = 0.0
    _bank: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, generator: nn.Module, styles: Sequence[Style], chars: Sequence[str], n: int, seed: int = 0,
              *, batch_size: int = 256, device: str | torch.device = "cpu", diversity: Diversity = Diversity(),
              fonts: Sequence[Font] | None = None, charset: Sequence[str] | None = None,
              discriminator: nn.Module | None = None, chinese: LoadedCheckpoint | None = None) -> "Synthesizer":
        """`discriminator` (with `charset`, the checkpoint's classes) turns on the label check; `chinese` draws
        (and reads) the Chinese characters (`chinese_routes`)."""
        start = time.perf_counter()
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise PlategenError("--chars: a character is listed twice")
        fonts = list(fonts) if fonts is not None else shipped_fonts()
        check_drawable(chars, fonts, charset)
        require_finite("the checkpoint", generator, discriminator)
        if batch_size < 1:  # the largest is the caller's to bound: a run begun with a larger one is resumed with it
            raise PlategenError(f"--batch-size {batch_size}: must be at least 1")
        counts = label_counts(n, len(chars))
        config = generator.config
        glyphs = build_glyph_pool(chars, counts, fonts, seed, diversity, config.glyph_size,
                                  glyph_widths(config, chinese, chars))
        pool = build_style_pool(list(styles), n, seed, diversity, tuple(config.style_size),
                                entries=max(diversity.style_entries,
                                            style_entries_needed(counts, glyphs, CHECK_ATTEMPTS)))
        plan = make_plan(chars, counts, glyphs, len(pool.names), seed)
        engine = Engine(generator, glyphs.glyphs, pool, torch.device(device), batch_size,
                        recolour=diversity.match_colours)
        check = None
        if discriminator is not None and charset is not None:
            check = LabelCheck(discriminator, charset, chars, torch.device(device))
        routes, check = chinese_routes(chinese, chars, glyphs, pool, torch.device(device), batch_size,
                                       diversity.match_colours, check)
        synth = cls(chars, n, seed, list(styles), plan, glyphs, pool, engine, batch_size, diversity, check,
                    generate_threads(device), routes=routes,
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

    def content_glyphs(self, batch: Batch) -> np.ndarray:
        """[B,S,S] uint8: the content glyph each image of `batch` was drawn from (its kept draw's)."""
        return self.glyphs.glyphs[self.plan.glyph[batch.attempts, batch.ids]]

    def generate_batch(self, b: int) -> Batch:
        return self.generate(self.batch_ids(b))

    def generate(self, ids: np.ndarray) -> Batch:
        """Images `ids` of the plan as one generator batch (whole plates take their characters together).

        With `threads` > 1 (CPU, one torch thread) the ids are split between that many threads:
        the same bytes, as every image's draws, check and retries depend on that image alone and
        the engine and the check compute each row on its own.
        """
        if self.threads < 2 or len(ids) < 2 * CPU_CHUNK:
            return self._generate(ids)
        start = time.perf_counter()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="plategen-generate") as pool:
            parts = list(pool.map(self._generate, np.array_split(ids, self.threads), [False] * self.threads))
        self.model_seconds += time.perf_counter() - start
        return Batch.concat(parts)

    @torch.inference_mode()
    def _generate(self, ids: np.ndarray, timed: bool = True) -> Batch:
        labels = self.plan.label[ids]
        attempts = np.zeros(len(ids), np.int64)
        start = time.perf_counter()
        out, passed, score = self._draw(ids, attempts)
        checks = [""] * len(ids)
        if self.check is not None:
            for t in range(1, CHECK_ATTEMPTS):
                redo = np.flatnonzero(~passed | (score < CHECK_SURE))
                if not len(redo):
                    break
                again, ok, prob = self._draw(ids[redo], np.full(len(redo), t))
                # read as its label beats read as another; then the surer read
                better = (ok & ~passed[redo]) | ((ok == passed[redo]) & (prob > score[redo]))
                take = redo[better]
                out[torch.from_numpy(take).to(out.device)] = again[torch.from_numpy(better).to(out.device)]
                attempts[take], passed[take], score[take] = t, ok[better], prob[better]
            checks = self.check.verdicts(passed, labels)
        images = out.permute(0, 2, 3, 1).float().cpu().numpy()
        if timed:
            self.model_seconds += time.perf_counter() - start
        images = _add_noise(images, self.plan.seed[ids], self._bank)
        glyph, style = self.entries(ids, attempts)
        return Batch(ids, images, [self.chars[i] for i in labels], self.style_pool.primary[style],
                     [self.style_pool.names[i] for i in style], [self.glyphs.fonts[i] for i in glyph],
                     self.plan.seed[ids], attempts, checks)

    def _draw(self, ids: np.ndarray, attempts: np.ndarray) -> tuple[Tensor, np.ndarray | None, np.ndarray | None]:
        """Draw `attempts` of images `ids`: [B,3,S,S] in 0-255, and with the label check, whether
        each is read as its label and that probability (else None, None)."""
        glyph, style = self.entries(ids, attempts)
        labels = self.plan.label[ids]
        if self.memo is not None:
            return self.memo.draw(glyph, style, labels)
        out = run_routed(self.engine, self.routes, glyph, style, labels)
        if self.check is None:
            return out, None, None
        return (out, *self.check.read(out, labels))

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


def run_routed(engine: Engine, routes: dict[int, Engine], glyph: np.ndarray, style: np.ndarray,
               labels: np.ndarray) -> Tensor:
    """Draws whose labels may belong to another engine (`routes`), each made by its own, in order."""
    owners = [routes.get(label, engine) for label in labels.tolist()]
    if all(owner is engine for owner in owners):
        return engine.run(glyph, style)
    out = None
    for owner in {id(o): o for o in owners}.values():
        rows = np.flatnonzero([o is owner for o in owners])
        part = owner.run(glyph[rows], style[rows])
        out = part.new_empty((len(labels), *part.shape[1:])) if out is None else out
        out[torch.from_numpy(rows).to(part.device)] = part
    return out


def glyph_widths(config, chinese: LoadedCheckpoint | None, chars: Sequence[str], aspects: np.ndarray | None = None
                 ) -> list[int | None] | None:
    """Per label, the `glyphs.ASPECTS` step its content glyphs are narrowed to: a model trained on narrowed glyphs
    (`SAAEConfig.glyph_aspect`) gets them as narrow as the box each is drawn into (`aspects`, width / height; None:
    single characters, as its training crops' median box), a model trained on glyphs as drawn gets them so (None).
    The model of a label is `config`'s, or `chinese`'s for the labels it draws (`routed_mask`). None: no label narrowed."""
    routed = routed_mask(chinese, chars)
    models = [chinese.config if other else config for other in routed]
    fits = np.array([np.nan if m.glyph_aspect is None else m.glyph_aspect for m in models], np.float64)
    if np.isnan(fits).all():
        return None
    steps = narrowest(fits if aspects is None else aspects)
    return [None if np.isnan(fit) else int(step) for fit, step in zip(fits, steps)]


def routed_chars(synth: "Synthesizer") -> list[str]:
    """The characters another model draws in this run (`chinese_routes`), in the run's order: those of the
    alphabet the plan draws at least once."""
    return list(dict.fromkeys(synth.chars[i] for i in sorted(synth.routes) if synth.plan.counts[i]))


def if_drawing(chinese: LoadedCheckpoint | None, chars: Sequence[str]) -> LoadedCheckpoint | None:
    """`chinese` when it draws one of `chars` (`routed_mask`), else None: then it is neither used nor recorded."""
    return chinese if routed_mask(chinese, chars).any() else None


def chinese_model(checkpoint: Path | str | None) -> LoadedCheckpoint | None:
    """The model that draws the Chinese characters of a run without `--checkpoint`: the shipped `allchars`.
    It has a class for every province and 警学挂港澳使领 and draws most of them legibly, where the default
    knows 8 provinces and draws them as blobs; the default draws Latin characters better
    (checkpoints/README.md). A `--checkpoint` given, `default` too, draws everything itself (None)."""
    path = SHIPPED_CHECKPOINTS["allchars"]
    return load_checkpoint(path, device="cpu") if checkpoint is None and path.is_file() else None


def with_chinese(charset: Sequence[str] | None, chinese: LoadedCheckpoint | None) -> list[str] | None:
    """A run's classes: the checkpoint's, and the Chinese characters of the model that draws those."""
    if chinese is None:
        return charset
    return [*(charset or []), *(c for c in chinese.meta["charset"] if not c.isascii() and c not in (charset or []))]


def routed_mask(chinese: LoadedCheckpoint | None, chars: Sequence[str]) -> np.ndarray:
    """[len(chars)] bool: the characters `chinese` draws: the non-Latin ones it has a class for (a province,
    警; not a Ñ it never saw either)."""
    return np.array([chinese is not None and not c.isascii() and c in chinese.meta["charset"] for c in chars], bool)


def chinese_routes(chinese: LoadedCheckpoint | None, chars: Sequence[str], glyphs: GlyphPool, styles: StylePool,
                   device: torch.device, batch_size: int, recolour: bool, check: LabelCheck | None
                   ) -> tuple[dict[int, Engine], LabelCheck | SplitCheck | None]:
    """The labels `chinese` draws (`routed_mask`) with its engine over the same glyph and style pools, and the
    label check with its discriminator reading them. None or no such label: no routes, `check` as it was."""
    routed = routed_mask(chinese, chars)
    if not routed.any():
        return {}, check
    engine = Engine(chinese.generator, glyphs.glyphs, styles, device, batch_size, recolour=recolour)
    if check is not None and chinese.discriminator is not None:
        check = SplitCheck(check, LabelCheck(chinese.discriminator, chinese.meta["charset"], chars, device), routed)
    return dict.fromkeys(np.flatnonzero(routed).tolist(), engine), check


def generate(generator, style_images: Sequence[np.ndarray | Style], chars: Sequence[str], n: int, seed: int = 0,
             *, batch_size: int = 256, device: str = "cpu", diversity: Diversity = Diversity(),
             check: bool = True, chinese: LoadedCheckpoint | None = None) -> Iterator[Batch]:
    """The library entry point: n labelled images in batches, nothing written. Its inputs are checked when it is
    called (one PlategenError each), the images drawn as the batches are taken.

    `generator` is a `Generator`, a `LoadedCheckpoint`, or a checkpoint path. Style images are
    HxWx3 uint8 RGB whole plates (or `Style`s); `chars` a list of characters or a spec as --chars
    takes it ('0-9A-Z'). Each `Batch` holds `images` [B,S,S,3] uint8,
    `labels`, `style_index`, `fonts`, `seeds`, `attempts`, `checks`. Same inputs and seed, same
    bytes on CPU. The label check runs when `check` and the checkpoint holds a discriminator.
    `chinese` draws the Chinese characters, as synth does without --checkpoint (`chinese_model(None)`).
    """
    chars = api_chars(chars)
    for name, value, low, high in (("n", n, 1, MAX_IMAGES[False]), ("seed", seed, 0, 2 ** 63 - 1),
                                   ("batch_size", batch_size, 1, MAX_BATCH_SIZE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise PlategenError(f"{name} {value!r}: need a whole number from {low:,} to {high:,}")
    n, seed, batch_size = int(n), int(seed), int(batch_size)  # np.int8(5) overflowed in the plan's arithmetic
    if chinese is not None and not isinstance(chinese, LoadedCheckpoint):  # "allchars" raised an AttributeError
        raise PlategenError(f"chinese {chinese!r:.40}: need a loaded checkpoint (chinese_model(None)) or None")
    if not isinstance(diversity, Diversity):
        raise PlategenError(f"diversity {diversity!r}: need a Diversity")
    device = str(resolve_device(device))
    if style_images is None or isinstance(style_images, (str, bytes, Path)) or (
            isinstance(style_images, np.ndarray) and style_images.ndim != 4):
        raise PlategenError("style_images: need a list of HxWx3 uint8 plate images (or Styles)")
    # a Style's image gets the same checks (Style("x", None, "h") raised an OpenCV error), and keeps its name
    styles = [Style(s.name, api_style(i, s.image).image, s.sha256) if isinstance(s, Style) else api_style(i, s)
              for i, s in enumerate(style_images)]
    if not styles:
        raise PlategenError("style_images: give at least one plate image")
    generator, charset, discriminator = _model_parts(generator, device)
    synth = Synthesizer.build(generator, styles, chars, n, seed, batch_size=batch_size, device=device,
                              diversity=diversity, charset=charset, discriminator=discriminator if check else None,
                              chinese=chinese)
    return synth.batches()


def api_chars(chars: str | Sequence[str]) -> list[str]:
    """The characters given to `generate`: a spec as --chars takes it ('0-9A-Z': a str was read as the list '0', '-',
    '9'), or a list of single characters, taken as they are (a data set's classes.txt may name any)."""
    if isinstance(chars, str):
        return parse_charset(chars)
    if isinstance(chars, (set, frozenset, dict)) or not isinstance(chars, Iterable):
        # a set's order changes from process to process (hash seeds), and with it which label each index is
        raise PlategenError(f"chars: {type(chars).__name__} {chars!r:.60}: give a list of characters (in the order the "
                            "labels index) or a spec such as '0-9A-Z'")
    chars = list(chars)
    bad = next((c for c in chars if not (isinstance(c, str) and len(c) == 1)), None)
    if bad is not None:
        raise PlategenError(f"chars: {bad!r} is not one character; give a list of characters or a spec such as '0-9A-Z'")
    blank = next((c for c in chars if c.isspace() or not c.isprintable()), None)
    if blank is not None:  # it failed later as "glyph has no ink", naming no character
        raise PlategenError(f"chars: {blank!r} is whitespace or a control character, which has no glyph to draw")
    return chars


def api_style(index: int, image) -> Style:
    """A style image given to `generate`: an HxWx3 uint8 RGB array (float images in 0-1 drew near-black characters, a
    grey 2-D array raised a broadcasting error, a 0x0 one an OpenCV error). Unlike synth's style files, a low or flat
    image is the caller's to give (the benchmark draws from every training plate it has)."""
    name = f"style_images[{index}]"
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PlategenError(f"{name}: need an HxWx3 uint8 RGB array (0-255), got {image.dtype} of shape {image.shape}")
    if problem := too_small(image):
        raise PlategenError(f"{name}: {problem}")
    image = np.ascontiguousarray(image)
    return Style(name, image, hashlib.sha256(image.tobytes()).hexdigest())


def generate_arrays(generator, style_images: Sequence[np.ndarray], chars: Sequence[str], n: int, seed: int = 0,
                    **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """`generate` collected: images [n,S,S,3] uint8 and label indices [n] into `chars` (a spec: its characters)."""
    chars = api_chars(chars)
    index = {c: i for i, c in enumerate(chars)}
    images, labels = [], []
    for batch in generate(generator, style_images, chars, n, seed, **kwargs):
        images.append(batch.images)
        labels.extend(index[c] for c in batch.labels)
    return np.concatenate(images), np.asarray(labels, np.int64)


def _model_parts(generator, device: str = "cpu"):
    """(Generator, charset or None, Discriminator or None) from a Generator, a LoadedCheckpoint, a path or a shipped
    model's name (default, allchars)."""
    if isinstance(generator, (str, Path)):
        generator = load_checkpoint(checkpoint_path(generator), device=device)
    if hasattr(generator, "generator") and hasattr(generator, "meta"):
        return generator.generator, generator.meta.get("charset"), generator.discriminator
    if not (isinstance(generator, nn.Module) and hasattr(generator, "config")):
        raise PlategenError(f"generator {type(generator).__name__}: need a checkpoint path or name, a LoadedCheckpoint "
                            "or a Generator")
    return generator, None, None


