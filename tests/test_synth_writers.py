"""Output formats and run bookkeeping: shards read back, journal, disk full, unwritable folders."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from plategen.charset import parse_charset
from plategen.cli import app
from plategen.errors import PlategenError
from plategen.synth import synthesize, writers
from plategen.synth.writers import (JOURNAL, LOCK, Journal, decode_png, prepare_out, read_image_at, read_manifest,
                                    read_shards)

from conftest import one_line_error, synth_args, synth_request, webdataset_samples

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


CHARS = parse_charset("0-9A-Z")


request = functools.partial(synth_request, n=50)


def interrupted(req, at: int) -> None:
    """`synthesize(req)` stopped as Ctrl-C stops it, once `at` images are written."""
    def stop(done, total):
        if done >= at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(req, progress=stop)


def test_shards_read_back_equal_the_files_format(tmp_path, plate, ckpt):
    files = synthesize(request(plate, ckpt, tmp_path / "files", n=50))
    shards = synthesize(request(plate, ckpt, tmp_path / "shards", n=50, format="shards", shard_size=16))
    assert [p.name for p in shards.shards] == [f"shard-{k:06d}.tar" for k in range(4)]
    assert not list((tmp_path / "shards").glob("*.part")) and not (tmp_path / "shards" / JOURNAL).exists()
    file_rows, shard_rows = read_manifest(files.out), read_manifest(shards.out)
    samples = list(read_shards(shards.out))
    assert len(samples) == len(shard_rows) == 50
    for sample, row, frow in zip(samples, shard_rows, file_rows):
        assert row["image_path"].endswith(f"#{sample['key']}.png")
        assert sample["label"] == row["label"] == frow["label"] == sample["meta"]["label"]
        assert sample["meta"]["seed"] == int(row["seed"]) and sample["meta"]["font"] == row["font"]
        image = decode_png(sample["png"])
        assert image.shape == (32, 32, 3)
        assert np.array_equal(image, read_image_at(files.out, frow["image_path"]))
        assert np.array_equal(image, read_image_at(shards.out, row["image_path"]))
    with tarfile.open(shards.shards[0]) as tar:  # WebDataset layout: key.txt, key.cls, key.json, key.png
        names = tar.getnames()
        assert names[:4] == ["000000.txt", "000000.cls", "000000.json", "000000.png"]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


def test_shards_resume_after_an_interrupt(tmp_path, plate, ckpt):
    out = tmp_path / "s"

    interrupted(request(plate, ckpt, out, n=60, format="shards", shard_size=20), at=20)
    report = synthesize(request(plate, ckpt, out, n=60, format="shards", shard_size=20, resume=True))
    assert 0 < report.resumed < 60 and report.resumed % 20 == 0  # whole shards only
    keys = [s["key"] for s in read_shards(out)]
    assert keys == [f"{i:06d}" for i in range(60)]


def test_disk_full_is_a_clear_error_and_resume_finishes(tmp_path, plate, ckpt, monkeypatch):
    out = tmp_path / "full"
    real_write, calls = os.write, {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] == 31:  # as a disk fills: part of the file is written, the next write fails
            return real_write(fd, data[:len(data) // 2])
        if calls["n"] > 31:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(writers.os, "write", failing_write)
    with pytest.raises(PlategenError, match="no space left on the device.*--resume"):
        synthesize(request(plate, ckpt, out, n=80))
    monkeypatch.setattr(writers.os, "write", real_write)
    assert all(cv2.imread(str(png)) is not None for png in out.rglob("*.png"))  # no cut-off image left behind
    assert json.loads((out / "meta.json").read_text())["status"] == "interrupted"
    report = synthesize(request(plate, ckpt, out, n=80, resume=True))
    assert report.resumed > 0 and len(read_manifest(out)) == 80 == len(list(out.rglob("*.png")))


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PlategenError, match="not a folder"):
        prepare_out(blocker, resume=False, overwrite=False)
    with pytest.raises(PlategenError, match="cannot write"):
        prepare_out(blocker / "sub", resume=False, overwrite=False)


def test_prepare_out_rules(tmp_path):
    lock, previous = prepare_out(tmp_path / "new", False, False)
    assert previous is None and (tmp_path / "new").is_dir() and (tmp_path / "new" / LOCK).is_file()
    lock.release()
    assert list((tmp_path / "new").iterdir()) == []
    with pytest.raises(PlategenError, match="exclude"):
        prepare_out(tmp_path / "new", True, True)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "a.txt").write_text("a")
    with pytest.raises(PlategenError, match="nothing to resume"):
        prepare_out(stranger, resume=True, overwrite=False)


def test_journal_ignores_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path)
    journal.append([(0, "0123456789abcdef"), (1, "fedcba9876543210")])
    journal.close()
    with (tmp_path / JOURNAL).open("a") as handle:
        handle.write("2\t01234")  # killed mid-line
    assert Journal(tmp_path).load(10) == {0: "0123456789abcdef", 1: "fedcba9876543210"}
    again = Journal(tmp_path)
    again.append([(2, "00000000000000ff")])
    again.close()
    assert Journal(tmp_path).load(10)[2] == "00000000000000ff"


def tree_digest(out: Path) -> dict[str, str]:
    """Every file under `out` but meta.json (it holds times) -> sha256 of its bytes."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "meta.json"}


