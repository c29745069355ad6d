"""Plate designs (`synth --plates --design`): real CCPD blue plates repainted yellow and green, written and read
back, checked by fast-plate-ocr's own validator."""

import csv
import subprocess
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from plategen.charset import parse_charset
from plategen.cli import app
from plategen.layout import parse_pattern
from plategen.plates import load_plates, read_image
from plategen.synth import SynthRequest, synthesize
from plategen.synth.compose import erase_characters, ink_colour
from plategen.synth.designs import DESIGNS, palette_mix, repaint
from plategen.synth.plates import Canvas, load_style_plates
from conftest import make_checkpoint, one_line_error

CHARS = parse_charset("0-9A-Z") + list("京沪浙皖")
STYLES = ("皖AVH276.jpg", "皖A0V262.jpg")


@pytest.fixture(scope="module")
def ckpt_cn(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "random-cn.safetensors", CHARS)


@pytest.fixture(scope="module")
def style_paths(data_dir):
    return [data_dir / "ccpd-crops" / "images" / name for name in STYLES]


def _hsv(rgb) -> np.ndarray:
    return cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV)[0, 0].astype(int)


@pytest.mark.parametrize("name", ["yellow", "green"])
def test_a_blue_plate_is_repainted_in_the_designs_colours_and_keeps_its_light(style_paths, name):
    style = load_style_plates(style_paths[:1])[0][0]
    boxes = [s.box for s in style.layout.char_slots]
    background = erase_characters(style.image, boxes)
    paper = np.median(np.concatenate([background[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in boxes]), axis=0)
    painted, ink = repaint(background, paper.astype(np.float32), ink_colour(style.image, boxes), boxes, DESIGNS[name])
    assert painted.shape == background.shape and painted.dtype == np.uint8
    band = np.zeros(painted.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        band[y0:y1, x0:x1] = True
    hue, saturation, _ = _hsv(np.median(painted[band], axis=0).astype(np.uint8))
    old_hue = _hsv(paper.astype(np.uint8))[0]
    assert 95 <= old_hue <= 125  # OpenCV hue of the style plate's blue
    if name == "yellow":
        assert 15 <= hue <= 35 and saturation > 120  # yellow paper
    else:
        assert 45 <= hue <= 85 and saturation > 25  # green paper
        rows = painted[band].reshape(-1, 3)
        top = painted[min(y0 for _, y0, _, _ in boxes)].astype(float).mean()
        bottom = painted[max(y1 for *_, y1 in boxes) - 1].astype(float).mean()
        assert top > bottom + 15  # fading from white at the top to green at the bottom
        assert len(rows)
    assert ink.max() < 60  # black ink, lit as the plate is
    # the plate's light is kept: its brightness rank order in the paper band barely changes
    old_light = palette_mix(background, paper.astype(np.float32), ink_colour(style.image, boxes))[0][band]
    new_gray = cv2.cvtColor(painted, cv2.COLOR_RGB2GRAY)[band].astype(float)
    assert np.corrcoef(old_light, new_gray)[0, 1] > 0.5


def test_green_plates_have_eight_characters_a_d_or_f_serial_and_no_separator_dot(style_paths, ckpt_cn, tmp_path):
    out = tmp_path / "green"
    report = synthesize(SynthRequest(styles=style_paths, chars=CHARS, n=8, out=out, checkpoint=ckpt_cn, device="cpu",
                                     plates=True, batch_size=4, design="green", exports=["lprnet"]))
    assert report.n == 8
    result = load_plates(out)
    assert result.format == "yolo" and not result.problems and len(result.plates) == 8
    for plate in result.plates:
        assert len(plate.text) == 8 and len(plate.boxes) == 8 and plate.box_origin == "annotated"
        assert plate.text[0] in "京沪浙皖" and plate.text[2] in "DF" and plate.text[4:].isdigit()
        assert plate.text[3] not in "IO"
    with (out / "plates.csv").open(encoding="utf-8", newline="") as handle:
        assert {r["plate_text"] for r in csv.DictReader(handle)} == {p.text for p in result.plates}
    command = [sys.executable, "-m", "fast_plate_ocr.cli.validate_dataset",
               "-a", "plates.csv", "--plate-config-file", "plate_config.yaml"]
    checked = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0 and "Errors   │     0" in checked.stdout, checked.stdout + checked.stderr
    assert "max_plate_slots: 8" in (out / "plate_config.yaml").read_text(encoding="utf-8")
    # where the style plate had its dot, the green plate has paper, not ink
    styles = load_style_plates(style_paths)[0]
    for style in styles:
        canvas = Canvas([style], [parse_pattern(DESIGNS["green"].pattern, style.layout)], DESIGNS["green"])
        background, ink = canvas.get(0)
        (dot,) = [s.box for s in style.layout.slots if s.kind == "separator"]
        x0, y0, x1, y1 = dot
        y0, y1 = y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4  # the dot sits on the characters' centre line
        gray = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY).astype(float)
        left, right = style.layout.slots[0].box[0], style.layout.slots[-1].box[2]
        paper = np.median(gray[y0:y1, left:right], axis=1, keepdims=True)  # each row's paper (green fades down)
        assert (paper - gray[y0:y1, x0:x1]).max() < 0.25 * (paper.min() - ink.mean())


def test_yellow_plates_keep_the_style_plates_layout_and_its_dot_in_the_new_ink(style_paths, ckpt_cn, tmp_path):
    styles = load_style_plates(style_paths)[0]
    def faintness(image, ink, dot):
        """How far the dot's strongest pixel stays from the ink, as a share of the paper's distance from it; the dot
        sits in the middle half of its box (which spans the neighbours' height, their rims at its ends)."""
        x0, y0, x1, y1 = dot
        y0, y1 = y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4
        gap = image[y0:y1, x0:x1].reshape(-1, 3).astype(float)
        return np.linalg.norm(gap - ink, axis=1).min() / np.linalg.norm(np.median(gap, axis=0) - ink)

    for style in styles:
        background, ink = Canvas([style], None, DESIGNS["yellow"]).get(0)
        (dot,) = [s.box for s in style.layout.slots if s.kind == "separator"]
        own = faintness(style.image, ink_colour(style.image, [s.box for s in style.layout.char_slots]), dot)
        # the dot is there, in the new ink, hardly fainter than on the style plate (a 2-3 px dot on a 94x24 crop is
        # blurred); where it touched a character's box, repainting used to take it for that character's rim
        assert faintness(background, ink, dot) < own + 0.15
    out = tmp_path / "yellow"
    synthesize(SynthRequest(styles=style_paths, chars=CHARS, n=4, out=out, checkpoint=ckpt_cn, device="cpu",
                            plates=True, batch_size=4, design="yellow"))
    plates = load_plates(out).plates
    assert [len(p.text) for p in plates] == [7] * 4
    image = read_image(plates[0].image_path)
    assert 15 <= _hsv(np.median(image.reshape(-1, 3), axis=0).astype(np.uint8))[0] <= 35


def test_an_unknown_design_or_a_design_without_plates_is_refused_in_one_line(style_paths, ckpt_cn, tmp_path):
    out = tmp_path / "out"
    base = ["synth", "--style", str(style_paths[0]), "--n", "2", "--out", str(out), "--checkpoint", str(ckpt_cn),
            "--device", "cpu"]
    line = one_line_error(CliRunner().invoke(app, [*base, "--plates", "--design", "purple"]))
    assert "--design 'purple': choose one of blue, yellow, green" in line and not out.exists()
    line = one_line_error(CliRunner().invoke(app, [*base, "--design", "green"]))
    assert "options of --plates" in line and not out.exists()


def test_what_is_not_the_plate_keeps_its_colours(style_paths):
    """皖A0V262 is tilted in its crop, the car showing at two corners: repainting leaves the car as it was."""
    from plategen.synth.designs import plate_region

    style = load_style_plates(style_paths[1:])[0][0]
    boxes = [s.box for s in style.layout.char_slots]
    background = erase_characters(style.image, boxes)
    paper = np.median(np.concatenate([background[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in boxes]), axis=0)
    ink = ink_colour(style.image, boxes)
    light, mix, misfit = palette_mix(background, paper.astype(np.float32), ink)
    height = float(np.median([y1 - y0 for _, y0, _, y1 in boxes]))
    outside = plate_region(misfit, light, mix, boxes, height) < 0.01
    assert outside.mean() > 0.05 and outside[0, :3].all() and outside[-1, -3:].all()  # the car at two corners (tilted)
    painted, _ = repaint(background, paper.astype(np.float32), ink, boxes, DESIGNS["yellow"])
    assert np.abs(painted.astype(int) - background)[outside].max() <= 3
    assert np.abs(painted.astype(int) - background)[~outside].mean() > 60


def test_repainted_paper_is_no_blotchier_than_the_plates_own(style_paths):
    """The erased paper's grey spread (less its top-to-bottom fade) over the paper-ink distance, repainted
    against in the plate's own colours. The lighting used to scale the design's colours whole: a tenth of the
    dark blue paper is a few grey levels, of the yellow or near-white green paper blotches (1.9x the plate's
    own, on average over these, before; 1.4x now)."""
    luma = np.float32([0.299, 0.587, 0.114])

    def blotches(background, ink, boxes):
        grey = np.concatenate([(background[y0:y1, x0:x1].astype(np.float32) @ luma).ravel() for x0, y0, x1, y1 in boxes])
        rows = np.concatenate([np.repeat(np.arange(y0, y1, dtype=np.float32), x1 - x0) for x0, y0, x1, y1 in boxes])
        residual = grey - np.polyval(np.polyfit(rows, grey, 1), rows)
        return np.std(residual) / abs(np.median(grey) - float(ink @ luma))

    ratios = []
    for style in load_style_plates(style_paths)[0]:
        boxes = [s.box for s in style.layout.char_slots]
        own = blotches(*Canvas([style]).get(0), boxes)
        for name in ("yellow", "green"):
            layout = parse_pattern(DESIGNS[name].pattern, style.layout) if DESIGNS[name].pattern else style.layout
            ratios.append(blotches(*Canvas([style], [layout], DESIGNS[name]).get(0), boxes) / own)
    assert np.mean(ratios) <= 1.5, ratios
