"""`plategen synth` on a real plate: counts, manifest/meta, resume, refusals, determinism."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import torch
from typer.testing import CliRunner

from plategen.atomic import TEMP_NAME
from plategen.charset import parse_charset
from plategen.checkpoint import save_checkpoint
from plategen.cli import app
from plategen.errors import PlategenError
from plategen.model import Discriminator, Generator, SAAEConfig
from plategen.plates import read_image
from plategen.synth import Diversity, label_counts, synthesize, within_class_diversity
from plategen.synth.plan import CHECK_SURE
from plategen.synth.writers import JOURNAL, LOCK, read_manifest, read_shards

from conftest import make_checkpoint, one_line_error, synth_args, synth_request

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
CHARS = parse_charset("0-9A-Z")


request = functools.partial(synth_request, n=74)


def tree_digest(out: Path) -> dict[str, str]:
    """Every file under `out` (but meta.json, which holds times) -> sha256 of its bytes."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "meta.json"}


def check_complete(out: Path, n: int, chars: list[str]) -> list[dict]:
    """Manifest, meta and files agree: exactly n images, counts as promised, no strays or gaps."""
    rows = read_manifest(out)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["status"] == "complete" and not (out / JOURNAL).exists() and not (out / LOCK).exists()
    assert len(rows) == n == sum(meta["counts"].values())
    assert list(rows[0]) == ["image_path", "label", "style", "font", "seed", "check"]
    assert {r["check"] for r in rows} <= {"pass", "fail"} and meta["check_failed"] == sum(
        r["check"] == "fail" for r in rows)
    counts = collections.Counter(r["label"] for r in rows)
    assert dict(counts) == {c: k for c, k in zip(chars, label_counts(n, len(chars)))} == meta["counts"]
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.png") if p.parent != out}
    assert on_disk == {r["image_path"] for r in rows}  # no gaps, no strays
    assert {p.name for p in out.glob("*.png")} <= {"preview.png"}  # the CLI's sheet, beside the label folders
    for r in rows:
        assert r["image_path"].split("/")[0] == meta["label_dirs"][r["label"]]
    return rows


def test_counts_manifest_and_meta_match_the_files(tmp_path, plate, ckpt):
    out = tmp_path / "out"
    report = synthesize(request(plate, ckpt, out, n=74, preview=tmp_path / "grid.png", command=["plategen", "x"]))
    rows = check_complete(out, 74, CHARS)
    assert report.counts["0"] == 3 and report.counts["1"] == 3 and report.counts["2"] == 2  # 74 = 36*2 + 2
    meta = json.loads((out / "meta.json").read_text())
    assert meta["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["seed"] == 0 and meta["charset"] == CHARS and meta["command"] == ["plategen", "x"]
    assert meta["plategen_version"] and meta["duplicates"] == report.duplicates == 0
    assert all(Image.open(out / r["image_path"]).size == (32, 32) for r in rows[:5])
    assert rows[0]["style"] == str(plate) and rows[0]["font"] and int(rows[0]["seed"]) >= 0
    assert (tmp_path / "grid.png").is_file()


def test_fewer_images_than_characters_make_no_empty_class_folder(tmp_path, plate, ckpt):
    """--n 10 over 0-9A-Z gave 26 empty class folders, which ImageFolder-style readers refuse; every folder holds
    images, and --resume and --overwrite of such a run work."""
    out = tmp_path / "out"
    report = synthesize(synth_request(plate, ckpt, out, n=10))
    folders = [d for d in out.iterdir() if d.is_dir()]
    assert sum(1 for count in report.counts.values() if count) == len(folders) == 10
    assert all(any(d.glob("*.png")) for d in folders)
    assert synthesize(synth_request(plate, ckpt, out, n=10, resume=True)).resumed == 10
    assert synthesize(synth_request(plate, ckpt, out, n=10, overwrite=True)).n == 10
    assert len([d for d in out.iterdir() if d.is_dir()]) == 10


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path, plate, ckpt):
    """Writer threads and generator threads must not matter. (The batch size is not varied: the
    generator's float sums depend on it, which is why --resume keeps the first run's.)"""
    a = synthesize(request(plate, ckpt, tmp_path / "a", n=60, workers=2, threads=2))
    b = synthesize(request(plate, ckpt, tmp_path / "b", n=60, workers=1, threads=1))
    c = synthesize(request(plate, ckpt, tmp_path / "c", n=60, seed=1))
    assert tree_digest(a.out) == tree_digest(b.out)
    assert tree_digest(a.out) != tree_digest(c.out)


