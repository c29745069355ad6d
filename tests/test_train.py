import re
import shutil
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from plategen.checkpoint import (SHIPPED_CHECKPOINTS, load_checkpoint, load_optimizers, optimizer_path, read_safetensors,
                                 save_checkpoint, write_safetensors)
from plategen.atomic import OutputLock, is_own_sheet, lock_beside
from plategen.cli import app
from plategen.dataset import build_samples, is_holdout
from plategen.errors import PlategenError
from plategen.glyphs import fonts_for, ink_box, narrowest, render_glyph, shipped_fonts
from plategen.model import Discriminator, Generator, SAAEConfig
from plategen.plates import load_plates
from conftest import copy_plates, immutable, one_line_error
import plategen.train as train_module
from plategen.train import (FINETUNE_STEPS, GlyphBank, TrainOptions, load_split, once_each, options_for, outside_charset,
                            run_total, to_float, train_saae, train_step)

TINY = dict(content_width=4, style_width=4, style_dim=8, decoder_width=8, disc_width=4, disc_hidden=16)


@pytest.fixture
def small_uc3m(tmp_path: Path, data_dir: Path) -> Path:
    """The first 80 uc3m plates (images, labels, classes.txt): a real folder that imports in a blink."""
    uc3m = data_dir / "uc3m-lp"
    folder = tmp_path / "uc3m-small"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(uc3m / "classes.txt", folder)
    for image in sorted((uc3m / "images").iterdir())[:80]:
        shutil.copy(image, folder / "images")
        shutil.copy(uc3m / "labels" / f"{image.stem}.txt", folder / "labels")
    return folder


def test_each_of_the_three_losses_moves_on_real_crops(small_uc3m: Path):
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny convs: a second thread only adds overhead on a busy 2-core machine
    plates = [p for p in load_plates(small_uc3m).plates if not is_holdout(p)][:40]
    samples = build_samples(plates)
    config = SAAEConfig(num_classes=len(samples.charset), **TINY)
    G, D = Generator(config), Discriminator(config)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    bank = GlyphBank(samples.charset, 1, np.random.default_rng(0), config.glyph_size)
    idx = torch.arange(min(32, len(samples.labels)))  # one fixed batch: the losses must fall on it
    y = torch.from_numpy(samples.labels)[idx]
    glyph = to_float(bank.first(y, samples.aspects[idx.numpy()]), torch.device("cpu"))
    style = to_float(torch.from_numpy(samples.styles[samples.plate_index[idx.numpy()]]), torch.device("cpu"))
    real = to_float(torch.from_numpy(samples.crops)[idx], torch.device("cpu"))
    start_g, start_d = G.state_dict(), D.state_dict()
    start_g, start_d = {k: v.clone() for k, v in start_g.items()}, {k: v.clone() for k, v in start_d.items()}
    history = [train_step(G, D, opt_g, opt_d, glyph, style, real, y, TrainOptions()) for _ in range(15)]
    first, last = history[0], history[-1]
    assert last["rec"] < first["rec"]  # (1) reconstruction learns
    assert last["d"] < first["d"]  # (2) the discriminator learns
    assert all(np.isfinite(v) for h in history for v in h.values())

    # (3) the adversarial loss moves G, and only G: one step from the same start with and without it
    def one_step(adv_weight: float) -> tuple[Generator, Discriminator]:
        g, d = Generator(config), Discriminator(config)
        g.load_state_dict(start_g), d.load_state_dict(start_d)
        torch.manual_seed(1)
        train_step(g, d, torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999)),
                   torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999)), glyph, style, real, y,
                   TrainOptions(adv_weight=adv_weight))
        return g, d

    (g_adv, d_adv), (g_plain, d_plain) = one_step(1.0), one_step(0.0)
    assert all(torch.equal(a, b) for a, b in zip(d_adv.state_dict().values(), d_plain.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(g_adv.state_dict().values(), g_plain.state_dict().values()))


def test_the_glyph_bank_gives_each_crop_its_glyph_as_narrow_as_the_crops_box():
    """A model trained with narrowed glyphs learns to draw what it is given, not to squeeze a font's wide M."""
    bank = GlyphBank(["M", "1"], 1, np.random.default_rng(0), 32, narrow=True)
    fonts = fonts_for("M", shipped_fonts())
    labels = torch.tensor([0, 0, 1])
    aspects = np.array([0.47, np.nan, 0.47])
    first = bank.first(labels, aspects)[:, 0].numpy()
    assert np.array_equal(first[0], render_glyph("M", fonts[0], 32, width=narrowest([0.47])[0]))
    assert np.array_equal(first[1], render_glyph("M", fonts[0], 32))  # no box (a rendered pair): as drawn
    assert np.array_equal(first[2], render_glyph("1", fonts_for("1", shipped_fonts())[0], 32))
    drawn = bank.sample(labels.repeat(40), torch.Generator().manual_seed(0), np.tile(aspects, 40))[:, 0].numpy()
    widths = [ink_box(g)[2] - ink_box(g)[0] for g in drawn[::3]]
    assert max(widths) <= 0.47 * 32 / 1.2 + 2  # every font's M at the crop's width
    assert len({g.tobytes() for g in drawn[::3]}) == len(fonts)  # one of each font's
    as_drawn = GlyphBank(["M"], 1, np.random.default_rng(0), 32)
    assert np.array_equal(as_drawn.first(labels[:1], aspects[:1])[0, 0].numpy(), render_glyph("M", fonts[0], 32))


def test_train_writes_checkpoint_grids_and_resumes(tmp_path: Path, small_uc3m: Path):
    out = tmp_path / "m.safetensors"
    options = TrainOptions(steps=3, batch_size=8, num_threads=1, val_crops=32, val_every=3, sample_every=3, model=TINY,
                           narrow_glyphs=True)
    result = train_saae([small_uc3m], out, options, progress=False)
    assert result.steps == 3 and out.is_file() and optimizer_path(out).is_file()
    assert result.samples and result.samples[0].is_file()
    loaded = load_checkpoint(out)
    plates = load_plates(small_uc3m).plates
    assert set(loaded.meta["plate_sha256"]) == {p.sha256 for p in plates if not is_holdout(p)}
    assert loaded.meta["step"] == 3 and loaded.meta["data"]["train_plates"] == len(loaded.meta["plate_sha256"])
    assert np.isfinite(result.val_l1)
    crops = build_samples([p for p in plates if not is_holdout(p)])  # trained on narrowed glyphs: says how narrow
    assert loaded.config.glyph_aspect == pytest.approx(np.median(crops.aspects), abs=1e-3)

    with pytest.raises(PlategenError, match="already exists"):
        train_saae([small_uc3m], out, options, progress=False)
    resumed = train_saae([small_uc3m], out, TrainOptions(**{**options.__dict__, "steps": 5}), resume=out, progress=False)
    assert resumed.steps == 5 and resumed.resumed_at == 3 and load_checkpoint(out).meta["step"] == 5
    elsewhere = tmp_path / "other.safetensors"  # a total below the checkpoint's steps would write nothing
    with pytest.raises(PlategenError, match="already trained 5 steps, past the total of 4"):
        with pytest.MonkeyPatch.context() as patch:  # said before the data is read
            patch.setattr("plategen.train.load_split", lambda *a, **k: pytest.fail("read the data first"))
            train_saae([small_uc3m], elsewhere, replace(options, steps=4), resume=out, progress=False)
    assert not elsewhere.exists()


def test_wrong_inputs_give_one_clear_error(tmp_path: Path):
    with pytest.raises(PlategenError, match="no-such-folder"):
        train_saae([tmp_path / "no-such-folder"], tmp_path / "m.safetensors", TrainOptions(steps=1), progress=False)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(PlategenError, match="bad.safetensors"):
        train_saae([tmp_path], tmp_path / "new.safetensors", TrainOptions(steps=1), resume=bad, progress=False)


def test_non_finite_weights_neither_resume_nor_overwrite_the_last_checkpoint(tmp_path: Path, small_uc3m: Path,
                                                                              monkeypatch):
    """A NaN checkpoint resumed trained on into an all-NaN model (exit 0); a run that diverged wrote NaN weights
    over its last good checkpoint."""
    out = tmp_path / "m.safetensors"
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=16, val_every=2, sample_every=2, model=TINY)
    train_saae([small_uc3m], out, options, progress=False)
    good = out.read_bytes()
    real_step = train_module.train_step

    def diverging_step(G, *args, **kwargs):
        losses = real_step(G, *args, **kwargs)
        with torch.no_grad():
            next(G.parameters()).fill_(float("nan"))
        return losses

    monkeypatch.setattr(train_module, "train_step", diverging_step)
    with pytest.raises(PlategenError, match=r"step 4: generator weight \S+ holds NaN or infinite values; .*: training "
                                            r"diverged \(losses .*\); \S+m\.safetensors is not written at this step"):
        train_saae([small_uc3m], out, replace(options, steps=4), resume=out, progress=False)
    assert out.read_bytes() == good
    monkeypatch.setattr(train_module, "train_step", real_step)

    loaded = load_checkpoint(out)  # a checkpoint holding one NaN, as a diverged run of another tool would write
    weights = loaded.generator.state_dict()
    next(iter(w for w in weights.values() if w.is_floating_point())).view(-1)[0] = float("nan")
    nan = tmp_path / "nan.safetensors"
    save_checkpoint(nan, loaded.generator, loaded.config, loaded.meta, loaded.discriminator)
    with pytest.raises(PlategenError, match=r"nan\.safetensors: generator weight \S+ holds NaN or infinite values"):
        train_saae([small_uc3m], tmp_path / "again.safetensors", replace(options, steps=4), resume=nan, progress=False)
    assert not (tmp_path / "again.safetensors").exists()


