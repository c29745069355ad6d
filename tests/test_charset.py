import pytest

from plategen.charset import CHINESE_PROVINCES, parse_charset, safe_label_dir
from plategen.errors import PlategenError


def test_ranges_and_literals_expand_in_order():
    assert parse_charset("0-9A-Z") == list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert parse_charset("0-9A-HJ-NP-Z") == list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")
    assert parse_charset("京沪粤0-9A-Z")[:4] == ["京", "沪", "粤", "0"]


def test_duplicates_removed_first_occurrence_kept():
    assert parse_charset("BA0-2AB1") == ["B", "A", "0", "1", "2"]


@pytest.mark.parametrize("spec", ["", "Z-A", "A B", "0-9,A-Z", "A-", "-A", "0-9A-Z."])
def test_bad_specs_are_refused_with_the_spec_named(spec):
    with pytest.raises(PlategenError, match="--chars"):
        parse_charset(spec)


def test_provinces_are_the_31_abbreviations():
    assert len(CHINESE_PROVINCES) == 31 == len(set(CHINESE_PROVINCES))


def test_unsafe_labels_get_safe_distinct_folder_names():
    assert safe_label_dir("皖") == "皖"
    assert safe_label_dir("A") == "A"
    names = {safe_label_dir(c) for c in ["/", "\\", ".", ".."]}
    assert len(names) == 4 and all("/" not in n and n not in {".", ".."} for n in names)


@pytest.mark.parametrize("spec, read", [("Ⅰ-Ⅻ0-9", "I"), ("0-9²", "2"), ("ﬁ", "fi"), ("ＡＢＣ", "A")])
def test_a_character_plategen_would_read_back_as_another_is_refused(spec, read):
    """Texts and classes.txt are read back NFKC-normalised: synth wrote Ⅱ into classes.txt, and inspect of its own
    output then failed ("expected one character per line, got ['Ⅱ', ...]")."""
    with pytest.raises(PlategenError, match=f"is read back as '{read}'"):
        parse_charset(spec)


def test_a_decomposed_letter_is_refused_with_its_composed_form():
    """A decomposed Ä (A and U+0308) named the lone combining mark as the typo: "'̈' in 'Ä' is not a letter"."""
    with pytest.raises(PlategenError, match="is a letter and a combining mark; write it as the one character "
                                            "'\u00c4'"):
        parse_charset("0-9A\u0308")
    assert parse_charset("Ä") == ["Ä"]
    with pytest.raises(PlategenError, match="is read back as 'Å'"):  # the Ångström sign: no mark, a compatibility form
        parse_charset("\u212b")