def test_characters_no_font_covers_are_named_in_one_error_before_any_work(tmp_path, plate, ckpt):
    out = tmp_path / "out"
    with pytest.raises(PlategenError) as err:  # Ñ and 京: outside the checkpoint's charset, but drawable
        synthesize(request(plate, ckpt, out, chars=["A", "Ñ", "汉", "京", "\U00013000", "B"]))
    assert "'汉'" in str(err.value) and "U+13000" in str(err.value) and "2 character(s)" in str(err.value)
    assert "'Ñ'" not in str(err.value) and "'京'" not in str(err.value)
    assert not out.exists()


def test_corrupt_style_image_is_named(tmp_path, ckpt):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    result = runner.invoke(app, ["synth", "--style", str(bad), "--n", "10", "--out", str(tmp_path / "o"),
                                 "--checkpoint", str(ckpt)])
    assert result.exit_code == 2 and "broken.jpg" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_existing_folder_is_refused_unless_resume_or_overwrite(tmp_path, plate, ckpt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    def args(folder, n=40):
        return ["synth", "--style", str(plate), "--n", str(n), "--out", str(folder), "--checkpoint", str(ckpt)]

    refused = runner.invoke(app, args(out))
    assert refused.exit_code == 2 and "exists and is not empty" in refused.output
    assert runner.invoke(app, args(out) + ["--overwrite"]).exit_code == 2  # not a synth run: never deleted
    assert (out / "precious.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, args(fresh)).exit_code == 0
    assert runner.invoke(app, args(fresh, 38)).exit_code == 2
    again = runner.invoke(app, args(fresh, 38) + ["--overwrite"])
    assert again.exit_code == 0, again.output
    check_complete(fresh, 38, CHARS)


def test_interrupt_then_resume_reaches_exactly_n_with_the_same_bytes(tmp_path, plate, ckpt):
    full = synthesize(request(plate, ckpt, tmp_path / "full", n=120))
    out = tmp_path / "cut"

    def stop(done, total):
        if done >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(request(plate, ckpt, out, n=120), progress=stop)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "interrupted" and 40 <= meta["done"] < 120
    with pytest.raises(PlategenError, match=r"other settings than the run there began with \(--seed\)"):
        synthesize(request(plate, ckpt, out, n=120, seed=5, resume=True))
    # each refusal names the options, not the meta keys they set (label_check, diversity, charset)
    for changed, named in (({"check": False}, "--no-check"), ({"chars": list("0123")}, "--chars"),
                           ({"diversity": Diversity(noise=3.0, match_colours=False)}, "--noise, --raw-colours"),
                           ({"format": "shards"}, "--format")):  # not --shard-size, which only shards set
        with pytest.raises(PlategenError, match=rf"began with \({named}\); repeat"):
            synthesize(request(plate, ckpt, out, n=120, resume=True, **changed))
    report = synthesize(request(plate, ckpt, out, n=120, resume=True))
    assert report.resumed == meta["done"] and report.generated == 120 - meta["done"]
    check_complete(out, 120, CHARS)
    assert tree_digest(out) == tree_digest(full.out)


def stopped_synth(plate, ckpt, out, signum) -> tuple[list[str], subprocess.Popen, str]:
    """A 600-image synth run in a process sent `signum` once its journal holds a first image: the
    command, the ended process and its stderr."""
    cmd = [sys.executable, "-m", "plategen.cli", "synth", "--style", str(plate), "--n", "600", "--out", str(out),
           "--checkpoint", str(ckpt), "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = out / JOURNAL
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.stat().st_size > 0:
            break
        time.sleep(0.01)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be stopped")
    return cmd, proc, stderr


def test_resume_after_the_process_is_killed(tmp_path, plate, ckpt):
    out = tmp_path / "killed"
    cmd, _, _ = stopped_synth(plate, ckpt, out, signal.SIGKILL)
    written = len(list(out.rglob("*.png")))
    assert 0 < written < 600
    assert (out / LOCK).is_file()  # left behind by the killed run; its flock went with the process
    result = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = check_complete(out, 600, CHARS)
    digests = {hashlib.sha256((out / r["image_path"]).read_bytes()).hexdigest() for r in rows}
    assert len(digests) == 600  # no duplicate images


def test_sigterm_stops_a_run_as_ctrl_c_does_and_resume_finishes_it(tmp_path, plate, ckpt):
    out = tmp_path / "terminated"
    cmd, proc, stderr = stopped_synth(plate, ckpt, out, signal.SIGTERM)
    assert proc.returncode == 143, stderr
    assert "run the same command with --resume" in stderr and "Traceback" not in stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "interrupted" and 0 < meta["done"] < 600
    assert not [p for p in out.rglob("*") if TEMP_NAME.fullmatch(p.name)]  # no half-written file left
    result = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    check_complete(out, 600, CHARS)


def test_labels_that_are_not_folder_names_still_work(tmp_path, plate):
    charset = ["京", "/", "A"]
    ckpt = make_checkpoint(tmp_path / "cjk.safetensors", charset)
    out = tmp_path / "out"
    synthesize(request(plate, ckpt, out, chars=charset, n=9))
    rows = check_complete(out, 9, charset)
    assert {r["image_path"].split("/")[0] for r in rows} == {"京", "U+002F", "A"}
    assert {r["label"] for r in rows} == set(charset)


def test_no_duplicates_and_a_diversity_figure(tmp_path, plate, ckpt):
    report = synthesize(request(plate, ckpt, tmp_path / "o", n=360, batch_size=128))
    assert report.duplicates == 0
    assert report.diversity > report.closest > 0
    same = {"A": [np.zeros((4, 4, 3), np.uint8)] * 3}
    assert within_class_diversity(same) == (0.0, 0.0)
    assert all(np.isnan(within_class_diversity({"A": same["A"][:1], "B": []})))  # no pair: unknown, not copies


@pytest.mark.parametrize("option", [["--noise", "nan"], ["--noise", "inf"], ["--noise", "-1"], ["--noise", "256"],
                                    ["--shard-size", "0", "--format", "shards"], ["--shard-size", "-3"],
                                    ["--n", "0"], ["--n", "-5"], ["--batch-size", "0"], ["--workers", "0"],
                                    # ran out of memory with a traceback, the folder half-written
                                    ["--batch-size", "60000"], ["--batch-size", "1025", "--plates"]])
def test_impossible_numbers_are_refused_before_the_folder_is_made(tmp_path, plate, ckpt, option):
    out = tmp_path / "out"
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, *option)))
    assert option[0] in message
    assert not out.exists()


