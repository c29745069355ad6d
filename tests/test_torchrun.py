"""`torchrun -m plategen -- synth|train` with 2 CPU processes, launched by the real torchrun.

Synth: the output is the bytes of one process's run (every file, the preview, meta.json but its
timings), for characters, whole plates and shards, and a run one of whose ranks was killed
finishes with --resume to the same bytes. Each test starts torchrun once or twice (two Python
processes loading torch): 20-30 s each on the shared 2-core machine at load average 10-15. Train: a few DDP steps, checked to leave the same
weights on both ranks, then --resume continues.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plategen.checkpoint import load_checkpoint, optimizer_path
from plategen.cli import app
from plategen.synth.writers import LOCK, RANK_JOURNAL, UNSHARED_OUT, read_manifest

from conftest import one_line_error, synth_args, webdataset_samples

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
TIMINGS = ("seconds", "images_per_s", "plates_per_s")
runner = CliRunner()


def torchrun(*args: str) -> list[str]:
    """The real launcher from this venv: 2 local processes, a free port (--standalone)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "plategen", "--", *map(str, args)]


def alone(monkeypatch, *args) -> None:
    """The same command in this process, as `plategen ...` (meta.json records sys.argv)."""
    args = list(map(str, args))
    monkeypatch.setattr(sys, "argv", ["plategen", *args])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def digests(out: Path) -> dict[str, str]:
    """sha256 of every file under `out` but meta.json."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "meta.json"}


def meta_of(out: Path) -> dict:
    """meta.json without its timings, with the output folder's name taken out of the command."""
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    for key in TIMINGS:
        meta.pop(key, None)
    meta["command"] = [a.replace(str(out), "OUT") for a in meta["command"]]
    return meta


def made_per_rank(stdout: str, n: int) -> list[int]:
    """The table's "torchrun ranks" row: each rank made a share, together all n."""
    found = re.search(r"torchrun ranks\s*│\s*2, made ([\d,]+) \+ ([\d,]+)", stdout)
    assert found, stdout
    counts = [int(c.replace(",", "")) for c in found.groups()]
    assert sum(counts) == n and min(counts) > 0
    return counts


def same_as_alone(tmp_path: Path, monkeypatch, args_of, n: int) -> tuple[Path, Path, str]:
    """Run the command alone and under torchrun into two folders; every byte must agree."""
    one, two = tmp_path / "alone", tmp_path / "torchrun"
    alone(monkeypatch, *args_of(one))
    result = run(torchrun(*args_of(two)))
    made_per_rank(result.stdout, n)
    assert digests(one) and digests(two) == digests(one)
    assert meta_of(two) == meta_of(one)
    assert not (two / LOCK).exists() and not list(two.glob("progress*.tsv"))
    return one, two, result.stdout


def chars(plate: Path, ckpt: Path, out: Path, n: int, *extra: str) -> list[str]:
    return ["synth", "--style", plate, "--n", str(n), "--out", out, "--checkpoint", ckpt, "--device", "cpu", *extra]


def test_torchrun_synth_writes_the_bytes_of_one_process(tmp_path, monkeypatch, plate, ckpt):
    n = 72  # 5 batches of 16: rank 0 draws batches 0, 2, 4, rank 1 batches 1, 3
    one, two, stdout = same_as_alone(
        tmp_path, monkeypatch, lambda out: chars(plate, ckpt, out, n, "--batch-size", "16", "--preview", f"{out}.png"), n)
    assert made_per_rank(stdout, n) == [40, 32]  # 16 + 16 + 8 and 16 + 16
    assert Path(f"{two}.png").read_bytes() == Path(f"{one}.png").read_bytes()
    assert len(read_manifest(two)) == n


def test_torchrun_whole_plates_are_the_bytes_of_one_process(tmp_path, monkeypatch, plate, ckpt):
    def args(out: Path) -> list[str]:
        return ["synth", "--plates", "--style", plate, "--n", "12", "--batch-size", "4", "--out", out,
                "--checkpoint", ckpt, "--device", "cpu", "--export", "lprnet", "--preview", f"{out}.png"]

    one, two, _ = same_as_alone(tmp_path, monkeypatch, args, 12)
    assert Path(f"{two}.png").read_bytes() == Path(f"{one}.png").read_bytes()
    assert len(list((two / "lprnet").glob("*.png"))) == 12