def test_overwrite_never_deletes_outside_out_nor_what_plategen_did_not_write(tmp_path, plate, ckpt):
    parent = tmp_path / "p"
    out = parent / "out"
    out.mkdir(parents=True)
    (parent / "keep").write_text("x")
    (out / "meta.json").write_text(json.dumps({"tool": "plategen synth", "label_dirs": {"0": ".."}}))
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, "--overwrite")))
    assert "meta.json" in message and "'..'" in message
    assert (parent / "keep").read_text() == "x" and (out / "meta.json").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "000001.png").write_bytes(b"theirs")
    (out / "0").symlink_to(elsewhere)  # the label folder is a link out of --out
    (out / "meta.json").write_text(json.dumps({"tool": "plategen synth", "label_dirs": {"0": "0"}}))
    one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, "--overwrite")))
    assert (elsewhere / "000001.png").read_bytes() == b"theirs"

    (out / "0").unlink()
    (out / "A").mkdir()
    (out / "A" / "000003.png").write_bytes(b"png")
    (out / "A" / "notes.txt").write_text("mine")  # not something plategen writes
    (out / "meta.json").write_text(json.dumps({"tool": "plategen synth", "label_dirs": {"A": "A"}}))
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, "--overwrite")))
    assert "notes.txt" in message
    assert (out / "A" / "notes.txt").read_text() == "mine" and (out / "A" / "000003.png").is_file()

    (out / "A" / "notes.txt").unlink()
    replaced = runner.invoke(app, synth_args(plate, ckpt, out, "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    assert len(read_manifest(out)) == 40 and (parent / "keep").read_text() == "x"


HOLDER = """
import sys, time
from pathlib import Path
from plategen.synth import SynthRequest, synthesize
plate, ckpt, out, hold = map(Path, sys.argv[1:5])
def wait(done, total):  # stop inside the run, lock held, until the test lets go
    if done:
        (out.parent / "holding").touch()
        while hold.exists():
            time.sleep(0.02)
synthesize(SynthRequest(styles=[plate], chars=list("0123456789"), n=40, out=out, checkpoint=ckpt, device="cpu",
                        batch_size=8), progress=wait)
"""


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(tmp_path, plate, ckpt):
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.touch()
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(plate), str(ckpt), str(out), str(hold)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "holding").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
            time.sleep(0.05)
        for flags in (["--resume"], ["--overwrite"], []):
            message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, "--chars", "0-9", *flags)))
            assert str(out.name) in message and "another plategen run (synth or benchmark)" in message, message
    finally:
        hold.unlink()
        output = first.communicate(timeout=120)[0]
    assert first.returncode == 0, output
    assert not (out / LOCK).exists()
    alone = synthesize(request(plate, ckpt, tmp_path / "alone", chars=list("0123456789"), n=40, batch_size=8))
    assert tree_digest(out) == tree_digest(alone.out)  # the refused runs changed nothing


class _FullDisk(io.RawIOBase):
    """A file on a full disk: every write fails with ENOSPC."""

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return 0

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_the_journal_is_one_line_not_a_traceback(tmp_path, plate, ckpt, monkeypatch):
    real_open = pathlib.Path.open

    def open_on_full_disk(self, mode="r", *args, **kwargs):
        if self.name == JOURNAL and "a" in mode:
            return io.TextIOWrapper(io.BufferedWriter(_FullDisk()), encoding="utf-8")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", open_on_full_disk)
    out = tmp_path / "out"
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out)))
    assert "no space left on the device" in message and JOURNAL in message
    assert json.loads((out / "meta.json").read_text())["status"] == "interrupted"
    assert not (out / LOCK).exists()