def test_an_out_that_is_a_link_to_nowhere_is_named_as_one(tmp_path, plate, ckpt):
    """It said "cannot write (File exists)" of a path that does not exist."""
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, link)))
    assert f"{link}: a link to {tmp_path / 'nowhere'}, which does not exist" in message
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    # a loop gave a traceback (resolve() raises on it), as --out, --preview and --style alike
    (tmp_path / "loopA").symlink_to(tmp_path / "loopB")
    (tmp_path / "loopB").symlink_to(tmp_path / "loopA")
    for args in (synth_args(plate, ckpt, tmp_path / "loopA"),
                 synth_args(plate, ckpt, tmp_path / "out", "--preview", str(tmp_path / "loopA")),
                 synth_args(tmp_path / "loopA", ckpt, tmp_path / "out")):
        assert f"{tmp_path / 'loopA'}: a link that leads back to itself" in one_line_error(runner.invoke(app, args))
    # ... and a path beneath either kind of link
    for link, what in (("loopA", "a link that leads back to itself"), ("dangling", "a link to")):
        for args in (synth_args(plate, ckpt, tmp_path / link / "sub"),
                     synth_args(plate, ckpt, tmp_path / "out", "--preview", str(tmp_path / link / "p.png"))):
            assert f"{tmp_path / link} is {what}" in one_line_error(runner.invoke(app, args))
    assert not (tmp_path / "out").exists()


def test_a_character_synth_output_given_as_a_style_folder_says_what_it_is(tmp_path, plate, ckpt):
    """It said only "no plate images in this folder", of a folder of PNGs (in class folders)."""
    chars = synthesize(request(plate, ckpt, tmp_path / "chars", n=4)).out
    message = one_line_error(runner.invoke(app, synth_args(chars, ckpt, tmp_path / "out")))
    assert "no plate images (.jpg, .png, ...) in this folder (a plategen synth output of single characters" in message


