"""Plate layouts: where each character of a plate sits and what kind of character it is.

A `PlateLayout` is the template whole-plate synthesis fills: the style plate's size and one
`Slot` per position, in reading order (top row first, left to right). It comes from a real
plate (`layout_of`), or from an explicit pattern placed on a style plate (`parse_pattern`).
New texts for a layout come from `draw_texts` (balanced per slot kind) or a `--texts` file
(`read_texts`). `one_row` lays a plate of several rows out as one row, for readers of one row.

The separator (the dot on Chinese plates after the province and the city letter) is a slot
of kind ``separator`` with its own box but no character: it is printed on the plate, not
part of the plate text (CCPD file names and fast-plate-ocr labels leave it out), so it never
appears in a text, a label or a YOLO box. `PlateLayout.char_slots` are the slots that carry
characters; a text has exactly one character per char slot, in order. The separator's box is
the gap between its neighbours, so composition leaves the style plate's own dot in place.
"""

from __future__ import annotations

import itertools

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import cv2
import numpy as np

from plategen.charset import CHINESE_PROVINCES, parse_charset
from plategen.errors import PlategenError, require_regular_file
from plategen.plates import Box, Plate, clean_text, reading_rows

Kind = Literal["digit", "letter", "province", "separator", "other"]
KINDS: tuple[Kind, ...] = ("digit", "letter", "province", "separator", "other")
PATTERN_KINDS: dict[str, Kind] = {"D": "digit", "L": "letter", "P": "province", "O": "other",
                                  ".": "separator", "·": "separator"}
ROW_BREAK = "/"
GAP = "_"  # a pattern mark: blank space between two groups of characters (no slot, nothing printed)
# a separator slot or a gap laid out by a pattern is this share of a character's width (uc3m-lp's gap between the
# digits and the letters adds a median 0.43 of the characters' pitch, over 435 plates with both sides unmasked)
SEPARATOR_WIDTH = 0.4
ALPHABET = "--chars, or without it the characters some slot takes that the model has a class for"
# a spread pattern's pitch is at most this many of the plate's character widths (a row of one box has no step): neighbours
# sit a median 1.06 widths apart on openalpr-us plates, 0.96 on ccpd-crops and 1.06 on uc3m-lp (3,422 unmasked pairs)
MAX_PITCH = 1.25
# a spread slot narrower than this share of the style plate's own characters is refused: its character would be drawn
# over its neighbours (8 green-design slots on 7-character CCPD plates take 0.57-0.92 of them, 0.66 at the 1st percentile)
MIN_SLOT_SHARE = 0.5


@dataclass(frozen=True)
class Slot:
    box: Box  # x0, y0, x1, y1 in pixels of the plate image
    row: int  # 0 = top row
    kind: Kind
    allowed: str = ""  # the only characters this slot takes (a pattern's [DF]); "" = any of its kind
    own: bool = False  # `allowed` is the style plate's own character, drawn by default; --texts may put another


@dataclass(frozen=True)
class PlateLayout:
    size: tuple[int, int]  # width, height of the plate image
    slots: tuple[Slot, ...]  # reading order: top row first, left to right

    @property
    def char_slots(self) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if s.kind != "separator")

    @property
    def kinds(self) -> str:
        """The layout as a compact pattern, e.g. ``PL.DDDDD``, ``DDD/LL`` or ``PL.[DF]DDDDD``."""
        marks = {kind: mark for mark, kind in PATTERN_KINDS.items() if mark != "·"}
        rows = ["".join(f"[{s.allowed}]" if s.allowed and not s.own else marks[s.kind]
                        for s in self.slots if s.row == r)
                for r in range(self.rows)]
        return ROW_BREAK.join(rows)

    @property
    def chinese(self) -> bool:
        """A Chinese plate's layout: it has a province slot."""
        return any(s.kind == "province" for s in self.slots)

    @property
    def rows(self) -> int:
        return max(s.row for s in self.slots) + 1


