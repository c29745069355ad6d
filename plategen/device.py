"""One rule for `--device`: CUDA when present, else CPU; an explicit name must exist here."""

from __future__ import annotations

import os

import torch

from plategen.errors import PlategenError


def resolve_device(name: str | None) -> torch.device:
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PlategenError(f"--device {name!r}: not a device name (use auto, cpu, cuda, cuda:0)") from exc
    if device.type not in ("cpu", "cuda"):  # meta, mps, xla ...: nothing here is built or tested for them
        raise PlategenError(f"--device {name!r}: plategen runs on cpu or cuda (use auto, cpu, cuda, cuda:0)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PlategenError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not all the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
