"""`plategen synth`: check every input, claim the output folder, run the engine, write the dataset.

One request, in order: `synthesize` checks the request (`check_request`), the checkpoint, the
characters and the styles before anything is written; `writers.prepare_out` locks the output
folder (and reads the interrupted run's meta on --resume); `_run` builds the `Synthesizer`,
keeps the journalled images whose files are intact, generates the chunks that lack some, hands
each batch to a writer and journals what became durable; then the manifest, the preview and
meta.json. The diversity figure and the preview use the same images (the first per label by
id) whatever the interruption.

Under torchrun (`plategen.distributed`) every rank runs this same request: all check the
inputs, rank 0 claims the folder, each draws and writes its own batches or shards with its own
journal, and rank 0 writes the manifest, preview and meta from the journals once all are done.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from plategen import __version__, distributed
from plategen.atomic import (check_sheet_path, require_link_target, require_no_file_in_the_way,
                             require_own_sheet_or_none)
from plategen.charset import label_classes
from plategen.checkpoint import LoadedCheckpoint, checkpoint_path, load_checkpoint, require_finite
from plategen.device import resolve_device, usable_cores
from plategen.distributed import World
from plategen.errors import PlategenError
from plategen.glyphs import fonts_for, render_glyph, shipped_fonts
from plategen.layout import compact_pattern, read_as_missing
from plategen.sizes import MAX_BATCH_SIZE
from plategen.synth.designs import design_named
from plategen.synth import plates, writers
from plategen.synth.engine import Synthesizer, api_chars, chinese_model, if_drawing, routed_chars, with_chinese
from plategen.synth.check import chars_with_real_crops
from plategen.synth.exports import lprnet_refuse, require_lprnet_names
from plategen.synth.inputs import check_drawable, load_styles
from plategen.synth.plan import CHECK_ATTEMPTS, CHECK_SURE, MAX_IMAGES, Diversity, label_counts
from plategen.synth.plates import PlateReport

SAMPLES_KEPT = 32  # images per label kept in memory for the diversity figure and the preview
DEFAULT_BATCH_SIZE = 256


DEFAULT_CHARS = "0-9A-Z"


@dataclass
class SynthRequest:
    styles: list[Path]
    chars: list[str] | None  # None: DEFAULT_CHARS for characters, the checkpoint's charset for --plates
    n: int
    out: Path
    checkpoint: Path | None = None  # None: the shipped model
    seed: int = 0
    device: str | None = None  # None: CUDA when present, else CPU
    batch_size: int | None = None  # None: 256, or on --resume the interrupted run's (it is part of the bytes)
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
    plates: bool = False  # whole plates (synth/plates.py) instead of single characters
    pattern: str | None = None  # --plates: the layout to fill (layout.parse_pattern), else each style's own
    texts: Path | None = None  # --plates: plate texts, one a line, used in order and cycled
    design: str | None = None  # --plates: repaint the style plates in this design's colours (synth/designs.py)
    exports: list[str] = field(default_factory=list)  # --plates: "lprnet", "paddleocr"
    allow_outside_paths: bool = False  # --plates: follow a style folder's CSV image paths that leave it (load_plates)

    def __post_init__(self):
        """The library's callers give what the CLI parses: `chars="0-9"` wrote the characters 0, - and 9, and
        `styles="plate.jpg"` was read letter by letter."""
        if isinstance(self.styles, (str, Path)):
            self.styles = [self.styles]
        try:
            self.styles, self.out = [Path(s) for s in self.styles], Path(self.out)
        except TypeError as exc:
            raise PlategenError(f"SynthRequest: styles and out are paths ({exc})") from None
        if self.chars is not None:
            self.chars = api_chars(self.chars)
        elif not self.plates:
            self.chars = api_chars(DEFAULT_CHARS)
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)):  # n="5": a TypeError deep in the plan
            raise PlategenError(f"SynthRequest: n {self.n!r} is not a whole number")
        self.n = int(self.n)


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
    per_rank: list[int] = field(default_factory=list)  # images each torchrun rank made (empty: one process)
    unchecked: int = 0  # images of characters the checkpoint has no class of (check=unchecked)
    chinese: list[str] = field(default_factory=list)  # characters drawn by the Chinese model (`chinese_model`)
    chinese_checkpoint: Path | None = None


# what must match for --resume to continue a run
RESUME_KEYS = ("drawing", "n", "charset", "seed", "checkpoint_sha256", "chinese_checkpoint_sha256", "styles", "format",
               "shard_size", "batch_size", "diversity", "glyph_size", "label_check", "check_sure", "classes")
# How this plategen draws (fonts per character, erasing): a run begun by one that drew otherwise cannot be
# finished byte for byte. 2: the footless 1 and erased rims; runs from before carry no number (1).
DRAWING = 2


def synthesize(req: SynthRequest, progress: Callable[[int, int], None] = lambda done, total: None
               ) -> SynthReport | PlateReport:
    """Write a labelled dataset to `req.out`; every input is checked before the folder is touched.

    Under torchrun every rank checks the inputs and draws its part of the one plan
    (`writers.partition_unit`); rank 0 holds the folder's lock and writes what sums up the run
    (manifest, meta, preview), so the output is the same bytes as one process's.
    `progress(done, total)` counts this rank's images."""
    start = time.perf_counter()
    with distributed.joined() as world:
        with world.together():  # one refusal stops every rank and is printed once
            device, params, resume_keys, upgrade, run = _checked(req, world, progress, start)
        with world.together():  # a collective of its own: a rank that refused above never reaches it
            require_same_run(world, params)
        return _claimed(req, world, device, params, resume_keys, upgrade, run)


