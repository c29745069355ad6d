"""`plategen synth --plates`: whole plates in the style of real ones, with exact text and boxes.

One plate, in order: a style plate with its layout (`load_style_plates`: annotated boxes, or
segmentation of its text) -> the plan (`plan_plates`: which style, which text and which seed
each plate gets, fixed by the run seed) -> its characters drawn by the SAAE engine in that
plate's style, with the label check (`character_synth`: a `Synthesizer` over the plan's
characters, so retries, folding and timing are the character path's own) -> composed on the
style plate with its own characters erased (`compose_plates`). `run_plates` writes them with
the character path's lock, journal and resume rules into a plategen data folder.

Plates are generated in chunks of `batch_size` plates. A plate run's character draws repeat (a
few glyph variants per character, a few style entries per style plate), so each distinct draw is
generated and checked once, on its own (`engine.DrawMemo`): the bytes do not depend on the
chunking or on which chunks an interrupted run had finished, and 1,000 CCPD plates cost a few
hundred generator images instead of 14,000. A chunk is composed in a thread of its own while the
next one is generated.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from plategen import __version__
from plategen.atomic import atomic_save_png
from plategen.charset import label_classes
from plategen.checkpoint import LoadedCheckpoint
from plategen.distributed import World
from plategen.synth.compose import Coverages, dark_ink, erase_characters, erases_large, ink_colour, place_on_plates
from plategen.synth.designs import Design, design_named, draw_dot, repaint
from plategen.errors import PlategenError, require_once, require_regular_file, require_writable_name
from plategen.synth.exports import FinishedPlate, write_lprnet, write_paddleocr, write_plate_index
from plategen.glyphs import ASPECTS, Font, fonts_for
from plategen.layout import (PlateLayout, compact_pattern, draw_texts, kind_of, layout_of, parse_pattern, pattern_rows,
                             read_as_missing, read_text_lines, read_texts)
from plategen.plates import (IMAGE_SUFFIXES, Box, Plate, Problem, detect_format, load_plate, load_plates, name_problem,
                             read_image, read_image_and_bytes, text_of_name)
from plategen.detect import segment_with_text
from plategen.segment import privacy_masks
from plategen.synth import plate_writers, writers
from plategen.synth.check import LabelCheck, chars_with_real_crops
from plategen.synth.engine import (Batch, DrawMemo, Engine, Synthesizer, chinese_routes, generate_threads, glyph_widths,
                                   routed_chars)
from plategen.synth.inputs import (WEIGH_DOUBLE, LowStylePlate, Style, require_contrast, require_image_name,
                                   require_plate_size)
from plategen.synth.plan import CHECK_ATTEMPTS, Diversity, Plan, build_glyph_pool, build_style_pool, image_seeds

DEFAULT_PLATE_BATCH = 32  # plates per generator batch
CHARS_PER_PLATE_BATCH = 8  # the engine draws this many characters per plate of a batch at a time
PREVIEW_STYLES = 8  # style plates shown on the preview sheet
PREVIEW_PER_STYLE = 4  # generated plates beside each
PREVIEW_HEIGHT = 64  # px of each plate on the sheet
EXPORTS = ("lprnet", "paddleocr")
# characters are composed as soft coverage, so noise is added to the composed plate (--noise), not to
# them; styles are not mixed, as a plate's characters must share that plate's style
PLATE_DIVERSITY = Diversity(noise=0.0, mix=0.0)


@dataclass(frozen=True)
class StylePlate:
    name: str  # the image path
    image: np.ndarray  # HxWx3 uint8 RGB
    sha256: str
    layout: PlateLayout  # its own characters' slots
    text: str  # its own text, in the layout's reading order


@dataclass
class PlatePlan:
    style: np.ndarray  # [n] index into the style plates
    layouts: list[PlateLayout]  # per style plate: the slots new texts fill (its own, or --pattern's)
    texts: list[str]  # [n]
    seed: np.ndarray  # [n] uint64: the plate's own seed; its characters' seeds follow from it
    serials_skip: str | None = None  # letters of the alphabet that Chinese layouts skip (`serials_skip`)

    @property
    def n(self) -> int:
        return len(self.texts)

    def labels(self, chars: Sequence[str]) -> np.ndarray:
        """[characters] int64: every plate's characters in plate order, as indices into `chars`."""
        index = {c: i for i, c in enumerate(chars)}
        return np.fromiter((index[c] for text in self.texts for c in text), np.int64,
                           count=sum(len(text) for text in self.texts))

    def char_starts(self) -> np.ndarray:
        """[n + 1] first character id of each plate in the flat character plan."""
        return np.concatenate([[0], np.cumsum([len(t) for t in self.texts])]).astype(np.int64)


@dataclass
class PlateReport:
    out: Path
    manifest: Path
    meta: Path
    preview: Path | None
    format: str
    n: int
    styles: int  # style plates used
    skipped: list[Problem]  # style plates whose text could not be segmented
    generated: int  # plates made by this invocation
    resumed: int  # plates already there from an interrupted run
    characters: int
    check_failed: int | None  # characters no draw of which the discriminator read as their label
    unchecked: int  # characters the checkpoint has no class of (check=unchecked)
    seconds: float
    plates_per_s: float
    device: str
    exports: list[Path] = field(default_factory=list)
    per_rank: list[int] = field(default_factory=list)  # plates each torchrun rank made (empty: one process)
    chinese: list[str] = field(default_factory=list)  # characters drawn by the Chinese model (`chinese_model`)
    chinese_checkpoint: Path | None = None


# ---------------------------------------------------------------- style plates


