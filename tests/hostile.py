"""Hostile inputs shared by the tests: files that hang or flood a careless reader."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def make_fifo(path: Path, release_after_s: float = 60.0) -> Path:
    """A named pipe at `path`. Opening it to read blocks until a writer comes, so a watcher thread
    plays the writer and closes at once: code that wrongly reads the pipe gets an empty file and
    fails its test, instead of hanging the run."""
    os.mkfifo(path)

    def release() -> None:
        deadline = time.monotonic() + release_after_s
        while time.monotonic() < deadline and os.path.lexists(path):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO until someone reads
            except OSError:
                pass
            time.sleep(0.05)

    threading.Thread(target=release, daemon=True).start()
    return path
