"""Finished whole plates written in the layouts plate-OCR trainers read.

`write_plate_folder` makes a plategen data folder (`write_plate` per plate, then
`write_plate_index`) that is also a fast-plate-ocr dataset:

- ``images/<id>.png``;
- ``labels/<id>.txt`` + ``classes.txt``: YOLO character boxes as UC3M-LP publishes them
  (``class cx cy w h``, normalised, class = line index in classes.txt), one line per
  character in reading order, so `plates.load_plates` reads the folder back;
- ``plates.csv``: ``image_path,plate_text`` (fast-plate-ocr's annotation format);
- ``plate_config.yaml``: fast-plate-ocr's `PlateConfig` (alphabet with a pad character,
  max slots, image size, RGB), which its ``validate_dataset`` and ``train`` load as-is.

Beside it, for other trainers: `write_lprnet` (94x24 copies named by their text, as
LPRNet_Pytorch reads them; a plate of several rows with its rows side by side) and
`write_paddleocr` (``rec_gt.txt`` with ``path<TAB>text`` into ``images/``, or for a plate of
several rows into ``paddleocr/`` where its rows are side by side, and the ``dict.txt`` PaddleOCR's
recogniser takes as ``character_dict_path``).

These are pure writers over already-encoded PNGs: every file is written atomically, and
nothing outside the given folder is touched; journaling and resume belong to the synth run.
"""

from __future__ import annotations

import csv
import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from plategen.atomic import atomic_write_bytes, atomic_write_text
from plategen.errors import PlategenError
from plategen.layout import one_row, read_as_missing, row_count
from plategen.plates import Box, name_problem
from plategen.synth.writers import decode_png, encode_png

PLATES_CSV = "plates.csv"
PLATE_CONFIG = "plate_config.yaml"
CLASSES = "classes.txt"
LPRNET_SIZE = (94, 24)  # width, height of LPRNet's input
PADDLEOCR_ROWS = "paddleocr"  # --export paddleocr: plates of several rows laid out as one
PAD_CANDIDATES = "_#~*"  # fast-plate-ocr pads short plates with a character outside the plate alphabet
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAME_BYTES = 255  # the longest file name ext4, XFS, APFS and NTFS take
TMP_NAME_BYTES = len(".") + len(".12345678.tmp")  # what `atomic_write_bytes`'s temporary name adds


@dataclass(frozen=True)
class FinishedPlate:
    """One composed plate: its PNG, its text (no separators) and one box per character."""

    id: str  # file stem, e.g. "000042"
    png: bytes
    text: str
    boxes: tuple[Box, ...]  # pixels, in the text's order

    @property
    def size(self) -> tuple[int, int]:
        """Width and height, read from the PNG header."""
        if self.png[:8] != PNG_SIGNATURE or len(self.png) < 24:
            raise PlategenError(f"plate {self.id}: image bytes are not a PNG")
        return struct.unpack(">II", self.png[16:24])


def write_plate_folder(out: Path | str, plates: Sequence[FinishedPlate], classes: Sequence[str]) -> None:
    """images/, labels/ + classes.txt, plates.csv and plate_config.yaml for `plates`.

    `classes` is the alphabet (`label_classes` of the run's characters): the YOLO class indices and the
    fast-plate-ocr alphabet both follow its order.
    """
    out = Path(out)
    index = _check(plates, classes)
    for plate in plates:
        write_plate(out, plate, index)
    write_plate_index(out, plates, classes)


def write_plate(out: Path, plate: FinishedPlate, index: dict[str, int],
                write: Callable[[Path, bytes], None] = atomic_write_bytes) -> None:
    """``images/<id>.png`` and ``labels/<id>.txt`` of one plate; the synth run passes a `write`
    without fsync, as its journal, not each file, says what is durable."""
    write(out / "images" / f"{plate.id}.png", plate.png)
    write(out / "labels" / f"{plate.id}.txt", yolo_label(plate, index).encode("utf-8"))


