"""The `Plate` record and the importers for the label formats users already have.

Three formats, detected from the folder (``--format`` overrides):

- ``yolo``: ``images/`` + ``labels/<stem>.txt`` (``class cx cy w h``, normalised) +
  ``classes.txt``; character boxes are annotated.
- ``filename``: ``images/`` (or the folder itself) with the plate text as the file
  name, e.g. ``皖A0V262.jpg`` (anything after a first ``_`` is ignored; a name with lower-case
  letters, ``photo.jpg``, is no plate text and is listed as a problem).
- ``csv``: a ``*.csv`` with columns ``image_path`` and ``plate_text`` (extra
  columns allowed; a ``region`` column is kept), paths relative to the CSV and
  inside the data folder unless ``allow_outside``.
  This is also the fast-plate-ocr label format.

Every image is read through `read_image_and_bytes`: regular files only (a pipe
would block forever, a device never ends) and at most `MAX_IMAGE_PIXELS`,
checked in the header before decoding.

Plates that carry only text get boxes from `detect.segment_with_text` (the learned
detector decoded with the text, the classical `segment.segment_plate` when it refuses);
plates neither can segment are kept in `ImportResult.skipped` with the reason, never
dropped silently and never given guessed labels.
"""

from __future__ import annotations

import csv
import json
import hashlib
import io
import os
import re
import shlex
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from plategen.atomic import is_own_sheet
from plategen.errors import PlategenError, require_regular_file
from plategen.segment import reading_rows

# A corrupt image is our one-line error; OpenCV would print a WARN line before it.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

Format = Literal["yolo", "filename", "csv"]
FORMATS: tuple[str, ...] = ("yolo", "filename", "csv")
# what OpenCV decodes under the names cameras, browsers and scanners give (.jfif: Chrome's JPEG on Windows): a
# plate named by its text under another suffix was passed over without a word
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
TEXT_SEPARATORS = " -·._"
MAX_BOX_SIDE = 1.2  # annotators often draw a box a little past the image edge; it is clipped
MIN_PLATE_SIDE = 4  # px: a smaller image has no room for a character (OpenCV fails on 1x1 boxes)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
# Decoded size limit, checked in the header before decoding: a 1 MB PNG can claim 20000x20000 (2.5 GB).
MAX_IMAGE_PIXELS = 64_000_000
MAX_PIXELS_ENV = "PLATEGEN_MAX_IMAGE_PIXELS"  # overrides MAX_IMAGE_PIXELS
BYTES_PER_PIXEL_BOUND = 8  # no image format we read stores more (uncompressed 16-bit RGBA TIFF): a larger file is not read


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[n, 4] boxes (x0, y0, x1, y1) where a 2x3 affine `matrix` moves what they box: each the smallest
    upright box around its moved corners, as an annotator boxes a tilted character."""
    corners = np.asarray(boxes).reshape(-1, 4)[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 4, 2)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)


def clip_box(box: np.ndarray, shape: tuple[int, ...]) -> Box:
    """A box in float pixels as whole pixels inside an image of `shape`, at least one pixel wide and high."""
    height, width = shape[:2]
    x0, y0 = int(np.clip(np.floor(box[0]), 0, width - 1)), int(np.clip(np.floor(box[1]), 0, height - 1))
    return x0, y0, max(int(np.clip(np.ceil(box[2]), 0, width)), x0 + 1), max(int(np.clip(np.ceil(box[3]), 0, height)), y0 + 1)


@dataclass(frozen=True)
class Plate:
    image_path: Path
    text: str  # one character per box, in reading order
    boxes: tuple[Box, ...]
    box_origin: Literal["annotated", "estimated"]
    source: str  # the folder it was imported from
    sha256: str  # content hash of the image file: the identity used to keep test plates unseen
    region: str = ""


@dataclass(frozen=True)
class Problem:
    """A bad record: the import goes on past it and lists it at the end."""

    path: Path
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: {self.message}"


@dataclass
class ImportResult:
    folder: Path
    format: str
    plates: list[Plate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # unreadable or malformed input
    skipped: list[Problem] = field(default_factory=list)  # valid plates segmentation refused
    # ... the same plates with their text and no boxes: a whole-plate recogniser needs only the text
    text_only: list[Plate] = field(default_factory=list)

    def left_out(self) -> list[str]:
        """A line for the run's warnings when bad records were left out (none when there were none)."""
        if not self.problems:
            return []
        return [f"{self.folder}: {len(self.problems)} bad record(s) left out; first: {self.problems[0]} "
                "(plategen inspect lists them)"]

    def merge(self, other: "ImportResult") -> "ImportResult":
        return ImportResult(
            self.folder, f"{self.format}+{other.format}", self.plates + other.plates,
            self.problems + other.problems, self.skipped + other.skipped, self.text_only + other.text_only,
        )