def test_torchrun_shards_one_set_per_rank_read_by_webdataset(tmp_path, monkeypatch, plate, ckpt):
    """Shard k is written by rank k mod 2 under its usual name; batches of 16 straddle shards of 8."""
    _, two, stdout = same_as_alone(
        tmp_path, monkeypatch, lambda out: synth_args(plate, ckpt, out, "--batch-size", "16", "--format", "shards",
                                         "--shard-size", "8"), 40)
    assert made_per_rank(stdout, 40) == [24, 16]  # shards 0, 2, 4 and shards 1, 3
    rows = read_manifest(two)
    samples = webdataset_samples(two)
    assert [s["__key__"] for s in samples] == [r["image_path"].split("#")[1].removesuffix(".png") for r in rows]
    assert [s["txt"] for s in samples] == [r["label"] for r in rows]
    assert all(s["png"].shape == (32, 32, 3) for s in samples)


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker with RANK=`rank` (Linux /proc)."""
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(child)
    return None


def test_resume_finishes_a_torchrun_run_one_rank_of_which_was_killed(tmp_path, monkeypatch, plate, ckpt):
    """While both ranks write, a second, independent run into the folder is refused (rank 0 holds
    the lock); then rank 1 is killed, and --resume finishes the run to one process's bytes."""
    n = 400
    full, out = tmp_path / "full", tmp_path / "killed"

    def args(where: Path) -> list[str]:
        return chars(plate, ckpt, where, n, "--batch-size", "4")

    launcher = subprocess.Popen(torchrun(*args(out)), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    journal = out / RANK_JOURNAL.format(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and launcher.poll() is None:
        if journal.is_file() and journal.stat().st_size > 0:
            break
        time.sleep(0.01)
    intruder = runner.invoke(app, list(map(str, args(out))))
    pid = _rank_pid(launcher.pid, 1) if launcher.poll() is None else None
    if pid is None:
        launcher.kill()
        launcher.wait()
        pytest.skip("the run finished before rank 1 could be killed")
    os.kill(pid, signal.SIGKILL)
    assert "another plategen run (synth or benchmark) is writing to this folder" in one_line_error(intruder)
    _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode != 0, stderr[-2000:]
    written = len(list(out.rglob("*.png")))
    assert 0 < written < n, written
    assert json.loads((out / "meta.json").read_text())["status"] in ("running", "interrupted")

    alone(monkeypatch, *args(full))
    # one process finishes it (it reads both ranks' journals); under torchrun the ranks would share the rest
    resumed = runner.invoke(app, [*map(str, args(out)), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert re.search(rf"{n} \(\d+ from the interrupted run\)", resumed.output), resumed.output
    assert digests(out) == digests(full)
    assert meta_of(out)["status"] == "complete"


def test_torchrun_train_a_few_steps_then_resume(tmp_path, data_dir):
    """Two ranks train, rank 0 writes one checkpoint (after checking both ranks hold the same
    weights: the run fails otherwise), and --resume continues to the new total."""
    uc3m = data_dir / "uc3m-lp"
    folder = tmp_path / "uc3m-small"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(uc3m / "classes.txt", folder)
    for image in sorted((uc3m / "images").iterdir())[:60]:
        shutil.copy(image, folder / "images")
        shutil.copy(uc3m / "labels" / f"{image.stem}.txt", folder / "labels")
    out = tmp_path / "m.safetensors"
    common = ["train", "--data", folder, "--out", out, "--batch-size", "8"]
    first = run(torchrun(*common, "--steps", "2"))
    assert "torchrun ranks" in first.stdout and first.stdout.count("plategen train ->") == 1
    two = load_checkpoint(out)
    assert two.meta["step"] == 2 and two.meta["ranks"] == 2 and optimizer_path(out).is_file()
    assert sorted(p.name for p in (tmp_path / "m-samples").iterdir()) == ["step000002.png"]
    run(torchrun(*common, "--steps", "4", "--resume", out))
    four = load_checkpoint(out)
    assert four.meta["step"] == 4 and four.meta["resumed_from"] == str(out)
    changed = [k for k, v in two.generator.state_dict().items()
               if v.is_floating_point() and not v.equal(four.generator.state_dict()[k])]
    assert changed  # the resumed steps trained it further


def test_an_odd_batch_is_refused_once_by_rank_0(tmp_path, data_dir):
    result = subprocess.run(torchrun("train", "--data", data_dir / "uc3m-lp", "--out", tmp_path / "m.safetensors",
                                     "--batch-size", "7", "--steps", "1"),
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: --batch-size 7: split over 2 torchrun processes, it must be a multiple of 2"], \
        result.stderr[-2000:]
    assert not (tmp_path / "m.safetensors").exists()


def torchrun_rank1_adds(tmp_path: Path, extra: list[str], args: list) -> subprocess.CompletedProcess:
    """torchrun with 2 processes, rank 1 given `extra` options too, as a typo on one of two machines would."""
    wrapper = tmp_path / "rank.sh"
    added = " ".join(f'"{a}"' for a in extra)
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = -- ] && shift\nif [ "$RANK" = 1 ]; then set -- "$@" {added}; fi\n'
                       f'exec "{sys.executable}" -m plategen "$@"\n')
    wrapper.chmod(0o755)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "--no-python", str(wrapper), "--", *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode != 0
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_ranks_started_with_other_settings_are_refused_before_anything_is_written(tmp_path, plate, data_dir, ckpt):
    """Two machines' commands that differ: a rank with another --style wrote a mix of two runs with exit 0 (the
    manifest naming rank 0's style only), one with another --seed a traceback and a folder --resume finished wrong."""
    other = next(p for p in sorted((data_dir / "uc3m-lp" / "images").iterdir()) if p.name != plate.name)
    out = tmp_path / "out"
    result = torchrun_rank1_adds(tmp_path, ["--style", other], chars(plate, ckpt, out, 40))
    assert error_lines(result) == ["error: rank 1: started with other settings than rank 0 (--style); start every "
                                   "rank with the same command and the same input files"], result.stderr[-2000:]
    assert not out.exists()


def test_a_rank_whose_out_is_not_rank_0s_folder_is_named_as_such(tmp_path, plate, ckpt):
    """--out on a machine that does not share it: rank 1 writes its images into its own folder, and rank 0 ended
    with "internal error, 16 image(s) are in no rank's journal; run with --resume", which did the same again."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = torchrun_rank1_adds(tmp_path, ["--out", elsewhere], chars(plate, ckpt, out, 40, "--batch-size", "8"))
    assert re.fullmatch(rf"error: {re.escape(str(out))}: \d+ image\(s\) are in no rank's journal here: "
                        + re.escape(UNSHARED_OUT), "\n".join(error_lines(result))), result.stderr[-2000:]


def test_training_ranks_started_with_another_seed_are_refused(tmp_path, data_dir):
    """Rank 1 with another --seed trained other batches than rank 0's, exit 0, the checkpoint naming rank 0's seed."""
    out = tmp_path / "m.safetensors"
    result = torchrun_rank1_adds(tmp_path, ["--seed", "3"], ["train", "--data", data_dir / "uc3m-lp", "--out", out,
                                                             "--batch-size", "4", "--steps", "2", "--device", "cpu"])
    assert error_lines(result) == ["error: rank 1: started with other settings than rank 0 (--seed); start every "
                                   "rank with the same command and the same input files"], result.stderr[-2000:]
    assert not out.exists()


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "abc"}, "error: environment variable WORLD_SIZE='abc': not a number; launch with torchrun"),
    ({"WORLD_SIZE": "2"}, "error: environment variable WORLD_SIZE=2 without RANK, MASTER_ADDR, MASTER_PORT: launch "
                          "with torchrun, or unset WORLD_SIZE to run alone"),
])
def test_torchrun_variables_set_without_torchrun_are_one_line(tmp_path, monkeypatch, env, message):
    """WORLD_SIZE=abc was raised again while the error was printed (a traceback); WORLD_SIZE=2 without the rest of
    torchrun's variables gave torch's ValueError as a traceback."""
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["synth", "--style", str(REPO / "examples" / "plate-es.jpg"), "--n", "4",
                                 "--out", str(tmp_path / "out")])
    assert one_line_error(result).strip() == message
    assert not (tmp_path / "out").exists()


def test_a_rank_waiting_for_one_that_died_says_so_in_one_line(tmp_path):
    """A rank killed (kill -9) while another waited at the run's end left that one a 120-line gloo traceback
    ("Connection closed by peer"), without saying that --resume finishes the run."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = ("import os, time\n"
              "from plategen.distributed import joined\n"
              "from plategen.errors import PlategenError\n"
              "with joined() as world:\n"
              "    if world.rank == 0:\n"
              "        time.sleep(1)\n"
              "        os._exit(9)\n"
              "    try:\n"
              "        world.gather(1)\n"
              "    except PlategenError as exc:\n"
              "        print(exc)\n")
    env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    ranks = [subprocess.Popen([sys.executable, "-c", script], env={**env, "RANK": str(r)}, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    out, err = ranks[1].communicate(timeout=120)
    ranks[0].wait(timeout=60)
    assert re.fullmatch(r"another rank is gone or stuck \(Connection closed by peer [^ ]+\); what this rank finished "
                        r"is kept, and --resume continues the run as after any interruption\n", out), out + err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_rank_whose_peers_never_come_stops_at_kill_or_ctrl_c(tmp_path, plate, sig):
    """Rank 0 of 2 waits for rank 1, which never starts: it waited in torch's rendezvous through kill and Ctrl-C
    (its handlers run only in Python) until the 24 h timeout. Nothing is written while it waits."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "0"}
    out = tmp_path / "out"
    rank = subprocess.Popen([sys.executable, "-m", "plategen", "synth", "--style", plate, "--n", "4", "--out", out],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # rank 0 serves the rendezvous store on the port once it waits there
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and rank.poll() is None, "rank 0 never reached the rendezvous"
            time.sleep(0.2)
        time.sleep(1)
        rank.send_signal(sig)
        assert rank.wait(timeout=30) != 0
    finally:
        rank.kill()
    assert not out.exists()


def test_a_lost_peer_error_of_no_words_past_its_source_line_is_still_one_line():
    """gloo's text can be just its '[file:line]' prefix: the message's gist was taken as [""][0], an IndexError."""
    from plategen.distributed import _exchange
    from plategen.errors import PlategenError

    def lost():
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:81]")

    with pytest.raises(PlategenError, match=r"^another rank is gone or stuck \(RuntimeError\); "):
        _exchange(lost)
