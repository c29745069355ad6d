"""Style fidelity on held-out plates: do generated characters take the style plate's colours?

    python benchmarks/style_fidelity.py [--data ../shared/data] [--per-plate 16] [--sheet style-fidelity.png]
    python benchmarks/style_fidelity.py --raw-colours        # the generator's own colours (no colour matching)
    python benchmarks/style_fidelity.py --trained-plates --max-plates 40   # for tuning: never the held-out plates

For every held-out plate (`dataset.is_holdout`: the shipped model never trained on it) of each
source, the shipped model draws `--per-plate` characters of that plate's own characters in its
style, the way `plategen synth --style PLATE` does (default diversity, label check on), and they
are compared with the plate's real character crops (`dataset.build_samples`):

- colours: each crop's pixels are split into two clusters by 2-means in CIELAB (started from
  Otsu on L); the ink cluster is the one the character's clean glyph (blurred) covers more, the
  other is the background. The same rule is applied to real and generated crops. A plate's
  background (ink) colour is the per-channel median over its crops; the figure is the CIEDE2000
  difference between the real and the generated colour, per plate, median per source. The floor
  is the same difference between two halves of the plate's real crops (odd against even).
- left edge (the "bright edge streak" of issue 12, a vivid blue bar on white US plates): the
  mean L and chroma C* of each crop's leftmost 2 columns minus its background's, median per
  plate, real and generated; and the CIEDE2000 difference between the real and the generated
  median colour of those columns.

A PNG sheet shows `--sheet-plates` held-out plates per source: the plate, its real crops, the
generated ones, the four colours (real bg, real ink | generated bg, generated ink) and the ΔE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint  # noqa: E402
from plategen.cli import tracker  # noqa: E402
from plategen.dataset import build_samples, is_holdout  # noqa: E402
from plategen.glyphs import FONTS_DIR, fonts_for, render_glyph, shipped_fonts  # noqa: E402
from plategen.plates import load_plates, read_image  # noqa: E402
from plategen.synth import Diversity, generate_arrays  # noqa: E402

SOURCES = ("uc3m-lp", "ccpd-crops", "openalpr-us")
EDGE_COLUMNS = 2


# ---------------------------------------------------------------- colour science


def to_lab(images: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> CIELAB float32 (L 0-100; D65, sRGB), via OpenCV's float path."""
    flat = images.reshape(-1, 1, 3).astype(np.float32) / 255
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(images.shape).astype(np.float32)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu, Dalal 2005; kL = kC = kH = 1), element-wise over [..., 3]."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dlp, dcp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    lp_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hp_bar = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, hsum + 360, hsum - 360), hsum) / 2
    hp_bar = np.where(c1p * c2p == 0, hsum, hp_bar)
    t = (1 - 0.17 * np.cos(np.radians(hp_bar - 30)) + 0.24 * np.cos(np.radians(2 * hp_bar))
         + 0.32 * np.cos(np.radians(3 * hp_bar + 6)) - 0.20 * np.cos(np.radians(4 * hp_bar - 63)))
    d_theta = 30 * np.exp(-(((hp_bar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    sl = 1 + 0.015 * (lp_bar - 50) ** 2 / np.sqrt(20 + (lp_bar - 50) ** 2)
    sc = 1 + 0.045 * cp_bar
    sh = 1 + 0.015 * cp_bar * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhp / sh) ** 2 + rt * (dcp / sc) * (dhp / sh))


def split_colours(lab: np.ndarray, mask: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(background, ink) Lab colour of one crop [S,S,3]: 2-means in Lab started from Otsu on L;
    ink is the cluster the glyph `mask` [S,S] (0-1) covers more. Cluster colours are medians."""
    pixels = lab.reshape(-1, 3)
    weight = mask.reshape(-1)
    lightness = np.clip(pixels[:, 0] * 2.55, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(lightness, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    member = lightness > threshold
    for _ in range(iterations):
        if member.all() or not member.any():
            break
        centres = np.stack([pixels[~member].mean(0), pixels[member].mean(0)])
        new = ((pixels[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1).astype(bool)
        if (new == member).all():
            break
        member = new
    if member.all() or not member.any():  # a flat crop: one colour for both
        colour = np.median(pixels, 0)
        return colour, colour
    ink = member if weight[member].mean() > weight[~member].mean() else ~member
    return np.median(pixels[~ink], 0), np.median(pixels[ink], 0)


def glyph_mask(ch: str, fonts) -> np.ndarray:
    """The character's clean glyph (first covering font), blurred to forgive font differences, 0-1."""
    glyph = render_glyph(ch, fonts_for(ch, fonts)[0]).astype(np.float32) / 255
    return cv2.GaussianBlur(glyph, (0, 0), 1.5)


@dataclass
class CropColours:
    background: np.ndarray  # [N, 3] Lab
    ink: np.ndarray  # [N, 3] Lab
    edge: np.ndarray  # [N, 3] Lab, mean of the leftmost EDGE_COLUMNS columns

    def median(self, rows: slice | np.ndarray = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        return np.median(self.background[rows], 0), np.median(self.ink[rows], 0)

    @property
    def edge_lift(self) -> float:
        """Median over crops of (left-edge L - background L)."""
        return float(np.median(self.edge[:, 0] - self.background[:, 0]))

    @property
    def edge_chroma(self) -> float:
        """Median over crops of (left-edge chroma C* - background C*): a vivid streak on a white plate."""
        chroma = np.hypot(self.edge[:, 1], self.edge[:, 2]) - np.hypot(self.background[:, 1], self.background[:, 2])
        return float(np.median(chroma))


def crop_colours(crops: np.ndarray, labels: list[str], masks: dict[str, np.ndarray]) -> CropColours:
    lab = to_lab(crops)
    parts = [split_colours(im, masks[ch]) for im, ch in zip(lab, labels)]
    return CropColours(np.array([p[0] for p in parts]), np.array([p[1] for p in parts]),
                       lab[:, :, :EDGE_COLUMNS].reshape(len(crops), -1, 3).mean(1))


# ---------------------------------------------------------------- per plate


@dataclass
class PlateFidelity:
    source: str
    plate: str
    real_crops: int
    de_background: float
    de_ink: float
    floor_background: float | None  # real odd vs real even crops; None with fewer than 2 crops
    floor_ink: float | None
    edge_lift_real: float
    edge_lift_generated: float
    edge_chroma_real: float
    edge_chroma_generated: float
    de_edge: float
    lab: dict[str, list[float]]  # median Lab colour: real / generated background / ink


@dataclass
class SourceFidelity:
    source: str
    plates: int
    de_background: float
    de_ink: float
    floor_background: float
    floor_ink: float
    edge_lift_real: float
    edge_lift_generated: float
    edge_chroma_real: float
    edge_chroma_generated: float
    de_edge: float


def plate_fidelity(source: str, name: str, real: CropColours, generated: CropColours) -> PlateFidelity:
    rb, ri = real.median()
    gb, gi = generated.median()
    floor_b = floor_i = None
    if len(real.background) >= 2:
        (ob, oi), (eb, ei) = real.median(slice(0, None, 2)), real.median(slice(1, None, 2))
        floor_b, floor_i = float(ciede2000(ob, eb)), float(ciede2000(oi, ei))
    return PlateFidelity(source, name, len(real.background), float(ciede2000(rb, gb)), float(ciede2000(ri, gi)),
                         floor_b, floor_i, real.edge_lift, generated.edge_lift, real.edge_chroma, generated.edge_chroma,
                         float(ciede2000(np.median(real.edge, 0), np.median(generated.edge, 0))),
                         {name: [round(float(v), 2) for v in colour] for name, colour in
                          zip(("real_background", "real_ink", "generated_background", "generated_ink"),
                              (rb, ri, gb, gi))})


def summarise(source: str, rows: list[PlateFidelity]) -> SourceFidelity:
    def med(values):
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else float("nan")

    return SourceFidelity(source, len(rows), med(r.de_background for r in rows), med(r.de_ink for r in rows),
                          med(r.floor_background for r in rows), med(r.floor_ink for r in rows),
                          med(r.edge_lift_real for r in rows), med(r.edge_lift_generated for r in rows),
                          med(r.edge_chroma_real for r in rows), med(r.edge_chroma_generated for r in rows),
                          med(r.de_edge for r in rows))


# ---------------------------------------------------------------- sheet


def _swatch(lab: np.ndarray, size: int) -> np.ndarray:
    rgb = cv2.cvtColor(np.asarray(lab, np.float32).reshape(1, 1, 3), cv2.COLOR_Lab2RGB)
    return np.broadcast_to(np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8), (size, size, 3))


def write_sheet(path: Path, shown: list[tuple[PlateFidelity, np.ndarray, np.ndarray, np.ndarray, CropColours,
                                              CropColours]], per_row: int = 7) -> None:
    """One row per plate: plate | real crops | generated crops | swatches | ΔE text."""
    cell, gap, text_w = 48, 12, 280
    plate_w = 3 * cell
    width = plate_w + 2 * (per_row * cell + gap) + 4 * (cell // 2) + gap + text_w
    height = len(shown) * (cell + 6) + 24
    sheet = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(FONTS_DIR / "DejaVuSans-Bold.ttf"), 11)
    cjk = ImageFont.truetype(str(FONTS_DIR / "WenQuanYiMicroHei-plates.ttf"), 11)
    draw.text((4, 4), "plate", fill=(230, 230, 230), font=font)
    draw.text((plate_w + gap, 4), "real crops", fill=(230, 230, 230), font=font)
    draw.text((plate_w + per_row * cell + 2 * gap, 4), "generated (shipped model)", fill=(230, 230, 230), font=font)
    draw.text((plate_w + 2 * (per_row * cell + gap) + gap, 4), "bg/ink real | generated", fill=(230, 230, 230),
              font=font)
    for r, (row, plate, real, generated, real_c, gen_c) in enumerate(shown):
        y = 20 + r * (cell + 6)
        thumb = cv2.resize(plate, (plate_w, cell), interpolation=cv2.INTER_AREA)
        sheet.paste(Image.fromarray(thumb), (0, y))
        for k, crops in enumerate((real, generated)):
            x0 = plate_w + gap + k * (per_row * cell + gap)
            for j, crop in enumerate(crops[:per_row]):
                big = cv2.resize(crop, (cell, cell), interpolation=cv2.INTER_NEAREST)
                sheet.paste(Image.fromarray(big), (x0 + j * cell, y))
        x = plate_w + 2 * (per_row * cell + gap) + gap // 2
        half = cell // 2
        for j, colour in enumerate((*real_c.median(), *gen_c.median())):
            sheet.paste(Image.fromarray(np.ascontiguousarray(_swatch(colour, half))),
                        (x + j * half + (4 if j >= 2 else 0), y + half // 2))
        tx = x + 4 * half + gap
        for ch in Path(row.plate).stem[:22]:  # the plate's name; its province character needs the CJK font
            face = font if ch.isascii() else cjk
            draw.text((tx, y + 2), ch, fill=(230, 230, 230), font=face)
            tx += face.getlength(ch)
        text = (f"ΔE bg {row.de_background:.1f}  ink {row.de_ink:.1f}\n"
                f"left edge ΔL {row.edge_lift_real:+.0f} / {row.edge_lift_generated:+.0f}, "
                f"ΔC* {row.edge_chroma_real:+.0f} / {row.edge_chroma_generated:+.0f}")
        draw.multiline_text((x + 4 * half + gap, y + 16), text, fill=(230, 230, 230), font=font, spacing=2)
    sheet.save(path)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--per-plate", type=int, default=16, help="generated characters per held-out plate")
    parser.add_argument("--max-plates", type=int, default=None, help="at most this many plates per source")
    parser.add_argument("--sheet", type=Path, default=None, help="PNG sheet of real beside generated crops")
    parser.add_argument("--sheet-plates", type=int, default=6, help="plates per source on the sheet")
    parser.add_argument("--json", type=Path, default=None, help="write every plate's figures here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-styles", action="store_true",
                        help="style entries are the plate as given (no crop, shift, colour or blur changes): "
                             "the model's own colour error, without synth's style augmentation")
    parser.add_argument("--raw-colours", action="store_true",
                        help="the generator's own colours (synth without its colour matching, Diversity.match_colours)")
    parser.add_argument("--trained-plates", action="store_true",
                        help="measure on plates the model trained on instead of the held-out ones (for tuning "
                             "synthesis without looking at held-out plates)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console(width=200)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}, "
                  f"torch {torch.__version__}, 1 thread")
    model = load_checkpoint(args.checkpoint)
    fonts = shipped_fonts()
    diversity = Diversity(crop=0, shift=0, colour=0, blur=0) if args.plain_styles else Diversity()
    diversity = replace(diversity, match_colours=not args.raw_colours)
    which = "trained-on" if args.trained_plates else "held-out"
    start = time.perf_counter()
    rows: list[PlateFidelity] = []
    summaries: list[SourceFidelity] = []
    shown = []
    for source in args.sources:
        plates = [p for p in load_plates(args.data / source).plates if is_holdout(p) != args.trained_plates]
        plates = plates[: args.max_plates] if args.max_plates else plates
        samples = build_samples(plates)
        masks = {ch: glyph_mask(ch, fonts) for ch in samples.charset}
        on_sheet = set(np.linspace(0, len(plates) - 1, args.sheet_plates).round().astype(int).tolist())
        source_rows = []
        for p in tracker(f"{source}: {len(plates)} {which} plates")(range(len(plates))):
            mine = samples.plate_index == p
            if not mine.any():
                continue
            real = samples.crops[mine]
            real_labels = [samples.charset[i] for i in samples.labels[mine]]
            chars = list(dict.fromkeys(real_labels))
            image = read_image(plates[p].image_path)
            generated, idx = generate_arrays(model, [image], chars, max(args.per_plate, len(chars)),
                                             seed=args.seed + p, diversity=diversity)
            gen_labels = [chars[i] for i in idx]
            real_c, gen_c = crop_colours(real, real_labels, masks), crop_colours(generated, gen_labels, masks)
            row = plate_fidelity(source, str(plates[p].image_path.relative_to(args.data)), real_c, gen_c)
            source_rows.append(row)
            if p in on_sheet:
                order = np.argsort([chars.index(c) for c in gen_labels], kind="stable")
                shown.append((row, image, real, generated[order], real_c, gen_c))
        rows.extend(source_rows)
        summaries.append(summarise(source, source_rows))
    seconds = time.perf_counter() - start
    table = Table(title=f"style fidelity on {which} plates, {args.checkpoint.name}"
                        f"{', plain styles' if args.plain_styles else ''}"
                        f"{', raw colours' if args.raw_colours else ', colours matched'} "
                        f"(CIEDE2000, median over plates; {seconds:.0f} s, load {os.getloadavg()[0]:.1f})")
    for column in ("source", "plates", "ΔE background", "ΔE ink", "floor bg / ink (real vs real)",
                   "left edge ΔL real / gen", "left edge ΔC* real / gen", "ΔE left edge"):
        table.add_column(column)
    for s in summaries:
        table.add_row(s.source, str(s.plates), f"{s.de_background:.1f}", f"{s.de_ink:.1f}",
                      f"{s.floor_background:.1f} / {s.floor_ink:.1f}",
                      f"{s.edge_lift_real:+.1f} / {s.edge_lift_generated:+.1f}",
                      f"{s.edge_chroma_real:+.1f} / {s.edge_chroma_generated:+.1f}", f"{s.de_edge:.1f}")
    console.print(table)
    if args.json is not None:
        args.json.write_text(json.dumps({"summary": [asdict(s) for s in summaries],
                                         "plates": [asdict(r) for r in rows]}, indent=1), encoding="utf-8")
    if args.sheet is not None:
        write_sheet(args.sheet, shown)
        console.print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