def load_style_plates(specs: Sequence[Path | str], allow_outside: bool = False
                      ) -> tuple[list[StylePlate], list[Problem]]:
    """Style plates with layouts, and the plates left out: bad records of a folder, texts that could not be
    segmented (the report lists them).

    A folder is imported with `load_plates` (YOLO, file names or CSV); an image file takes its
    annotation from the data folder it sits in (``<folder>/images/x.jpg`` or ``<folder>/x.jpg``),
    or its text from its file name (e.g. ``皖A0V262.jpg``; no lower-case letters). A bare image
    with neither is refused: there is nothing to say where its characters are. `allow_outside`: follow CSV
    image paths that leave their folder (`load_plates`).
    """
    if not specs:
        raise PlategenError("--style: give at least one plate image or data folder")
    plates: list[Plate] = []
    given: list[tuple[int, Path]] = []
    skipped: list[Problem] = []
    for argument, spec in enumerate(map(Path, specs)):
        if spec.is_dir():
            result = load_plates(spec, allow_outside=allow_outside)
            plates.extend(result.plates)
            given.extend([(argument, spec)] * len(result.plates))
            skipped.extend(result.problems + result.skipped)
        elif spec.is_file():
            require_image_name(spec)
            plate, problem = _plate_of_file(spec, allow_outside)
            plates.extend([plate] if plate else [])
            given.extend([(argument, spec)] if plate else [])
            skipped.extend([problem] if problem else [])
        elif spec.exists():
            require_regular_file(spec, "image")
        else:
            raise PlategenError(f"{spec}: no such style image or folder")
    require_once([plate.image_path for plate in plates], "--style", WEIGH_DOUBLE, given)
    for plate in plates:
        require_writable_name(plate.image_path)
    styles = []
    for plate, (_, spec) in zip(plates, given):
        if spec.is_dir():  # a folder's plates too low to draw from are left out, as its unreadable ones are
            kept, low = style_plates([plate])
            styles += kept
            skipped += low
        else:
            styles.append(style_plate(plate))
    if not styles:
        reasons = "; ".join(str(p) for p in skipped[:3])
        raise PlategenError(f"--style: no usable style plate ({reasons})")
    return styles, skipped


def style_plates(plates: Sequence[Plate]) -> tuple[list[StylePlate], list[Problem]]:
    """The plates as style plates, but those too low to draw from (`inputs.MIN_STYLE_HEIGHT`), which are left out."""
    styles, low = [], []
    for plate in plates:
        try:
            styles.append(style_plate(plate))
        except LowStylePlate as exc:
            low.append(Problem(plate.image_path, str(exc).removeprefix(f"{plate.image_path}: ")))
    return styles, low


def style_plate(plate: Plate) -> StylePlate:
    """An imported plate (with one box per character) as a style plate with its layout."""
    image = read_image(plate.image_path)
    require_plate_size(plate.image_path, image)
    require_contrast(plate.image_path, image)
    layout, text = layout_of(plate, (image.shape[1], image.shape[0]))
    return StylePlate(str(plate.image_path), image, plate.sha256, layout, text)


def _plate_of_file(path: Path, allow_outside: bool = False) -> tuple[Plate | None, Problem | None]:
    """One image's plate from its data folder's annotation or its file name; or why it is skipped."""
    folder = path.parent.parent if path.parent.name == "images" else path.parent
    labels = folder / "labels"
    try:
        fmt = detect_format(folder)
    except PlategenError:
        if labels.is_symlink() and not labels.exists():  # its boxes are meant: file names would give digit plates
            raise
        fmt = "filename"
    if fmt != "filename":
        result = load_plate(path, fmt, allow_outside)
        if result.plates:
            return result.plates[0], None
        if result.problems or result.skipped:  # e.g. a malformed label file: its reason, not "no boxes"
            return None, (result.problems or result.skipped)[0]
    problem = name_problem(path)
    if problem and fmt != "filename" and path.suffix.lower() not in IMAGE_SUFFIXES:  # "no boxes" misled
        raise PlategenError(f"{path}: data folders annotate only {', '.join(sorted(IMAGE_SUFFIXES))} images, so its "
                            f"label is not read; convert it to one of them, or name it by its plate text")
    if problem:
        raise PlategenError(f"{path}: no character boxes, and the file name is no plate text ({problem}); give "
                            "its data folder (YOLO labels/ + classes.txt, or a CSV image_path,plate_text), or name "
                            "the file by its plate text, e.g. 1234BCD.jpg")
    text = text_of_name(path)
    image, data = read_image_and_bytes(path)  # one read: the hash is of the bytes decoded
    seg = segment_with_text(image, text)
    if seg.boxes is None:
        return None, Problem(path, f"not segmented: {seg.reason}")
    return Plate(path, text, tuple(seg.boxes), "estimated", str(folder), hashlib.sha256(data).hexdigest()), None


# ---------------------------------------------------------------- the plan


def plate_layouts(styles: Sequence[StylePlate], pattern: str | None) -> list[PlateLayout]:
    """The slots each style plate's new plates fill: `pattern` placed on its own layout, or its own."""
    if pattern:
        pattern_rows(pattern)  # a syntax error is the pattern's, not a style plate's
    return [of_style(s, parse_pattern, pattern, s.layout) if pattern else s.layout for s in styles]


def fitting_styles(styles: Sequence[StylePlate], pattern: str | None, named: Sequence[Path | str] = ()
                   ) -> tuple[list[StylePlate], list[Problem]]:
    """The style plates `pattern` fits, and those of folders it does not as problems, left out and listed (one two-row
    plate in a folder of one-row ones refused the whole folder); a plate `named` alone (--style FILE) it does not fit
    is refused, as is a pattern that fits none."""
    if not pattern:
        return list(styles), []
    pattern_rows(pattern)  # a syntax error is the pattern's, not a style plate's
    alone = {Path(p).resolve() for p in named}
    fit, misfits = [], []
    for style in styles:
        try:
            parse_pattern(pattern, style.layout)
        except PlategenError as exc:
            if Path(style.name).resolve() in alone:
                raise PlategenError(f"{exc} (style plate {style.name})") from None
            misfits.append(Problem(Path(style.name), str(exc)))
            continue
        fit.append(style)
    if not fit:
        of_style(styles[0], parse_pattern, pattern, styles[0].layout)  # the first plate's refusal, naming it
    return fit, misfits


def of_style(style: StylePlate, make, *args):
    """`make(*args)` for one style plate, its refusal naming that plate: in a folder of plates, "the style plate has
    2 rows" did not say which of them."""
    try:
        return make(*args)
    except PlategenError as exc:
        raise PlategenError(f"{exc} (style plate {style.name})") from None