class UnreadableImage(PlategenError):
    """An image file that cannot be used; importers list it as a `Problem` and go on."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_image(path: Path | str) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB, or raise naming the file."""
    return read_image_and_bytes(path)[0]


def read_image_and_bytes(path: Path | str) -> tuple[np.ndarray, bytes]:
    """The one gate every image passes: a regular file, a readable header within the pixel
    limit, then the decode. Also returns the file's bytes (their hash is the plate's identity)."""
    if not isinstance(path, (str, os.PathLike)):
        raise PlategenError(f"read_image: {path!r:.60} is not a file path")
    path, limit = Path(path), max_image_pixels()
    try:
        require_regular_file(path, "image")
        size = path.stat().st_size
        if size > BYTES_PER_PIXEL_BOUND * limit + 2**20:
            raise UnreadableImage(path, f"file is {size:,} bytes, more than any image within the {limit:,} pixels "
                                        f"plategen decodes (set {MAX_PIXELS_ENV} to allow larger images)")
        data = path.read_bytes()
    except UnreadableImage:
        raise
    except PlategenError as exc:
        raise UnreadableImage(path, str(exc).removeprefix(f"{path}: ")) from None
    except OSError as exc:
        raise UnreadableImage(path, f"cannot read image ({exc.strerror or exc})") from exc
    _check_pixel_count(path, data, limit)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise UnreadableImage(path, "not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), data


def max_image_pixels() -> int:
    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None:
        return MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise PlategenError(f"{MAX_PIXELS_ENV}={value!r}: not a whole number of pixels") from None
    if limit < 1:  # 0 or -5 refused every image as too large, naming each image instead of the setting
        raise PlategenError(f"{MAX_PIXELS_ENV}={value!r}: must be 1 or more pixels")
    return limit


def _check_pixel_count(path: Path, data: bytes, limit: int) -> None:
    """Refuse an image whose header claims more pixels than the limit, before decoding it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except Image.DecompressionBombError:  # PIL's own check, at twice its MAX_IMAGE_PIXELS, whatever ours is
        raise UnreadableImage(path, f"image is larger than {2 * Image.MAX_IMAGE_PIXELS:,} pixels (refused "
                                    f"unread as a decompression bomb; {MAX_PIXELS_ENV} raises plategen's own limit "
                                    "up to that)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UnreadableImage(path, "not a readable image (corrupt or unsupported format)") from None
    if width * height > limit:
        raise UnreadableImage(path, f"image is {width}x{height} px, more than the {limit:,} pixels plategen decodes "
                                    f"(set {MAX_PIXELS_ENV} to allow larger images)")


def detect_format(folder: Path) -> Format:
    if not folder.is_dir():
        raise PlategenError(f"{folder}: {'a file, not a' if folder.exists() else 'no such'} data folder")
    labels = folder / "labels"
    if labels.exists() and not labels.is_dir():
        raise PlategenError(f"{labels}: a file, not a folder of YOLO label files (labels/<image stem>.txt)")
    if labels.is_symlink() and not labels.exists():  # read as file names, digit stems became plate texts
        raise PlategenError(f"{labels}: a broken or looping link, not a folder of YOLO label files")
    parent = folder.resolve().parent
    if folder.resolve().name == "images" and _holds_labels(parent):
        raise PlategenError(f"{folder}: the images/ of the data folder {parent}, whose labels are beside it; give "
                            f"{parent} (read alone, its file names would be taken for plate texts)")
    meta = synth_meta(folder)
    # an unfinished plate run writes classes.txt last: "add classes.txt" was the wrong advice
    if meta is not None and meta.get("plates") and meta.get("format") != "shards" and meta.get("status") != "complete":
        raise PlategenError(f"{folder}: an unfinished plategen synth --plates run; finish it with its own command "
                            "and --resume (meta.json's command), then read it")
    if (folder / "labels").is_dir():
        if not (folder / "classes.txt").exists():
            raise PlategenError(f"{folder}: has labels/ (YOLO boxes) but no classes.txt naming the classes, one "
                                "character per line; add it, or pass --format if labels/ is not YOLO labels")
        return "yolo"
    if meta is not None:
        if meta.get("plates") and meta.get("format") == "shards":
            raise PlategenError(f"{folder}: a plategen synth --plates output in WebDataset shards, which only a "
                                "shard loader reads (webdataset); --format files writes a data folder plategen reads "
                                "back: images/, labels/, classes.txt")
        if meta.get("plates"):
            raise PlategenError(f"{folder}: a plategen synth --plates output without its labels/ folder (the "
                                "character boxes); restore it, or write the run again")
        raise PlategenError(f"{folder}: a plategen synth output of single characters, not a data folder "
                            "of plates (synth --plates writes one: images/, labels/, classes.txt)")
    if label_csvs(folder):
        return "csv"
    if image_files(images_dir(folder)):
        return "filename"
    raise PlategenError(f"{folder}: no plates here: no plate images (named by their plate text), no labels/ + "
                        f"classes.txt and no *.csv{_data_folders_inside(folder)}")


def _data_folders_inside(folder: Path) -> str:
    """A hint naming the data folders one level down (a folder of data folders was given), or ""."""
    try:
        inside = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                        and (_holds_labels(p) or image_files(images_dir(p))))
    except OSError:
        return ""
    if not inside:
        return ""
    shown = ", ".join(f"{name}/" for name in inside[:3]) + (f" and {len(inside) - 3} more" if len(inside) > 3 else "")
    return f"; the data folder{'s' if len(inside) > 1 else ''} {shown} inside it: give {'one' if len(inside) > 1 else 'it'}"


def _holds_labels(folder: Path) -> bool:
    """YOLO labels (labels/ + classes.txt) or a plate CSV (an image_path,plate_text header) in `folder`."""
    if (folder / "labels").is_dir() and (folder / "classes.txt").is_file():
        return True
    for path in label_csvs(folder):
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle), [])
        except (OSError, UnicodeDecodeError):
            continue
        if {"image_path", "plate_text"} <= {h.strip() for h in header}:
            return True
    return False


def synth_meta(folder: Path) -> dict | None:
    """The meta.json a synth run wrote into `folder` (None: none, or not synth's): how `--resume` finds the earlier
    run, and how an import tells a synth output (whose manifest.csv is no plate CSV) from a data folder."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("tool") == "plategen synth" else None


def known_format(fmt: str | None, folder: Path) -> Format:
    """`fmt` as asked (None: detected from `folder`); an empty `--format ''` is refused, not taken as "detect"."""
    if fmt is None:
        return detect_format(folder)
    if fmt not in FORMATS:
        raise PlategenError(f"--format {fmt!r}: unknown format; choose one of {', '.join(FORMATS)}")
    return fmt


def load_plates(folder: Path | str, fmt: str | None = None, strict: bool = False,
                progress: Callable[[Iterable], Iterable] = lambda it: it, allow_outside: bool = False,
                listing: bool = False) -> ImportResult:
    """Import one data folder. With `strict`, any bad record is an error. CSV image paths must
    stay inside the folder unless `allow_outside`: a label file from elsewhere should not make
    plategen open any file it names. A folder with no usable plate is an error, unless `listing`
    (inspect, which lists why)."""
    folder = Path(folder)
    fmt = known_format(fmt, folder)
    if not folder.is_dir():
        raise PlategenError(f"{folder}: no such data folder")
    records, result = _read_csv(folder, allow_outside) if fmt == "csv" else _READERS[fmt](folder)
    result.folder, result.format = folder, fmt
    for path, text, boxes, region in progress(records):
        _add_plate(result, folder, path, text, boxes, region)
    if strict and result.problems:
        raise PlategenError(f"{folder}: {len(result.problems)} bad record(s) (--strict); first: {result.problems[0]}"
                            f"; run plategen inspect {shlex.quote(str(folder))} to list them all")
    if not result.plates and not listing:
        raise PlategenError(nothing_usable(result))
    return result


def nothing_usable(result: ImportResult, advice: bool = True) -> str:
    """One line: the counts, the first reason, and (`advice`) where to see the rest."""
    bad = result.problems + result.skipped
    if not bad:  # nothing was even listed
        where = ("its CSV has no rows" if result.format == "csv" else
                 f"no plate images (.jpg, .png, ...) in {images_dir(result.folder)}{split_folders(result.folder)}")
        return f"{result.folder}: no plates (format {result.format}): {where}"
    line = (f"{result.folder}: no usable plates read (format {result.format}): "
            f"{len(result.problems)} bad record(s), {len(result.skipped)} not segmented; first: {bad[0]}")
    if len(bad) > 1 and advice:
        line += f"; run plategen inspect {shlex.quote(str(result.folder))} --show {len(bad)} to list them all"
    return line


def split_folders(folder: Path) -> str:
    """What to say where a folder's images/ holds only subfolders of images (Ultralytics' images/train, images/val):
    plategen reads one folder of images with labels/ beside it."""
    images = images_dir(folder)
    splits = sorted(p.name for p in images.iterdir() if p.is_dir() and image_files(p)) if images.is_dir() else []
    if not splits:
        return ""
    return (f", only in its subfolders {', '.join(splits)} (a split layout); give one split as a folder of its own, "
            "with images/, labels/ and classes.txt side by side")


def load_many(folders: Iterable[Path | str], allow_outside: bool = False) -> ImportResult:
    """Several data folders as one import (`train --data A --data B`), each read by its detected format."""
    results = [load_plates(f, allow_outside=allow_outside) for f in folders]
    merged = results[0]
    for r in results[1:]:
        merged = merged.merge(r)
    return merged



def load_plate(image_path: Path | str, fmt: str | None = None, allow_outside: bool = False) -> ImportResult:
    """One image's plate from the data folder it sits in (``<folder>/images/x.jpg`` or ``<folder>/x.jpg``).

    The folder's records are read by its importer, so the rules are the folder import's own,
    but only this image is decoded (and segmented when it has no boxes): a style plate taken
    from a large folder costs one image, not the whole folder. The result holds the plate, or
    the image's problem or skip reason; nothing when the folder's labels do not name it.
    """
    image_path = Path(image_path)
    folder = image_path.parent.parent if image_path.parent.name == "images" else image_path.parent
    fmt = known_format(fmt, folder)
    records, found = _read_csv(folder, allow_outside) if fmt == "csv" else _READERS[fmt](folder)
    target = image_path.resolve()

    def is_target(path: Path) -> bool:
        return path.name == image_path.name and path.resolve() == target

    def about_target(path: Path) -> bool:  # the image, or its YOLO label file
        return is_target(path) or (path.parent.name == "labels" and path.stem == image_path.stem)

    result = ImportResult(folder, fmt, problems=[p for p in found.problems if about_target(p.path)],
                          skipped=[p for p in found.skipped if is_target(p.path)])
    for path, text, boxes, region in records:
        if is_target(path):
            _add_plate(result, folder, path, text, boxes, region)
    return result

# A raw record: image path, text, annotated boxes (normalised cx, cy, w, h) or None, region.
RawRecord = tuple[Path, str, list[tuple[float, float, float, float]] | None, str]


def _add_plate(result: ImportResult, folder: Path, path: Path, text: str,
               norm_boxes: list[tuple[float, float, float, float]] | None, region: str) -> None:
    try:
        image, data = read_image_and_bytes(path)
    except UnreadableImage as exc:
        result.problems.append(Problem(path, exc.reason))
        return
    if problem := too_small(image):
        result.problems.append(Problem(path, problem))
        return
    sha = hashlib.sha256(data).hexdigest()
    height, width = image.shape[:2]
    if norm_boxes is not None:
        for ch, (cx, cy, w, h) in zip(text, norm_boxes):
            inside_w = (min(cx + w / 2, 1.0) - max(cx - w / 2, 0.0)) * width
            inside_h = (min(cy + h / 2, 1.0) - max(cy - h / 2, 0.0)) * height
            if min(inside_w, inside_h) < 1.0:  # no character fits there: a phantom in the text
                result.problems.append(Problem(path, f"the box of {ch!r} covers less than a pixel of the "
                                                     f"{width}x{height} image ({inside_w:.2f} x {inside_h:.2f} px)"))
                return
        boxes = tuple(_to_pixels(b, width, height) for b in norm_boxes)
        result.plates.append(Plate(path, text, boxes, "annotated", str(folder), sha, region))
        return
    from plategen.detect import segment_with_text  # loads torch: only once a text-only plate needs boxes

    seg = segment_with_text(image, text)
    if seg.boxes is None:
        result.skipped.append(Problem(path, f"not segmented: {seg.reason}"))
        result.text_only.append(Plate(path, text, (), "estimated", str(folder), sha, region))
        return
    result.plates.append(Plate(path, text, tuple(seg.boxes), "estimated", str(folder), sha, region))


def too_small(image: np.ndarray) -> str | None:
    """Why an image cannot be a plate by its size alone (None: it can)."""
    if min(image.shape[:2]) < MIN_PLATE_SIDE:
        return f"image is {image.shape[1]}x{image.shape[0]} px, too small for a plate"
    if image.shape[0] > MAX_PLATE_TALLNESS * image.shape[1]:  # segmentation scaled its width to 0 and crashed
        return f"image is {image.shape[1]}x{image.shape[0]} px, more than {MAX_PLATE_TALLNESS}x taller than wide: no plate"
    return None


MAX_PLATE_TALLNESS = 4  # height over width; a two-row motorcycle plate is about 1


def _to_pixels(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    """A normalised YOLO box (covering a pixel of the image or more) in pixels, at least one pixel wide and high
    and inside the image."""
    cx, cy, w, h = box
    x0, x1 = round((cx - w / 2) * width), round((cx + w / 2) * width)
    y0, y1 = round((cy - h / 2) * height), round((cy + h / 2) * height)
    x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    return x0, y0, min(max(x1, x0 + 1), width), min(max(y1, y0 + 1), height)


def images_dir(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def image_files(folder: Path) -> list[Path]:
    """The plate images of a folder, sorted. Dotfiles are none: macOS writes a ``._x.jpg`` of metadata beside every
    file copied to a USB stick or a network share, and the whole run was refused over the first."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def csv_listed_images(folder: Path) -> list[Path]:
    """The images a CSV data folder's label file lists, wherever in the folder they lie (a `photos/` as well as
    `images/`), that exist; none where the folder holds no single readable label CSV."""
    try:
        records, _ = _read_csv(folder)
    except PlategenError:
        return []
    return [path for path, *_ in records if path.is_file()]


def label_csvs(folder: Path) -> list[Path]:
    """The CSV files of a folder (dotfiles, such as macOS's ``._labels.csv``, are none)."""
    return sorted(p for p in folder.glob("*.csv") if not p.name.startswith("."))


def clean_text(text: str) -> str:
    """Plate text without group separators or white space (a tab too): one character per physical glyph.
    NFKC-normalised: a full-width ＦＵＷ９９９ (as CJK tools write Latin text) is the plate FUW999, not six unknown
    characters."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c not in TEXT_SEPARATORS and not c.isspace())


def _read_yolo(folder: Path) -> tuple[list[RawRecord], ImportResult]:
    result = ImportResult(folder, "yolo")
    missing = [name for name in ("classes.txt", "labels/") if not (folder / name).exists()]
    if missing:
        raise PlategenError(f"{folder}: no {' and no '.join(missing)}; the yolo format needs classes.txt (one "
                            "character per line) and labels/<image stem>.txt")
    classes = _read_classes(folder / "classes.txt")
    records: list[RawRecord] = []
    images = image_files(images_dir(folder))
    result.problems.extend(_labels_without_images(folder, {p.stem for p in images}))
    shared = Counter(p.stem for p in images)
    for image_path in images:
        label_path = folder / "labels" / f"{image_path.stem}.txt"
        if shared[image_path.stem] > 1:  # one label file, two images: a wrong one would take its text and boxes
            others = sorted(p.name for p in images if p.stem == image_path.stem and p != image_path)
            result.problems.append(Problem(image_path, f"shares its label file {label_path.name} with "
                                                       f"{', '.join(others)}; rename one image"))
            continue
        if not label_path.exists():
            if not is_own_sheet(image_path):
                result.problems.append(Problem(image_path, f"no label file {label_path.name} in labels/"))
            continue
        parsed = _parse_yolo_label(label_path, classes, result.problems)
        if parsed is None:
            continue
        if not parsed:
            result.skipped.append(Problem(label_path, "no character boxes in the label file"))
            continue
        corners = [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for _, (cx, cy, w, h) in parsed]
        parsed = [parsed[i] for row in reading_rows(corners) for i in row]
        text = "".join(ch for ch, _ in parsed)
        records.append((image_path, text, [b for _, b in parsed], ""))
    return records, result


def _labels_without_images(folder: Path, stems: set[str]) -> list[Problem]:
    """Label files of a YOLO folder with no image read beside them: a plate the user meant to give (an image
    deleted, or in a format plategen does not read) was left out without a word."""
    orphans = sorted(p for p in (folder / "labels").glob("*.txt") if not p.name.startswith(".") and p.stem not in stems)
    if not orphans:
        return []
    unread: dict[str, list[str]] = {}  # the folder listed once, not once per orphan label
    for p in sorted(images_dir(folder).iterdir()):
        if p.is_file():
            unread.setdefault(p.stem, []).append(p.name)
    problems = []
    for label in orphans:
        other = unread.get(label.stem)
        problems.append(Problem(label, f"its image {other[0]} is not in a format plategen reads "
                                       f"({', '.join(sorted(IMAGE_SUFFIXES))})" if other else
                                f"no image {label.stem}.* in {images_dir(folder).name}/ for this label file"))
    return problems


def _read_classes(path: Path) -> list[str]:
    """classes.txt: line i names class i, one character a line. A blank or repeated line would silently
    give every later class id the wrong character, so both are refused (trailing blank lines are fine)."""
    lines = [c.strip() for c in _read_text(path, "class list").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    classes = [unicodedata.normalize("NFKC", c) for c in lines]  # a full-width Ａ is the class A
    bad = [line for line, c in zip(lines, classes) if len(c) != 1]
    if not classes or bad:
        shown = [c for c in bad if c][:5] or ("a blank line" if "" in bad else "nothing")
        raise PlategenError(f"{path}: expected one character per line, got {shown}")
    first: dict[str, int] = {}
    for number, (line, ch) in enumerate(zip(lines, classes), start=1):
        if ch in first:
            read = f" (read as {ch!r})" if line != ch else ""
            raise PlategenError(f"{path}: {line!r}{read} on line {number} repeats line {first[ch]}; line i names "
                                "class i, so every class id after it would read as the wrong character")
        first[ch] = number
    return classes


YOLO_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _parse_yolo_label(path: Path, classes: list[str], problems: list[Problem]
                      ) -> list[tuple[str, tuple[float, float, float, float]]] | None:
    """Boxes of one label file, or None (with a Problem) when any line is malformed."""
    boxes = []
    numbers: list[int] = []  # each box's line
    try:
        lines = _read_text(path, "label file").splitlines()
    except PlategenError as exc:
        problems.append(Problem(path, str(exc).removeprefix(f"{path}: ")))
        return None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:  # ASCII numbers only: int() and float() take '0.1_5' and Arabic-Indic digits too
            if not all(YOLO_NUMBER.fullmatch(v) for v in fields):
                raise ValueError
            cls, values = int(fields[0]), tuple(float(v) for v in fields[1:])
        except (ValueError, IndexError):
            problems.append(Problem(path, f"expected 'class cx cy w h' numbers, got {line.strip()!r}", number))
            return None
        if len(values) != 4:
            problems.append(Problem(path, f"expected 5 fields 'class cx cy w h', got {len(fields)}", number))
            return None
        if not 0 <= cls < len(classes):
            problems.append(Problem(path, f"class {cls} out of range 0-{len(classes) - 1} (classes.txt)", number))
            return None
        if classes[cls] in TEXT_SEPARATORS:  # a plate's text drops it: its text and its boxes would disagree
            problems.append(Problem(path, f"class {cls} is {classes[cls]!r} (classes.txt), which separates groups in "
                                          "plate texts and is no character of them", number))
            return None
        cx, cy, w, h = values
        if w <= 0 or h <= 0:
            problems.append(Problem(path, f"box {values} has no width or height", number))
            return None
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and w <= MAX_BOX_SIDE and h <= MAX_BOX_SIDE):
            problems.append(Problem(path, f"box {values} is not normalised to 0-1", number))
            return None
        twin = next((i for i, (_, earlier) in enumerate(boxes) if _box_iou(earlier, values) >= SAME_BOX_IOU), None)
        if twin is not None:  # read on, it put a second character into the text at one place
            problems.append(Problem(path, f"box {values} is the box of line {numbers[twin]} again "
                                          f"({classes[cls]!r} over {boxes[twin][0]!r}; one box per character)", number))
            return None
        boxes.append((classes[cls], values))
        numbers.append(number)
    return boxes


SAME_BOX_IOU = 0.8  # two boxes overlapping this much are one character boxed twice (real uc3m-lp plates: at most 0.42)


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two YOLO (cx, cy, w, h) boxes."""
    overlap = [max(0.0, min(p + s / 2, q + t / 2) - max(p - s / 2, q - t / 2))
               for p, s, q, t in ((a[0], a[2], b[0], b[2]), (a[1], a[3], b[1], b[3]))]
    inter = overlap[0] * overlap[1]
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0  # boxes of 1e-200: their areas underflow to 0


def _read_filename(folder: Path) -> tuple[list[RawRecord], ImportResult]:
    result = ImportResult(folder, "filename")
    records: list[RawRecord] = []
    for image_path in image_files(images_dir(folder)):
        problem = name_problem(image_path)
        if problem:
            if not is_own_sheet(image_path):  # an inspect or preview sheet written among the plates is no plate
                result.problems.append(Problem(image_path, f"file name {image_path.name!r} is not a plate text "
                                                           f"({problem})"))
            continue
        text = text_of_name(image_path)
        records.append((image_path, text, None, ""))
    return records, result


# The names cameras and phones give photos (IMG_0001, IMG-20260101-WA0001, IMG20260101123456, PXL_20260101_...,
# 20260101_123456, DSC_0001, DSC01234, DSCN0001, P1010001, GOPR0001, DJI_0001, SAM_0001, WP_20260101_001): a photo
# of a plate, not a plate called IMG or DSCN0001. DSC1234 or DJI0042 (three letters, four digits) are plate texts.
CAMERA_NAME = re.compile(r"(IMG|VID|PXL|MVIMG|PANO|DSC|DJI|SAM|WP)[_-]\d|IMG\d{8}|DSC\d{5}|(DSC[NF]|GOPR|PICT|CIMG)\d{4}"
                         r"|P\d{7}$|\d{8}_\d{6}")
# A date or a time stamp (2023-05-01_14-22-33, 2023.05.01 14.22.33, 2023_5_1, 01-05-2023): its digits are no plate,
# though they clean to one ("20230501"). Without separators a date is a plate's digits as well, and only the camera's
# form is refused.
DATE_NAME = re.compile(r"((19|20)\d\d([-._])(0?[1-9]|1[0-2])\3(0?[1-9]|[12]\d|3[01])"
                       r"|(0?[1-9]|[12]\d|3[01])([-._])(0?[1-9]|1[0-2])\7(19|20)\d\d)(\D|$)")


def text_of_name(path: Path) -> str | None:
    """The plate text a file is named by (``皖A0V262.jpg``, ``1234BCD_front.jpg``), or None (`name_problem`)."""
    return None if name_problem(path) else clean_text(path.stem.split("_")[0])


def name_problem(path: Path) -> str | None:
    """Why a file's name is no plate text, or None. Plate texts have no lower-case letters, so ``photo.jpg``
    is a name; a camera's ``IMG_0001.jpg`` is one too (`CAMERA_NAME`); and a name with a second plate-like
    part after its ``_`` (``00002_AN--385-MW.jpg``, a uc3m-lp file copied out of its folder) does not say
    which part is the text, so neither is taken (``1234BCD_front`` and ``1234BCD_2`` are fine)."""
    if CAMERA_NAME.match(path.stem):
        return "a camera's name"
    if DATE_NAME.match(path.stem):
        return "a date"
    if "&" in path.stem:  # 025-95_113-154&383_386&473-...: the text is in its fields as indices
        return "no plate text holds '&', as CCPD's own file names do; name each crop by its plate text"
    control = next((c for c in path.name if unicodedata.category(c) in ("Cc", "Cs")), None)
    if control is not None:  # a newline or a byte that is not UTF-8 was called "letters and digits, no lower case"
        return f"it holds {'a byte that is not UTF-8' if unicodedata.category(control) == 'Cs' else repr(control)}"
    first, _, rest = path.stem.partition("_")
    text, other = clean_text(first), clean_text(rest)
    if not (text and text.isalnum() and text == text.upper()):
        return "letters and digits, no lower case"
    if other.isalnum() and other == other.upper() and any(c.isdigit() for c in other) and \
            any(c.isalpha() for c in other):
        return f"both {text} and {other} could be the plate text"
    return None


def _leaves_folder(relative: str) -> bool:
    """Whether a CSV path, read as written (symlinks inside the folder are the owner's choice), leaves it."""
    normal = os.path.normpath(relative)
    return os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep)


def _read_text(path: Path, what: str) -> str:
    require_regular_file(path, what)
    try:
        return path.read_text(encoding="utf-8-sig")  # Notepad's byte-order mark, as the CSV and --texts readers take
    except UnicodeDecodeError as exc:
        raise PlategenError(f"{path}: {what} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise PlategenError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def _read_csv(folder: Path, allow_outside: bool = False) -> tuple[list[RawRecord], ImportResult]:
    result = ImportResult(folder, "csv")
    csv_files = label_csvs(folder)
    if len(csv_files) != 1:
        found = f"{len(csv_files)}: {', '.join(p.name for p in csv_files[:3])}{', ...' if len(csv_files) > 3 else ''}" \
            if csv_files else "none"
        raise PlategenError(f"{folder}: expected one *.csv label file, found {found}")
    csv_path = csv_files[0]
    require_regular_file(csv_path, "CSV label file")
    records: list[RawRecord] = []
    first_row: dict[str, int] = {}
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames:  # "image_path, plate_text": the spaces are the writer's, not the column's name
                reader.fieldnames = [name.strip() for name in reader.fieldnames]
            missing = {"image_path", "plate_text"} - set(reader.fieldnames or [])
            if missing:
                raise PlategenError(
                    f"{csv_path}: missing column(s) {', '.join(sorted(missing))}; "
                    + (f"header is {','.join(reader.fieldnames)}" if reader.fieldnames else "the file is empty")
                    + "; expected image_path,plate_text[,...]"
                )
            names = list(reader.fieldnames or [])
            twice = sorted({name for name in names if names.count(name) > 1 and name in ("image_path", "plate_text")})
            if twice:  # DictReader keeps the last column of a name: every row read the empty one as bad
                raise PlategenError(f"{csv_path}: the header names {', '.join(twice)} twice ({reader.fieldnames}); "
                                    "give each column once")
            previous = reader.line_num
            for row in reader:
                line = reader.line_num
                if any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in row.values()):
                    raise PlategenError(f"{csv_path}:{previous + 1}: a quoted field runs on to line {line}, taking "
                                        "the rows between with it (a stray \"?); fix the quoting")
                previous = line
                image_rel, raw_text = (row.get("image_path") or "").strip(), row.get("plate_text") or ""
                text = clean_text(raw_text)
                # DictReader's key for fields past the header's: an unquoted comma shifted them (a trailing comma,
                # as spreadsheets write, is an empty one)
                extra = [v for v in row.get(None) or [] if v.strip()]
                why = (f"{len(names) + len(extra)} fields, the header has {len(names)}" if extra
                       else "no image_path" if not image_rel else "a NUL byte in image_path" if "\0" in image_rel
                       else "no plate_text" if not text else
                       f"plate_text has {next(c for c in text if not c.isalnum())!r}, not a letter or digit"
                       if not text.isalnum() else None)
                if why:
                    result.problems.append(Problem(csv_path, f"bad row ({why}): image_path={image_rel!r} "
                                                             f"plate_text={raw_text!r}", line))
                    continue
                if not allow_outside and _leaves_folder(image_rel):
                    result.problems.append(Problem(
                        csv_path, f"image_path {image_rel!r} points outside the data folder {folder} (absolute or "
                        "through ..); refused unless --allow-outside-paths", line))
                    continue
                key = os.path.abspath(csv_path.parent / image_rel)
                if key in first_row:  # counted twice, or two texts for one image
                    result.problems.append(Problem(csv_path, f"image_path {image_rel!r} repeats row {first_row[key]}", line))
                    continue
                first_row[key] = line
                records.append((csv_path.parent / image_rel, text, None, (row.get("region") or "").strip()))
    except UnicodeDecodeError as exc:
        raise PlategenError(f"{csv_path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise PlategenError(f"{csv_path}: malformed CSV ({exc})") from exc
    return records, result


_READERS: dict[str, Callable[[Path], tuple[list[RawRecord], ImportResult]]] = {
    "yolo": _read_yolo,
    "filename": _read_filename,
    "csv": _read_csv,  # load_plates passes allow_outside
}
