"""Where the plate benchmark's "read as asked" is lost: the generated characters, or the judge? (issue 11)

    python benchmarks/plate_judge_gap.py [--seed 0] [--threads 1] [--data DIR] [--judge-steps N]
        [--judge-without-styles] [--fonts NAME,NAME] [--style-glyphs] [--transforms] [--sheet gap.png]

Seed `--seed` of the default `plategen benchmark --level plates` on uc3m-lp, rebuilt as the benchmark
builds it (the same split, style plates, plan of 1,000 SAAE plates, label check on, and the same judge:
a plate recogniser trained on every real plate outside the seed's test plates). The judge reads the
real test plates and the generated plates, as in the report. Then a character CNN (the character
benchmark's recogniser) trained on the real crops of the judge's own plates reads every character cut
back out of the generated plates at its box: the judge's accuracy on the plates whose every character
the CNN reads as asked says how much of the gap a better drawing of single characters could close.
Also printed: the judge's misreads by kind, and its accuracy per style plate (worst first). `--sheet`
writes the worst style plates beside four of their generated plates, each with the judge's reading.
Probes of what the gap is not: `--judge-steps` trains the judge longer than the benchmark does (a judge that has
not finished learning, or plates that differ from real ones?); `--judge-without-styles` leaves the seed's training
plates, the style plates, out of the judge (does it remember their old text?); `--fonts` draws the generated plates
from these shipped fonts only; `--style-glyphs` draws them from the plate font itself (each character's content glyph
is the mean of the style plates' own crops of it, binarised and framed like a font glyph; fonts for characters with
fewer than 3 crops); `--transforms` reads the generated and the real test plates blurred, sharpened,
JPEG-compressed, noisier, at half resolution and gamma-changed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.bench.plate_pools import as_input, plan_boxes, plate_plan, real_images  # noqa: E402
from plategen.bench.pools import open_generators, pool_seed  # noqa: E402
from plategen.bench.request import BenchmarkRequest, level_options  # noqa: E402
from plategen.bench.splits import judge_plates, plan_splits  # noqa: E402
import plategen.synth.plates as synth_plates  # noqa: E402
from plategen.dataset import build_samples, charset_of, crop_character  # noqa: E402
from plategen.glyphs import CROP_MARGIN, frame_square, ink_box, shipped_fonts, warp_to_frame  # noqa: E402
from plategen.synth.compose import dark_ink  # noqa: E402
from plategen.plates import load_plates  # noqa: E402
from plategen.sizes import GLYPH_SIZE  # noqa: E402
from plategen.recognizer import (Schedule, align, predict, read_plates, train_plate_recognizer,  # noqa: E402
                                 train_recognizer)
from plategen.synth.plates import make_plates, style_plates  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="the benchmark seed (its split) to rebuild")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; at 1, as the benchmark's workers train, the judge is the report's to the bit")
    ap.add_argument("--judge-steps", type=int, default=None,
                    help="train the judge this many steps instead of the benchmark's schedule's")
    ap.add_argument("--data", type=Path, default=None, help="the data folder (default: the benchmark's, uc3m-lp)")
    ap.add_argument("--judge-without-styles", action="store_true",
                    help="train the judge without the seed's training plates (the style plates)")
    ap.add_argument("--fonts", default=None, help="comma-separated shipped font names the generated plates are drawn from")
    ap.add_argument("--style-glyphs", action="store_true",
                    help="content glyphs from the style plates' own crops (the plate font), not the shipped fonts")
    ap.add_argument("--transforms", action="store_true", help="also read the plates under image transforms")
    ap.add_argument("--sheet", type=Path, default=None, help="PNG of the worst style plates and their plates")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    req = BenchmarkRequest(**level_options("plates", None, None, None, None, args.threads, 1), seeds=args.seed + 1,
                           **({"data": args.data} if args.data else {}))
    imported = load_plates(req.data)
    plates = imported.plates + imported.text_only
    charset = charset_of(plates)
    fonts = shipped_fonts()
    gens = open_generators(req, charset, fonts)
    split = plan_splits(req, plates, None, gens.seen)[0][args.seed]
    train = [plates[i] for i in split.train]
    test = [plates[i] for i in split.test]
    judged = [plates[i] for i in judge_plates(split, len(plates), False)
              if not (args.judge_without_styles and i in set(split.train))]
    size = req.plate_schedule.input_size

    boxed = [p for p in train if p.boxes]
    styles, _ = style_plates(boxed)  # as the benchmark takes them
    chars = [c for c in gens.drawable if c in set("".join(p.text for p in train))]
    plan = plate_plan(styles, req.synthetic_count, chars, split.seed)
    ckpt = gens.checkpoint  # drawn as `bench.plate_pools.saae_plates` draws them (label check on)
    drawn_from = [f for f in fonts if f.name in args.fonts.split(",")] if args.fonts else fonts
    if not drawn_from:
        raise SystemExit(f"--fonts {args.fonts}: none of the shipped fonts ({', '.join(f.name for f in fonts)})")
    if args.style_glyphs:
        draw_from_plate_font(styles)
    made = make_plates(ckpt.generator, ckpt.discriminator, ckpt.meta.get("charset"), styles, plan, chars, drawn_from,
                       pool_seed(split.seed), chinese=gens.chinese)

    judge_images, judge_centres = as_input(real_images(judged), [p.boxes for p in judged], size)
    schedule = req.plate_schedule if args.judge_steps is None else replace(req.plate_schedule, steps=args.judge_steps)
    judge = train_plate_recognizer(judge_images, [p.text for p in judged], "".join(charset), schedule,
                                   seed=split.seed * 1000 + 999, centres=judge_centres)
    test_boxes, made_boxes = [p.boxes for p in test], plan_boxes(plan)
    test_read = read_plates(judge, as_input(real_images(test), test_boxes, size)[0])
    read = read_plates(judge, as_input(made.images, made_boxes, size)[0])
    asked = np.array([t == r for t, r in zip(made.texts, read)])

    crops = build_samples([p for p in judged if p.boxes], charset)
    cnn = train_recognizer(crops.crops, crops.labels, len(charset), Schedule(), seed=split.seed).model
    cut, labels, owner = [], [], []
    for i, image in enumerate(made.images):
        for ch, slot in zip(made.texts[i], plan.layouts[plan.style[i]].char_slots):
            cut.append(crop_character(image, slot.box))
            labels.append(charset.index(ch))
            owner.append(i)
    right = predict(cnn, np.stack(cut)) == np.array(labels)
    every = np.array([right[np.array(owner) == i].all() for i in range(len(made.images))])

    print(f"{req.data.name}, benchmark seed {split.seed}: judge trained {schedule.steps} steps; {len(train)} training plates ({len(styles)} styles), "
          f"{len(test)} test plates, {len(judged)} judge plates, {len(made.images)} SAAE plates")
    print(f"judge reads exactly: real test plates {np.mean([p.text == r for p, r in zip(test, test_read)]):.3f}, "
          f"SAAE plates {asked.mean():.3f}")
    print(f"character CNN on the judge's real crops reads {right.mean():.3f} of the placed characters as asked; "
          f"every character of {every.mean():.3f} of the plates")
    print(f"judge on the plates whose every character the CNN reads as asked: {asked[every].mean():.3f}; "
          f"on the others: {asked[~every].mean() if (~every).any() else float('nan'):.3f}")
    kinds = Counter("shorter" if len(r) < len(t) else "longer" if len(r) > len(t) else "same length"
                    for t, r, ok in zip(made.texts, read, asked) if not ok)
    print("judge misreads by kind:", dict(kinds.most_common()))
    pairs = Counter(pair for t, r, ok in zip(made.texts, read, asked) if not ok for pair in align(t, r)
                    if pair[0] != pair[1])
    print("most common (asked, read; '' = none):", [f"{a or '-'}>{b or '-'} {n}" for (a, b), n in pairs.most_common(12)])
    per_style = sorted((float(asked[np.array(plan.style) == k].mean()), k) for k in range(len(styles)))
    print("judge accuracy per style plate, worst 10:",
          ", ".join(f"{Path(styles[k].name).stem} {a:.2f}" for a, k in per_style[:10]))
    print(f"style plates under 0.3: {sum(a < 0.3 for a, _ in per_style)} of {len(styles)}; "
          f"median {np.median([a for a, _ in per_style]):.2f}")
    if args.transforms:
        real_test = real_images(test)
        for name, change in TRANSFORMS.items():
            generated = read_plates(judge, as_input([change(im) for im in made.images], made_boxes, size)[0])
            real = read_plates(judge, as_input([change(im) for im in real_test], test_boxes, size)[0])
            print(f"{name}: judge reads SAAE plates {np.mean([t == r for t, r in zip(made.texts, generated)]):.3f}, "
                  f"real test plates {np.mean([p.text == r for p, r in zip(test, real)]):.3f}")
    if args.sheet:
        write_sheet(args.sheet, [k for _, k in per_style[:8]], styles, plan, made, read)
        print(f"sheet: {args.sheet}")
    print(f"{time.perf_counter() - start:.0f} s")


STYLE_GLYPH_MIN_CROPS = 3


def plate_font(styles) -> dict[str, np.ndarray]:
    """Per character with at least STYLE_GLYPH_MIN_CROPS crops on the style plates: the mean of their ink (0 on the
    paper, 1 on the strokes; nothing outside the box), upsampled, binarised at 0.45 and framed as `glyphs.render_glyph`
    frames a font's glyph (ink 255 on 0)."""
    inks: dict[str, list[np.ndarray]] = {}
    for plate in styles:
        boxes = [slot.box for slot in plate.layout.char_slots]
        dark = dark_ink(plate.image, boxes)
        for box, ch in zip(boxes, plate.text):
            grey = cv2.cvtColor(crop_character(plate.image, box), cv2.COLOR_RGB2GRAY).astype(np.float32)
            x0, y0, x1, y1 = box
            side, mid = max(x1 - x0, y1 - y0) * CROP_MARGIN, GLYPH_SIZE / 2
            half_w, half_h = mid * (x1 - x0) / side, mid * (y1 - y0) / side
            inside = np.zeros((GLYPH_SIZE, GLYPH_SIZE), np.float32)
            inside[max(round(mid - half_h), 0):round(mid + half_h), max(round(mid - half_w), 0):round(mid + half_w)] = 1
            lo, hi = np.percentile(grey[inside > 0], [5, 95])
            if hi - lo >= 10:
                ink = (hi - grey) / (hi - lo) if dark else (grey - lo) / (hi - lo)
                inks.setdefault(ch, []).append(np.clip(ink, 0, 1) * inside)
    glyphs = {}
    for ch, maps in inks.items():
        if len(maps) >= STYLE_GLYPH_MIN_CROPS:
            large = cv2.resize(np.mean(maps, axis=0), (128, 128), interpolation=cv2.INTER_CUBIC)
            ink = ((large > 0.45) * 255).astype(np.uint8)
            glyphs[ch] = warp_to_frame(ink, *frame_square(ink_box(ink)), GLYPH_SIZE)
    return glyphs


