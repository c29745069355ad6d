"""Output formats of `plategen synth` and the bookkeeping that makes a run safe to interrupt.

Two formats:
- ``files``: ``<out>/<label>/<id>.png`` (label folder via `charset.safe_label_dir`);
- ``shards``: WebDataset-style tar shards ``<out>/shard-000000.tar``, each holding, per image,
  ``<id>.png``, ``<id>.txt`` (the label, UTF-8), ``<id>.cls`` (its index in meta.json's ``classes``,
  `charset.label_classes`: ids that do not move with --chars; webdataset's class convention) and ``<id>.json`` (label, style, font, seed, check).

Both write ``manifest.csv`` (``image_path,label,style,font,seed,check``, paths relative to the CSV;
for shards ``shard-000000.tar#000123.png``) and ``meta.json``, each atomically.

While a run is going, ``progress.tsv`` records ``id<TAB>pixel hash`` for every image whose
file (or whole shard) is completely written; ``--resume`` keeps a journalled image only if its
file still decodes to those pixels. PNG encoding and writing happen in worker threads; the main
thread journals results in plan order, so nothing depends on their timing. Under torchrun each
rank keeps its own journal, ``progress-rank<R>.tsv``; a resume reads them all, whatever the
number of ranks it runs with.

A run holds an exclusive lock on ``<out>/.plategen.lock`` (``flock``, which the OS drops when
the process dies, so a killed run blocks nothing); a second run into the same folder stops
with one line before it touches anything.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence, Sized

import cv2
import numpy as np
from PIL import Image

from plategen.atomic import (OutputLock, atomic_save_png, atomic_write_text, is_own_sheet,
                             require_no_file_in_the_way, temp_leftovers)
from plategen.charset import label_classes, safe_label_dir
from plategen.errors import PlategenError
from plategen.plates import synth_meta

META = "meta.json"
MANIFEST = "manifest.csv"
PREVIEW_CHARS = 100  # rows of the preview sheet at most
PREVIEW_NAME = "preview.png"  # the CLI's sheet in --out when --preview is not given; --overwrite deletes it
JOURNAL = "progress.tsv"
RANK_JOURNAL = "progress-rank{}.tsv"  # one per rank under torchrun
_JOURNAL_NAME = re.compile(r"progress(-rank[0-9]+)?\.tsv")
LOCK = ".plategen.lock"
# what rank 0 says when the other ranks' journals lack images or plates they reported written
UNSHARED_OUT = ("another rank wrote them where this one cannot see them; --out must be one folder every machine "
                "shares (a network file system), or run synth on each machine alone, each with its own --seed and "
                "--out")
MANIFEST_FIELDS = ("image_path", "label", "style", "font", "seed", "check")
FORMATS = ("files", "shards")
SHARD_PATTERN = "shard-{:06d}.tar"
# zlib level 1, Huffman coding only, the Sub filter on every row: the images carry noise, so LZ77 matches
# and per-row filter trials cost time and find little; measured (benchmarks/png_params.py) about half the
# CPU of level 1's defaults, files within 6% of their size
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def os_error(path: Path | str, exc: OSError) -> PlategenError:
    """A one-line message for a failed write, with the way out."""
    if exc.errno == errno.ENOSPC:
        return PlategenError(f"{path}: no space left on the device; free some space, then run the same "
                             "command with --resume to finish")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PlategenError(f"{path}: cannot write here ({exc.strerror}); choose another --out")
    require_no_file_in_the_way(Path(path))
    return PlategenError(f"{path}: cannot write ({exc.strerror or exc})")


# ---------------------------------------------------------------- the output folder


def abandon_run(writer, collect, journal: Journal, leader: bool, single: bool, out: Path, meta: dict,
                done: Sized) -> None:
    """After the error that stops a run: keep what already finished (so --resume redoes as little as
    possible), close the journal and mark the run interrupted, never raising over that error. Under
    torchrun only the leader writes meta, without a "done" count: the other ranks' counts are theirs."""
    writer.abort()
    with contextlib.suppress(BaseException):
        collect(block_until=0)
    with contextlib.suppress(PlategenError):
        journal.close()
    if leader:
        with contextlib.suppress(PlategenError):
            # `done` is counted after the last collect: the images it journaled count too
            write_meta(out, {**meta, "status": "interrupted", **({"done": len(done)} if single else {})})


