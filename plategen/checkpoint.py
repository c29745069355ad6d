"""Save and load SAAE checkpoints: safetensors weights with config + meta as JSON in the header.

safetensors holds only raw tensors and a string header, so loading a file never runs code.
One file holds the generator (and the discriminator, for resuming); the optimizer state for
`--resume` lives in a sidecar `<name>.optim.safetensors` so the shipped file stays small.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from plategen.atomic import atomic_write_bytes
from plategen.errors import PlategenError
from plategen.model import Discriminator, Generator, SAAEConfig

FORMAT_VERSION = 1
HEADER_KEY = "plategen"  # the safetensors metadata key holding our JSON
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "saae-default.safetensors"


@dataclass
class LoadedCheckpoint:
    config: SAAEConfig
    generator: Generator  # eval mode
    meta: dict
    sha256: str  # of the file
    discriminator: Discriminator | None = None  # eval mode; None when the file has none
    path: Path | None = None


def optimizer_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".optim.safetensors")


def _write_atomic(path: Path, tensors: dict[str, torch.Tensor], header: dict) -> None:
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                metadata={HEADER_KEY: json.dumps(header, ensure_ascii=False)})
    atomic_write_bytes(path, data)


def save_checkpoint(path: Path | str, generator: Generator, config: SAAEConfig, meta: dict,
                    discriminator: Discriminator | None = None) -> None:
    """Write weights + config + meta to `path` atomically (tmp file, then os.replace)."""
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    if discriminator is not None:
        tensors |= {f"discriminator.{k}": v for k, v in discriminator.state_dict().items()}
    header = {"format_version": FORMAT_VERSION, "config": config.to_dict(),
              "meta": {**meta, "format_version": FORMAT_VERSION}}
    _write_atomic(Path(path), tensors, header)


def _read(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and our JSON header, or one PlategenError naming the file."""
    if not path.is_file():
        raise PlategenError(f"{path}: no such {what} file")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(HEADER_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise PlategenError(f"{path}: not a readable {what} (truncated or not a safetensors file: {exc})") from exc
    if raw is None:
        raise PlategenError(f"{path}: a safetensors file, but not a plategen {what} (no '{HEADER_KEY}' header)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PlategenError(f"{path}: damaged {what} header ({exc})") from exc
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise PlategenError(f"{path}: {what} format version {version!r}; this plategen reads version "
                            f"{FORMAT_VERSION} (re-train or use a matching plategen)")
    return tensors, header


def _load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> None:
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise PlategenError(f"{path}: weights do not match the stored config ({first})") from exc


def load_checkpoint(path: Path | str = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Generator (and discriminator, when stored) in eval mode, its config and meta."""
    path = Path(path)
    tensors, header = _read(path, "checkpoint")
    try:
        config = SAAEConfig.from_dict(header["config"])
    except (KeyError, TypeError) as exc:
        raise PlategenError(f"{path}: checkpoint config is incomplete or unknown ({exc})") from exc
    generator = Generator(config)
    _load_module(generator, tensors, "generator.", path)
    discriminator = None
    if any(k.startswith("discriminator.") for k in tensors):
        discriminator = Discriminator(config)
        _load_module(discriminator, tensors, "discriminator.", path)
        discriminator.to(device).eval()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedCheckpoint(config, generator.to(device).eval(), header.get("meta", {}), digest, discriminator, path)


def save_optimizers(path: Path | str, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Optimizer states (Adam moments, step counts) for `--resume`, flattened to tensors + JSON."""
    tensors: dict[str, torch.Tensor] = {}
    groups: dict[str, list] = {}
    for name, opt in optimizers.items():
        state = opt.state_dict()
        for index, values in state["state"].items():
            for key, value in values.items():
                tensors[f"{name}.{index}.{key}"] = torch.as_tensor(value)
        groups[name] = state["param_groups"]
    _write_atomic(Path(path), tensors, {"format_version": FORMAT_VERSION, "param_groups": groups})


def load_optimizers(path: Path | str, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    path = Path(path)
    tensors, header = _read(path, "optimizer state")
    for name, opt in optimizers.items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            owner, index, field = key.split(".", 2)
            if owner == name:
                state.setdefault(int(index), {})[field] = value
        try:
            groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
                      for group in header["param_groups"][name]]  # JSON made tuples (Adam betas) lists
            opt.load_state_dict({"state": state, "param_groups": groups})
        except (KeyError, ValueError) as exc:
            raise PlategenError(f"{path}: optimizer state does not match the model ({exc})") from exc