CHINESE_SERIALS_SKIP = "IO"  # Chinese plates never print I or O (read as 1 and 0)


def default_chars(drawable: Sequence[str], layouts: Sequence[PlateLayout], drawn: bool = True) -> list[str]:
    """The alphabet of a run without --chars: the `drawable` characters some slot takes, so a Spanish run's
    classes hold no province; when the texts are `drawn` (not a --texts file, whose texts are the user's)
    and every plate is Chinese, letter slots skip I and O, as real ones do. The characters a pattern's
    ``[...]`` slot names come too, drawable or not (the label check marks those unchecked): it asked for them."""
    slots = [slot for layout in layouts for slot in layout.char_slots]
    chinese = all(layout.chinese for layout in layouts)
    skip = set(CHINESE_SERIALS_SKIP) if chinese and drawn else set()
    fitting = [c for c in drawable if any(c in slot.allowed if slot.allowed else kind_of(c) == slot.kind and c not in skip
                                          for slot in slots)]
    return fitting + list(dict.fromkeys(c for slot in slots for c in slot.allowed if c not in fitting))


def require_chinese(styles: Sequence[StylePlate], design: str) -> None:
    """A design repaints a Chinese plate's paper and ink; on another plate it would paint its masks, bands and
    artwork over too, and characters placed there could vanish."""
    for style in styles:
        if not style.layout.chinese:
            raise PlategenError(f"--design {design}: repaints Chinese plates; {style.name} has no province "
                                f"character (its text: {style.text}); give Chinese style plates")


def plan_plates(styles: Sequence[StylePlate], n: int, chars: Sequence[str], seed: int,
                pattern: str | None = None, texts: Path | None = None, chinese_serials: bool = False,
                refuse: Callable[[str], str | None] = read_as_missing) -> PlatePlan:
    """Style, text and seed of every plate, fixed by `seed`.

    Styles take turns in a seeded order (every style plate used n // S or one more times; which get one more is
    seeded too: with n below S, the first n style plates given were the only ones used).
    Texts: from the `texts` file in order, cycled to n; else drawn per style plate, balanced
    per slot kind over that style's plates, none that `refuse` gives a reason against (`layout.draw_texts`).
    `chinese_serials` (the default alphabet): the letter slots of a Chinese layout skip I and O, as real
    ones do, whatever the other style plates take.
    """
    if n < 1:
        raise PlategenError(f"--n {n}: need at least one plate")
    rng = np.random.default_rng([seed, 5])
    # which style plates take the n % S plates over n // S each: a seeded choice (the same turns as before when none)
    takers = np.random.default_rng([seed, 8]).permutation(len(styles)) if n % len(styles) else np.arange(len(styles))
    style = rng.permutation(takers[np.arange(n) % len(styles)]).astype(np.int64)
    layouts = plate_layouts(styles, pattern)
    out = [""] * n
    if texts is not None:
        read_text_lines(texts)  # an unreadable or empty file is the file's fault, not a style plate's
        by_kinds: dict[str, list[str]] = {}
        for i, k in enumerate(style):
            layout = layouts[k]
            if layout.kinds not in by_kinds:  # under --pattern every plate has its layout: a refusal is the pattern's
                by_kinds[layout.kinds] = (read_texts(texts, layout, n, chars) if pattern else
                                          of_style(styles[k], read_texts, texts, layout, n, chars))
            out[i] = by_kinds[layout.kinds][i]
    else:
        for k, layout in enumerate(layouts):
            ids = np.flatnonzero(style == k)
            if len(ids):
                skip = CHINESE_SERIALS_SKIP if chinese_serials and layout.chinese else ""
                for i, text in zip(ids, draw_texts(layout, len(ids), chars, rng, skip, refuse)):
                    out[i] = text
    skipped = serials_skip(layouts, chars) if chinese_serials and texts is None else None
    return PlatePlan(style, layouts, out, image_seeds(seed, np.arange(n)), skipped)


def serials_skip(layouts: Sequence[PlateLayout], chars: Sequence[str]) -> str | None:
    """The letters of `chars` that the Chinese layouts among `layouts` skip when the alphabet is the default
    (`plan_plates` chinese_serials), or None when that changes no text: a resume key, since a run whose
    texts follow other rules must not be finished under them."""
    letters = "".join(c for c in CHINESE_SERIALS_SKIP if c in chars)
    return letters if letters and any(layout.chinese for layout in layouts) else None


def character_synth(generator, discriminator, charset: Sequence[str] | None, styles: Sequence[StylePlate],
                    plan: PlatePlan, chars: Sequence[str], fonts: Sequence[Font], seed: int,
                    device: str, batch_size: int, chinese: LoadedCheckpoint | None = None) -> Synthesizer:
    """A `Synthesizer` whose plan is every plate's characters in plate order, each drawn in its
    plate's style; a label-check retry takes another font and an augmented copy of the same plate.
    Its draws repeat, so they go through a `DrawMemo`. `chinese`: a second model that draws (and, with the
    check, reads) the Chinese characters (`chinese_model`); the same plan, so a plate's bytes depend only
    on which model drew each character."""
    chars = list(chars)
    plate_of = np.repeat(np.arange(plan.n), [len(t) for t in plan.texts])
    config = generator.config
    keys, label, widths = glyph_keys(config, chinese, chars, plan)
    glyphs = build_glyph_pool(keys, [len(fonts)] * len(keys), fonts, seed, PLATE_DIVERSITY, config.glyph_size, widths)
    used, entry = np.unique(plan.style, return_inverse=True)  # every style plate once --n reaches their count
    s = len(used)
    as_styles = [Style(styles[k].name, shape_style(styles[k]), styles[k].sha256) for k in used]
    pool = build_style_pool(as_styles, len(label), seed, PLATE_DIVERSITY, tuple(config.style_size),
                            entries=s * CHECK_ATTEMPTS)
    rng = np.random.default_rng([seed, 6])
    first = rng.integers(0, 1 << 30, len(label))
    attempts = np.arange(CHECK_ATTEMPTS)[:, None]
    sizes, offsets = np.asarray(glyphs.size), np.asarray(glyphs.offset)
    glyph = offsets[label] + (first + attempts) % sizes[label]
    style = entry[plate_of] + attempts * s
    style = np.where(style < len(pool.names), style, entry[plate_of])
    counts = np.bincount(label, minlength=len(keys)).tolist()
    char_plan = Plan(keys, counts, label, glyph.astype(np.int64), style.astype(np.int64),
                     image_seeds(seed, np.arange(len(label))))
    engine = Engine(generator, glyphs.glyphs, pool, torch.device(device), batch_size * CHARS_PER_PLATE_BATCH,
                    recolour=PLATE_DIVERSITY.match_colours)
    check = None
    if discriminator is not None and charset is not None:
        check = LabelCheck(discriminator, charset, keys, torch.device(device))
    routes, check = chinese_routes(chinese, keys, glyphs, pool, torch.device(device),
                                   batch_size * CHARS_PER_PLATE_BATCH, PLATE_DIVERSITY.match_colours, check)
    memo = DrawMemo(engine, check, glyphs, routes=routes) if draws_repeat(plan, chars, fonts) else None
    return Synthesizer(keys, len(label), seed, as_styles, char_plan, glyphs, pool, engine, batch_size,
                       PLATE_DIVERSITY, check, generate_threads(device), memo, routes=routes)