def test_an_interrupted_training_says_how_to_go_on_once_it_wrote_a_checkpoint(tmp_path: Path, small_uc3m: Path,
                                                                               monkeypatch):
    out = tmp_path / "m.safetensors"

    def stopped_after_a_checkpoint(data, path, *args, **kwargs):
        path.write_bytes(b"a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_saae", stopped_after_a_checkpoint)
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out)])
    assert result.exit_code == 130
    assert " ".join(result.output.split()).endswith(
        f"interrupted: {out} holds the last checkpoint; run the same command with --resume {out} to go on from it")
    monkeypatch.setattr(train_module, "train_saae", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out), "--overwrite"])
    assert result.exit_code == 130  # the file there is an earlier run's: this one saved nothing, and says so
    assert result.output.strip() == "interrupted before this run's first checkpoint: nothing was saved"


def test_a_second_training_into_a_checkpoint_being_written_is_refused_and_a_killed_ones_leftovers_go(tmp_path: Path, small_uc3m: Path):
    """Two runs into one --out both ended with exit 0 on a file holding the first's weights and grids of both."""
    out = tmp_path / "m.safetensors"
    holder = OutputLock(lock_beside(out), lambda: PlategenError("held"))  # as a live run holds it
    try:
        with pytest.raises(PlategenError, match=r"m\.safetensors: another plategen train run is writing this "
                                                r"checkpoint \(\.m\.safetensors\.lock is locked\)"):
            train_saae([small_uc3m], out, TrainOptions(steps=1, batch_size=4, num_threads=1, model=TINY),
                       progress=False)
    finally:
        holder.release()
    assert not out.exists()
    killed = [tmp_path / ".m.safetensors.abcd_fgh.tmp", tmp_path / ".m.optim.safetensors.abcdefgh.tmp",
              tmp_path / "m-samples" / ".step000001.png.abcdefgh.tmp"]  # a run killed mid-write left them
    others = [tmp_path / ".m.safetensors.bak.safetensors.abcdefgh.tmp", tmp_path / "m-samples" / ".a.png.abcdefgh.tmp"]
    (tmp_path / "m-samples").mkdir()
    for path in killed + others:
        path.write_bytes(b"half")
    train_saae([small_uc3m], out, TrainOptions(steps=1, batch_size=4, num_threads=1, val_crops=8, model=TINY),
               progress=False)
    assert out.is_file() and not lock_beside(out).exists()  # released and removed when the run ended
    assert [p.exists() for p in killed + others] == [False, False, False, True, True]  # another file's stay


def test_an_unfinished_run_resumed_with_other_weight_options_says_so(tmp_path: Path, small_uc3m: Path, monkeypatch):
    """A killed run resumed without its --seed (or with another --batch-size) ended on other weights, exit 0 and
    nothing said."""
    out = tmp_path / "m.safetensors"
    options = TrainOptions(steps=4, batch_size=8, num_threads=1, val_crops=16, val_every=2, sample_every=2, model=TINY,
                           seed=3)
    real_step, calls = train_module.train_step, []

    def killed_at_step_three(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", killed_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        train_saae([small_uc3m], out, options, progress=False)
    monkeypatch.setattr(train_module, "train_step", real_step)
    assert load_checkpoint(out).meta["step"] == 2
    shutil.copy(out, tmp_path / "copy.safetensors")
    shutil.copy(optimizer_path(out), optimizer_path(tmp_path / "copy.safetensors"))
    result = train_saae([small_uc3m], out, replace(options, seed=0, batch_size=4), resume=out, progress=False)
    assert result.changed_options == ["--batch-size 8 -> 4", "--seed 3 -> 0"]
    same = train_saae([small_uc3m], tmp_path / "copy.safetensors", options, resume=tmp_path / "copy.safetensors",
                      progress=False)
    assert same.steps == 4 and same.changed_options == []


@pytest.mark.parametrize("change, message", [
    (lambda charset: charset[:-1], r"charset names 26 characters, its weights have 27 classes"),
    (lambda charset: [charset[0], *charset[:-1]], r"charset names '0' more than once"),
    (lambda charset: [*charset[:-1], "AB"], r"charset is not a list of single characters"),
])
def test_a_checkpoint_whose_charset_does_not_fit_its_weights_is_one_line(tmp_path: Path, change, message):
    """A charset one short ended in a size-mismatch traceback; a repeated one trained every later class under the
    wrong character."""
    charset = list("0123456789ABCDEFGHIJKLMNOPQ")
    config = SAAEConfig(num_classes=len(charset), **TINY)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, Generator(config), config, {"charset": change(charset)}, Discriminator(config))
    with pytest.raises(PlategenError, match=rf"m\.safetensors: checkpoint meta {message}"):
        load_checkpoint(path)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps 0"),
    (["--steps", "-5"], "--steps -5"),
    (["--epochs", "0"], "--epochs 0"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--lr", "0"], "--lr 0.0"),
    (["--threads", "0"], "--threads 0"),
    # found by a hostile try: tracebacks, a segfault, or a checkpoint written where it should not be
    (["--seed", "-1"], "--seed -1: must be 0 or more"),
    (["--lr", "1e300"], "--lr 1e+300: must be a positive number, at most 1"),
    (["--threads", "100000"], "--threads 100000: need 1 to"),
    (["--rendered-share", "1e9"], "--rendered-share 1000000000.0: must be 0 to 4.0"),
    (["--batch-size", "100000000"], "--batch-size 100000000: need 1 to 8192"),
    (["--device", "meta"], "--device 'meta': plategen runs on cpu or cuda"),
    (["--out", "TMP/m.pt"], "m.pt: a checkpoint is a .safetensors file"),
    (["--out", "TMP/nowhere/m.safetensors"], "nowhere/m.safetensors: the folder"),
    (["--out", ""], "--out: an empty path"),
    (["--samples-dir", ""], "--samples-dir: an empty path"),
    (["--samples-dir", "/proc/plategen-grids"], "--samples-dir /proc/plategen-grids: cannot write in /proc"),  # root passed
    (["--resume", ""], "--resume: an empty path"),
    (["--data", "DATA"], "given twice; its plates would count double"),
    (["--preset", "finetune", "--steps", "1"], "--preset finetune: adds steps to a trained model; give --resume"),
    (["--chars", "京", "--steps", "1"], "no character crops of --chars 京 on the training plates"),
])
def test_train_refuses_options_that_train_nothing_or_fail_later(tmp_path: Path, small_uc3m: Path, args, message):
    out = tmp_path / "m.safetensors"
    args = [a.replace("TMP", str(tmp_path)).replace("DATA", str(small_uc3m)) for a in args]
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output and "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [small_uc3m]  # nothing written


