"""Do whole plates lean as their style plates do?

    python benchmarks/plate_lean.py [--styles 60] [--per-style 3] [--sheet docs/plate-lean.png]

The generator draws upright characters; `synth --plates` places them sheared by the style plate's lean
(`compose.plate_lean`: the second moments of its characters' ink against the fonts' upright glyphs). Per
source, `--styles` held-out plates (`dataset.is_holdout`, seeded choice) each get `--per-style` plates, drawn
twice by the shipped models as `synth --plates` draws them (same plan and seed): placed upright, and placed
with the style plate's lean. The figure is the lean measured on the written plates' own characters (same
estimator, at the boxes and texts the plates are labelled with) minus the style plate's: the median and
90th percentile of its size, over plates, beside the style plates' own spread. `--sheet` writes the
most-leaning style plates beside a plate of each kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from plategen.dataset import is_holdout  # noqa: E402
from plategen.glyphs import shipped_fonts  # noqa: E402
from plategen.plates import load_plates  # noqa: E402
from plategen.synth.compose import Lean, plate_lean  # noqa: E402
from plategen.synth.engine import chinese_model  # noqa: E402
from plategen.synth.plates import make_plates, plan_plates, style_plate, wants_chinese  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SOURCES = ("uc3m-lp", "ccpd-crops", "openalpr-us")
SHEET_ROWS = 4  # most-leaning style plates per source on the sheet
SHEET_HEIGHT = 72


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", type=int, default=60)
    ap.add_argument("--per-style", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    ckpt = load_checkpoint(checkpoint_path(None))
    fonts = shipped_fonts()
    rows = []
    print(f"{'source':12s} {'styles':>6s} {'style |shear| p50/p90':>22s} {'upright gap p50/p90':>20s} "
          f"{'leaned gap p50/p90':>19s}")
    for source in SOURCES:
        start = time.perf_counter()
        held = [p for p in load_plates(DATA / source).plates
                if is_holdout(p) and p.boxes and len(p.boxes) == len(p.text)]
        rng = np.random.default_rng(args.seed)
        chosen = [held[i] for i in rng.choice(len(held), min(args.styles, len(held)), replace=False)]
        styles = []
        for plate in chosen:
            try:
                styles.append(style_plate(plate))
            except Exception as exc:  # a plate synth would refuse (too small, no contrast) is no style
                print(f"  skipped {plate.image_path.name}: {exc}")
        chars = sorted({c for s in styles for c in s.text} & set(ckpt.meta["charset"]))
        upright = [dataclasses.replace(s, lean=Lean()) for s in styles]
        plan = plan_plates(styles, len(styles) * args.per_style, chars, seed=args.seed)
        chinese = chinese_model(None) if wants_chinese(plan.layouts) else None
        made = {name: make_plates(ckpt.generator, ckpt.discriminator, ckpt.meta["charset"], kind, plan, chars,
                                  fonts, args.seed, chinese=chinese).images
                for name, kind in (("upright", upright), ("leaned", styles))}
        want = np.array([styles[k].lean.shear for k in plan.style])
        gaps = {}
        for name, images in made.items():
            got = np.array([plate_lean(image, plan.layouts[k].char_slots, text).shear
                            for image, k, text in zip(images, plan.style, plan.texts)])
            gaps[name] = np.abs(got - want)
        own = np.abs([s.lean.shear for s in styles])
        print(f"{source:12s} {len(styles):6d} {np.median(own):10.3f} / {np.percentile(own, 90):.3f}"
              f" {np.median(gaps['upright']):11.3f} / {np.percentile(gaps['upright'], 90):.3f}"
              f" {np.median(gaps['leaned']):10.3f} / {np.percentile(gaps['leaned'], 90):.3f}"
              f"   ({time.perf_counter() - start:.0f} s)")
        for k in np.argsort(-own)[:SHEET_ROWS]:
            first = int(np.flatnonzero(plan.style == k)[0])
            rows.append([styles[k].image, made["upright"][first], made["leaned"][first]])
    if args.sheet is not None:
        write_sheet(args.sheet, rows)
        print(f"sheet: {args.sheet} (style plate | placed upright | placed leaning as it does)")


def write_sheet(path: Path, rows: list[list[np.ndarray]]) -> None:
    def scaled(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return cv2.resize(image, (round(w * SHEET_HEIGHT / h), SHEET_HEIGHT), interpolation=cv2.INTER_CUBIC)

    lines = [np.concatenate([np.pad(scaled(im), ((0, 0), (0, 6), (0, 0)), constant_values=255) for im in row], 1)
             for row in rows]
    width = max(line.shape[1] for line in lines)
    sheet = np.concatenate([np.pad(line, ((0, 6), (0, width - line.shape[1]), (0, 0)), constant_values=255)
                            for line in lines])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
