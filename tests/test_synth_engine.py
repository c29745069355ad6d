"""The engine and the library API: generation from real plates, the label check."""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from plategen.plates import read_image
from plategen.device import usable_cores
from plategen.synth import Diversity, Style, Synthesizer, generate, generate_arrays, load_styles
from plategen.synth.engine import Batch, glyph_widths
from plategen.glyphs import ink_box, narrowest
from conftest import make_checkpoint
from plategen.synth.plan import CHECK_SURE


def test_a_data_folder_makes_every_plate_a_style(data_dir, ckpt):
    styles = load_styles([data_dir / "ccpd-crops"])
    assert len(styles) == len(list((data_dir / "ccpd-crops" / "images").glob("*.jpg")))
    images, labels = generate_arrays(ckpt, [s.image for s in styles[:5]], ["A", "7"], 20, seed=3, batch_size=8)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert sorted(collections.Counter(labels.tolist()).values()) == [10, 10]


def test_a_style_folder_passes_over_plategens_own_sheets_and_a_sheet_named_alone_is_refused(data_dir, tmp_path,
                                                                                             monkeypatch):
    """`plategen inspect .` writes inspect-<folder>.png into the folder; a style folder then drew characters in the
    style of that grid of crops (silent), and so did a --preview sheet written there."""
    from typer.testing import CliRunner

    from plategen.cli import app
    from plategen.errors import PlategenError

    folder = tmp_path / "cc"
    folder.mkdir()
    for image in sorted((data_dir / "ccpd-crops" / "images").iterdir())[:3]:
        shutil.copy(image, folder)
    monkeypatch.chdir(folder)  # inspect writes its sheet where it is run
    assert CliRunner().invoke(app, ["inspect", "."]).exit_code == 0
    sheets = sorted(p.name for p in folder.glob("*.png"))
    assert sheets and all(name.startswith("inspect") for name in sheets)
    styles = load_styles([folder])
    assert sorted(Path(s.name).name for s in styles) == sorted(p.name for p in folder.glob("*.jpg"))
    with pytest.raises(PlategenError, match=f"^{re.escape(str(folder / sheets[0]))}: a sheet plategen wrote"):
        load_styles([folder / sheets[0]])
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(folder / sheets[0], only)
    with pytest.raises(PlategenError, match=f"no plate images .* in this folder \\(only sheets plategen wrote: "
                                            f"{re.escape(sheets[0])}\\)"):
        load_styles([only])


