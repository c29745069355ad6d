import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from plategen.charset import CHINESE_PROVINCES, CHINESE_SPECIAL, label_classes, parse_charset
from plategen.checkpoint import DEFAULT_CHECKPOINT, SHIPPED_CHECKPOINTS, load_checkpoint
from plategen.glyphs import CROP_MARGIN, shipped_fonts
from plategen.cli import app
from plategen.errors import PlategenError
from plategen.plates import clean_text, load_plates, read_image
from plategen.synth import Diversity, SynthRequest, synthesize
from plategen.synth import engine as engine_module
from plategen.synth.engine import Batch, chinese_model
from plategen.synth.exports import FinishedPlate, write_plate_folder
from plategen.segment import privacy_masks
from plategen.synth.plates import (PREVIEW_HEIGHT, Canvas, _at_height, character_synth, drawn_in_grey, erased_boxes,
                                   hides_dot, load_style_plates, make_plates, masks_under, plan_plates, plate_layouts,
                                   plate_characters, shape_style, style_plate, wants_chinese)
from plategen.synth.writers import decode_png, read_shards
from conftest import copy_plates, make_checkpoint, synth_request, webdataset_samples

CHARS = parse_charset("0-9A-Z") + list("京沪浙")
UC3M = ("uc3m-lp", "images/00011_BN-695-B-D.jpg")
CCPD = ("ccpd-crops", "images/京PL3N67.jpg")
ALPR = ("ak1165.jpg", "ak399.jpg")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plate-es.jpg"


@pytest.fixture(scope="module")
def ckpt_cn(tmp_path_factory) -> Path:
    """A small random model whose charset has provinces, so CCPD plates can be drawn."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "random-cn.safetensors", CHARS)


@pytest.fixture(scope="module")
def styles(data_dir, tmp_path_factory) -> list[Path]:
    """A uc3m plate (YOLO boxes of its data folder), a CCPD crop (text in its file name) and a
    small openalpr data folder (CSV text, segmented)."""
    alpr = tmp_path_factory.mktemp("alpr")
    (alpr / "images").mkdir()
    rows = {r["image_path"]: r for r in csv.DictReader((data_dir / "openalpr-us" / "labels.csv").open())}
    with (alpr / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["image_path", "region", "plate_text"])
        writer.writeheader()
        for name in ALPR:
            shutil.copy(data_dir / "openalpr-us" / "images" / name, alpr / "images" / name)
            writer.writerow(rows[f"images/{name}"])
    return [data_dir / UC3M[0] / UC3M[1], data_dir / CCPD[0] / CCPD[1], alpr]


def request(styles, ckpt, out, n, **kw) -> SynthRequest:
    return SynthRequest(styles=list(styles), chars=kw.pop("chars", CHARS), n=n, out=out, checkpoint=ckpt,
                        device="cpu", plates=True, batch_size=kw.pop("batch_size", 4), **kw)


def tree(out: Path) -> dict[str, bytes]:
    """Every file's bytes but meta.json (it records the time taken)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "meta.json"}


def manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run(styles, ckpt_cn, tmp_path_factory):
    out = tmp_path_factory.mktemp("plates") / "out"
    return synthesize(request(styles, ckpt_cn, out, 12, exports=["lprnet", "paddleocr"])), out


def test_every_plate_reads_back_with_its_exact_text_and_boxes(run, styles):
    report, out = run
    layouts = {s.name: s.layout for s in load_style_plates(styles)[0]}
    rows = manifest(out)
    assert report.n == len(rows) == 12 and report.styles == 4  # uc3m, ccpd and the two openalpr plates
    assert {Path(r["style"]).parent.parent.name for r in rows} >= {"uc3m-lp", "ccpd-crops"}
    result = load_plates(out)
    assert result.format == "yolo" and not result.problems and not result.skipped
    by_path = {f"images/{p.image_path.name}": p for p in result.plates}
    assert sorted(by_path) == [r["image_path"] for r in rows]
    for row in rows:
        read = by_path[row["image_path"]]
        layout = layouts[row["style"]]
        boxes = [s.box for s in layout.char_slots]
        assert read.box_origin == "annotated"
        assert read_image(read.image_path).shape[:2] == (layout.size[1], layout.size[0])
        assert (read.text, list(read.boxes)) == (row["text"], boxes)  # reading order, two-row plates too
        assert len(row["check"].split(",")) == len(row["text"])
    with (out / "plates.csv").open(encoding="utf-8", newline="") as handle:
        assert [(r["image_path"], r["plate_text"]) for r in csv.DictReader(handle)] == \
            [(r["image_path"], r["text"]) for r in rows]
    assert any(r["text"][0] in "京沪浙" for r in rows)  # the CCPD style's province slot


def test_make_plates_gives_in_memory_exactly_the_plates_the_synth_run_writes(run, styles, ckpt_cn):
    """The benchmark's plates come from the synth run's own path: same plan, same pixels, same texts and checks."""
    _, out = run
    rows = manifest(out)
    ckpt = load_checkpoint(ckpt_cn)
    style_plates = load_style_plates(styles)[0]
    plan = plan_plates(style_plates, 12, CHARS, seed=0)
    made = make_plates(ckpt.generator, ckpt.discriminator, ckpt.meta["charset"], style_plates, plan, CHARS,
                       shipped_fonts(), seed=0, batch_size=4)
    assert made.texts == plan.texts == [r["text"] for r in rows]
    assert made.checks == [r["check"] for r in rows] and "fail" in ",".join(made.checks)
    for image, row in zip(made.images, rows):
        assert np.array_equal(image, read_image(out / row["image_path"]))
    unchecked = make_plates(ckpt.generator, None, None, style_plates, plan, CHARS, shipped_fonts(), seed=0,
                            batch_size=4)  # first draws: the plates whose check failed look different
    assert unchecked.texts == plan.texts and not any(c.strip(",") for c in unchecked.checks)
    failed = [i for i, c in enumerate(made.checks) if "fail" in c or c.count("pass") < len(plan.texts[i])]
    assert any(not np.array_equal(unchecked.images[i], made.images[i]) for i in failed)


def test_which_style_plates_take_the_extra_plates_is_a_seeded_choice(styles):
    """With --n below the number of style plates only the first --n given were used, whatever the seed (--n 60 over
    uc3m-lp, ccpd-crops and openalpr-us drew 60 Spanish plates); where --n is a multiple of it, the turns are as
    before, so such runs and the plate benchmark's plans keep their bytes."""
    style_plates = load_style_plates(styles)[0]  # uc3m, CCPD and openalpr style plates
    count = len(style_plates)
    used = {int(plan_plates(style_plates, 1, CHARS, seed=seed).style[0]) for seed in range(40)}
    assert used == set(range(count))  # the first style plate only, before
    for seed in range(4):
        counts = np.bincount(plan_plates(style_plates, 2 * count + 1, CHARS, seed=seed).style, minlength=count)
        assert sorted(counts) == [2] * (count - 1) + [3]
        whole = plan_plates(style_plates, 3 * count, CHARS, seed=seed).style  # a multiple: the earlier turns exactly
        assert whole.tolist() == np.random.default_rng([seed, 5]).permutation(np.arange(3 * count) % count).tolist()


def test_repeated_draws_are_generated_once_and_their_bytes_do_not_depend_on_the_chunking(styles, ckpt_cn,
                                                                                         monkeypatch):
    """A plate run's draws repeat (a few glyph variants per character, a few style entries per style
    plate): each block of them is generated once, on its own, so chunks, threads and a memo too small
    to keep them all give the same draws, checks and pixels."""
    ckpt = load_checkpoint(ckpt_cn)
    style_plates = load_style_plates(styles[1:2])[0]  # the CCPD crop
    plan = plan_plates(style_plates, 60, CHARS, seed=1)
    run = engine_module.Engine.run
    rows = []
    monkeypatch.setattr(engine_module.Engine, "run", lambda self, glyph, style: rows.append(len(glyph)) or
                        run(self, glyph, style))

    def synth(threads: int, memo_rows: int | None = None):
        made = character_synth(ckpt.generator, ckpt.discriminator, ckpt.meta["charset"], style_plates, plan, CHARS,
                               shipped_fonts(), 1, "cpu", 8)
        made.threads = threads
        if memo_rows is not None:
            made.memo.limit = memo_rows
        return made

    whole = synth(1).generate(np.arange(420))
    generated = sum(rows)
    draws = len(whole.ids) + int(whole.attempts.sum())  # at least this many: retries stop at the first pass
    assert (whole.attempts == 3).any() and generated < draws  # without the memo: generated >= draws
    small = synth(2, memo_rows=4)  # blocks dropped and made again
    chunked = Batch.concat([small.generate(np.arange(a, min(a + 35, 420))) for a in range(0, 420, 35)])
    assert sum(rows) - generated > generated  # it did make blocks again
    for f in dataclasses.fields(Batch):
        assert np.array_equal(getattr(whole, f.name), getattr(chunked, f.name)), f.name


@pytest.mark.parametrize("name, why", [
    ("photo.jpg", "letters and digits, no lower case"),
    ("IMG_0001.jpg", "a camera's name"),
    # a uc3m-lp plate copied out of its folder was drawn as plate 00011, digits where its letters are
    ("00011_BN-695-B-D.jpg", "both 00011 and BN695BD could be the plate text"),
])
def test_a_style_image_outside_any_data_folder_and_not_named_by_its_text_is_refused(styles, ckpt_cn, tmp_path,
                                                                                   name, why):
    bare = tmp_path / name
    shutil.copy(styles[0], bare)
    out = tmp_path / "out"
    with pytest.raises(PlategenError, match=rf"{name}: no character boxes, and the file name is no plate text "
                                            rf"\({why}\); .* name the file by its plate text") as caught:
        synthesize(request([bare], ckpt_cn, out, 2))
    assert "\n" not in str(caught.value) and not out.exists()


def test_fast_plate_ocrs_own_validator_passes_the_output(run):
    _, out = run
    command = [sys.executable, "-m", "fast_plate_ocr.cli.validate_dataset",
               "-a", "plates.csv", "--plate-config-file", "plate_config.yaml"]
    result = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Errors   │     0" in result.stdout


