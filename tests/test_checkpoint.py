import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

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
