"""The plate level of the benchmark (`--level plates`): tiny runs end to end on real plates, the splits and
the leakage guard, generated plates and the texts they are read against, bad options."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from plategen.bench import split_for_seed
from plategen.bench.plate_pools import as_input, augmented_plates, plate_plan, rendered_plates, saae_plates
from plategen.bench.pools import open_generators
from plategen.bench.request import BenchmarkRequest
from plategen.checkpoint import DEFAULT_CHECKPOINT, SHIPPED_CHECKPOINTS, load_checkpoint
from plategen.cli import app
from plategen.dataset import charset_of, plate_key
from plategen.glyphs import shipped_fonts
from plategen.plates import load_plates, read_image
from plategen.synth.plates import style_plate
from conftest import copy_plates, leaky_copy, make_checkpoint

TINY = ["--steps", "3", "--batch-size", "8", "--threads", "1", "--workers", "1", "--seeds", "1"]


@pytest.fixture(scope="module")
def folders(data_dir, tmp_path_factory):
    """Real uc3m-lp folders that import in a blink: 40 plates of data, the next 16 as an external test set."""
    uc3m = data_dir / "uc3m-lp"
    images = sorted((uc3m / "images").iterdir())
    root = tmp_path_factory.mktemp("plates")
    return copy_plates(uc3m, root / "data", images[:40]), copy_plates(uc3m, root / "test", images[40:56])


@pytest.fixture(scope="module")
def model(folders, tmp_path_factory):
    """A small random SAAE with a discriminator (so the label check runs) that records its training
    plates: none of these, so every plate may test."""
    plates = load_plates(folders[0]).plates + load_plates(folders[1]).plates
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", charset_of(plates), seen=set())


def invoke(*args):
    return CliRunner().invoke(app, ["benchmark", "--level", "plates", *args])


def test_tiny_plate_benchmark_end_to_end_writes_the_report_with_the_summary_keys(folders, model, tmp_path):
    data, test = folders
    out = tmp_path / "bench"
    result = invoke("--data", str(data), "--test", str(test), "--checkpoint", str(model), "--out", str(out),
                    "--real-plates", "6", "--ratios", "0,1", "--synthetic-size", "8", *TINY)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.png", "report.json", "report.md"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["level"] == "plates" and report["regime"] == "product" and report["real_plates"] == "6"
    summary = report["summary"]
    for key in ("real_only", "accuracy_vs_ratio", "synthetic_only", "read_as_asked"):  # the character level's keys
        assert key in summary and key in summary["char_accuracy"]
    assert set(summary["accuracy_vs_ratio"]) == {"saae", "render", "augment"}
    runs = report["runs"]
    real = [r for r in runs if r["name"] == "real"][0]
    assert summary["real_only"]["values"] == [real["accuracy"]]  # plate accuracy is the value
    assert summary["char_accuracy"]["real_only"]["values"] == [real["char_accuracy"]]
    # real, 3 lines at ratio 1, 2 synthetic only, the judge, read as asked (saae checked + unchecked, render)
    assert sorted((r["name"], r["kind"]) for r in runs) == sorted([
        ("real", "ratio"), ("saae", "ratio"), ("render", "ratio"), ("augment", "ratio"), ("saae", "synthetic"),
        ("render", "synthetic"), ("judge", "judge"), ("saae", "read_as_asked"),
        ("saae", "read_as_asked_unchecked"), ("render", "read_as_asked")])
    for r in runs:
        if r["kind"] == "ratio":
            assert (r["real_plates"], r["generated_plates"]) == (6, 0 if r["name"] == "real" else 6)
            assert [step for step, _ in r["curve"]][-1] == 3  # accuracy vs steps, to the last step
        if r["kind"] in ("synthetic", "read_as_asked", "read_as_asked_unchecked"):
            assert (r["real_plates"], r["generated_plates"]) == (0, 8)
    judge = [r for r in runs if r["kind"] == "judge"][0]
    assert judge["real_plates"] == 40  # with --test, every data plate
    split = report["splits"][0]
    assert len(split["train_plates"]) == 6 and len(split["test_plates"]) == 16
    assert set(split["generated_chars"]) <= set(report["alphabet"])
    md = (out / "report.md").read_text(encoding="utf-8")
    for label in ("real + SAAE plates", "real + render plates", "real + classical augmentation of real plates"):
        assert f"| {label} |" in md
    for label in ("real + SAAE plates", "real + render plates", "Targets (issue 11)"):  # the same rows, as tables
        assert label in result.output
    assert any(t["target"].startswith("read as asked") for t in report["targets"])
    assert (out / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


def test_recognisers_in_two_worker_processes_give_the_same_report_as_one_worker(folders, tmp_path):
    data, test = folders
    reports = []
    for workers in ("1", "2"):
        out = tmp_path / f"workers{workers}"
        result = invoke("--data", str(data), "--test", str(test), "--generator", "render", "--out", str(out),
                        "--real-plates", "6", "--ratios", "0", "--synthetic-size", "4", "--steps", "6",
                        "--batch-size", "8", "--threads", "1", "--seeds", "2", "--workers", workers)
        assert result.exit_code == 0, result.output
        assert result.output.count("plates read exactly as asked by the judge") == 2  # every job's log line
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        reports.append([{k: v for k, v in run.items() if k != "seconds"} for run in report["runs"]])
    assert len(reports[0]) == 2 * 4  # per seed: real, render plates only, the judge, render read as asked
    assert reports[0] == reports[1]  # in job order, every figure, curve and confusion


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.parametrize("stopped, status, said", [
    ("run", 143, "interrupted"),  # SIGTERM to the command: its workers stop with it
    ("worker", 2, "error: a recogniser worker process died"),  # SIGKILL to one worker (the OOM killer): one line
])
def test_a_benchmark_stopped_from_outside_leaves_no_out_folder_nor_workers(folders, tmp_path, stopped, status, said):
    data, test = folders
    out = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, "-m", "plategen.cli", "benchmark", "--level", "plates", "--data", str(data),
                             "--test", str(test), "--generator", "render", "--out", str(out), "--real-plates", "6",
                             "--ratios", "0", "--synthetic-size", "4", "--steps", "100000", "--batch-size", "8",
                             "--threads", "1", "--workers", "2", "--seeds", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, workers = time.monotonic() + 120, set()
    try:
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            workers = {pid for pid in children(proc.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()}
            time.sleep(0.1)
        assert len(workers) == 2, "the recognisers never started training in worker processes"
        time.sleep(2)  # into the trainings
        if stopped == "run":
            proc.send_signal(signal.SIGTERM)
        else:
            os.kill(min(workers), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)  # (a worker left running holds stderr open: a timeout)
        assert proc.returncode == status, stderr
        assert said in " ".join(stderr.split()) and "Traceback" not in stderr
        assert not out.exists()  # created for the report, removed when the run stops with nothing written
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "worker processes outlived the run"
    finally:
        for pid in [proc.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_plate_splits_are_plate_disjoint_and_the_judge_learns_every_other_plate(folders, tmp_path):
    data, _ = folders
    out = tmp_path / "bench"
    result = invoke("--data", str(data), "--generator", "render", "--out", str(out), "--real-plates", "5",
                    "--test-plates", "12", "--ratios", "0", "--synthetic-size", "4", *TINY)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    plates = {p.sha256: p for p in load_plates(data).plates}
    split = report["splits"][0]
    train = {plate_key(plates[h]) for h in split["train_sha256"]}
    test = {plate_key(plates[h]) for h in split["test_sha256"]}
    assert len(split["train_sha256"]) == 5 and len(split["test_sha256"]) >= 12 and not train & test
    judge = [r for r in report["runs"] if r["kind"] == "judge"][0]
    assert judge["real_plates"] == len(plates) - len(split["test_sha256"])


def test_all_real_plates_is_every_plate_outside_the_test_plates(imported):
    plates = imported("uc3m-lp").plates
    split = split_for_seed(plates, None, 400, seed=0)
    assert len(split.test) >= 400 and sorted(split.train + split.test) == list(range(len(plates)))
    assert not {plate_key(plates[i]) for i in split.train} & {plate_key(plates[i]) for i in split.test}


def test_data_images_of_test_plates_are_left_out_of_training(folders, tmp_path):
    data, test = folders
    leaky = leaky_copy(data, test, tmp_path / "leaky")
    out = tmp_path / "bench"
    result = invoke("--data", str(leaky), "--test", str(test), "--generator", "render", "--out", str(out),
                    "--real-plates", "all", "--ratios", "0", "--synthetic-size", "4", *TINY)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    split = report["splits"][0]
    assert report["real_plates"] == "all" and len(split["train_sha256"]) == 40  # the 43 less the 3 copies
    assert not set(split["train_sha256"]) & set(split["test_sha256"])
    assert report["warnings"][0] == ("3 plate(s) of --data show --test plates (2 the same image, 1 another image "
                                     "with the same text) and were left out of training and the judge")
    assert [r["real_plates"] for r in report["runs"] if r["kind"] == "judge"] == [40]


def test_plates_whose_text_could_not_be_segmented_still_train_and_test(data_dir, tmp_path):
    """A plate recogniser needs only the text: text-only plates are in the splits and the judge, never styles."""
    folder = tmp_path / "ccpd" / "images"
    folder.mkdir(parents=True)
    for image in sorted((data_dir / "ccpd-crops" / "images").iterdir())[:20]:
        (folder / image.name).write_bytes(image.read_bytes())
    result = load_plates(folder.parent)
    assert result.text_only and result.plates  # this sample has both kinds
    assert [p.image_path for p in result.text_only] == [p.path for p in result.skipped]
    assert all(p.text == p.image_path.stem and not p.boxes for p in result.text_only)
    out = tmp_path / "bench"
    outcome = invoke("--data", str(folder.parent), "--generator", "render", "--out", str(out), "--real-plates", "all",
                     "--test-plates", "6", "--ratios", "0,1", "--synthetic-size", "4", *TINY)
    assert outcome.exit_code == 0, outcome.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    split = report["splits"][0]
    every = {p.sha256 for p in result.plates + result.text_only}
    assert report["data_plates"] == 20 and report["text_only_plates"] == len(result.text_only)
    assert set(split["train_sha256"]) | set(split["test_sha256"]) == every
    assert not set(split["train_sha256"]) & set(split["test_sha256"])
    assert [r["real_plates"] for r in report["runs"] if r["kind"] == "judge"] == [len(split["train_sha256"])]


def test_generated_plates_are_read_against_the_texts_they_were_drawn_with(folders, model):
    """One plan per seed: SAAE and render plates show its texts, at the recogniser's input size."""
    plates = load_plates(folders[0]).plates[:4]
    styles = [style_plate(p) for p in plates]
    chars = charset_of(plates)
    plan = plate_plan(styles, 6, chars, seed=0)
    assert all(set(t) <= set(chars) for t in plan.texts)
    assert [len(t) for t in plan.texts] == [len(styles[k].layout.char_slots) for k in plan.style]
    saae = saae_plates(load_checkpoint(model), styles, plan, chars, shipped_fonts(), 0, (32, 128))
    render = rendered_plates(styles, plan, shipped_fonts(), 0, (32, 128))
    assert saae.texts == render.texts == plan.texts
    # every plate's box centres are its style plate's slots, where its characters were drawn; a render plate's
    # moved a little with the plate's warp (tilt up to 5 degrees, shift, scale: `render.degrade`)
    for pool, reach in ((saae, (0, 0)), (render, (0.06, 0.2))):
        for c, text, k in zip(pool.centres, plan.texts, plan.style):
            (width, height), slots = styles[k].layout.size, styles[k].layout.char_slots
            drawn = np.array([((s.box[0] + s.box[2]) / 2 / width, (s.box[1] + s.box[3]) / 2 / height) for s in slots])
            assert len(c) == len(text) and np.all(np.abs(c - drawn) <= np.add(reach, 1e-6))
    assert not np.allclose(np.concatenate(render.centres), np.concatenate(saae.centres))
    assert saae.images.shape == render.images.shape == saae.unchecked.shape == (6, 32, 128, 3)
    assert not np.array_equal(saae.images, render.images)
    again = rendered_plates(styles, plate_plan(styles, 6, chars, seed=0), shipped_fonts(), 0, (32, 128))
    assert np.array_equal(again.images, render.images)  # fixed by the seed