def require_same_run(world: World, params: dict) -> None:
    """Under torchrun every rank draws its part of the plan its own options give: a rank started with another
    --style wrote a mix of two runs with exit 0, one with another --seed or --n a traceback and a folder that
    --resume then finished wrong. Style plates compare by content, as two machines may name them otherwise."""
    world.require_same({k: [s["sha256"] for s in v] if k == "styles" else v for k, v in params.items()}, _options_of)


def _checked(req: SynthRequest, world: World, progress: Callable[[int, int], None], start: float):
    """Every input checked; (device, the settings that fix the bytes, those --resume must match, an
    interrupted run's meta in this plategen's keys, the run given that meta)."""
    check_request(req)
    device = str(world.place(resolve_device(req.device)))
    ckpt_path = checkpoint_path(req.checkpoint)
    if req.checkpoint is None and not ckpt_path.is_file():
        raise PlategenError(f"{ckpt_path}: the shipped checkpoint is missing; pass --checkpoint or train one")
    ckpt = load_checkpoint(ckpt_path, device="cpu")
    label_check = req.check and ckpt.discriminator is not None
    require_finite(str(ckpt_path), ckpt.generator, ckpt.discriminator if label_check else None)
    fonts = shipped_fonts()
    if req.plates:
        return _checked_plates(req, world, device, ckpt, ckpt_path, label_check, fonts, progress, start)
    chinese = if_drawing(chinese_model(req.checkpoint) if any(not c.isascii() for c in req.chars) else None,
                         req.chars)
    check_drawable(req.chars, fonts, with_chinese(ckpt.meta.get("charset"), chinese))
    styles = load_styles(req.styles)
    params = {
        "drawing": DRAWING, "n": req.n, "charset": list(req.chars), "seed": req.seed, "checkpoint_sha256": ckpt.sha256,
        "chinese_checkpoint_sha256": chinese.sha256 if chinese is not None else None,
        "styles": [{"path": s.name, "sha256": s.sha256} for s in styles], "format": req.format,
        "shard_size": req.shard_size if req.format == "shards" else None,
        "batch_size": req.batch_size or DEFAULT_BATCH_SIZE,
        "diversity": json_ready(req.diversity.to_dict()), "glyph_size": ckpt.config.glyph_size,
        "label_check": label_check, "check_sure": CHECK_SURE if label_check else None,
        "classes": label_classes(req.chars) if req.format == "shards" else None,  # what the shards' .cls ids index
    }
    def run(previous: dict | None):
        return _run(req, world, device, ckpt, ckpt_path, fonts, styles, params, previous, progress, start, chinese)

    return device, params, RESUME_KEYS, _older_run, run


