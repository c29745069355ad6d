import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plategen.charset import parse_charset
from plategen.synth.compose import erase_characters, ink_colour, place_characters
from plategen.dataset import crop_character
from plategen.errors import PlategenError
from plategen.synth.exports import (FinishedPlate, require_lprnet_names, write_lprnet, write_paddleocr,
                                    write_plate_folder)
from plategen.layout import draw_texts, layout_of, one_row
from plategen.plates import clean_text, load_plates, read_image
from plategen.synth.writers import decode_png, encode_png

STYLES = [("uc3m-lp", "00001_AN-074-C-V.jpg"), ("uc3m-lp", "00011_BN-695-B-D.jpg"),
          ("ccpd-crops", "京PL3N67.jpg"), ("openalpr-us", "ak1165.jpg")]
CLASSES = parse_charset("0-9A-Z") + list("京沪浙")


@pytest.fixture(scope="module")
def plates(imported) -> list[FinishedPlate]:
    """Three new plates per style plate, composed from the plate's own character crops."""
    rng = np.random.default_rng(0)
    finished = []
    for source, name in STYLES:
        plate = next(p for p in imported(source).plates if p.image_path.name == name)
        image = read_image(plate.image_path)
        layout, text = layout_of(plate, (image.shape[1], image.shape[0]))
        boxes = [s.box for s in layout.char_slots]
        crops = {ch: crop_character(image, box) for ch, box in zip(text, boxes)}
        background = erase_characters(image, boxes)
        for new_text in draw_texts(layout, 3, sorted(crops), rng):
            composed = place_characters(background, [crops[c] for c in new_text], boxes, ink_colour(image, boxes))
            finished.append(FinishedPlate(f"{len(finished):06d}", encode_png(composed), new_text, tuple(boxes)))
    return finished