def test_same_seed_same_bytes_and_another_seed_other_plates(styles, ckpt_cn, tmp_path):
    first = synthesize(request(styles[:2], ckpt_cn, tmp_path / "a", 6, seed=3)).out
    again = synthesize(request(styles[:2], ckpt_cn, tmp_path / "b", 6, seed=3)).out
    other = synthesize(request(styles[:2], ckpt_cn, tmp_path / "c", 6, seed=4)).out
    assert tree(first) == tree(again)
    assert tree(first)["images/000000.png"] != tree(other)["images/000000.png"]
    assert [r["text"] for r in manifest(first)] != [r["text"] for r in manifest(other)]


@pytest.mark.parametrize("which, n, memo", [(slice(0, 2), 10, False), (slice(1, 2), 40, True)],
                         ids=["each-draw-generated", "draws-through-the-memo"])
def test_an_interrupted_run_resumes_to_the_same_bytes(styles, ckpt_cn, tmp_path, monkeypatch, which, n, memo):
    """Both ways of drawing: few plates per style generate every draw in batches; many plates of one style
    repeat their draws, which a DrawMemo makes once (`plates.draws_repeat`)."""
    whole = synthesize(request(styles[which], ckpt_cn, tmp_path / "whole", n, batch_size=2)).out
    assert json.loads((whole / "meta.json").read_text(encoding="utf-8"))["draw_memo"] is memo
    generate = engine_module.Synthesizer.generate
    calls = []

    def dies_after_two_batches(self, ids):
        calls.append(len(ids))
        if len(calls) > 2:
            raise KeyboardInterrupt
        return generate(self, ids)

    monkeypatch.setattr(engine_module.Synthesizer, "generate", dies_after_two_batches)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request(styles[which], ckpt_cn, cut, n, batch_size=2))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    journalled = len((cut / "progress.tsv").read_text().splitlines())
    assert 0 < journalled <= 4  # a batch whose writing had not started when it stopped is redone
    resumed = synthesize(request(styles[which], ckpt_cn, cut, n, resume=True, batch_size=None))
    assert (resumed.resumed, resumed.generated) == (journalled, n - journalled)
    assert tree(cut) == tree(whole)


def test_a_run_begun_by_a_plategen_that_drew_otherwise_is_not_resumed(styles, ckpt_cn, tmp_path, monkeypatch):
    """Its images would mix two ways of drawing (and a character run's labels would move between ids)."""
    generate = engine_module.Synthesizer.generate
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request(styles[:2], ckpt_cn, cut, 10, batch_size=2))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    del meta["drawing"]  # as a run of the plategen before the drawing number was kept
    (cut / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws differently \(drawing 1, this one "):
        synthesize(request(styles[:2], ckpt_cn, cut, 10, resume=True, batch_size=None))


def test_resume_refuses_a_run_whose_chinese_plates_took_other_letters(styles, ckpt_cn, tmp_path, monkeypatch):
    """With the default alphabet a mixed run's Chinese plates skip I and O; with --chars (the same alphabet), or
    under the plategen before that rule, they do not. Resuming across the two kept written plates under new
    texts (manifest and plates.csv against the pixels and labels/). A run from the plategen that skipped them
    but did not record it resumes."""
    mixed = [styles[0], styles[1]]  # a Spanish and a Chinese style plate
    whole = synthesize(request(mixed, ckpt_cn, tmp_path / "whole", 10, chars=None, batch_size=2))
    generate = engine_module.Synthesizer.generate
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request(mixed, ckpt_cn, cut, 10, chars=None, batch_size=2))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    assert meta["chinese_serials_skip"] == "IO" and {"I", "O"} <= set(meta["charset"])
    with pytest.raises(PlategenError, match=r"other settings than the run there began with \(chinese_serials_skip\)"):
        synthesize(request(mixed, ckpt_cn, cut, 10, chars=meta["charset"], resume=True, batch_size=None))

    def written_by(drop):
        (cut / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k not in drop}), encoding="utf-8")

    written_by({"chinese_serials_skip", "chinese_checkpoint_sha256"})  # before allchars and the rule
    with pytest.raises(PlategenError, match=r"draws this run otherwise \(chinese_serials_skip\)"):
        synthesize(request(mixed, ckpt_cn, cut, 10, chars=None, resume=True, batch_size=None))
    written_by({"chinese_serials_skip"})  # the rule, not yet recorded
    synthesize(request(mixed, ckpt_cn, cut, 10, chars=None, resume=True, batch_size=None))
    assert tree(cut) == tree(whole.out)


@pytest.mark.parametrize("key, changed, unchanged, how", [("large_erasing", 2, 1, {}),
                                                          ("design_light", 1, 1, {"design": "yellow"}),
                                                          ("hidden_dot", 3, 1, {}),
                                                          ("erased_masks", 4, 1, {"pattern": "DDDD LLL"}),
                                                          ("spread_slots", 4, 1, {"pattern": "DDD"}),
                                                          ("grey_styles", 4, 1, {})])
def test_a_run_begun_before_a_drawing_change_resumes_only_on_plates_it_leaves_alone(key, changed, unchanged, how, styles,
                                                                                   data_dir, ckpt_cn, tmp_path,
                                                                                   monkeypatch):
    """`large_erasing`: US plates' characters are now erased with a capped inpainting radius (3x faster);
    `design_light`: a --design repaints the paper otherwise (a run without one is untouched); `hidden_dot`: a dot
    slot inside a character box is erased and drawn anew (皖A05279; 京PL3N67's is clear of its boxes); `erased_masks`:
    a pattern's slots over privacy masks have them painted as paper (the shipped example); `spread_slots`: a shorter
    pattern's characters keep the plate's own size (and paint the masks under them); `grey_styles`: dark-on-light
    plates (the example, not a blue CCPD plate) are drawn from their grey levels. A run
    begun before on plates the change touches would mix two drawings and is refused; one on plates it leaves
    alone draws as before and resumes."""
    generate = engine_module.Synthesizer.generate
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    styles = styles + [data_dir / "ccpd-crops" / "images" / "皖A05279.jpg", EXAMPLE]
    for style, value, kw in ((styles[changed], 1, how), (styles[unchanged], None, {})):
        cut = tmp_path / f"cut-{value}"
        with pytest.raises(KeyboardInterrupt):
            synthesize(request([style], ckpt_cn, cut, 6, batch_size=2, **kw))
        meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
        assert (meta[key] is not None) == (value is not None)  # the number the drawing has now, or None
        del meta[key]  # as the plategen before wrote it
        (cut / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if value:
            with pytest.raises(PlategenError, match=rf"begun by an earlier plategen that draws this run otherwise "
                                                    rf"\({key}\)"):
                synthesize(request([style], ckpt_cn, cut, 6, resume=True, batch_size=None, **kw))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    assert synthesize(request([styles[unchanged]], ckpt_cn, tmp_path / "cut-None", 6, resume=True, batch_size=None)).n == 6


def test_a_run_whose_labels_took_the_alphabets_ids_resumes_only_where_they_are_the_same(ckpt_cn, tmp_path, monkeypatch):
    """Before `classes`, a label's id was its character's place in the run's alphabet: a resume would have written
    the rest under other ids. Where the alphabet was 0-9A-Z the ids are the same, and the run resumes."""
    generate = engine_module.Synthesizer.generate
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    for chars, same in ((parse_charset("0-9BCDFGHJKLMNPRSTVWXYZ"), False), (parse_charset("0-9A-Z"), True)):
        cut = tmp_path / f"cut-{same}"
        with pytest.raises(KeyboardInterrupt):
            synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2, chars=chars))
        meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
        del meta["classes"]  # as the plategen before wrote it
        (cut / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if not same:
            with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise "
                                                    r"\(classes\)"):
                synthesize(request([EXAMPLE], ckpt_cn, cut, 6, resume=True, batch_size=None, chars=chars))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    assert synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "cut-True", 6, resume=True, batch_size=None,
                              chars=parse_charset("0-9A-Z"))).n == 6


def test_a_plate_run_whose_check_redrew_only_misreads_is_not_resumed(ckpt_cn, tmp_path, monkeypatch):
    """Its characters read right but unsure were kept; this plategen draws them again (`plan.CHECK_SURE`)."""
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2))
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    del meta["check_sure"]  # as the plategen before wrote it
    (cut / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise \(check_sure\)"):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, resume=True, batch_size=None))


def test_a_run_that_erased_masks_by_an_earlier_rule_is_not_resumed(ckpt_cn, tmp_path, monkeypatch):
    """`erased_masks` 1 told masks from paper otherwise; a resume mixed both drawings without a word."""
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2, pattern="DDDD LLL"))
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    assert meta["erased_masks"] == 2
    for earlier in (1, None):  # None: a rule that found no mask on this plate, with the same options
        (cut / "meta.json").write_text(json.dumps({**meta, "erased_masks": earlier}), encoding="utf-8")
        with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise "
                                                r"\(erased_masks\)"):
            synthesize(request([EXAMPLE], ckpt_cn, cut, 6, resume=True, batch_size=None, pattern="DDDD LLL"))


def test_letter_slots_stay_upper_case_whatever_the_labels_case(ckpt_cn, tmp_path):
    """A style plate labelled in lower case has letter slots like any other (they kept its own bg when lower case
    was made an "other" kind); a [a-z] slot takes lower case, the L slots beside it do not."""
    folder = tmp_path / "lower"
    shutil.copytree(EXAMPLE.parent, folder)
    classes = folder / "classes.txt"
    classes.write_text(classes.read_text(encoding="utf-8").lower(), encoding="utf-8")
    out = synthesize(request([folder], ckpt_cn, tmp_path / "out", 8, chars=None)).out
    assert all(t[3:].isupper() and t[:3].isdigit() for t in (r["text"] for r in manifest(out)))
    assert len({r["text"][3:] for r in manifest(out)}) > 1
    mixed = synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "mixed", 8, chars=None, pattern="[a-z]DDLL")).out
    assert all(t[0].islower() and t[3:].isupper() for t in (r["text"] for r in manifest(mixed)))


