import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from PIL import Image

from hostile import make_fifo
from plategen.cli import app
from plategen.errors import PlategenError
from plategen import plates as plates_module
from plategen.plates import BYTES_PER_PIXEL_BOUND, clean_text, detect_format, load_plate, load_plates, read_image
from plategen.synth.inputs import load_styles
from plategen.synth.plates import style_plate
from conftest import copy_plates


def test_read_image_takes_a_path_or_a_str_and_names_anything_else(data_dir):
    image = sorted((data_dir / "uc3m-lp" / "images").glob("*.jpg"))[0]
    assert np.array_equal(read_image(str(image)), read_image(image))  # a str: AttributeError 'str' ... 'stat'
    with pytest.raises(PlategenError, match=r"read_image: None is not a file path"):
        read_image(None)


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


def test_yolo_text_and_boxes_are_in_reading_order_top_row_first(imported):
    """UC3M-LP file names carry the plate (type code, then the text): `00011_BN-695-B-D` is the two-row
    plate 695 over BD. Read left to right only, its text would interleave the rows."""
    result = imported("uc3m-lp")
    assert all(p.text == clean_text(p.image_path.stem.split("_", 1)[1][3:]) for p in result.plates)
    two_row = next(p for p in result.plates if p.image_path.name == "00011_BN-695-B-D.jpg")
    top, bottom = two_row.boxes[:3], two_row.boxes[3:]
    assert max(b[1] + b[3] for b in top) < min(b[1] + b[3] for b in bottom)  # box centres: top row above
    for row in (top, bottom):
        assert [b[0] for b in row] == sorted(b[0] for b in row)


def test_text_only_folders_get_estimated_boxes_or_a_listed_reason(imported):
    for name, total in [("ccpd-crops", 800), ("openalpr-us", 620)]:
        result = imported(name)
        assert len(result.plates) + len(result.skipped) + len(result.problems) == total
        assert all(p.box_origin == "estimated" and len(p.boxes) == len(p.text) for p in result.plates)
        assert all("not segmented" in s.message for s in result.skipped)
    # the detector first, classical segmentation when it refuses: measured 787 and 568 (classical alone: 555, 427)
    assert len(imported("ccpd-crops").plates) >= 720
    assert len(imported("openalpr-us").plates) >= 480
    us = imported("openalpr-us")
    assert {"va", "nc", "wi"} <= {p.region for p in us.plates}  # the CSV's extra region column is kept



@pytest.mark.parametrize("source, image", [("uc3m-lp", "images/00011_BN-695-B-D.jpg"),
                                           ("openalpr-us", "images/ak1165.jpg"),
                                           ("ccpd-crops", "images/京PL3N67.jpg")])
def test_one_image_is_imported_as_its_folder_imports_it_decoding_only_that_image(imported, data_dir, source, image,
                                                                                 monkeypatch):
    decoded = []
    read = plates_module.read_image_and_bytes
    monkeypatch.setattr(plates_module, "read_image_and_bytes", lambda path: decoded.append(path) or read(path))
    result = load_plate(data_dir / source / image)
    assert decoded == [data_dir / source / image]
    assert (result.folder, result.format) == (data_dir / source, detect_format(data_dir / source))
    assert result.plates == [p for p in imported(source).plates if p.image_path == data_dir / source / image]
    assert len(result.plates) == 1 and not result.problems and not result.skipped


def test_one_image_brings_only_its_own_problem(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "labels" / f"{STEMS[1]}.txt").unlink()
    (folder / "labels" / f"{STEMS[2]}.txt").write_text("99 0.5 0.5 0.1 0.4\n")
    result = load_plate(folder / "images" / f"{STEMS[1]}.jpg")
    assert not result.plates and not result.skipped
    assert [(p.path.name, p.message) for p in result.problems] == [(f"{STEMS[1]}.jpg", f"no label file {STEMS[1]}.txt "
                                                                    "in labels/")]
    assert [p.text for p in load_plate(folder / "images" / f"{STEMS[0]}.jpg").plates] == ["074CV"]

def _yolo_folder(tmp_path: Path, data_dir: Path, stems: list[str]) -> Path:
    folder = tmp_path / "yolo"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(data_dir / "uc3m-lp" / "classes.txt", folder / "classes.txt")
    for stem in stems:
        shutil.copy(data_dir / "uc3m-lp" / "images" / f"{stem}.jpg", folder / "images")
        shutil.copy(data_dir / "uc3m-lp" / "labels" / f"{stem}.txt", folder / "labels")
    return folder


MAX_PIXELS_ENV = "PLATEGEN_MAX_IMAGE_PIXELS"  # the documented override of the decoded-size limit

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


