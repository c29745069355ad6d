"""One exception type for every user-facing failure, so the CLI can print it as one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence


class PlategenError(Exception):
    """A wrong input or environment problem; the message names the file and what is wrong."""


class RankStopped(PlategenError):
    """Under torchrun: another rank stopped the run and printed why; this one exits 2 without repeating it."""


def require_regular_file(path: Path, what: str) -> None:
    """Refuse anything but a regular file before opening it: a FIFO blocks forever, /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise PlategenError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(mode):
        article = "an" if what[0] in "aeiou" else "a"
        raise PlategenError(f"{path}: is a folder, not {article} {what}{'' if what.endswith('file') else ' file'}")
    if not stat.S_ISREG(mode):
        raise PlategenError(f"{path}: not a regular file (a pipe, device or socket); plategen reads {what}s "
                            "only from regular files")


def require_utf8_name(path: Path | str) -> None:
    """Refuse a file name that is not UTF-8 (bytes from another system): synth writes style names into
    manifest.csv and meta.json, which are UTF-8, and would fail halfway through its output."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise PlategenError(f"{shown}: the file name is not valid UTF-8; rename the file (synth writes style "
                            "names into manifest.csv and meta.json)") from None


def require_once(paths: Sequence[Path], option: str, why: str, given: Sequence[Path] | None = None) -> None:
    """A file or folder reached twice, however spelled (``a.jpg`` and ``./a.jpg``, or a folder and a file in
    it), is a slip, not a request to count it twice. `given`: the argument each path was found under (a
    folder for the files in it), so the message names what the user typed."""
    first: dict[Path, tuple[Path, Path]] = {}
    for path, source in zip(paths, given or paths):
        key = path.resolve()
        if key not in first:
            first[key] = path, source
            continue
        before, before_source = first[key]
        what = path if str(source) == str(path) else f"{source} ({path} in it)"
        typed = str(before_source) == str(before)
        if typed and str(source) == str(path) == str(before):
            raise PlategenError(f"{option} {path}: given twice; {why}")
        earlier = f"{option} {before}" if typed else f"{before} in {option} {before_source}"
        raise PlategenError(f"{option} {what}: given twice (first as {earlier}); {why}")
