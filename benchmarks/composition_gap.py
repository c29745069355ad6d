"""How much legibility is lost when generated characters are placed on a plate?

    python benchmarks/composition_gap.py [--data ../shared/data/uc3m-lp] [--side holdout|train] [--plates 500]
                                          [--checkpoint default|allchars|PATH] [--pattern 'DDDD_LLL']

A character CNN (the benchmark's recogniser) is trained on every real crop of the source outside 50
style plates (seeded choice from the held-out side, `dataset.is_holdout`, or from the train side for
tuning). The shipped model draws a seeded plan of `--plates` whole plates on those styles, the way
`synth --plates` does (label check on). The CNN then reads each character three ways: as drawn (the
32x32 image before placing), cut back out of the composed plate at its box (`dataset.crop_character`),
and, as the reference, the style plates' own real crops. The gap between the first two is what
composing costs; the characters read worst once placed, and the worst style plates (with their ink
colour), are listed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import numpy as np
import torch

from plategen.checkpoint import checkpoint_path, load_checkpoint
from plategen.dataset import build_samples, charset_of, crop_character, is_holdout
from plategen.errors import PlategenError
from plategen.glyphs import shipped_fonts
from plategen.plates import load_plates
from plategen.recognizer import Schedule, predict, train_recognizer
from plategen.synth.engine import chinese_model
from plategen.synth.plates import (DEFAULT_PLATE_BATCH, Canvas, character_synth, compose_plates, plan_plates,
                                   plate_characters, style_plate, wants_chinese)

KNOWN_CROPS = 20  # a class with fewer real crops than this is barely learnt: its misreads say little about the drawing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/uc3m-lp")
    ap.add_argument("--side", choices=["holdout", "train"], default="holdout")
    ap.add_argument("--plates", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pattern", default=None,
                    help="draw this layout on every style plate, as synth --plates --pattern does (e.g. 'DDDD_LLL' "
                         "on uc3m-lp, whose plates' privacy masks hide characters)")
    ap.add_argument("--checkpoint", default=None,
                    help="a path, or a shipped model's name (default, allchars); given, it draws every character, "
                         "as synth's --checkpoint does (without it, allchars draws the Chinese ones)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    plates = [p for p in load_plates(args.data).plates if p.boxes and len(p.boxes) == len(p.text)]
    side = [p for p in plates if is_holdout(p) == (args.side == "holdout")]
    rng = np.random.default_rng(args.seed)
    style_plates = [side[i] for i in rng.choice(len(side), 50, replace=False)]
    chosen = {id(p) for p in style_plates}
    charset = charset_of(plates)
    real = build_samples([p for p in plates if id(p) not in chosen], charset)
    reader = train_recognizer(real.crops, real.labels, len(charset), Schedule(), seed=args.seed).model

    ckpt = load_checkpoint(checkpoint_path(args.checkpoint))
    styles = [style_plate(p) for p in style_plates]
    chars = sorted({c for p in style_plates for c in p.text} & set(ckpt.meta["charset"]), key=charset.index)
    plan = plan_plates(styles, args.plates, chars, seed=7 + args.seed, pattern=args.pattern)
    chinese = chinese_model(args.checkpoint) if wants_chinese(plan.layouts) else None
    synth = character_synth(ckpt.generator, ckpt.discriminator, ckpt.meta["charset"], styles, plan, chars,
                            shipped_fonts(), 7 + args.seed, "cpu", DEFAULT_PLATE_BATCH, chinese)
    canvas, starts = Canvas(styles, plan.layouts), plan.char_starts()
    drawn_images, cut, labels, owner = [], [], [], []
    for b0 in range(0, plan.n, DEFAULT_PLATE_BATCH):
        ids = range(b0, min(b0 + DEFAULT_PLATE_BATCH, plan.n))
        drawn = plate_characters(synth, plan, ids)
        drawn_images.append(drawn.images)
        for i, image in zip(ids, compose_plates(canvas, plan, ids, int(starts[b0]), drawn)):
            for ch, slot in zip(plan.texts[i], plan.layouts[plan.style[i]].char_slots):
                cut.append(crop_character(image, slot.box))
                labels.append(charset.index(ch))
                owner.append(int(plan.style[i]))
    labels, owner = np.array(labels), np.array(owner)
    as_drawn = predict(reader, np.concatenate(drawn_images)) == labels
    as_placed = predict(reader, np.stack(cut)) == labels
    own = build_samples(style_plates, charset)
    print(f"{args.data} ({args.side} styles, {plan.n} plates, {len(labels)} characters"
          f"{f', pattern {args.pattern!r}' if args.pattern else ''})")
    print(f"read as asked, as drawn (32x32, before placing): {as_drawn.mean():.3f}")
    print(f"read as asked, cut back out of the composed plates: {as_placed.mean():.3f}")
    print(f"the style plates' own real crops read right: {(predict(reader, own.crops) == own.labels).mean():.3f}")
    known = np.isin(labels, np.flatnonzero(np.bincount(real.labels, minlength=len(charset)) >= KNOWN_CROPS))
    print(f"... the characters the CNN has >= {KNOWN_CROPS} real crops of ({known.mean():.0%} of those placed): "
          f"as drawn {as_drawn[known].mean():.3f}, placed {as_placed[known].mean():.3f}")
    chinese_known = known & np.array([not charset[c].isascii() for c in labels])
    if chinese_known.any():
        print(f"... of which Chinese ({chinese_known.sum()} placed): as drawn {as_drawn[chinese_known].mean():.3f}, "
              f"placed {as_placed[chinese_known].mean():.3f}")
    per_class = [(charset[c], labels == c) for c in sorted(set(labels.tolist()))]
    print("characters read worst once placed (count: as drawn -> placed):")
    for ch, m in sorted(per_class, key=lambda item: as_placed[item[1]].mean())[:6]:
        print(f"  {ch} ({m.sum()}): {as_drawn[m].mean():.2f} -> {as_placed[m].mean():.2f}")
    lost = Counter(owner[~as_placed].tolist())
    for k, n in lost.most_common(5):
        print(f"  {styles[k].name}: {n} of {(owner == k).sum()} placed characters misread "
              f"({(~as_drawn[owner == k]).sum()} as drawn); ink {canvas.get(k)[1].round().tolist()}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except PlategenError as error:
        sys.exit(f"error: {error}")