def test_a_run_whose_letter_slots_took_lower_case_is_not_resumed(ckpt_cn, tmp_path, monkeypatch):
    """Before `upper_letters`, an alphabet with lower case put it into the letter slots: other texts."""
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    chars = parse_charset("0-9A-Za-z")
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2, chars=chars, check=False))
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    assert meta["upper_letters"] == 1
    del meta["upper_letters"]  # as the plategen before wrote it
    (cut / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise "
                                            r"\(upper_letters\)"):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, resume=True, batch_size=None, chars=chars, check=False))


def test_an_older_shards_run_resumes_though_it_recorded_no_classes(ckpt_cn, tmp_path, monkeypatch):
    """Shards hold no class ids, so the ids' rule is no reason to refuse them."""
    generate = engine_module.Synthesizer.generate
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    chars = parse_charset("0-9BCDFGHJKLMNPRSTVWXYZ")
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2, chars=chars, format="shards"))
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    assert meta["classes"] is None
    del meta["classes"]
    (cut / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    assert synthesize(request([EXAMPLE], ckpt_cn, cut, 6, resume=True, batch_size=None, chars=chars,
                              format="shards")).n == 6


def test_a_pattern_or_texts_file_wrong_in_itself_is_not_blamed_on_a_style_plate(ckpt_cn, tmp_path):
    for kw, message in (({"pattern": "DDX"}, r"unknown mark\(s\) X; use D L P O \[\.\.\.\] \. _ and / between rows$"),
                        ({"texts": tmp_path / "missing.txt"}, r"missing.txt: cannot read texts file"),
                        ({"pattern": ".DDDD"}, r"not at a row's start or end$")):
        with pytest.raises(PlategenError, match=message) as err:
            synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "out", 4, **kw))
        assert "style plate" not in str(err.value)


def test_an_unfinished_plate_run_read_as_data_says_to_finish_it(ckpt_cn, tmp_path, monkeypatch):
    """inspect, train and benchmark told the user to add the classes.txt the run writes last."""
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2))
    with pytest.raises(PlategenError, match=r"an unfinished plategen synth --plates run; finish it with its own "
                                            r"command and --resume"):
        load_plates(cut)


def test_a_resume_may_space_its_pattern_otherwise(ckpt_cn, tmp_path, monkeypatch):
    """Spaces in a pattern mean nothing, yet 'DDDD LLL' resumed as DDDDLLL was refused as other settings."""
    generate = engine_module.Synthesizer.generate
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([EXAMPLE], ckpt_cn, cut, 6, batch_size=2, pattern="DDDD LLL"))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    whole = synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "whole", 6, batch_size=2, pattern="DDDDLLL")).out
    assert synthesize(request([EXAMPLE], ckpt_cn, cut, 6, resume=True, batch_size=None, pattern="DDDDLLL")).n == 6
    assert tree(cut) == tree(whole)


def test_a_resume_with_another_n_names_n_not_how_draws_repeat(ckpt_cn, tmp_path):
    """`draw_memo` follows --n; a resume with another --n was blamed on "an earlier plategen"."""
    out = synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "dm", 2)).out
    with pytest.raises(PlategenError, match=r"--resume with other settings than the run there began with \(--n\)"):
        synthesize(request([EXAMPLE], ckpt_cn, out, 200, resume=True, batch_size=None))


def test_a_resume_whose_texts_file_was_edited_says_its_lines_changed(ckpt_cn, tmp_path):
    """The same --texts path with other lines named only "(--texts)", as if the option had been left out."""
    texts = tmp_path / "texts.txt"
    texts.write_text("123BC\n567FG\n", encoding="utf-8")
    out = synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "t", 2, texts=texts)).out
    texts.write_text("123BC\n999FG\n", encoding="utf-8")
    with pytest.raises(PlategenError, match=r"other settings than the run there began with \(--texts \(the file's "
                                            r"lines\)\)"):
        synthesize(request([EXAMPLE], ckpt_cn, out, 2, texts=texts, resume=True, batch_size=None))


def test_a_run_whose_characters_were_placed_leaning_is_not_resumed_upright(styles, ckpt_cn, tmp_path, monkeypatch):
    """59e3702 placed characters leaning and recorded `leaning: 1`; characters stand upright again since."""
    monkeypatch.setattr(engine_module.Synthesizer, "generate", lambda self, ids: (_ for _ in ()).throw(KeyboardInterrupt))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        synthesize(request(styles[1:2], ckpt_cn, cut, 6, batch_size=2))
    meta = json.loads((cut / "meta.json").read_text(encoding="utf-8"))
    assert meta["leaning"] is None
    (cut / "meta.json").write_text(json.dumps({**meta, "leaning": 1}), encoding="utf-8")
    with pytest.raises(PlategenError, match=r"begun by an earlier plategen that draws this run otherwise \(leaning\)"):
        synthesize(request(styles[1:2], ckpt_cn, cut, 6, resume=True, batch_size=None))


def test_a_resume_with_another_design_names_the_option_not_what_it_draws(data_dir, ckpt_cn, tmp_path):
    """Resuming a green run without --design named `design, design_light, hidden_dot`, two of them no option."""
    style = [data_dir / "ccpd-crops" / "images" / "皖A05279.jpg"]
    out = synthesize(request(style, ckpt_cn, tmp_path / "green", 2, design="green")).out
    for design in (None, "yellow"):
        with pytest.raises(PlategenError, match=r"other settings than the run there began with \(--design\); repeat the "
                                                r"first command's options, or start again with --overwrite$"):
            synthesize(request(style, ckpt_cn, out, 2, design=design, resume=True, batch_size=None))


def test_a_dot_slot_inside_a_characters_box_is_erased_and_drawn_anew(data_dir):
    """皖A05279's boxes overlap round its dot, so its dot slot is a pixel column inside the 3rd character's box.
    Kept as the plate's own dot, that column of the old character stayed on every plate drawn from it."""
    (style,), _ = load_style_plates([data_dir / "ccpd-crops" / "images" / "皖A05279.jpg"])
    (dot,) = [s.box for s in style.layout.slots if s.kind == "separator"]
    assert hides_dot(style) and erased_boxes(style, style.layout, None)[1:] == ([], [dot])
    background, _ = Canvas([style]).get(0)
    x0, y0, x1, y1 = dot
    c0, c1, c2, c3 = style.layout.char_slots[2].box
    grey = lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(float)  # noqa: E731
    paper = np.median(grey(background)[c1:c3, c0:c2])
    stroke = np.abs(grey(style.image)[c1:c3, c0:c2] - paper).max()
    quarter = (y1 - y0) // 4  # the column's ends: the new dot goes in its middle
    ends = [grey(background)[y0:y0 + quarter, x0:x1], grey(background)[y1 - quarter:y1, x0:x1]]
    assert max(np.abs(end - paper).max() for end in ends) < 0.25 * stroke


def test_a_style_folder_whose_csv_leaves_it_is_drawn_with_allow_outside_paths(data_dir, ckpt_cn, tmp_path):
    """The refusal of a CSV's absolute image paths told synth users to give --allow-outside-paths, which only
    inspect, train and benchmark had."""
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = {r["image_path"]: r for r in csv.DictReader((data_dir / "openalpr-us" / "labels.csv").open())}
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["image_path", "plate_text"])
        writer.writeheader()
        for name in ALPR:
            writer.writerow({"image_path": str(data_dir / "openalpr-us" / "images" / name),
                             "plate_text": rows[f"images/{name}"]["plate_text"]})
    with pytest.raises(PlategenError, match="--allow-outside-paths"):
        synthesize(request([folder], ckpt_cn, tmp_path / "refused", 2))
    assert not (tmp_path / "refused").exists()
    report = synthesize(request([folder], ckpt_cn, tmp_path / "out", 2, allow_outside_paths=True))
    assert report.n == 2 and len(list((tmp_path / "out" / "images").glob("*.png"))) == 2
    result = CliRunner().invoke(app, ["synth", "--style", str(EXAMPLE), "--n", "2", "--out", str(tmp_path / "c"),
                                      "--allow-outside-paths"])
    assert result.exit_code == 2 and "options of --plates" in result.output


def test_dark_on_light_plates_are_drawn_from_their_grey_levels(imported, data_dir, tmp_path):
    """The generator drew white-on-blue characters for a cyan Spanish plate (01875), broken once placed; a placed
    character keeps only its coverage and takes the plate's own ink, so dark-on-light plates hand the generator
    their grey levels. A blue Chinese plate, light on dark, keeps its colours (in grey they read worse)."""
    plates = {p.image_path.name: p for p in imported("uc3m-lp").plates}
    cyan = style_plate(plates["01875_AD-387--BG.jpg"])
    (example,), _ = load_style_plates([EXAMPLE])
    (blue,), _ = load_style_plates([data_dir / "ccpd-crops" / "images" / "皖A0V262.jpg"])
    for plate in (cyan, example):
        assert drawn_in_grey(plate)
        grey = shape_style(plate)
        assert grey.shape == plate.image.shape and (grey == grey[..., :1]).all()  # R = G = B
        assert np.array_equal(grey[..., 0], cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY))
    assert not drawn_in_grey(blue) and shape_style(blue) is blue.image
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "random.safetensors", CHARS))
    plan = plan_plates([cyan, blue], 2, CHARS, seed=0)
    synth = character_synth(ckpt.generator, None, None, [cyan, blue], plan, CHARS, shipped_fonts(), 0, "cpu", 4)
    assert np.array_equal(synth.styles[0].image, shape_style(cyan)) and synth.styles[1].image is blue.image


