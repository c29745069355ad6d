import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hostile import make_fifo
from plategen.checkpoint import (HEADER_KEY, load_checkpoint, load_optimizers, save_checkpoint, save_optimizers)
from plategen.errors import PlategenError
from plategen.model import Discriminator, Generator, SAAEConfig

TINY = dict(content_width=4, style_width=4, style_dim=8, decoder_width=4, disc_width=4, disc_hidden=16)
META = {"charset": list("AB7"), "fonts": ["DejaVuSans-Bold"], "plate_sha256": ["0" * 64], "data": {}, "train": {},
        "created": "2024-01-01T00:00:00+00:00"}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Generator, Discriminator]:
    torch.manual_seed(0)
    config = SAAEConfig(num_classes=3, **TINY)
    G, D = Generator(config), Discriminator(config)
    G(torch.rand(4, 1, 32, 32), torch.rand(4, 3, 32, 96))  # non-trivial BN running statistics
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, G, config, META, D)
    return path, G.eval(), D.eval()


def test_round_trip_gives_identical_outputs(saved):
    path, G, D = saved
    loaded = load_checkpoint(path)
    glyph, style = torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 96)
    assert not loaded.generator.training
    with torch.no_grad():
        assert torch.equal(loaded.generator(glyph, style), G(glyph, style))
        assert torch.equal(loaded.discriminator(G(glyph, style)), D(G(glyph, style)))
    assert loaded.config == G.config
    assert loaded.meta["charset"] == META["charset"] and loaded.meta["format_version"] == 1
    assert len(loaded.sha256) == 64
    assert not list(path.parent.glob(".*tmp*"))  # the atomic write left no temporary file


def test_truncated_file_names_the_file(saved):
    path = saved[0]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PlategenError, match=str(path)):
        load_checkpoint(path)


def test_foreign_files(tmp_path: Path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    for path in (text, other, tmp_path / "missing.safetensors"):
        with pytest.raises(PlategenError, match=str(path)):
            load_checkpoint(path)


def test_wrong_version(tmp_path: Path):
    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={HEADER_KEY: json.dumps({"format_version": 99})})
    with pytest.raises(PlategenError, match="version 99"):
        load_checkpoint(path)


def test_weights_that_do_not_match_the_config(saved, tmp_path: Path):
    path, G, _ = saved
    wider = SAAEConfig(num_classes=3, **{**TINY, "decoder_width": 8})
    save_checkpoint(path, G, wider, META)  # config says 8, weights are 4 wide
    with pytest.raises(PlategenError, match="do not match"):
        load_checkpoint(path)


def test_optimizer_state_round_trip(tmp_path: Path):
    G = Generator(SAAEConfig(num_classes=3, **TINY))
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.rand(4, 1, 32, 32), torch.rand(4, 3, 32, 96)).mean().backward()
    opt.step()
    save_optimizers(tmp_path / "o.safetensors", {"g": opt})
    fresh = torch.optim.Adam(G.parameters(), lr=1e-3)
    load_optimizers(tmp_path / "o.safetensors", {"g": fresh})
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, state in a["state"].items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][i][k])) for k, v in state.items())


def test_the_optimizer_state_given_as_a_checkpoint_is_named_as_such(tmp_path: Path):
    G = Generator(SAAEConfig(num_classes=3, **TINY))
    sidecar = tmp_path / "m.optim.safetensors"
    save_optimizers(sidecar, {"g": torch.optim.Adam(G.parameters())})
    with pytest.raises(PlategenError, match=r"m.optim.safetensors: the optimizer state .* give m.safetensors"):
        load_checkpoint(sidecar)


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter importing this checkout's plategen."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)