def test_nothing_usable_is_one_line_with_counts_the_first_reason_and_a_hint(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    for stem in STEMS:
        (folder / "labels" / f"{stem}.txt").write_text("0 0.2 0.5\n")
    with pytest.raises(PlategenError) as err:
        load_plates(folder)
    message = str(err.value)
    assert "\n" not in message
    assert "no usable plates" in message and "3 bad record(s)" in message
    assert "00001_AN-074-C-V.txt:1: expected 5 fields" in message
    assert f"plategen inspect {folder}" in message


def test_strict_failure_is_one_line(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    for stem in STEMS[:2]:
        (folder / "labels" / f"{stem}.txt").write_text("0 0.2 0.5\n")
    with pytest.raises(PlategenError, match="2 bad record") as err:
        load_plates(folder, strict=True)
    assert "\n" not in str(err.value) and "--strict" in str(err.value)


def test_csv_without_needed_columns_names_the_file_and_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("path,text\nimages/a.jpg,ABC123\n")
    with pytest.raises(PlategenError, match=r"labels.csv: missing column\(s\) image_path, plate_text"):
        load_plates(tmp_path)
    # a column given twice: every row was 'bad row: ... plate_text=' (the reader kept the last, empty one)
    (tmp_path / "labels.csv").write_text("image_path,plate_text,plate_text\nimages/a.jpg,ABC123,\n")
    with pytest.raises(PlategenError, match=r"labels.csv: the header names plate_text twice"):
        load_plates(tmp_path)
    (tmp_path / "labels.csv").write_text("image_path,plate_text, plate_text\nimages/a.jpg,ABC123,\n")
    with pytest.raises(PlategenError, match=r"labels.csv: the header names plate_text twice"):  # spaces are not names
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
    with pytest.raises(PlategenError, match=r"^--format '': unknown format"):  # it was read as "detect the format"
        load_plates(data_dir / "uc3m-lp", fmt="")
    with pytest.raises(PlategenError, match="no plates here: no plate images"):
        load_plates(tmp_path)
    (tmp_path / "plates.txt").write_text("1234BCD\n")
    with pytest.raises(PlategenError, match="plates.txt: a file, not a data folder"):
        load_plates(tmp_path / "plates.txt")


def test_a_folder_of_data_folders_names_them(tmp_path, data_dir):
    """A folder holding data folders (one level too high) was "no plates here", naming none of them."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "notes").mkdir()  # a folder of no plates is not named
    (tmp_path / "sources" / "ccpd").symlink_to(data_dir / "ccpd-crops")
    with pytest.raises(PlategenError, match=r"no \*\.csv; the data folder ccpd/ inside it: give it$"):
        load_plates(tmp_path / "sources")
    (tmp_path / "sources" / "us").symlink_to(data_dir / "openalpr-us")
    with pytest.raises(PlategenError, match=r"the data folders ccpd/, us/ inside it: give one$"):
        load_plates(tmp_path / "sources")


def test_a_yolo_folder_without_classes_txt_is_not_read_as_file_names(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "classes.txt").unlink()  # file-name detection would make "00001" the plate text
    with pytest.raises(PlategenError, match=r"labels/ .* no classes.txt"):
        detect_format(folder)
    with pytest.raises(PlategenError, match="no classes.txt"):
        load_plates(folder, fmt="yolo")


def test_format_yolo_on_a_csv_folder_says_what_is_missing(data_dir):
    with pytest.raises(PlategenError, match="openalpr-us: no classes.txt and no labels/"):
        load_plates(data_dir / "openalpr-us", fmt="yolo")


def test_classes_txt_that_is_not_utf8_is_named(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "classes.txt").write_bytes(b"\xff\xfe0\n1\n")
    with pytest.raises(PlategenError, match=r"classes.txt: class list is not UTF-8"):
        load_plates(folder)


def test_a_byte_order_mark_in_classes_txt_or_a_label_file_is_read_past(tmp_path, data_dir):
    """Notepad saves UTF-8 with a byte-order mark: classes.txt was refused ('got ['\\ufeff0']') and a label file's
    first box was a bad record, though the CSV and --texts readers took it."""
    plain = load_plates(_yolo_folder(tmp_path / "plain", data_dir, STEMS))
    folder = _yolo_folder(tmp_path / "bom", data_dir, STEMS)
    for path in [folder / "classes.txt", *sorted((folder / "labels").glob("*.txt"))]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked = load_plates(folder)
    assert not marked.problems
    assert [(p.text, p.boxes) for p in marked.plates] == [(p.text, p.boxes) for p in plain.plates]


def test_a_split_layout_says_where_its_images_are_and_what_to_give(tmp_path, data_dir):
    """Ultralytics keeps images/train and labels/train; plategen said only 'no plate images in images'."""
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    for kind in ("images", "labels"):
        (folder / kind / "train").mkdir()
        for path in (folder / kind).glob("*.*"):
            path.rename(folder / kind / "train" / path.name)
    result = CliRunner().invoke(app, ["inspect", str(folder)])
    assert result.exit_code == 2
    assert "only in its subfolders train (a split layout); give one split as a folder of its own" in result.output


def _csv_folder(tmp_path: Path, data_dir: Path, rows: list[str], header: str = "image_path,plate_text") -> Path:
    folder = tmp_path / "csv"
    (folder / "images").mkdir(parents=True)
    for name in ("ak1165.jpg", "ak399.jpg", "hi1106.jpg"):
        shutil.copy(data_dir / "openalpr-us" / "images" / name, folder / "images")
    (folder / "labels.csv").write_text(header + "\n" + "".join(f"{r}\n" for r in rows))
    return folder


def test_two_label_csvs_are_named_when_the_csv_format_is_asked_for(tmp_path, data_dir):
    """It said 'found 2' and left the user to look for them."""
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,FUW999"])
    shutil.copy(folder / "labels.csv", folder / "more.csv")
    with pytest.raises(PlategenError, match=r"csv: expected one \*\.csv label file, found 2: labels\.csv, more\.csv$"):
        load_plates(folder, "csv")


def test_full_width_plate_text_is_read_as_the_latin_characters_it_shows(tmp_path, data_dir):
    """CJK tools write Latin plate text full width (ＦＵＷ９９９); read as six unknown characters, the plate was
    drawn with Chinese specials in every slot. NFKC makes it FUW999, in CSV texts and in classes.txt alike."""
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,ＦＵＷ９９９"])
    assert [p.text for p in load_plates(folder).plates] == ["FUW999"]
    yolo = _yolo_folder(tmp_path, data_dir, STEMS[:1])
    classes = (yolo / "classes.txt").read_text(encoding="utf-8").splitlines()
    (yolo / "classes.txt").write_text("\n".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c
                                                 for c in classes) + "\n", encoding="utf-8")
    assert [p.text for p in load_plates(yolo).plates] == [p.text for p in load_plates(_yolo_folder(
        tmp_path / "plain", data_dir, STEMS[:1])).plates]


def test_csv_paths_leaving_the_folder_are_refused_unless_allowed(tmp_path, data_dir):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(data_dir / "openalpr-us" / "images" / "hi1106.jpg", outside)
    rows = ["images/ak1165.jpg,FUW999", f"{outside / 'hi1106.jpg'},KTE268", "../outside/hi1106.jpg,KTE268",
            "images/../../outside/hi1106.jpg,KTE268"]
    folder = _csv_folder(tmp_path, data_dir, rows)
    result = load_plates(folder)
    assert [p.image_path.name for p in result.plates] == ["ak1165.jpg"]
    assert [p.line for p in result.problems] == [3, 4, 5]
    assert all("outside the data folder" in p.message and "--allow-outside-paths" in p.message
               for p in result.problems)
    allowed = load_plates(folder, allow_outside=True)
    assert len(allowed.plates) + len(allowed.skipped) == 2  # rows 3-5 name one image: it is read once
    assert [(p.line, "repeats row 3" in p.message) for p in allowed.problems] == [(4, True), (5, True)]


def test_a_nul_byte_in_a_csv_path_is_a_bad_row(tmp_path, data_dir):
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,FUW999", "images/ak1165\0.jpg,FUW999"])
    result = load_plates(folder)
    assert len(result.plates) == 1
    assert [(p.line, "bad row (a NUL byte in image_path)" in p.message) for p in result.problems] == [(3, True)]


def test_a_bad_csv_row_says_what_is_wrong_with_it(tmp_path, data_dir):
    """It quoted the row and said no more: 'AB☃12' left the user to find the snowman."""
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,FUW999", "images/ak1165.jpg,AB☃12",
                                              ",FUW999", "images/ak1165.jpg,"])
    assert [p.message.split(":")[0] for p in load_plates(folder).problems] == [
        "bad row (plate_text has '☃', not a letter or digit)", "bad row (no image_path)", "bad row (no plate_text)"]


def test_a_csv_row_with_more_fields_than_the_header_is_a_bad_row(tmp_path, data_dir):
    """An unquoted comma shifted the fields: 'images/ak399.jpg,ak,alaska,FGJ235' trained as the plate ALASKA."""
    rows = ["images/ak1165.jpg,ak,FUW999", "images/ak399.jpg,ak,alaska,FGJ235", "images/hi1106.jpg,hi,KTE,268"]
    folder = _csv_folder(tmp_path, data_dir, rows, header="image_path,region,plate_text")
    result = load_plates(folder)
    assert [p.text for p in result.plates + result.text_only] == ["FUW999"]
    assert [(p.line, p.message.split(":")[0]) for p in result.problems] == [
        (3, "bad row (4 fields, the header has 3)"), (4, "bad row (4 fields, the header has 3)")]


def test_a_csv_row_ending_in_a_comma_is_read(tmp_path, data_dir):
    """Spreadsheets write a trailing comma: the empty field past the header is no shifted text."""
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,ak,FUW999,", "images/hi1106.jpg,hi,KTE268,"],
                         header="image_path,region,plate_text")
    result = load_plates(folder)
    assert sorted(p.text for p in result.plates + result.text_only) == ["FUW999", "KTE268"] and not result.problems


def test_a_csv_header_with_spaces_after_its_commas_is_read(tmp_path, data_dir):
    """'image_path, region, plate_text' was refused as missing plate_text, while its header named it."""
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg, ak, FUW999"], header="image_path, region, plate_text")
    result = load_plates(folder)
    assert [(p.text, p.region) for p in result.plates + result.text_only] == [("FUW999", "ak")]


def test_a_stray_quote_in_a_csv_is_refused_not_read_as_one_long_row(tmp_path, data_dir):
    """The rows after it became one field of one bad record: train read 9 of 29 plates, exit 0."""
    rows = [f"images/{p.name},{p.stem.upper()}" for p in sorted((data_dir / "openalpr-us" / "images").iterdir())[:8]]
    rows[3] = '"' + rows[3]
    folder = _csv_folder(tmp_path, data_dir, rows)
    with pytest.raises(PlategenError, match=r"labels\.csv:5: a quoted field runs on to line 9, taking the rows "
                                            r"between with it \(a stray \"\?\); fix the quoting$"):
        load_plates(folder)


def test_a_label_file_without_a_readable_image_is_a_listed_problem(tmp_path, data_dir):
    """Its plate was left out without a word: neither a bad record nor a skip."""
    uc3m = data_dir / "uc3m-lp"
    images = sorted((uc3m / "images").iterdir())[:4]
    folder = copy_plates(uc3m, tmp_path / "uc", images)
    (folder / "images" / images[0].name).unlink()
    Image.open(images[1]).save(folder / "images" / f"{images[1].stem}.ppm")
    (folder / "images" / images[1].name).unlink()
    result = load_plates(folder)
    assert len(result.plates) == 2
    assert [(p.path.name, p.message) for p in result.problems] == [
        (f"{images[0].stem}.txt", f"no image {images[0].stem}.* in images/ for this label file"),
        (f"{images[1].stem}.txt", f"its image {images[1].stem}.ppm is not in a format plategen reads "
                                  "(.bmp, .gif, .jfif, .jpe, .jpeg, .jpg, .png, .tif, .tiff, .webp)")]


@pytest.mark.parametrize("suffix, fmt", [(".jfif", "JPEG"), (".jpe", "JPEG"), (".tif", "TIFF"), (".gif", "GIF")])
def test_plates_saved_under_other_image_names_are_read(tmp_path, data_dir, suffix, fmt):
    """A plate named by its text as 京PL3N70.jfif (Chrome's JPEG on Windows) was passed over without a word."""
    real = sorted((data_dir / "ccpd-crops" / "images").iterdir())[:2]
    folder = tmp_path / "cn"
    folder.mkdir()
    shutil.copy(real[0], folder / real[0].name)
    Image.open(real[1]).save(folder / f"{real[1].stem}{suffix}", fmt)
    result = load_plates(folder)
    assert sorted(p.text for p in result.plates + result.text_only) == sorted(p.stem for p in real)
    assert not result.problems


def test_pipes_and_folders_named_like_inputs_are_refused_not_read(tmp_path, data_dir):
    fifo = make_fifo(tmp_path / "plate.png")
    with pytest.raises(PlategenError, match="plate.png: not a regular file"):
        read_image(fifo)
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,FUW999", "images/pipe.jpg,ABC123",
                                              "images/folder.jpg,ABC123"])
    make_fifo(folder / "images" / "pipe.jpg")
    (folder / "images" / "folder.jpg").mkdir()
    result = load_plates(folder)
    assert len(result.plates) == 1
    assert [p.path.name for p in result.problems] == ["pipe.jpg", "folder.jpg"]
    assert "not a regular file" in result.problems[0].message and "is a folder" in result.problems[1].message
    (folder / "labels.csv").rename(folder / "labels.txt")
    make_fifo(folder / "labels.csv")
    with pytest.raises(PlategenError, match="labels.csv: not a regular file"):
        load_plates(folder)


def test_a_pipe_as_a_yolo_label_or_class_list_is_refused(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "labels" / f"{STEMS[0]}.txt").unlink()
    make_fifo(folder / "labels" / f"{STEMS[0]}.txt")
    result = load_plates(folder)
    assert len(result.plates) == 2
    assert [(p.path.name, "not a regular file" in p.message) for p in result.problems] == [(f"{STEMS[0]}.txt", True)]
    (folder / "classes.txt").unlink()
    make_fifo(folder / "classes.txt")
    with pytest.raises(PlategenError, match="classes.txt: not a regular file"):
        load_plates(folder)


def test_a_device_behind_an_image_name_is_refused_not_read(tmp_path, data_dir):
    """/dev/zero never ends: reading it filled memory until MemoryError."""
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,FUW999", "images/zero.jpg,ABC123"])
    os.symlink("/dev/zero", folder / "images" / "zero.jpg")
    result = load_plates(folder)
    assert [(p.path.name, "not a regular file" in p.message) for p in result.problems] == [("zero.jpg", True)]


def test_images_larger_than_the_pixel_limit_are_refused_from_the_header(tmp_path, data_dir, monkeypatch):
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 8000)).save(huge)  # 72 Mpx in a few kB; decoded as RGB it would take 216 MB
    assert huge.stat().st_size < 100_000
    with pytest.raises(PlategenError, match=rf"huge.png: image is 9000x8000 px, more than .*\(set {MAX_PIXELS_ENV}"):
        read_image(huge)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # the audit's case: 400 Mpx, 2.5 GB once decoded as RGB
    with pytest.raises(PlategenError, match="bomb.png: image is larger than .* pixels"):
        read_image(bomb)
    plate = data_dir / "openalpr-us" / "images" / "ak1165.jpg"
    assert read_image(plate).ndim == 3
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(PlategenError, match="ak1165.jpg: image is"):
        read_image(plate)
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(plate.read_bytes())
    size = BYTES_PER_PIXEL_BOUND * 1000 + 2**20 + 1
    os.truncate(padded, size)  # a valid JPEG header, then more bytes than 1000 px can need
    with pytest.raises(PlategenError, match=rf"padded.jpg: file is {size:,} bytes, more than any image"):
        read_image(padded)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(PlategenError, match=MAX_PIXELS_ENV):
        read_image(plate)
    for value in ("0", "-5"):  # refused every image as too large, naming the image, not the setting
        monkeypatch.setenv(MAX_PIXELS_ENV, value)
        with pytest.raises(PlategenError, match=rf"^{MAX_PIXELS_ENV}='{value}': must be 1 or more pixels$"):
            read_image(plate)


