"""What does colour matching (synth/recolour.py) cost? The engine with and without it, interleaved.

    python benchmarks/recolour_speed.py [--n 2048] [--rounds 6]

One process, one torch thread, the shipped model over the shipped example's style pool: each
round times `Engine.run` on the same n draws with matching off, then on (the order alternates),
so both see the same load. Prints images/s per round, the medians and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint  # noqa: E402
from plategen.synth import Synthesizer, load_styles  # noqa: E402
from plategen.synth.engine import Engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    synth = Synthesizer.build(model.generator, load_styles([REPO / "examples" / "plate-es.jpg"]), list("0123456789"),
                              args.n, seed=0)
    engines = {on: Engine(model.generator, synth.glyphs.glyphs, synth.style_pool, torch.device("cpu"), 256,
                          recolour=on) for on in (False, True)}
    glyph, style = synth.entries(np.arange(args.n), np.zeros(args.n, np.int64))
    rates: dict[bool, list[float]] = {False: [], True: []}
    print(f"load average at start: {os.getloadavg()}")
    for r in range(args.rounds):
        for on in ((False, True) if r % 2 == 0 else (True, False)):
            start = time.perf_counter()
            for a in range(0, args.n, 256):
                engines[on].run(glyph[a:a + 256], style[a:a + 256])
            rates[on].append(args.n / (time.perf_counter() - start))
        print(f"round {r}: without {rates[False][-1]:,.0f} images/s, with {rates[True][-1]:,.0f} images/s")
    off, on = np.median(rates[False]), np.median(rates[True])
    print(f"median: without {off:,.0f}, with {on:,.0f} images/s ({100 * (1 - on / off):.1f}% slower); "
          f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