def write_meta(out: Path, meta: dict) -> None:
    atomic_write_text(out / META, json.dumps(meta, ensure_ascii=False, indent=2) + "\n")


def prepare_out(out: Path, resume: bool, overwrite: bool) -> tuple[OutputLock, dict | None]:
    """Lock `out` for this run and make it ready; return the lock and, when resuming, the earlier run's meta.

    A non-empty folder is refused unless `resume` (it must hold a plategen synth run) or
    `overwrite` (it must hold a plategen synth run too: only that run's files are deleted).
    Every refusal comes before anything is created; the checks are repeated under the lock.
    """
    check_out(out, resume, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".plategen-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise os_error(out, exc) from exc
    lock = OutputLock(out / LOCK, lambda: _busy(out), os_error)  # a full disk: "--resume to finish", as before
    try:
        previous = _earlier_run(out, resume, overwrite, ours=True)
        if previous is not None:  # what a killed write left: this run writes those files again, or clears them
            for folder in [out] + [f for f, _ in _run_folders(out, previous) if f.is_dir()]:
                for leftover in temp_leftovers(folder):
                    leftover.unlink(missing_ok=True)
        if overwrite and previous is not None:
            clear_run(out, previous)
            previous = None
    except BaseException:
        lock.release()
        raise
    return lock, previous


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """`prepare_out`'s refusals, without the lock: a run checks its folder before it loads its inputs too (loading
    a folder of style plates takes seconds to minutes)."""
    if resume and overwrite:
        raise PlategenError("--resume and --overwrite exclude each other")
    _earlier_run(out, resume, overwrite)


def _earlier_run(out: Path, resume: bool, overwrite: bool, ours: bool = False) -> dict | None:
    """The meta of the synth run in `out` that `resume` / `overwrite` may take over, None for a
    new or empty folder; anything else is refused. `ours`: this process holds the lock."""
    if out.exists() and not out.is_dir():
        raise PlategenError(f"{out}: exists and is not a folder")
    if not out.is_dir():
        return None
    if not ours and OutputLock.held(out / LOCK):
        raise _busy(out)
    if not any(p.name != LOCK for p in out.iterdir()):  # a killed run's lock file does not count
        return None
    meta = synth_meta(out)
    if resume:
        if meta is None:
            raise PlategenError(f"{out}: no {META} of a plategen synth run here, nothing to resume")
        _run_folders(out, meta)  # a resumed run writes into them: none may lead out of `out`
        return meta
    if overwrite:
        if meta is None:
            raise PlategenError(f"{out}: not empty and not a plategen synth output (no {META}); "
                                "--overwrite only replaces an earlier synth run, choose another --out")
        return meta
    raise PlategenError(f"{out}: exists and is not empty; --resume finishes an interrupted run there, "
                        "--overwrite replaces it, or choose another --out")


def _busy(out: Path) -> PlategenError:
    return PlategenError(f"{out}: another plategen run (synth or benchmark) is writing to this folder ({LOCK} is "
                         "locked); wait for it to finish or choose another --out")


# what a files run writes into a label folder: <id>.png with a zero-padded id
_IMAGE_NAME = re.compile(r"[0-9]{6,}\.png")
# what a --plates run writes: its folders with the names of their files, and its other files
PLATE_FOLDERS = {"images": _IMAGE_NAME, "labels": re.compile(r"[0-9]{6,}\.txt"),
                 "lprnet": re.compile(r"[^_/]+_[0-9]{6,}\.png"), "paddleocr": _IMAGE_NAME}
EXPORT_FOLDERS = ("lprnet", "paddleocr")  # ... written with --export of that name
PLATE_FILES = ("classes.txt", "plates.csv", "plate_config.yaml")  # a --plates run in files, at its end
PADDLEOCR_FILES = ("rec_gt.txt", "dict.txt")  # ... with --export paddleocr


def _run_folders(out: Path, meta: dict) -> list[tuple[Path, re.Pattern]]:
    """The folders an earlier run writes (each with the names of its files), checked to be the ones
    plategen gives them, directly inside `out`; meta.json is not trusted further than that."""
    label_dirs = meta.get("label_dirs", {})
    if not isinstance(label_dirs, dict):
        raise PlategenError(f"{out / META}: label_dirs is not a mapping; choose another --out")
    root, folders = out.resolve(), []
    for label, name in label_dirs.items():
        target = out / str(name)
        if target.is_symlink():
            raise PlategenError(f"{target}: a link where plategen writes a folder; choose another --out")
        if not isinstance(label, str) or name != safe_label_dir(label) or target.resolve().parent != root:
            raise PlategenError(f"{out / META}: label folder {name!r} of {label!r} is not one plategen writes "
                                "inside --out; choose another --out")
        folders.append((target, _IMAGE_NAME))
    if meta.get("plates") is True and meta.get("format", "files") == "files":
        folders += [(out / name, pattern) for name, pattern in PLATE_FOLDERS.items()
                    if name not in EXPORT_FOLDERS or name in (meta.get("exports") or ())]
    for target, _ in folders:
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise PlategenError(f"{target}: a link or a file where plategen writes a folder; choose another --out")
    return folders


def require_manifest(out: Path) -> None:
    """A complete run that is resumed keeps its manifest: the journal of each image's draw and check is gone."""
    if not (out / MANIFEST).is_file():
        raise PlategenError(f"{out / MANIFEST}: missing from a complete run, and its check column cannot be rebuilt "
                            "(the run's journal is gone); run again with --overwrite")


def clear_run(out: Path, meta: dict) -> None:
    """Delete what an earlier synth run wrote, and nothing else.

    Everything is checked before the first deletion: a label folder must be the folder this
    plategen gives that label, directly inside `out` (no link), holding only image files (a
    --plates run's folders only the files it names so, see PLATE_FOLDERS); meta.json
    is the earlier run's own record and is not trusted further than that.
    """
    try:
        folders = _run_folders(out, meta)
    except PlategenError as exc:
        raise PlategenError(f"{exc}; not deleting anything") from None
    shards_run, exports = meta.get("format", "files") == "shards", meta.get("exports") or ()
    plate_files = PLATE_FILES + (PADDLEOCR_FILES if "paddleocr" in exports else ())
    files = [MANIFEST, *(plate_files if meta.get("plates") is True and not shards_run else ()), META]
    targets = []
    for target, pattern in folders:
        if not target.exists():
            continue
        strays = [p.name for p in target.iterdir() if not (pattern.fullmatch(p.name) and p.is_file()
                                                           and not p.is_symlink())]
        if strays:
            raise PlategenError(f"{target}: holds {strays[0]!r}, which plategen did not write; not deleting "
                                "anything, move it out or choose another --out")
        targets.append(target)
    own_preview = [out / PREVIEW_NAME] if is_own_sheet(out / PREVIEW_NAME) else []  # the CLI's sheet of that run
    shards = [p for p in list(out.glob("shard-*.tar")) + list(out.glob("shard-*.tar.part"))
              if re.fullmatch(r"shard-[0-9]{6,}\.tar(\.part)?", p.name) and p.is_file()] if shards_run else []
    try:
        for target in targets:
            shutil.rmtree(target)
        for path in shards + journal_paths(out) + own_preview:
            path.unlink()
        for name in files:
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise os_error(out, exc) from exc


def journal_paths(out: Path) -> list[Path]:
    """The journal of a run alone and those of torchrun's ranks, whichever are in `out`."""
    return sorted(p for p in out.glob("progress*.tsv") if _JOURNAL_NAME.fullmatch(p.name) and p.is_file())


class Journal:
    """`id<TAB>hash[<TAB>extra...]` lines for completely written images; a torn last line is
    ignored. The extra fields are the caller's (synth keeps each image's draw and check there).
    `rank`: the journal this rank of a torchrun run appends to (None: a run alone)."""

    def __init__(self, out: Path, rank: int | None = None):
        self.out = out
        self.path = out / (JOURNAL if rank is None else RANK_JOURNAL.format(rank))
        self.handle = None
        self.extra: dict[int, list[str]] = {}

    def load(self, n: int) -> dict[int, str]:
        """id -> hash of every image below n in any journal of `out` (each rank's: the same image
        journalled twice has the same line); their extra fields go to `self.extra`."""
        done: dict[int, str] = {}
        for path in journal_paths(self.out):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            for line in text.split("\n"):
                parts = line.split("\t")
                if len(parts) >= 2 and parts[0].isdigit() and len(parts[1]) == 16 and int(parts[0]) < n:
                    done[int(parts[0])] = parts[1]
                    self.extra[int(parts[0])] = parts[2:]
        return done

    def append(self, items: Sequence[tuple[int, str]], extra: dict[int, Sequence[str]] | None = None) -> None:
        if not items:
            return
        extra = extra or {}
        try:
            if self.handle is None:
                self.handle = self.path.open("a", encoding="utf-8")
                if self.handle.tell():  # start on a fresh line after a torn write
                    self.handle.write("\n")
            self.handle.write("".join("\t".join([str(i), h, *extra.get(i, ())]) + "\n" for i, h in items))
            self.handle.flush()
        except OSError as exc:
            raise os_error(self.path, exc) from exc

    def close(self, remove: bool = False) -> None:
        """`remove`: the run is complete; every journal of `out` goes, the ranks' too."""
        handle, self.handle = self.handle, None
        try:
            if handle is not None:
                handle.close()  # flushes: on a full disk this is where the last lines fail
            for path in journal_paths(self.out) if remove else ():
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise os_error(self.path, exc) from exc


def batch_hashes(images: np.ndarray) -> list[str]:
    """The journal's identity of each image's pixels: equal hashes = exact duplicates."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(row.data, digest_size=8).hexdigest() for row in flat]


def _intact(png: bytes, expected: str) -> bool:
    """Whether the bytes decode to an image with the journalled pixel hash ("" = no hash recorded)."""
    try:
        image = decode_png(png)
    except PlategenError:
        return False
    return not expected or batch_hashes(image[None])[0] == expected


def encode_png(image: np.ndarray) -> bytes:
    """RGB uint8 -> PNG bytes (deterministic for the same pixels)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), PNG_PARAMS)
    if not ok:
        raise PlategenError("PNG encoding failed")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None  # empty: cv2 asserts
    if image is None:
        raise PlategenError("not a readable PNG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------- writers


def id_width(n: int) -> int:
    """Digits of the ids of a run of `n` (``000042``): at least six, so names sort in order."""
    return max(6, len(str(max(n - 1, 0))))


class _Writer:
    """Encodes and writes batches in worker threads; `submit` returns a future of the
    (id, hash) pairs that became durable with that batch."""

    format = ""

    def __init__(self, out: Path, n: int, workers: int):
        self.out = out
        self.width = id_width(n)
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="plategen-writer")

    def key(self, i: int) -> str:
        return f"{i:0{self.width}d}"

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class FileWriter(_Writer):
    format = "files"

    def __init__(self, out: Path, chars: Sequence[str], n: int, workers: int = 2, empty: Sequence[str] = ()):
        super().__init__(out, n, workers)
        self.dirs = {c: safe_label_dir(c) for c in chars}
        try:  # no folder for a character without images (--n under the alphabet): ImageFolder refuses empty ones
            for name in (self.dirs[c] for c in chars if c not in set(empty)):
                (out / name).mkdir(exist_ok=True)
        except OSError as exc:
            raise os_error(out, exc) from exc

    def path_of(self, i: int, label: str) -> str:
        return f"{self.dirs[label]}/{self.key(i)}.png"

    def submit(self, ids: np.ndarray, images: np.ndarray, labels: Sequence[str], hashes: Sequence[str],
               meta: Sequence[dict], keep: np.ndarray) -> list[Future]:
        jobs = [(int(i), images[k], labels[k], hashes[k]) for k, i in enumerate(ids) if keep[k]]
        step = max(16, -(-len(jobs) // 4))
        return [self.pool.submit(self._write, jobs[s:s + step]) for s in range(0, len(jobs), step)]

    def _write(self, jobs) -> list[tuple[int, str]]:
        for i, image, label, _ in jobs:
            write_file(self.out / self.path_of(i, label), encode_png(image))
        return [(i, h) for i, _, _, h in jobs]

    def present(self, done: dict[int, str], labels: Sequence[str]) -> dict[int, str]:
        """The journalled images whose files are still there and decode to the journalled pixels."""
        keep = {}
        for i, h in done.items():
            try:
                png = (self.out / self.path_of(i, labels[i])).read_bytes()
            except OSError:
                continue
            if _intact(png, h):
                keep[i] = h
        return keep

    def read_back(self, ids: Sequence[int], labels: Sequence[str]) -> dict[int, np.ndarray]:
        """Images already on disk, by id."""
        return {i: read_image_at(self.out, self.path_of(i, labels[i])) for i in ids}


def write_file(path: Path, data: bytes) -> None:
    """A plain write (no fsync: the journal, not the file, says what is durable). A write that fails
    removes its file, so no cut-off image is left under its final name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise os_error(path, exc) from exc
    try:
        try:
            left = memoryview(data)
            while left:  # a short write (a disk filling up): the next write says why, e.g. ENOSPC
                written = os.write(fd, left)
                if written == 0:
                    raise OSError(errno.EIO, "short write")
                left = left[written:]
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise os_error(path, exc) from exc


class ShardWriter(_Writer):
    """Shard k holds ids [k*size, (k+1)*size); it is written as `.part` and renamed when whole,
    and only then journalled. Tar headers carry no time or owner, so bytes are reproducible."""

    format = "shards"
    with_class_index = True  # characters: .cls holds the class index (webdataset's convention)

    def __init__(self, out: Path, chars: Sequence[str], n: int, workers: int = 2, shard_size: int = 10000):
        super().__init__(out, n, workers)
        self.class_index = {c: i for i, c in enumerate(label_classes(chars))}
        if shard_size < 1:
            raise PlategenError(f"--shard-size {shard_size}: must be at least 1")
        self.n, self.size = n, shard_size
        self.tar_pool = ThreadPoolExecutor(1, thread_name_prefix="plategen-tar")
        self.tar: tarfile.TarFile | None = None
        self.shard = -1
        self.next_id = -1
        self.written: list[tuple[int, str]] = []

    def shard_name(self, i: int) -> str:
        return SHARD_PATTERN.format(i // self.size)

    def path_of(self, i: int, label: str) -> str:
        return f"{self.shard_name(i)}#{self.key(i)}.png"

    def shard_ids(self, shard: int) -> range:
        return range(shard * self.size, min((shard + 1) * self.size, self.n))

    def submit(self, ids, images, labels, hashes, meta, keep) -> list[Future]:
        idx = [k for k in range(len(ids)) if keep[k]]
        if not idx:
            return []
        encoded = self.pool.submit(lambda: [encode_png(images[k]) for k in idx])
        items = [(int(ids[k]), labels[k], hashes[k], meta[k]) for k in idx]
        return [self.tar_pool.submit(self._append, items, encoded)]

    def _append(self, items, encoded: Future) -> list[tuple[int, str]]:
        pngs = encoded.result()
        durable: list[tuple[int, str]] = []
        for (i, label, h, meta), png in zip(items, pngs):
            shard = i // self.size
            if shard != self.shard:
                if i != self.shard_ids(shard).start:
                    raise PlategenError(f"internal: shard {shard} would start at image {i}")
                self._open(shard)
            elif i != self.next_id:
                raise PlategenError(f"internal: image {i} out of order in shard {shard}")
            key = self.key(i)
            self._add(f"{key}.txt", label.encode("utf-8"))
            if self.with_class_index:
                self._add(f"{key}.cls", str(self.class_index[label]).encode("ascii"))
            self._add(f"{key}.json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"))
            self._add(f"{key}.png", png)
            self.written.append((i, h))
            self.next_id = i + 1
            if self.next_id == self.shard_ids(shard).stop:
                durable.extend(self._finish())
        return durable

    def _open(self, shard: int) -> None:
        self.shard = shard
        path = self.out / (SHARD_PATTERN.format(shard) + ".part")
        try:
            self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        except OSError as exc:
            raise os_error(path, exc) from exc
        self.written = []

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        try:
            self.tar.addfile(info, io.BytesIO(data))
        except OSError as exc:
            raise os_error(self.out / (SHARD_PATTERN.format(self.shard) + ".part"), exc) from exc

    def _finish(self) -> list[tuple[int, str]]:
        final = self.out / SHARD_PATTERN.format(self.shard)
        try:
            self.tar.close()
            os.replace(str(final) + ".part", final)
        except OSError as exc:
            raise os_error(final, exc) from exc
        self.tar, self.shard = None, -1
        done, self.written = self.written, []
        return done

    def present(self, done: dict[int, str], labels: Sequence[str]) -> dict[int, str]:
        """Journalled images of whole shards still on disk whose every image decodes to the journalled
        pixels; a shard with a gap or a damaged image is redone."""
        keep: dict[int, str] = {}
        for shard in range(-(-self.n // self.size)):
            ids = self.shard_ids(shard)
            if all(i in done for i in ids) and self._shard_intact(shard, {i: done[i] for i in ids}):
                keep.update((i, done[i]) for i in ids)
        return keep

    def _shard_intact(self, shard: int, expected: dict[int, str]) -> bool:
        pngs = self._pngs(shard, set(expected))
        return pngs is not None and set(pngs) == set(expected) and all(
            _intact(png, expected[i]) for i, png in pngs.items())

    def _pngs(self, shard: int, ids: set[int]) -> dict[int, bytes] | None:
        """The PNG bytes of `ids` in shard `shard`, or None if it cannot be read."""
        found: dict[int, bytes] = {}
        try:
            with tarfile.open(self.out / SHARD_PATTERN.format(shard), "r") as tar:
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if ext == "png" and key.isdigit() and int(key) in ids:
                        found[int(key)] = tar.extractfile(member).read()
        except (OSError, tarfile.TarError):
            return None
        return found

    def read_back(self, ids: Sequence[int], labels: Sequence[str]) -> dict[int, np.ndarray]:
        """Images already on disk, by id; each shard is read once."""
        images: dict[int, np.ndarray] = {}
        by_shard: dict[int, set[int]] = {}
        for i in ids:
            by_shard.setdefault(i // self.size, set()).add(i)
        for shard, wanted in sorted(by_shard.items()):
            pngs = self._pngs(shard, wanted) or {}
            if set(pngs) != wanted:
                raise PlategenError(f"{self.out / SHARD_PATTERN.format(shard)}: cannot read its images back")
            images.update((i, decode_png(png)) for i, png in pngs.items())
        return images

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.tar_pool.shutdown(wait=True)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.tar_pool.shutdown(wait=True, cancel_futures=True)
        if self.tar is not None:  # the unfinished shard: never journalled, --resume writes it anew
            with contextlib.suppress(OSError):
                self.tar.close()
            with contextlib.suppress(OSError):
                (self.out / (SHARD_PATTERN.format(self.shard) + ".part")).unlink()


def partition_unit(fmt: str, batch_size: int, shard_size: int) -> int:
    """The images a torchrun rank takes at a time (unit k goes to rank k mod N; `World.owns`).
    Files: a generator batch, so every rank draws just its own batches, each as one process
    would. Shards: a shard, so each shard has one writer and keeps its name and bytes whatever
    the number of ranks; a batch across two ranks' shards is drawn by both, each keeping its part."""
    return shard_size if fmt == "shards" else batch_size


def make_writer(fmt: str, out: Path, chars: Sequence[str], n: int, workers: int, shard_size: int,
                empty: Sequence[str] = ()) -> _Writer:
    """The writer of a character run; `empty`: the characters the plan gives no image."""
    if fmt == "files":
        return FileWriter(out, chars, n, workers, empty)
    if fmt == "shards":
        return ShardWriter(out, chars, n, workers, shard_size)
    raise PlategenError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")


class Pending:
    """Futures in submission order; results are taken from the front only."""

    def __init__(self):
        self.queue: deque[Future] = deque()

    def add(self, futures: Sequence[Future]) -> None:
        self.queue.extend(futures)

    def ready(self, block_until: int | None = None) -> Iterator[list[tuple[int, str]]]:
        """Results of finished futures at the front; with `block_until`, wait until at most that many remain."""
        while self.queue and (self.queue[0].done() or (block_until is not None and len(self.queue) > block_until)):
            yield self.queue.popleft().result()

    def __len__(self) -> int:
        return len(self.queue)


# ---------------------------------------------------------------- manifest, reading back, preview


def write_manifest(out: Path, rows: Iterator[Sequence], fields: Sequence[str] = MANIFEST_FIELDS) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    writer.writerows(rows)
    atomic_write_text(out / MANIFEST, buffer.getvalue())
    return out / MANIFEST


def read_manifest(out: Path) -> list[dict[str, str]]:
    with (out / MANIFEST).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_shards(out: Path) -> Iterator[dict]:
    """Every sample of the shards in `out`, in order: {"key", "png", "label", "meta"} (label: the
    character, or a plate's text)."""
    for path in sorted(out.glob("shard-*.tar")):
        with tarfile.open(path, "r") as tar:
            sample: dict = {}
            for member in tar:
                key, _, ext = member.name.partition(".")
                if sample and sample["key"] != key:
                    yield sample
                    sample = {}
                sample["key"] = key
                data = tar.extractfile(member).read()
                if ext == "png":
                    sample["png"] = data
                elif ext == "txt":
                    sample["label"] = data.decode("utf-8")
                elif ext == "json":
                    sample["meta"] = json.loads(data)
            if sample:
                yield sample


def read_image_at(out: Path, image_path: str) -> np.ndarray:
    """An image by its manifest path (a file, or `shard.tar#member`)."""
    if "#" in image_path:
        shard, member = image_path.split("#", 1)
        with tarfile.open(out / shard, "r") as tar:
            return decode_png(tar.extractfile(member).read())
    return decode_png((out / image_path).read_bytes())


def write_preview(path: Path, style_images: Sequence[np.ndarray], chars: Sequence[str],
                  headers: Sequence[np.ndarray], samples: dict[str, list[np.ndarray]], per_row: int = 16,
                  scale: int = 2) -> Path:
    """A sheet: the style plates on top, then per character its content glyph and samples (the first
    PREVIEW_CHARS characters: a row each, and a run of thousands of characters asked gigabytes for the sheet)."""
    chars, headers = list(chars)[:PREVIEW_CHARS], list(headers)[:PREVIEW_CHARS]
    size = headers[0].shape[0] if headers else 32
    cell = size + 2
    shown = min(per_row, max((len(samples.get(ch, [])) for ch in chars), default=0))
    width = cell * (max(shown, 1) + 1)  # as wide as the longest row: a run of few images per character is no wider
    style_h = size * 2  # plates drawn 2 cells high, aspect kept
    style_row = []
    for image in list(style_images)[:8]:
        h, w = image.shape[:2]
        style_row.append(cv2.resize(image, (max(1, round(w * style_h / h)), style_h), interpolation=cv2.INTER_AREA))
    plates_w = sum(s.shape[1] + 4 for s in style_row)
    width = max(width, min(plates_w, 8 * cell * (per_row + 1)))  # at most 8 style plates, and a bounded sheet
    height = (style_h + 6 if style_row else 0) + cell * len(chars)
    sheet = np.full((height, width, 3), 40, np.uint8)
    x = 0
    for image in style_row:
        w = min(image.shape[1], width - x)
        if w <= 0:
            break
        sheet[2:2 + style_h, x:x + w] = image[:, :w]
        x += w + 4
    y = style_h + 6 if style_row else 0
    for ch, header in zip(chars, headers):
        sheet[y:y + size, :size] = np.repeat(header[..., None], 3, axis=2)
        for k, image in enumerate(samples.get(ch, [])[:per_row]):
            x = cell * (k + 1)
            sheet[y:y + size, x:x + size] = image
        y += cell
    big = cv2.resize(sheet, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
    atomic_save_png(Image.fromarray(big), path)
    return path