def test_a_file_name_with_a_control_character_or_a_non_utf8_byte_is_named_as_such(tmp_path, data_dir):
    """'AB\\n12.jpg' was 'not a plate text (letters and digits, no lower case)', which it is, but for the newline."""
    folder = tmp_path / "cn"
    folder.mkdir()
    plate = sorted((data_dir / "ccpd-crops" / "images").iterdir())[0]
    for name in (plate.name, "AB\n123.jpg", os.fsdecode(b"AB\xff123.jpg")):
        shutil.copy(plate, folder / name)
    reasons = sorted(p.message.split("(")[-1] for p in load_plates(folder).problems)
    assert reasons == ["it holds '\\n')", "it holds a byte that is not UTF-8)"]


def test_a_corrupt_png_is_one_error_and_nothing_on_stderr(tmp_path, capfd):
    buffer = io.BytesIO()
    Image.new("RGB", (60, 20), "white").save(buffer, "PNG")
    broken = tmp_path / "ABC123.png"
    broken.write_bytes(buffer.getvalue()[:60])  # the header survives, the pixel data is cut
    capfd.readouterr()
    with pytest.raises(PlategenError, match="ABC123.png: not a readable image"):
        read_image(broken)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("lines, complaint", [
    (["0", "1", "A", "A", "B"], "'A' on line 4 repeats line 3"),  # every id after it would read one character off
    (["0", "1", "", "A"], "a blank line"),  # line i names class i: a blank line shifts the rest
    (["0", "1", "A", "Ａ"], "'Ａ' (read as 'A') on line 4 repeats line 3"),  # it named 'A' on line 4
    (["0", "1", "㎏"], "got ['㎏']"),  # it named 'kg', what NFKC makes of it
])
def test_a_class_list_that_would_shift_the_labels_is_refused(tmp_path, data_dir, lines, complaint):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "classes.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(PlategenError, match="classes.txt: ") as err:
        load_plates(folder)
    assert complaint in str(err.value) and "\n" not in str(err.value)


