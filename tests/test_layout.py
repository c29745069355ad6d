import re
from collections import Counter

import numpy as np
import pytest

from plategen.charset import CHINESE_PROVINCES, parse_charset
from plategen.errors import PlategenError
from plategen.glyphs import frame_square
from plategen.layout import (MEND_REACH, READ_AS_MISSING, SEPARATOR_WIDTH, PlateLayout, Slot, draw_texts, layout_of,
                             one_row, parse_pattern, read_texts)
from plategen.plates import read_image

CHARS = parse_charset("0-9A-Z")


def _plate(result, name):
    return next(p for p in result.plates if p.image_path.name == name)


def _layout(plate):
    height, width = read_image(plate.image_path).shape[:2]
    return layout_of(plate, (width, height))


def test_spanish_plates_read_top_row_first_and_only_two_row_plates_split(imported):
    result = imported("uc3m-lp")
    layout, text = _layout(_plate(result, "00001_AN-074-C-V.jpg"))
    assert (layout.kinds, text, layout.size) == ("DDDLL", "074CV", (160, 74))
    assert [s.box for s in layout.slots] == list(_plate(result, "00001_AN-074-C-V.jpg").boxes)

    two_row = _plate(result, "00011_BN-695-B-D.jpg")
    layout, text = _layout(two_row)
    assert (layout.kinds, text) == ("DDD/LL", "695BD") and text == two_row.text  # the importer's reading order
    assert [s.box for s in layout.slots] == list(two_row.boxes)
    assert [s.row for s in layout.slots] == [0, 0, 0, 1, 1]
    # a tilted one-row plate has spread-out box centres too; UC3M-LP's type code says which are two-row
    rows = {p.image_path.name: layout_of(p, (1, 1))[0].rows for p in result.plates}
    assert {name for name, r in rows.items() if r == 2} == {name for name in rows if name.split("_")[1][0] == "B"}


def test_chinese_plates_start_with_a_province_and_carry_a_separator_without_a_box_of_its_own(imported):
    plate = _plate(imported("ccpd-crops"), "京PL3N67.jpg")
    layout, text = _layout(plate)
    assert (layout.kinds, text) == ("PL.LDLDD", "京PL3N67")
    separator = layout.slots[2]
    assert separator.kind == "separator" and len(layout.char_slots) == len(text) == 7
    assert [s.box for s in layout.char_slots] == list(plate.boxes)
    assert separator.box[0] == plate.boxes[1][2] and separator.box[2] == plate.boxes[2][0]


def test_us_plates_keep_the_letter_and_digit_positions_of_their_text(imported):
    layout, text = _layout(_plate(imported("openalpr-us"), "ak1165.jpg"))
    assert (layout.kinds, text) == ("LLLDDD", "FUW999")


def test_a_pattern_with_the_style_plates_counts_takes_its_boxes(imported):
    style, _ = _layout(_plate(imported("ccpd-crops"), "京PL3N67.jpg"))
    compact, spaced = parse_pattern("PL.DDDDD", style), parse_pattern("P L . D D D D D", style)
    assert compact == spaced
    assert compact.kinds == "PL.DDDDD"
    assert [s.box for s in compact.slots] == [s.box for s in style.slots]


def test_a_pattern_with_other_counts_is_spread_over_the_style_plates_print_area(imported):
    """Seven slots where the plate shows five (its masks hide two) fill its print area evenly, each no wider than
    the plate's own characters."""
    style, _ = _layout(_plate(imported("uc3m-lp"), "00023_AD-0-54-PX.jpg"))
    layout = parse_pattern("DDDD LLL", style)
    assert layout.kinds == "DDDDLLL" and layout.size == style.size
    xs = [(s.box[0], s.box[2]) for s in layout.slots]
    left, right = min(s.box[0] for s in style.slots), max(s.box[2] for s in style.slots)
    assert left <= xs[0][0] <= left + 2 and right - 2 <= xs[-1][1] <= right
    assert all(a[1] <= b[0] for a, b in zip(xs, xs[1:]))  # left to right, no overlap
    widths = [x1 - x0 for x0, x1 in xs]
    assert max(widths) - min(widths) <= 1
    assert max(widths) <= np.median([s.box[2] - s.box[0] for s in style.slots]) + 1