def test_a_pipe_named_like_a_png_in_a_style_folder_is_refused_without_being_opened(data_dir, tmp_path):
    """Looking for plategen's sheets among a folder's images opened every file: a pipe with no writer blocked synth
    for good (before, the regular-file check refused it at once)."""
    folder = tmp_path / "styles"
    folder.mkdir()
    shutil.copy(sorted((data_dir / "ccpd-crops" / "images").iterdir())[0], folder)
    os.mkfifo(folder / "b.png")  # nothing ever writes to it
    code = ("from plategen.errors import PlategenError\nfrom plategen.synth import load_styles\n"
            f"try:\n    load_styles([{str(folder)!r}])\nexcept PlategenError as exc:\n    print(exc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert f"{folder / 'b.png'}: not a regular file" in done.stdout, done.stdout + done.stderr


def test_the_library_api_reads_a_chars_spec_and_refuses_odd_inputs_in_one_error_when_called(data_dir):
    """generate_arrays(ck, [img], "0-9", 9) drew '0', '-' and '9'; float styles in 0-1 drew near-black characters;
    odd inputs raised TypeError, IndexError, cv2.error or a torch RuntimeError, and generate() only once iterated."""
    from plategen.errors import PlategenError

    plate = read_image(sorted((data_dir / "uc3m-lp" / "images").glob("*.jpg"))[3])
    images, labels = generate_arrays(DEFAULT_CHECKPOINT, [plate], "0-3", 8, check=False)
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3] and images.shape == (8, 32, 32, 3)
    for kwargs, message in [
        (dict(chars=["AB", "C"]), r"chars: 'AB' is not one character"),
        (dict(chars=[""]), r"chars: '' is not one character"),
        (dict(chars=[" ", "0"]), r"chars: ' ' is whitespace or a control character"),  # "glyph has no ink"
        (dict(chars="9-0"), r"range 9-0 .* runs backwards"),
        (dict(style_images=[]), r"style_images: give at least one plate image"),
        (dict(style_images=[plate / 255.0]), r"style_images\[0\]: need an HxWx3 uint8 RGB array \(0-255\), got float64"),
        (dict(style_images=[plate[..., 0]]), r"style_images\[0\]: need an HxWx3 uint8 RGB array"),
        (dict(style_images=[np.zeros((0, 0, 3), np.uint8)]), r"style_images\[0\]: image is 0x0 px, too small"),
        (dict(seed=-1), r"seed -1: need a whole number"),
        (dict(n=2.5), r"n 2.5: need a whole number"),
        (dict(n=True), r"n True: need a whole number"),
        (dict(device="tpu"), r"--device 'tpu'"),
        (dict(n=10 ** 13), r"n 10000000000000: need a whole number from 1 to 10,000,000"),  # planned until out of memory
        (dict(batch_size=1.5), r"batch_size 1.5: need a whole number from 1 to 8,192"),
        (dict(batch_size="8"), r"batch_size '8': need a whole number"),
        (dict(diversity=None), r"diversity None: need a Diversity"),
        (dict(style_images=None), r"style_images: need a list of HxWx3 uint8 plate images"),
        (dict(style_images=plate), r"style_images: need a list of HxWx3 uint8 plate images"),
        (dict(generator=None), r"generator NoneType: need a checkpoint path or name"),
        # a set's order, and so what each label index means, changed with the process's hash seed
        (dict(chars=set("0123")), r"chars: set .*: give a list of characters \(in the order the labels index\)"),
        (dict(chars=None), r"chars: NoneType None: give a list of characters"),  # it was a TypeError
        (dict(chars=5), r"chars: int 5: give a list of characters"),
        (dict(chinese="allchars", chars="京0"), r"chinese 'allchars': need a loaded checkpoint"),  # AttributeError
        (dict(style_images=[Style("x", None, "h")]), r"style_images\[0\]: need an HxWx3 uint8 RGB array"),  # cv2
    ]:
        args = dict(generator=DEFAULT_CHECKPOINT, style_images=[plate], chars="0-3", n=4) | kwargs
        with pytest.raises(PlategenError, match=message):
            generate(args.pop("generator"), args.pop("style_images"), args.pop("chars"), args.pop("n"), **args)
    small = generate_arrays(DEFAULT_CHECKPOINT, [plate], "0-3", np.int8(5), seed=np.uint8(3), check=False)[0]
    assert small.shape[0] == 5  # numpy integers: np.int8(5) overflowed in the plan ("256 out of bounds for int8")
    batches = generate("default", iter([plate]), ["0", "+"], 4, check=False, device=None)  # a shipped name, any
    assert sorted(c for batch in batches for c in batch.labels) == ["+", "+", "0", "0"]  # character, any iterable


@pytest.mark.parametrize("field, value, message", [
    ("crop", float("nan"), r"Diversity.crop nan: need a number from 0 to 0.45"),  # numpy's OverflowError
    ("style_entries", -5, r"Diversity.style_entries -5: need a whole number from 1 to 1048576"),  # drew, silently
    ("mix", 2, r"Diversity.mix 2: need a number from 0 to 1"),
    ("blur", -1, r"Diversity.blur -1: need a number from 0 to 10"),
    ("jittered_glyphs", 1.5, r"Diversity.jittered_glyphs 1.5: need a whole number"),
    ("noise", "2", r"--noise 2: must be a sigma"),  # a TypeError
    ("match_colours", 1, r"Diversity.match_colours 1: need True or False"),
])
def test_a_diversity_out_of_range_is_refused_in_one_error(field, value, message):
    from plategen.errors import PlategenError

    with pytest.raises(PlategenError, match=message):
        Diversity(**{field: value})


