"""Colour matching: generated characters take the style plate's paper and ink (issue 12)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from typer.testing import CliRunner

from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from plategen.cli import app
from plategen.dataset import style_image
from plategen.plates import read_image
from plategen.synth import Diversity, generate_arrays
from plategen.synth.recolour import LUMA, match_colours, plate_colours
from conftest import synth_args

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plate-es.jpg"


def test_the_example_plate_gives_light_paper_and_dark_ink():
    paper, ink = plate_colours(style_image(read_image(EXAMPLE)))
    assert paper @ np.asarray(LUMA) > 150 > 90 > ink @ np.asarray(LUMA)


def test_generated_characters_take_the_style_plates_paper_and_ink():
    """On the shipped Spanish example the raw generator's black ink is blue-grey; matched (and
    measured on each crop as on the plate), the ink lies at least twice as close to the plate's
    own, and the paper (already near it) stays within 20 RGB levels."""
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    plate = read_image(EXAMPLE)
    paper, ink = plate_colours(style_image(plate))
    still = Diversity(crop=0, shift=0, colour=0, blur=0, noise=0)
    errors = {}
    for match in (False, True):
        images, _ = generate_arrays(model, [plate], list("0123456789BCDFGH"), 32, seed=1, check=False,
                                    diversity=dataclasses.replace(still, match_colours=match))
        got_paper, got_ink = np.array([plate_colours(image) for image in images]).transpose(1, 0, 2)
        errors[match] = (np.median(np.linalg.norm(got_paper - paper, axis=1)),
                         np.median(np.linalg.norm(got_ink - ink, axis=1)))
    assert errors[True][0] < 20 and errors[True][1] < errors[False][1] / 2, errors


def test_a_crop_with_nothing_drawn_is_left_as_it_is():
    flat = torch.full((2, 3, 32, 32), 120.0)
    flat[1] += torch.linspace(0, 6, 32)  # a faint gradient, under MIN_CONTRAST
    glyphs = torch.zeros((2, 1, 32, 32))
    glyphs[:, :, 8:24, 12:20] = 1
    out = match_colours(flat, glyphs, torch.tensor([[250.0, 250, 250]] * 2), torch.tensor([[0.0, 0, 0]] * 2))
    assert torch.equal(out, flat)


def test_ink_is_told_from_paper_by_the_glyph_not_by_area():
    """Light ink on dark paper (and more ink than paper) still maps ink to ink."""
    glyphs = torch.zeros((1, 1, 32, 32))
    glyphs[:, :, :, :20] = 1  # ink covers most of the crop
    image = torch.where(glyphs.bool(), torch.tensor([200.0, 210, 220])[:, None, None],
                        torch.tensor([40.0, 50, 90])[:, None, None])
    paper, ink = torch.tensor([[20.0, 60, 200]]), torch.tensor([[255.0, 255, 255]])
    out = match_colours(image, glyphs, paper, ink)
    assert torch.allclose(out[0, :, 5, 5], ink[0]) and torch.allclose(out[0, :, 5, 28], paper[0])


def test_raw_colours_writes_the_generators_own_colours(plate, tmp_path):
    """--raw-colours is recorded in meta.json and changes the images; the default matches colours
    (the shipped model: a random one draws too faint a character to be recoloured)."""
    runner = CliRunner()
    outs = {flag: tmp_path / flag.strip("-") for flag in ("--match-colours", "--raw-colours")}
    for flag, out in outs.items():
        result = runner.invoke(app, synth_args(plate, DEFAULT_CHECKPOINT, out, "--n", "8", "--chars", "0-7", flag))
        assert result.exit_code == 0, result.output
    metas = {flag: json.loads((out / "meta.json").read_text()) for flag, out in outs.items()}
    assert metas["--match-colours"]["diversity"]["match_colours"] is True
    assert metas["--raw-colours"]["diversity"]["match_colours"] is False
    matched, raw = (sorted(p.read_bytes() for p in out.glob("*/*.png")) for out in outs.values())  # not the preview
    assert len(matched) == len(raw) == 8 and matched != raw