def test_trailing_blank_lines_of_the_class_list_are_fine(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "classes.txt").write_text((data_dir / "uc3m-lp" / "classes.txt").read_text() + "\n\n")
    assert [p.text for p in load_plates(folder).plates] == ["074CV", "385MW", "383PV"]


def test_a_labels_file_is_not_taken_for_a_file_name_folder(tmp_path, data_dir):
    """With labels/ a file, the format used to switch to file names and read 00001 as a plate text."""
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    shutil.rmtree(folder / "labels")
    (folder / "labels").write_text("0 0.5 0.5 0.1 0.4\n")
    with pytest.raises(PlategenError, match="labels: a file, not a folder of YOLO label files"):
        load_plates(folder)


@pytest.mark.parametrize("labels", ["/nonexistent/labels", "labels"], ids=["broken-link", "looping-link"])
def test_a_yolo_folder_whose_labels_link_is_broken_is_not_read_as_file_names(tmp_path, data_dir, labels):
    """Read as plates named by file name, a plategen output's 000010.png became the plate text 000010."""
    message = "labels: a broken or looping link, not a folder of YOLO label files"
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    shutil.rmtree(folder / "labels")
    (folder / "labels").symlink_to(labels)
    for i, stem in enumerate(STEMS):  # digit names, as plategen's own output has: they pass as plate texts
        next((folder / "images").glob(f"{stem}.*")).rename(folder / "images" / f"{i:06d}.jpg")
    with pytest.raises(PlategenError, match=re.escape(message)):
        load_plates(folder)