@pytest.mark.parametrize("jitter, message", [
    (dict(scale=(0, 0)), r"JitterRange.scale \(0, 0\): need \(low, high\), 0.5 <= low <= high <= 2$"),  # ZeroDivision
    (dict(scale=(1.5, 0.5)), r"JitterRange.scale"),  # numpy's "high - low < 0", at the first jittered glyph
    (dict(scale=(1e-6, 1e-6)), r"JitterRange.scale"),  # cv2's bad_array_new_length
    (dict(stroke=(5, -5)), r"JitterRange.stroke \(5, -5\): need \(low, high\), -4 <= low <= high <= 8, whole pixels"),
    (dict(stroke=(0, 1.5)), r"JitterRange.stroke \(0, 1.5\)"),
    (dict(stroke=(-20, -20)), r"JitterRange.stroke"),  # every glyph blank, written with its label
    (dict(stroke=(-8, -8)), r"JitterRange.stroke"),  # 99 of 144 blank
    (dict(scale=(4, 4)), r"JitterRange.scale"),  # 13 of 144 blank
    (dict(stroke=(10 ** 400, 10 ** 400)), r"JitterRange.stroke"),  # an OverflowError
    (dict(stroke=(True, True)), r"JitterRange.stroke"),
    (dict(angle=float("nan")), r"JitterRange.angle nan: need a number from 0 to 45"),  # an OverflowError
    (dict(shift=5.0), r"JitterRange.shift 5.0: need a number from 0 to 0.25"),  # 96 of 100 glyphs blank
    (dict(shift="x"), r"JitterRange.shift 'x'"),
])
def test_a_jitter_range_out_of_range_is_refused_when_made(jitter, message):
    from plategen.errors import PlategenError
    from plategen.glyphs import JitterRange

    with pytest.raises(PlategenError, match=message):
        JitterRange(**jitter)
    with pytest.raises(PlategenError, match=r"Diversity.jitter 'x': need a glyphs.JitterRange"):
        Diversity(jitter="x")


def test_at_the_jitter_range_bounds_no_glyph_comes_out_blank():
    """Beyond them glyphs were blank and written with their labels (stroke -8: 99 of 144 of 0-9A-Z in the shipped
    fonts, scale 4: 13, shift 0.5: 2); at them, every glyph keeps ink, each bound alone and all at once."""
    from plategen.charset import parse_charset
    from plategen.glyphs import GlyphJitter, JitterRange, fonts_for, render_glyph, shipped_fonts

    from plategen.errors import PlategenError

    with pytest.raises(PlategenError, match=r"JitterRange.stroke \(-5, 0\)"):
        JitterRange(stroke=(-5, 0))
    bounds = JitterRange(scale=(0.5, 2.0), shift=0.25, angle=45.0, stroke=(-4, 8))
    limits = [GlyphJitter(stroke=bounds.stroke[0]), GlyphJitter(stroke=bounds.stroke[1]),
              GlyphJitter(scale=bounds.scale[0]), GlyphJitter(scale=bounds.scale[1]),
              GlyphJitter(dx=bounds.shift, dy=bounds.shift), GlyphJitter(dx=-bounds.shift, dy=-bounds.shift),
              GlyphJitter(angle=bounds.angle), GlyphJitter(scale=bounds.scale[1], dx=bounds.shift, dy=bounds.shift,
                                                           angle=bounds.angle, stroke=bounds.stroke[0])]
    fonts = shipped_fonts()
    blank = [(c, font.name, j) for j in limits for c in parse_charset("0-9A-Z") for font in fonts_for(c, fonts)
             if render_glyph(c, font, jitter=j).max() <= 64]
    assert blank == []


def test_a_jitter_range_takes_any_pair_of_numbers_as_plain_ones():
    from plategen.glyphs import JitterRange

    from fractions import Fraction

    given = JitterRange(scale=[np.float32(0.9), 1.1], shift=np.float64(0.25), angle=5, stroke=(np.int64(-2), 3.0))
    assert given == JitterRange(scale=(0.8999999761581421, 1.1), shift=0.25, angle=5, stroke=(-2, 3))
    assert [type(v) for v in (*given.scale, given.shift, given.angle, *given.stroke)] == [float, float, float, int,
                                                                                           int, int]
    arrays = JitterRange(scale=np.array([0.9, 1.1]), stroke=np.array([-1, 2]), shift=Fraction(1, 10))
    assert (arrays.scale, arrays.stroke, arrays.shift) == ((0.9, 1.1), (-1, 2), 0.1)


