"""`plategen synth` on a real plate: counts, manifest/meta, resume, refusals, determinism."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from plategen.charset import parse_charset
from plategen.cli import app
from plategen.errors import PlategenError
from plategen.synth import label_counts, synthesize, within_class_diversity
from plategen.synth.writers import JOURNAL, LOCK, read_manifest

from conftest import make_checkpoint, synth_request

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
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.png")}
    assert on_disk == {r["image_path"] for r in rows}  # no gaps, no strays
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
    from PIL import Image

    assert all(Image.open(out / r["image_path"]).size == (32, 32) for r in rows[:5])
    assert rows[0]["style"] == str(plate) and rows[0]["font"] and int(rows[0]["seed"]) >= 0
    assert (tmp_path / "grid.png").is_file()


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path, plate, ckpt):
    a = synthesize(request(plate, ckpt, tmp_path / "a", n=60))
    synthesize(request(plate, ckpt, tmp_path / "b", n=60, batch_size=16))
    c = synthesize(request(plate, ckpt, tmp_path / "c", n=60, seed=1))
    assert tree_digest(a.out) == tree_digest(tmp_path / "b")
    assert tree_digest(a.out) != tree_digest(c.out)


def test_unknown_characters_are_named_in_one_error_before_any_work(tmp_path, plate, ckpt):
    out = tmp_path / "out"
    with pytest.raises(PlategenError) as err:
        synthesize(request(plate, ckpt, out, chars=["A", "Ñ", "京", "B"]))
    assert "'Ñ'" in str(err.value) and "'京'" in str(err.value) and "2 character(s)" in str(err.value)
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
    with pytest.raises(PlategenError, match="different settings"):
        synthesize(request(plate, ckpt, out, n=120, seed=5, resume=True))
    report = synthesize(request(plate, ckpt, out, n=120, resume=True))
    assert report.resumed == meta["done"] and report.generated == 120 - meta["done"]
    check_complete(out, 120, CHARS)
    assert tree_digest(out) == tree_digest(full.out)


def test_resume_after_the_process_is_killed(tmp_path, plate, ckpt):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "plategen.cli", "synth", "--style", str(plate), "--n", "600", "--out", str(out),
           "--checkpoint", str(ckpt), "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / JOURNAL
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.stat().st_size > 0:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    written = len(list(out.rglob("*.png")))
    assert 0 < written < 600
    assert (out / LOCK).is_file()  # left behind by the killed run; its flock went with the process
    result = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = check_complete(out, 600, CHARS)
    digests = {hashlib.sha256((out / r["image_path"]).read_bytes()).hexdigest() for r in rows}
    assert len(digests) == 600  # no duplicate images


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