def test_two_images_of_one_name_are_bad_records_not_both_given_its_label(tmp_path, data_dir):
    """000004.png and 000004.jpg: the label file of one also boxed the other, silently."""
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    first, second = (next((folder / "images").glob(f"{stem}.*")) for stem in STEMS[:2])
    second.rename(folder / "images" / f"{first.stem}.png")
    (folder / "labels" / f"{second.stem}.txt").unlink()
    result = load_plates(folder)
    assert [p.text for p in result.plates] == ["383PV"]
    assert sorted(str(p) for p in result.problems) == [
        f"{folder / 'images' / first.name}: shares its label file {first.stem}.txt with {first.stem}.png; rename one image",
        f"{folder / 'images' / first.stem}.png: shares its label file {first.stem}.txt with {first.name}; rename one image"]


@pytest.mark.parametrize("number", ["0.1_5", "\u0669", "nan", "0x1"])
def test_a_label_number_that_is_not_a_plain_ascii_number_is_a_bad_record(tmp_path, data_dir, number):
    """Python reads '0.1_5' and an Arabic-Indic 9 as numbers: such a box was taken where another tool refuses it."""
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "labels" / f"{STEMS[0]}.txt").write_text(f"3 0.5 0.5 {number} 0.4\n", encoding="utf-8")
    result = load_plates(folder)
    assert [p.text for p in result.plates] == ["385MW", "383PV"]
    assert [p.message for p in result.problems] == [f"expected 'class cx cy w h' numbers, got '3 0.5 0.5 {number} 0.4'"]


