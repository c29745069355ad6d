import numpy as np
import pytest

from plategen.charset import CHINESE_PROVINCES, CHINESE_SPECIAL, parse_charset
from plategen.errors import PlategenError
from plategen.glyphs import (ASPECTS, FONTS_DIR, WIDEST, GlyphJitter, check_coverage, covers, fonts_for, ink_box,
                             narrowest, render_glyph, sample_jitter, shipped_fonts)

LATIN = parse_charset("0-9A-Z")


def test_fonts_folder_is_small_and_every_font_has_its_own_licence():
    total = sum(p.stat().st_size for p in FONTS_DIR.iterdir())
    assert total < 5 * 1024 * 1024
    licences = {p.stem.removeprefix("LICENSE-"): p for p in FONTS_DIR.glob("LICENSE-*.txt")}
    fonts = shipped_fonts()
    for font in fonts:
        owners = [name for name in licences if font.name.startswith(name)]
        assert len(owners) == 1, f"{font.name}: expected one LICENSE-<family>.txt, found {owners}"
        assert "licen" in licences[owners[0]].read_text(encoding="utf-8").lower()
    assert all(any(f.name.startswith(name) for f in fonts) for name in licences)  # no licence for a removed font


def test_three_designs_cover_latin_and_one_covers_chinese_plate_characters():
    fonts = shipped_fonts()
    assert sum(all(covers(f, c) for c in LATIN) for f in fonts) >= 3
    assert any("DIN" in f.name for f in fonts)
    check_coverage(list(CHINESE_PROVINCES + CHINESE_SPECIAL) + LATIN, fonts)


def test_a_1_is_drawn_without_the_foot_no_plate_prints():
    """The footed 1 of two fonts came out of the generator as an L on Chinese plates, and passed its label check."""
    fonts = shipped_fonts()
    ones = fonts_for("1", fonts)
    assert ones and all(covers(f, "1") for f in ones)
    for font in ones:
        glyph = render_glyph("1", font) > 128
        rows = np.flatnonzero(glyph.any(axis=1))
        stem = glyph[rows[len(rows) // 2]].sum()  # ink across the middle of the stroke
        assert glyph[rows[-1]].sum() <= 1.5 * stem, font.name  # the bottom row is no wider: no foot
    assert len(fonts_for("7", fonts)) == sum(covers(f, "7") for f in fonts)  # other characters keep every font


def test_designs_are_visibly_different():
    glyphs = [render_glyph("R", f).astype(float) for f in fonts_for("R", shipped_fonts())]
    for i in range(len(glyphs)):
        for j in range(i + 1, len(glyphs)):
            assert np.abs(glyphs[i] - glyphs[j]).mean() > 8


def test_uncovered_characters_are_all_named_in_one_error():
    with pytest.raises(PlategenError) as err:
        check_coverage(["A", "\u0b95", "\u16a0"], shipped_fonts())
    assert "U+0B95" in str(err.value) and "U+16A0" in str(err.value)


def test_rendering_a_missing_glyph_is_refused_not_boxed():
    din = next(f for f in shipped_fonts() if "DIN" in f.name)
    with pytest.raises(PlategenError, match="no glyph"):
        render_glyph("皖", din)


def test_glyphs_are_fixed_size_centred_and_consistently_scaled():
    heights = []
    for font in shipped_fonts():
        for ch in "0H8":
            if not fonts_for(ch, [font]):
                continue
            glyph = render_glyph(ch, font)
            assert glyph.shape == (32, 32) and glyph.dtype == np.uint8
            x0, y0, x1, y1 = ink_box(glyph, 128)
            assert abs((x0 + x1) / 2 - 16) <= 1.5 and abs((y0 + y1) / 2 - 16) <= 1.5
            heights.append(y1 - y0)
    assert max(heights) - min(heights) <= 2  # tall characters fill the frame the same way in every font


def test_same_seed_same_pixels_and_variation_changes_pixels():
    font = shipped_fonts()[0]
    a = [render_glyph("7", font, jitter=sample_jitter(np.random.default_rng(5))) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    other = render_glyph("7", font, jitter=sample_jitter(np.random.default_rng(6)))
    assert not np.array_equal(a[0], other)


def test_stroke_weight_changes_ink_amount():
    font = shipped_fonts()[0]
    thin = render_glyph("8", font, jitter=GlyphJitter(stroke=-2)).sum()
    plain = render_glyph("8", font).sum()
    bold = render_glyph("8", font, jitter=GlyphJitter(stroke=3)).sum()
    assert thin < plain < bold


def test_a_glyph_is_narrowed_to_the_width_it_is_asked_for_and_a_narrower_one_is_left_as_drawn():
    """A font's W is up to 1.4 times as wide as it is tall, a plate's about half as wide: narrowed, it keeps its height
    and centre; a 1, already narrow, is the same pixels at any width."""
    for font in fonts_for("W", shipped_fonts()):
        drawn = render_glyph("W", font)
        x0, y0, x1, y1 = ink_box(drawn)
        for step in (narrowest([0.47])[0], narrowest([0.76])[0]):
            narrowed = render_glyph("W", font, width=step)
            n0, m0, n1, m1 = ink_box(narrowed)
            assert (n1 - n0) / (m1 - m0) <= ASPECTS[step] + 1.5 / (m1 - m0)  # a pixel of rounding either side
            if (x1 - x0) > (y1 - y0):  # framed by its width as drawn: taller once narrowed, as a plate's W is framed
                assert m1 - m0 > y1 - y0
            assert abs((n0 + n1) - 32) <= 2  # still centred
    for font in fonts_for("1", shipped_fonts()):
        assert np.array_equal(render_glyph("1", font, width=narrowest([0.47])[0]), render_glyph("1", font))
    assert narrowest([0.3, 0.62, np.nan, 9.0, 0.0]).tolist() == [0, 6, WIDEST, WIDEST, 0]