def test_resume_redoes_a_damaged_shard(tmp_path, plate, ckpt):
    full = synthesize(request(plate, ckpt, tmp_path / "full", n=60, format="shards", shard_size=20))
    out = tmp_path / "s"

    interrupted(request(plate, ckpt, out, n=60, format="shards", shard_size=20), at=40)
    shard = out / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # the rename outran the data
    report = synthesize(request(plate, ckpt, out, n=60, format="shards", shard_size=20, resume=True))
    assert report.resumed <= 40 and report.generated >= 20
    assert [s["key"] for s in read_shards(out)] == [f"{i:06d}" for i in range(60)]
    assert [p.read_bytes() for p in sorted(out.glob("shard-*.tar"))] == [p.read_bytes() for p in full.shards]


def test_webdataset_reads_character_shards_with_their_labels(tmp_path, plate, ckpt):
    out = synthesize(synth_request(plate, ckpt, tmp_path / "chars", n=40, format="shards", shard_size=16)).out
    samples, rows = webdataset_samples(out), read_manifest(out)
    assert len(samples) == len(rows) == 40
    for sample, row in zip(samples, rows):
        assert sample["txt"] == row["label"] and sample["cls"] == CHARS.index(row["label"])
        assert sample["png"].shape == (32, 32, 3)
        assert np.array_equal(sample["png"], read_image_at(out, row["image_path"]))


def test_character_shard_class_ids_do_not_move_with_chars(tmp_path, plate, ckpt):
    """.cls indexed the run's --chars in the order given: 'ZA9' and '9AZ' wrote other ids for one character, and
    two runs' shards merged by .cls read Z as 9. The ids are the plate labels' (`charset.label_classes`)."""
    ids = {}
    for name, chars in (("one", "ZA9"), ("two", "9AZ")):
        out = synthesize(synth_request(plate, ckpt, tmp_path / name, n=9, chars=list(chars), format="shards",
                                       shard_size=16)).out
        classes = json.loads((out / "meta.json").read_text())["classes"]
        assert classes[:36] == list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        ids[name] = {sample["txt"]: sample["cls"] for sample in webdataset_samples(out)}
        assert all(classes[cls] == label for label, cls in ids[name].items())
    assert ids["one"] == ids["two"] == {"9": 9, "A": 10, "Z": 35}


def test_a_shard_run_begun_before_fixed_class_ids_is_not_resumed_with_other_ids(tmp_path, plate, ckpt):
    """Its finished shards hold .cls of its own --chars order: resumed, it would mix two numberings."""
    out = tmp_path / "s"

    interrupted(request(plate, ckpt, out, n=40, chars=list("ZA9"), format="shards", shard_size=16), at=16)
    meta = json.loads((out / "meta.json").read_text())
    del meta["classes"]  # as the plategen before wrote it
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise \(classes\)"):
        synthesize(request(plate, ckpt, out, n=40, chars=list("ZA9"), format="shards", shard_size=16, resume=True))


def test_preview_never_replaces_a_file_plategen_did_not_write(tmp_path, plate, ckpt):
    """--preview once replaced the run's own style image, or any file the user named, without a word."""
    style = tmp_path / "style.png"
    style.write_bytes(cv2.imencode(".png", cv2.imread(str(plate)))[1].tobytes())
    before = style.read_bytes()
    out = tmp_path / "out"
    for preview in (style, out / "notes.png"):
        if preview.parent == out:
            out.mkdir()
            preview.write_bytes(before)
        message = one_line_error(runner.invoke(app, synth_args(style, ckpt, out, "--preview", str(preview))))
        assert f"--preview {preview}: an existing file plategen did not write" in message
        assert preview.read_bytes() == before
    assert list(out.iterdir()) == [out / "notes.png"]
    message = one_line_error(runner.invoke(app, synth_args(style, ckpt, tmp_path / "o.png", "--preview",
                                                           str(tmp_path / "o.png"))))
    assert "is --out" in message and not (tmp_path / "o.png").exists()


def test_a_preview_plategen_wrote_is_replaced_by_a_run_that_overwrites(tmp_path, plate, ckpt):
    out, preview = tmp_path / "out", tmp_path / "preview.png"
    assert runner.invoke(app, synth_args(plate, ckpt, out, "--preview", str(preview))).exit_code == 0
    first = preview.stat().st_mtime_ns
    again = runner.invoke(app, synth_args(plate, ckpt, out, "--preview", str(preview), "--overwrite"))
    assert again.exit_code == 0, again.output
    assert preview.stat().st_mtime_ns != first


