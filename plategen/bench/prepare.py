"""What both benchmark levels start from: the plates read, the generators opened, the splits planned, and the
warnings about them; the character level then cuts crops, the plate level scales whole plates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from plategen.bench.pools import Generators, copy_of_training_folder, open_generators
from plategen.bench.request import BenchmarkRequest
from plategen.bench.runs import Timing
from plategen.bench.splits import (Split, characters_only_in_test, drop_test_plates, plan_splits,
                                   seen_through_other_images)
from plategen.dataset import charset_of
from plategen.glyphs import Font, shipped_fonts
from plategen.plates import ImportResult, Plate, load_plates


@dataclass
class Prepared:
    data_plates: list[Plate]  # --data's plates less those that show a --test plate
    test_source: list[Plate] | None  # --test's plates (None: the test plates are a split of data_plates)
    text_only: int  # of those, plates whose text could not be segmented (the plate level reads them)
    charset: list[str]
    fonts: list[Font]
    gens: Generators
    splits: list[Split]
    leak_warnings: list[str]  # already said: the leakage guard's
    warnings: list[str]  # not yet said: the caller adds its own, then says them all


def prepare_run(req: BenchmarkRequest, warn: Callable[[str], None], timing: Timing, with_text_only: bool) -> Prepared:
    """Import --data (and --test), guard against leakage, open the generators and plan every seed's split.
    `with_text_only`: plates without character boxes take part (a whole-plate recogniser needs only the text)."""
    def plates_of(result: ImportResult) -> list[Plate]:
        return result.plates + result.text_only if with_text_only else result.plates

    with timing("import"):
        data_import = load_plates(req.data, allow_outside=req.allow_outside_paths)
        test_import = load_plates(req.test, allow_outside=req.allow_outside_paths) if req.test is not None else None
    data_plates, test_source, leak_warnings = drop_test_plates(
        plates_of(data_import), plates_of(test_import) if test_import is not None else None)
    for w in leak_warnings:  # said before the split, which may then fail on the plates that are left
        warn(w)
    text_only_ids = {id(p) for p in data_import.text_only + (test_import.text_only if test_import else [])}
    text_only = sum(id(p) in text_only_ids for p in data_plates + (test_source or [])) if with_text_only else 0
    charset = charset_of(data_plates + (test_source or []))
    fonts = shipped_fonts()
    gens = open_generators(req, charset, fonts, charset_of(data_plates))
    seen = gens.seen | seen_through_other_images(plates_of(data_import), test_source, gens.seen)
    splits, split_warnings = plan_splits(req, data_plates, test_source, seen)
    # the test plates' folder: with --test, --data only trains
    tested_folder, tested_import = (req.test, test_import) if test_import is not None else (req.data, data_import)
    warnings = (data_import.left_out() + (test_import.left_out() if test_import else []) + gens.warnings
                + copy_of_training_folder(gens, tested_folder, [p.sha256 for p in plates_of(tested_import)])
                + characters_only_in_test(data_plates, test_source) + split_warnings)
    return Prepared(data_plates, test_source, text_only, charset, fonts, gens, splits, leak_warnings, warnings)
