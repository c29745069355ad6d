"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable

from PIL import Image, PngImagePlugin

from plategen.errors import PlategenError, require_regular_file

TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
SHEET_MARK = ("Software", "plategen")  # the PNG text chunk of every sheet plategen writes


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a normal file's mode, not the temporary file's 0600
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temp_leftovers(folder: Path) -> list[Path]:
    """The temporary files `atomic_write_bytes` left in `folder` when its process was killed mid-write."""
    return [p for p in folder.iterdir() if TEMP_NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink()]


def file_in_the_way(path: Path) -> Path | None:
    """The existing non-folder that `path` runs through (`file.txt` in `file.txt/sub`), if any:
    the OS only says "File exists" or "Not a directory"."""
    return next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)


def require_no_file_in_the_way(path: Path) -> None:
    """Refuse an output path that runs through an existing file, naming that file; called before
    anything is created, and when a write failed, so the message says more than the OS does."""
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise PlategenError(f"{path}: cannot write: {blocker} is a file, not a folder")
    require_link_target(path)


def require_link_target(path: Path) -> None:
    """Refuse a path that is, or runs through, a link that leads nowhere, naming that link: the OS says "File exists"
    of it, and a loop makes resolve() raise."""
    for link in (Path(path), *Path(path).parents):
        if not (link.is_symlink() and not link.exists()):
            continue
        try:
            link.resolve()
        except (RuntimeError, OSError):  # Python 3.12 raises RuntimeError on a loop, later ones OSError
            raise PlategenError(f"{path}: {_which(link, path)}a link that leads back to itself (a loop); give a real "
                                "folder or file") from None
        raise PlategenError(f"{path}: {_which(link, path)}a link to {os.readlink(link)}, which does not exist; give a "
                            "real folder or file, or make the link's target first")


def _which(link: Path, path: Path) -> str:
    return "" if link == Path(path) else f"{link} is "


def _cannot_write(path: Path, exc: OSError) -> PlategenError:
    require_no_file_in_the_way(path)
    return PlategenError(f"{path}: cannot write ({exc.strerror or exc})")


def lock_beside(path: Path) -> Path:
    """The lock file of a run writing the file `path` (train's checkpoint), beside it: the same file however the path
    is spelled (a link), so two runs into one place meet on it. A run writing a folder locks inside it."""
    resolved = Path(path).resolve()
    return resolved.parent / f".{resolved.name}.lock"


class OutputLock:
    """An exclusive `flock` on the file `path` for as long as this run lives; `busy()` is the error when another
    live run holds it, `cannot_open` the one when the lock file cannot be made (default: "cannot write")."""

    def __init__(self, path: Path, busy: Callable[[], PlategenError],
                 cannot_open: Callable[[Path, OSError], PlategenError] | None = None):
        self.path = path
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise (cannot_open or _cannot_write)(self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # a run that just finished unlinks its lock file: then this lock guards nothing
            current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except OSError:
            current = False
        if not current:
            os.close(fd)
            raise busy()
        self.fd: int | None = fd

    @staticmethod
    def held(path: Path) -> bool:
        """Whether a live run holds the lock file `path` (a file left by a killed run is not held)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file while still holding it, then let go; never raises."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None


def require_writable_folder(folder: Path, named: str) -> None:
    """Refuse, before any work, a folder a run would write in but cannot: the nearest part of it that exists must be
    a folder this process may write in (an unwritable one gave a traceback, in train after the first sample grid's
    minutes of training). `named`: the option and path, as the message names them."""
    existing = next((p for p in (Path(folder), *Path(folder).parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PlategenError(f"{named}: cannot write in {existing}")
    try:  # root passes os.access everywhere, /proc and read-only mounts included: write a nameless file there
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise PlategenError(f"{named}: cannot write in {existing}") from None


def check_sheet_path(path: Path, option: str) -> None:
    """A PNG sheet's path, refused before any work when the sheet could not be written there."""
    require_no_file_in_the_way(path)
    if path.suffix.lower() != ".png":
        raise PlategenError(f"{option} {path}: the sheet is a PNG; give a file name ending in .png")
    if path.is_dir():
        raise PlategenError(f"{option} {path}: is a folder; give a file name ending in .png")
    if not path.parent.is_dir():
        raise PlategenError(f"{option} {path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PlategenError(f"{option} {path}: cannot write in {path.parent}")
    require_own_sheet_or_none(path, option)


def require_own_sheet_or_none(path: Path, option: str) -> None:
    """A sheet may replace only an earlier sheet of plategen's, never a file someone else put there."""
    if path.exists():
        require_regular_file(path, "sheet")
        if not is_own_sheet(path):
            raise PlategenError(f"{option} {path}: an existing file plategen did not write (plategen replaces only "
                                "its own sheets); choose another name")


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_png(image: Image.Image, path: Path | str) -> None:
    """A sheet (preview, contact sheet), marked as plategen's so that a later run may replace it."""
    info = PngImagePlugin.PngInfo()
    info.add_text(*SHEET_MARK)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buffer.getvalue())


def is_own_sheet(path: Path) -> bool:
    """Whether `path` is a PNG sheet plategen wrote (`atomic_save_png`'s mark). Only a regular .png file is opened: a
    pipe named like an image blocked the run that asked, until something wrote to it."""
    try:
        if Path(path).suffix.lower() != ".png" or not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get(SHEET_MARK[0]) == SHEET_MARK[1]
    except (OSError, SyntaxError, ValueError):
        return False
