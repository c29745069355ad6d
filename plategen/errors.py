"""One exception type for every user-facing failure, so the CLI can print it as one line."""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path
from typing import Sequence


class PlategenError(Exception):
    """A wrong input or environment problem; the message names the file and what is wrong."""


class RankStopped(PlategenError):
    """Under torchrun: another rank stopped the run and printed why; this one exits 2 without repeating it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a job scheduler, torchrun stopping the other ranks) raised as Ctrl-C is, so a run stopped
    either way cleans up alike: temporary files and an empty --out removed, the lock released, what was finished
    kept; the exit status is then 143 (128 + SIGTERM) instead of Ctrl-C's 130."""

    STATUS = 143
    received = False  # set by the handler, so the status is right wherever the interrupt was caught


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler (`signal.signal(signal.SIGTERM, raise_terminated)`, in the main thread)."""
    Terminated.received = True
    raise Terminated


def interrupt_status() -> int:
    """The exit status of an interrupted run: 128 + the signal's number, as a shell reports it."""
    return Terminated.STATUS if Terminated.received else 130


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


def require_utf8_name(path: Path | str, why: str) -> None:
    """Refuse a name that is not UTF-8 (bytes from another system), which plategen must write as text (`why`)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise PlategenError(f"{shown}: the file name is not valid UTF-8; rename it ({why})") from None


def require_writable_name(path: Path | str) -> None:
    """Refuse a style file name that manifest.csv and meta.json cannot hold as it is: one that is not UTF-8
    (bytes from another system: synth would fail halfway through its output), or one with a control
    character (a carriage return read from a CRLF list split manifest.csv's rows for pandas)."""
    require_utf8_name(path, "synth writes style names into manifest.csv and meta.json")
    control = [c for c in str(path) if unicodedata.category(c) == "Cc"]
    if control:
        shown = "".join(repr(c)[1:-1] if c in control else c for c in str(path))
        raise PlategenError(f"{shown}: the file name holds a control character ({control[0]!r}); rename the file "
                            "(synth writes style names into manifest.csv)")


def require_once(paths: Sequence[Path], option: str, why: str,
                 given: Sequence[tuple[int, Path]] | None = None) -> None:
    """A file or folder reached twice, however spelled (``a.jpg`` and ``./a.jpg``, or a folder and a file in
    it), is a slip, not a request to count it twice. `given`: per path, the argument it was found under (its
    place among the option's arguments, and the folder for the files in it), so the message names what the
    user typed. Two names of one file inside one folder argument (a link beside its target) are the folder's
    content, not a slip: counted twice, as two copies would be."""
    first: dict[Path, tuple[Path, tuple[int, Path]]] = {}
    for path, source in zip(paths, given or list(enumerate(paths))):
        try:
            key = path.resolve()
        except (OSError, RuntimeError):  # a link loop: refused where the file is read, with its name
            key = path.absolute()
        if key not in first:
            first[key] = path, source
            continue
        before, (before_arg, before_source) = first[key]
        argument, spelled = source
        if argument == before_arg and str(spelled) != str(path):
            continue
        what = path if str(spelled) == str(path) else f"{spelled} ({path} in it)"
        typed = str(before_source) == str(before)
        if str(spelled) == str(before_source) and (typed or str(path) == str(before)):  # one argument, twice
            raise PlategenError(f"{option} {spelled}: given twice; {why}")
        earlier = f"{option} {before}" if typed else f"{before} in {option} {before_source}"
        raise PlategenError(f"{option} {what}: given twice (first as {earlier}); {why}")