def one_row(image: np.ndarray, boxes: Sequence[Box], rows: Sequence[Sequence[int]] | None = None
            ) -> tuple[np.ndarray, tuple[Box, ...]]:
    """A plate of several rows as one: each row levelled (sheared along the line through its box centres: a
    level cut through a tilted plate's rows ran through their characters), cut halfway between it and its
    neighbours and to its characters' span (`ROW_MARGIN` of their height beyond), scaled to the tallest cut's
    height and laid side by side, top row left, with its character boxes moved along; a one-row plate (or one
    without boxes) as it is. One-row readers (LPRNet, a CTC over columns) take two-row plates so: squeezed whole,
    the rows' characters share columns and read interleaved. `rows`: the boxes' indices per row, top row first,
    where the boxes do not tell them (`segment.reading_rows`) themselves: a tilted copy's boxes, taller and
    closer, can read as one row; its rows are those of the plate it was warped from."""
    rows = (reading_rows(boxes) if boxes else []) if rows is None else rows
    if len(rows) < 2:
        return image, tuple(boxes)
    middle = image.shape[1] / 2
    cuts = []  # per row: its slope, its band's top and bottom once levelled by that slope, and its span across
    for r, row in enumerate(rows):
        slope = _row_slope([boxes[i] for i in row])
        level = {k: [_levelled(boxes[i], slope, middle) for i in rows[k]]  # this row and its neighbours
                 for k in (r - 1, r, r + 1) if 0 <= k < len(rows)}
        margin = ROW_MARGIN * float(np.median([b[3] - b[1] for b in level[r]]))
        # the outer rows reach the plate's edge, and past it (edge pixels repeated) where levelling moved a short
        # off-centre row's characters beyond it: a cut at the edge took the top off a tilted top row's characters
        top = min(0.0, min(b[1] for b in level[r])) if r == 0 else \
            (max(b[3] for b in level[r - 1]) + min(b[1] for b in level[r])) / 2
        bottom = max(float(image.shape[0]), max(b[3] for b in level[r])) if r == len(rows) - 1 else \
            (max(b[3] for b in level[r]) + min(b[1] for b in level[r + 1])) / 2
        left_edge = max(0.0, min(b[0] for b in level[r]) - margin)
        right_edge = min(float(image.shape[1]), max(b[2] for b in level[r]) + margin)
        cuts.append((slope, top, max(bottom, top + 1), left_edge, max(right_edge, left_edge + 1)))
    height = max(1, round(max(bottom - top for _, top, bottom, _, _ in cuts)))
    pieces, moved, left = [], [None] * len(boxes), 0
    for row, (slope, top, bottom, left_edge, right_edge) in zip(rows, cuts):
        scale = height / (bottom - top)
        width = max(1, round((right_edge - left_edge) * scale))
        # source (x, y) -> ((x - left_edge) * scale, (y - slope * (x - middle) - top) * scale)
        warp = np.float32([[scale, 0, -left_edge * scale], [-slope * scale, scale, (slope * middle - top) * scale]])
        pieces.append(cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
        for i in row:
            x0, y0, x1, y1 = _levelled(boxes[i], slope, middle)
            xs = [left + min(max(round((x - left_edge) * scale), 0), width) for x in (x0, x1)]
            ys = [min(max(round((y - top) * scale), 0), height) for y in (y0, y1)]
            moved[i] = (xs[0], ys[0], xs[1], ys[1])
        left += width
    return np.hstack(pieces), tuple(moved)


def row_count(boxes: Sequence[Box]) -> int:
    """How many rows a plate's character boxes stand in (`segment.reading_rows`); 0 without boxes."""
    return len(reading_rows(boxes)) if boxes else 0


ROW_MARGIN = 0.25  # `one_row` keeps this share of a row's character height beyond its first and last characters
MAX_ROW_SLOPE = 0.5  # a row's centres rising more than this per pixel across are no row to level by


def _row_slope(row: Sequence[Box]) -> float:
    """The rise per pixel of the line through a row's box centres (0 for a one-character row)."""
    xs = np.array([(b[0] + b[2]) / 2 for b in row], np.float64)
    ys = np.array([(b[1] + b[3]) / 2 for b in row], np.float64)
    if len(row) < 2 or np.ptp(xs) == 0:
        return 0.0
    return float(np.clip(np.polyfit(xs, ys, 1)[0], -MAX_ROW_SLOPE, MAX_ROW_SLOPE))


def _levelled(box: Box, slope: float, middle: float) -> tuple[float, float, float, float]:
    """`box` moved up or down as the shear that levels a row of `slope` moves its centre."""
    x0, y0, x1, y1 = box
    shift = slope * ((x0 + x1) / 2 - middle)
    return x0, y0 - shift, x1, y1 - shift


def kind_of(ch: str) -> Kind:
    if ch.isascii() and ch.isdigit():
        return "digit"
    if ch.isascii() and ch.isalpha():
        return "letter"
    if ch in CHINESE_PROVINCES:
        return "province"
    return "other"


def layout_of(plate: Plate, image_size: tuple[int, int]) -> tuple[PlateLayout, str]:
    """The layout of a real plate and its text in the layout's reading order.

    Rows and order follow `reading_rows`, the importers' rule, so an imported plate's text
    comes back as it is; the rows give each slot its row. A Chinese plate (one row: a
    province, a letter, then five or six more) gets its separator slot between the 2nd and
    3rd characters. An "other" slot (no digit, letter or province) of a plate with no province
    draws only its own character (an Ü, a ·): drawn from the Chinese specials, a German plate
    came out as 908M港. `--texts` may still put another character there.
    """
    if len(plate.text) != len(plate.boxes) or not plate.boxes:
        raise PlategenError(f"{plate.image_path}: {len(plate.text)} characters but {len(plate.boxes)} boxes; "
                            "a layout needs one box per character")
    rows = reading_rows(plate.boxes)
    order = [i for row in rows for i in row]
    row_of = {i: r for r, row in enumerate(rows) for i in row}
    slots = [Slot(plate.boxes[i], row_of[i], kind_of(plate.text[i])) for i in order]
    text = "".join(plate.text[i] for i in order)
    if not any(s.kind == "province" for s in slots):  # 警学挂港澳使领 belong on Chinese plates only
        slots = [Slot(s.box, s.row, s.kind, ch, own=True) if s.kind == "other" else s for s, ch in zip(slots, text)]
    if len(rows) == 1 and len(slots) >= 7 and slots[0].kind == "province" and slots[1].kind == "letter":
        slots.insert(2, Slot(_gap(slots[1].box, slots[2].box), 0, "separator"))
    return PlateLayout(image_size, tuple(slots)), text


def compact_pattern(spec: str | None) -> str | None:
    """A pattern without its spaces, which mean nothing: how a run records it, so `DDDD LLL` resumes `DDDDLLL`."""
    return None if spec is None else "".join(spec.split())


SHOWN_PATTERN = 60  # characters of a refused --pattern its message repeats (one of 5,000 slots made a 25 KB line)


def _quoted(spec: str) -> str:
    return repr(spec if len(spec) <= SHOWN_PATTERN else spec[:SHOWN_PATTERN - 3] + "...")


def parse_pattern(spec: str, style: PlateLayout) -> PlateLayout:
    """An explicit layout (`--pattern`) placed on a style plate's layout.

    Syntax, one mark per slot: ``D`` digit, ``L`` letter (A-Z), ``P`` province (Chinese
    province character), ``O`` other (any allowed character that is none of those, e.g.
    警), ``[...]`` exactly these characters (a `--chars` spec: ``[DF]``, ``[A-HJ-NP-Z0-9]``;
    the serial of a Chinese new-energy plate starts with D or F), ``.`` or ``·`` separator
    (printed, not part of the text), ``_`` a gap (blank, as between a Spanish plate's digits and
    letters: ``DDDD_LLL``), ``/`` starts the next row (top row first). Spaces are ignored, so
    ``P L . D D D D D``, ``PL.DDDDD``, ``DDDD LLL`` and ``DDD/LL`` all read as written.

    Positions: when the pattern has as many rows and character slots per row as the style
    plate, each slot takes the style plate's own box, so the new characters land exactly
    where the old ones were erased (and a separator takes the gap between its neighbours).
    Otherwise the pattern's slots take the row band and the size and pitch of the plate's own
    characters, centred on the row's span, or spaced evenly over the span where they do not fit in
    it (a narrow slot for a separator and as much for a gap); a pattern with another number of rows is refused,
    as there is no row band to put the extra row in.
    """
    rows = pattern_rows(spec)
    if len(rows) != style.rows:
        raise PlategenError(f"--pattern {_quoted(spec)}: {len(rows)} row(s), but the style plate has {style.rows}")
    slots: list[Slot] = []
    for r, marks in enumerate(rows):
        style_row = [s for s in style.char_slots if s.row == r]
        chars = [m for m in marks if m[0] not in ("separator", GAP)]
        if len(chars) == len(style_row):
            slots.extend(_on_style_boxes(marks, style_row, r))
            continue
        spread = _spread(marks, style_row, r)
        width = min(s.box[2] - s.box[0] for s in spread if s.kind != "separator")
        own = float(np.median([s.box[2] - s.box[0] for s in style_row]))
        if width < MIN_SLOT_SHARE * own:
            raise PlategenError(f"--pattern {_quoted(spec)}: {len(chars)} characters in row {r + 1} leave each {width} px, "
                                f"under {MIN_SLOT_SHARE:.0%} of the style plate's own {own:.0f} px wide characters: "
                                "they would be drawn over each other; give fewer")
        slots.extend(spread)
    return PlateLayout(style.size, tuple(slots))


def pattern_rows(spec: str) -> list[list[tuple[Kind, str]]]:
    """A pattern's rows of (kind, allowed characters) marks, refused where its syntax is wrong whatever the plate."""
    rows = [_pattern_row(spec, row) for row in spec.split(ROW_BREAK)]
    if any(not any(kind not in ("separator", GAP) for kind, _ in row) for row in rows):
        raise PlategenError(f"--pattern {_quoted(spec)}: every row needs at least one character slot (D, L, P, O or [...])")
    printed = [[kind for kind, _ in row if kind != GAP] for row in rows]
    if any(kinds[0] == "separator" or kinds[-1] == "separator" for kinds in printed):
        raise PlategenError(f"--pattern {_quoted(spec)}: a separator (.) stands between two characters, not at a row's start "
                            "or end")
    return rows


def _pattern_row(spec: str, row: str) -> list[tuple[Kind, str]]:
    """One row of a pattern as (kind, allowed characters) per slot."""
    marks: list[tuple[Kind, str]] = []
    unknown: list[str] = []
    i = 0
    while i < len(row):
        mark = row[i]
        if mark == "[":
            end = row.find("]", i)
            if end < 0:
                raise PlategenError(f"--pattern {_quoted(spec)}: a [ without its ]")
            try:
                allowed = "".join(parse_charset(row[i + 1:end])) if end > i + 1 else ""
            except PlategenError as exc:  # its message names --chars, which the user did not give
                raise PlategenError(f"--pattern {_quoted(spec)}: {str(exc).removeprefix('--chars: ')}") from None
            if not allowed:
                raise PlategenError(f"--pattern {_quoted(spec)}: [] lists no character")
            kinds = {kind_of(c) for c in allowed}
            marks.append((kinds.pop() if len(kinds) == 1 else "other", allowed))
            i = end + 1
            continue
        if mark.upper() in PATTERN_KINDS:
            marks.append((PATTERN_KINDS[mark.upper()], ""))
        elif mark == GAP:
            marks.append((GAP, ""))
        elif not mark.isspace():
            unknown.append(mark)
        i += 1
    if unknown:
        raise PlategenError(f"--pattern {_quoted(spec)}: unknown mark(s) {' '.join(sorted(set(unknown)))}; "
                            "use D L P O [...] . _ and / between rows")
    return marks


def _on_style_boxes(marks: Sequence[tuple[Kind, str]], style_row: Sequence[Slot], row: int) -> list[Slot]:
    boxes = [s.box for s in style_row]
    slots, taken = [], 0
    for kind, allowed in marks:
        if kind == GAP:  # the style plate's own boxes keep its own spacing
            continue
        if kind == "separator":
            slots.append(Slot(_gap(boxes[max(taken - 1, 0)], boxes[min(taken, len(boxes) - 1)]), row, kind))
        else:
            slots.append(Slot(boxes[taken], row, kind, allowed))
            taken += 1
    return slots


def _gap(left: Box, right: Box) -> Box:
    """The box between two neighbouring character boxes (at least one pixel wide)."""
    return left[2], min(left[1], right[1]), max(right[0], left[2] + 1), max(left[3], right[3])


def _spread(marks: Sequence[tuple[Kind, str]], style_row: Sequence[Slot], row: int) -> list[Slot]:
    """Slots at the style row's own character width and pitch, centred on the row's span when they fit in it
    (a short pattern keeps the plate's print size, not one glyph stretched over several characters' room),
    else spaced evenly over the span; a character box is never wider than the plate's own characters."""
    x0 = min(s.box[0] for s in style_row)
    x1 = max(s.box[2] for s in style_row)
    y0 = int(np.median([s.box[1] for s in style_row]))
    y1 = int(np.median([s.box[3] for s in style_row]))
    width = float(np.median([s.box[2] - s.box[0] for s in style_row]))
    centres = sorted((s.box[0] + s.box[2]) / 2 for s in style_row)
    # neighbours' step: the lower quartile, as steps over a masked character or a gap are longer
    pitch = min(float(np.percentile(np.diff(centres), 25)) if len(centres) > 1 else np.inf, MAX_PITCH * width)
    weights = [SEPARATOR_WIDTH if kind in ("separator", GAP) else 1.0 for kind, _ in marks]
    steps = np.concatenate([[0.0], np.cumsum(weights)])
    if pitch * sum(weights) <= x1 - x0:
        edges = (x0 + x1 - pitch * sum(weights)) / 2 + pitch * steps
    else:
        edges = x0 + (x1 - x0) * steps / sum(weights)
    slots = []
    for (kind, allowed), a, b in zip(marks, edges[:-1], edges[1:]):
        if kind == GAP:
            continue
        if kind != "separator":
            a, b = (a + b) / 2 - min(b - a, width) / 2, (a + b) / 2 + min(b - a, width) / 2
        slots.append(Slot((int(round(a)), y0, max(int(round(b)), int(round(a)) + 1), y1), row, kind, allowed))
    return slots


def alphabet(slot: Slot, chars: Sequence[str], skip: str = "") -> list[str]:
    """The allowed characters (`--chars`) that may fill this slot, in `chars` order; a slot of a kind leaves
    out `skip` and lower case, which no plate prints (a ``[...]`` slot takes what it lists: '[a-z]DDLL' put
    lower case into its L slots too)."""
    if slot.allowed:
        return [c for c in chars if c in slot.allowed]
    return [c for c in chars if kind_of(c) == slot.kind and c not in skip and not (c.islower() and c.isascii())]


# texts that pandas' read_csv takes for a missing value (the letters-only ones of its default na_values, which a plate
# text can be: lower case comes from [a-z] slots); fast-plate-ocr reads plates.csv so, and trained them as empty plates
READ_AS_MISSING = frozenset({"NA", "NULL", "NaN", "None", "nan", "null"})


MEND_REACH = 1000  # `_mend` trades with the next texts up to this many on: a layout no trade mends (8 digits under
# --export lprnet) tried every text of the run, 45 s at --n 1,000,000


def read_as_missing(text: str) -> str | None:
    """Why fast-plate-ocr cannot train on a drawn `text`, with what to do (None: it can): `draw_texts`' `refuse`."""
    if text in READ_AS_MISSING:
        return ("which fast-plate-ocr (pandas) reads from plates.csv as an empty plate; leave one of its characters "
                "out of --chars or give another --pattern")
    return None


def draw_texts(layout: PlateLayout, n: int, chars: Sequence[str], rng: np.random.Generator,
               skip: str = "", refuse: Callable[[str], str | None] = read_as_missing) -> list[str]:
    """`n` texts for `layout`, balanced per slot kind (`skip`: characters its kind slots leave out), none that
    `refuse` gives a reason against (`_mend`).

    Over all slots of one kind in all n texts, every allowed character of that kind appears
    equally often (counts differ by at most one; which characters get the extra one is drawn),
    and the rng shuffles which slot of which text gets which. Balance per kind, not per
    plate, is what a recogniser trained on the output needs: no class is rarer than another.
    """
    if n < 1:
        raise PlategenError(f"--n {n}: must be at least 1")
    columns: dict[int, list[str]] = {}
    slots = layout.char_slots
    # slots that take the same characters, kind by kind (the rng's order, so a layout's texts stay what they were)
    for kind, allowed in sorted({(s.kind, s.allowed) for s in slots}, key=lambda g: (KINDS.index(g[0]), g[1])):
        positions = [i for i, s in enumerate(slots) if (s.kind, s.allowed) == (kind, allowed)]
        pool = alphabet(slots[positions[0]], chars, skip)
        if not pool:
            wanted = f"[{allowed}]" if allowed else kind
            hint = ("; a letter slot takes the upper-case letters A-Z, other letters a [...] slot of --pattern "
                    "('[a-z]', '[Ñ]')" if kind == "letter" and not allowed else "")
            raise PlategenError(f"the alphabet {''.join(chars)!r} ({ALPHABET}) has no {wanted} character, "
                                f"but the layout {layout.kinds} has {wanted} slots{hint}")
        total = n * len(positions)
        order = rng.permutation(len(pool))
        drawn = np.asarray(pool)[order[np.arange(total) % len(pool)]]
        drawn = drawn[rng.permutation(total)].reshape(n, len(positions))
        for column, i in enumerate(positions):
            columns[i] = drawn[:, column].tolist()
    return _mend(layout, columns, n, refuse)


def _mend(layout: PlateLayout, columns: dict[int, list[str]], n: int, refuse: Callable[[str], str | None]
          ) -> list[str]:
    """The drawn texts, each one `refuse` gives a reason against mended by trading one character with another slot of
    its own (or another text's) that takes the same characters, so every kind keeps its counts; refused with that
    reason when no trade mends it."""
    slots = layout.char_slots

    def text(t: int) -> str:
        return "".join(columns[i][t] for i in range(len(slots)))
    for t in range(n):
        why = refuse(text(t))
        if why is None:
            continue
        # lazily: the first trade nearly always mends it, and a list of every text's trades is quadratic in n
        own = (((i, t), (j, t)) for i in range(len(slots)) for j in range(i + 1, len(slots))
               if (slots[i].kind, slots[i].allowed) == (slots[j].kind, slots[j].allowed))
        others = (((i, t), (i, (t + k) % n)) for k in range(1, min(n, MEND_REACH)) for i in range(len(slots)))
        trades = itertools.chain(own, others)
        for (i, a), (j, b) in trades:
            if columns[i][a] == columns[j][b]:
                continue
            columns[i][a], columns[j][b] = columns[j][b], columns[i][a]
            if refuse(text(a)) is None and refuse(text(b)) is None:
                break
            columns[i][a], columns[j][b] = columns[j][b], columns[i][a]
        else:
            raise PlategenError(f"the layout {layout.kinds} gives some plates the text {text(t)!r} (its slots' characters "
                                f"are balanced), {why}")
    return [text(t) for t in range(n)]


def shown_line(line: str, most: int = 40) -> str:
    """A texts file's line as a message quotes it, cut after `most` characters (a 1 MB line made a 1 MB message)."""
    line = line.strip()
    return repr(line) if len(line) <= most else f"{line[:most]!r}... ({len(line):,} characters)"


def read_texts(path: Path | str, layout: PlateLayout, n: int, chars: Sequence[str]) -> list[str]:
    """`n` texts from a `--texts` file: one plate a line, used in order and cycled to `n`.

    Separators in a line (space, -, ., ·, _) are dropped, as the importers drop them. A line
    fits when it has one character per character slot, every character is allowed
    (`chars`), and province slots get provinces and only they do; digits and letters may
    trade places, since plates of one design mix them (US vanity plates, Chinese serials).
    Blank lines are skipped; a line that does not fit is refused with its number.
    """
    path = Path(path)
    slots = layout.char_slots
    allowed = set(chars)
    texts = []
    for number, line in read_text_lines(path):
        text = clean_text(line)
        if len(text) != len(slots):
            rows = (f"; a text has no {ROW_BREAK}: write a plate of several rows on one line, top row first"
                    if ROW_BREAK in text else "")
            raise PlategenError(f"{path}:{number}: {shown_line(line)} has {len(text)} characters; "
                                f"the layout {layout.kinds} has {len(slots)}{rows}")
        unknown = sorted(set(text) - allowed)
        if unknown:
            raise PlategenError(f"{path}:{number}: {shown_line(line)} has {' '.join(unknown)}, not in the alphabet "
                                f"{''.join(chars)!r} ({ALPHABET})")
        for position, (ch, slot) in enumerate(zip(text, slots), start=1):
            if (kind_of(ch) == "province") != (slot.kind == "province") or (slot.allowed and not slot.own
                                                                             and ch not in slot.allowed):
                wanted = f"[{slot.allowed}]" if slot.allowed and not slot.own else slot.kind
                raise PlategenError(f"{path}:{number}: {shown_line(line)} has {ch!r} at position {position}, "
                                    f"a {wanted} slot in the layout {layout.kinds}")
        if text in READ_AS_MISSING:
            raise PlategenError(f"{path}:{number}: {shown_line(line)} is read by fast-plate-ocr (pandas) from plates.csv "
                                "as an empty plate, and would train as one; give another text")
        texts.append(text)
    return [texts[i % len(texts)] for i in range(n)]


def read_text_lines(path: Path | str) -> list[tuple[int, str]]:
    """A `--texts` file's lines that hold a plate text, with their numbers; refused when it cannot be read or
    holds none."""
    path = Path(path)
    if path.exists():  # a pipe would be waited on, /dev/zero read without end
        require_regular_file(path, "text")
    try:
        # -sig: Notepad starts its files with a BOM; only CR/LF end a line (splitlines also split at a form feed
        # or NEL, so errors named the wrong line, and one line's texts passed as several)
        lines = re.split(r"\r\n|\r|\n", path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PlategenError(f"{path}: cannot read texts file ({exc})") from exc
    found = [(number, line) for number, line in enumerate(lines, start=1)
             if unicodedata.normalize("NFKC", line).strip()]  # blank lines are skipped
    for number, line in found:
        if not clean_text(line):  # skipped, it moved every later text to another plate without a word
            raise PlategenError(f"{path}:{number}: {shown_line(line)} holds only separators, no plate text")
    if not found:
        raise PlategenError(f"{path}: no plate texts in the file")
    return found