def test_a_pattern_whose_slots_would_overlap_their_characters_is_refused(imported):
    """Slots down to 10% of the row's height were taken: seven digits in 11 px slots where the plate's characters are
    24 px wide came out as one blob (a hostile try), 41 on the Spanish example as 3 px slivers. A slot of a spread
    pattern is at least half the style plate's own character width, or the pattern is refused."""
    style, _ = _layout(_plate(imported("uc3m-lp"), "00023_AD-0-54-PX.jpg"))
    own = np.median([s.box[2] - s.box[0] for s in style.char_slots])
    taken = []
    for n in range(6, 30):
        try:
            layout = parse_pattern("D" * n, style)
        except PlategenError as exc:
            assert f"{n} characters in row 1 leave each" in str(exc) and "drawn over each other" in str(exc)
            continue
        taken.append(n)
        assert min(s.box[2] - s.box[0] for s in layout.char_slots) >= 0.5 * own
    assert taken and taken == list(range(6, taken[-1] + 1)) and taken[-1] < 29  # the densest refused, not the rest


def test_a_shorter_pattern_keeps_the_plates_character_size_centred_on_its_print_area(imported):
    """'DDD' on a plate of five characters spread three slots over the whole print area, and a glyph is framed by
    its box's longer side, so each digit came out taller than the plate. They now take the plate's own width,
    height and pitch (its neighbours' step, not a step over a masked character), centred."""
    style, _ = _layout(_plate(imported("uc3m-lp"), "00023_AD-0-54-PX.jpg"))  # 0 [mask] 5 4 [mask] P X
    own = sorted(style.slots, key=lambda s: s.box[0])
    width = np.median([s.box[2] - s.box[0] for s in own])
    centres = [(s.box[0] + s.box[2]) / 2 for s in own]
    neighbours = [centres[2] - centres[1], centres[4] - centres[3]]  # 5 4 and P X: no mask between them
    layout = parse_pattern("DDD", style)
    boxes = [s.box for s in layout.slots]
    assert all(abs((x1 - x0) - width) <= 1 for x0, _, x1, _ in boxes)
    assert max(frame_square(b)[2] for b in boxes) <= max(frame_square(s.box)[2] for s in own)  # glyphs no larger
    steps = np.diff([(b[0] + b[2]) / 2 for b in boxes])
    assert all(min(neighbours) - 1 <= step <= max(neighbours) + 1 for step in steps), (steps, neighbours)
    assert (boxes[0][0] + boxes[-1][2]) / 2 == pytest.approx((own[0].box[0] + own[-1].box[2]) / 2, abs=1)


def test_a_gap_mark_spaces_two_groups_as_a_spanish_plate_does(imported):
    """'DDDD LLL' spread seven equal slots with no space between the digits and the letters, which every Spanish
    plate has; '_' adds a blank of a separator's width there, with no slot and nothing printed."""
    style, _ = _layout(_plate(imported("uc3m-lp"), "00023_AD-0-54-PX.jpg"))
    gapped, even = parse_pattern("DDDD_LLL", style), parse_pattern("DDDD LLL", style)
    assert gapped.kinds == even.kinds == "DDDDLLL" and len(gapped.slots) == 7
    centres = [(s.box[0] + s.box[2]) / 2 for s in gapped.slots]
    steps = np.diff(centres)
    assert steps[3] - np.median(np.delete(steps, 3)) == pytest.approx(SEPARATOR_WIDTH * np.median(steps), abs=1.5)
    # the same print area: the gap narrows the slots' room, not the row
    assert abs(gapped.slots[0].box[0] - even.slots[0].box[0]) <= 2
    assert abs(gapped.slots[-1].box[2] - even.slots[-1].box[2]) <= 2
    own = parse_pattern("DDD_LL", style)  # as many slots as the plate's own boxes: its own spacing, gap or not
    assert own == parse_pattern("DDDLL", style)


