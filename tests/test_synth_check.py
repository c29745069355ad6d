"""`--chars` is limited by font coverage, not by the checkpoint's charset: the generator's content
input is the rendered glyph, so a model draws characters outside its charset; its discriminator
has no class to read them as, so they are marked "unchecked". A class may come from rendered
pairs alone (`train.top_up_with_rendered`); the manifest still says which had real training crops."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

import pytest

from plategen.charset import CHINESE_PROVINCES, CHINESE_SPECIAL, parse_charset
from plategen.checkpoint import SHIPPED_CHECKPOINTS, load_checkpoint, save_checkpoint
from plategen.cli import app
from plategen.synth import generate

from conftest import make_checkpoint, one_line_error

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt_jing(tmp_path_factory):
    """A random checkpoint whose classes are 0-9A-Z京: 川 and 警 are outside its charset."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "jing.safetensors", parse_charset("0-9A-Z京"))


def synth_rows(data_dir, out, chars: str, n: int, checkpoint) -> tuple:
    """`plategen synth` in a held-out CCPD plate's style: (the CLI result, the manifest's rows)."""
    style = data_dir / "ccpd-crops" / "images" / "皖A0V262.jpg"
    result = runner.invoke(app, ["synth", "--style", str(style), "--chars", chars, "--n", str(n), "--out", str(out),
                                 "--device", "cpu", "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in (out / "manifest.csv").read_text(encoding="utf-8").splitlines()[1:]]
    return result, rows


def test_a_province_outside_the_checkpoints_charset_is_drawn_and_marked_unchecked(data_dir, tmp_path, ckpt_jing):
    out = tmp_path / "out"
    result, rows = synth_rows(data_dir, out, "川A", 16, ckpt_jing)
    chuan = [r for r in rows if r[1] == "川"]
    assert len(chuan) == 8 and {r[5] for r in chuan} == {"unchecked"}
    assert {r[5] for r in rows if r[1] == "A"} <= {"pass", "fail"}  # A has a class: it is read
    images = [np.asarray(Image.open(out / r[0]).convert("RGB")) for r in chuan]
    assert all(r[0].startswith("川/") for r in chuan) and all(im.shape == (32, 32, 3) for im in images)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["chars_with_real_crops"] == ["A"] and meta["check_unchecked"] == 8
    assert "8 unchecked" in result.output


def test_the_shipped_allchars_model_checks_every_province_by_name(data_dir, tmp_path):
    """`--checkpoint allchars` names the shipped model with a class for every province and special
    character, so none of them is left unchecked."""
    charset = load_checkpoint(SHIPPED_CHECKPOINTS["allchars"]).meta["charset"]
    assert set(CHINESE_PROVINCES + CHINESE_SPECIAL + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") <= set(charset)
    out = tmp_path / "out"
    _, rows = synth_rows(data_dir, out, "川警", 8, "allchars")
    assert len(rows) == 8 and {r[5] for r in rows} <= {"pass", "fail"}
    assert json.loads((out / "meta.json").read_text(encoding="utf-8"))["check_unchecked"] == 0


def test_unchecked_characters_are_drawn_once_and_checked_ones_are_still_redrawn(data_dir, ckpt_jing):
    style = np.asarray(Image.open(data_dir / "ccpd-crops" / "images" / "皖A0V262.jpg").convert("RGB"))
    batches = list(generate(ckpt_jing, [style], ["警", "京"], 40, seed=0))
    labels = sum((b.labels for b in batches), [])
    checks = sum((b.checks for b in batches), [])
    attempts = np.concatenate([b.attempts for b in batches])
    jing = np.array([c == "警" for c in labels])
    assert {c for c, j in zip(checks, jing) if j} == {"unchecked"} and not attempts[jing].any()
    # 京 has a class: the (random) discriminator reads it, and redraws most of them
    assert {c for c, j in zip(checks, jing) if not j} <= {"pass", "fail"} and attempts[~jing].any()


def test_only_a_character_no_shipped_font_covers_is_refused_in_one_line(data_dir, tmp_path):
    style = data_dir / "ccpd-crops" / "images" / "皖A0V262.jpg"
    out = tmp_path / "out"
    line = one_line_error(runner.invoke(app, ["synth", "--style", str(style), "--chars", "川汉A", "--n", "6",
                                              "--out", str(out), "--device", "cpu"]))
    assert "汉" in line and "U+6C49" in line and "no shipped font covers" in line
    assert "川" not in line  # outside the charset, but a font draws it
    assert not out.exists()
    # a range of thousands named every one of them (a 123 KB line); the first ten and a count say as much
    line = one_line_error(runner.invoke(app, ["synth", "--style", str(style), "--chars", "京-沪", "--n", "6",
                                              "--out", str(out), "--device", "cpu"]))
    assert len(line) < 500 and "no shipped font covers" in line and "more" in line
    assert not out.exists()


def test_a_class_trained_on_rendered_pairs_alone_is_checked_but_not_listed_as_having_real_crops(data_dir, tmp_path):
    made = load_checkpoint(make_checkpoint(tmp_path / "random.safetensors", parse_charset("A川")))
    counts = {"data": {"crops_per_class": {"A": 12, "川": 0}}}  # 川: a class from rendered pairs only
    ckpt = tmp_path / "chuan.safetensors"
    save_checkpoint(ckpt, made.generator, made.config, made.meta | counts, made.discriminator)
    out = tmp_path / "out"
    _, rows = synth_rows(data_dir, out, "川A", 16, ckpt)
    assert len(rows) == 16 and {r[5] for r in rows} <= {"pass", "fail"}  # a class for each: both are read
    assert json.loads((out / "meta.json").read_text(encoding="utf-8"))["chars_with_real_crops"] == ["A"]
