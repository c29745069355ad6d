import shutil
from pathlib import Path

import pytest

from plategen.errors import PlategenError
from plategen.plates import detect_format, load_plates


def test_formats_are_detected_from_the_folders(data_dir):
    assert detect_format(data_dir / "uc3m-lp") == "yolo"
    assert detect_format(data_dir / "ccpd-crops") == "filename"
    assert detect_format(data_dir / "openalpr-us") == "csv"


def test_yolo_import_reads_every_annotated_character(imported):
    result = imported("uc3m-lp")
    assert len(result.plates) == 2056 and not result.problems
    assert sum(len(p.text) for p in result.plates) == 10299
    first = next(p for p in result.plates if p.image_path.name == "00001_AN-074-C-V.jpg")
    assert first.text == "074CV" and first.box_origin == "annotated"
    xs = [b[0] for b in first.boxes]
    assert xs == sorted(xs)  # reading order follows the boxes, not the file's line order
    assert all(len(p.boxes) == len(p.text) for p in result.plates)
    assert len({p.sha256 for p in result.plates}) > 2000


def test_text_only_folders_get_estimated_boxes_or_a_listed_reason(imported):
    for name, total in [("ccpd-crops", 800), ("openalpr-us", 620)]:
        result = imported(name)
        assert len(result.plates) + len(result.skipped) + len(result.problems) == total
        assert all(p.box_origin == "estimated" and len(p.boxes) == len(p.text) for p in result.plates)
        assert all("not segmented" in s.message for s in result.skipped)
    us = imported("openalpr-us")
    assert {"va", "nc", "wi"} <= {p.region for p in us.plates}  # the CSV's extra region column is kept


def _yolo_folder(tmp_path: Path, data_dir: Path, stems: list[str]) -> Path:
    folder = tmp_path / "yolo"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(data_dir / "uc3m-lp" / "classes.txt", folder / "classes.txt")
    for stem in stems:
        shutil.copy(data_dir / "uc3m-lp" / "images" / f"{stem}.jpg", folder / "images")
        shutil.copy(data_dir / "uc3m-lp" / "labels" / f"{stem}.txt", folder / "labels")
    return folder


STEMS = ["00001_AN-074-C-V", "00002_AN--385-MW", "00002_AN-38-3-PV"]


def test_bad_records_are_listed_with_file_and_line_and_the_import_goes_on(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "labels" / f"{STEMS[0]}.txt").write_text("0 0.2 0.5 0.1 0.4\n99 0.5 0.5 0.1 0.4\n")
    (folder / "images" / f"{STEMS[1]}.jpg").write_bytes(b"not a jpeg")
    result = load_plates(folder)
    assert [p.image_path.stem for p in result.plates] == [STEMS[2]]
    messages = sorted(str(p) for p in result.problems)
    assert any(f"{STEMS[0]}.txt:2" in m and "class 99 out of range" in m for m in messages)
    assert any(f"{STEMS[1]}.jpg" in m and "not a readable image" in m for m in messages)
    with pytest.raises(PlategenError, match="--strict"):
        load_plates(folder, strict=True)


def test_nothing_usable_is_an_error_naming_the_folder(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS[:1])
    (folder / "labels" / f"{STEMS[0]}.txt").write_text("0 0.2 0.5\n")
    with pytest.raises(PlategenError, match=r"no usable plates[\s\S]*00001_AN-074-C-V.txt:1: expected 5 fields"):
        load_plates(folder)


def test_csv_without_needed_columns_names_the_file_and_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("path,text\nimages/a.jpg,ABC123\n")
    with pytest.raises(PlategenError, match=r"labels.csv: missing column\(s\) image_path, plate_text"):
        load_plates(tmp_path)


def test_csv_row_with_missing_image_is_a_listed_problem(tmp_path, data_dir):
    src = data_dir / "openalpr-us" / "images"
    (tmp_path / "images").mkdir()
    for name in ["ak1165.jpg", "hi1106.jpg"]:
        shutil.copy(src / name, tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text(
        "image_path,plate_text,extra\nimages/ak1165.jpg,FUW999,x\nimages/gone.jpg,ABC123,y\nimages/hi1106.jpg,KTE 268,z\n")
    result = load_plates(tmp_path)
    assert any("gone.jpg" in str(p) and "cannot read image" in str(p) for p in result.problems)
    assert {p.text for p in result.plates} <= {"FUW999", "KTE268"}  # separators are dropped
    assert len(result.plates) + len(result.skipped) == 2


def test_missing_folder_and_unknown_format_are_clear_errors(tmp_path, data_dir):
    with pytest.raises(PlategenError, match="no such data folder"):
        load_plates(tmp_path / "nowhere")
    with pytest.raises(PlategenError, match="unknown format"):
        load_plates(data_dir / "uc3m-lp", fmt="xml")
    with pytest.raises(PlategenError, match="cannot tell the label format"):
        load_plates(tmp_path)