def test_bad_patterns_are_refused_with_what_is_wrong(imported):
    style, _ = _layout(_plate(imported("uc3m-lp"), "00001_AN-074-C-V.jpg"))
    with pytest.raises(PlategenError, match=r"unknown mark\(s\) X"):
        parse_pattern("DDXLL", style)
    with pytest.raises(PlategenError, match=r"2 row\(s\), but the style plate has 1"):
        parse_pattern("DDD/LL", style)
    with pytest.raises(PlategenError, match="at least one character slot"):
        parse_pattern("DDD/.", style)
    for edge in (".DDDLL", "DDDLL.", "DDD._LL_.", "_.DDDLL"):  # drawn inside the first box's gap, or stuck to the last box
        with pytest.raises(PlategenError, match=r"a separator \(\.\) stands between two characters"):
            parse_pattern(edge, style)
    with pytest.raises(PlategenError, match=r"'\[0-9\]\[0-9\].*\.\.\.': 5000 characters in row 1") as refused:
        parse_pattern("[0-9]" * 5000, style)  # the message repeated the whole pattern: a 25 KB line
    assert len(str(refused.value)) < 250


def _one_row(n: int) -> PlateLayout:
    """A synthetic one-row layout of n boxes, for tests about texts rather than images."""
    return PlateLayout((20 * n, 30), tuple(Slot((20 * i, 5, 20 * i + 18, 25), 0, "digit") for i in range(n)))


def test_drawn_texts_are_balanced_per_slot_kind_and_fixed_by_the_seed():
    layout = parse_pattern("PL.DDDDD", _one_row(7))
    chars = CHARS + list("京沪浙")
    texts = draw_texts(layout, 300, chars, np.random.default_rng(1))
    assert len(texts) == 300 and all(len(t) == 7 for t in texts)
    provinces = Counter(t[0] for t in texts)
    letters = Counter(t[1] for t in texts)
    digits = Counter(c for t in texts for c in t[2:])
    assert provinces == {"京": 100, "沪": 100, "浙": 100}
    assert set(letters) == set(parse_charset("A-Z")) and max(letters.values()) - min(letters.values()) <= 1
    assert set(digits) == set("0123456789") and set(digits.values()) == {150}
    assert texts == draw_texts(layout, 300, chars, np.random.default_rng(1))
    assert texts != draw_texts(layout, 300, chars, np.random.default_rng(2))
    assert len(set(texts)) > 290  # the order is shuffled, not the same few plates


def test_chars_limit_the_drawn_alphabet_and_a_kind_without_characters_is_refused():
    layout = parse_pattern("DDDLL", _one_row(5))
    texts = draw_texts(layout, 40, parse_charset("0-3XYZ"), np.random.default_rng(0))
    assert set("".join(texts)) == set("0123XYZ")
    with pytest.raises(PlategenError, match="no letter character"):
        draw_texts(layout, 4, parse_charset("0-9"), np.random.default_rng(0))
    with pytest.raises(PlategenError, match="no province character"):
        draw_texts(parse_pattern("PDDDD", layout), 4, CHARS, np.random.default_rng(0))
    assert set(CHINESE_PROVINCES) >= {t[0] for t in draw_texts(parse_pattern("PDDDD", layout), 9,
                                                                  CHARS + ["京"], np.random.default_rng(0))}


def test_an_alphabet_without_a_slots_characters_says_what_the_slot_takes():
    """--chars 0-9ab (or 0-9Ω) was told it "has no letter character", lower case and Ω being letters to a user."""
    with pytest.raises(PlategenError, match=r"'0123456789ab' .* has no letter character, but the layout DDLL has letter "
                                            r"slots; a letter slot takes the upper-case letters A-Z, other letters a "
                                            r"\[\.\.\.\] slot of --pattern \('\[a-z\]', '\[Ñ\]'\)$"):
        draw_texts(parse_pattern("DDLL", _one_row(4)), 3, CHARS[:10] + ["a", "b"], np.random.default_rng(0))
    with pytest.raises(PlategenError, match=r"has no digit character, but the layout DDLL has digit slots$"):
        draw_texts(parse_pattern("DDLL", _one_row(4)), 3, ["A", "B"], np.random.default_rng(0))


