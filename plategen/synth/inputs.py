"""What a synth run draws from: the style plates and the characters the model and fonts can draw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from plategen.atomic import is_own_sheet
from plategen.errors import PlategenError, require_once, require_writable_name
from plategen.glyphs import Font, check_coverage
from plategen.plates import csv_listed_images, image_files, images_dir, read_image_and_bytes, synth_meta, too_small


class LowStylePlate(PlategenError):
    """A style plate too low to draw from: refused when given by name, left out of a folder (or a benchmark's styles)."""


MIN_STYLE_HEIGHT = 16  # px; the lowest plate in ../shared/data is 24 px high (a CCPD crop, 14 px characters)


def require_plate_size(path: Path | str, image: np.ndarray) -> None:
    """A style plate lower than MIN_STYLE_HEIGHT shows characters of a few pixels: its style is blur, and plates
    drawn from it are useless (a 16x4 px one was taken)."""
    if problem := too_small(image):
        raise PlategenError(f"{path}: {problem}")
    if image.shape[0] < MIN_STYLE_HEIGHT:
        raise LowStylePlate(f"{path}: image is {image.shape[1]}x{image.shape[0]} px, too low for a style plate: its "
                            f"characters are a few pixels high; give a plate image at least {MIN_STYLE_HEIGHT} px high")


MIN_STYLE_CONTRAST = 12  # grey levels between the 1st and 99th percentile; the flattest real plate in ../shared/data spans 24


def require_contrast(path: Path | str, image: np.ndarray) -> None:
    """A style plate shows characters on paper: a blank or single-colour image (a wrong file) would be taken as a
    style and give blank characters that the label check only partly catches."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    low, high = np.percentile(gray, [1, 99])
    if high - low < MIN_STYLE_CONTRAST:
        raise PlategenError(f"{path}: a flat image (98% of its pixels within grey levels {low:.0f}-{high:.0f}), not a "
                            "plate: a style plate shows its characters")


@dataclass(frozen=True)
class Style:
    name: str  # how the manifest names it: the path as given
    image: np.ndarray  # HxWx3 uint8 RGB, the whole plate
    sha256: str

WEIGH_DOUBLE = "its plates would weigh double"


LABEL_SUFFIXES = {".csv", ".tsv", ".txt", ".json", ".yaml", ".yml", ".xml"}


def require_image_name(path: Path) -> None:
    """A style file named as a label file (`--style labels.csv`) was refused as an unreadable image or as a bare
    plate with no text; it is the folder's plates the user meant. (Other names are read as images: a .tif too.)"""
    if path.suffix.lower() in LABEL_SUFFIXES:
        folder = path.parent.parent if path.parent.name == "labels" else path.parent  # YOLO: labels/ is in the folder
        raise PlategenError(f"{path}: a label file, not an image; to take the plates it lists, give its folder "
                            f"(--style {folder})")


def load_styles(specs: Sequence[Path | str]) -> list[Style]:
    """Style plates from image files and folders (a folder's `images/` or the folder itself).

    Any unreadable image is an error naming the file: a style is chosen on purpose.
    """
    if not specs:
        raise PlategenError("--style: give at least one plate image or folder")
    paths: list[Path] = []
    given: list[tuple[int, Path]] = []
    for argument, spec in enumerate(map(Path, specs)):
        if spec.is_dir():
            folder = images_dir(spec)
            # a pipe or folder among them: refused below; an inspect or preview sheet written among the plates was
            # taken for one, and characters were drawn in the style of a grid of crops
            images = image_files(folder)
            found = [p for p in images if not is_own_sheet(p)] or [p for p in csv_listed_images(spec) if not is_own_sheet(p)]
            if not found:
                made = (" (a plategen synth output of single characters: characters, not plates)"
                        if synth_meta(spec) is not None else
                        f" (only sheets plategen wrote: {images[0].name})" if images else "")
                raise PlategenError(f"{spec}: no plate images (.jpg, .png, ...) in this folder{made}")
            paths.extend(found)
            given.extend([(argument, spec)] * len(found))
        elif spec.exists():
            if spec.is_file():  # a pipe or device is refused below, by name
                require_image_name(spec)
                if is_own_sheet(spec):
                    raise PlategenError(f"{spec}: a sheet plategen wrote (an inspect or preview sheet), not a plate")
            paths.append(spec)
            given.append((argument, spec))
        else:
            raise PlategenError(f"{spec}: no such style image or folder")
    require_once(paths, "--style", WEIGH_DOUBLE, given)
    styles = []
    for path in paths:
        require_writable_name(path)
        image, data = read_image_and_bytes(path)  # one read: the hash is of the bytes decoded
        require_plate_size(path, image)
        require_contrast(path, image)
        styles.append(Style(str(path), image, hashlib.sha256(data).hexdigest()))
    return styles


def check_drawable(chars: Sequence[str], fonts: Sequence[Font], charset: Sequence[str] | None) -> list[str]:
    """Refuse, in one error, every character no shipped font covers; return those outside the
    checkpoint's charset (`charset` None: none known).

    The generator's content input is only the rendered glyph, so it can draw any glyph the fonts
    give it; the checkpoint's charset says which characters it saw real crops of, and so which
    ones its discriminator can read in the label check.
    """
    check_coverage(chars, fonts)
    known = set(charset) if charset is not None else set(chars)
    return [c for c in chars if c not in known]
