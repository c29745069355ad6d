"""What an import read, as numbers and as a contact sheet a person can check at a glance."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from plategen.dataset import CharSamples, build_samples
from plategen.glyphs import FONTS_DIR
from plategen.plates import ImportResult, Problem
from plategen.atomic import atomic_save_png

SHEET_FONT = FONTS_DIR / "WenQuanYiMicroHei-plates.ttf"  # covers Latin and the Chinese plate characters


@dataclass(frozen=True)
class ImportSummary:
    folder: str
    format: str
    plates: int
    characters: int
    annotated: int  # characters with annotated boxes
    estimated: int  # characters with boxes from segmentation
    per_class: dict[str, int]
    skipped_reasons: dict[str, int]
    problems: list[Problem]
    skipped: list[Problem]
    copies: list[tuple[Path, Path]]  # (an image, the earlier image with the same bytes): one plate counted twice


def exact_copies(result: ImportResult) -> list[tuple[Path, Path]]:
    """Images whose bytes equal an earlier one's, in import order (a folder merged twice, a re-export)."""
    first: dict[str, Path] = {}
    copies = []
    for plate in result.plates + result.text_only:
        if plate.sha256 in first:
            copies.append((plate.image_path, first[plate.sha256]))
        else:
            first[plate.sha256] = plate.image_path
    return copies


def summarize(result: ImportResult) -> ImportSummary:
    counts = Counter(c for p in result.plates for c in p.text)
    annotated = sum(len(p.text) for p in result.plates if p.box_origin == "annotated")
    total = sum(counts.values())
    return ImportSummary(
        str(result.folder), result.format, len(result.plates), total, annotated, total - annotated,
        dict(sorted(counts.items(), key=lambda kv: (not kv[0].isascii(), kv[0]))),
        dict(Counter(reason_kind(p.message) for p in result.skipped).most_common()),
        list(result.problems), list(result.skipped), exact_copies(result),
    )


def reason_kind(message: str) -> str:
    """Group reasons that differ only by numbers ("found 5 ... for 7") or by the plate text they quote into one
    line: numbers become N, a quoted text '...' (its digits are no count: '0' once read as 'N'); an apostrophe
    after a letter ("the blob's colour") opens no quote."""
    return re.sub(r"(?<![A-Za-z])'[^']*'|\d+", lambda m: "'...'" if m[0].startswith("'") else "N", message)


def contact_sheet(samples: CharSamples, per_class: int = 24, seed: int = 0, scale: int = 2) -> Image.Image:
    """One row per class: the label, then up to `per_class` crops drawn at random."""
    rng = np.random.default_rng(seed)
    size = samples.crops.shape[1] * scale
    label_width = size + 8
    rows = [c for c in range(len(samples.charset)) if np.any(samples.labels == c)]
    sheet = Image.new("RGB", (label_width + per_class * size, max(len(rows), 1) * size), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(SHEET_FONT), int(size * 0.7))
    for row, cls in enumerate(rows):
        members = np.flatnonzero(samples.labels == cls)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        draw.text((label_width / 2, row * size + size / 2), samples.charset[cls], fill="black", font=font, anchor="mm")
        for col, idx in enumerate(sorted(chosen)):
            crop = Image.fromarray(samples.crops[idx]).resize((size, size), Image.NEAREST)
            sheet.paste(crop, (label_width + col * size, row * size))
    return sheet


def inspect_import(result: ImportResult, sheet_path: Path,
                   progress: Callable[[Iterable], Iterable] = lambda it: it) -> ImportSummary:
    """Summarise an import and write its contact sheet of character crops."""
    samples = build_samples(result.plates, progress=progress)
    atomic_save_png(contact_sheet(samples), sheet_path)
    return summarize(result)