def test_the_recognisers_see_a_two_row_plate_as_one_row_in_reading_order(imported, folders, model):
    """The recogniser reads columns left to right: a two-row plate squeezed whole put its top row above its bottom
    row, the two rows' characters in the same columns. Real and generated two-row plates alike are laid out as one
    row (top row left), so their characters' centres run left to right in the text's order, at mid-height."""
    two_row = [p for p in imported("uc3m-lp").plates if p.image_path.name in ("00011_BN-695-B-D.jpg",
                                                                             "00815_BD-99-8-PX.jpg")]
    images, centres = as_input([read_image(p.image_path) for p in two_row], [p.boxes for p in two_row], (32, 128))
    assert images.shape == (2, 32, 128, 3)
    for c in centres:
        assert (np.diff(c[:, 0]) > 0).all() and (abs(c[:, 1] - 0.5) < 0.25).all()
    styles = [style_plate(p) for p in two_row]
    plan = plate_plan(styles, 4, charset_of(two_row), seed=0)
    for pool in (saae_plates(load_checkpoint(model), styles, plan, charset_of(two_row), shipped_fonts(), 0, (32, 128)),
                 rendered_plates(styles, plan, shipped_fonts(), 0, (32, 128))):
        assert all((np.diff(c[:, 0]) > 0).all() for c in pool.centres)
    # warped copies of a tall two-row plate: tilted, their moved boxes are taller and closer and read as one row (a
    # review: 36-45 of 200 augmented copies of this plate were fed squeezed); their rows are the plate's as drawn
    tall = [p for p in imported("uc3m-lp").plates if p.image_path.name == "00378_BN-01-6H-J.jpg"]
    styles = [style_plate(p) for p in tall]
    plan = plate_plan(styles, 40, charset_of(tall), seed=0)
    for pool in (augmented_plates(tall, [read_image(tall[0].image_path)], (40,), 0, (32, 128)),
                 rendered_plates(styles, plan, shipped_fonts(), 0, (32, 128))):
        assert len(pool.centres) == 40
        for c in pool.centres:
            assert (np.diff(c[:, 0]) > 0).all() and (abs(c[:, 1] - 0.5) < 0.25).all()