def test_a_csv_data_folder_with_its_images_outside_images_is_a_style_folder(tmp_path, data_dir, ckpt, monkeypatch):
    """inspect, train and synth --plates read it; character synth said "no plate images in this folder", also
    once `plategen inspect .` had written its sheet there."""
    folder = tmp_path / "us"
    (folder / "photos").mkdir(parents=True)
    names = ["ak1165.jpg", "hi1106.jpg"]
    for name in names:
        (folder / "photos" / name).write_bytes((data_dir / "openalpr-us" / "images" / name).read_bytes())
    (folder / "labels.csv").write_text("image_path,plate_text\nphotos/ak1165.jpg,FUW999\nphotos/hi1106.jpg,KTE268\n")
    monkeypatch.chdir(folder)
    assert runner.invoke(app, ["inspect", "."]).exit_code == 0 and list(folder.glob("inspect-*.png"))
    result = synthesize(request(folder, ckpt, tmp_path / "out", n=4))
    styles = {name for row in read_manifest(result.out) for name in row["style"].split("|")}  # a|b: a blend
    assert styles == {str(folder / "photos" / name) for name in names}


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path, plate):
    config = SAAEConfig(num_classes=len(CHARS), content_width=8, style_width=8, decoder_width=16)
    generator = Generator(config).eval()
    with torch.no_grad():
        next(generator.parameters())[0].fill_(float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_checkpoint(bad, generator, config, {"charset": CHARS}, Discriminator(config).eval())
    out = tmp_path / "out"
    message = one_line_error(runner.invoke(app, synth_args(plate, bad, out)))
    assert "nan.safetensors" in message and "NaN" in message
    assert not out.exists()


def test_the_preview_path_is_checked_before_any_image_is_made(tmp_path, plate, ckpt):
    out = tmp_path / "out"
    (tmp_path / "a-folder.png").mkdir()
    for preview in (tmp_path / "missing" / "p.png", tmp_path / "p.jpg", tmp_path / "a-folder.png",
                    out / "0" / "p.png"):
        message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, "--preview", str(preview))))
        assert "--preview" in message
        assert not out.exists()
    fine = runner.invoke(app, synth_args(plate, ckpt, out, "--preview", str(out / "preview.png")))
    assert fine.exit_code == 0, fine.output
    assert (out / "preview.png").is_file()


PREVIEW_ROW = re.compile(r"│ preview +│")


def test_the_cli_writes_a_preview_in_out_unless_told_not_to(tmp_path, plate, ckpt):
    """A person looks at samples before training on them: the sheet comes without asking, and the table says where."""
    out = tmp_path / "out"
    result = runner.invoke(app, synth_args(plate, ckpt, out, "--chars", "0-3"))
    assert result.exit_code == 0, result.output
    assert PREVIEW_ROW.search(result.output) and "preview.png" in result.output  # the table may fold the path
    assert Image.open(out / "preview.png").info.get("Software") == "plategen"
    bare = tmp_path / "bare"
    result = runner.invoke(app, synth_args(plate, ckpt, bare, "--chars", "0-3", "--no-preview"))
    assert result.exit_code == 0, result.output
    assert not list(bare.glob("*.png")) and not PREVIEW_ROW.search(result.output)
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, tmp_path / "x", "--no-preview",
                                                           "--preview", str(tmp_path / "p.png"))))
    assert "--no-preview" in message and not (tmp_path / "x").exists()


def table_values(output: str) -> dict[str, str]:
    """The closing table's rows, name -> value, with a value's folded lines joined."""
    values, name = {}, None
    for line in output.splitlines():
        cells = line.split("│")
        if len(cells) == 4:
            name = cells[1].strip() or name
            values[name] = values.get(name, "") + cells[2].strip()
    return values


def test_overwrite_takes_the_earlier_runs_preview_away_too(tmp_path, plate, ckpt):
    """It stayed beside the new run, showing another run's images."""
    out = tmp_path / "out"
    assert runner.invoke(app, synth_args(plate, ckpt, out, "--chars", "0-3")).exit_code == 0
    assert (out / "preview.png").is_file()
    result = runner.invoke(app, synth_args(plate, ckpt, out, "--chars", "0-3", "--overwrite", "--no-preview"))
    assert result.exit_code == 0, result.output
    assert not (out / "preview.png").exists()


def test_an_out_that_is_a_file_is_named_as_given(tmp_path, plate, ckpt):
    """With the default preview it named afile/preview.png, a path the user never gave."""
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, afile)))
    assert f"{afile}: exists and is not a folder" in message and afile.read_text() == "keep me"