def test_a_pattern_paints_the_privacy_masks_under_its_slots_as_paper():
    """The shipped example's two privacy masks hide its 4th digit and 1st letter. 'DDDD LLL' spreads seven slots
    over them; no real plate prints characters on grey blocks, so the masks are painted over as paper. Its own
    five slots leave them grey."""
    (style,), _ = load_style_plates([EXAMPLE])
    masks = [m for m in privacy_masks(style.image) if np.median(style.image[m[1]:m[3], m[0]:m[2]]) < 200]
    assert len(masks) == 2  # the grey ones (the paper between them is as flat)
    grey = lambda image, box: float(np.median(image[box[1]:box[3], box[0]:box[2]]))  # noqa: E731
    paper = float(np.percentile(style.image, 75))  # most of the plate is paper
    (layout,) = plate_layouts([style], "DDDD LLL")
    assert masks_under(style, style.layout) == []
    own, _ = Canvas([style]).get(0)
    spread, _ = Canvas([style], [layout]).get(0)
    for mask in masks:
        assert grey(own, mask) < paper - 50  # left grey under the plate's own layout
        assert abs(grey(spread, mask) - paper) < 12, (mask, grey(spread, mask), paper)
    # a shorter pattern's three digits, centred at the plate's own size, sit on a mask: it went grey under them
    (short,) = plate_layouts([style], "DDD")
    covered = [m for m in masks if any(s.box[0] < m[2] and m[0] < s.box[2] for s in short.char_slots)]
    assert covered
    shorter, _ = Canvas([style], [short]).get(0)
    for mask in covered:
        assert abs(grey(shorter, mask) - paper) < 12, (mask, grey(shorter, mask), paper)


def test_the_masks_of_tilted_and_dim_plates_are_found(imported):
    """Two reviews' finds: a tilted plate's mask lies off the characters' median row (00023, 00110), and a dim
    plate's is a few grey levels off its paper (00177: 104 against 113); both were left grey under new slots."""
    plates = {p.image_path.name: p for p in imported("uc3m-lp").plates}
    for name in ("00023_AD-0-54-PX.jpg", "00110_AD-180-FH-.jpg", "00177_AD-445--WR.jpg"):
        style = style_plate(plates[name])
        assert masks_under(style, plate_layouts([style], "DDDD LLL")[0]), name


def test_flat_paper_of_a_us_plate_is_no_privacy_mask(imported):
    """Segmentation also sets aside flat paper; taken for masks under a pattern's new slots, the paper beside
    Arkansas and DC plates' characters was erased, and the state's heading and stripe smeared into it."""
    plates = {p.image_path.name: p for p in imported("openalpr-us").plates}
    for name in ("ar127.jpg", "dc1596.jpg", "ar477.jpg"):
        style = style_plate(plates[name])
        assert privacy_masks(style.image)  # what segmentation sets aside
        for pattern in ("LLLDDDD", "LLLDDDDD"):
            assert masks_under(style, plate_layouts([style], pattern)[0]) == [], (name, pattern)


def test_a_slot_of_no_kind_on_a_plate_without_a_province_keeps_its_own_character(ckpt_cn, tmp_path):
    """The example with its G labelled Ü (a German-style plate): the Ü slot is of kind "other", and the default
    alphabet filled it with the Chinese specials (908M港, 473S挂). Only a Chinese plate's such slots take those."""
    folder = tmp_path / "de"
    (folder / "labels").mkdir(parents=True)
    shutil.copy(EXAMPLE, folder)
    shutil.copy(EXAMPLE.parent / "labels" / "plate-es.txt", folder / "labels")
    classes = (EXAMPLE.parent / "classes.txt").read_text(encoding="utf-8").splitlines()
    (folder / "classes.txt").write_text("\n".join("Ü" if c == "G" else c for c in classes) + "\n", encoding="utf-8")
    out = synthesize(request([folder / EXAMPLE.name], ckpt_cn, tmp_path / "out", 6, chars=None)).out
    texts = [row["text"] for row in manifest(out)]
    assert len(texts) == 6 and all(t.endswith("Ü") and t[:-1].isascii() for t in texts), texts
    # --texts may still put another character there (it was refused as "a [Ü] slot")
    (tmp_path / "texts.txt").write_text("123CÄ\n456DÖ\n", encoding="utf-8")
    given = synthesize(request([folder / EXAMPLE.name], ckpt_cn, tmp_path / "given", 2, chars=list("0123456789CDÄÖ"),
                               texts=tmp_path / "texts.txt")).out
    assert [row["text"] for row in manifest(given)] == ["123CÄ", "456DÖ"]


def test_noise_goes_on_the_whole_composed_plate_from_each_plates_seed(styles, ckpt_cn, tmp_path):
    clean = synthesize(request(styles[:2], ckpt_cn, tmp_path / "clean", 4, diversity=Diversity(noise=0.0))).out
    noisy = synthesize(request(styles[:2], ckpt_cn, tmp_path / "noisy", 4, diversity=Diversity(noise=6.0))).out
    assert manifest(clean) == manifest(noisy)  # the same plan
    fields = {}
    for row in manifest(clean):
        a = read_image(clean / row["image_path"]).astype(np.int16)
        b = read_image(noisy / row["image_path"]).astype(np.int16)
        diff = (b - a)[((a > 12) & (a < 243)).all(2)]  # unclipped pixels, everywhere on the plate
        assert len(diff) > 0.5 * a.shape[0] * a.shape[1]
        assert 5.4 < diff.std() < 6.6 and abs(diff.mean()) < 0.5, (row, diff.std(), diff.mean())
        assert (b != a).any(2).mean() > 0.8  # background and characters alike
        fields.setdefault(a.shape, []).append((b - a).ravel().astype(np.float32))
    pairs = [f for f in fields.values() if len(f) > 1]
    assert pairs  # two plates of one style: each has its own field
    for f in pairs:
        assert abs(np.corrcoef(f[0], f[1])[0, 1]) < 0.2
    with pytest.raises(PlategenError, match="noise"):  # the noise is part of the bytes
        synthesize(request(styles[:2], ckpt_cn, noisy, 4, resume=True, diversity=Diversity(noise=2.0)))


def test_resuming_a_complete_plate_run_redraws_only_a_damaged_plate(styles, ckpt_cn, tmp_path):
    out = synthesize(request(styles[:2], ckpt_cn, tmp_path / "done", 4, batch_size=2)).out
    before = tree(out)
    (out / "images" / "000003.png").write_bytes(b"torn")
    report = synthesize(request(styles[:2], ckpt_cn, out, 4, resume=True, batch_size=None))
    assert (report.resumed, report.generated) == (3, 1)
    assert tree(out) == before
    label = out / "labels" / "000001.txt"  # an emptied or cut label: its plate is drawn again
    for damaged in (b"", label.read_bytes()[:-30]):
        label.write_bytes(damaged)
        report = synthesize(request(styles[:2], ckpt_cn, out, 4, resume=True, batch_size=None))
        assert (report.resumed, report.generated) == (3, 1)
        assert tree(out) == before


def test_texts_file_is_used_in_order_and_cycled(styles, ckpt_cn, tmp_path):
    assert load_style_plates(styles[:1])[0][0].layout.kinds == "DDD/LL"  # a two-row plate: texts are top row first
    texts = tmp_path / "texts.txt"
    texts.write_text("123-BC\n\n456 FG\n", encoding="utf-8")
    out = synthesize(request(styles[:1], ckpt_cn, tmp_path / "out", 5, texts=texts)).out
    assert [r["text"] for r in manifest(out)] == ["123BC", "456FG", "123BC", "456FG", "123BC"]
    chinese = tmp_path / "chinese.txt"  # a user's own Chinese texts may hold I and O, though drawn ones skip them
    chinese.write_text("京AOI123\n", encoding="utf-8")
    out = synthesize(request(styles[1:2], ckpt_cn, tmp_path / "cn", 2, texts=chinese, chars=None)).out
    assert [r["text"] for r in manifest(out)] == ["京AOI123"] * 2
    texts.write_text("1234BC\n", encoding="utf-8")
    with pytest.raises(PlategenError, match="texts.txt:1: '1234BC' has 6 characters; the layout DDD/LL has 5"):
        synthesize(request(styles[:1], ckpt_cn, tmp_path / "bad", 2, texts=texts))
    assert not (tmp_path / "bad").exists()


def test_pattern_sets_the_kind_of_every_slot(styles, ckpt_cn, tmp_path):
    out = synthesize(request(styles[1:2], ckpt_cn, tmp_path / "out", 6, pattern="PL.DDDDD")).out
    texts = [r["text"] for r in manifest(out)]
    assert all(t[0] in "京沪浙" and t[1].isalpha() and t[2:].isdigit() and len(t) == 7 for t in texts)
    with pytest.raises(PlategenError, match="--pattern 'PX': unknown mark"):
        synthesize(request(styles[1:2], ckpt_cn, tmp_path / "bad", 2, pattern="PX"))


def test_a_layout_refusal_names_the_style_plate_it_is_about(styles, ckpt_cn, tmp_path, data_dir):
    """In a folder of plates, "1 row(s), but the style plate has 2" did not say which plate has two rows. A plate
    of a folder the pattern does not fit refused the whole folder: it is left out and listed now (one named alone
    is still refused)."""
    with pytest.raises(PlategenError, match=rf"has 2 \(style plate {styles[0]}\)$"):
        synthesize(request([EXAMPLE, styles[0]], ckpt_cn, tmp_path / "rows", 4, pattern="DDDD_LLL"))
    one_row = "00001_AN-074-C-V.jpg"
    folder = copy_plates(data_dir / "uc3m-lp", tmp_path / "folder", [Path(styles[0]), data_dir / "uc3m-lp" / "images"
                                                                    / one_row])
    mixed = synthesize(request([folder], ckpt_cn, tmp_path / "mixed", 4, pattern="DDDD_LLL"))
    assert [(p.path.name, p.message) for p in mixed.skipped] == [
        (Path(styles[0]).name, "--pattern 'DDDD_LLL': 1 row(s), but the style plate has 2")]
    assert {Path(r["style"]).name for r in manifest(mixed.out)} == {one_row}
    texts = tmp_path / "texts.txt"
    texts.write_text("1234BCD\n", encoding="utf-8")
    with pytest.raises(PlategenError, match=rf"the layout DDD/LL has 5 \(style plate {styles[0]}\)$"):
        synthesize(request([styles[0]], ckpt_cn, tmp_path / "texts", 4, texts=texts))
    # under --pattern the layout is the pattern's, whichever plate: no style plate is to blame (a hostile try)
    with pytest.raises(PlategenError, match=r"the layout DDDDDD has 6\Z") as refused:
        synthesize(request([EXAMPLE], ckpt_cn, tmp_path / "pattern", 4, texts=texts, pattern="DDDDDD"))
    assert "style plate" not in str(refused.value)
    assert not any((tmp_path / name).exists() for name in ("rows", "texts", "pattern"))