def _claimed(req: SynthRequest, world: World, device: str, params: dict, resume_keys: Sequence[str],
             upgrade: Callable[[dict], tuple[dict, set[str]]], run: Callable):
    """`run(previous meta)` while rank 0 holds the output folder's lock, after --resume's settings check."""
    locks = []

    def claim() -> tuple[dict | None, int]:
        lock, previous = writers.prepare_out(req.out, req.resume, req.overwrite)
        locks.append(lock)
        if previous is not None:
            if "plates" in previous and not req.plates:
                raise PlategenError(f"{req.out}: holds a synth --plates run; --resume it with --plates")
            if req.plates and "plates" not in previous:
                raise PlategenError(f"{req.out}: holds a run of single characters; --resume it without --plates")
            params["batch_size"] = _resumed_batch_size(req, previous.get("batch_size", params["batch_size"]))
            if previous.get("drawing", 1) != params["drawing"]:
                raise PlategenError(f"{req.out}: begun by an earlier plategen that draws differently (drawing "
                                    f"{previous.get('drawing', 1)}, this one {params['drawing']}), so --resume cannot "
                                    "finish it byte for byte; finish it with that version, or start again with --overwrite")
            if params.get("chinese_checkpoint_sha256") and "chinese_checkpoint_sha256" not in previous:
                raise PlategenError(f"{req.out}: begun by an earlier plategen that drew the Chinese characters with "
                                    "the default model too; add --checkpoint default to --resume it as it began")
            previous, inferred = upgrade(previous)
            differ = [k for k in resume_keys if previous.get(k) != params[k]]
            # a drawing that only the plategen version sets, recorded otherwise while the options match or under
            # another number, is another plategen's
            options_differ = any(k not in DRAWN_KEYS for k in differ)
            versioned = {k for k in differ if k in VERSION_KEYS and (
                not options_differ or (previous.get(k) is not None and params[k] is not None))}
            if set(differ) & (inferred | versioned):
                raise PlategenError(f"{req.out}: begun by an earlier plategen that draws this run otherwise "
                                    f"({', '.join(k for k in differ if k in inferred | versioned)}), so --resume "
                                    "cannot finish it byte for byte; finish it with that version, or start again with "
                                    "--overwrite")
            changed = [new["path"] for old, new in zip(previous.get("styles") or [], params["styles"])
                       if old.get("path") == new["path"] and old.get("sha256") != new["sha256"]]
            if changed:
                raise PlategenError(f"{changed[0]}: this style image changed since the run began, so --resume cannot "
                                    "finish it byte for byte; put the first image back, or start again with --overwrite")
            relabelled = [new["path"] for old, new, was, now in zip(previous.get("styles") or [], params["styles"],
                                                                    previous.get("style_layouts") or [],
                                                                    params.get("style_layouts") or [])
                          if old.get("path") == new["path"] and was != now]
            if relabelled:
                raise PlategenError(f"{relabelled[0]}: this style plate's boxes or text (its label file, classes.txt "
                                    "or CSV row) changed since the run began, so --resume cannot finish it byte for "
                                    "byte; put them back, or start again with --overwrite")
            if differ:  # name the options; a key only they set (how a --design draws) says nothing to the user
                shown = _options_of([k for k in differ if k not in DRAWN_KEYS] or differ, previous, params)
                raise PlategenError(f"{req.out}: --resume with other settings than the run there began with "
                                    f"({', '.join(shown)}); repeat the first command's options, or start again "
                                    "with --overwrite")
        return previous, params["batch_size"]

    threads_before = torch.get_num_threads()
    created = world.leader and not req.out.exists()
    try:
        # the other ranks start writing only once rank 0 holds the lock (and --overwrite has cleared the folder)
        previous, params["batch_size"] = world.from_leader(claim)
        if device == "cpu":  # the generator and the PNG writers share the cores; oversubscribing them is slower
            torch.set_num_threads(req.threads or max(1, usable_cores() // world.local_size - 1))
        return run(previous)
    finally:
        torch.set_num_threads(threads_before)
        for lock in locks:
            lock.release()
        if created and not (req.out / writers.META).exists():  # stopped before its first file (an early Ctrl-C)
            for folder in sorted((p for p in req.out.rglob("*") if p.is_dir()), reverse=True) + [req.out]:
                with contextlib.suppress(OSError):  # empty folders only (the label folders made up front)
                    folder.rmdir()


# the option that sets each meta.json key --resume compares (a key of no option is named as it is)
OPTION_OF = {"n": "--n", "charset": "--chars", "seed": "--seed", "checkpoint_sha256": "--checkpoint",
             "chinese_checkpoint_sha256": "--checkpoint", "glyph_size": "--checkpoint", "styles": "--style",
             "format": "--format", "shard_size": "--shard-size", "batch_size": "--batch-size", "label_check": "--no-check",
             "pattern": "--pattern", "design": "--design", "texts_sha256": "--texts (the file's lines)", "noise": "--noise",
             "exports": "--export", "style_layouts": "--style (its label files)"}
DIVERSITY_OPTION_OF = {"noise": "--noise", "match_colours": "--raw-colours"}  # the rest is the API's Diversity


def _options_of(keys: Sequence[str], previous: dict, params: dict) -> list[str]:
    """The options behind differing meta keys, each once, in order: `diversity` by which of its fields differ."""
    names: list[str] = []
    for key in keys:
        if key == "shard_size" and "format" in keys:  # set only with shards: it differs because the format does
            continue
        if key == "diversity":
            old, new = previous.get(key) or {}, params[key]
            names += [DIVERSITY_OPTION_OF.get(k, f"diversity.{k}") for k in new if old.get(k) != new[k]]
        else:
            names.append(OPTION_OF.get(key, key))
    return list(dict.fromkeys(names))


# meta.json keys that record how a plate run's options draw (not options themselves); `_older_plate_run` infers them
DRAWN_KEYS = ("chinese_serials_skip", "large_erasing", "draw_memo", "design_light", "hidden_dot", "erased_masks",
              "leaning", "classes", "check_sure", "upper_letters", "spread_slots", "grey_styles", "style_turns")
# ... those set by the plategen version and the recorded options alone (a version number or None); the others follow
# options: classes --chars, chinese_serials_skip whether --chars was given (meta does not record it), draw_memo --n
VERSION_KEYS = ("large_erasing", "design_light", "hidden_dot", "erased_masks", "leaning", "check_sure", "upper_letters",
                "spread_slots", "grey_styles", "style_turns")


def _older_run(previous: dict) -> tuple[dict, set[str]]:
    """A character run's meta with `check_sure` inferred for a run begun before it (the label check redrew only
    images read as another character) and `classes` (a shard's .cls indexed the run's characters, so ids moved with
    --chars), and the keys inferred."""
    inferred = {"check_sure", "classes"} - set(previous)
    shards = previous.get("format") == "shards"
    return {"check_sure": None, "classes": previous.get("charset") if shards else None, **previous}, inferred


def _older_plate_run(previous: dict, default_skip: str | None) -> tuple[dict, set[str]]:
    """A plate run's meta with the keys meta.json has recorded since this plategen, inferred for a run begun
    before it, and the keys that say how the plategen that began it drew (those inferred, and a `leaning` run's):
    a difference in them is that plategen's, not the command's.
    - `chinese_serials_skip`: a run whose Chinese characters came from allchars (it has
      `chinese_checkpoint_sha256`) skipped `default_skip` (what the default alphabet skips on these layouts)
      when its command gave neither --chars nor --texts; a run with them, or an older one, skipped nothing.
    - `large_erasing`: plates with large characters were erased as small ones.
    - `design_light`: a design scaled the new colours by the paper's whole light.
    - `hidden_dot`: a dot slot inside a character's box was kept, and a column of the old character with it.
    - `erased_masks`: a pattern's characters were drawn on the privacy masks under them.
    - `leaning`: only 59e3702 leaned characters, and recorded it.
    - `draw_memo`: every plate run drew through a `DrawMemo`.
    - `classes`: the labels' classes were the run's characters (`--chars`), not `charset.label_classes`.
    - `check_sure`: the label check redrew only the characters read as another (`plan.CHECK_SURE`).
    - `upper_letters`: letter slots took the lower case of the alphabet too (`plates.UPPER_LETTERS`).
    - `spread_slots`: a pattern of another count than a style plate's boxes stretched its characters over the
      print area (`plates.SPREAD_SLOTS`).
    - `grey_styles`: dark-on-light style plates were handed to the generator in colour (`plates.GREY_STYLES`).
    - `style_turns`: the first n % S style plates given took one plate more than the others (`plates.STYLE_TURNS`)."""
    chosen = any(str(arg).split("=")[0] in ("--chars", "--texts") for arg in previous.get("command") or [])
    before = {"classes": previous.get("charset") if previous.get("format", "files") == "files" else None,
              "check_sure": None, "upper_letters": None, "spread_slots": None, "grey_styles": None, "style_turns": None,
              "chinese_serials_skip": None if chosen or "chinese_checkpoint_sha256" not in previous else default_skip,
              "large_erasing": None, "draw_memo": True, "design_light": None, "hidden_dot": None,
              "erased_masks": None, "leaning": None}
    inferred = set(before) - set(previous)
    version_keys = inferred | ({"leaning"} if previous.get("leaning") else set())  # no option changes it
    return {**{k: before[k] for k in inferred}, **previous, "pattern": compact_pattern(previous.get("pattern"))}, \
        version_keys


def _checked_plates(req: SynthRequest, world: World, device: str, ckpt, ckpt_path: Path, label_check: bool,
                    fonts, progress: Callable[[int, int], None], start: float):
    """--plates: style plates, texts and the plan are all checked before the folder is touched."""
    charset = ckpt.meta.get("charset")
    if req.chars is not None:
        check_drawable(req.chars, fonts, charset)
    bad = sorted(set(req.exports) - set(plates.EXPORTS))
    if bad:
        raise PlategenError(f"--export {bad[0]}: choose one of {', '.join(plates.EXPORTS)}")
    if req.format == "shards" and req.exports:
        raise PlategenError(f"--export {req.exports[0]} copies the images/ of --format files; "
                            "leave it out with --format shards")
    design = design_named(req.design)
    styles, skipped = plates.load_style_plates(req.styles, req.allow_outside_paths)
    if design is not None:
        plates.require_chinese(styles, req.design)
    pattern = req.pattern or (design.pattern if design is not None else None)
    styles, misfits = plates.fitting_styles(styles, pattern, [s for s in req.styles if Path(s).is_file()])
    skipped += misfits
    layouts = plates.plate_layouts(styles, pattern)
    chinese = chinese_model(req.checkpoint) if plates.wants_chinese(layouts) else None
    if chinese is not None:  # its Chinese characters join the charset: they have a class, and are drawable
        charset = with_chinese(charset, chinese)
    if req.chars is None:
        chars = plates.default_chars([c for c in (charset or []) if fonts_for(c, fonts)], layouts,
                                     drawn=req.texts is None)
        check_drawable(chars, fonts, charset)  # a pattern's [...] may name a character no font covers
    else:
        chars = list(req.chars)
    chinese = if_drawing(chinese, chars)  # an "other" slot of a Ñ: nothing for it to draw
    plan = plates.plan_plates(styles, req.n, chars, req.seed, pattern, req.texts,
                              chinese_serials=req.chars is None and req.texts is None,
                              refuse=lprnet_refuse(writers.id_width(req.n)) if "lprnet" in req.exports else read_as_missing)
    if "lprnet" in req.exports:
        require_lprnet_names(plan.texts, writers.id_width(req.n))
    params = {
        "drawing": DRAWING, "n": req.n, "seed": req.seed, "checkpoint_sha256": ckpt.sha256,
        "chinese_checkpoint_sha256": chinese.sha256 if chinese is not None else None, "format": req.format,
        "shard_size": req.shard_size if req.format == "shards" else None,
        "batch_size": req.batch_size or plates.DEFAULT_PLATE_BATCH, "glyph_size": ckpt.config.glyph_size,
        "label_check": label_check, "check_sure": CHECK_SURE if label_check else None,
        **plates.plate_params(req, styles, chars, plan.layouts, design),
        "chinese_serials_skip": plan.serials_skip, "draw_memo": plates.draws_repeat(plan, chars, fonts),
    }
    default_skip = plates.serials_skip(plan.layouts, chars)

    def run(previous: dict | None):
        return plates.run_plates(req, world, device, ckpt, ckpt_path, fonts, styles, skipped, plan, chars, params,
                                 previous, progress, start, chinese)

    resume_keys = tuple(k for k in params if k != "style_layouts")  # checked apart: older runs did not record it
    return device, params, resume_keys, lambda previous: _older_plate_run(previous, default_skip), run


def check_request(req: SynthRequest) -> None:
    """Refuse options that cannot work before the checkpoint is read or the output folder touched."""
    if not 0 <= req.seed < 2 ** 63:
        raise PlategenError(f"--seed {req.seed}: must be 0 or more (and below 2^63)")
    if not req.plates and (req.pattern is not None or req.texts or req.exports or req.design
                           or req.allow_outside_paths):
        raise PlategenError("--pattern, --texts, --design, --export and --allow-outside-paths are options of --plates")
    if req.plates and not req.diversity.match_colours:
        raise PlategenError("--raw-colours: whole plates take their new characters' ink from the style plate's own "
                            "characters, never the generator's colours; leave it out with --plates")
    if req.pattern is not None and not req.pattern.strip():
        raise PlategenError("--pattern: empty; give one mark per slot (e.g. PL.DDDDD), or leave it out to keep "
                            "each style plate's own layout")
    most = MAX_IMAGES[req.plates]
    if req.n > most:
        raise PlategenError(f"--n {req.n:,}: at most {most:,} {'plates' if req.plates else 'images'} a run (its plan "
                            "is held in memory); for more, run again with another --seed into another folder")
    if req.format not in writers.FORMATS:
        raise PlategenError(f"--format {req.format!r}: choose one of {', '.join(writers.FORMATS)}")
    most = MAX_BATCH_SIZE // plates.CHARS_PER_PLATE_BATCH if req.plates else MAX_BATCH_SIZE
    if req.batch_size is not None and not 1 <= req.batch_size <= most:  # 60,000 ran out of memory half-written
        raise PlategenError(f"--batch-size {req.batch_size}: need 1 to {most:,}" + (" plates" if req.plates else ""))
    for option, value in (("--shard-size", req.shard_size), ("--workers", req.workers)):
        if value is not None and value < 1:
            raise PlategenError(f"{option} {value}: must be at least 1")
    if not req.plates:
        label_counts(req.n, len(req.chars))
        if req.format == "files":
            require_distinct_folders(req.chars)
    require_no_file_in_the_way(Path(req.out))  # before any resolve(): a link loop would raise there
    if Path(req.out).exists() and not Path(req.out).is_dir():  # before the preview in it is named
        raise PlategenError(f"{req.out}: exists and is not a folder")
    if req.preview is not None:
        check_preview(Path(req.preview), Path(req.out), req.resume)
    root = Path(req.out).resolve()
    for style in map(Path, req.styles):
        require_link_target(style)
        if style.resolve() == root or root in style.resolve().parents:
            raise PlategenError(f"--style {style}: inside --out, which this run writes (and --overwrite clears); "
                                "keep style plates outside the output folder")
    writers.check_out(Path(req.out), req.resume, req.overwrite)


def require_distinct_folders(chars: Sequence[str]) -> None:
    """Labels whose folders differ only in case (a/ and A/) are one folder on macOS and Windows: one label's
    images would land among the other's."""
    seen: dict[str, str] = {}
    for c in chars:
        other = seen.setdefault(writers.safe_label_dir(c).casefold(), c)
        if other != c:
            raise PlategenError(f"--chars: {other} and {c} would be written to folders that differ only in case, one "
                                "folder on macOS and Windows; leave one out, or use --format shards")


def check_preview(path: Path, out: Path, resume: bool = False) -> None:
    """The preview is written after every image: a path it cannot be written to is refused first. A resume redraws
    a sheet in --out that no longer reads as a PNG (cut short), as it redraws such images."""
    require_no_file_in_the_way(path)  # before resolve(): a link loop would raise there
    parent, root = path.parent.resolve(), out.resolve()
    if path.resolve() == root:
        raise PlategenError(f"--preview {path}: is --out; give the sheet a file name ending in .png")
    if parent != root:  # --out itself is made by the run
        check_sheet_path(path, "--preview")
    elif path.suffix.lower() != ".png" or path.is_dir():
        raise PlategenError(f"--preview {path}: give a file name ending in .png")
    elif not (resume and path.is_file() and not path.is_symlink() and not _reads_as_png(path)):
        require_own_sheet_or_none(path, "--preview")
    if root in parent.parents:
        raise PlategenError(f"--preview {path}: inside a folder of --out, where it would be taken for a "
                            "generated image; write it directly in --out or elsewhere")


def _reads_as_png(path: Path) -> bool:
    try:
        writers.decode_png(path.read_bytes())
    except (OSError, PlategenError):
        return False
    return True


def _resumed_batch_size(req: SynthRequest, first: int) -> int:
    """A resumed run generates with the first run's batch size: the generator's float sums, and so
    some pixels, depend on it."""
    if req.batch_size is not None and req.batch_size != first:
        raise PlategenError(f"{req.out}: --batch-size {req.batch_size}, but the interrupted run used {first}, "
                            "and the batch size is part of what fixes the images' bytes; repeat "
                            f"--batch-size {first} or leave it out")
    return first


def _run(req: SynthRequest, world: World, device: str, ckpt, ckpt_path: Path, fonts, styles, params: dict,
         previous: dict | None, progress: Callable[[int, int], None], start: float,
         chinese: LoadedCheckpoint | None) -> SynthReport:
    synth = Synthesizer.build(ckpt.generator, styles, req.chars, req.n, req.seed, batch_size=params["batch_size"],
                              device=device, diversity=req.diversity, fonts=fonts, charset=ckpt.meta.get("charset"),
                              discriminator=ckpt.discriminator if params["label_check"] else None, chinese=chinese)
    writer = writers.make_writer(req.format, req.out, req.chars, req.n, req.workers, req.shard_size,
                                 [c for c, count in zip(req.chars, synth.plan.counts) if not count])
    label_of = [req.chars[i] for i in synth.plan.label]
    meta = {
        "tool": "plategen synth", "plategen_version": __version__, "command": req.command, "status": "running",
        **params, "checkpoint": str(ckpt_path), "device": device,
        "label_dirs": {c: writers.safe_label_dir(c) for c in req.chars} if req.format == "files" else {},
        "counts": dict(zip(req.chars, synth.plan.counts)),
        "chinese_checkpoint": str(chinese.path) if chinese is not None else None,
        "chinese_chars": routed_chars(synth),
        "chars_with_real_crops": chars_with_real_crops(req.chars, ckpt.meta, routed_chars(synth),
                                                       chinese.meta if chinese is not None else None),
        "manifest_columns": {"image_path": "relative to manifest.csv (shards: <shard>.tar#<member>)",
                             "label": "the character", "style": "style plate(s); a|b = interpolated",
                             "font": "font of the content glyph",
                             "seed": "the image's own seed (picks its noise); glyph and style choices "
                                     "come from the run seed",
                             "check": "pass: the model's discriminator reads the image as its label; fail: no "
                                      f"draw of {CHECK_ATTEMPTS} did (the best-read one is kept); unchecked: the "
                                      "checkpoint has no class for it (not in its charset); empty: no check"},
    }
    journal = writers.Journal(req.out, world.rank if world.size > 1 else None)
    mine = world.owns(np.arange(req.n), writers.partition_unit(req.format, params["batch_size"], req.shard_size))
    complete = previous is not None and previous.get("status") == "complete"
    if complete:  # only damaged files are redrawn; its manifest stays (the journal with each image's draw is gone)
        writers.require_manifest(req.out)
        done = {i: "" for i in range(req.n)}
    else:
        done = journal.load(req.n)
    done = writer.present({i: h for i, h in done.items() if mine[i]}, label_of)
    resumed = len(done)
    # per image: (draw kept, check verdict) as journalled, so the manifest names what was drawn
    draws: dict[int, list[str]] = {i: (journal.extra.get(i) or ["0", ""]) for i in done}
    redrawn = 0
    world.from_leader(lambda: writers.write_meta(req.out, meta))
    skip = ~mine  # what this rank does not write now: another rank's images, and those already there
    skip[list(done)] = True
    total = int(mine.sum())
    wanted = set(sample_ids(synth.plan.label, len(req.chars)))
    kept: dict[int, np.ndarray] = {}
    pending = writers.Pending()
    progress(resumed, total)
    generated = 0
    in_flight = max(2, 2 * req.workers)

    def collect(block_until: int | None = None) -> None:
        nonlocal generated
        for items in pending.ready(block_until):
            journal.append(items, draws)
            for i, h in items:
                done[i] = h
            generated += len(items)
            progress(resumed + generated, total)

    try:
        for batch in synth.batches(skip=lambda ids: bool(skip[ids].all())):
            keep = ~skip[batch.ids]
            for i, attempt, verdict, new in zip(batch.ids, batch.attempts, batch.checks, keep):
                if new:
                    draws[int(i)] = [str(attempt), verdict]
                    redrawn += attempt > 0
            hashes = writers.batch_hashes(batch.images)
            info = [{"label": lab, "style": st, "font": fo, "seed": int(se), "check": ch}
                    for lab, st, fo, se, ch in zip(batch.labels, batch.styles, batch.fonts, batch.seeds, batch.checks)
                    ] if req.format == "shards" else []
            pending.add(writer.submit(batch.ids, batch.images, batch.labels, hashes, info, keep))
            kept.update((int(i), image) for i, image in zip(batch.ids, batch.images) if i in wanted)
            collect()
            collect(block_until=in_flight)
        collect(block_until=0)
        writer.close()
    except BaseException:  # clean up without ever hiding the error that stopped the run
        writers.abandon_run(writer, collect, journal, world.leader, world.size == 1, req.out, meta, done)
        raise
    missing = total - len(done)
    if missing:
        raise PlategenError(f"{req.out}: internal error, {missing} image(s) were not written; run with --resume")
    journal.close()
    shares = world.gather((generated, resumed, redrawn, synth.model_seconds))

    def finish() -> SynthReport:
        """Rank 0, once every rank's images are written: manifest, preview, meta; the journals go."""
        nonlocal done, draws
        if world.size > 1:  # the other ranks' images: what their journals say each drew
            merged = writers.Journal(req.out)
            done = {i: "" for i in range(req.n)} if complete else merged.load(req.n)
            draws = {i: (merged.extra.get(i) or ["0", ""]) for i in done}
            if len(done) != req.n:
                raise PlategenError(f"{req.out}: {req.n - len(done)} image(s) are in no rank's journal here: "
                                    f"{writers.UNSHARED_OUT}")
        generated_all, resumed_all, redrawn_all = (sum(s[k] for s in shares) for k in range(3))
        if all(done.values()):
            duplicates = req.n - len(set(done.values()))
        else:  # resumed a complete run
            duplicates = int(previous.get("duplicates", 0))
        if complete:
            manifest = req.out / writers.MANIFEST
            check_failed, unchecked = previous.get("check_failed"), previous.get("check_unchecked", 0)
        else:
            attempts = np.array([int(draws[i][0]) for i in range(req.n)], np.int64)
            rows = ((writer.path_of(i, label), label, style, font, seed, draws[i][1])
                    for i, label, style, font, seed in synth.rows(attempts))
            manifest = writers.write_manifest(req.out, rows)
            check_failed = sum(d[1] == "fail" for d in draws.values()) if params["label_check"] else None
            unchecked = sum(d[1] == "unchecked" for d in draws.values())
        kept.update(writer.read_back(sorted(wanted - set(kept)), label_of))
        samples: dict[str, list[np.ndarray]] = {c: [] for c in req.chars}
        for i in sorted(wanted):
            samples[label_of[i]].append(kept[i])
        diversity, closest = within_class_diversity(samples)
        preview = None
        if req.preview is not None:
            headers = [render_glyph(c, fonts_for(c, fonts)[0], ckpt.config.glyph_size) for c in req.chars]
            preview = writers.write_preview(req.preview, [s.image for s in styles], req.chars, headers, samples)
        seconds = time.perf_counter() - start
        meta.update(status="complete", duplicates=duplicates, check_failed=check_failed, check_unchecked=unchecked,
                    within_class_diversity=None if math.isnan(diversity) else round(diversity, 3),
                    closest_pair=None if math.isnan(closest) else round(closest, 3),
                    seconds=round(seconds, 3), images_per_s=round(generated_all / seconds, 1) if seconds else None)
        writers.write_meta(req.out, meta)
        journal.close(remove=True)
        model_rate = sum(g / ms for g, _, _, ms in shares if ms)  # the ranks' generators run side by side
        shards = sorted(req.out.glob("shard-*.tar")) if req.format == "shards" else []
        return SynthReport(req.out, manifest, req.out / writers.META, preview, req.format, req.n,
                           dict(zip(req.chars, synth.plan.counts)), generated_all, resumed_all, duplicates, diversity,
                           closest, check_failed, redrawn_all, seconds, generated_all / seconds if seconds else 0.0,
                           model_rate, device, shards, [s[0] for s in shares] if world.size > 1 else [], unchecked,
                           routed_chars(synth), chinese.path if chinese is not None else None)

    return world.from_leader(finish)


def sample_ids(labels: np.ndarray, k: int) -> list[int]:
    """The first SAMPLES_KEPT images of each label by id: what the diversity figure and the preview
    show, whichever of them an interrupted run had already written."""
    return sorted(i for li in range(k) for i in np.flatnonzero(labels == li)[:SAMPLES_KEPT].tolist())


def json_ready(value):
    """Tuples -> lists, recursively, so values compare equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


# ---------------------------------------------------------------- measures


def within_class_diversity(samples: dict[str, list[np.ndarray]]) -> tuple[float, float]:
    """(mean, min) over labels of the pairwise RMS pixel distance (0-255) between that
    label's sampled images. Mean: how varied a class is; min: its closest pair (0 = a copy); NaN when no
    label has two images."""
    means, closest = [], math.inf
    for images in samples.values():
        if len(images) < 2:
            continue
        x = np.stack(images).reshape(len(images), -1).astype(np.float32)
        sq = (x * x).sum(1)
        # the product through torch (synth has set its threads): numpy's multi-threaded OpenBLAS took
        # seconds for these few small products on a busy 2-core machine (benchmarks/synth_profile.py)
        gram = torch.from_numpy(x).matmul(torch.from_numpy(x).T).numpy()
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0) / x.shape[1]
        iu = np.triu_indices(len(x), 1)
        d = np.sqrt(d2[iu])
        means.append(float(d.mean()))
        closest = min(closest, float(d.min()))
    if not means:  # no label has two images: nothing to compare, not "all copies"
        return math.nan, math.nan
    return float(np.mean(means)), closest