def test_the_summary_names_the_crops_no_class_of_the_model_takes(tmp_path: Path, small_uc3m: Path):
    """A fine-tune on plates of a new design keeps the resumed model's classes: their other characters were left
    out without a word."""
    plates = [p for p in load_plates(small_uc3m).plates if not is_holdout(p)]  # the training side
    letters = Counter(ch for p in plates for ch in p.text if ch.isalpha())
    assert letters and outside_charset(plates, list("0123456789")) == dict(sorted(letters.items()))
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(tmp_path / "m.safetensors"),
                                      "--steps", "1", "--batch-size", "4", "--chars", "0-9"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "left out" in line)
    assert f"{sum(letters.values())} crops of characters" in row


def test_the_summary_names_classes_trained_on_nothing(tmp_path: Path, small_uc3m: Path):
    """--chars 0-9京 on Spanish plates trained a 京 class from no crop at all without a word; synth's label check
    then reads 京 with an untrained row of the discriminator."""
    args = ["train", "--data", str(small_uc3m), "--steps", "1", "--batch-size", "4"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.safetensors"), "--chars", "0-9京"])
    assert result.exit_code == 0, result.output
    assert next(line for line in result.output.splitlines() if "untrained classes" in line).split("│")[2].strip() \
        .startswith("京: no crop on the training plates")
    topped = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b.safetensors"), "--chars", "0-9京",
                                      "--rendered-share", "0.5"])
    assert topped.exit_code == 0, topped.output
    assert "untrained classes" not in topped.output  # rendered pairs train it


def test_an_optimizer_state_path_that_is_a_folder_is_refused_before_training(tmp_path: Path, small_uc3m: Path):
    """With --overwrite it trained every step, then failed to write there: a checkpoint without its optimizer state."""
    out = tmp_path / "m.safetensors"
    optimizer_path(out).mkdir()
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out), "--steps", "2",
                                      "--batch-size", "4", "--overwrite"])
    assert one_line_error(result).strip().endswith(f"{optimizer_path(out)}: is a folder, and this run writes its optimizer "
                                           "state there; move it, or give --out another name")
    assert not out.exists() and not (tmp_path / "m-samples").exists()


def test_train_command_end_to_end(tmp_path: Path, small_uc3m: Path):
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out), "--steps", "2",
                                      "--batch-size", "4", "--seed", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "2 in" in result.output and str(out.name) in result.output  # the result table
    loaded = load_checkpoint(out)
    assert loaded.meta["step"] == 2 and loaded.meta["train"]["batch_size"] == 4 and loaded.meta["train"]["seed"] == 1
    assert optimizer_path(out).is_file() and (tmp_path / "m-samples" / "step000002.png").is_file()
    resumed = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out), "--steps", "3",
                                       "--batch-size", "4", "--seed", "1", "--threads", "1", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert "3 (1 from step 2) in" in resumed.output  # what this run trained, not only the model's total
    assert loaded.config.glyph_aspect is None  # content glyphs as drawn unless asked
    narrowed = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(out), "--steps", "4",
                                        "--batch-size", "4", "--threads", "1", "--resume", str(out), "--narrow-glyphs"])
    assert narrowed.exit_code == 2 and "--narrow-glyphs" in one_line_error(narrowed)  # a model keeps its glyphs
    assert load_checkpoint(out).meta["step"] == 3
    fresh = tmp_path / "narrow.safetensors"
    assert CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(fresh), "--steps", "1",
                                    "--batch-size", "4", "--threads", "1", "--narrow-glyphs"]).exit_code == 0
    assert 0.5 < load_checkpoint(fresh).config.glyph_aspect < 0.75  # Spanish plates' characters: narrow


def test_train_says_which_bad_records_it_left_out(tmp_path: Path, small_uc3m: Path):
    """A truncated image was dropped without a word: the run said "79 plates" and nothing else."""
    broken = sorted((small_uc3m / "images").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:100])
    out = tmp_path / "m.safetensors"
    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        app, ["train", "--data", str(small_uc3m), "--out", str(out), "--steps", "1", "--batch-size", "4",
              "--threads", "1"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "bad records left out" in line)
    assert f"1; first: {broken}: not a readable image" in row and "plategen inspect lists them" in row


def test_a_copy_of_a_data_folder_trains_once_and_never_validates_on_training_images(tmp_path: Path, small_uc3m: Path):
    """A byte-for-byte copy given as a second --data trained every image twice, and the split (keyed by folder name)
    held out copies of training plates: the validation L1 was partly measured on training images."""
    copy = shutil.copytree(small_uc3m, tmp_path / "copy")
    out = tmp_path / "m.safetensors"
    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        app, ["train", "--data", str(small_uc3m), "--data", str(copy), "--out", str(out), "--steps", "1",
              "--batch-size", "4", "--threads", "1"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "repeated images left out" in line)
    first = sorted((copy / "images").iterdir())[0]
    assert f"80; first: {first}: the same bytes as {small_uc3m / 'images' / first.name}; kept once, as there" in row
    meta = load_checkpoint(out).meta
    assert meta["data"]["train_plates"] + meta["data"]["holdout_plates"] == 80
    assert meta["data"]["plates_per_folder"] == {str(small_uc3m): 80, str(copy): 0}
    train, held, *_ = load_split([small_uc3m, copy])
    assert not {p.sha256 for p in train} & {p.sha256 for p in held}
    assert len(meta["plate_sha256"]) == len(train)


def test_a_repeated_image_labelled_otherwise_says_which_label_is_kept(small_uc3m: Path):
    plates = load_plates(small_uc3m).plates[:3]
    copy = replace(plates[1], image_path=Path("/elsewhere/x.jpg"), text=plates[1].text[::-1] + "Z")
    kept, repeats = once_each([*plates, copy])
    assert kept == plates and repeats == [f"/elsewhere/x.jpg: the same bytes as {plates[1].image_path}, labelled "
                                          f"{plates[1].text!r} there and {copy.text!r} here; kept once, as there"]


def test_overwrite_replaces_the_earlier_runs_sample_grids_and_no_others(tmp_path: Path, small_uc3m: Path):
    """The replaced run's step000003.png stayed beside the new run's step000002.png (the summary said "1"); the grids
    of another checkpoint sharing the folder, and those of a run resumed in place, stay."""
    out, other = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    samples = tmp_path / "grids"
    mine = samples / "notes.png"
    runner = CliRunner(env={"COLUMNS": "300"})

    def train(to: Path, *args: str) -> None:
        result = runner.invoke(app, ["train", "--data", str(small_uc3m), "--out", str(to), "--samples-dir", str(samples),
                                     "--batch-size", "4", "--threads", "1", *args])
        assert result.exit_code == 0, result.output

    train(out, "--steps", "3")
    train(other, "--steps", "5")
    mine.write_bytes(b"a user's file")
    assert sorted(p.name for p in samples.iterdir()) == ["notes.png", "step000003.png", "step000005.png"]
    train(out, "--steps", "2", "--overwrite")
    assert sorted(p.name for p in samples.iterdir()) == ["notes.png", "step000002.png", "step000005.png"]
    assert load_checkpoint(out).meta["step"] == 2
    train(out, "--steps", "4", "--resume", str(out), "--overwrite")  # goes on with its own run: its grids stay
    assert sorted(p.name for p in samples.iterdir()) == ["notes.png", "step000002.png", "step000004.png",
                                                         "step000005.png"]
    assert load_checkpoint(out).meta["grids"] == ["step000002.png", "step000004.png"]
    # a model resumed from another: overwriting it took the grids of the steps before its start too (the other's)
    shared = tmp_path / "shared"
    opts = TrainOptions(steps=4, batch_size=4, sample_every=2, num_threads=1, samples_dir=shared)
    first, later = tmp_path / "p.safetensors", tmp_path / "q.safetensors"
    train_saae([small_uc3m], first, opts, progress=False)
    train_saae([small_uc3m], later, replace(opts, steps=6), resume=first, progress=False)
    assert sorted(p.name for p in shared.iterdir()) == ["step000002.png", "step000004.png", "step000006.png"]
    train_saae([small_uc3m], later, replace(opts, steps=1), overwrite=True, progress=False)
    assert sorted(p.name for p in shared.iterdir()) == ["step000001.png", "step000002.png", "step000004.png"]