def test_a_plate_drawn_in_a_late_style_plate_of_many_has_its_style(ckpt_cn, tmp_path, data_dir):
    """The style pool holds about 4 entries a character: with --n 1 over 40 style plates, a plate the plan gave
    style plate 33 indexed past it (an IndexError) once which plates take the extra plates became a seeded choice."""
    crops = sorted((data_dir / "ccpd-crops" / "images").iterdir())[:40]
    style_plates = load_style_plates(crops)[0]
    seed = next(s for s in range(100) if plan_plates(style_plates, 1, CHARS, seed=s).style[0] >= 30)
    plan = plan_plates(style_plates, 1, CHARS, seed=seed)
    ckpt = load_checkpoint(ckpt_cn)
    made = make_plates(ckpt.generator, ckpt.discriminator, ckpt.meta["charset"], style_plates, plan, CHARS,
                       shipped_fonts(), seed=seed)
    assert made.texts == plan.texts and made.images[0].shape == style_plates[plan.style[0]].image.shape


def test_without_chars_a_run_takes_the_characters_its_slots_use(styles, ckpt_cn, tmp_path):
    """Spanish plates' classes hold no province (fast-plate-ocr warned of unused ones); Chinese serials skip I and O."""
    spanish = synthesize(request(styles[:1], ckpt_cn, tmp_path / "es", 40, chars=None)).out
    classes = (spanish / "classes.txt").read_text(encoding="utf-8").split()
    assert classes == parse_charset("0-9A-Z")
    chinese = synthesize(request(styles[1:2], ckpt_cn, tmp_path / "cn", 40, chars=None)).out
    texts = [r["text"] for r in manifest(chinese)]
    assert {t[0] for t in texts} == set("京沪浙") and not set("IO") & {c for t in texts for c in t}
    assert (chinese / "classes.txt").read_text(encoding="utf-8").split() == parse_charset("0-9A-Z") + list(
        CHINESE_PROVINCES + CHINESE_SPECIAL)  # the labels' classes do not move with the run's alphabet
    with_i = synthesize(request(styles[1:2], ckpt_cn, tmp_path / "given", 40, chars=CHARS)).out
    assert {"I", "O"} <= {c for r in manifest(with_i) for c in r["text"]}  # --chars given: as given
    # a pattern's [...] asks for its characters, even one the checkpoint never saw (drawn, marked unchecked)
    named = synthesize(request(styles[:1], ckpt_cn, tmp_path / "named", 8, chars=None, pattern="[Ñ]DD/DD")).out
    assert {r["text"][0] for r in manifest(named)} == {"Ñ"}
    assert (named / "classes.txt").read_text(encoding="utf-8").split() == parse_charset("0-9A-Z") + ["Ñ"]


def test_class_ids_are_the_same_whatever_the_alphabet(styles, data_dir, ckpt_cn, tmp_path):
    """A YOLO id is a line of classes.txt: ids that moved with --chars mislabelled a merge of two runs, or of a run
    with the real UC3M-LP plates, silently (5138RDT's R, D and T read as M, C and O against UC3M-LP's classes)."""
    consonants = parse_charset("0-9BCDFGHJKLMNPRSTVWXYZ")
    out = synthesize(request(styles[:1], ckpt_cn, tmp_path / "es", 12, chars=consonants)).out
    assert (out / "classes.txt").read_bytes() == (data_dir / "uc3m-lp" / "classes.txt").read_bytes()
    real_classes = (data_dir / "uc3m-lp" / "classes.txt").read_text(encoding="utf-8").split()
    for row in manifest(out):
        label = (out / "labels" / f"{Path(row['image_path']).stem}.txt").read_text(encoding="utf-8")
        assert "".join(real_classes[int(line.split()[0])] for line in label.splitlines()) == row["text"]
    digits = synthesize(request(styles[:1], ckpt_cn, tmp_path / "digits", 4, chars=parse_charset("0-9"),
                                pattern="DDD/DD")).out
    assert (digits / "classes.txt").read_bytes() == (out / "classes.txt").read_bytes()


def test_a_flat_style_plate_is_refused_for_plates_too(data_dir, ckpt_cn, tmp_path):
    """Its annotation made it a style plate, and blank characters were drawn on it."""
    folder = tmp_path / "flat"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(data_dir / "uc3m-lp" / "classes.txt", folder)
    stem = Path(UC3M[1]).stem
    shutil.copy(data_dir / "uc3m-lp" / "labels" / f"{stem}.txt", folder / "labels")
    size = Image.open(data_dir / UC3M[0] / UC3M[1]).size
    Image.new("RGB", size, (200, 200, 200)).save(folder / "images" / f"{stem}.png")
    with pytest.raises(PlategenError, match=r"a flat image .* not a plate"):
        synthesize(request([folder], ckpt_cn, tmp_path / "out", 2))
    assert not (tmp_path / "out").exists()


def test_a_design_is_refused_on_a_plate_that_is_not_chinese(styles, ckpt_cn, tmp_path):
    """Repainted, a Spanish plate's grey privacy masks turned black and characters placed there vanished."""
    with pytest.raises(PlategenError, match=r"--design green: repaints Chinese plates; .*00011_BN-695-B-D.jpg has no "
                                            r"province character"):
        synthesize(request(styles[:2], ckpt_cn, tmp_path / "out", 4, design="green"))
    assert not (tmp_path / "out").exists()


def test_a_province_the_checkpoint_has_no_class_for_is_drawn_unchecked_and_meta_lists_the_others(
        styles, ckpt_cn, tmp_path):
    report = synthesize(request(styles[1:2], ckpt_cn, tmp_path / "out", 8, pattern="PL.DDDDD",
                                chars=CHARS + ["川"]))
    rows = manifest(report.out)
    verdicts = [(t, v) for r in rows for t, v in zip(r["text"], r["check"].split(","))]
    assert {v for t, v in verdicts if t == "川"} == {"unchecked"}  # 川 is drawn, but nothing can read it
    assert {v for t, v in verdicts if t != "川"} <= {"pass", "fail"}
    meta = json.loads((report.out / "meta.json").read_text(encoding="utf-8"))
    assert meta["chars_with_real_crops"] == CHARS
    # counted, as a character run counts them (the summary used to say only "0 of N still read as another")
    assert report.unchecked == meta["check_unchecked"] == sum(t == "川" for t, _ in verdicts) > 0


def test_lprnet_and_paddleocr_exports(run):
    report, out = run
    # the summary lists each; the two-row uc3m style's plates go to PaddleOCR as one row (test_exports)
    assert report.exports == [out / "lprnet", out / "rec_gt.txt", out / "dict.txt", out / "paddleocr"]
    rows = manifest(out)
    files = sorted((out / "lprnet").iterdir())
    assert sorted(clean_text(f.stem.split("_")[0]) for f in files) == sorted(r["text"] for r in rows)
    assert all(decode_png(f.read_bytes()).shape == (24, 94, 3) for f in files)
    lines = (out / "rec_gt.txt").read_text(encoding="utf-8").splitlines()
    two_row = {r["image_path"] for r in rows if r["style"].endswith(UC3M[1])}
    assert 0 < len(two_row) < len(rows)
    assert [tuple(line.split("\t")) for line in lines] == [
        (r["image_path"].replace("images/", "paddleocr/") if r["image_path"] in two_row else r["image_path"], r["text"])
        for r in rows]
    assert sorted(p.name for p in (out / "paddleocr").iterdir()) == sorted(Path(p).name for p in two_row)
    assert (out / "dict.txt").read_text(encoding="utf-8").splitlines() == label_classes(CHARS)


def test_preview_shows_each_style_plate_beside_its_plates(styles, ckpt_cn, tmp_path):
    sheet = tmp_path / "sheet.png"
    report = synthesize(request(styles[:2], ckpt_cn, tmp_path / "out", 4, preview=sheet))
    image = decode_png(sheet.read_bytes())
    assert report.preview == sheet and image.shape[0] == 2 * (PREVIEW_HEIGHT + 6)  # one row per style plate
    first = manifest(report.out)[0]
    style = _at_height(read_image(Path(first["style"])))
    plate = _at_height(read_image(report.out / first["image_path"]))
    row = image[3:3 + PREVIEW_HEIGHT]
    assert np.array_equal(row[:, :style.shape[1]], style)  # the style plate of the first plate, then a white bar
    bar = style.shape[1] + 6
    assert (row[:, bar:bar + 12] == 255).all()
    x = bar + 12 + 6
    assert np.array_equal(row[:, x:x + plate.shape[1]], plate)  # then its first generated plate
    again = synthesize(request(styles[:2], ckpt_cn, tmp_path / "again", 4, preview=sheet))  # its own sheet: replaced
    assert again.preview == sheet