def test_the_table_keeps_long_paths_whole_in_a_log(tmp_path, plate, ckpt):
    """Not at a terminal (a log, 80 columns), rich cut paths with an ellipsis: the paths written were lost."""
    out = tmp_path / ("a-long-folder-name-" * 5) / "out"
    result = runner.invoke(app, synth_args(plate, ckpt, out, "--chars", "0-3"))
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80 and "…" not in result.output
    values = table_values(result.output)
    assert values["manifest"] == str(out / "manifest.csv") and values["preview"] == str(out / "preview.png")


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_after_a_resume_the_diversity_figure_and_preview_equal_an_uninterrupted_runs(tmp_path, plate, ckpt, fmt):
    """Three labels x 40 images: more than the 32 samples per label the figure and the preview use."""
    chars = ["A", "B", "C"]
    kw = dict(chars=chars, n=120, format=fmt, shard_size=16)
    synthesize(request(plate, ckpt, tmp_path / "full", preview=tmp_path / "full.png", **kw))

    def stop(done, total):
        if done >= 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(request(plate, ckpt, tmp_path / "cut", preview=tmp_path / "cut.png", **kw), progress=stop)
    assert not list((tmp_path / "cut").glob("*.part"))  # the unfinished shard was left behind
    report = synthesize(request(plate, ckpt, tmp_path / "cut", preview=tmp_path / "cut.png", resume=True, **kw))
    assert report.resumed >= 48
    full, cut = (json.loads((tmp_path / name / "meta.json").read_text()) for name in ("full", "cut"))
    assert (cut["within_class_diversity"], cut["closest_pair"]) == (full["within_class_diversity"],
                                                                      full["closest_pair"])
    assert (tmp_path / "cut.png").read_bytes() == (tmp_path / "full.png").read_bytes()
    assert tree_digest(tmp_path / "cut") == tree_digest(tmp_path / "full")


def test_a_run_stopped_before_its_first_file_leaves_no_empty_folder(tmp_path, plate, ckpt, monkeypatch):
    """Ctrl-C in the seconds between claiming --out and writing meta.json left an empty folder to --resume."""
    import plategen.synth.writers as writers

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, "write_meta", stop)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, synth_args(plate, ckpt, out))
    assert result.exit_code == 130
    assert "interrupted: nothing was written" in result.output and "--resume" not in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def interrupted_at_30_of_90(plate, ckpt, out: Path) -> None:
    """A run of 90 images in batches of 16, stopped by Ctrl-C once 30 are done."""
    def stop(done, total):
        if done >= 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(request(plate, ckpt, out, n=90, batch_size=16), progress=stop)


def test_resume_keeps_the_first_runs_batch_size_and_refuses_another(tmp_path, plate, ckpt):
    full = synthesize(request(plate, ckpt, tmp_path / "full", n=90, batch_size=16))
    out = tmp_path / "cut"
    interrupted_at_30_of_90(plate, ckpt, out)
    before = tree_digest(out)
    with pytest.raises(PlategenError, match="--batch-size 8, but the interrupted run used 16"):
        synthesize(request(plate, ckpt, out, n=90, batch_size=8, resume=True))
    assert tree_digest(out) == before
    report = synthesize(request(plate, ckpt, out, n=90, batch_size=None, resume=True))
    assert report.resumed > 0
    assert json.loads((out / "meta.json").read_text())["batch_size"] == 16
    assert tree_digest(out) == tree_digest(full.out)


def test_a_run_begun_with_a_batch_size_over_todays_bound_still_resumes(tmp_path, plate, ckpt, monkeypatch):
    """A run begun before --batch-size was bounded (9,000) could not be finished: its resume must keep 9,000 for the
    same bytes, and the bound refused it, naming an option the user had not given. The bound is a new run's."""
    import plategen.sizes
    from plategen.synth import engine, run

    out = tmp_path / "cut"
    interrupted_at_30_of_90(plate, ckpt, out)
    for module in (plategen.sizes, engine, run):  # the bound, as if lowered since: 16 is now over it
        monkeypatch.setattr(module, "MAX_BATCH_SIZE", 8, raising=False)
    with pytest.raises(PlategenError, match="--batch-size 16: need 1 to 8"):
        synthesize(request(plate, ckpt, tmp_path / "new", n=90, batch_size=16))
    report = synthesize(request(plate, ckpt, out, n=90, batch_size=None, resume=True))
    assert report.resumed > 0 and json.loads((out / "meta.json").read_text())["batch_size"] == 16


