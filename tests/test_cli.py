import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from PIL import Image
from typer.testing import CliRunner

from conftest import copy_plates
from hostile import make_fifo
from plategen import __version__
from plategen.cli import app, run

runner = CliRunner()


def test_version_and_help():
    assert __version__ in runner.invoke(app, ["--version"]).output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "inspect" in result.output


def test_inspect_prints_counts_and_writes_a_contact_sheet(tmp_path, data_dir):
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["inspect", str(data_dir / "ccpd-crops"), "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert "plates read" in result.output and "皖" in result.output
    assert str(sheet) in result.output.replace("\n", "")
    image = Image.open(sheet)
    assert image.width > 32 * 10 and image.height >= 32 * 20  # one row per class


def test_inspect_names_its_default_sheet_without_the_folder_names_control_characters(tmp_path, data_dir, monkeypatch):
    """A folder named 'a\\nb' gave a sheet named 'inspect-a\\nb.png' in the current folder."""
    folder = tmp_path / "a\nb"
    folder.mkdir()
    shutil.copy(data_dir / "ccpd-crops" / "images" / "皖AVH276.jpg", folder)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = runner.invoke(app, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in here.iterdir()] == ["inspect-a_b.png"]


def test_a_sheet_inspect_wrote_among_the_plates_is_not_read_as_a_plate(tmp_path, data_dir, monkeypatch):
    """`plategen inspect .` in a folder of plates named by their text writes its sheet there; the next import listed
    it as a bad record. Another PNG whose name is no plate text still is one."""
    for name in ("京PL3N67.jpg", "皖AVH276.jpg", "皖A0V262.jpg"):
        shutil.copy(data_dir / "ccpd-crops" / "images" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["inspect", "."])
    assert first.exit_code == 0, first.output
    (sheet,) = tmp_path.glob("inspect-*.png")
    Image.open(sheet).save(tmp_path / "notes.png")  # the same picture, not marked as plategen's
    again = runner.invoke(app, ["inspect", "."])
    assert again.exit_code == 0, again.output
    output = again.output.replace("\n", "")
    assert f"file name '{sheet.name}'" not in output and "file name 'notes.png' is not a plate text" in output


def test_an_interrupted_synth_says_so_once_then_how_to_finish(tmp_path, monkeypatch):
    """Ctrl-C printed the --resume advice first and "interrupted" after it, on two lines."""
    import plategen.synth

    def begun_then_stopped(request, progress):  # a run stopped after it wrote meta.json: there is one to finish
        request.out.mkdir()
        (request.out / "meta.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(plategen.synth, "synthesize", begun_then_stopped)
    out = tmp_path / "out"
    example = Path(__file__).resolve().parents[1] / "examples" / "plate-es.jpg"
    result = runner.invoke(app, ["synth", "--style", str(example), "--n", "4", "--out", str(out)])
    assert result.exit_code == 130
    lines = [line for line in result.output.replace(str(out), "OUT").splitlines() if line.strip()]
    assert lines == ["interrupted: run the same command with --resume to finish OUT"], result.output


def test_inspect_groups_skip_reasons_without_turning_a_quoted_text_into_n():
    """'0' (a plate's text) was printed as 'N', as if the plate read N."""
    from plategen.inspection import reason_kind
    a = reason_kind("classical: text '0' is too short to check a consistent row")
    b = reason_kind("classical: text '12' is too short to check a consistent row")
    assert a == b == "classical: text '...' is too short to check a consistent row"
    assert reason_kind("found 5 character(s) for 7") == "found N character(s) for N"
    # an apostrophe after a letter opened a quote that ran to the next one: "a blob'...'s colour differs"
    assert reason_kind("segmentation: a blob's colour differs from the other characters'") == \
        "segmentation: a blob's colour differs from the other characters'"


def test_inspect_of_an_empty_path_says_so(tmp_path, monkeypatch):
    """It read the current folder ('.'), and in a folder of plates imported them and wrote a sheet."""
    monkeypatch.chdir(tmp_path)
    assert "DATA: an empty path" in _one_error_line(runner.invoke(app, ["inspect", ""]))
    assert not list(tmp_path.iterdir())


def test_inspect_of_a_missing_folder_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope: no such data folder" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_inspect_lists_why_no_plate_of_a_folder_is_usable(tmp_path):
    """synth's refusal of such a folder says to run inspect for the list; inspect used to refuse it the same way.
    (With one bad record the error line names it, and is the only line.)"""
    folder = tmp_path / "phone"
    folder.mkdir()
    example = Path(__file__).resolve().parents[1] / "examples" / "plate-es.jpg"
    for name in ("IMG_0001.jpg", "photo.jpg", "DSC01234.JPG"):
        shutil.copy(example, folder / name)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["inspect", str(folder), "--sheet", str(tmp_path / "s.png")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert [line.split(":")[0].strip() for line in lines[:3]] == [str(folder / n) for n in
                                                                 ("DSC01234.JPG", "IMG_0001.jpg", "photo.jpg")]
    assert len(lines) == 4 and lines[3].startswith(f"error: {folder}: no usable plates read")
    assert "run plategen inspect" not in lines[3] and not (tmp_path / "s.png").exists()
    fewer = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["inspect", str(folder), "--show", "1"])
    assert fewer.output.strip().splitlines()[1] == "  ... and 2 more (--show N lists more)"


def _one_error_line(result) -> str:
    """The CLI's promise for a wrong input: exit 2 and exactly one line, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _small_yolo_folder(tmp_path: Path, data_dir: Path) -> Path:
    folder = tmp_path / "yolo"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(data_dir / "uc3m-lp" / "classes.txt", folder)
    shutil.copy(data_dir / "uc3m-lp" / "images" / "00001_AN-074-C-V.jpg", folder / "images")
    shutil.copy(data_dir / "uc3m-lp" / "labels" / "00001_AN-074-C-V.txt", folder / "labels")
    return folder


def test_inspect_names_images_that_are_byte_for_byte_copies(tmp_path, data_dir):
    folder = _small_yolo_folder(tmp_path, data_dir)
    shutil.copy(folder / "images" / "00001_AN-074-C-V.jpg", folder / "images" / "00002_copy.jpg")
    shutil.copy(folder / "labels" / "00001_AN-074-C-V.txt", folder / "labels" / "00002_copy.txt")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["inspect", str(folder), "--sheet", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "byte-for-byte copies" in line)
    assert "1 (first: 00002_copy.jpg = 00001_AN-074-C-V.jpg)" in row
    (folder / "images" / "00002_copy.jpg").unlink()  # the real plate alone: no such row
    (folder / "labels" / "00002_copy.txt").unlink()
    clean = CliRunner().invoke(app, ["inspect", str(folder), "--sheet", str(tmp_path / "s.png")])
    assert clean.exit_code == 0 and "byte-for-byte" not in clean.output, clean.output


def test_control_characters_in_file_names_never_reach_the_terminal(tmp_path):
    folder = tmp_path / "plates"
    folder.mkdir()
    (folder / "AB\x1b[31mC\x07.jpg").write_bytes(b"not an image")
    line = _one_error_line(runner.invoke(app, ["inspect", str(folder), "--sheet", str(tmp_path / "s.png")]))
    assert "\x1b" not in line and "\x07" not in line
    assert "AB\\x1b[31mC\\x07.jpg" in line and "no usable plates" in line
    assert not (tmp_path / "s.png").exists()


def test_an_output_path_through_a_file_says_which_file_is_in_the_way(tmp_path, data_dir):
    folder = _small_yolo_folder(tmp_path, data_dir)
    (tmp_path / "file.txt").write_text("keep me")
    sheet = tmp_path / "file.txt" / "sub.png"
    line = _one_error_line(runner.invoke(app, ["inspect", str(folder), "--sheet", str(sheet)]))
    assert f"{tmp_path / 'file.txt'} is a file, not a folder" in line
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_format_yolo_on_a_csv_folder_is_one_line(tmp_path, data_dir):
    line = _one_error_line(runner.invoke(app, ["inspect", str(data_dir / "openalpr-us"), "--format", "yolo",
                                               "--sheet", str(tmp_path / "s.png")]))
    assert "no classes.txt" in line
    assert not list(tmp_path.iterdir())


def test_csv_paths_outside_the_folder_need_allow_outside_paths(tmp_path, data_dir):
    folder = tmp_path / "csv"
    folder.mkdir()
    shutil.copy(data_dir / "openalpr-us" / "images" / "ak1165.jpg", tmp_path)
    (folder / "labels.csv").write_text("image_path,plate_text\n../ak1165.jpg,FUW999\n")
    sheet = tmp_path / "sheet.png"
    line = _one_error_line(runner.invoke(app, ["inspect", str(folder), "--sheet", str(sheet)]))
    assert "outside the data folder" in line and "--allow-outside-paths" in line and not sheet.exists()
    allowed = runner.invoke(app, ["inspect", str(folder), "--sheet", str(sheet), "--allow-outside-paths"])
    assert allowed.exit_code == 0, allowed.output
    assert sheet.is_file()


def test_a_pipe_as_the_style_is_refused_not_read(tmp_path, ckpt):
    pipe = make_fifo(tmp_path / "style.png")
    out = tmp_path / "out"
    line = _one_error_line(runner.invoke(app, ["synth", "--style", str(pipe), "--out", str(out), "--n", "4",
                                               "--checkpoint", str(ckpt), "--device", "cpu"]))
    assert line == (f"error: {pipe}: not a regular file (a pipe, device or socket); "
                    "plategen reads images only from regular files")
    assert not out.exists()


def test_a_style_file_name_that_is_not_utf8_is_refused_before_any_output(tmp_path, plate, ckpt):
    """Bytes from another system in a name: synth made 36 class folders, then died in a traceback writing meta.json."""
    name = os.fsdecode(b"plaque-\xe9t\xe9.jpg")
    shutil.copy(plate, tmp_path / name)
    out = tmp_path / "out"
    done = _plategen("synth", "--style", str(tmp_path / name), "--out", str(out), "--n", "4",
                     "--checkpoint", str(ckpt), "--device", "cpu")
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"error: {tmp_path}/plaque-\\xe9t\\xe9.jpg: the file name is not valid UTF-8; rename it (synth writes "
        "style names into manifest.csv and meta.json)"], done.stderr
    assert not out.exists()


def test_a_data_folder_name_that_is_not_utf8_is_refused_by_train_before_any_output(tmp_path, data_dir):
    """train died in a traceback hashing the plates for the held-out split, and (past that) writing the
    checkpoint's header, after making the sample folder."""
    uc3m = data_dir / "uc3m-lp"
    folder = tmp_path / os.fsdecode(b"plaques-\xe9t\xe9")
    copy_plates(uc3m, folder, sorted((uc3m / "images").iterdir())[:12])
    out = tmp_path / "out"
    out.mkdir()
    done = _plategen("train", "--data", str(folder), "--out", str(out / "m.safetensors"), "--steps", "2")
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"error: {tmp_path}/plaques-\\xe9t\\xe9: the file name is not valid UTF-8; rename it (train writes its "
        "--data folders into the checkpoint's header)"], done.stderr
    assert not any(out.iterdir())


@pytest.mark.parametrize("colour", [(255, 255, 255), (20, 60, 200)], ids=["white", "blue"])
def test_a_flat_style_image_is_refused_as_no_plate(tmp_path, plate, ckpt, colour):
    """A blank image (a wrong file) was taken as a style and gave blank characters, most labelled fail."""
    flat = tmp_path / "flat.png"
    Image.new("RGB", (300, 100), colour).save(flat)
    out = tmp_path / "out"
    line = _one_error_line(runner.invoke(app, ["synth", "--style", str(plate), "--style", str(flat), "--out", str(out),
                                               "--n", "4", "--checkpoint", str(ckpt), "--device", "cpu"]))
    assert line.startswith(f"error: {flat}: a flat image") and "not a plate" in line
    assert not out.exists()


@pytest.mark.parametrize("height", [4, 15])
def test_a_style_plate_too_low_to_show_its_characters_is_refused(tmp_path, plate, ckpt, height):
    """A real plate shrunk to 16x4 px was taken as a style and gave useless characters."""
    small = tmp_path / "small.png"
    image = Image.open(plate).convert("RGB")
    image.resize((round(image.width * height / image.height), height), Image.Resampling.BOX).save(small)
    out = tmp_path / "out"
    line = _one_error_line(runner.invoke(app, ["synth", "--style", str(small), "--out", str(out), "--n", "4",
                                               "--checkpoint", str(ckpt), "--device", "cpu"]))
    assert line.startswith(f"error: {small}: image is ") and f"x{height} px, too low for a style plate" in line, line
    assert "at least 16 px high" in line
    assert not out.exists()


def test_a_style_plate_as_low_as_a_ccpd_crop_is_taken(tmp_path, data_dir, ckpt):
    """The floor stays under the lowest real plates (CCPD crops are 24 px high)."""
    crop = next(iter(sorted((data_dir / "ccpd-crops" / "images").iterdir())))
    assert Image.open(crop).height == 24
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", "--style", str(crop), "--out", str(out), "--n", "2", "--chars", "0-1",
                                 "--checkpoint", str(ckpt), "--device", "cpu", "--no-preview"])
    assert result.exit_code == 0, result.output
    assert len(list(out.rglob("*.png"))) == 2