def test_lprnet_names_of_drawn_texts_read_back_and_a_layout_whose_names_cannot_is_one_line(styles, ckpt_cn, tmp_path):
    """Drawn texts such as DSC or IMG (DSC_000001.png: a camera's name) refused the whole --export lprnet run, with
    a message that blamed the user's text; they are traded away as NA is, and every name reads back as its text.
    Every 8-digit text's name (12345678_000001) is a camera's time stamp: refused as the layout's."""
    out, plain = tmp_path / "out", tmp_path / "plain"

    def texts(folder: Path) -> list[str]:
        return [row["plate_text"] for row in csv.DictReader((folder / "plates.csv").open(encoding="utf-8"))]
    synthesize(request([EXAMPLE], ckpt_cn, plain, 30, chars=list("CDS"), pattern="LLL"))
    assert "DSC" in texts(plain)  # drawn without the export, where it is a plate like any other
    synthesize(request([EXAMPLE], ckpt_cn, out, 30, chars=list("CDS"), pattern="LLL", exports=["lprnet"]))
    assert "DSC" not in texts(out) and Counter("".join(texts(out))) == Counter("".join(texts(plain)))  # balance kept
    back = load_plates(out / "lprnet", fmt="filename")
    assert not back.problems and sorted(p.text for p in back.plates + back.text_only) == sorted(texts(out))
    digits = tmp_path / "digits"
    with pytest.raises(PlategenError, match=r"^the layout DDDDDDDD gives some plates the text '\d{8}' .*whose "
                                            r"--export lprnet name \d{8}_000000\.png would not read back as the text "
                                            r"\(a camera's name\); give another --pattern, or leave --export lprnet out$"):
        synthesize(request([EXAMPLE], ckpt_cn, digits, 3, chars=parse_charset("0-9"), pattern="DDDDDDDD",
                           exports=["lprnet"]))
    assert not digits.exists()


def test_overwrite_replaces_a_plate_run_and_nothing_else(styles, ckpt_cn, tmp_path):
    out = tmp_path / "out"
    synthesize(request(styles[:1], ckpt_cn, out, 5, exports=["lprnet", "paddleocr"]))
    assert len(list((out / "paddleocr").iterdir())) == 5  # the two-row style's plates as one row
    mine = out / "labels" / "notes.md"
    mine.write_text("mine", encoding="utf-8")
    with pytest.raises(PlategenError, match="labels: holds 'notes.md', which plategen did not write"):
        synthesize(request(styles[:1], ckpt_cn, out, 2, overwrite=True))
    assert len(list((out / "images").iterdir())) == 5  # nothing deleted
    mine.unlink()
    synthesize(request(styles[:1], ckpt_cn, out, 2, overwrite=True))
    assert len(load_plates(out).plates) == 2
    assert sorted(p.name for p in out.iterdir()) == ["classes.txt", "images", "labels", "manifest.csv", "meta.json",
                                                      "plate_config.yaml", "plates.csv"]
    shutil.rmtree(out / "labels")  # called "a synth output of single characters", or read by file name
    with pytest.raises(PlategenError, match="a plategen synth --plates output without its labels/ folder"):
        load_plates(out)


def test_shards_hold_the_same_plates_as_files(styles, ckpt_cn, tmp_path):
    files = synthesize(request(styles[:2], ckpt_cn, tmp_path / "files", 5)).out
    shards = synthesize(request(styles[:2], ckpt_cn, tmp_path / "shards", 5, format="shards", shard_size=2)).out
    assert sorted(p.name for p in shards.glob("shard-*.tar")) == [f"shard-00000{k}.tar" for k in range(3)]
    read = {p.image_path.name: p for p in load_plates(files).plates}
    samples = list(read_shards(shards))
    assert [s["key"] for s in samples] == [f"{i:06d}" for i in range(5)]
    for sample, row in zip(samples, manifest(files)):
        assert sample["png"] == (files / row["image_path"]).read_bytes()
        assert sample["label"] == sample["meta"]["text"] == row["text"]
        assert sample["meta"]["check"] == row["check"] and sample["meta"]["style"] == row["style"]
        plate = read[Path(row["image_path"]).name]
        assert sorted(map(tuple, sample["meta"]["boxes"])) == sorted(plate.boxes)
    assert [r["image_path"] for r in manifest(shards)][:3] == ["shard-000000.tar#000000.png",
                                                               "shard-000000.tar#000001.png",
                                                               "shard-000001.tar#000002.png"]


def test_the_cli_refuses_a_bare_plate_image_in_one_line_and_writes_nothing(ckpt_cn, tmp_path):
    bare = tmp_path / "plate-es.jpg"
    shutil.copy(EXAMPLE, bare)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["synth", "--plates", "--style", str(bare), "--n", "3", "--out", str(out),
                                      "--checkpoint", str(ckpt_cn), "--device", "cpu"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "plate-es.jpg: no character boxes, and the file name is no plate text" in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def _beside_a_malformed_label(tmp_path: Path) -> Path:
    folder = tmp_path / "folder"
    (folder / "labels").mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "plate-es.jpg")
    shutil.copy(EXAMPLE.parent / "classes.txt", folder / "classes.txt")
    (folder / "labels" / "plate-es.txt").write_text("3 0.1 0.5\n")
    return folder / "plate-es.jpg"


def _tiny_plate(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "labels").mkdir(parents=True)
    Image.fromarray(np.full((1, 1, 3), 255, np.uint8)).save(folder / "plate.png")
    shutil.copy(EXAMPLE.parent / "classes.txt", folder / "classes.txt")
    (folder / "labels" / "plate.txt").write_text("3 0.5 0.5 1 1\n")
    return folder / "plate.png"


def _low_plate(tmp_path: Path) -> Path:
    """The example plate shrunk to 12 px high, its YOLO label as it is (boxes are normalised)."""
    folder = tmp_path / "low"
    (folder / "labels").mkdir(parents=True)
    Image.open(EXAMPLE).convert("RGB").resize((60, 12), Image.Resampling.BOX).save(folder / "low.png")
    shutil.copy(EXAMPLE.parent / "classes.txt", folder / "classes.txt")
    shutil.copy(EXAMPLE.parent / "labels" / "plate-es.txt", folder / "labels" / "low.txt")
    return folder / "low.png"


def _non_utf8_name(tmp_path: Path) -> Path:
    """An annotated plate whose file name is bytes from another system (synth once wrote half its output, then a
    traceback: names go into manifest.csv and meta.json as UTF-8)."""
    folder = tmp_path / "latin1"
    (folder / "labels").mkdir(parents=True)
    stem = os.fsdecode(b"plaque-\xe9t\xe9")
    shutil.copy(EXAMPLE, folder / f"{stem}.jpg")
    shutil.copy(EXAMPLE.parent / "classes.txt", folder / "classes.txt")
    shutil.copy(EXAMPLE.parent / "labels" / "plate-es.txt", folder / "labels" / f"{stem}.txt")
    return folder


def _carriage_return_name(tmp_path: Path) -> Path:
    """A plate named from a CRLF list (202AER\\r.jpg): the \\r went unquoted into manifest.csv, which pandas then
    read as twice the rows."""
    folder = tmp_path / "crlf"
    (folder / "labels").mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "202AER\r.jpg")
    shutil.copy(EXAMPLE.parent / "classes.txt", folder / "classes.txt")
    shutil.copy(EXAMPLE.parent / "labels" / "plate-es.txt", folder / "labels" / "202AER\r.txt")
    return folder / "202AER\r.jpg"


@pytest.mark.parametrize("make_style, extra, message", [
    (None, ["--seed", "-1"], "--seed -1: must be 0 or more"),
    (None, ["--n", "1000000000000"], "--n 1,000,000,000,000: at most 1,000,000 plates a run"),
    (None, ["--texts", "/dev/zero"], "/dev/zero: not a regular file (a pipe, device or socket); plategen reads texts"),
    (None, ["--pattern", "DD[Z-A]"], "--pattern 'DD[Z-A]': range Z-A in 'Z-A' runs backwards"),
    (None, ["--out", ""], "--out: an empty path"),
    (None, ["--preview", ""], "--preview: an empty path"),  # it said "--preview .: the sheet is a PNG"
    (None, ["--texts", ""], "--texts: an empty path"),
    (None, ["--raw-colours"], "--raw-colours: whole plates take their new characters' ink"),  # silently ignored
    (None, ["--pattern", "D" * 300], "300 characters in row 1 leave each 1 px, under 50% of the style plate's own 15 px "
                                     "wide characters: they would be drawn over each other; give fewer"),
    (_beside_a_malformed_label, [], "labels/plate-es.txt:1: expected 5 fields"),
    (_tiny_plate, [], "plate.png: image is 1x1 px, too small for a plate"),
    (_low_plate, [], "low.png: image is 60x12 px, too low for a style plate"),
    (_non_utf8_name, [], "plaque-\\xe9t\\xe9.jpg: the file name is not valid UTF-8; rename it"),
    (_carriage_return_name, [], "202AER\\r.jpg: the file name holds a control character ('\\r'); rename the file"),
], ids=["negative-seed", "huge-n", "texts-dev-zero", "pattern-backwards", "empty-out", "empty-preview",
     "empty-texts", "raw-colours", "pattern-too-many",
     "malformed-label", "tiny-image", "low-image", "non-utf8-name", "control-character-name"])
