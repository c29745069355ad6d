"""Plate-disjoint splits per seed, and the leakage guard: no test plate trains, by physical plate and by content hash.

Test plates (whole physical plates, `dataset.plate_key`) come only from plates the checkpoint
never saw; training plates too, where enough unseen plates remain for test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from plategen.bench.request import BenchmarkRequest
from plategen.dataset import plate_key
from plategen.errors import PlategenError
from plategen.plates import Plate

MIN_TEST_IMAGES = 100  # training plates come from unseen plates only when this many unseen remain for test


@dataclass
class Split:
    seed: int
    train: list[int]  # plate indices into the data plates
    test: list[int]  # plate indices into the test plates (the data plates unless --test)
    train_seen: int  # training plates the generator saw


@dataclass
class SplitRecord:
    """One seed's split as report.json lists it: which plates trained and tested, by path and hash."""

    seed: int
    train_plates: list[str]
    train_sha256: list[str]
    test_plates: list[str]
    test_sha256: list[str]
    train_crops: int
    test_crops: int
    train_plates_seen_by_checkpoint: int
    generated_chars: list[str]  # the characters this seed's generators drew


def _groups(plates: Sequence[Plate], ids: Sequence[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i in ids:
        groups.setdefault(plate_key(plates[i]), []).append(i)
    return groups


def _draw(groups: dict[str, list[int]], order: Sequence[str], want: int, exact: bool) -> tuple[list[int], list[str]]:
    """Whole groups in `order` until `want` images; with `exact`, the last group is cut to fit
    (its other frames are then used nowhere). Returns (ids, groups used)."""
    ids: list[int] = []
    used: list[str] = []
    for key in order:
        if len(ids) >= want:
            break
        take = groups[key][: want - len(ids)] if exact else groups[key]
        ids.extend(take)
        used.append(key)
    return ids, used


def split_for_seed(plates: Sequence[Plate], n_train: int | None, n_test: int, seed: int,
                   seen: set[str] | frozenset[str] = frozenset(), external_test: bool = False,
                   allow_seen_test: bool = False) -> Split:
    """Plate-disjoint split of `plates` (grouped by physical plate, `dataset.plate_key`).

    Test plates (at least `n_test` images where there are enough, whole groups) come only from
    groups none of whose frames the generator saw (`seen`: content hashes). The `n_train`
    training plates come from the other unseen groups when at least `MIN_TEST_IMAGES` unseen
    images still remain for test (or no group is seen), else from seen groups (counted in `train_seen`). Only with
    `allow_seen_test`, and when fewer than `MIN_TEST_IMAGES` images are unseen, may test plates
    be seen ones. With `external_test`, all of `plates` may train and `test` is empty.
    `n_train` None: every plate outside the test plates trains (test plates drawn first, as above).
    """
    rng = np.random.default_rng([seed, 7])
    groups = _groups(plates, range(len(plates)))
    keys = sorted(groups)
    unseen = [k for k in keys if not any(plates[i].sha256 in seen for i in groups[k])]
    unseen_set = set(unseen)
    seen_keys = [k for k in keys if k not in unseen_set]
    unseen = [unseen[i] for i in rng.permutation(len(unseen))]
    seen_keys = [seen_keys[i] for i in rng.permutation(len(seen_keys))]
    n_unseen = sum(len(groups[k]) for k in unseen)
    if n_train is None:
        pool = unseen if n_unseen >= MIN_TEST_IMAGES or not allow_seen_test else unseen + seen_keys
        test, used = ([], []) if external_test else _draw(groups, pool, n_test, exact=False)
        train = [i for k in keys if k not in set(used) for i in groups[k]]
        return Split(seed, sorted(train), sorted(test), sum(plates[i].sha256 in seen for i in train))
    if external_test:
        train, _ = _draw(groups, unseen + seen_keys, n_train, exact=True)
        return Split(seed, sorted(train), [], sum(plates[i].sha256 in seen for i in train))
    if n_unseen >= n_train + MIN_TEST_IMAGES or not seen_keys:  # (no seen plates: a small folder, or no model)
        train, used = _draw(groups, unseen, n_train, exact=True)
        rest = [k for k in unseen if k not in set(used)]
    elif n_unseen >= MIN_TEST_IMAGES or not allow_seen_test:
        train, _ = _draw(groups, seen_keys, n_train, exact=True)
        rest = unseen
    else:  # --allow-overlap and hardly any unseen plates: test plates may be seen ones (reported)
        train, used = _draw(groups, seen_keys + unseen, n_train, exact=True)
        rest = unseen + [k for k in seen_keys if k not in set(used)]
    test, _ = _draw(groups, rest, n_test, exact=False)
    return Split(seed, sorted(train), sorted(test), sum(plates[i].sha256 in seen for i in train))


def _region(plate: Plate) -> str:
    """The region as a leakage check compares it: `ak` and ` AK ` name one state."""
    return plate.region.strip().casefold()


def _texts(plates: Sequence[Plate]) -> dict[str, set[str]]:
    """Plate text (reading order) -> the regions it was seen with."""
    found: dict[str, set[str]] = {}
    for p in plates:
        if p.text:
            found.setdefault(p.text, set()).add(_region(p))
    return found


def _shows_one_of(plate: Plate, texts: dict[str, set[str]]) -> bool:
    """Whether `plate` shows one of the plates of `texts`: the same characters in reading order, and the same
    region where both sides name one (openalpr-us has ANYTEXT plates of five states)."""
    regions = texts.get(plate.text)
    return regions is not None and (not _region(plate) or "" in regions or _region(plate) in regions)


def drop_test_plates(data_plates: list[Plate], test_plates: list[Plate] | None
                     ) -> tuple[list[Plate], list[Plate] | None, list[str]]:
    """The leakage guard for an external test folder: data plates that show a test plate (the same image, by
    content hash, or another image of it: another frame, a re-encoded copy) are left out of training and the
    judge, with a warning."""
    if test_plates is None:
        return data_plates, None, []
    test_sha, test_texts = {p.sha256 for p in test_plates}, _texts(test_plates)
    kept = [p for p in data_plates if p.sha256 not in test_sha and not _shows_one_of(p, test_texts)]
    if not kept:
        raise PlategenError("every plate of --data shows a plate of --test (the same image, or the same text): "
                            "nothing left to train on")
    dropped = len(data_plates) - len(kept)
    if not dropped:
        return data_plates, test_plates, []
    same_image = sum(p.sha256 in test_sha for p in data_plates)
    return kept, test_plates, [f"{dropped} plate(s) of --data show --test plates ({same_image} the same image, "
                               f"{dropped - same_image} another image with the same text) and were left out of "
                               "training and the judge"]


def characters_only_in_test(data_plates: Sequence[Plate], test_plates: Sequence[Plate] | None) -> list[str]:
    """A warning for --test plates that show characters no --data plate has: no recogniser here learns them,
    and nothing is generated for them (`pools.open_generators`), so those plates cannot be read right."""
    if test_plates is None:
        return []
    known = {c for p in data_plates for c in p.text}
    unknown = sorted({c for p in test_plates for c in p.text} - known)
    if not unknown:
        return []
    showing = sum(any(c not in known for c in p.text) for p in test_plates)
    return [f"--test: {showing} of {len(test_plates)} test plates show characters no --data plate has "
            f"({''.join(unknown)}); no recogniser here learns them and none is generated, so those plates are "
            "read wrong by every line"]


def drawn_outside_test(req: BenchmarkRequest, drawable: Sequence[str], data_plates: Sequence[Plate], split: Split
                       ) -> tuple[list[str], list[str]]:
    """The characters of `drawable` a seed's generators draw, and a warning naming those left out: the ones --data
    shows outside the seed's test plates (one that only they show would hand the generated lines their test labels).
    A fresh SAAE (--train-generator) is asked for them too, though it learns only from the seed's training plates."""
    shown = {c for i in judge_plates(split, len(data_plates), req.test is not None) for c in data_plates[i].text}
    drawn = [c for c in drawable if c in shown]
    if not drawn:
        raise PlategenError(f"{req.data}: no character the generators draw is on a plate outside seed {split.seed}'s "
                            "test plates; give more " + ("--data plates" if req.test is not None
                                                         else "plates, or fewer --test-plates"))
    left = "".join(c for c in drawable if c not in shown)
    return drawn, [f"seed {split.seed}: {left} only on this seed's test plates: not generated"] if left else []


def drawn_in_some_seed(records: Sequence[SplitRecord], charset: Sequence[str]) -> list[str]:
    """The characters some seed's generators drew, in `charset` order: the report's generated_chars."""
    drawn = {c for record in records for c in record.generated_chars}
    return [c for c in charset if c in drawn]


def seen_through_other_images(data_plates: Sequence[Plate], test_plates: Sequence[Plate] | None,
                              seen: set[str]) -> set[str]:
    """Content hashes of `test_plates` the checkpoint trained on through another image of them: a --data plate
    among its training plates (`seen`) that shows the same plate. For --test plates, and for --data's own, whose
    frames `split_for_seed` groups by `plate_key`, except a two-row plate's whose boxes sort apart (031KS)."""
    if test_plates is None:
        return set()
    seen_texts = _texts([p for p in data_plates if p.sha256 in seen])
    return {p.sha256 for p in test_plates if p.sha256 not in seen and _shows_one_of(p, seen_texts)}


def without_other_images_outside(plates: Sequence[Plate], test: list[int]) -> list[int]:
    """The test plates but those another image of which (the same text and region under another `plate_key`: a
    two-row plate's frames whose boxes sort apart, 031KS) lies outside the test plates, where it trains the recogniser
    or the judge. Without a checkpoint nothing else kept the two frames on one side."""
    inside = set(test)
    outside = _texts([p for i, p in enumerate(plates) if i not in inside])
    return [i for i in test if not _shows_one_of(plates[i], outside)]


def plan_splits(req: BenchmarkRequest, data_plates: Sequence[Plate], test_source: Sequence[Plate] | None,
                seen: set[str]) -> tuple[list[Split], list[str]]:
    """Every seed's split, checked before anything trains: enough training plates, some test plates,
    no image on both sides (by content hash), and test plates the checkpoint saw refused (or, with
    allow_overlap, returned as warnings)."""
    test_plates = test_source if test_source is not None else data_plates
    # a frame of a plate the checkpoint saw under another plate key (a two-row plate whose boxes sort apart)
    seen_elsewhere = seen_through_other_images(data_plates, data_plates, seen) if test_source is None else set()
    splits, warnings = [], []
    for s in range(req.seeds):
        split = split_for_seed(data_plates, req.real_plates, req.held_out_images, s, seen,
                               external_test=test_source is not None, allow_seen_test=req.allow_overlap)
        if test_source is not None:
            split.test = list(range(len(test_source)))
        else:  # drawn as before and then left out, so no other plate changes sides
            split.test = [i for i in split.test if data_plates[i].sha256 not in seen_elsewhere]
            split.test = without_other_images_outside(data_plates, split.test)
        if len(split.train) < (req.real_plates or 1):
            held = ("" if test_source is not None else f" beside the {req.held_out_images} test plates asked for "
                    "(--test-plates; for a checkpoint, test plates are plates it never saw)")
            raise PlategenError(f"--real-plates {req.real_plates or 'all'}: the {len(data_plates)} plates of {req.data} "
                                f"cannot give {req.real_plates or 'any'} training plates{held}")
        if not split.test:
            n_seen = sum(p.sha256 in seen for p in data_plates)
            raise PlategenError(f"{req.data}: no plates left for test: the checkpoint saw {n_seen} of its "
                                f"{len(data_plates)} plates; give --test with plates it never saw "
                                f"(or --allow-overlap to test on seen plates, which flatters it)"
                                if n_seen else f"{req.data}: no plates left for test; give --test DATA or more data")
        train_sha = {data_plates[i].sha256 for i in split.train}
        test_sha = {test_plates[i].sha256 for i in split.test}
        if train_sha & test_sha:
            raise PlategenError(f"{len(train_sha & test_sha)} test plate(s) are the same images as training plates "
                                f"(by content hash); the test data must be separate")
        if test_source is None:
            train_keys = {plate_key(data_plates[i]) for i in split.train}
            assert not train_keys & {plate_key(data_plates[i]) for i in split.test}, "split is not plate-disjoint"
        overlap = len(test_sha & seen)
        if overlap:
            msg = (f"seed {s}: {overlap} of {len(split.test)} test plates were among the checkpoint's training "
                   "plates (by content hash, or another image of the plate); its accuracy on them is not a fair "
                   "measure")
            if not req.allow_overlap:
                raise PlategenError(msg + ". Use plates it never saw (--test) or pass --allow-overlap")
            warnings.append(msg)
        if req.test_plates is not None and len(split.test) < req.test_plates:  # asked for, and silently fewer
            warnings.append(f"seed {s}: --test-plates {req.test_plates}, but only {len(split.test)} plates are left "
                            "for test (of physical plates the checkpoint never saw, outside the training plates); "
                            "the seed tests on those")
        splits.append(split)
    return splits, warnings


def judge_plates(split: Split, n_data: int, external_test: bool) -> list[int]:
    """The judge trains on every data plate outside the test plates (all of them with --test)."""
    return list(range(n_data)) if external_test else sorted(set(range(n_data)) - set(split.test))


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def split_record(req: BenchmarkRequest, split: Split, data_plates: Sequence[Plate], test_plates: Sequence[Plate],
                 train_crops: int, test_crops: int, generated_chars: Sequence[str]) -> SplitRecord:
    return SplitRecord(
        seed=split.seed,
        train_plates=[_rel(data_plates[i].image_path, req.data) for i in split.train],
        train_sha256=[data_plates[i].sha256 for i in split.train],
        test_plates=[_rel(test_plates[i].image_path, req.test or req.data) for i in split.test],
        test_sha256=[test_plates[i].sha256 for i in split.test],
        train_crops=train_crops, test_crops=test_crops, train_plates_seen_by_checkpoint=split.train_seen,
        generated_chars=list(generated_chars))