def draw_from_plate_font(styles) -> None:
    """Every glyph variant of a character `plate_font` has becomes that glyph, for this process's plate runs."""
    glyphs, build = plate_font(styles), synth_plates.build_glyph_pool

    def pool(keys, *args, **kwargs):
        made = build(keys, *args, **kwargs)
        for label, ch in enumerate(keys):
            if ch in glyphs:
                made.glyphs[made.offset[label]:made.offset[label] + made.size[label]] = glyphs[ch]
        return made

    synth_plates.build_glyph_pool = pool
    print(f"--style-glyphs: the plate font's glyph for {''.join(sorted(glyphs))}; shipped fonts for the rest")


def _sharpened(image: np.ndarray, amount: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0).astype(np.float32)
    return np.clip(image + amount * (image - blurred), 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _noisier(image: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(image.size)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def _halved(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


TRANSFORMS = {
    "as drawn": lambda im: im,
    "blur 0.7 px": lambda im: cv2.GaussianBlur(im, (0, 0), 0.7),
    "blur 1.2 px": lambda im: cv2.GaussianBlur(im, (0, 0), 1.2),
    "sharpen 0.5": lambda im: _sharpened(im, 0.5),
    "sharpen 1": lambda im: _sharpened(im, 1.0),
    "JPEG 40": lambda im: _jpeg(im, 40),
    "noise 6": lambda im: _noisier(im, 6.0),
    "half resolution": _halved,
    "gamma 0.7": lambda im: (255 * (im / 255.0) ** 0.7).astype(np.uint8),
    "gamma 1.4": lambda im: (255 * (im / 255.0) ** 1.4).astype(np.uint8),
}


def write_sheet(path: Path, worst: list[int], styles, plan, made, read) -> None:
    """Each of the worst style plates, then four of its plates with what was asked and what the judge read."""
    from PIL import Image, ImageDraw

    width, height = 256, 64
    sheet = Image.new("RGB", (width * 5 + 10, (height + 14) * len(worst)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, k in enumerate(worst):
        y = row * (height + 14)
        sheet.paste(Image.fromarray(styles[k].image).resize((width, height)), (0, y))
        draw.text((0, y + height), Path(styles[k].name).stem, fill="black")
        for j, i in enumerate([i for i, s in enumerate(plan.style) if s == k][:4]):
            x = 10 + width * (j + 1)
            sheet.paste(Image.fromarray(made.images[i]).resize((width, height)), (x, y))
            draw.text((x, y + height), f"{made.texts[i]} -> {read[i]}",
                      fill="green" if made.texts[i] == read[i] else "red")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


if __name__ == "__main__":
    main()