def write_plate_index(out: Path, plates: Sequence[FinishedPlate], classes: Sequence[str]) -> None:
    """classes.txt, plates.csv and plate_config.yaml of plates already written by `write_plate`."""
    _check(plates, classes)
    atomic_write_text(out / CLASSES, "".join(f"{c}\n" for c in classes))
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["image_path", "plate_text"])
    writer.writerows([f"images/{plate.id}.png", plate.text] for plate in plates)
    atomic_write_text(out / PLATES_CSV, rows.getvalue())
    atomic_write_text(out / PLATE_CONFIG, plate_config(plates, classes))


def yolo_label(plate: FinishedPlate, index: dict[str, int]) -> str:
    """``class cx cy w h`` per character; six decimals give back the exact pixel box for
    plates up to 100,000 pixels wide (`plates._to_pixels` rounds)."""
    width, height = plate.size
    lines = []
    for ch, (x0, y0, x1, y1) in zip(plate.text, plate.boxes):
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        lines.append(f"{index[ch]} {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}\n")
    return "".join(lines)


def plate_config(plates: Sequence[FinishedPlate], classes: Sequence[str]) -> str:
    """fast-plate-ocr's plate config (`fast_plate_ocr.train.model.config.PlateConfig`).

    The alphabet is `classes` plus a pad character; max slots is the longest text; the
    model input is the plates' median size, so plates of one style are not resized at all.
    Strings are written as JSON, which is valid YAML for any character.
    """
    pad = next((c for c in PAD_CANDIDATES if c not in classes), None)
    if pad is None:
        raise PlategenError(f"--chars uses every pad character fast-plate-ocr could take ({PAD_CANDIDATES})")
    sizes = np.array([plate.size for plate in plates])
    width, height = (int(v) for v in np.median(sizes, axis=0).round())
    fields = {
        "max_plate_slots": max(len(plate.text) for plate in plates),
        "alphabet": "".join(classes) + pad,
        "pad_char": pad,
        "img_height": height,
        "img_width": width,
        "keep_aspect_ratio": False,
        "interpolation": "linear",
        "image_color_mode": "rgb",
    }
    return "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in fields.items())


def lprnet_name(text: str, plate_id: str) -> str:
    """An LPRNet image's file name (`write_lprnet`)."""
    return f"{text}_{plate_id}.png"


def require_lprnet_names(texts: Sequence[str], id_width: int) -> None:
    """Refuse, before any plate is drawn, a text whose ``<text>_<id>.png`` does not read back as it
    (`plates.name_problem`: lower case, a camera's name such as ``DSC_000001`` or an 8-digit text's
    ``12345678_000001``) or that a file system cannot hold: a name is at most NAME_BYTES bytes, less the temporary
    name's TMP_NAME_BYTES while it is written (`atomic_write_bytes`). Drawn texts avoid the first (`lprnet_refuse`)."""
    for text in dict.fromkeys(texts):
        problem = name_problem(Path(lprnet_name(text, "0" * id_width)))
        if problem is not None:
            raise PlategenError(f"--export lprnet: names each image by its text, and {text!r} would not read back as "
                                f"one ({problem}); leave --export lprnet out for such texts")
    longest = max(texts, key=lambda t: len(t.encode("utf-8")), default="")
    size = len(f"{longest}_{'0' * id_width}.png".encode("utf-8"))
    if size > NAME_BYTES - TMP_NAME_BYTES:
        shown = longest if len(longest) <= 24 else longest[:24] + "..."
        raise PlategenError(f"--export lprnet: names each image by its text, and {shown!r} ({len(longest)} characters) "
                            f"makes a {size}-byte file name, over the {NAME_BYTES - TMP_NAME_BYTES} a file system "
                            "takes; give shorter texts, or leave --export lprnet out")


