"""Output formats and run bookkeeping: shards read back, journal, disk full, unwritable folders."""

from __future__ import annotations

import errno
import functools
import json
import os
import tarfile

import numpy as np
import pytest

from plategen.charset import parse_charset
from plategen.errors import PlategenError
from plategen.synth import synthesize, writers
from plategen.synth.writers import JOURNAL, Journal, decode_png, prepare_out, read_image_at, read_manifest, read_shards

from conftest import synth_request


CHARS = parse_charset("0-9A-Z")


request = functools.partial(synth_request, n=50)


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
    with tarfile.open(shards.shards[0]) as tar:  # WebDataset layout: key.cls, key.json, key.png
        names = tar.getnames()
        assert names[:3] == ["000000.cls", "000000.json", "000000.png"]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


def test_shards_resume_after_an_interrupt(tmp_path, plate, ckpt):
    out = tmp_path / "s"

    def stop(done, total):
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(request(plate, ckpt, out, n=60, format="shards", shard_size=20), progress=stop)
    report = synthesize(request(plate, ckpt, out, n=60, format="shards", shard_size=20, resume=True))
    assert 0 < report.resumed < 60 and report.resumed % 20 == 0  # whole shards only
    keys = [s["key"] for s in read_shards(out)]
    assert keys == [f"{i:06d}" for i in range(60)]


def test_disk_full_is_a_clear_error_and_resume_finishes(tmp_path, plate, ckpt, monkeypatch):
    out = tmp_path / "full"
    real_write, calls = os.write, {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 30:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(writers.os, "write", failing_write)
    with pytest.raises(PlategenError, match="no space left on the device.*--resume"):
        synthesize(request(plate, ckpt, out, n=80))
    monkeypatch.setattr(writers.os, "write", real_write)
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
    assert prepare_out(tmp_path / "new", False, False) is None and (tmp_path / "new").is_dir()
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