@pytest.mark.parametrize("separator", ["-", "_", "."])
def test_a_box_of_a_text_separator_class_is_a_bad_record(tmp_path, data_dir, separator):
    """Plates drawn with it carried it into plates.csv, whose reader drops it: the text read back a character short.
    A class list that merely names it still imports the plates that do not box it."""
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "classes.txt").write_text((data_dir / "uc3m-lp" / "classes.txt").read_text() + separator + "\n")
    label = folder / "labels" / f"{STEMS[0]}.txt"
    label.write_text(label.read_text() + "36 0.9 0.5 0.02 0.3\n")
    result = load_plates(folder)
    assert [p.text for p in result.plates] == ["385MW", "383PV"]
    assert [(p.message, p.line) for p in result.problems] == [
        (f"class 36 is {separator!r} (classes.txt), which separates groups in plate texts and is no character of them",
         len(label.read_text().splitlines()))]


def test_a_box_listed_twice_is_a_bad_record(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    label = folder / "labels" / f"{STEMS[0]}.txt"
    first = label.read_text().splitlines()[0]
    original = label.read_text()
    box = tuple(float(v) for v in first.split()[1:])
    label.write_text(original + f"{first}\n")
    result = load_plates(folder)
    assert [p.image_path.stem for p in result.plates] == STEMS[1:]
    assert [(p.path.name, p.line, p.message) for p in result.problems] == [
        (label.name, 6, f"box {box} is the box of line 1 again ('0' over '0'; one box per character)")]
    # the same box under another class, or its numbers spelt otherwise: the plate read 0174CV for 074CV, exit 0
    cx, cy, w, h = box
    for twin in (f"1 {cx} {cy} {w} {h}", f"0 {cx:.3f}0 {cy} {w * 0.95} {h}"):
        label.write_text(original + twin + "\n")
        result = load_plates(folder)
        assert [p.image_path.stem for p in result.plates] == STEMS[1:]
        assert [(p.line, "is the box of line 1 again" in p.message) for p in result.problems] == [(6, True)]
    # two boxes of 1e-200: their areas underflow to 0 (the overlap test divided by zero); each is less than a pixel
    label.write_text("0 0.5 0.5 1e-200 1e-200\n1 0.5 0.5 1e-200 1e-200\n")
    result = load_plates(folder)
    assert [p.image_path.stem for p in result.plates] == STEMS[1:]
    assert ["covers less than a pixel" in p.message for p in result.problems] == [True]


def test_a_box_covering_less_than_a_pixel_is_a_bad_record_and_one_past_the_edge_keeps_its_inside(tmp_path, data_dir):
    """cx = 1.0 with a tiny width: synth --plates crashed in OpenCV on the box of no pixels, and a box kept at one
    pixel put a character in the text that the image does not show. A real box running past the edge keeps the part
    inside the image."""
    folder = _yolo_folder(tmp_path, data_dir, STEMS[:2])
    sliver, past = (folder / "labels" / f"{stem}.txt" for stem in STEMS[:2])
    sliver.write_text(sliver.read_text() + "0 1.0 0.5 0.001 0.4\n")
    past.write_text(past.read_text() + "0 1.0 0.5 0.1 0.4\n")
    result = load_plates(folder)
    size = "x".join(map(str, Image.open(folder / "images" / f"{STEMS[0]}.jpg").size))
    assert [(p.path.stem, p.message.split(" (")[0]) for p in result.problems] == [
        (STEMS[0], f"the box of '0' covers less than a pixel of the {size} image")]
    (plate,) = result.plates
    width, height = Image.open(plate.image_path).size
    assert all(0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height for x0, y0, x1, y1 in plate.boxes)
    assert len(style_plate(plate).layout.char_slots) == len(plate.text)


def test_a_box_of_no_width_is_named_so(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS[:2])
    label = folder / "labels" / f"{STEMS[0]}.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.0 0.4\n")
    (problem,) = load_plates(folder).problems
    assert (problem.line, problem.message) == (6, "box (0.5, 0.5, 0.0, 0.4) has no width or height")