def test_a_texts_file_is_used_in_order_and_cycled(tmp_path):
    layout = parse_pattern("PL.DDDDD", _one_row(7))
    path = tmp_path / "texts.txt"
    path.write_text("京A·12345\n\n沪B 67890\n", encoding="utf-8")
    chars = CHARS + ["京", "沪"]
    assert read_texts(path, layout, 5, chars) == ["京A12345", "沪B67890", "京A12345", "沪B67890", "京A12345"]
    path.write_text("京A\t12345\n", encoding="utf-8")  # a tab separates as a space does: it counted as a character
    assert read_texts(path, layout, 1, chars) == ["京A12345"]


@pytest.mark.parametrize("content, message", [
    ("京A12345\n沪B6789\n", r"texts.txt:2: '沪B6789' has 6 characters; the layout PL.DDDDD has 7$"),
    ("京A/12345\n", r"texts.txt:1: '京A/12345' has 8 characters; the layout PL.DDDDD has 7; a text has no /: write a "
                    r"plate of several rows on one line, top row first$"),
    ("京A12345\n粤B67890\n", r"texts.txt:2: '粤B67890' has 粤, not in the alphabet '0123.*京沪' \(--chars, or without it"),
    ("AA12345\n", r"texts.txt:1: 'AA12345' has 'A' at position 1, a province slot"),
    ("京京12345\n", r"texts.txt:1: '京京12345' has '京' at position 2, a letter slot"),
    ("\n \n", r"texts.txt: no plate texts in the file"),
    # a line of separators only was skipped, and every later text moved to another plate without a word
    ("京A12345\n\n...\n沪B67890\n", r"texts.txt:3: '...' holds only separators, no plate text$"),
    # a form feed or NEL ended a line: three texts on line 1 passed as three plates, and the bad one was "line 4"
    ("京A12345\f沪B67890\x85京A11111\n99\n", r"texts.txt:1: '京A12345\\x0c沪B67890"),
    # a long line is quoted in part: a 1 MB line made a 1 MB message
    ("京A" + "1" * 100_000 + "\n", r"texts.txt:1: '京A1{38}'\.\.\. \(100,002 characters\) "
                                   r"has 100002 characters; the layout PL.DDDDD has 7$"),
])
def test_a_text_that_does_not_fit_the_layout_is_refused_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "texts.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PlategenError, match=message):
        read_texts(path, parse_pattern("PL.DDDDD", _one_row(7)), 3, CHARS + ["京", "沪"])


def test_no_drawn_text_is_one_fast_plate_ocr_reads_as_an_empty_plate(tmp_path):
    """fast-plate-ocr reads plates.csv with pandas, which takes NA and NULL for missing values: such a plate
    trained as an empty one. Drawn texts trade a character instead, keeping the per-kind counts."""
    from fast_plate_ocr.train.data.annotations import read_annotations_csv

    for pattern, alphabet, n in (("LL", "AN", 40), ("LL", "AN", 1), ("LLLL", "NUL", 200), ("DLL", "1AN", 30)):
        layout = parse_pattern(pattern, _one_row(len(pattern)))
        for seed in range(3):
            texts = draw_texts(layout, n, parse_charset(alphabet), np.random.default_rng(seed))
            assert not {"NA", "NULL"} & set(texts)
            letters = Counter(c for t in texts for c in t if c.isalpha())
            assert max(letters.values()) - min(letters.values()) <= 1  # still balanced
            csv_path = tmp_path / "plates.csv"
            csv_path.write_text("image_path,plate_text\n" + "".join(f"images/{i}.png,{t}\n" for i, t in enumerate(texts)))
            assert read_annotations_csv(csv_path).plate_text.tolist() == texts
    for pattern, alphabet in (("[N][A]", "AN"), ("[N]L", "0-9A-Z")):  # the second: a balanced share of NA plates
        with pytest.raises(PlategenError, match=f"the layout {re.escape(pattern)} gives some plates the text 'NA'.*"
                                                "leave one of its characters out of --chars"):
            draw_texts(parse_pattern(pattern, _one_row(2)), 100, parse_charset(alphabet), np.random.default_rng(0))
    lower = draw_texts(parse_pattern("[a-z][a-z][a-z]", _one_row(3)), 20000, parse_charset("a-z"),
                       np.random.default_rng(0))
    assert "nan" not in lower and len(lower) == 20000  # 'nan' was drawn twice