@pytest.mark.parametrize("args, message", [
    (["--level", "words"], "--level"),
    (["--real-plates", "all", "--level", "chars"], "--real-plates all"),
    (["--real-plates", "many"], "--real-plates"),
    (["--real-plates", "0"], "--real-plates"),
    (["--balance", "uniform"], "--balance"),
    (["--steps", "0"], "--steps"),
    (["--generator", "render", "--checkpoint", "{model}"], "--checkpoint"),
    (["--budget", "5"], "--budget"),
    (["--workers", "0"], "--workers"),
    (["--test", "{test}", "--test-plates", "5"], "--test-plates"),
])
def test_bad_plate_options_are_one_line_and_exit_2(folders, model, tmp_path, args, message):
    out = tmp_path / "bench"
    args = [a.format(model=model, test=folders[1]) for a in args]
    level = [] if "--level" in args else ["--level", "plates"]
    result = CliRunner().invoke(app, ["benchmark", *level, "--data", str(folders[0]), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not out.exists()


def test_allchars_drawing_the_chinese_characters_keeps_its_training_plates_out_of_the_tests(tmp_path):
    """Without --checkpoint, the benchmark takes its Chinese characters from allchars, as synth does, at both
    levels; it trained on 164 ccpd-crops and 83 openalpr-us plates the default never saw, and none of them may
    be a test plate. Data without a character it draws neither loads it nor loses those plates."""
    fonts, chinese = shipped_fonts(), list("0123456789京")
    allchars = load_checkpoint(SHIPPED_CHECKPOINTS["allchars"])
    for level in ("plates", "chars"):
        gens = open_generators(BenchmarkRequest(level=level, out=tmp_path), chinese, fonts)
        assert gens.chinese is not None and set(allchars.meta["plate_sha256"]) <= gens.seen
        assert allchars.sha256 in gens.infos["saae"].description and "京" in gens.drawable
    latin = open_generators(BenchmarkRequest(level="plates", out=tmp_path), list("0123456789AB"), fonts)
    assert latin.chinese is None and not set(allchars.meta["plate_sha256"]) <= latin.seen
    given = open_generators(BenchmarkRequest(level="plates", out=tmp_path, checkpoint=DEFAULT_CHECKPOINT),
                            chinese, fonts)
    assert given.chinese is None and given.seen == latin.seen


def test_ratios_that_would_draw_more_plates_than_the_bound_are_refused_before_drawing(data_dir, tmp_path):
    """--real-plates all --ratios 64 planned 106,000 plates past --synthetic-size's bound of 20,000, and sat in
    generation with its memory growing."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["benchmark", "--level", "plates", "--data", str(data_dir / "uc3m-lp"),
                                      "--real-plates", "all", "--ratios", "0,64", "--generator", "render", "--seeds", "1",
                                      "--out", str(out)])
    assert result.exit_code == 2 and " ".join(result.output.split()).startswith(
        "error: --ratios: 64 x the 1656 real training plates of seed 0 is 105,984 generated plates, more than 20,000")
    assert not out.exists()