@pytest.mark.parametrize("make", ["pipe", "folder"])
def test_a_style_folder_entry_that_is_no_image_file_is_refused_like_a_broken_image(tmp_path, plate, ckpt, make):
    """A pipe or a folder named x.jpg among the style images was skipped without a word (a corrupt one is fatal)."""
    styles = tmp_path / "styles"
    styles.mkdir()
    shutil.copy(plate, styles / "a.jpg")
    make_fifo(styles / "b.jpg") if make == "pipe" else (styles / "b.jpg").mkdir()
    out = tmp_path / "out"
    line = _one_error_line(runner.invoke(app, ["synth", "--style", str(styles), "--out", str(out), "--n", "4",
                                               "--checkpoint", str(ckpt), "--device", "cpu"]))
    assert line.startswith(f"error: {styles / 'b.jpg'}: ") and ("not a regular file" if make == "pipe"
                                                                 else "is a folder, not an image file") in line
    assert not out.exists()


def test_control_characters_in_listed_records_are_escaped(tmp_path, data_dir):
    folder = _small_yolo_folder(tmp_path, data_dir)
    (folder / "images" / "X\x1b[2J.jpg").write_bytes(b"no label file names this")
    result = runner.invoke(app, ["inspect", str(folder), "--sheet", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert "X\\x1b[2J.jpg: no label file" in result.output and "\x1b" not in result.output


def test_synth_out_through_a_file_names_the_file_and_creates_nothing(tmp_path, plate, ckpt):
    (tmp_path / "file.txt").write_text("keep me")
    out = tmp_path / "file.txt" / "sub"
    line = _one_error_line(runner.invoke(app, ["synth", "--style", str(plate), "--out", str(out), "--n", "4",
                                               "--checkpoint", str(ckpt), "--device", "cpu"]))
    assert f"{tmp_path / 'file.txt'} is a file, not a folder" in line
    assert (tmp_path / "file.txt").read_text() == "keep me" and list(tmp_path.iterdir()) == [tmp_path / "file.txt"]


def _plategen(*args: str) -> subprocess.CompletedProcess:
    """The real command in a child process, stdout and stderr captured: stderr is no terminal."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "plategen", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.parametrize("extra, message", [
    (["--chars", ""], "--chars: the character spec is empty"),
    (["--chars", "0-9,A-Z"], "--chars: ',' in '0-9,A-Z' is not a letter, digit or Chinese character"),
    (["--plates", "--pattern", " "], "--pattern: empty"),
    (["--style", "PLATE"], "given twice; its plates would weigh double"),
    (["--style", "FOLDER"], "given twice (first as --style PLATE); its plates would weigh double"),
    (["--chars", "0aA"], "--chars: a and A would be written to folders that differ only in case"),
], ids=["empty-chars", "comma-in-chars", "empty-pattern", "style-twice", "style-and-its-folder", "case-twins"])
def test_slips_in_synth_options_are_refused_not_guessed(tmp_path, plate, ckpt, extra, message):
    """An empty --chars used to mean 0-9A-Z, a ',' became a class, an empty --pattern ran, a style given twice (or as a file and its folder) weighed double."""
    out = tmp_path / "out"
    names = {"PLATE": str(plate), "FOLDER": str(plate.parent)}
    extra, message = [names.get(a, a) for a in extra], message.replace("PLATE", str(plate))
    line = _one_error_line(runner.invoke(app, ["synth", "--style", str(plate), "--out", str(out), "--n", "4",
                                               "--checkpoint", str(ckpt), "--device", "cpu", *extra]))
    assert message in line
    assert not out.exists()


def test_resume_into_a_folder_without_a_run_says_it_began_a_new_one(tmp_path, plate, ckpt):
    """A mistyped --out with --resume started over without a word; a folder whose run it finished says nothing."""
    out = tmp_path / "typo"
    args = ["synth", "--style", str(plate), "--out", str(out), "--n", "4", "--checkpoint", str(ckpt), "--device", "cpu",
            "--resume"]
    first = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"--resume: {out} held no run to finish; this was a new one" in first.output
    again = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert again.exit_code == 0 and "held no run" not in again.output and "all already there" in again.output


@pytest.mark.parametrize("command", ["inspect", "synth-pipe", "synth-out", "train", "benchmark"])
def test_every_command_errs_in_exactly_one_line_when_stderr_is_no_terminal(tmp_path, data_dir, plate, ckpt,
                                                                          command):
    (tmp_path / "file.txt").write_text("keep me")
    blocked = str(tmp_path / "file.txt" / "sub")
    synth = ["synth", "--n", "4", "--checkpoint", str(ckpt), "--device", "cpu"]
    pipe = make_fifo(tmp_path / "style.png") if command == "synth-pipe" else None
    args = {
        "inspect": ["inspect", str(tmp_path / "nope"), "--sheet", str(tmp_path / "s.png")],
        "synth-pipe": [*synth, "--style", str(pipe), "--out", str(tmp_path / "o")],
        "synth-out": [*synth, "--style", str(plate), "--out", blocked],
        "train": ["train", "--data", str(data_dir / "uc3m-lp"), "--out", blocked + "/m.safetensors"],
        "benchmark": ["benchmark", "--data", str(data_dir / "uc3m-lp"), "--out", blocked],
    }[command]
    result = _plategen(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: /"), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"] + (["style.png"] if command == "synth-pipe" else [])


def test_train_draws_no_progress_bar_on_a_stderr_that_is_no_terminal(tmp_path, data_dir):
    folder = _small_yolo_folder(tmp_path, data_dir)
    for image in sorted((data_dir / "uc3m-lp" / "images").iterdir())[1:40]:
        shutil.copy(image, folder / "images")
        shutil.copy(data_dir / "uc3m-lp" / "labels" / f"{image.stem}.txt", folder / "labels")
    result = _plategen("train", "--data", str(folder), "--out", str(tmp_path / "m.safetensors"), "--steps", "1",
                       "--batch-size", "4", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a later error would be the only line there


# Which of the modules load torch, in one interpreter where torch cannot be imported: a module whose import
# fails on torch loads it (a failed import leaves nothing cached, so each module is judged on its own).
_TORCH_BLOCKED = """
import importlib, importlib.abc, json, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch blocked")
sys.meta_path.insert(0, NoTorch())
loads = {}
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
        loads[module] = False
    except ImportError as exc:
        loads[module] = "torch blocked" in str(exc)
print(json.dumps(loads))
"""


def _loads_torch(*modules: str) -> dict[str, bool]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", _TORCH_BLOCKED, *modules], capture_output=True, text=True, env=env,
                         check=True).stdout
    return json.loads(out)


def test_imports_inside_functions_are_only_those_that_load_torch():
    """Imports sit at the top of modules; the CLI imports a torch-loading module inside its command
    only, so help and inspect start fast and benchmark sets OMP_WAIT_POLICY before torch loads."""
    package = Path(__file__).resolve().parents[1] / "plategen"
    inside = set()
    for path in package.rglob("*.py"):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom):
                        inside.add(node.module)
                    elif isinstance(node, ast.Import):
                        inside.update(alias.name for alias in node.names)
    loads = _loads_torch("plategen.cli", "plategen.bench.benchmark", *sorted(inside))
    assert loads.pop("plategen.cli") is False and loads.pop("plategen.bench.benchmark") is True  # the check can fail
    assert inside and {module for module, torch_too in loads.items() if not torch_too} == set()


@pytest.mark.parametrize("args, message", [
    (["--show", "-1", "--sheet", "TMP/s.png"], "--show -1: must be 0 or more"),
    (["--sheet", "TMP/nowhere/s.png"], "s.png: the folder"),
    (["--sheet", "TMP/s.jpg"], "s.jpg: the sheet is a PNG"),
    (["--sheet", ""], "--sheet: an empty path"),
], ids=["negative-show", "sheet-in-missing-folder", "sheet-not-png", "empty-sheet"])
def test_inspect_refuses_a_sheet_it_could_not_write_and_a_negative_show(tmp_path, data_dir, args, message):
    folder = _small_yolo_folder(tmp_path, data_dir)
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    before = sorted(tmp_path.rglob("*"))
    assert message in _one_error_line(runner.invoke(app, ["inspect", str(folder), *args]))
    assert sorted(tmp_path.rglob("*")) == before  # the missing folder was not made, no sheet written


def test_a_file_given_as_a_data_folder_is_named_as_a_file(tmp_path):
    text = tmp_path / "plates.txt"
    text.write_text("1234BCD\n")
    line = _one_error_line(runner.invoke(app, ["benchmark", "--data", str(text), "--out", str(tmp_path / "r")]))
    assert line == f"error: --data {text}: a file, not a folder"
    assert _one_error_line(runner.invoke(app, ["inspect", str(text)])) == f"error: {text}: a file, not a data folder"


@pytest.mark.parametrize("args, message", [
    (["synth", "--style", "x.jpg", "--out", "o", "--n", "four"], "error: Invalid value for '--n'"),
    (["synth", "--frobnicate"], "error: No such option: --frobnicate"),
    (["frob"], "error: No such command 'frob'."),
    (["synth", "--style", "x.jpg", "--out", "o", "--n"], "error: Option '--n' requires an argument."),
], ids=["not-an-integer", "unknown-option", "unknown-command", "value-missing"])
def test_click_usage_errors_are_one_line_too(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "plategen", *args], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message) and "--help)" in lines[0], result.stderr
    assert not list(tmp_path.iterdir())


def test_every_command_lets_openmp_threads_sleep(monkeypatch):
    """Spinning OpenMP threads made the detector (inspect, synth --plates) 10-20x slower on a shared 2-core
    machine; `plategen` sets the policy for every command before torch loads, unless the user set it."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(sys, "argv", ["plategen", "--version"])
    with pytest.raises(SystemExit):
        run()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(SystemExit):
        run()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