def _edit_header(path: Path, edit) -> None:
    """Rewrite the plategen JSON header of a saved checkpoint, keeping its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()[HEADER_KEY])
    save_file(load_file(str(path)), str(path), metadata={HEADER_KEY: json.dumps(edit(header))})


def test_a_header_that_is_not_a_json_object_is_named(tmp_path: Path):
    path = tmp_path / "list.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={HEADER_KEY: "[1, 2]"})
    with pytest.raises(PlategenError, match=r"list.safetensors: damaged checkpoint header \(a JSON list"):
        load_checkpoint(path)


@pytest.mark.parametrize("field, value, why", [
    ("content_width", "4", "content_width=\"4\": expected a positive whole number"),
    ("content_width", 100000, "weights do not match the stored config"),
    ("glyph_size", 100000, "glyph_size=100000: expected a whole number 4-256"),
    ("style_size", [32], "style_size=\\[32\\]: expected \\[height, width\\]"),
    ("spectral_norm", "yes", "spectral_norm=\"yes\": expected true or false"),
    ("leak", None, "leak=null: expected a number"),
    ("colour", 3, "unknown fields \\['colour'\\]"),
    ("glyph_aspect", -1, "glyph_aspect=-1: expected null or a box width / height"),
    ("glyph_aspect", "narrow", "glyph_aspect=\"narrow\": expected null or a box width / height"),
])
def test_config_values_are_checked_before_any_module_is_built(saved, field, value, why):
    path = saved[0]
    _edit_header(path, lambda h: {**h, "config": {**h["config"], field: value}})
    with pytest.raises(PlategenError, match=why) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("field, value, why", [
    ("step", "abc", r"meta step is 'abc', not a step count"),  # a ValueError traceback on --resume
    ("step", None, r"meta step is None, not a step count"),  # null: int(None) in the resume
    ("plate_sha256", None, r"meta plate_sha256 is not a list"),
    ("step", -5, r"meta step is -5, not a step count"),  # numpy's ValueError inside the training loop
    ("total", "x", r"meta total is 'x', not a step count"),
    ("run_start", 1.5, r"meta run_start is 1.5, not a step count"),
    ("plate_sha256", 5, r"meta plate_sha256 is not a list of SHA-256 hex strings"),  # TypeError: not iterable
    ("val_l1", "abc", r"meta val_l1 is 'abc', not a number"),
    ("train", [], r"meta train is not an object of training options"),
])
def test_meta_fields_training_reads_back_are_checked_on_load(saved, field, value, why):
    path = saved[0]
    _edit_header(path, lambda h: {**h, "meta": {**h["meta"], field: value}})
    if why is None:
        load_checkpoint(path)
        return
    with pytest.raises(PlategenError, match=why) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("edit", [lambda g: {**g, "betas": ["a", "b"]}, lambda g: {**g, "eps": "x"},
                                  lambda g: {**g, "amsgrad": True}], ids=["betas", "eps", "amsgrad"])
def test_an_optimizer_sidecar_with_damaged_settings_is_one_error(tmp_path: Path, edit):
    """betas ["a", "b"] or eps "x" loaded and failed at the first step with a TypeError; amsgrad true with a KeyError."""
    G = Generator(SAAEConfig(num_classes=3, **TINY))
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.rand(4, 1, 32, 32), torch.rand(4, 3, 32, 96)).mean().backward()
    opt.step()
    path = tmp_path / "o.safetensors"
    save_optimizers(path, {"g": opt})
    _edit_header(path, lambda h: {**h, "param_groups": {"g": [edit(g) for g in h["param_groups"]["g"]]}})
    with pytest.raises(PlategenError, match=r"o.safetensors: optimizer state does not match the model"):
        load_optimizers(path, {"g": torch.optim.Adam(G.parameters(), lr=1e-3)})


def test_a_checkpoint_written_before_narrowed_glyphs_gets_its_glyphs_as_drawn(saved):
    """Every checkpoint before `SAAEConfig.glyph_aspect` was trained on content glyphs as the fonts draw them."""
    path, G, D = saved
    save_checkpoint(path, G, replace(G.config, glyph_aspect=0.62), META, D)
    assert load_checkpoint(path).config.glyph_aspect == 0.62
    _edit_header(path, lambda h: {**h, "config": {k: v for k, v in h["config"].items() if k != "glyph_aspect"}})
    assert load_checkpoint(path).config.glyph_aspect is None
    save_checkpoint(path, G, G.config, META, D)  # glyphs as drawn: no new field, so an older plategen reads it too
    with safe_open(str(path), framework="pt") as handle:
        assert "glyph_aspect" not in json.loads(handle.metadata()[HEADER_KEY])["config"]


def test_a_config_that_is_not_an_object_is_named(saved):
    path = saved[0]
    _edit_header(path, lambda h: {**h, "config": [3, 32]})
    with pytest.raises(PlategenError, match="config is missing or not a JSON object"):
        load_checkpoint(path)


def test_an_oversized_config_allocates_nothing(saved):
    """style_map_size 2000 asked the Linear layer for 4 * 2000 * 2000 * 8 floats (512 MB here,
    16 GB at the default widths) before the weights were compared with it."""
    path = saved[0]
    _edit_header(path, lambda h: {**h, "config": {**h["config"], "style_map_size": 2000}})
    probe = (
        "import resource, sys\n"
        "from plategen.checkpoint import load_checkpoint\n"
        "from plategen.errors import PlategenError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    load_checkpoint({str(path)!r})\n"
        "except PlategenError as exc:\n"
        "    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    run = _python(probe)
    assert run.returncode == 0, run.stderr
    message, grown_kb = run.stdout.strip().splitlines()
    assert "weights do not match the stored config" in message and "style_map" in message
    assert int(grown_kb) < 100_000


def test_a_pipe_named_like_a_checkpoint_is_refused_not_read(tmp_path: Path):
    fifo = make_fifo(tmp_path / "pipe.safetensors")
    with pytest.raises(PlategenError, match="pipe.safetensors: not a regular file"):
        load_checkpoint(fifo)


def test_a_save_killed_midway_leaves_the_old_checkpoint_and_a_temp_file_nothing_trips_on(saved):
    path, G, D = saved
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    kill_during_fsync = (
        "import os, signal, sys\n"
        "from plategen.checkpoint import load_checkpoint, save_checkpoint\n"
        "loaded = load_checkpoint(sys.argv[1])\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "save_checkpoint(sys.argv[1], loaded.generator, loaded.config, loaded.meta, loaded.discriminator)\n"
    )
    run = _python(kill_during_fsync, str(path))
    assert run.returncode == -signal.SIGKILL, run.stderr
    orphans = [p.name for p in path.parent.iterdir() if p != path]
    assert len(orphans) == 1 and orphans[0].startswith(f".{path.name}.") and orphans[0].endswith(".tmp")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # readers still see the whole old file
    save_checkpoint(path, G, G.config, META, D)  # a later save picks its own temporary name
    assert load_checkpoint(path).meta["charset"] == META["charset"]
    assert [p.name for p in path.parent.iterdir() if p != path] == orphans


def test_optimizer_state_with_foreign_tensor_names_is_named(tmp_path: Path):
    G = Generator(SAAEConfig(num_classes=3, **TINY))
    path = tmp_path / "o.safetensors"
    save_file({"weird": torch.zeros(1)}, str(path),
              metadata={HEADER_KEY: json.dumps({"format_version": 1, "param_groups": {"g": []}})})
    with pytest.raises(PlategenError, match="o.safetensors: optimizer state does not match"):
        load_optimizers(path, {"g": torch.optim.Adam(G.parameters())})