def test_an_image_listed_twice_in_a_csv_is_read_once(tmp_path, data_dir):
    folder = _csv_folder(tmp_path, data_dir, ["images/ak1165.jpg,FUW999", "images/ak1165.jpg,ZZZ999",
                                              "./images/ak1165.jpg,FUW999"])
    result = load_plates(folder)
    assert len(result.plates) + len(result.skipped) == 1
    assert [(p.line, p.message) for p in result.problems] == [
        (3, "image_path 'images/ak1165.jpg' repeats row 2"), (4, "image_path './images/ak1165.jpg' repeats row 2")]


def test_an_image_far_taller_than_wide_is_a_bad_record_not_a_crash(tmp_path, data_dir):
    """An 8x60000 image among text-only plates: segmentation scaled its width to 0 and every command died in OpenCV."""
    folder = tmp_path / "cn"
    folder.mkdir()
    real = sorted((data_dir / "ccpd-crops" / "images").iterdir())[:2]
    for path in real:
        shutil.copy(path, folder / path.name)
    Image.new("RGB", (8, 60000)).save(folder / "ABC123.png")
    result = load_plates(folder)
    assert sorted(p.image_path.name for p in result.plates + result.text_only) == [p.name for p in real]
    assert [str(p) for p in result.problems] == [
        f"{folder / 'ABC123.png'}: image is 8x60000 px, more than 4x taller than wide: no plate"]


def test_an_image_too_small_for_a_plate_is_a_bad_record_not_characters(tmp_path, data_dir, imported):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    Image.new("RGB", (1, 1)).save(folder / "images" / f"{STEMS[0]}.jpg")
    result = load_plates(folder)
    assert [p.image_path.stem for p in result.plates] == STEMS[1:]
    assert [str(p) for p in result.problems] == [f"{folder / 'images' / STEMS[0]}.jpg: image is 1x1 px, too small for a plate"]
    assert result.left_out() == [f"{folder}: 1 bad record(s) left out; first: {result.problems[0]} "
                                 "(plategen inspect lists them)"]
    assert imported("uc3m-lp").left_out() == []


def test_a_folder_named_like_an_input_is_named_with_the_right_words(tmp_path, data_dir):
    folder = _yolo_folder(tmp_path, data_dir, STEMS)
    (folder / "labels" / f"{STEMS[0]}.txt").unlink()
    (folder / "labels" / f"{STEMS[0]}.txt").mkdir()
    (folder / "images" / f"{STEMS[1]}.jpg").unlink()
    (folder / "images" / f"{STEMS[1]}.jpg").mkdir()
    messages = sorted(p.message for p in load_plates(folder).problems)
    assert messages == ["is a folder, not a label file", "is a folder, not an image file"]


def test_a_folder_with_nothing_to_list_says_what_is_missing(tmp_path, data_dir):
    """Both used to say "0 bad record(s), 0 not segmented", which names no cause."""
    folder = _yolo_folder(tmp_path, data_dir, [])
    with pytest.raises(PlategenError) as err:
        load_plates(folder)
    assert str(err.value) == f"{folder}: no plates (format yolo): no plate images (.jpg, .png, ...) in {folder / 'images'}"
    csv_folder = _csv_folder(tmp_path, data_dir, [])
    with pytest.raises(PlategenError) as err:
        load_plates(csv_folder)
    assert str(err.value) == f"{csv_folder}: no plates (format csv): its CSV has no rows"