def test_overwrite_finds_the_replaced_runs_grids_from_another_working_folder(tmp_path: Path, small_uc3m: Path,
                                                                            monkeypatch):
    """The samples dir was recorded as given (relative): run from elsewhere, the overwrite missed the old grids."""
    work = tmp_path / "w"
    work.mkdir()
    runner = CliRunner()
    base = ["train", "--data", str(small_uc3m), "--batch-size", "4", "--threads", "1"]
    monkeypatch.chdir(work)
    assert runner.invoke(app, [*base, "--out", "a.safetensors", "--steps", "3"]).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*base, "--out", "w/a.safetensors", "--steps", "2", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (work / "a-samples").iterdir()) == ["step000002.png"]


def test_a_resume_already_past_the_epochs_asked_for_names_epochs(tmp_path: Path, small_uc3m: Path):
    """It said "give a larger --steps" to a user who gave --epochs (on a resume, a total counted from step 0 too)."""
    out = tmp_path / "e.safetensors"
    message = one_line_error(CliRunner(env={"COLUMNS": "300"}).invoke(
        app, ["train", "--data", str(small_uc3m), "--out", str(out), "--resume", "default", "--epochs", "2",
              "--threads", "1"]))
    assert "already trained 6000 steps, past --epochs 2 (" in message and "give a larger --epochs" in message
    assert "--steps" not in message and not out.exists()


def test_resume_with_an_optimizer_state_of_another_shape_is_one_clear_error(tmp_path: Path, small_uc3m: Path):
    options = TrainOptions(steps=1, batch_size=4, num_threads=1, val_crops=8, model=TINY)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train_saae([small_uc3m], a, options, progress=False)
    train_saae([small_uc3m], b, replace(options, model={**TINY, "content_width": 8}), progress=False)
    # same layers, other widths, in a sidecar that records no weights digest (as before it did): it is read
    tensors, header = read_safetensors(optimizer_path(b), "optimizer state")
    write_safetensors(optimizer_path(a), tensors, {k: v for k, v in header.items() if k != "weights"})
    with pytest.raises(PlategenError, match=r"a\.optim\.safetensors: optimizer state does not match the model"):
        train_saae([small_uc3m], a, replace(options, steps=2), resume=a, progress=False)
    assert load_checkpoint(a).meta["step"] == 1  # the checkpoint is untouched


def test_train_follows_csv_paths_outside_the_data_folder_only_when_allowed(tmp_path: Path, data_dir: Path):
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = (data_dir / "openalpr-us" / "labels.csv").read_text().splitlines()[1:41]
    absolute = [f"{data_dir / 'openalpr-us' / row.split(',')[0]},{row.split(',')[2]}" for row in rows]
    (folder / "labels.csv").write_text("image_path,plate_text\n" + "\n".join(absolute) + "\n")
    out = tmp_path / "m.safetensors"
    args = ["train", "--data", str(folder), "--out", str(out), "--steps", "1", "--batch-size", "4", "--threads", "1"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "outside the data folder" in refused.output and "--allow-outside-paths" in refused.output
    assert not out.exists()
    allowed = CliRunner().invoke(app, [*args, "--allow-outside-paths"])
    assert allowed.exit_code == 0, allowed.output
    assert load_checkpoint(out).meta["step"] == 1


@pytest.mark.parametrize("where", ["out", "samples-dir"])
def test_an_output_through_a_file_is_one_line_before_any_data_is_read(tmp_path: Path, where):
    (tmp_path / "file.txt").write_text("keep me")
    out = tmp_path / ("file.txt/x.safetensors" if where == "out" else "m.safetensors")
    args = ["train", "--data", str(tmp_path / "no-such-folder"), "--out", str(out), "--steps", "1"]
    if where == "samples-dir":
        args += ["--samples-dir", str(tmp_path / "file.txt" / "grids")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'file.txt'} is a file, not a folder" in lines[0], result.output
    assert (tmp_path / "file.txt").read_text() == "keep me" and list(tmp_path.iterdir()) == [tmp_path / "file.txt"]


def test_samples_dir_that_is_a_file_is_refused_before_training(tmp_path: Path):
    (tmp_path / "grids").write_text("keep me")
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "no-such-folder"), "--out",
                                      str(tmp_path / "m.safetensors"), "--samples-dir", str(tmp_path / "grids")])
    assert result.exit_code == 2 and "--samples-dir" in result.output and "not a folder" in result.output
    assert (tmp_path / "grids").read_text() == "keep me" and not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("samples", ["m.safetensors", "m.optim.safetensors", "m.safetensors/grids"])
def test_samples_dir_at_the_checkpoints_own_path_is_refused_before_training(tmp_path: Path, samples: str):
    """A hostile try: `--samples-dir` = `--out` trained every step, then its grid made a folder of the checkpoint's
    name and the run ended with no checkpoint ("cannot write (Is a directory)")."""
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "no-such-folder"), "--out",
                                      str(tmp_path / "m.safetensors"), "--samples-dir", str(tmp_path / samples)])
    assert result.exit_code == 2 and "is, or lies under, where the checkpoint (or its optimizer state) goes" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_nothing_to_validate_says_so_instead_of_a_perfect_score(tmp_path: Path):
    """Three synthesized plates: the held-out one shows only characters the other two lack, so nothing was
    validated, and the table said validation L1 0.0000 (a perfect score)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "plate-es.jpg"
    made = CliRunner().invoke(app, ["synth", "--plates", "--style", str(example), "--n", "3", "--out",
                                    str(tmp_path / "p")])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "p"), "--out", str(tmp_path / "m.safetensors"),
                                      "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "not measured" in result.output and "0.0000" not in result.output
    assert load_checkpoint(tmp_path / "m.safetensors").meta["val_l1"] is None  # JSON has no NaN


def test_a_file_plategen_did_not_write_under_a_grids_name_is_refused_before_training(tmp_path: Path,
                                                                                    small_uc3m: Path):
    """`--samples-dir` replaced a user's step000002.png; grids are now marked plategen's, and only those are
    replaced (or anything, with --overwrite)."""
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "step000002.png").write_text("my notes, not a PNG")
    (grids / "steps-notes.png").write_text("no grid's name: left alone")
    args = ["train", "--data", str(small_uc3m), "--out", str(tmp_path / "m.safetensors"), "--samples-dir", str(grids),
            "--steps", "2", "--batch-size", "8", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "holds step000002.png, a sample grid's name, without the mark" in result.output, \
        result.output
    assert (grids / "step000002.png").read_text() == "my notes, not a PNG" and not (tmp_path / "m.safetensors").exists()
    assert CliRunner().invoke(app, args + ["--overwrite"]).exit_code == 0
    assert is_own_sheet(grids / "step000002.png")
    assert (grids / "steps-notes.png").read_text() == "no grid's name: left alone"
    again = [a if a != str(tmp_path / "m.safetensors") else str(tmp_path / "m2.safetensors") for a in args]
    assert CliRunner().invoke(app, again).exit_code == 0  # its own grids it replaces


def test_a_plate_text_no_font_draws_is_named_with_its_image(tmp_path: Path, data_dir: Path):
    """It said only "no shipped font covers 1 character(s): 'ᚠ'", a character the user never asked for."""
    folder = tmp_path / "plates"
    (folder / "images").mkdir(parents=True)
    names = ["ak1165.jpg", "ak399.jpg", "al47.jpg", "de1057.jpg", "md783.jpg"]
    for name in names:
        shutil.copy(data_dir / "openalpr-us" / "images" / name, folder / "images")
    texts = ["FUW999", "ᚠGJ235", "2A9043J", "200000", "3DDB31"]
    (folder / "labels.csv").write_text("image_path,plate_text\n" + "".join(
        f"images/{n},{t}\n" for n, t in zip(names, texts)), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path / "m.safetensors"),
                                      "--steps", "2", "--threads", "1"])
    line = one_line_error(result)
    assert f"{folder / 'images' / 'ak399.jpg'}: its text 'ᚠGJ235' holds 'ᚠ' (U+16A0), which no shipped font" in line
    assert not (tmp_path / "m.safetensors").exists()
    # --chars leaving it out trains: such a character is never cut out
    assert CliRunner().invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path / "m.safetensors"),
                                    "--steps", "2", "--threads", "1", "--chars", "0-9A-Z"]).exit_code == 0


def test_a_samples_dir_under_a_link_to_nowhere_is_refused_before_training(tmp_path: Path, small_uc3m: Path):
    """It trained to the first grid, then stopped with a traceback and no checkpoint."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(tmp_path / "m.safetensors"),
                                      "--samples-dir", str(tmp_path / "dangling" / "grids"), "--steps", "2"])
    assert f"{tmp_path / 'dangling'} is a link to {tmp_path / 'nowhere'}" in one_line_error(result)
    assert not (tmp_path / "m.safetensors").exists()


