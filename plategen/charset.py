"""`--chars` specs such as `0-9A-Z`, `0-9A-HJ-NP-Z` or `京沪粤0-9A-Z`, and safe folder names for labels."""

from __future__ import annotations

import unicodedata
from typing import Sequence

from plategen.errors import PlategenError

CHINESE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
CHINESE_SPECIAL = "警学挂港澳使领"


def parse_charset(spec: str) -> list[str]:
    """Expand ranges (`A-Z`) and literals into an ordered list without duplicates.

    A `-` between two characters in ascending order is a range. Plate characters are letters,
    digits and Chinese characters: anything else (a `,` between ranges, a `-` left at either end)
    is a typo, not a class to train or draw.
    """
    if not spec:
        raise PlategenError("--chars: the character spec is empty")
    mark = next((i for i, c in enumerate(spec) if unicodedata.combining(c)), None)
    if mark is not None:  # a decomposed Ä is A and a lone combining mark, and the mark was named as the typo
        end = next((i for i in range(mark, len(spec)) if not unicodedata.combining(spec[i])), len(spec))
        piece = spec[max(mark - 1, 0):end]
        raise PlategenError(f"--chars: {piece!r} in {spec!r} is a letter and a combining mark; write it as the one "
                            f"character {unicodedata.normalize('NFC', piece)!r}")
    chars: list[str] = []
    i = 0
    while i < len(spec):
        ch = spec[i]
        if i + 2 < len(spec) and spec[i + 1] == "-":
            end = spec[i + 2]
            if ord(end) < ord(ch):
                raise PlategenError(f"--chars: range {ch}-{end} in {spec!r} runs backwards")
            if ord(end) - ord(ch) > 0x3000:
                raise PlategenError(f"--chars: range {ch}-{end} in {spec!r} is implausibly large")
            chars.extend(chr(c) for c in range(ord(ch), ord(end) + 1))
            i += 3
            continue
        chars.append(ch)
        i += 1
    bad = [c for c in chars if c.isspace() or not c.isprintable()]
    if bad:
        raise PlategenError(f"--chars: {spec!r} contains whitespace or control characters")
    odd = [c for c in chars if not c.isalnum()]
    if odd:
        raise PlategenError(f"--chars: {odd[0]!r} in {spec!r} is not a letter, digit or Chinese character "
                            "(write ranges side by side, e.g. 0-9A-Z)")
    changed = next((c for c in chars if unicodedata.normalize("NFKC", c) != c), None)
    if changed is not None:  # plategen reads texts and classes.txt back NFKC-normalised (plates.clean_text)
        raise PlategenError(f"--chars: {changed!r} in {spec!r} is read back as "
                            f"{unicodedata.normalize('NFKC', changed)!r} (NFKC, as every plate text and classes.txt "
                            "is read), so labels written with it would not read back; give that instead")
    return list(dict.fromkeys(chars))


def safe_label_dir(label: str) -> str:
    """A folder name for a label: the label itself unless the file system forbids it.

    CJK is fine on Linux; `/`, `\\`, `.` and `..` are not, so those become `U+XXXX`.
    """
    if label in {".", ".."} or any(c in label for c in "/\\\0") or label.startswith("U+"):
        return "-".join(f"U+{ord(c):04X}" for c in label)
    return label


LATIN = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # UC3M-LP's classes.txt, in its order


def label_classes(chars: Sequence[str]) -> list[str]:
    """The classes of a run's labels (a plate run's YOLO ids, plate_config.yaml's alphabet and dict.txt, a character
    run's shard .cls ids): 0-9A-Z in UC3M-LP's order, then, with any Chinese character, every province and
    警学挂港澳使领, then the run's other characters by code point. The ids do not move with --chars, so two runs, or a
    run and UC3M-LP's own labels, merge as they are."""
    chinese = CHINESE_PROVINCES + CHINESE_SPECIAL
    fixed = list(LATIN) + (list(chinese) if any(c in chinese for c in chars) else [])
    return fixed + sorted(set(chars) - set(fixed))