def test_overwrite_deletes_only_what_that_runs_format_writes(tmp_path, plate, ckpt):
    """A files run's --overwrite deleted the user's shard-000042.tar; a shards run's the user's dict.txt."""
    out = tmp_path / "out"
    assert runner.invoke(app, synth_args(plate, ckpt, out)).exit_code == 0
    (out / "shard-000042.tar").write_bytes(b"mine")
    replaced = runner.invoke(app, synth_args(plate, ckpt, out, "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    assert (out / "shard-000042.tar").read_bytes() == b"mine"

    plates = tmp_path / "plates"
    shards = ["--plates", "--format", "shards", "--n", "4"]
    assert runner.invoke(app, synth_args(plate, ckpt, plates, *shards)).exit_code == 0
    mine = ["dict.txt", "rec_gt.txt", "classes.txt", "plates.csv", "lprnet/AB12_000000.png"]
    (plates / "lprnet").mkdir()
    for name in mine:
        (plates / name).write_bytes(b"mine")
    replaced = runner.invoke(app, synth_args(plate, ckpt, plates, *shards, "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    assert all((plates / name).read_bytes() == b"mine" for name in mine)


def test_resume_refuses_a_label_folder_that_leads_out_of_out(tmp_path, plate, ckpt):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert runner.invoke(app, synth_args(plate, ckpt, out)).exit_code == 0
    elsewhere.mkdir()
    (out / "0").rename(tmp_path / "zero")
    (out / "0").symlink_to(elsewhere)
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, "--resume")))
    assert f"{out / '0'}: a link where plategen writes a folder" in message
    assert list(elsewhere.iterdir()) == []


def test_a_style_inside_out_is_refused(tmp_path, plate, ckpt):
    out = tmp_path / "out"
    out.mkdir()
    style = out / "plate.jpg"
    style.write_bytes(plate.read_bytes())
    message = one_line_error(runner.invoke(app, synth_args(style, ckpt, out, "--overwrite")))
    assert f"--style {style}: inside --out" in message and style.read_bytes() == plate.read_bytes()


def test_a_killed_writes_temporary_files_are_cleared_by_resume_and_overwrite(tmp_path, plate, ckpt):
    """A kill during an atomic write leaves `.<name>.<random>.tmp`; --overwrite then refused the folder."""
    out = tmp_path / "out"
    assert runner.invoke(app, synth_args(plate, ckpt, out)).exit_code == 0
    for flag in ("--resume", "--overwrite"):
        leftovers = [out / ".manifest.csv.k2j4_x9a.tmp", out / "0" / ".000000.png.abcd1234.tmp"]
        for path in leftovers:
            path.write_bytes(b"cut off")
        done = runner.invoke(app, synth_args(plate, ckpt, out, flag))
        assert done.exit_code == 0, done.output
        assert not any(path.exists() for path in leftovers)


@pytest.mark.parametrize("plates", [False, True])
def test_resuming_a_complete_run_without_its_manifest_is_refused(tmp_path, plate, ckpt, plates):
    """It said done and named a manifest that did not exist."""
    out = tmp_path / "out"
    extra = ["--plates", "--n", "4"] if plates else []
    assert runner.invoke(app, synth_args(plate, ckpt, out, *extra)).exit_code == 0
    (out / "manifest.csv").unlink()
    message = one_line_error(runner.invoke(app, synth_args(plate, ckpt, out, *extra, "--resume")))
    assert f"{out / 'manifest.csv'}: missing from a complete run" in message and "--overwrite" in message
    assert runner.invoke(app, synth_args(plate, ckpt, out, *extra, "--overwrite")).exit_code == 0
    assert (out / "manifest.csv").is_file()


def test_an_aborted_shard_writer_leaves_no_part_file(tmp_path):
    """An interrupted --format shards run left its unfinished shard-NNNNNN.tar.part beside the whole shards."""
    writer = writers.make_writer("shards", tmp_path, ["A"], 10, 1, 4)
    images = np.zeros((6, 32, 32, 3), np.uint8)
    futures = writer.submit(np.arange(6), images, ["A"] * 6, writers.batch_hashes(images), [{}] * 6, [True] * 6)
    for future in futures:
        future.result()
    assert (tmp_path / "shard-000000.tar").is_file() and (tmp_path / "shard-000001.tar.part").is_file()
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]