def test_chars_gives_every_character_a_class_and_renders_pairs_only_for_scarce_ones(tmp_path: Path,
                                                                                   small_uc3m: Path):
    out = tmp_path / "m.safetensors"
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=16, val_every=2, sample_every=2,
                           model=TINY, chars="0-9A-Z京川", rendered_share=0.5)  # uc3m: no vowels, no provinces
    result = train_saae([small_uc3m], out, options, progress=False)
    loaded = load_checkpoint(out)
    charset = loaded.meta["charset"]
    assert charset == list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ京川")
    assert loaded.discriminator.out.out_features == len(charset) + 1  # a class per character + "generated"
    real = loaded.meta["data"]["crops_per_class"]
    rendered = loaded.meta["data"]["rendered_per_class"]
    seen = sorted(n for n in real.values() if n)
    floor = round(0.5 * float(np.median(seen)))
    assert {"A", "E", "I", "O", "U", "Q", "京", "川"} <= set(rendered)  # none on Spanish plates
    assert all(real[c] + rendered.get(c, 0) == floor for c in charset if real[c] < floor)  # topped up to the floor
    assert not any(c in rendered for c in charset if real[c] >= floor)  # common classes: real crops only
    assert result.rendered == sum(rendered.values()) and result.crops == sum(real.values())

    # resuming with more characters widens D: old rows kept, "generated" moved to the last index
    wider = tmp_path / "wider.safetensors"
    train_saae([small_uc3m], wider, replace(options, steps=3, chars="0-9A-Z京川粤"), resume=out, progress=False)
    before, after = loaded.discriminator.out.weight.detach(), load_checkpoint(wider).discriminator.out.weight.detach()
    assert after.shape[0] == len(charset) + 2
    moved = [(charset.index(c), charset.index(c)) for c in charset] + [(len(charset), len(charset) + 1)]
    drift = [float((after[new] - before[old]).abs().max()) for old, new in moved]
    assert max(drift) < 0.05  # one step of Adam at 2e-4 moves a weight by about 2e-4, a swapped row by far more


def test_chars_no_font_covers_are_refused_before_any_data_is_read(tmp_path: Path):
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "no-such-folder"), "--out", str(out),
                                      "--chars", "0-9𓀀"])
    assert "no shipped font covers 1 character(s): '𓀀'" in one_line_error(result)
    assert not out.exists()


def test_finetune_preset_adds_steps_to_the_model_trains_g_only_and_warms_up(tmp_path: Path, small_uc3m: Path):
    base = tmp_path / "base.safetensors"
    train_saae([small_uc3m], base, TrainOptions(steps=3, batch_size=8, num_threads=1, val_crops=32, model=TINY),
               progress=False)
    optimizer_path(base).unlink()  # as shipped: Adam restarts, which is what the warmup is for
    tuned = tmp_path / "tuned.safetensors"
    options = options_for("finetune", more_steps=2, warmup=4, batch_size=8, num_threads=1, val_crops=32)
    result = train_saae([small_uc3m], tuned, options, resume=base, progress=False)
    assert result.steps == 5 and load_checkpoint(tuned).meta["total"] == 5
    before, after = load_checkpoint(base), load_checkpoint(tuned)
    assert all(torch.equal(a, b) for a, b in zip(before.discriminator.state_dict().values(),
                                                 after.discriminator.state_dict().values()))  # D, BN buffers too
    assert not all(torch.equal(a, b) for a, b in zip(before.generator.state_dict().values(),
                                                     after.generator.state_dict().values()))
    adam = torch.optim.Adam(after.generator.parameters())
    load_optimizers(optimizer_path(tuned), {"g": adam})
    assert adam.param_groups[0]["lr"] == pytest.approx(options.lr * 2 / 4)  # step 2 of a 4-step ramp


def test_a_finetune_step_draws_only_on_the_crops_not_on_what_a_fixed_discriminator_likes(small_uc3m: Path):
    """Against a fixed D an adversarial term finds D's blind spots; the preset's G update must not depend on D."""
    torch.set_num_threads(1)
    plates = [p for p in load_plates(small_uc3m).plates if not is_holdout(p)][:20]
    samples = build_samples(plates)
    config = SAAEConfig(num_classes=len(samples.charset), **TINY)
    bank = GlyphBank(samples.charset, 1, np.random.default_rng(0), config.glyph_size)
    idx = torch.arange(16)
    y = torch.from_numpy(samples.labels)[idx]
    cpu = torch.device("cpu")
    batch = (to_float(bank.first(y, samples.aspects[idx.numpy()]), cpu), to_float(torch.from_numpy(samples.styles[samples.plate_index[idx.numpy()]]), cpu),
             to_float(torch.from_numpy(samples.crops)[idx], cpu), y)
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in Generator(config).state_dict().items()}
    tuned = []
    for critic_seed in (1, 2):
        torch.manual_seed(critic_seed)
        G, D = Generator(config), Discriminator(config).eval().requires_grad_(False)
        G.load_state_dict(start)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
        backwards_through_d = []
        D.features.register_full_backward_hook(lambda *_: backwards_through_d.append(1))
        for _ in range(2):
            train_step(G, D, opt_g, None, *batch, options_for("finetune"))
        tuned.append(G.state_dict())
        assert not backwards_through_d  # D only reports its loss: G's backward does no work through it
    assert all(torch.equal(tuned[0][k], tuned[1][k]) for k in start)  # two different critics, one generator
    assert not all(torch.equal(tuned[0][k], start[k]) for k in start)  # and the generator did learn


def test_resume_takes_a_shipped_models_name_as_synth_and_benchmark_do(tmp_path: Path, small_uc3m: Path):
    """`train --resume default` said 'default: no such checkpoint file', though `synth --checkpoint default` works."""
    shipped = load_checkpoint(SHIPPED_CHECKPOINTS["default"])
    out = tmp_path / "tuned.safetensors"
    result = CliRunner().invoke(app, ["train", "--preset", "finetune", "--resume", "default", "--data", str(small_uc3m),
                                      "--out", str(out), "--steps", str(shipped.meta["step"] + 1), "--threads", "1"])
    assert result.exit_code == 0, result.output
    tuned = load_checkpoint(out)
    assert tuned.meta["step"] == shipped.meta["step"] + 1 and tuned.meta["resumed_from"] == str(SHIPPED_CHECKPOINTS["default"])


