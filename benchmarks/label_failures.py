"""Label-check failures per character: which characters the shipped model cannot draw so that its
own discriminator reads them as asked.

    python benchmarks/label_failures.py [--per-class 100] [--json failures.json]

Per style plate (the shipped Spanish example and held-out US and Chinese plates:
`dataset.is_holdout`, never seen in training), the shipped model draws `--per-class` images of
every character of 0-9A-Z (and, in Chinese styles, the 31 provinces) exactly as
`plategen synth --style PLATE --chars ... --n ...` does (default diversity, up to 4 draws). The
figures are the share of a character's images whose every draw the discriminator read as
another character (the manifest's check=fail), and in brackets the share whose first draw it
did (redrawn). Characters outside the checkpoint's charset have no class to be read as: they
are drawn and marked unchecked, and listed as such.

A second table reads the real crops of ../shared/data's three sources with the same check, one draw:
the share of each 0-9A-Z character's crops that the discriminator reads as it with at least
`plan.CHECK_SURE`, on the plates the model trained on (its meta's plate_sha256) and on the others. It is the check's own
ceiling: a character whose real crops it does not pass cannot be expected to pass when generated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.charset import CHINESE_PROVINCES, parse_charset  # noqa: E402
from plategen.checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from plategen.cli import tracker  # noqa: E402
from plategen.dataset import crop_character, is_holdout  # noqa: E402
from plategen.plates import load_plate, load_plates, read_image  # noqa: E402
from plategen.synth import generate  # noqa: E402
from plategen.synth.engine import chinese_model  # noqa: E402
from plategen.synth.check import UNCHECKED, LabelCheck  # noqa: E402
from plategen.synth.plan import CHECK_SURE  # noqa: E402

DATA = REPO.parent / "shared" / "data"
# name: (style image, characters); held-out plates of the three sources, checked at start-up
STYLES = {
    "es example": (REPO / "examples" / "plate-es.jpg", "0-9A-Z"),
    "us ct839 (navy on white)": (DATA / "openalpr-us" / "images" / "ct839.jpg", "0-9A-Z"),
    "us al1156 (red on white)": (DATA / "openalpr-us" / "images" / "al1156.jpg", "0-9A-Z"),
    "us nj104": (DATA / "openalpr-us" / "images" / "nj104.jpg", "0-9A-Z"),
    "cn 苏A53D97": (DATA / "ccpd-crops" / "images" / "苏A53D97.jpg", "0-9A-Z" + CHINESE_PROVINCES),
    "cn 皖A0V262": (DATA / "ccpd-crops" / "images" / "皖A0V262.jpg", "0-9A-Z" + CHINESE_PROVINCES),
}


def failures(model, image: np.ndarray, chars: list[str], per_class: int, seed: int, chinese=None) -> dict[str, tuple]:
    """char -> (failed share, first-draw failed share, unchecked) over `per_class` images each."""
    fail = dict.fromkeys(chars, 0)
    redrawn = dict.fromkeys(chars, 0)
    unchecked = set()
    for batch in generate(model, [image], chars, per_class * len(chars), seed=seed, chinese=chinese):
        for label, check, attempt in zip(batch.labels, batch.checks, batch.attempts):
            fail[label] += check == "fail"
            redrawn[label] += attempt > 0 or check == "fail"
            if check == UNCHECKED:
                unchecked.add(label)
    return {c: (fail[c] / per_class, redrawn[c] / per_class, c in unchecked) for c in chars}


def real_crops_passed(model, chars: list[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """side ("train": a plate the model trained on, by its meta's plate_sha256; "held out") -> char -> (real crops,
    crops the label check passes in one draw: read as the char with at least CHECK_SURE), over the characters of
    `chars` in the model's charset."""
    charset = model.meta["charset"]
    trained = set(model.meta.get("plate_sha256") or [])
    if not trained:
        raise SystemExit("the checkpoint does not record its training plates (plate_sha256): its crops cannot be split")
    chars = [c for c in chars if c in charset]
    check = LabelCheck(model.discriminator, charset, chars, torch.device("cpu"))
    counts = {side: {c: [0, 0] for c in chars} for side in ("train", "held out")}
    for source in ("uc3m-lp", "ccpd-crops", "openalpr-us"):
        for plate in load_plates(DATA / source).plates:
            wanted = [(chars.index(c), box) for c, box in zip(plate.text, plate.boxes) if c in chars]
            if not wanted:
                continue
            image = read_image(plate.image_path)
            crops = np.stack([crop_character(image, box) for _, box in wanted])
            labels = np.array([label for label, _ in wanted])
            read, prob = check.read(torch.from_numpy(crops).permute(0, 3, 1, 2).float(), labels)
            side = counts["train" if plate.sha256 in trained else "held out"]
            for label, passed in zip(labels, read & (prob >= CHECK_SURE)):
                side[chars[label]][0] += 1
                side[chars[label]][1] += int(passed)
    return {side: {c: (n, k) for c, (n, k) in per.items()} for side, per in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="default: as synth without --checkpoint (the default model, allchars for the Chinese "
                             "characters); given, it draws every character")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console(width=200)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}, "
                  f"torch {torch.__version__}, 1 thread")
    model = load_checkpoint(checkpoint_path(args.checkpoint))
    chinese = chinese_model(args.checkpoint)
    results: dict[str, dict[str, tuple]] = {}
    start = time.perf_counter()
    for name, (path, spec) in tracker("styles")(STYLES.items()):
        if DATA in path.parents:  # a data-set plate: it must be one the model never trained on
            plate = load_plate(path).plates[0]
            assert is_holdout(plate) and plate.sha256 not in set(model.meta.get("plate_sha256") or []), \
                f"{path} is a plate the model trained on"
        results[name] = failures(model, read_image(path), parse_charset(spec), args.per_class, args.seed, chinese)
    seconds = time.perf_counter() - start
    names = list(results)
    table = Table(title=f"label check fails after 4 draws, % of {args.per_class} per character "
                        f"(first draw failed, %); {seconds:.0f} s, load {os.getloadavg()[0]:.1f}")
    table.add_column("char")
    for name in names:
        table.add_column(name, overflow="fold")
    chars = list(dict.fromkeys(c for r in results.values() for c in r))
    for ch in chars:
        cells = []
        for name in names:
            got = results[name].get(ch)
            cells.append("" if got is None or got[2] else f"{100 * got[0]:.0f} ({100 * got[1]:.0f})")
        if any(cells):
            table.add_row(ch, *cells)
    table.add_row(UNCHECKED, *("".join(c for c, v in results[name].items() if v[2]) for name in names))
    summary = []
    for name in names:
        checked = {c: v for c, v in results[name].items() if not v[2]}
        over = sorted((c for c, v in checked.items() if v[0] > 0.02), key=lambda c: -checked[c][0])
        unchecked = len(results[name]) - len(checked)
        mean = 100 * np.mean([v[0] for v in checked.values()])
        summary.append(f"{len(over)} of {len(checked)} over 2%; all {mean:.1f}%"
                       + (f"; {unchecked} unchecked" if unchecked else ""))
    table.add_row("summary", *summary)
    console.print(table)
    real = real_crops_passed(model, parse_charset("0-9A-Z"))
    table = Table(title=f"real crops the label check passes in one draw (read as their label, p >= {CHECK_SURE}), %")
    table.add_column("char")
    for side in real:
        table.add_column(f"{side} (crops)")
    for ch in real["train"]:
        table.add_row(ch, *(f"{100 * k / n:.0f} ({n})" if n else "- (0)" for n, k in (real[s][ch] for s in real)))
    console.print(table)
    if args.json is not None:
        args.json.write_text(json.dumps({"generated": {name: {c: {"failed": v[0], "first_draw_failed": v[1],
                                                                   "unchecked": v[2]} for c, v in r.items()}
                                                       for name, r in results.items()},
                                         "real_crops": {side: {c: {"crops": n, "passed": k} for c, (n, k) in per.items()}
                                                        for side, per in real.items()}},
                                        ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