def glyph_keys(config, chinese: LoadedCheckpoint | None, chars: list[str], plan: PlatePlan
               ) -> tuple[list[str], np.ndarray, list[int | None] | None]:
    """What a plate run's glyph pool holds, as (its labels' characters, every character's label into them, each label's
    `glyphs.ASPECTS` step or None): `chars` itself, each drawn as the font draws it; or, where a model was trained on
    narrowed glyphs (`engine.glyph_widths`), one label per character and width of the slot boxes it fills."""
    label = plan.labels(chars)
    slots = [np.array([(x1 - x0) / max(y1 - y0, 1) for x0, y0, x1, y1 in (slot.box for slot in layout.char_slots)])
             for layout in plan.layouts]
    aspects = np.concatenate([slots[plan.style[i]] for i in range(plan.n)]) if plan.n else np.zeros(0)
    widths = glyph_widths(config, chinese, [chars[c] for c in label], aspects)
    if widths is None:
        return chars, label, None
    steps = len(ASPECTS) + 1  # a key's width: 0 as drawn, else its step + 1
    codes, label = np.unique(label * steps + np.array([0 if w is None else w + 1 for w in widths], np.int64),
                             return_inverse=True)
    return ([chars[c // steps] for c in codes.tolist()], label.astype(np.int64),
            [None if c % steps == 0 else c % steps - 1 for c in codes.tolist()])


def shape_style(plate: StylePlate) -> np.ndarray:
    """The style image a plate's new characters are drawn from: on a plate whose characters are darker than its
    paper, its grey levels. A placed character keeps only its strokes' coverage and takes the plate's own ink
    (`compose`), so the generator's colours are never seen; but it drew white-on-blue characters, broken once
    placed, for a cyan Spanish plate (taken for a Chinese one). In grey, a character CNN read 97.1% of the placed
    characters of 500 plates on 50 held-out uc3m-lp styles as asked (95.6% in colour), 92.6% on openalpr-us
    (92.9%); light-on-dark plates (Chinese blue) stay in colour: in grey, 67% against 76% of 300 plates."""
    if not drawn_in_grey(plate):
        return plate.image
    grey = cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def drawn_in_grey(plate: StylePlate) -> bool:
    return dark_ink(plate.image, [slot.box for slot in plate.layout.char_slots])


def draws_repeat(plan: PlatePlan, chars: Sequence[str], fonts: Sequence[Font]) -> bool:
    """Whether `character_synth` draws through a `DrawMemo`: whether its blocks (a style plate with every font's
    glyph of one character) hold fewer images than the plan's first draws. 1,000 plates of one CCPD style take
    7,000 draws from 176 images; the 568 usable openalpr-us plates as styles took 6,118 draws from about
    15,000, nearly a block a draw, each a batch of 2-4 through the generator and the check (the us-folder case
    of benchmarks/plate_speed.py went from 28 to 48 plates/s without it)."""
    variants = np.array([len(fonts_for(c, fonts)) for c in chars])
    label = plan.labels(chars)
    blocks = np.unique(np.repeat(plan.style, [len(text) for text in plan.texts]) * len(chars) + label)
    return int(variants[blocks % len(chars)].sum()) < len(label)


def wants_chinese(layouts: Sequence[PlateLayout]) -> bool:
    """Whether a slot takes Chinese characters (a province, 警): then a run on the shipped default loads
    `engine.chinese_model` to draw them (kept when the alphabet has one it draws, `engine.routed_mask`)."""
    return any(slot.kind in ("province", "other") for layout in layouts for slot in layout.char_slots)


@dataclass(frozen=True)
class Drawn:
    """A chunk's characters as drawn, in plan order: what composing needs of an engine `Batch`."""

    images: np.ndarray  # [B,S,S,3] uint8
    contents: np.ndarray  # [B,S,S] uint8: the content glyph each was drawn from
    checks: list[str]


MASK_UNDER_SLOT = 0.1  # a privacy mask goes when a new slot covers this share of it
MASK_MARGIN = 2  # px of paper round a mask taken into its erased box, so that its edge is paper
MASK_CONTRAST = 6.0  # grey levels between a mask and the plate's paper, and what lies left and right of it
MASK_HEIGHT = 0.6  # ... its height, at least, in the plate's median character heights (it hides one)
MASK_OFF_ROW = 0.25  # ... its centre's distance from the characters' row, at most, in the same heights
MASK_ON_BOX = 0.1  # ... and the share of it that one of the plate's own boxes may cover, at most


def erased_boxes(plate: StylePlate, layout: PlateLayout, design: Design | None
                 ) -> tuple[list[Box], list[Box], list[Box]]:
    """The boxes `erase_characters` clears on a style plate, those it keeps, and the separator dots to draw: its
    characters go, and its own dot too unless the new `layout` puts its dot at the same place (and `design`,
    if any, draws one); new dots are drawn where the plate's own did not stay. Privacy masks under the new
    slots go too (`masks_under`)."""
    boxes = [slot.box for slot in plate.layout.char_slots] + masks_under(plate, layout)
    own_dots = [s.box for s in plate.layout.slots if s.kind == "separator"]
    new_dots = [s.box for s in layout.slots if s.kind == "separator"]
    dots = design is None or design.dot
    if dots and new_dots == own_dots and not hides_dot(plate):  # the style plate's own dot stays where the new one goes
        return boxes, own_dots, []
    return boxes + own_dots, [], new_dots if dots else []


def is_spread(plate: StylePlate, layout: PlateLayout) -> bool:
    """Whether some character of `layout` sits outside the style plate's own boxes (a pattern of another count)."""
    own = {slot.box for slot in plate.layout.char_slots}
    return any(slot.box not in own for slot in layout.char_slots)


def masks_under(plate: StylePlate, layout: PlateLayout) -> list[Box]:
    """The style plate's privacy masks (`segment.privacy_masks`) that new characters of `layout` would sit on,
    each with MASK_MARGIN px of paper round it. A pattern with another count than the plate's own boxes (the
    characters its masks hide) spreads its slots over the print area, masks included, and no real plate prints
    characters on grey blocks (a stem on a block's edge looked like the edge). New characters in the plate's own
    boxes leave the masks where they are, as uc3m-lp's plates show them."""
    if not is_spread(plate, layout):  # no new character sits where a mask hides one
        return []
    height, width = plate.image.shape[:2]
    under = []
    for mask in _masks_of(plate):
        if max(_overlap(mask, slot.box) for slot in layout.char_slots) >= MASK_UNDER_SLOT * _area(mask):
            x0, y0, x1, y1 = mask
            under.append((max(x0 - MASK_MARGIN, 0), max(y0 - MASK_MARGIN, 0),
                          min(x1 + MASK_MARGIN, width), min(y1 + MASK_MARGIN, height)))
    return _merged(under)


_MASKS: dict[str, tuple[Box, ...]] = {}  # `_masks_of`, by the image file's SHA-256


def _masks_of(plate: StylePlate) -> tuple[Box, ...]:
    """The grey blocks among `segment.privacy_masks` of a style plate (`_is_mask`), found once per image: a run's
    parameters and its canvas both ask (5 ms a plate)."""
    masks = _MASKS.get(plate.sha256)
    if masks is None:
        if len(_MASKS) >= 4096:
            _MASKS.clear()
        masks = _MASKS[plate.sha256] = tuple(m for m in privacy_masks(plate.image) if _is_mask(plate, m))
    return masks


def _is_mask(plate: StylePlate, box: Box) -> bool:
    """Whether a flat area segmentation sets aside is a block painted over a character: as tall as one, centred on
    the characters' row, clear of the plate's own boxes (a mask hides a character that has none), and of another
    grey than the plate's paper (the edges of its character boxes) and than what lies left and right of it.
    Segmentation also sets aside flat paper (between two masks; beside a US plate's characters, where erasing it
    as a mask smeared the state's heading into it). On a dim plate a mask is a few grey levels off the paper."""
    x0, y0, x1, y1 = box
    boxes = [s.box for s in plate.layout.char_slots]
    height = float(np.median([b[3] - b[1] for b in boxes]))
    xs, ys = [(b[0] + b[2]) / 2 for b in boxes], [(b[1] + b[3]) / 2 for b in boxes]
    slope, level = np.polyfit(xs, ys, 1) if len(set(xs)) > 1 else (0.0, float(np.median(ys)))
    row = slope * (x0 + x1) / 2 + level  # the characters' line where the mask is: plates are photographed tilted
    if y1 - y0 < MASK_HEIGHT * height or abs((y0 + y1) / 2 - row) > MASK_OFF_ROW * height:
        return False
    if max(_overlap(box, b) for b in boxes) > MASK_ON_BOX * _area(box):
        return False
    grey = cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY)
    inside = float(np.median(grey[y0:y1, x0:x1]))
    edges = [np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]) for g in (grey[b1:b3, b0:b2] for b0, b1, b2, b3 in boxes)]
    reach = MASK_MARGIN + 1
    beside = np.concatenate([grey[y0:y1, max(x0 - reach, 0):x0].ravel(), grey[y0:y1, x1:x1 + reach].ravel()])
    return (len(beside) > 0 and abs(inside - float(np.median(beside))) >= MASK_CONTRAST
            and abs(inside - float(np.median(np.concatenate(edges)))) >= MASK_CONTRAST)