def test_a_synth_output_is_named_as_one_not_read_as_a_plate_csv(tmp_path):
    """Its manifest.csv used to be read as a plate CSV: "missing column(s) plate_text"."""
    (tmp_path / "manifest.csv").write_text("id,label,path\n", encoding="utf-8")
    (tmp_path / "meta.json").write_text('{"tool": "plategen synth", "status": "complete"}', encoding="utf-8")
    with pytest.raises(PlategenError, match="a plategen synth output of single characters, not a data folder"):
        load_plates(tmp_path)
    # whole plates in shards: it said "of single characters or of shards ... synth --plates writes one"
    (tmp_path / "meta.json").write_text('{"tool": "plategen synth", "plates": true, "format": "shards"}',
                                        encoding="utf-8")
    with pytest.raises(PlategenError, match=r"a plategen synth --plates output in WebDataset shards, which only a "
                                            r"shard loader reads \(webdataset\); --format files writes"):
        load_plates(tmp_path)


def test_a_folder_reads_only_plate_texts_as_file_names(data_dir, tmp_path):
    """A folder of photos named `photo.jpg`, `plate.jpg` or by a camera (`IMG_0001.jpg`) is not a folder of
    plates called PHOTO, PLATE and IMG: a wrong label is worse than a missing one. The same rule as a single
    style image's name."""
    real = data_dir / "ccpd-crops" / "images" / "皖A0V262.jpg"
    cameras = ["DSC01234.jpg", "DSCN0001.JPG", "IMG_0001.jpg", "PXL_20260101_120000.jpg", "20260101_123456.jpg",
               "P1010001.JPG", "SAM_0001.JPG", "IMG20260101123456.jpg"]
    # time stamps and CCPD's own names cleaned to 8 and 5 digits that were taken as the plates' texts
    dates = ["2023-05-01_14-22-33.jpg", "2023.05.01 14.22.33.jpg", "2023_05_01_14_22_33.jpg", "01-05-2023.jpg",
             "2023-5-1.jpg"]
    ccpd = ["025-95_113-154&383_386&473-386&438_114&473_115&388_386&383-0_0_22_27_27_33_16-37-15.jpg"]
    # plate texts that start like a camera's name (DSC1234, DJI0042: US ABC-1234 plates)
    plates = ["皖A0V262.jpg", "1234BCD_1.jpg", "VID4521.jpg", "PANO123.jpg", "DSC1234.jpg", "DJI0042.jpg"]
    for name in (*plates, "photo.jpg", "plate.jpg", "Front.jpg", "00002_AN--385-MW.jpg", *cameras, *dates, *ccpd,
                 ".FHG521.jpg"):
        shutil.copy(real, tmp_path / name)
    (tmp_path / "._皖A0V262.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # macOS metadata
    result = load_plates(tmp_path)
    assert sorted(p.text for p in result.plates) == ["1234BCD", "DJI0042", "DSC1234", "PANO123", "VID4521", "皖A0V262"]
    named = sorted(p.path.name for p in result.problems)  # dotfiles are neither plates nor bad records
    assert named == sorted(["Front.jpg", "photo.jpg", "plate.jpg", "00002_AN--385-MW.jpg", *cameras, *dates, *ccpd])
    assert all("not a plate text" in p.message for p in result.problems)
    assert all("a camera's name" in p.message for p in result.problems if p.path.name in cameras)
    assert all("a date" in p.message for p in result.problems if p.path.name in dates)
    assert all("as CCPD's own file names do" in p.message for p in result.problems if p.path.name in ccpd)
    styles = [Path(style.name).name for style in load_styles([tmp_path])]  # character styles: any image, no dotfile
    assert sorted(styles) == sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))


def test_the_images_folder_of_a_data_folder_is_not_read_as_plates_named_by_text(data_dir):
    """uc3m-lp/images alone read as 2,023 plates called 00001, 00002, ...: its labels are in uc3m-lp."""
    for source in ("uc3m-lp", "openalpr-us"):
        with pytest.raises(PlategenError, match=f"{source}/images: the images/ of the data folder .*{source}"):
            load_plates(data_dir / source / "images")
    assert load_plates(data_dir / "ccpd-crops" / "images").format == "filename"  # no labels beside it


def test_an_images_folder_is_refused_only_beside_real_labels_and_however_spelled(data_dir, tmp_path, monkeypatch):
    images = tmp_path / "mine" / "images"
    images.mkdir(parents=True)
    shutil.copy(data_dir / "ccpd-crops" / "images" / "皖A0V262.jpg", images)
    (tmp_path / "mine" / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")  # not a plate CSV
    assert [p.text for p in load_plates(images).plates] == ["皖A0V262"]
    monkeypatch.chdir(data_dir / "uc3m-lp" / "images")
    with pytest.raises(PlategenError, match="the images/ of the data folder"):
        load_plates(Path("."))