def test_label_check_redraws_what_the_discriminator_misreads(data_dir):
    """With the shipped model, every image the check passes is read as its label by the model's
    discriminator; first draws are the unchecked images, and the check raises agreement."""
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    style = [read_image(sorted((data_dir / "uc3m-lp" / "images").glob("*.jpg"))[3])]
    quiet = Diversity(noise=0)  # the check reads the images before noise
    chars = list("0123456789BDHKMNW")
    checked = list(generate(model, style, chars, 600, seed=2, diversity=quiet))
    plain = list(generate(model, style, chars, 600, seed=2, diversity=quiet, check=False))
    images = np.concatenate([b.images for b in checked])
    attempts = np.concatenate([b.attempts for b in checked])
    verdicts = np.array(sum((b.checks for b in checked), []))
    labels = [model.meta["charset"].index(c) for b in checked for c in b.labels]

    def reads(imgs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model.discriminator(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
        return (logits[:, :-1].argmax(1).numpy() == labels)

    first = attempts == 0
    plain_images = np.concatenate([b.images for b in plain])
    assert np.array_equal(images[first], plain_images[first]) and 0 < (~first).sum() < 300
    assert not np.array_equal(images[~first], plain_images[~first])
    assert set(np.unique(verdicts)) <= {"pass", "fail"}
    assert reads(images)[verdicts == "pass"].mean() > 0.98  # uint8 rounding may flip a near tie
    assert reads(images).mean() > reads(plain_images).mean()


def test_label_check_redraws_what_the_discriminator_reads_right_but_unsure(data_dir):
    """An image read as its label with under CHECK_SURE probability is drawn again too (characters placed on plates
    read as asked more often: plan.CHECK_SURE); one read surely is kept as first drawn."""
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    style = [read_image(sorted((data_dir / "uc3m-lp" / "images").glob("*.jpg"))[3])]
    quiet = Diversity(noise=0)
    chars = list("0123456789BDHKMNW")
    checked = list(generate(model, style, chars, 600, seed=2, diversity=quiet))
    first = np.concatenate([b.images for b in generate(model, style, chars, 600, seed=2, diversity=quiet,
                                                       check=False)])
    attempts = np.concatenate([b.attempts for b in checked])
    labels = torch.tensor([model.meta["charset"].index(c) for b in checked for c in b.labels])
    with torch.no_grad():
        logits = model.discriminator(torch.from_numpy(first).permute(0, 3, 1, 2).float() / 255)[:, :-1]
    right = (logits.argmax(1) == labels).numpy()
    prob = torch.softmax(logits, 1).gather(1, labels[:, None])[:, 0].numpy()
    unsure, sure = right & (prob < CHECK_SURE - 0.05), right & (prob > CHECK_SURE + 0.05)  # margins: uint8 rounding
    assert unsure.sum() >= 10 and sure.sum() >= 300
    assert (attempts[sure] == 0).all()
    assert (attempts[unsure] > 0).mean() > 0.5  # the rest: every later draw read worse, so the first stays


def test_a_batch_split_between_threads_gives_the_same_bytes_checks_and_draws(data_dir):
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    styles = load_styles([sorted((data_dir / "uc3m-lp" / "images").glob("*.jpg"))[3]])
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as synth runs on CPU, one core left to the writers
    try:
        synth = Synthesizer.build(model.generator, styles, list("0123456789BDHKMNW"), 300, seed=2, batch_size=300,
                                  charset=model.meta["charset"], discriminator=model.discriminator)
        assert synth.threads == min(2, usable_cores())
        synth.threads = 2
        split = synth.generate(np.arange(300))
        synth.threads = 1
        whole = synth.generate(np.arange(300))
    finally:
        torch.set_num_threads(before)
    assert (split.attempts[:150] > 0).any() and (split.attempts[150:] > 0).any()  # retries in both threads
    for f in dataclasses.fields(Batch):
        assert np.array_equal(getattr(split, f.name), getattr(whole, f.name)), f.name


def test_only_a_model_trained_on_narrowed_glyphs_gets_them_narrowed_and_each_model_its_own(plate, tmp_path):
    """Single characters go to a model trained on narrowed glyphs as narrow as its training crops' median box; the
    Chinese characters another model draws (trained on glyphs as drawn) stay as drawn; whole plates pass their slots'."""
    narrow = load_checkpoint(make_checkpoint(tmp_path / "n.safetensors", list("MW京"), glyph_aspect=0.5))
    chinese = load_checkpoint(make_checkpoint(tmp_path / "c.safetensors", list("M京")))
    half = int(narrowest([0.5])[0])
    assert glyph_widths(narrow.config, None, list("MW京")) == [half] * 3
    assert glyph_widths(narrow.config, chinese, list("MW京")) == [half, half, None]
    assert glyph_widths(narrow.config, chinese, list("MW京"), np.array([0.7, 0.3, 0.9])) == [8, 0, None]
    assert glyph_widths(chinese.config, None, list("M京")) is None
    synth = Synthesizer.build(narrow.generator, load_styles([plate]), list("MW"), 8, 0)
    for glyph in synth.glyphs.glyphs:
        x0, y0, x1, y1 = ink_box(glyph)
        assert (x1 - x0) / (y1 - y0) <= 0.5 + 1.5 / (y1 - y0)