def _area(box: Box) -> int:
    return max(1, (box[2] - box[0]) * (box[3] - box[1]))


def _overlap(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _merged(boxes: list[Box]) -> list[Box]:
    """Overlapping boxes joined into one: the erasing takes a box's edge for its paper, and two masks whose margins
    overlap would each take the other's grey."""
    boxes = list(boxes)
    joined = True
    while joined:
        joined = False
        for i, a in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                b = boxes[j]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    joined = True
                    break
            if joined:
                break
    return sorted(boxes)


def hides_dot(plate: StylePlate) -> bool:
    """Whether the style plate's character boxes touch or overlap round its dot, so that the dot's slot (`layout._gap`:
    one pixel wide) lies inside a character's box: kept, it kept a column of that character's old stroke."""
    return any(d[0] < b[2] and b[0] < d[2] and d[1] < b[3] and b[1] < d[3]
               for d in (s.box for s in plate.layout.slots if s.kind == "separator")
               for b in (s.box for s in plate.layout.char_slots))


class Canvas:
    """Each style plate with its own characters erased (in `design`'s colours, when one is given), and the ink
    new characters take, made once when first used; and the coverage of every glyph placed on them, worked out
    once (`compose.Coverages`). `layouts`: the slots the plan fills on each style plate (default: its own)."""

    def __init__(self, styles: Sequence[StylePlate], layouts: Sequence[PlateLayout] | None = None,
                 design: Design | None = None):
        self.styles = styles
        self.layouts = layouts if layouts is not None else [s.layout for s in styles]
        self.design = design
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.coverages = Coverages()

    def get(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self.cache:
            plate = self.styles[k]
            boxes = [slot.box for slot in plate.layout.char_slots]
            erase, keep, new_dots = erased_boxes(plate, self.layouts[k], self.design)
            background = erase_characters(plate.image, erase, keep)
            ink = ink_colour(plate.image, boxes)
            if self.design is not None:
                paper = np.median(np.concatenate([background[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in boxes]),
                                  axis=0).astype(np.float32)
                background, ink = repaint(background, paper, ink, boxes, self.design, keep)
            height = float(np.median([y1 - y0 for _, y0, _, y1 in boxes]))
            for box in new_dots:
                background = draw_dot(background, box, height, ink)
            self.cache[k] = background, ink
        return self.cache[k]


def plate_characters(synth: Synthesizer, plan: PlatePlan, ids: range) -> Drawn:
    """The characters of the consecutive plates `ids`, drawn as one generator batch (label check included),
    with the content glyph of each."""
    starts = plan.char_starts()
    batch = synth.generate(np.arange(starts[ids.start], starts[ids.stop], dtype=np.int64))
    return Drawn(batch.images, synth.content_glyphs(batch), batch.checks)


def compose_plates(canvas: Canvas, plan: PlatePlan, plate_ids: Sequence[int], first: int, drawn: Drawn,
                   noise: float = 0.0) -> list[np.ndarray]:
    """Plates `plate_ids` of the plan, from `drawn` characters whose first is the plan's character `first`,
    with `noise` (sigma) from each plate's seed; the plates of one style plate are composed together."""
    starts = plan.char_starts() - first
    plate_ids = np.asarray(plate_ids, np.int64)
    style = plan.style[plate_ids]
    images: list[np.ndarray] = [np.empty(0, np.uint8)] * len(plate_ids)
    for k in np.unique(style).tolist():
        rows = np.flatnonzero(style == k)
        ids = plate_ids[rows]
        background, ink = canvas.get(k)
        # a layout's texts are one length, so a style plate's characters stack
        glyphs = np.stack([drawn.images[starts[i]:starts[i + 1]] for i in ids])
        contents = np.stack([drawn.contents[starts[i]:starts[i + 1]] for i in ids])
        made = place_on_plates(background, glyphs, [slot.box for slot in plan.layouts[k].char_slots], ink, noise,
                               plan.seed[ids].tolist(), canvas.coverages, contents)
        for row, image in zip(rows.tolist(), made):
            images[row] = image
    return images


@dataclass
class MadePlates:
    images: list[np.ndarray]  # HxWx3 uint8 RGB, each the size of its style plate
    texts: list[str]  # what each plate shows, exactly: the plan's texts
    checks: list[str]  # per plate, the label check per character: pass, fail, unchecked (no class for it); "" without the check


def make_plates(generator, discriminator, charset: Sequence[str] | None, styles: Sequence[StylePlate],
                plan: PlatePlan, chars: Sequence[str], fonts: Sequence[Font], seed: int, device: str = "cpu",
                batch_size: int = DEFAULT_PLATE_BATCH, noise: float = Diversity().noise,
                design: Design | None = None, chinese: LoadedCheckpoint | None = None) -> MadePlates:
    """The planned plates as arrays in memory, nothing written: what `run_plates` writes, plate for plate
    (same plan, seed, batch size, --noise and Chinese model, same pixels). Without `discriminator`, no label
    check (first draws)."""
    synth = character_synth(generator, discriminator, charset, styles, plan, chars, fonts, seed, device, batch_size,
                            chinese)
    canvas = Canvas(styles, plan.layouts, design)
    starts = plan.char_starts()
    images: list[np.ndarray] = []
    checks: list[str] = []
    for b0 in range(0, plan.n, batch_size):
        ids = range(b0, min(b0 + batch_size, plan.n))
        drawn = plate_characters(synth, plan, ids)
        images += compose_plates(canvas, plan, ids, int(starts[b0]), drawn, noise)
        checks += [",".join(drawn.checks[starts[i] - starts[b0]:starts[i + 1] - starts[b0]]) for i in ids]
    return MadePlates(images, list(plan.texts), checks)


# ---------------------------------------------------------------- the run


def run_plates(req, world: World, device: str, ckpt, ckpt_path: Path, fonts, styles: list[StylePlate],
               skipped: list[Problem], plan: PlatePlan, chars: list[str], params: dict, previous: dict | None,
               progress: Callable[[int, int], None], start: float,
               chinese: LoadedCheckpoint | None = None) -> PlateReport:
    """Generate, compose and write the planned plates; journal each as it becomes durable. Under
    torchrun this rank writes its chunks (or shards) only, and rank 0 sums up the run. `chinese`: the
    model that draws the Chinese characters (`chinese_model`)."""
    batch = params["batch_size"]
    synth = character_synth(ckpt.generator, ckpt.discriminator if params["label_check"] else None,
                            ckpt.meta.get("charset"), styles, plan, chars, fonts, req.seed, device, batch, chinese)
    starts = plan.char_starts()
    if req.format == "shards":
        writer = plate_writers.PlateShardWriter(req.out, chars, plan.n, req.workers, req.shard_size)
    else:
        writer = plate_writers.PlateFileWriter(req.out, params["classes"], plan.n, req.workers)
    meta = {
        "tool": "plategen synth", "plategen_version": __version__, "command": req.command, "status": "running",
        **params, "checkpoint": str(ckpt_path), "device": device, "plates": True,
        "chinese_checkpoint": str(chinese.path) if chinese is not None else None,
        "chinese_chars": routed_chars(synth),
        "skipped_styles": [str(p) for p in skipped],
        "chars_with_real_crops": chars_with_real_crops(chars, ckpt.meta, routed_chars(synth),
                                                       chinese.meta if chinese is not None else None),
        "manifest_columns": {"image_path": "relative to manifest.csv", "text": "the plate text (no separators)",
                             "style": "the style plate", "seed": "the plate's own seed",
                             "check": "per character, in text order: pass: the model's discriminator reads it as "
                                      f"its label; fail: no draw of {CHECK_ATTEMPTS} did; unchecked: the checkpoint "
                                      "has no class for it (not in its charset); empty: no check"},
    }
    journal = writers.Journal(req.out, world.rank if world.size > 1 else None)
    mine = world.owns(np.arange(plan.n), writers.partition_unit(req.format, batch, req.shard_size))
    total = int(mine.sum())
    complete = previous is not None and previous.get("status") == "complete"
    if complete:  # its manifest stays, as in the character path
        writers.require_manifest(req.out)
    done = {i: "" for i in range(plan.n)} if complete else journal.load(plan.n)
    done = writer.present({i: h for i, h in done.items() if mine[i]}, plan.texts)
    resumed = len(done)
    checks: dict[int, list[str]] = {i: (journal.extra.get(i) or [""]) for i in done}
    world.from_leader(lambda: writers.write_meta(req.out, meta))
    canvas = Canvas(styles, plan.layouts, design_named(req.design))
    pending = writers.Pending()
    generated = 0
    progress(resumed, total)

    def collect(block_until: int | None = None) -> None:
        nonlocal generated
        for items in pending.ready(block_until):
            journal.append(items, checks)
            done.update(items)
            generated += len(items)
            progress(resumed + generated, total)

    def compose_chunk(new: np.ndarray, first: int, drawn) -> tuple[list[np.ndarray], list[str]]:
        """The plates `new` of a chunk whose characters start at `first`, and their pixel hashes."""
        images = compose_plates(canvas, plan, new, first, drawn, req.diversity.noise)
        return images, [writers.batch_hashes(image[None])[0] for image in images]

    def submit(new: np.ndarray, info: list[dict], composing: Future) -> None:
        images, hashes = composing.result()
        pending.add(writer.submit(new, images, [plan.texts[i] for i in new], hashes, info, np.ones(len(new), bool)))
        collect()
        collect(block_until=max(2, 2 * req.workers))

    # a chunk is composed in its own thread while the next one is generated, then written
    composer = ThreadPoolExecutor(1, thread_name_prefix="plategen-compose")
    try:
        waiting = None  # the chunk being composed (the name `previous` is the interrupted run's meta)
        for b0 in range(0, plan.n, batch):
            ids = range(b0, min(b0 + batch, plan.n))
            new = np.array([i for i in ids if mine[i] and i not in done], np.int64)
            if not len(new):
                continue
            drawn = plate_characters(synth, plan, ids)
            info = []
            for i in new:
                a, z = starts[i] - starts[ids.start], starts[i + 1] - starts[ids.start]
                k = int(plan.style[i])
                checks[int(i)] = [",".join(drawn.checks[a:z])]
                info.append({"text": plan.texts[i], "boxes": [list(s.box) for s in plan.layouts[k].char_slots],
                             "style": styles[k].name, "seed": int(plan.seed[i]), "check": checks[int(i)][0]})
            composing = composer.submit(compose_chunk, new, int(starts[ids.start]), drawn)
            if waiting is not None:
                submit(*waiting)
            waiting = new, info, composing
        if waiting is not None:
            submit(*waiting)
        collect(block_until=0)
        writer.close()
    except BaseException:  # clean up without ever hiding the error that stopped the run
        writers.abandon_run(writer, collect, journal, world.leader, world.size == 1, req.out, meta, done)
        raise
    finally:
        composer.shutdown(cancel_futures=True)
    if len(done) != total:
        raise PlategenError(f"{req.out}: internal error, {total - len(done)} plate(s) were not written; "
                            "run with --resume")
    journal.close()
    shares = world.gather((generated, resumed))
    return world.from_leader(lambda: _finish_plates(req, world, device, styles, skipped, plan, params,
                                                    previous, checks, writer, meta, journal, shares, start))


def _finish_plates(req, world: World, device: str, styles: list[StylePlate], skipped: list[Problem],
                   plan: PlatePlan, params: dict, previous: dict | None,
                   checks: dict[int, list[str]], writer, meta: dict, journal, shares: list[tuple[int, int]],
                   start: float) -> PlateReport:
    """Rank 0, once every plate is written: the index files, manifest, exports, preview, meta."""
    complete = previous is not None and previous.get("status") == "complete"
    if world.size > 1 and not complete:  # the other ranks' plates: what their journals say of each
        merged = writers.Journal(req.out)
        journalled = len(merged.load(plan.n))
        if journalled != plan.n:
            raise PlategenError(f"{req.out}: {plan.n - journalled} plate(s) are in no rank's journal here: "
                                f"{writers.UNSHARED_OUT}")
        checks = {i: (extra or [""]) for i, extra in merged.extra.items()}
    generated = sum(g for g, _ in shares)
    finished = []
    if req.format == "files":
        finished = [FinishedPlate(writer.key(i), (req.out / writer.path_of(i)).read_bytes(), plan.texts[i],
                                  tuple(s.box for s in plan.layouts[plan.style[i]].char_slots)) for i in range(plan.n)]
        write_plate_index(req.out, finished, params["classes"])
    if complete:
        manifest = req.out / writers.MANIFEST
        check_failed, unchecked = previous.get("check_failed"), previous.get("check_unchecked", 0)
    else:
        rows = ((writer.path_of(i, plan.texts[i]), plan.texts[i], styles[plan.style[i]].name, int(plan.seed[i]), checks[i][0])
                for i in range(plan.n))
        manifest = writers.write_manifest(req.out, rows, plate_writers.MANIFEST_FIELDS)
        check_failed = sum(c[0].split(",").count("fail") for c in checks.values()) if params["label_check"] else None
        unchecked = sum(c[0].split(",").count("unchecked") for c in checks.values())
    exported = []
    if "lprnet" in req.exports:
        write_lprnet(req.out / "lprnet", finished)
        exported.append(req.out / "lprnet")
    if "paddleocr" in req.exports:
        exported += write_paddleocr(req.out, finished, params["classes"])
    preview = None
    if req.preview is not None:
        preview = write_plate_preview(req.preview, styles, plan,
                                      lambda i: writers.read_image_at(req.out, writer.path_of(i, plan.texts[i])))
    seconds = time.perf_counter() - start
    meta.update(status="complete", check_failed=check_failed, check_unchecked=unchecked, seconds=round(seconds, 3),
                plates_per_s=round(generated / seconds, 1) if seconds and generated else None)
    writers.write_meta(req.out, meta)
    journal.close(remove=True)
    return PlateReport(req.out, manifest, req.out / writers.META, preview, req.format, plan.n, len(set(
        plan.style.tolist())), skipped, generated, sum(r for _, r in shares), int(plan.char_starts()[-1]),
        check_failed, unchecked, seconds, generated / seconds if seconds else 0.0, device, exported,
        [g for g, _ in shares] if world.size > 1 else [], meta["chinese_chars"],
        Path(meta["chinese_checkpoint"]) if meta["chinese_checkpoint"] else None)


def write_plate_preview(path: Path, styles: Sequence[StylePlate], plan: PlatePlan,
                        image_of: Callable[[int], np.ndarray]) -> Path:
    """A sheet: per style plate (the first few used), the plate itself, then a few of its generated plates."""
    rows = []
    for k in dict.fromkeys(plan.style.tolist()).keys():
        if len(rows) == PREVIEW_STYLES:
            break
        made = [image_of(i) for i in np.flatnonzero(plan.style == k)[:PREVIEW_PER_STYLE]]
        cells = [_at_height(image) for image in [styles[k].image, *made]]
        cells.insert(1, np.full((PREVIEW_HEIGHT, 12, 3), 255, np.uint8))  # a white bar after the style plate
        rows.append(np.concatenate([np.pad(c, ((0, 0), (0, 6), (0, 0)), constant_values=40) for c in cells], 1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((3, 3), (0, width - r.shape[1]), (0, 0)), constant_values=40) for r in rows])
    atomic_save_png(Image.fromarray(sheet), path)
    return path


def _at_height(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = PREVIEW_HEIGHT / h
    return cv2.resize(image, (max(1, round(w * scale)), PREVIEW_HEIGHT),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def layout_digest(style: StylePlate) -> str:
    """What a style plate's annotation (its label file and classes.txt, its CSV row or file name) gives it: its
    text and slots. The image's hash does not cover them, and --resume must not draw the rest of a run on
    other boxes."""
    slots = [[list(s.box), s.row, s.kind, s.allowed, s.own] for s in style.layout.slots]
    return hashlib.sha256(json.dumps([style.text, list(style.layout.size), slots]).encode("utf-8")).hexdigest()


def plate_params(req, styles: Sequence[StylePlate], chars: Sequence[str], layouts: Sequence[PlateLayout],
                 design: Design | None) -> dict:
    """What fixes the bytes of a plate run; --resume must match all of it."""
    texts_sha = hashlib.sha256(Path(req.texts).read_bytes()).hexdigest() if req.texts else None
    return {"pattern": compact_pattern(req.pattern), "design": req.design, "texts_sha256": texts_sha,
            "noise": req.diversity.noise,
            "exports": sorted(set(req.exports)), "charset": list(chars),
            "classes": label_classes(chars) if req.format == "files" else None,  # shards hold no class ids
            "styles": [{"path": s.name, "sha256": s.sha256} for s in styles],
            "style_layouts": [layout_digest(s) for s in styles],
            "large_erasing": LARGE_ERASING if any(erases_large(erased_boxes(s, layout, design)[0])
                                                  for s, layout in zip(styles, layouts)) else None,
            "design_light": DESIGN_LIGHT if design is not None else None,
            "hidden_dot": HIDDEN_DOT if any(hides_dot(s) and (design is None or design.dot) for s in styles) else None,
            "erased_masks": ERASED_MASKS if any(masks_under(s, layout) for s, layout in zip(styles, layouts)) else None,
            "spread_slots": SPREAD_SLOTS if any(is_spread(s, layout) for s, layout in zip(styles, layouts)) else None,
            "grey_styles": GREY_STYLES if any(map(drawn_in_grey, styles)) else None,
            "style_turns": STYLE_TURNS if req.n % len(styles) else None,
            "leaning": None,  # 59e3702 placed characters leaning (meta.json "leaning": 1); this plategen does not
            "upper_letters": UPPER_LETTERS if req.texts is None and any(c.isascii() and c.islower() for c in chars)
            else None}


# Style plates with characters over compose.INPAINT_HEIGHT px high are erased with a capped inpainting radius and
# a paper model blurred on a scaled copy since this number (3x faster on US plates); a plate run on them begun
# before cannot be finished byte for byte.
LARGE_ERASING = 1
# A design repaints the paper with its smooth light and adds the rest in grey levels, and keeps a dot beside a
# character box in the new ink, since this number (`designs.repaint`); a --design run begun before painted otherwise.
DESIGN_LIGHT = 1
# A style plate whose dot slot lies inside a character box (`hides_dot`) has that dot erased and drawn anew since this
# number; a run begun before kept a column of the old character there.
HIDDEN_DOT = 1
# Privacy masks under a pattern's new slots are painted over as paper since this number (`masks_under`); a run begun
# before drew its characters on them. 2: masks told from flat paper otherwise (`_is_mask`).
ERASED_MASKS = 2
# A pattern spread over a style plate (another count than its own boxes) takes the plate's own character size and
# pitch since this number (`layout._spread`), and its masks go under fewer slots too; a run begun before stretched its
# characters over the whole print area, and drew a shorter pattern on the masks.
SPREAD_SLOTS = 1
# The characters of a plate whose ink is darker than its paper are drawn from its grey levels since this number
# (`shape_style`); a run begun before drew them from its colours.
GREY_STYLES = 1
# The style plates that take one plate more than the others (--n not a multiple of their count) are a seeded choice
# since this number; a run begun before gave them to the first style plates given (`plan_plates`).
STYLE_TURNS = 1
# The letter slots of drawn texts take upper case only since this number (`layout.alphabet`); a run begun before with
# lower case in its alphabet drew it into them too.
UPPER_LETTERS = 1