def test_a_run_length_given_outright_replaces_the_finetune_preset_and_a_killed_finetune_ends_at_its_total():
    assert options_for("finetune").more_steps == FINETUNE_STEPS
    assert options_for("finetune", steps=7000).more_steps is None
    assert options_for("finetune", epochs=2.0).more_steps is None
    assert options_for("cpu", epochs=2.0).steps is None  # the preset's steps stayed beside the epochs (the CLI reset them)
    with pytest.raises(PlategenError, match="--steps and --epochs: give one, not both"):
        options_for("cpu", steps=10, epochs=2.0)
    finetune = options_for("finetune")
    assert run_total(finetune, 6000, {"total": 6000}, 100) == 6000 + FINETUNE_STEPS  # a finished model
    assert run_total(finetune, 6000, {}, 100) == 6000 + FINETUNE_STEPS  # older checkpoints carry no total
    assert run_total(finetune, 6200, {"total": 6000 + FINETUNE_STEPS}, 100) == 6000 + FINETUNE_STEPS  # killed
    assert run_total(options_for("cpu"), 6200, {"total": 9000}, 100) == 3000


def _same_weights(a: Path, b: Path) -> bool:
    one, two = load_checkpoint(a), load_checkpoint(b)
    return all(torch.equal(x, y) for net in ("generator", "discriminator")
               for x, y in zip(getattr(one, net).state_dict().values(), getattr(two, net).state_dict().values()))


def _killed_at_its_last_save(path: Path, total: int) -> None:
    """What a run of `total` steps killed right after its save at the checkpoint's step leaves behind."""
    saved = load_checkpoint(path)
    save_checkpoint(path, saved.generator, saved.config, {**saved.meta, "total": total}, saved.discriminator)