def test_a_run_whose_check_redrew_only_misreads_resumes_only_without_the_check(tmp_path, plate, ckpt):
    """Since `check_sure` the check redraws images read right but unsure too; a run begun before would mix both."""
    def stop(done, total):
        if done >= 30:
            raise KeyboardInterrupt

    for check in (True, False):
        out = tmp_path / f"cut-{check}"
        with pytest.raises(KeyboardInterrupt):
            synthesize(request(plate, ckpt, out, n=90, check=check), progress=stop)
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        assert meta["check_sure"] == (CHECK_SURE if check else None)
        del meta["check_sure"]  # as the plategen before wrote it
        (out / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise \(check_sure\)"):
        synthesize(request(plate, ckpt, tmp_path / "cut-True", n=90, resume=True, batch_size=None))
    assert synthesize(request(plate, ckpt, tmp_path / "cut-False", n=90, check=False, resume=True,
                              batch_size=None)).resumed > 0


def test_no_check_draws_each_image_once_and_the_manifest_says_unchecked(tmp_path, plate, ckpt):
    checked = synthesize(request(plate, ckpt, tmp_path / "checked", n=72))
    report = synthesize(request(plate, ckpt, tmp_path / "plain", n=72, check=False))
    assert checked.redrawn > 0 and report.redrawn == 0 and report.check_failed is None
    rows = read_manifest(report.out)
    assert len(rows) == 72 and {r["check"] for r in rows} == {""}
    meta = json.loads((report.out / "meta.json").read_text())
    assert meta["label_check"] is False and meta["check_failed"] is None
    assert tree_digest(report.out) != tree_digest(checked.out)


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_resuming_a_complete_run_changes_nothing_and_says_so(tmp_path, plate, ckpt, fmt):
    out = tmp_path / "out"
    first = runner.invoke(app, synth_args(plate, ckpt, out, "--format", fmt, "--shard-size", "16"))
    assert first.exit_code == 0, first.output
    before, meta = tree_digest(out), json.loads((out / "meta.json").read_text())
    again = runner.invoke(app, synth_args(plate, ckpt, out, "--format", fmt, "--shard-size", "16", "--resume"))
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert tree_digest(out) == before
    after = json.loads((out / "meta.json").read_text())
    for key in ("status", "duplicates", "check_failed", "within_class_diversity", "closest_pair", "counts"):
        assert after[key] == meta[key], key
    if fmt == "shards":
        assert len(list(read_shards(out))) == 40
        assert "shard-000000.tar" in first.output and "shard-000002.tar" in first.output  # where they are, by name


def test_resume_redraws_journalled_files_that_were_damaged(tmp_path, plate, ckpt):
    full = synthesize(request(plate, ckpt, tmp_path / "full", n=120))
    out = tmp_path / "cut"

    def stop(done, total):
        if done >= 48:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(request(plate, ckpt, out, n=120), progress=stop)
    journalled = [line.split("\t")[0] for line in (out / JOURNAL).read_text().splitlines()]
    paths = {int(r["image_path"].split("/")[1][:-4]): out / r["image_path"] for r in read_manifest(full.out)}
    empty, swapped, donor = (paths[int(i)] for i in journalled[:3])
    empty.write_bytes(b"")  # a crash before the data reached the disk
    swapped.write_bytes(donor.read_bytes())  # a valid PNG with the wrong pixels
    report = synthesize(request(plate, ckpt, out, n=120, resume=True))
    assert report.generated >= 120 - len(journalled) + 2
    check_complete(out, 120, CHARS)
    assert tree_digest(out) == tree_digest(full.out)



def test_a_synth_request_takes_a_chars_spec_and_one_style_path_as_the_cli_does(tmp_path, plate, ckpt):
    """SynthRequest(chars="0-9") wrote the characters 0, - and 9; styles="plate.jpg" was read letter by letter."""
    from plategen.synth import SynthRequest

    req = SynthRequest(styles=str(plate), chars="0-2", n=6, out=str(tmp_path / "out"), checkpoint=ckpt, device="cpu",
                       batch_size=8)
    assert req.styles == [plate] and req.chars == ["0", "1", "2"] and req.out == tmp_path / "out"
    result = synthesize(req)
    assert sorted({row["label"] for row in read_manifest(result.out)}) == ["0", "1", "2"]
    with pytest.raises(PlategenError, match=r"chars: set"):
        SynthRequest(styles=[plate], chars={"0", "1"}, n=2, out=tmp_path / "o2")
    with pytest.raises(PlategenError, match=r"SynthRequest: n '5' is not a whole number"):
        SynthRequest(styles=[plate], chars="0-1", n="5", out=tmp_path / "o2")
    with pytest.raises(PlategenError, match=r"SynthRequest: styles and out are paths"):
        SynthRequest(styles=[None], chars="0-1", n=2, out=tmp_path / "o2")


def test_a_synth_request_is_checked_as_the_cli_checks_it(tmp_path, plate, ckpt):
    """The --plates-only options were refused by the CLI alone: a library caller's `pattern` without `plates` was
    dropped silently, and `chars=None` (documented as 0-9A-Z) failed deep in the plan."""
    from plategen.synth import SynthRequest

    assert SynthRequest(styles=[plate], chars=None, n=2, out=tmp_path / "o").chars == parse_charset("0-9A-Z")
    for wrong, message in (({"pattern": "DDDD"}, r"are options of --plates"),
                           ({"exports": ["lprnet"]}, r"are options of --plates"),
                           ({"plates": True, "pattern": " "}, r"--pattern: empty"),
                           ({"plates": True, "diversity": Diversity(match_colours=False)}, r"--raw-colours")):
        with pytest.raises(PlategenError, match=message):
            synthesize(SynthRequest(styles=[plate], chars=None, n=2, out=tmp_path / "o", checkpoint=ckpt, **wrong))
        assert not (tmp_path / "o").exists()


def test_preview_is_as_wide_as_its_longest_row(tmp_path, plate, ckpt):
    """The sheet was always 16 samples wide: with 3 images per character most of it was empty. It is as wide as
    the longest row of samples, or the style plates' row where that is wider."""
    synthesize(request(plate, ckpt, tmp_path / "out", n=74, preview=tmp_path / "grid.png"))  # 2-3 per character
    height, width = read_image(plate).shape[:2]
    style_width = round(width * 64 / height) + 4  # the style row: plates 2 cells (64 px) high, 4 px apart
    assert Image.open(tmp_path / "grid.png").width == 2 * max(34 * 4, style_width)  # scale 2, 34 px cells


def test_resume_redraws_its_own_preview_cut_short(tmp_path, plate, ckpt):
    """A finished run whose preview.png in --out was cut short (a full disk, a copy stopped): --resume refused it as
    "a file plategen did not write"; it redraws it, as it redraws cut-off images. Another PNG there stays refused."""
    out = tmp_path / "out"
    synthesize(request(plate, ckpt, out, n=40, preview=out / "preview.png"))
    whole = (out / "preview.png").read_bytes()
    (out / "preview.png").write_bytes(whole[:50])
    synthesize(request(plate, ckpt, out, n=40, preview=out / "preview.png", resume=True))
    assert (out / "preview.png").read_bytes() == whole
    Image.new("RGB", (4, 4)).save(out / "preview.png")  # a readable PNG plategen did not write
    with pytest.raises(PlategenError, match="an existing file plategen did not write"):
        synthesize(request(plate, ckpt, out, n=40, preview=out / "preview.png", resume=True))


def test_the_preview_shows_every_style_plate_of_a_short_run(tmp_path, data_dir):
    """As narrow as its few samples per character, the sheet cut its row of style plates to 8 sheet widths of the
    narrower sheet: 4 of 8 plates shown, the last one cut (a review's finding)."""
    from plategen.synth.writers import write_preview

    styles = [np.full((100, 450, 3), 60 * (k % 4), np.uint8) for k in range(8)]
    glyph = np.zeros((32, 32), np.uint8)
    sheet = write_preview(tmp_path / "p.png", styles, ["A"], [glyph], {"A": [np.zeros((32, 32, 3), np.uint8)] * 3})
    assert Image.open(sheet).width == 2 * 8 * (round(450 * 64 / 100) + 4)  # all 8 plates, 4 px apart, scale 2
    thin = [np.zeros((16, 5000, 3), np.uint8)] * 8  # 16 px high, each 20,000 px wide at the sheet's 64: bounded
    sheet = write_preview(tmp_path / "q.png", thin, ["A"], [glyph], {"A": [np.zeros((32, 32, 3), np.uint8)]})
    assert Image.open(sheet).width == 2 * 8 * 34 * 17  # 8 sheets of 16 samples, as before the narrower sheet