def test_a_layout_no_trade_mends_is_refused_after_the_texts_within_reach_not_after_every_text():
    """8 digits under --export lprnet: every text is refused, and the search went through all n texts (45 s at
    --n 1,000,000) before saying so."""
    calls = []

    def refuse(text: str) -> str:
        calls.append(text)
        return "which no name takes"
    with pytest.raises(PlategenError, match=r"^the layout DD gives some plates the text '\d\d' \(its slots' characters "
                                            r"are balanced\), which no name takes$"):
        draw_texts(parse_pattern("DD", _one_row(2)), 50_000, parse_charset("0-9"), np.random.default_rng(0),
                   refuse=refuse)
    assert len(calls) < 2 * 2 * MEND_REACH + 10  # a trade's first text (or both) for each trade within reach


def test_every_text_pandas_reads_as_missing_is_known():
    """pandas' own list, those of its entries a plate text can be (letters only)."""
    from pandas._libs.parsers import STR_NA_VALUES

    assert READ_AS_MISSING == {v for v in STR_NA_VALUES if v.isalpha()}


def test_a_texts_line_fast_plate_ocr_reads_as_an_empty_plate_is_refused(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("ABCD\nN-U-L-L\n", encoding="utf-8")
    with pytest.raises(PlategenError, match=r"texts.txt:2: 'N-U-L-L' is read by fast-plate-ocr \(pandas\) from "
                                            r"plates.csv as an empty plate"):
        read_texts(path, parse_pattern("LLLL", _one_row(4)), 2, CHARS)


def test_a_lower_case_slot_leaves_the_letter_slots_upper_case():
    """'[a-z]DDLL' drew o34ck: the letters a [...] slot asked for joined the alphabet of every L slot."""
    layout = parse_pattern("[a-z]DDLL", _one_row(5))
    texts = draw_texts(layout, 200, CHARS + parse_charset("a-z"), np.random.default_rng(1))
    assert all(t[0].islower() and t[3:].isupper() for t in texts)


def test_a_pattern_slot_can_take_only_the_characters_it_lists(tmp_path):
    layout = parse_pattern("PL.[DF][A-HJ-NP-Z0-9]DDDD", _one_row(7))  # a Chinese new-energy plate: 8 characters
    assert len(layout.char_slots) == 8 and layout.kinds == "PL.[DF][ABCDEFGHJKLMNPQRSTUVWXYZ0123456789]DDDD"
    assert [s.kind for s in layout.char_slots[2:4]] == ["letter", "other"]
    chars = CHARS + list("京沪")
    texts = draw_texts(layout, 200, chars, np.random.default_rng(3))
    assert Counter(t[2] for t in texts) == {"D": 100, "F": 100}
    serial = Counter(t[3] for t in texts)
    assert "I" not in serial and "O" not in serial and "7" in serial and "K" in serial
    assert max(serial.values()) - min(serial.values()) <= 1
    assert all(t[4:].isdigit() for t in texts)
    assert {t[1] for t in texts} >= {"I", "O"}  # an L slot still takes every letter
    path = tmp_path / "texts.txt"
    path.write_text("京AD12345\n京AX12345\n", encoding="utf-8")
    with pytest.raises(PlategenError, match=r"texts.txt:2: '京AX12345' has 'X' at position 3, a \[DF\] slot"):
        read_texts(path, layout, 2, chars)
    with pytest.raises(PlategenError, match=r"no \[DF\] character"):
        draw_texts(layout, 2, parse_charset("0-9A-C京"), np.random.default_rng(0))
    for bad, message in (("PL.[DF", "a \\[ without its \\]"), ("PL.[]DDDD", "lists no character")):
        with pytest.raises(PlategenError, match=message):
            parse_pattern(bad, layout)


def test_one_row_levels_a_tilted_two_row_plate_before_cutting_its_rows_apart():
    """A level cut halfway between a tilted plate's rows ran through their characters (a hostile try: 28 of 46
    plates drawn on uc3m-lp's two-row styles), leaving part of a character in the other row's band. Each row is
    levelled along its box centres first: every character lands whole in its own row's band, and only there."""
    image = np.full((80, 120, 3), 255, np.uint8)
    boxes = []
    for row_centre, ink in ((20, (0, 0, 0)), (55, (255, 0, 0))):  # black top row, red bottom row, rising 0.3 px a px
        for cx in (30, 60, 90):
            cy = row_centre + 0.3 * (cx - 60)
            boxes.append((cx - 5, round(cy - 10), cx + 5, round(cy + 10)))
            image[boxes[-1][1]:boxes[-1][3], boxes[-1][0]:boxes[-1][2]] = ink
    laid, moved = one_row(image, boxes)
    black = (laid < 40).all(axis=2)
    red = (laid[..., 0] > 215) & (laid[..., 1:] < 40).all(axis=2)
    assert np.nonzero(black.any(axis=0))[0].max() < np.nonzero(red.any(axis=0))[0].min()  # top row left, each alone
    for (x0, y0, x1, y1), ink in zip(moved, [black] * 3 + [red] * 3):
        assert 0 <= y0 < y1 <= laid.shape[0]
        assert ink[y0 + 1:y1 - 1, x0 + 1:x1 - 1].mean() > 0.95  # each character whole where its moved box says
    scale = laid.shape[0] / 37.5  # the top row's band: from 0 to halfway between the levelled rows (30 and 45)
    assert black.sum() == pytest.approx(3 * 10 * 20 * scale ** 2, rel=0.15)  # all three black characters
    # each row is cut to its characters' span and a quarter of their height beyond: no plate-wide blank paper
    assert np.nonzero(black.any(axis=0))[0].min() <= round(5 * scale) + 1
    assert laid.shape[1] <= round(80 * scale) + round(80 * laid.shape[0] / 42.5) + 2


def test_one_row_keeps_a_tilted_short_top_rows_characters_whole():
    """Levelling shears about the plate's middle: a short top row off to the right of a plate rising to the left
    is lifted, its characters' tops above the plate's edge, and a cut at the edge took them off. The row now
    reaches past the edge (edge pixels repeated) to its characters' tops."""
    image = np.full((70, 160, 3), 255, np.uint8)
    boxes = []
    for cx, cy in ((110, 10), (126, 12), (142, 14)):  # the short top row, falling 1 px in 8 to the right
        boxes.append((cx - 6, cy - 9, cx + 6, cy + 9))
    for cx in range(20, 150, 20):  # the full bottom row, the same tilt
        cy = round(50 + (cx - 110) / 8)
        boxes.append((cx - 6, cy - 9, cx + 6, cy + 9))
    for x0, y0, x1, y1 in boxes:
        image[y0:y1, x0:x1] = 0
    laid, moved = one_row(image, boxes)
    black = (laid < 128).all(axis=2)
    for x0, y0, x1, y1 in moved[:3]:  # each 12 x 18 character whole (as tall as drawn), where its box says
        assert (y1 - y0) / (x1 - x0) == pytest.approx(18 / 12, rel=0.1) and black[y0:y1, x0:x1].mean() > 0.9
