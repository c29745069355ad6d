"""Which PNG settings should synth write with? CPU per image and bytes, per setting, on its own plates.

    python benchmarks/png_params.py              # 100 plates per style plate of plate_speed.py

Makes plates with `plategen synth --plates` (the ccpd and uc3m style plates of plate_speed.py),
then encodes their pixels (and 32x32 corners, the size of a character image) with each setting
and checks that every one decodes to the same pixels. CPU time (process time, best of 5), so a
busy machine moves it less than wall time; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
import time

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from plate_speed import STYLES  # noqa: E402
from plategen.synth import SynthRequest, synthesize  # noqa: E402
from plategen.synth.writers import PNG_PARAMS, decode_png  # noqa: E402

C = cv2
SETTINGS = {
    "level 1 (libpng's filters, default strategy)": [C.IMWRITE_PNG_COMPRESSION, 1],
    "level 1, Huffman only": [C.IMWRITE_PNG_COMPRESSION, 1, C.IMWRITE_PNG_STRATEGY, C.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY],
    "level 1, RLE, Sub filter": [C.IMWRITE_PNG_COMPRESSION, 1, C.IMWRITE_PNG_STRATEGY, C.IMWRITE_PNG_STRATEGY_RLE,
                                 C.IMWRITE_PNG_FILTER, C.IMWRITE_PNG_FILTER_SUB],
    "level 1, Huffman only, Sub filter": [C.IMWRITE_PNG_COMPRESSION, 1, C.IMWRITE_PNG_STRATEGY,
                                          C.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, C.IMWRITE_PNG_FILTER,
                                          C.IMWRITE_PNG_FILTER_SUB],
    "level 0 (stored)": [C.IMWRITE_PNG_COMPRESSION, 0],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="plates per style plate")
    args = parser.parse_args()
    sets = {}
    with tempfile.TemporaryDirectory(prefix="png-params-") as tmp:
        for name, style in STYLES.items():
            out = synthesize(SynthRequest(styles=[style], chars=None, n=args.n, out=Path(tmp) / name[:4],
                                          plates=True)).out
            sets[name] = [np.ascontiguousarray(decode_png(p.read_bytes())[..., ::-1])
                          for p in sorted((out / "images").glob("*.png"))]
    sets["32x32 corners"] = [np.ascontiguousarray(image[:32, :32]) for image in sets[next(iter(STYLES))]]
    print(f"load average {os.getloadavg()[0]:.2f}; synth writes with {PNG_PARAMS}")
    print(f"{'images':<16}{'setting':<46}{'cpu ms/image':>13}{'bytes':>8}")
    for name, images in sets.items():
        for setting, params in SETTINGS.items():
            best = float("inf")
            for _ in range(5):
                start = time.process_time()
                encoded = [cv2.imencode(".png", image, params)[1] for image in images]
                best = min(best, (time.process_time() - start) / len(images))
            if not all(np.array_equal(cv2.imdecode(e, cv2.IMREAD_COLOR), i) for e, i in zip(encoded, images)):
                raise SystemExit(f"{setting}: does not decode to the same pixels")
            size = sum(len(e) for e in encoded) / len(images)
            print(f"{name:<16}{setting:<46}{1000 * best:>13.3f}{size:>8.0f}")


if __name__ == "__main__":
    main()