def lprnet_refuse(id_width: int) -> Callable[[str], str | None]:
    """`layout.draw_texts`' `refuse` for a run with --export lprnet: drawn texts are traded away from names that would
    not read back, as from those fast-plate-ocr reads as empty (`layout.read_as_missing`)."""
    def refuse(text: str) -> str | None:
        name = lprnet_name(text, "0" * id_width)
        problem = name_problem(Path(name))
        return read_as_missing(text) or (None if problem is None else (
            f"whose --export lprnet name {name} would not read back as the text ({problem}); give another --pattern, "
            "or leave --export lprnet out"))
    return refuse


def write_lprnet(folder: Path | str, plates: Sequence[FinishedPlate]) -> None:
    """``<text>_<id>.png`` at 94x24: LPRNet_Pytorch takes the label from the file name up to
    the first ``_`` (so equal texts do not collide), and so does `plates.load_plates`."""
    folder = Path(folder)
    for plate in plates:
        atomic_write_bytes(folder / lprnet_name(plate.text, plate.id), encode_png(lprnet_image(plate)))


def lprnet_image(plate: FinishedPlate) -> np.ndarray:
    """The plate at LPRNet's 94x24, a plate of several rows laid out as one (`layout.one_row`)."""
    image, _ = one_row(decode_png(plate.png), plate.boxes)
    shrink = image.shape[1] > LPRNET_SIZE[0]
    return cv2.resize(image, LPRNET_SIZE, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def write_paddleocr(out: Path | str, plates: Sequence[FinishedPlate], classes: Sequence[str]) -> list[Path]:
    """``rec_gt.txt`` (``<image><TAB>text``) and ``dict.txt`` (one character a line) beside the
    images `write_plate_folder` wrote; PaddleOCR reads paths relative to its ``data_dir``, here the
    output folder. Its recognisers read one text line, so a plate of several rows is listed as its
    one-row layout (`layout.one_row`, as `--export lprnet` draws it), written to ``paddleocr/<id>.png``;
    a one-row plate as ``images/<id>.png``. Returns what it wrote."""
    out = Path(out)
    _check(plates, classes)
    lines, written = [], [out / "rec_gt.txt", out / "dict.txt"]
    for plate in plates:
        path = f"images/{plate.id}.png"
        if row_count(plate.boxes) > 1:
            path = f"{PADDLEOCR_ROWS}/{plate.id}.png"
            atomic_write_bytes(out / path, encode_png(one_row(decode_png(plate.png), plate.boxes)[0]))
        lines.append(f"{path}\t{plate.text}\n")
    if len(lines) > sum(line.startswith("images/") for line in lines):
        written.append(out / PADDLEOCR_ROWS)
    atomic_write_text(out / "rec_gt.txt", "".join(lines))
    atomic_write_text(out / "dict.txt", "".join(f"{c}\n" for c in classes))
    return written


def _check(plates: Sequence[FinishedPlate], classes: Sequence[str]) -> dict[str, int]:
    """Class indices, after refusing what no trainer could read back."""
    if not plates:
        raise PlategenError("no plates to write")
    index = {c: i for i, c in enumerate(classes)}
    if len(index) != len(classes) or any(len(c) != 1 or c.isspace() for c in classes):
        raise PlategenError(f"classes {''.join(classes)!r}: need distinct single non-space characters")
    for plate in plates:
        if len(plate.text) != len(plate.boxes):
            raise PlategenError(f"plate {plate.id}: text {plate.text!r} has {len(plate.text)} characters "
                                f"but {len(plate.boxes)} boxes")
        unknown = sorted(set(plate.text) - set(index))
        if unknown:
            raise PlategenError(f"plate {plate.id}: {' '.join(unknown)} not in the classes {''.join(classes)!r}")
        width, height = plate.size
        outside = [b for b in plate.boxes if not (0 <= b[0] < b[2] <= width and 0 <= b[1] < b[3] <= height)]
        if outside:
            raise PlategenError(f"plate {plate.id}: box {outside[0]} lies outside its {width}x{height} image")
    return index