def test_wrong_plate_inputs_are_refused_in_one_line_before_anything_is_written(ckpt_cn, tmp_path, make_style, extra,
                                                                                message):
    """Each of these once crashed with a traceback, hung, wrote into the current folder, or gave the wrong reason."""
    style = make_style(tmp_path) if make_style else EXAMPLE
    before = sorted(tmp_path.rglob("*"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["synth", "--plates", "--style", str(style), "--n", "3", "--out", str(out),
                                      "--checkpoint", str(ckpt_cn), "--device", "cpu", *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_the_summary_writes_a_control_character_in_an_out_path_as_an_escape(ckpt_cn, tmp_path, monkeypatch):
    """The error lines escaped it, but the summary's title and rows broke the path over two lines."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["synth", "--plates", "--style", str(EXAMPLE), "--n", "2", "--out", "o\nnl",
                                      "--checkpoint", str(ckpt_cn), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "o\\nnl/manifest.csv" in result.output and "o\n" not in result.output, result.output


def test_bad_records_of_a_style_folder_are_listed_with_the_skipped_plates(tmp_path, data_dir):
    """A broken image in a style folder was left out without a word."""
    folder = copy_plates(data_dir / "uc3m-lp", tmp_path / "styles", sorted((data_dir / "uc3m-lp" / "images").iterdir())[:3])
    broken = sorted((folder / "images").iterdir())[0]
    broken.write_bytes(b"not a jpeg")
    styles, skipped = load_style_plates([folder])
    assert len(styles) == 2
    assert [str(p) for p in skipped] == [f"{broken}: not a readable image (corrupt or unsupported format)"]


def test_a_folders_plate_too_low_to_draw_from_is_left_out_and_listed(tmp_path, data_dir):
    """One 12 px plate in a style folder (or among a benchmark's training plates) refused the whole run."""
    folder = copy_plates(data_dir / "uc3m-lp", tmp_path / "styles", sorted((data_dir / "uc3m-lp" / "images").iterdir())[:3])
    low = sorted((folder / "images").iterdir())[1]
    image = Image.open(low)
    image.resize((image.width * 12 // image.height, 12)).save(low)
    styles, skipped = load_style_plates([folder])
    assert len(styles) == 2 and low.name not in {Path(s.name).name for s in styles}
    assert [str(p) for p in skipped] == [f"{low}: image is {image.width * 12 // image.height}x12 px, too low for a style "
                                         "plate: its characters are a few pixels high; give a plate image at least 16 "
                                         "px high"]
    with pytest.raises(PlategenError, match="too low for a style plate"):  # named on its own, it is refused
        load_style_plates([low])


def test_a_style_image_beside_a_broken_labels_link_is_refused(tmp_path):
    """Named on its own, 000010.jpg was read as the plate 000010 when its folder's labels link was broken."""
    folder = tmp_path / "out"
    (folder / "images").mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "images" / "000010.jpg")
    shutil.copy(EXAMPLE.parent / "classes.txt", folder / "classes.txt")
    (folder / "labels").symlink_to(tmp_path / "gone")
    with pytest.raises(PlategenError, match="labels: a broken or looping link"):
        load_style_plates([folder / "images" / "000010.jpg"])


def test_the_example_plate_takes_its_boxes_from_the_label_beside_it():
    (style,), skipped = load_style_plates([EXAMPLE])
    label = (EXAMPLE.parent / "labels" / "plate-es.txt").read_text().split()
    assert not skipped and style.text == "387BG" and style.layout.kinds == "DDDLL"
    assert len(style.layout.char_slots) == len(label) // 5 == 5


def test_the_shipped_model_draws_plate_characters_its_discriminator_reads(styles, tmp_path):
    """Image quality: on a Spanish plate most characters of the shipped model pass the label
    check (the random test model's nearly all fail)."""
    out = tmp_path / "out"
    report = synthesize(SynthRequest(styles=styles[:1], chars=None, n=16, out=out, device="cpu", plates=True))
    assert report.characters == 16 * 5
    assert report.check_failed <= 0.2 * report.characters
    failed = sum(r["check"].split(",").count("fail") for r in manifest(out))
    assert failed == report.check_failed


def test_webdataset_reads_plate_shards_with_text_and_boxes(styles, ckpt_cn, tmp_path):
    out = synthesize(request(styles[:2], ckpt_cn, tmp_path / "plates", 6, format="shards", shard_size=4)).out
    samples, rows = webdataset_samples(out), manifest(out)
    assert len(samples) == len(rows) == 6
    for sample, row in zip(samples, rows):
        assert sample["txt"] == row["text"] == sample["json"]["text"]
        assert len(sample["json"]["boxes"]) == len(row["text"])
        assert set(CHARS) >= set(row["text"])
        height, width = sample["png"].shape[:2]
        assert all(0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height for x0, y0, x1, y1 in sample["json"]["boxes"])



def test_the_run_writes_the_folder_the_export_writes_for_its_plates(run, styles, tmp_path):
    """One writer: the run's images, labels, classes.txt, plates.csv and plate_config.yaml are
    byte for byte what `write_plate_folder` makes of the same plates."""
    _, out = run
    layouts = {s.name: s.layout for s in load_style_plates(styles)[0]}
    plates = [FinishedPlate(Path(r["image_path"]).stem, (out / r["image_path"]).read_bytes(), r["text"],
                            tuple(s.box for s in layouts[r["style"]].char_slots)) for r in manifest(out)]
    write_plate_folder(tmp_path, plates, label_classes(CHARS))
    exported = tree(tmp_path)
    assert exported == {name: data for name, data in tree(out).items() if name in exported}
    assert len(exported) == 2 * len(plates) + 3


def test_a_style_plate_reached_twice_is_refused(tmp_path):
    """A data folder and an image inside it (or one image spelled two ways) would weigh that plate double; the
    message names the folder the user gave, not only a file in it they never typed."""
    folder = tmp_path / "es"
    shutil.copytree(EXAMPLE.parent, folder)
    with pytest.raises(PlategenError, match=r"plate-es\.jpg: given twice \(first as \S+plate-es\.jpg in --style "
                                            r"\S+/es\); its plates would weigh double"):
        load_style_plates([folder, folder / "plate-es.jpg"])
    with pytest.raises(PlategenError, match=r"--style \S+/es \(\S+plate-es\.jpg in it\): given twice \(first as "
                                            r"--style \S+plate-es\.jpg\)"):
        load_style_plates([folder / "plate-es.jpg", folder])
    with pytest.raises(PlategenError, match="given twice"):
        load_style_plates([folder / "plate-es.jpg", tmp_path / "es" / ".." / "es" / "plate-es.jpg"])


def test_the_summary_names_the_first_style_plate_left_out(data_dir, ckpt_cn, tmp_path):
    """It said '1: 1 not a readable image' and left the user to find which."""
    folder = tmp_path / "styles"
    folder.mkdir()
    shutil.copy(data_dir / CCPD[0] / CCPD[1], folder)
    (folder / "皖A0V262.jpg").write_bytes((data_dir / CCPD[0] / "images" / "皖A0V262.jpg").read_bytes()[:200])
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [
        "synth", "--plates", "--style", str(folder), "--n", "2", "--out", str(tmp_path / "out"),
        "--checkpoint", str(ckpt_cn), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "skipped style plates" in line)
    assert f"(first: {folder / '皖A0V262.jpg'}; all in meta.json skipped_styles)" in row
    meta = json.loads((tmp_path / "out" / "meta.json").read_text(encoding="utf-8"))
    assert meta["skipped_styles"][0].startswith(str(folder / "皖A0V262.jpg"))


@pytest.mark.parametrize("plates", [False, True], ids=["characters", "plates"])
def test_a_label_file_given_as_a_style_names_its_folder(data_dir, ckpt_cn, tmp_path, plates):
    """--style labels.csv was 'not a readable image' (characters) or a bare plate with no text (plates)."""
    labels = data_dir / "openalpr-us" / "labels.csv"
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["synth", "--style", str(labels), "--n", "2", "--out", str(out),
                                      "--checkpoint", str(ckpt_cn), "--device", "cpu", *(["--plates"] if plates else [])])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {labels}: a label file, not an image; to take the plates it lists, give its folder "
        f"(--style {labels.parent})"]
    assert not out.exists()
    yolo_label = next((data_dir / "uc3m-lp" / "labels").iterdir())  # it said --style uc3m-lp/labels
    result = CliRunner().invoke(app, ["synth", "--style", str(yolo_label), "--n", "2", "--out", str(out),
                                      "--checkpoint", str(ckpt_cn), "--device", "cpu", *(["--plates"] if plates else [])])
    assert result.output.strip().endswith(f"give its folder (--style {data_dir / 'uc3m-lp'})")
    tif = tmp_path / "京PL3N67.ppm"  # an image in a format the suffix list does not name is still read
    Image.open(data_dir / CCPD[0] / CCPD[1]).save(tif)
    result = CliRunner().invoke(app, ["synth", "--style", str(tif), "--n", "2", "--out", str(out), "--checkpoint",
                                      str(ckpt_cn), "--device", "cpu", *(["--plates"] if plates else [])])
    assert result.exit_code == 0, result.output


def test_links_in_a_style_folder_are_its_content_and_a_link_loop_is_one_line(data_dir, tmp_path):
    """A link beside its target in one folder argument is the folder's content (counted twice, as a copy
    is), not a slip; a link loop used to end in a traceback from resolving it (RuntimeError)."""
    from plategen.synth.inputs import load_styles

    folder = tmp_path / "styles"
    folder.mkdir()
    shutil.copy(data_dir / CCPD[0] / CCPD[1], folder / "京PL3N67.jpg")
    (folder / "京PL3N67_link.jpg").symlink_to("京PL3N67.jpg")
    assert len(load_styles([folder])) == 2 and len(load_style_plates([folder])[0]) == 2
    with pytest.raises(PlategenError, match=r"_link\.jpg: given twice \(first as \S+京PL3N67\.jpg in --style "):
        load_styles([folder, folder / "京PL3N67_link.jpg"])
    (folder / "loop.jpg").symlink_to("loop.jpg")
    with pytest.raises(PlategenError, match=r"loop\.jpg: cannot read image \(Too many levels of symbolic links\)"):
        load_styles([folder])


def test_resume_says_when_the_folder_holds_the_other_kind_of_run(styles, ckpt_cn, tmp_path):
    """A character run resumed into a plates folder used to blame (charset, diversity), as if an option differed."""
    plates_out = synthesize(request(styles[:1], ckpt_cn, tmp_path / "plates", 2)).out
    with pytest.raises(PlategenError, match="holds a synth --plates run; --resume it with --plates"):
        synthesize(synth_request(styles[0], ckpt_cn, plates_out, n=4, resume=True))
    chars_out = synthesize(synth_request(styles[0], ckpt_cn, tmp_path / "chars", n=4)).out
    with pytest.raises(PlategenError, match="holds a run of single characters; --resume it without --plates"):
        synthesize(request(styles[:1], ckpt_cn, chars_out, 2, resume=True))


def test_resume_names_a_style_image_changed_since_the_run_began(data_dir, ckpt_cn, tmp_path):
    """The options were the same; the message used to say "(styles); repeat the first command's options"."""
    style = tmp_path / "style.jpg"
    shutil.copy(EXAMPLE, style)
    out = synthesize(synth_request(style, ckpt_cn, tmp_path / "out", n=4)).out
    Image.open(EXAMPLE).rotate(2).save(style)
    with pytest.raises(PlategenError, match=r"style.jpg: this style image changed since the run began"):
        synthesize(synth_request(style, ckpt_cn, out, n=4, resume=True))


def test_resume_names_a_style_plate_whose_boxes_changed_since_the_run_began(data_dir, ckpt_cn, tmp_path, monkeypatch):
    """The image's hash was the same, so the rest of the run used to be drawn on the new boxes: a mix of two runs."""
    uc3m = data_dir / "uc3m-lp"
    folder = copy_plates(uc3m, tmp_path / "styles", sorted((uc3m / "images").iterdir())[:2])
    generate = engine_module.Synthesizer.generate
    calls = []

    def stop_second(self, ids):
        calls.append(ids)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return generate(self, ids)

    monkeypatch.setattr(engine_module.Synthesizer, "generate", stop_second)
    with pytest.raises(KeyboardInterrupt):
        synthesize(request([folder], ckpt_cn, tmp_path / "out", 8, batch_size=2))
    monkeypatch.setattr(engine_module.Synthesizer, "generate", generate)
    label = sorted((folder / "labels").iterdir())[1]
    rows = label.read_text(encoding="utf-8").splitlines()
    cls, cx, cy, w, h = rows[0].split()
    rows[0] = " ".join([cls, f"{float(cx) + 0.01:.6f}", cy, w, h])  # one box moved by 1% of the width
    label.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(PlategenError, match=rf"{label.stem}\.jpg: this style plate's boxes or text \(its label file, "
                                            r"classes\.txt or CSV row\) changed since the run began"):
        synthesize(request([folder], ckpt_cn, tmp_path / "out", 8, batch_size=2, resume=True))


def test_a_style_plate_in_a_format_data_folders_do_not_list_is_refused_by_its_format(data_dir, ckpt_cn, tmp_path):
    """A .tif beside its YOLO label was told it had no character boxes."""
    uc3m = data_dir / "uc3m-lp"
    image = sorted((uc3m / "images").iterdir())[0]
    folder = copy_plates(uc3m, tmp_path / "styles", [image])
    tif = folder / "images" / f"{image.stem}.ppm"
    Image.open(image).save(tif)
    with pytest.raises(PlategenError, match=rf"{image.stem}\.ppm: data folders annotate only \.bmp, \.gif, \.jfif, "
                                            r"\.jpe, \.jpeg, \.jpg, \.png, \.tif, \.tiff, \.webp images, so its "
                                            r"label is not read"):
        synthesize(request([tif], ckpt_cn, tmp_path / "out", 2))
    assert not (tmp_path / "out").exists()


def test_a_taken_output_folder_is_refused_before_the_style_plates_are_read(ckpt_cn, tmp_path):
    """Loading a folder of text-only style plates runs the detector over each (minutes for a large one): the
    folder's refusal came only after that."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    never_read = tmp_path / "missing-style.jpg"
    with pytest.raises(PlategenError, match="out: exists and is not empty"):
        synthesize(request([never_read], ckpt_cn, out, 2))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_on_the_shipped_model_the_allchars_model_draws_the_chinese_characters(styles, ckpt_cn, tmp_path):
    """The default model knows 8 provinces and draws them as blobs; allchars draws all 31 legibly but Latin
    characters worse (checkpoints/README.md). A run without --checkpoint takes each model's strength: the
    same plan, Chinese characters from allchars (read by its discriminator), the rest from the default."""
    default = load_checkpoint(DEFAULT_CHECKPOINT)
    cn = load_style_plates(styles[1:2])[0]
    plan = plan_plates(cn, 6, CHARS, seed=2)
    chinese = chinese_model(None)
    assert chinese is not None and chinese.path == SHIPPED_CHECKPOINTS["allchars"] and wants_chinese(plan.layouts)

    def drawn(model):
        synth = character_synth(default.generator, default.discriminator, default.meta["charset"], cn, plan, CHARS,
                                shipped_fonts(), 2, "cpu", 8, model)
        return synth.generate(np.arange(int(plan.char_starts()[-1])))

    alone, shared = drawn(None), drawn(chinese)
    latin = np.array([c.isascii() for c in shared.labels])
    assert np.array_equal(alone.images[latin], shared.images[latin])
    assert all(not np.array_equal(a, b) for a, b in zip(alone.images[~latin], shared.images[~latin]))
    # a --checkpoint given (the default too) draws everything; a plate with no Chinese slot needs no second model
    assert chinese_model(ckpt_cn) is None and chinese_model("default") is None
    assert not wants_chinese([load_style_plates(styles[:1])[0][0].layout])

    # the run: every province is in the default alphabet, and read by a model with a class for it
    report = synthesize(request(styles[1:2], None, tmp_path / "out", 40, chars=None))
    meta = json.loads((report.out / "meta.json").read_text(encoding="utf-8"))
    assert Path(meta["chinese_checkpoint"]) == SHIPPED_CHECKPOINTS["allchars"] and report.chinese == meta["chinese_chars"]
    assert set(CHINESE_PROVINCES) <= set(meta["chinese_chars"]) and "川" not in default.meta["charset"]
    rows = manifest(report.out)
    assert len({r["text"][0] for r in rows}) > 8 and report.unchecked == 0
    assert {v for r in rows for v in r["check"].split(",")} <= {"pass", "fail"}
    # the benchmark's in-memory plates are these, pixel for pixel, when given the same Chinese model
    plan = plan_plates(cn, 40, meta["charset"], seed=0, chinese_serials=True)
    assert plan.texts == [r["text"] for r in rows]
    made = make_plates(default.generator, default.discriminator, default.meta["charset"], cn, plan, meta["charset"],
                       shipped_fonts(), seed=0, batch_size=4, chinese=chinese)
    assert all(np.array_equal(image, read_image(report.out / r["image_path"])) for image, r in zip(made.images, rows))
    # an interrupted run begun before allchars drew them: resumable as it began, with --checkpoint default
    del meta["chinese_checkpoint_sha256"]
    meta["status"] = "running"
    (report.out / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PlategenError, match="add --checkpoint default to --resume it as it began"):
        synthesize(request(styles[1:2], None, report.out, 40, chars=None, resume=True))
    # a [...] slot of a character allchars has no class for: no second model loaded, none recorded
    named = synthesize(request(styles[1:2], None, tmp_path / "named", 2, chars=None, pattern="[Ñ]DDDDDD"))
    assert json.loads((named.out / "meta.json").read_text(encoding="utf-8"))["chinese_checkpoint"] is None


def test_mixed_style_plates_keep_i_and_o_off_the_chinese_ones_only(styles, ckpt_cn, tmp_path):
    out = synthesize(request(styles[:2], ckpt_cn, tmp_path / "out", 60, chars=None)).out
    texts = [r["text"] for r in manifest(out)]
    chinese = [t for t in texts if not t[0].isascii()]
    assert chinese and not {"I", "O"} & set("".join(chinese))
    assert {"I", "O"} & set("".join(t for t in texts if t[0].isascii()))  # the Spanish plates still take them



def test_characters_on_the_shipped_model_take_their_chinese_ones_from_allchars(data_dir, tmp_path):
    """As on whole plates: 川 has no class in the default model (it was drawn unchecked); allchars draws and reads it."""
    report = synthesize(synth_request(data_dir / "ccpd-crops" / "images" / "苏A53D97.jpg", None, tmp_path / "out",
                                      n=12, chars=["川", "京", "A"]))
    meta = json.loads((report.out / "meta.json").read_text(encoding="utf-8"))
    assert report.chinese == meta["chinese_chars"] == ["川", "京"] and report.unchecked == 0
    assert Path(meta["chinese_checkpoint"]) == SHIPPED_CHECKPOINTS["allchars"]
    with (report.out / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        assert {r["check"] for r in csv.DictReader(handle)} <= {"pass", "fail"}


def ink_aspect(glyph: np.ndarray) -> float:
    ys, xs = np.nonzero(glyph > 64)
    return (xs.max() + 1 - xs.min()) / (ys.max() + 1 - ys.min())


def test_a_model_trained_on_narrowed_glyphs_gets_each_as_narrow_as_the_box_it_fills(styles, ckpt_cn, tmp_path):
    """A font's M or W is up to twice as wide as a plate's; a model trained on glyphs narrowed to their crop's box
    (`SAAEConfig.glyph_aspect`) gets each glyph at most as wide as its slot, the same height; a model trained on
    glyphs as drawn gets them as drawn. Framed by their height then, as a plate's characters are, they fill the frame's
    height as those do."""
    narrow = load_checkpoint(make_checkpoint(tmp_path / "narrow.safetensors", CHARS, glyph_aspect=0.6))
    wide = load_checkpoint(ckpt_cn)
    style_plates = load_style_plates(styles[:1])[0]  # the uc3m plate: its drawn boxes
    plan = plan_plates(style_plates, 4, list("MW"), seed=0, pattern="LL/LL")
    boxes = [slot.box for slot in plan.layouts[0].char_slots]
    slots = [(x1 - x0) / (y1 - y0) for x0, y0, x1, y1 in boxes]
    drawn = {}
    for name, model in (("narrow", narrow), ("wide", wide)):
        synth = character_synth(model.generator, None, None, style_plates, plan, list("MW"), shipped_fonts(), 0, "cpu", 8)
        drawn[name] = plate_characters(synth, plan, range(plan.n)).contents
    narrowed = [ink_aspect(g) for g in drawn["narrow"]]
    as_drawn = [ink_aspect(g) for g in drawn["wide"]]
    allowed = np.tile(slots, plan.n) + 0.05  # the nearest step of 0.05, and a pixel at 32 px
    assert all(a <= limit for a, limit in zip(narrowed, allowed))
    assert sum(a > limit for a, limit in zip(as_drawn, allowed)) > len(as_drawn) // 2  # the fonts' M and W are wider
    heights = [np.ptp(np.nonzero(g > 64)[0]) + 1 for g in drawn["narrow"]]
    assert all(abs(h - 32 / CROP_MARGIN) <= 1.5 for h in heights)
    assert np.mean([np.ptp(np.nonzero(g > 64)[0]) + 1 for g in drawn["wide"]]) < np.mean(heights) - 2  # framed by width
