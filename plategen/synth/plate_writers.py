"""Output of `plategen synth --plates`: a plategen data folder, written plate by plate.

``images/<id>.png`` and ``labels/<id>.txt`` (YOLO character boxes, classes =
`charset.label_classes` of the run's characters) are written in worker threads as plates are
composed, and journalled like the character path's files (`writers.Journal`), by
`exports.write_plate`; the run adds
``classes.txt``, ``plates.csv`` and ``plate_config.yaml`` at the end with
`exports.write_plate_index`, so the folder is what `exports.write_plate_folder` makes.
With ``--format shards`` plates go to the character path's tar shards instead
(`PlateShardWriter`), with their text and boxes beside each PNG.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Sequence

import numpy as np

from plategen.synth.exports import FinishedPlate, write_plate
from plategen.synth.writers import ShardWriter, _intact, _Writer, encode_png, os_error, write_file

PLATE_DIRS = ("images", "labels")
MANIFEST_FIELDS = ("image_path", "text", "style", "seed", "check")


class PlateFileWriter(_Writer):
    """Whole plates as a plategen data folder: ``images/<id>.png`` and ``labels/<id>.txt`` (YOLO
    boxes, ids = lines of `classes`); `exports.write_plate_index` adds the rest at the end."""

    format = "files"

    def __init__(self, out: Path, classes: Sequence[str], n: int, workers: int = 2):
        super().__init__(out, n, workers)
        self.index = {c: i for i, c in enumerate(classes)}
        try:
            for name in PLATE_DIRS:
                (out / name).mkdir(exist_ok=True)
        except OSError as exc:
            raise os_error(out, exc) from exc

    def path_of(self, i: int, text: str = "") -> str:
        return f"images/{self.key(i)}.png"

    def submit(self, ids: np.ndarray, images: Sequence[np.ndarray], texts: Sequence[str], hashes: Sequence[str],
               meta: Sequence[dict], keep: np.ndarray) -> list[Future]:
        """As the character writers; each plate's `meta` holds its character boxes."""
        jobs = [(int(i), images[k], texts[k], meta[k]["boxes"], hashes[k]) for k, i in enumerate(ids) if keep[k]]
        return [self.pool.submit(self._write, jobs[s:s + 8]) for s in range(0, len(jobs), 8)]

    def _write(self, jobs) -> list[tuple[int, str]]:
        for i, image, text, boxes, _ in jobs:
            plate = FinishedPlate(self.key(i), encode_png(image), text, tuple(map(tuple, boxes)))
            write_plate(self.out, plate, self.index, write_file)
        return [(i, h) for i, _, _, _, h in jobs]

    def present(self, done: dict[int, str], texts: Sequence[str]) -> dict[int, str]:
        """The journalled plates whose image decodes to the journalled pixels and whose label file has a box line
        for each of its characters (an emptied or cut label is drawn again)."""
        keep = {}
        for i, h in done.items():
            try:
                png = (self.out / self.path_of(i)).read_bytes()
                label = (self.out / "labels" / f"{self.key(i)}.txt").read_bytes()
            except OSError:
                continue
            lines = label.decode("utf-8", "replace").splitlines()
            if len(lines) == len(texts[i]) and all(len(line.split()) == 5 for line in lines) and _intact(png, h):
                keep[i] = h
        return keep


class PlateShardWriter(ShardWriter):
    """Plates in WebDataset-style shards: ``<id>.png``, ``<id>.txt`` (the text) and ``<id>.json``
    (text, character boxes, style, seed, check); no class index, a plate is a sequence."""

    with_class_index = False