def test_a_killed_run_resumed_on_other_data_says_so(tmp_path: Path, small_uc3m: Path, data_dir: Path):
    """Resumed with another --data, it went on without a word, where another --lr or --seed is named."""
    options = TrainOptions(steps=4, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    out = tmp_path / "m.safetensors"
    train_saae([small_uc3m], out, replace(options, steps=2), progress=False)
    _killed_at_its_last_save(out, 4)
    uc3m = data_dir / "uc3m-lp"
    other = copy_plates(uc3m, tmp_path / "other", sorted((uc3m / "images").iterdir())[80:140])
    result = train_saae([other], out, options, resume=out, progress=False)
    assert len(result.changed_options) == 1
    assert re.fullmatch(r"--data: \d+ training plate\(s\) the run began without", result.changed_options[0])


def test_the_optimizer_state_of_another_run_at_the_same_step_is_not_restored(tmp_path: Path, small_uc3m: Path):
    """A sidecar records only its step: another run's of the same step (an --overwrite killed between the checkpoint's
    write and its sidecar's) was restored without a word, and the resumed weights were neither run's."""
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    mine, other = tmp_path / "mine.safetensors", tmp_path / "other.safetensors"
    train_saae([small_uc3m], mine, options, progress=False)
    train_saae([small_uc3m], other, replace(options, seed=7), progress=False)
    _killed_at_its_last_save(mine, 4)
    shutil.copy(optimizer_path(other), optimizer_path(mine))
    resumed = train_saae([small_uc3m], mine, replace(options, steps=4), resume=mine, progress=False)
    assert resumed.adam_restarted


def test_a_run_killed_and_resumed_ends_on_the_weights_of_an_unbroken_run(tmp_path: Path, small_uc3m: Path):
    options = TrainOptions(steps=4, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    unbroken, broken = tmp_path / "unbroken.safetensors", tmp_path / "broken.safetensors"
    train_saae([small_uc3m], unbroken, options, progress=False)
    train_saae([small_uc3m], broken, replace(options, steps=2), progress=False)
    _killed_at_its_last_save(broken, 4)
    resumed = train_saae([small_uc3m], broken, options, resume=broken, progress=False)
    assert _same_weights(broken, unbroken) and not resumed.adam_restarted

    # a fine-tune too: Adam restarts on the shipped-like base, and the warmup goes on from where the kill left it
    optimizer_path(unbroken).unlink()
    tuned, cut = tmp_path / "tuned.safetensors", tmp_path / "cut.safetensors"
    finetune = options_for("finetune", more_steps=4, warmup=4, batch_size=8, num_threads=1, val_crops=32)
    train_saae([small_uc3m], tuned, finetune, resume=unbroken, progress=False)
    train_saae([small_uc3m], cut, replace(finetune, more_steps=2), resume=unbroken, progress=False)
    _killed_at_its_last_save(cut, 8)
    train_saae([small_uc3m], cut, finetune, resume=cut, progress=False)
    assert _same_weights(cut, tuned) and not _same_weights(tuned, unbroken)
    assert not train_saae([small_uc3m], tmp_path / "again.safetensors", finetune, resume=unbroken,
                          progress=False).adam_restarted  # no sidecar to a fine-tune's base is no restart
    by_steps = replace(finetune, more_steps=None, steps=6)  # `--preset finetune --steps 6`, as the README shows too
    assert not train_saae([small_uc3m], tmp_path / "steps.safetensors", by_steps, resume=unbroken,
                          progress=False).adam_restarted  # it said "restarted" and kept it in the model (a user's try)


def test_a_finished_run_without_its_optimizer_state_says_so(tmp_path: Path, small_uc3m: Path):
    """Killed while its last sidecar was written: the resume (nothing left to run) named the missing sidecar as its
    optimizer state, and training the model further restarted Adam without a word (a hostile try's finding)."""
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    out = tmp_path / "m.safetensors"
    train_saae([small_uc3m], out, options, progress=False)
    optimizer_path(out).unlink()
    args = ["train", "--data", str(small_uc3m), "--out", str(out), "--resume", str(out), "--batch-size", "8",
            "--threads", "1"]
    result = CliRunner().invoke(app, [*args, "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "none beside the checkpoint" in " ".join(result.output.split()) and not optimizer_path(out).exists()
    assert "no step ran" in " ".join(result.output.split()) and "nan" not in result.output  # not 3 losses of nan
    assert train_saae([small_uc3m], out, options, resume=out, progress=False).optimizer_state is None
    further = CliRunner().invoke(app, [*args, "--steps", "3"])
    assert further.exit_code == 0, further.output
    assert "restarted: no optimizer state of step 2" in " ".join(further.output.split())
    done = train_saae([small_uc3m], out, replace(options, steps=3), resume=out, progress=False)
    assert done.optimizer_state == optimizer_path(out) and not done.adam_restarted  # its own sidecar, found


def test_a_killed_run_resumed_without_its_optimizer_state_says_so(tmp_path: Path, small_uc3m: Path):
    """A kill between the checkpoint's write and its sidecar's left the sidecar of an earlier step; the resume
    restarted Adam without a word (the review's finding)."""
    options = TrainOptions(steps=4, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    early, late = tmp_path / "early.safetensors", tmp_path / "late.safetensors"
    train_saae([small_uc3m], early, replace(options, steps=1), progress=False)
    train_saae([small_uc3m], late, replace(options, steps=2), progress=False)
    _killed_at_its_last_save(late, 4)
    shutil.copy(optimizer_path(early), optimizer_path(late))  # the sidecar of step 1 beside the checkpoint of step 2
    stale = train_saae([small_uc3m], late, options, resume=late, progress=False)
    assert stale.adam_restarted
    _killed_at_its_last_save(late, 6)
    optimizer_path(late).unlink()
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(late), "--resume", str(late),
                                      "--steps", "6", "--batch-size", "8", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "restarted: no optimizer state of step 4" in " ".join(result.output.split())


def test_a_resumed_run_trains_at_its_own_lr_not_the_sidecars(tmp_path: Path, small_uc3m: Path):
    first = tmp_path / "a.safetensors"
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    train_saae([small_uc3m], first, options, progress=False)
    second = tmp_path / "b.safetensors"
    train_saae([small_uc3m], second, replace(options, steps=3, lr=1e-5), resume=first, progress=False)
    adam = torch.optim.Adam(load_checkpoint(second).generator.parameters())
    load_optimizers(optimizer_path(second), {"g": adam})
    assert adam.param_groups[0]["lr"] == 1e-5


@pytest.mark.parametrize("args, message", [
    ([], "--preset finetune: adds steps to a trained model; give --resume"),
    (["--resume", "BASE", "--chars", "0-9A-Z京"], "cannot learn"),
    (["--resume", "KILLED"], "an unfinished training run (step 1 of 5), not a fine-tune; finish it first"),
    # with --steps it trained the plain run's remaining steps with the fine-tune's settings, exit 0
    (["--resume", "KILLED", "--steps", "7"], "an unfinished training run (step 1 of 5), not a fine-tune; finish it"),
    # a subset dropped the model's other classes, and synth's label check of them, without a word
    (["--resume", "BASE", "--chars", "0-9"], "a fine-tune keeps the model's classes, and would drop"),
    (["--resume", "BASE", "--epochs", "3"], "--epochs 3.0: a fine-tune counts steps; give --steps, the total"),
])
def test_finetune_refusals_are_one_line_and_write_nothing(tmp_path: Path, small_uc3m: Path, args, message):
    base = tmp_path / "base.safetensors"
    train_saae([small_uc3m], base, TrainOptions(steps=1, batch_size=4, num_threads=1, val_crops=8, model=TINY),
               progress=False)
    if "KILLED" in args:  # a plain run of 5 steps whose last save was at step 1: fine-tuning it would run the plain
        # run's remaining steps with the fine-tune's settings
        plain = load_checkpoint(base)
        save_checkpoint(base, plain.generator, plain.config, {**plain.meta, "total": 5}, plain.discriminator)
        args = [str(base) if a == "KILLED" else a for a in args]
    before = sorted(tmp_path.iterdir())
    out = tmp_path / "tuned.safetensors"
    args = [str(base) if a == "BASE" else a for a in args]
    result = CliRunner().invoke(app, ["train", "--preset", "finetune", "--data", str(small_uc3m), "--out", str(out),
                                      *args])
    assert result.exit_code == 2, result.output
    assert message in one_line_error(result)
    assert sorted(tmp_path.iterdir()) == before


def test_a_killed_finetune_with_steps_resumes_as_a_finetune(tmp_path: Path, small_uc3m: Path):
    """A fine-tune begun with --steps and killed, resumed with the preset alone, was refused as 'an unfinished
    training run, not a fine-tune'; it ends at its own total."""
    base = tmp_path / "base.safetensors"
    options = TrainOptions(steps=1, batch_size=4, num_threads=1, val_crops=8, model=TINY)
    train_saae([small_uc3m], base, options, progress=False)
    killed = load_checkpoint(base)
    tuned = tmp_path / "tuned.safetensors"
    meta = {**killed.meta, "total": 3, "train": {**killed.meta["train"], "freeze_discriminator": True, "adv_weight": 0.0}}
    save_checkpoint(tuned, killed.generator, killed.config, meta, killed.discriminator)
    result = CliRunner().invoke(app, ["train", "--preset", "finetune", "--data", str(small_uc3m), "--out", str(tuned),
                                      "--resume", str(tuned), "--batch-size", "4", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tuned).meta["step"] == 3


def test_more_steps_on_an_unfinished_plain_run_is_refused_with_or_without_a_fixed_discriminator(tmp_path: Path,
                                                                                               small_uc3m: Path):
    """more_steps adds to a finished model; on a killed plain run it would finish that run's steps without a word."""
    base = tmp_path / "base.safetensors"
    options = TrainOptions(steps=1, batch_size=4, num_threads=1, val_crops=8, model=TINY)
    train_saae([small_uc3m], base, options, progress=False)
    _killed_at_its_last_save(base, 5)
    for frozen in (False, True):
        with pytest.raises(PlategenError, match=r"an unfinished training run \(step 1 of 5\), not a fine-tune"):
            train_saae([small_uc3m], tmp_path / "t.safetensors",
                       replace(options, steps=None, more_steps=2, freeze_discriminator=frozen), resume=base,
                       progress=False)


def test_a_model_trained_further_keeps_how_its_earlier_stages_were_trained(tmp_path: Path, small_uc3m: Path):
    """A finished model trained further recorded only the new stage's options: a fine-tune of the shipped model no
    longer said how that model was trained. A resume of an unfinished stage is the same stage."""
    options = TrainOptions(steps=2, batch_size=4, num_threads=1, val_crops=8, model=TINY, lr=1e-3)
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    train_saae([small_uc3m], first, options, progress=False)
    began = load_checkpoint(first).meta
    assert began["earlier_stages"] == []
    train_saae([small_uc3m], second, replace(options, steps=3, lr=5e-4), resume=first, progress=False)
    meta = load_checkpoint(second).meta
    assert meta["earlier_stages"] == [{"until_step": 2, "train": began["train"]}]
    assert meta["train"]["lr"] == 5e-4 and meta["earlier_stages"][0]["train"]["lr"] == 1e-3
    copy = tmp_path / "copy.safetensors"  # a resume with no step left is no new stage, and keeps what trained it
    train_saae([small_uc3m], copy, replace(options, steps=3, lr=0.5), resume=second, progress=False)
    assert load_checkpoint(copy).meta["earlier_stages"] == meta["earlier_stages"]
    assert load_checkpoint(copy).meta["train"] == meta["train"]  # not lr 0.5, which trained nothing
    third = tmp_path / "third.safetensors"
    train_saae([small_uc3m], third, replace(options, steps=4, lr=2e-4), resume=second, progress=False)
    assert [stage["until_step"] for stage in load_checkpoint(third).meta["earlier_stages"]] == [2, 3]
    _killed_at_its_last_save(second, 5)  # the second stage killed at step 3 of its 5
    train_saae([small_uc3m], second, replace(options, steps=5, lr=5e-4), resume=second, progress=False)
    assert load_checkpoint(second).meta["earlier_stages"] == [{"until_step": 2, "train": began["train"]}]


def test_a_resume_with_nothing_left_to_run_still_writes_another_out(tmp_path: Path, small_uc3m: Path):
    """Resumed at its total into --out OTHER --overwrite, nothing ran and OTHER was kept as it was (another model),
    while the summary named it as the checkpoint written."""
    options = TrainOptions(steps=2, batch_size=4, num_threads=1, val_crops=8, model=TINY)
    done, other = tmp_path / "done.safetensors", tmp_path / "other.safetensors"
    train_saae([small_uc3m], done, options, progress=False)
    train_saae([small_uc3m], other, replace(options, steps=1, seed=7), progress=False)
    replaced = sorted((tmp_path / "other-samples").glob("*.png"))
    assert replaced  # the seed-7 model's grids, which go with it
    train_saae([small_uc3m], other, options, resume=done, overwrite=True, progress=False)
    assert not any(path.exists() for path in replaced)
    written, source = load_checkpoint(other), load_checkpoint(done)
    assert written.meta["step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(written.generator.state_dict().values(),
                                                 source.generator.state_dict().values()))


def test_an_optimizer_sidecars_name_is_no_checkpoint_and_an_existing_one_is_not_replaced(tmp_path: Path):
    """`train --out w.safetensors` wrote w.optim.safetensors over whatever was there, a checkpoint a user had
    named so included; and such a name was accepted as --out."""
    base = ["train", "--data", str(tmp_path / "no-such-folder"), "--steps", "1"]
    message = one_line_error(CliRunner().invoke(app, [*base, "--out", str(tmp_path / "w.optim.safetensors")]))
    assert ".optim.safetensors is where a checkpoint's optimizer state goes" in message
    (tmp_path / "v.optim.safetensors").write_text("keep me")
    message = one_line_error(CliRunner().invoke(app, [*base, "--out", str(tmp_path / "v.safetensors")]))
    assert "v.optim.safetensors: already exists" in message and "--overwrite" in message
    assert (tmp_path / "v.optim.safetensors").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.optim.safetensors"]


@pytest.mark.parametrize("where", ["out", "samples-dir"])
def test_an_output_folder_that_cannot_be_written_is_one_line_before_any_data_is_read(tmp_path: Path, data_dir: Path,
                                                                                      where):
    """It gave a PermissionError traceback, for the samples folder only after minutes of training."""
    locked = immutable(tmp_path / "locked")
    try:
        out = locked / "x.safetensors" if where == "out" else tmp_path / "x.safetensors"
        args = ["train", "--data", str(data_dir / "uc3m-lp"), "--out", str(out), "--steps", "300"]
        if where == "samples-dir":
            args += ["--samples-dir", str(locked / "grids")]
        message = one_line_error(CliRunner().invoke(app, args))
        assert f"cannot write in {locked}" in message and f"--{where} " in message
        assert not list(locked.iterdir()) and not (tmp_path / "x.safetensors").exists()
    finally:
        subprocess.run(["chattr", "-i", str(locked)])


def test_what_an_earlier_resume_changed_is_said_by_every_later_one(tmp_path: Path, small_uc3m: Path):
    """A resume compares with the options saved last, and a restarted Adam is not seen once the restarted run's own
    sidecar lies beside the checkpoint: killed again and resumed, the run said nothing and ended on other weights (a
    hostile try's finding). The checkpoint keeps what each resume changed, and every later summary says it."""
    options = TrainOptions(steps=6, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    seeded, restarted = tmp_path / "seeded.safetensors", tmp_path / "restarted.safetensors"
    for out in (seeded, restarted):
        train_saae([small_uc3m], out, replace(options, steps=2), progress=False)
        _killed_at_its_last_save(out, 6)  # a run of 6 steps killed after its save at step 2
    first = train_saae([small_uc3m], seeded, replace(options, steps=4, seed=1), resume=seeded, progress=False)
    assert first.changed_options == ["--seed 0 -> 1"] and not first.earlier_departures
    optimizer_path(restarted).unlink()
    assert train_saae([small_uc3m], restarted, replace(options, steps=4), resume=restarted, progress=False).adam_restarted
    for out, said in ((seeded, "step 2: --seed 0 -> 1"), (restarted, "step 2: optimizer state restarted")):
        _killed_at_its_last_save(out, 6)  # and killed again after its save at step 4
        again = train_saae([small_uc3m], out, replace(options, seed=1 if out == seeded else 0), resume=out,
                           progress=False)
        assert not again.changed_options and not again.adam_restarted and again.earlier_departures == [said]
        assert load_checkpoint(out).meta["departures"] == [said]
    result = CliRunner().invoke(app, ["train", "--data", str(small_uc3m), "--out", str(seeded), "--resume", str(seeded),
                                      "--steps", "7", "--seed", "1", "--batch-size", "8", "--threads", "1"])
    assert result.exit_code == 0, result.output
    said = re.sub(r"[│\s]+", " ", result.output)  # the table's cell wraps
    assert "earlier resumes" in said and "step 2: --seed 0 -> 1: the weights differ from those of an unbroken" in said


def test_ranks_compare_their_data_by_images_texts_and_boxes(small_uc3m: Path):
    """Under torchrun the ranks compared their data by image bytes only: a rank whose label files gave a plate
    another text trained on it with exit 0 (weights apart from an unbroken run's)."""
    import dataclasses

    plates = load_plates(small_uc3m).plates
    same = train_module.data_digest(plates)
    assert train_module.data_digest(plates[::-1]) == same  # the order the folders list them in does not matter
    first = plates[0]
    relabelled = dataclasses.replace(first, text="5" + first.text[1:])
    moved = dataclasses.replace(first, boxes=((first.boxes[0][0] + 1, *first.boxes[0][1:]), *first.boxes[1:]))
    for changed in (relabelled, moved):
        assert train_module.data_digest([changed, *plates[1:]]) != same


def test_a_run_resumed_on_other_threads_or_ranks_says_so(tmp_path: Path, small_uc3m: Path):
    """--threads and the number of torchrun ranks change the weights (a rank draws its slice of every batch, threads
    sum floats in another order); a resume with other ones said nothing (a hostile try's finding)."""
    options = TrainOptions(steps=4, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    out = tmp_path / "m.safetensors"
    train_saae([small_uc3m], out, replace(options, steps=2), progress=False)
    _killed_at_its_last_save(out, 4)
    saved = load_checkpoint(out)  # as if begun on 2 threads and 2 ranks (this test needs 1 core only)
    began = {**saved.meta, "ranks": 2, "train": {**saved.meta["train"], "num_threads": 2}}
    save_checkpoint(out, saved.generator, saved.config, began, saved.discriminator)
    result = train_saae([small_uc3m], out, options, resume=out, progress=False)
    assert result.changed_options == ["--threads 2 -> 1", "torchrun ranks 2 -> 1"]


def test_new_classes_on_a_finished_run_are_no_restart_for_want_of_a_sidecar(tmp_path: Path, small_uc3m: Path):
    """New --chars give D other shapes, so Adam starts afresh by design: the summary said no optimizer state lay beside
    the checkpoint, where it did, and kept "optimizer state restarted" in the model for good (a review's finding)."""
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    out = tmp_path / "m.safetensors"
    train_saae([small_uc3m], out, options, progress=False)
    more = train_saae([small_uc3m], tmp_path / "more.safetensors", replace(options, steps=4, chars="0-9A-Z京"),
                      resume=out, progress=False)
    assert not more.adam_restarted and not load_checkpoint(tmp_path / "more.safetensors").meta["departures"]


def test_a_damaged_optimizer_state_says_how_to_go_on(tmp_path: Path, small_uc3m: Path):
    """A cut-off sidecar was refused in one line that gave no way forward (a hostile try's finding)."""
    options = TrainOptions(steps=1, batch_size=4, num_threads=1, val_crops=8, model=TINY)
    out = tmp_path / "m.safetensors"
    train_saae([small_uc3m], out, options, progress=False)
    optimizer_path(out).write_bytes(optimizer_path(out).read_bytes()[:100])
    with pytest.raises(PlategenError, match=r"m\.optim\.safetensors: .*; delete it to resume with Adam restarted"):
        train_saae([small_uc3m], out, replace(options, steps=2), resume=out, progress=False)
    more = train_saae([small_uc3m], tmp_path / "more.safetensors", replace(options, steps=2, chars="0-9A-Z京"),
                      resume=out, progress=False)  # new classes: the sidecar would not be used, so it is no matter
    assert not more.adam_restarted and more.optimizer_state == optimizer_path(tmp_path / "more.safetensors")
    optimizer_path(out).unlink()
    assert train_saae([small_uc3m], out, replace(options, steps=2), resume=out, progress=False).adam_restarted


def test_a_checkpoint_names_every_stage_s_data_folders_absolutely(tmp_path: Path, small_uc3m: Path, data_dir: Path,
                                                                   monkeypatch):
    """The benchmark's copy warning reads the folders a checkpoint names: `--data .` was named "." (no name), and a
    fine-tune named only its own folder, where its plates (plate_sha256) are every stage's (the reviews' findings)."""
    monkeypatch.chdir(small_uc3m)
    base, tuned = tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"
    train_saae(["."], base, TrainOptions(steps=1, batch_size=8, num_threads=1, val_crops=32, model=TINY), progress=False)
    data = load_checkpoint(base).meta["data"]
    assert data["folders"] == [str(small_uc3m)] and list(data["plates_per_folder"]) == [str(small_uc3m)]
    uc3m = data_dir / "uc3m-lp"
    mine = copy_plates(uc3m, tmp_path / "mine", sorted((uc3m / "images").iterdir())[80:140])
    finetune = options_for("finetune", more_steps=1, batch_size=8, num_threads=1, val_crops=32)
    train_saae([mine], tuned, finetune, resume=base, progress=False)
    assert load_checkpoint(tuned).meta["data"]["folders"] == [str(small_uc3m), str(mine)]


def test_new_classes_resumed_in_place_with_nothing_to_run_keep_their_sidecar(tmp_path: Path, small_uc3m: Path):
    """The summary said no optimizer state lay beside the checkpoint where it did: new --chars, nothing to run."""
    options = TrainOptions(steps=2, batch_size=8, num_threads=1, val_crops=32, model=TINY)
    out = tmp_path / "m.safetensors"
    train_saae([small_uc3m], out, options, progress=False)
    same = train_saae([small_uc3m], out, replace(options, chars="0-9A-Z京"), resume=out, progress=False)
    assert same.optimizer_state == optimizer_path(out) and optimizer_path(out).is_file()
