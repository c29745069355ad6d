"""Save and load SAAE checkpoints: safetensors weights with config + meta as JSON in the header.

safetensors holds only raw tensors and a string header, so loading a file never runs code.
One file holds the generator (and the discriminator, for resuming); the optimizer state for
`--resume` lives in a sidecar `<name>.optim.safetensors` so the shipped file stays small.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from plategen.atomic import atomic_write_bytes
from plategen.errors import PlategenError, require_regular_file
from plategen.model import Discriminator, Generator, SAAEConfig

FORMAT_VERSION = 1
HEADER_KEY = "plategen"  # the safetensors metadata key holding our JSON
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "saae-default.safetensors"
# The shipped models by name (`--checkpoint allchars`): `allchars` has a discriminator class for every
# Chinese province and special character, so synth checks them and draws them legibly; its colours on
# US designs are worse than the default's (checkpoints/README.md).
SHIPPED_CHECKPOINTS = {"default": DEFAULT_CHECKPOINT,
                       "allchars": DEFAULT_CHECKPOINT.with_name("saae-allchars.safetensors")}
# Image sizes are not visible in the weights' shapes but size every activation; these bound them.
MAX_GLYPH_SIZE = 256
MAX_STYLE_SIDE = 1024


@dataclass
class LoadedCheckpoint:
    config: SAAEConfig
    generator: Generator  # eval mode
    meta: dict
    sha256: str  # of the file
    discriminator: Discriminator | None = None  # eval mode; None when the file has none
    path: Path | None = None


OPTIMIZER_SUFFIX = ".optim.safetensors"  # a checkpoint's Adam state, beside it


def optimizer_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + OPTIMIZER_SUFFIX)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], header: dict, key: str = HEADER_KEY) -> None:
    """Tensors with our JSON header under `key`, written atomically (tmp file, then os.replace)."""
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                metadata={key: json.dumps(header, ensure_ascii=False)})
    atomic_write_bytes(path, data)


def save_checkpoint(path: Path | str, generator: Generator, config: SAAEConfig, meta: dict,
                    discriminator: Discriminator | None = None) -> None:
    """Write weights + config + meta to `path` atomically (tmp file, then os.replace)."""
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    if discriminator is not None:
        tensors |= {f"discriminator.{k}": v for k, v in discriminator.state_dict().items()}
    header = {"format_version": FORMAT_VERSION, "config": config.to_dict(),
              "meta": {**meta, "format_version": FORMAT_VERSION}}
    write_safetensors(Path(path), tensors, header)


def read_safetensors(path: Path, what: str, key: str = HEADER_KEY) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and our JSON header (an object, under `key`), or one PlategenError naming the file."""
    if not path.exists():
        raise PlategenError(f"{path}: no such {what} file")
    require_regular_file(path, what)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise PlategenError(f"{path}: not a readable {what} (truncated or not a safetensors file: {exc})") from exc
    if raw is None:
        raise PlategenError(f"{path}: a safetensors file, but not a plategen {what} (no '{key}' header)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PlategenError(f"{path}: damaged {what} header ({exc})") from exc
    if not isinstance(header, dict):
        raise PlategenError(f"{path}: damaged {what} header (a JSON {type(header).__name__}, not an object)")
    return tensors, header


def _read(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and header of a file of this format version, or one PlategenError naming the file."""
    tensors, header = read_safetensors(path, what)
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


def _config(data: object, path: Path) -> SAAEConfig:
    """The stored config, each field of the type and in the range the model needs."""
    if not isinstance(data, dict):
        if path.name.endswith(".optim.safetensors"):  # the sidecar beside a checkpoint, given in its place
            raise PlategenError(f"{path}: the optimizer state `plategen train` keeps beside a checkpoint, not a "
                                f"checkpoint; give {path.name.removesuffix('.optim.safetensors')}.safetensors")
        raise PlategenError(f"{path}: checkpoint config is missing or not a JSON object")
    fields = {f.name: f for f in dataclasses.fields(SAAEConfig)}
    unknown = sorted(set(data) - set(fields))
    missing = sorted(name for name, f in fields.items() if name not in data
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if unknown or missing:
        raise PlategenError(f"{path}: checkpoint config is incomplete or unknown (unknown fields {unknown}, "
                            f"missing fields {missing})")
    for name, value in data.items():
        problem = _field_problem(name, fields[name].type, value)
        if problem:
            raise PlategenError(f"{path}: checkpoint config {name}={json.dumps(value)[:60]}: {problem}")
    return SAAEConfig.from_dict(data)


def _field_problem(name: str, kind: str, value: object) -> str | None:
    """Why `value` cannot be the config field `name` of declared type `kind`, or None."""
    def whole(v: object, low: int, high: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

    def pair(v: object, low: int, high: int) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(whole(n, low, high) for n in v)

    if name == "glyph_size":
        return None if whole(value, 4, MAX_GLYPH_SIZE) else f"expected a whole number 4-{MAX_GLYPH_SIZE}"
    if name == "style_size":
        return None if pair(value, 4, MAX_STYLE_SIDE) else f"expected [height, width], each 4-{MAX_STYLE_SIDE}"
    if name == "glyph_aspect":
        return None if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                         and 0 < value <= 5) else "expected null or a box width / height, 0-5"
    if name == "style_pool":
        return None if value is None or pair(value, 1, MAX_STYLE_SIDE) else "expected null or [rows, columns]"
    if kind == "int":
        return None if whole(value, 1, 2**31 - 1) else "expected a positive whole number"
    if kind == "bool":
        return None if isinstance(value, bool) else "expected true or false"
    if kind == "float":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "expected a number"
    return f"unexpected field type {kind}"


def _check_shapes(config: SAAEConfig, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Compare the stored tensors with the shapes the config implies, before allocating anything:
    the modules are built on the meta device, which holds shapes and no memory."""
    with torch.device("meta"):
        expected = {f"generator.{k}": v.shape for k, v in Generator(config).state_dict().items()}
        if any(k.startswith("discriminator.") for k in tensors):
            expected |= {f"discriminator.{k}": v.shape for k, v in Discriminator(config).state_dict().items()}
    mismatched = [k for k in expected if k in tensors and tensors[k].shape != expected[k]]
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if mismatched or missing or unexpected:
        first = (f"{mismatched[0]} is {list(tensors[mismatched[0]].shape)}, the config says "
                 f"{list(expected[mismatched[0]])}" if mismatched else
                 f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}")
        raise PlategenError(f"{path}: weights do not match the stored config ({len(mismatched)} shape(s) differ, "
                            f"{len(missing)} missing, {len(unexpected)} unexpected; {first})")


def require_finite(source: str, generator: nn.Module, discriminator: nn.Module | None = None) -> None:
    """NaN or inf weights make blank images that still pass the label check, and train on into NaN: refuse them."""
    for part, model in (("generator", generator), ("discriminator", discriminator)):
        for name, tensor in (model.state_dict().items() if model is not None else ()):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise PlategenError(f"{source}: {part} weight {name} holds NaN or infinite values; "
                                    "retrain, or use another checkpoint")


def _check_meta_fields(meta: dict, path: Path) -> None:
    """The fields training and the benchmark's leakage guard read back: an edited or damaged header ("step": "abc",
    "plate_sha256": 5) gave a ValueError or TypeError traceback in the middle of a resume."""
    for key in ("step", "total", "run_start"):  # absent is fine (no step recorded); null is no count
        value = meta.get(key, 0)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise PlategenError(f"{path}: checkpoint meta {key} is {value!r}, not a step count (a whole number >= 0)")
    hashes = meta.get("plate_sha256", [])
    if not (isinstance(hashes, list) and all(isinstance(h, str) for h in hashes)):
        raise PlategenError(f"{path}: checkpoint meta plate_sha256 is not a list of SHA-256 hex strings")
    val_l1 = meta.get("val_l1")
    if val_l1 is not None and not (isinstance(val_l1, (int, float)) and not isinstance(val_l1, bool)):
        raise PlategenError(f"{path}: checkpoint meta val_l1 is {val_l1!r}, not a number")
    if not isinstance(meta.get("train", {}), dict):
        raise PlategenError(f"{path}: checkpoint meta train is not an object of training options")


def _check_charset(meta: dict, config: SAAEConfig, path: Path) -> None:
    """The characters the classes stand for: one per class, each once (a repeat maps every later class to the
    wrong character; a count other than the weights' ended in a traceback)."""
    charset = meta.get("charset")
    if charset is None:
        return
    if not (isinstance(charset, list) and all(isinstance(c, str) and len(c) == 1 for c in charset)):
        raise PlategenError(f"{path}: checkpoint meta charset is not a list of single characters")
    repeated = sorted({c for c in charset if charset.count(c) > 1})
    if repeated:
        raise PlategenError(f"{path}: checkpoint meta charset names {repeated[0]!r} more than once")
    if len(charset) != config.num_classes:
        raise PlategenError(f"{path}: checkpoint meta charset names {len(charset)} characters, its weights have "
                            f"{config.num_classes} classes")


def checkpoint_path(value: Path | str | None) -> Path:
    """`--checkpoint` as given: None for the default model, a shipped model's name, or a path."""
    if value is None:
        return DEFAULT_CHECKPOINT
    if str(value) in SHIPPED_CHECKPOINTS and not Path(value).exists():
        return SHIPPED_CHECKPOINTS[str(value)]
    return Path(value)


def load_checkpoint(path: Path | str = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Generator (and discriminator, when stored) in eval mode, its config and meta."""
    path = Path(path)
    tensors, header = _read(path, "checkpoint")
    config = _config(header.get("config"), path)
    _check_shapes(config, tensors, path)
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise PlategenError(f"{path}: checkpoint meta is a JSON {type(meta).__name__}, not an object")
    _check_charset(meta, config, path)
    _check_meta_fields(meta, path)
    generator = Generator(config)
    _load_module(generator, tensors, "generator.", path)
    discriminator = None
    if any(k.startswith("discriminator.") for k in tensors):
        discriminator = Discriminator(config)
        _load_module(discriminator, tensors, "discriminator.", path)
        discriminator.to(device).eval()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedCheckpoint(config, generator.to(device).eval(), meta, digest, discriminator, path)


def save_optimizers(path: Path | str, optimizers: dict[str, torch.optim.Optimizer], step: int | None = None,
                    weights: str | None = None) -> None:
    """Optimizer states (Adam moments, step counts) for `--resume`, flattened to tensors + JSON, with the
    training `step` and the `weights` digest of the checkpoint they belong to."""
    tensors: dict[str, torch.Tensor] = {}
    groups: dict[str, list] = {}
    for name, opt in optimizers.items():
        state = opt.state_dict()
        for index, values in state["state"].items():
            for key, value in values.items():
                tensors[f"{name}.{index}.{key}"] = torch.as_tensor(value)
        groups[name] = state["param_groups"]
    write_safetensors(Path(path), tensors, {"format_version": FORMAT_VERSION, "param_groups": groups, "step": step,
                                            "weights": weights})


def optimizer_owner(path: Path | str) -> tuple[int | None, str | None]:
    """The training step and weights digest of the checkpoint an optimizer sidecar was saved with (None: not
    recorded, an older sidecar)."""
    header = _read(Path(path), "optimizer state")[1]
    return header.get("step"), header.get("weights")


def load_optimizers(path: Path | str, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    path = Path(path)
    tensors, header = _read(path, "optimizer state")
    for name, opt in optimizers.items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        try:
            for key, value in tensors.items():
                owner, index, field = key.split(".", 2)
                if owner == name:
                    state.setdefault(int(index), {})[field] = value
            groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
                      for group in header["param_groups"][name]]  # JSON made tuples (Adam betas) lists
            for group in groups:  # load_state_dict takes any values; betas ["a", "b"] failed at the first step
                numbers = [group["eps"], group["weight_decay"], *group["betas"]]
                if len(group["betas"]) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in numbers) or group.get("amsgrad", False) is not False:
                    raise ValueError(f"param_groups of {name}: {group!r:.120}")
            opt.load_state_dict({"state": state, "param_groups": groups})
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise PlategenError(f"{path}: optimizer state does not match the model ({exc})") from exc