@pytest.fixture(scope="module")
def exported(plates, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plates") / "out"
    write_plate_folder(out, plates, CLASSES)
    return out


def test_the_export_reads_back_as_a_data_folder_with_exact_texts_and_boxes(plates, exported):
    result = load_plates(exported)
    assert result.format == "yolo" and not result.problems and not result.skipped
    assert len(result.plates) == len(plates) == 12
    by_id = {p.image_path.stem: p for p in result.plates}
    for plate in plates:
        read = by_id[plate.id]
        assert read.box_origin == "annotated"
        assert read.image_path.read_bytes() == plate.png
        assert (read.text, read.boxes) == (plate.text, plate.boxes)  # reading order, two-row plates too
    two_row = plates[3]
    label = (exported / "labels" / f"{two_row.id}.txt").read_text().splitlines()
    assert [CLASSES[int(line.split()[0])] for line in label] == list(two_row.text)  # label lines keep reading order


def test_plates_csv_and_plate_config_describe_the_folder(plates, exported, tmp_path):
    with (exported / "plates.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["image_path"], r["plate_text"]) for r in rows] == [(f"images/{p.id}.png", p.text) for p in plates]
    assert rows[6]["plate_text"][0] in "京沪浙"  # CCPD texts start with their province
    config = dict(line.split(": ", 1) for line in (exported / "plate_config.yaml").read_text(encoding="utf-8").splitlines())
    assert config["alphabet"] == '"' + "".join(CLASSES) + '_"' and config["pad_char"] == '"_"'
    assert config["max_plate_slots"] == "7"
    write_plate_folder(tmp_path, plates[:3], CLASSES)  # one style: the model input is that plate's size
    config = dict(line.split(": ", 1) for line in (tmp_path / "plate_config.yaml").read_text(encoding="utf-8").splitlines())
    assert (config["img_width"], config["img_height"], config["max_plate_slots"]) == ("160", "74", "5")
    assert (exported / "classes.txt").read_text(encoding="utf-8").split() == CLASSES


def test_fast_plate_ocrs_own_validator_passes_the_export(exported, tmp_path):
    command = [sys.executable, "-m", "fast_plate_ocr.cli.validate_dataset",
               "-a", "plates.csv", "--plate-config-file", "plate_config.yaml"]
    run = subprocess.run(command, cwd=exported, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Errors   │     0" in run.stdout
    short = tmp_path / "plate_config.yaml"  # the validator does fail a config the plates do not fit
    short.write_text((exported / "plate_config.yaml").read_text(encoding="utf-8").replace(
        "max_plate_slots: 7", "max_plate_slots: 6"), encoding="utf-8")
    command[-1] = str(short)
    assert subprocess.run(command, cwd=exported, capture_output=True, text=True, timeout=300).returncode == 1


def test_lprnet_export_is_94x24_images_named_by_their_text(plates, tmp_path):
    write_lprnet(tmp_path / "lprnet", plates)
    files = sorted((tmp_path / "lprnet").iterdir())
    assert len(files) == len(plates)
    assert sorted(clean_text(f.stem.split("_")[0]) for f in files) == sorted(p.text for p in plates)
    assert all(decode_png(f.read_bytes()).shape == (24, 94, 3) for f in files)


def test_lprnet_export_lays_a_two_row_plates_rows_side_by_side_top_row_left(tmp_path):
    """LPRNet reads one row: a two-row plate squeezed whole into 24 pixels had its top row in the upper half of
    every column. Here the top row's band is dark and the bottom row's light: the export is dark left, light right."""
    image = np.full((40, 60, 3), 200, np.uint8)
    image[:20] = 50
    boxes = ((5, 2, 25, 18), (30, 2, 50, 18), (5, 22, 20, 38), (22, 22, 37, 38), (39, 22, 54, 38))
    plate = FinishedPlate("000000", encode_png(image), "12ABC", boxes)
    write_lprnet(tmp_path, [plate])
    small = decode_png((tmp_path / "12ABC_000000.png").read_bytes())
    assert small.shape == (24, 94, 3)
    assert np.ptp(small[..., 0], axis=0).max() <= 1  # no column holds both rows
    assert (small[:, :40] == 50).all() and (small[:, -40:] == 200).all()


def test_paddleocr_export_lists_every_plate_as_one_text_line_with_a_dictionary(plates, exported, tmp_path):
    """PaddleOCR's recognisers read one line: a two-row plate is listed as its rows side by side (`one_row`, as
    the LPRNet export draws it), a one-row plate as the image itself."""
    written = write_paddleocr(exported, plates, CLASSES)
    assert written == [exported / "rec_gt.txt", exported / "dict.txt", exported / "paddleocr"]
    lines = [tuple(line.split("\t")) for line in (exported / "rec_gt.txt").read_text(encoding="utf-8").splitlines()]
    two_row = [p.id for p in plates if p.boxes == plates[3].boxes]
    assert len(two_row) == 3
    assert lines == [(f"paddleocr/{p.id}.png" if p.id in two_row else f"images/{p.id}.png", p.text) for p in plates]
    for (path, _), plate in zip(lines, plates):
        laid, _ = one_row(decode_png(plate.png), plate.boxes)
        assert np.array_equal(decode_png((exported / path).read_bytes()), laid)
        if plate.id in two_row:  # one row: about half the height, wider than the plate
            drawn = decode_png(plate.png)
            assert laid.shape[0] < 0.6 * drawn.shape[0] and laid.shape[1] > drawn.shape[1]
    assert (exported / "dict.txt").read_text(encoding="utf-8").splitlines() == CLASSES
    assert write_paddleocr(tmp_path, [p for p in plates if p.id not in two_row], CLASSES)[2:] == []
    assert not (tmp_path / "paddleocr").exists()


@pytest.mark.parametrize("change, message", [
    (dict(text="0A1"), "plate 000000: A not in the classes '0123456789'"),
    (dict(boxes=((0, 0, 5, 5), (5, 0, 10, 5))), "plate 000000: text '012' has 3 characters but 2 boxes"),
    (dict(boxes=((0, 0, 5, 5), (5, 0, 10, 5), (10, 0, 40, 5))), r"box \(10, 0, 40, 5\) lies outside its 30x10 image"),
    (dict(png=b"GIF89a" + bytes(30)), "plate 000000: image bytes are not a PNG"),
])
def test_a_plate_that_cannot_be_labelled_is_refused_before_anything_is_written(tmp_path, change, message):
    good = dict(id="000000", png=encode_png(np.zeros((10, 30, 3), np.uint8)), text="012",
                boxes=((0, 0, 5, 5), (5, 0, 10, 5), (10, 0, 15, 5)))
    out = tmp_path / "out"
    with pytest.raises(PlategenError, match=message):
        write_plate_folder(out, [FinishedPlate(**{**good, **change})], list("0123456789"))
    assert not out.exists()


def test_an_lprnet_name_a_file_system_cannot_hold_is_refused_before_any_plate():
    """100 provinces on one plate made a 311-byte name: OSError mid-run, a half-written folder, and a --resume that
    failed the same way. 241 bytes (255 less the temporary name's 14) is the longest that works."""
    fits = "A" * (241 - len("_000000.png"))
    require_lprnet_names([fits, "ABC"], 6)
    with pytest.raises(PlategenError, match=r"--export lprnet: .* 242-byte file name, over the 241"):
        require_lprnet_names(["ABC", fits + "B"], 6)
    with pytest.raises(PlategenError, match=r"\(81 characters\) makes a 254-byte"):
        require_lprnet_names(["京" * 81], 6)  # three bytes a character in UTF-8


def test_an_lprnet_name_plategen_would_not_read_back_is_refused():
    """A lower-case text was written as l34FJ_000000.png, which plategen's own reader (like LPRNet's) refuses."""
    with pytest.raises(PlategenError, match=r"'l34FJ' would not read back as one \(letters and digits, no lower case\)"):
        require_lprnet_names(["1234BCD", "l34FJ"], 6)
    require_lprnet_names(["1234BCD", "京A12345", "IMG0001"], 6)
