"""Is `plategen synth` (label check on) as fast as plain font rendering on the same CPU cores?

    python benchmarks/render_vs_synth.py               # --n 20000, 2 processes / 2 cores
    python benchmarks/render_vs_synth.py --n 50000 --rounds 2

In one run on one machine, the same count of 32x32 PNG character images (0-9A-Z, files in a
folder per label) is made twice:
- font rendering: the shipped fonts (fonts/), a plain PIL renderer (draw the glyph in black on
  white, centred, `Image.save` as PNG), split over `--processes` processes;
- plategen synth: the real CLI in a fresh process (`synth_speed.end_to_end`: shipped model,
  label check on, the example plate as style), which uses the same cores.
Prints images/s for both and the ratio synth / render: inside synth (after the interpreter and
its imports have started: checkpoint load, setup, generation, check, PNG writing, manifest) and
over synth's whole process. With `--rounds 2` the two alternate, so a change of the machine's
load shows as a difference between rounds. The load average is printed before and after.

Each side's CPU time per image (user + system, all its processes and threads; synth's whole
process, start-up included) is printed too, with their ratio (render / synth: >= 1 means synth
costs no more CPU per image): on a shared machine it moves much less with the load than images/s.
Every output is deleted only at the end: on ext4 without a journal (as on the project's VM) the
kernel skips inodes deleted in the last minute when it allocates a new one, and after thousands
of deletions that scan costs up to ~0.7 ms of system CPU per file created (perf: ext4
`recently_deleted`), so deleting one side's files would slow the other side's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from plategen.charset import parse_charset  # noqa: E402
from plategen.glyphs import fonts_for, shipped_fonts  # noqa: E402
from synth_speed import EXAMPLE, checkpoint, children_cpu, end_to_end, load, machine  # noqa: E402

SIZE = 32
FONT_PX = 26  # glyph height: about what fills a 32x32 character crop


def render_part(job: tuple[int, int, str, list[str], dict[str, list[str]]]) -> int:
    """Images [start, stop) of the plan: character i % len(chars), the next font that has it."""
    start, stop, out, chars, fonts = job
    loaded = {path: ImageFont.truetype(path, FONT_PX) for paths in fonts.values() for path in paths}
    for i in range(start, stop):
        ch = chars[i % len(chars)]
        paths = fonts[ch]
        image = Image.new("RGB", (SIZE, SIZE), "white")
        ImageDraw.Draw(image).text((SIZE / 2, SIZE / 2), ch, fill="black", font=loaded[paths[i // len(chars) % len(paths)]],
                                   anchor="mm")
        image.save(os.path.join(out, ch, f"{i:07d}.png"))
    return stop - start


def render(n: int, out: Path, processes: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the processes) to render n images with `processes` processes
    (their start-up included)."""
    chars = parse_charset("0-9A-Z")
    fonts = {c: [str(f.path) for f in fonts_for(c, shipped_fonts())] for c in chars}
    for c in chars:
        (out / c).mkdir(parents=True)
    bounds = [n * k // processes for k in range(processes + 1)]
    jobs = [(a, b, str(out), chars, fonts) for a, b in zip(bounds, bounds[1:])]
    start, cpu = time.perf_counter(), children_cpu()
    pool = get_context("fork").Pool(processes)
    done = sum(pool.map(render_part, jobs))
    pool.close()
    pool.join()  # the workers are waited for, so their CPU time is counted
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    assert done == n == sum(1 for _ in out.rglob("*.png"))
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="images per side")
    parser.add_argument("--processes", type=int, default=2, help="font-rendering processes")
    parser.add_argument("--batch-size", type=int, default=256, help="synth's generator batch")
    parser.add_argument("--workers", type=int, default=2, help="synth's PNG-writing threads")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"load average at start: {load()}")
    scratch = Path(tempfile.mkdtemp(prefix="render-vs-synth-"))
    rows = []
    try:
        ckpt, which = checkpoint(None, scratch)
        print(f"n = {args.n:,} per side; synth: {which}, style {EXAMPLE.name}, label check on, cpu; "
              f"render: {args.processes} processes, fonts {', '.join(f.name for f in shipped_fonts())}")
        for r in range(args.rounds):
            render_s, render_cpu = render(args.n, scratch / f"render{r}", args.processes)
            synth = end_to_end(ckpt, EXAMPLE, args.n, "files", args.batch_size, "cpu", scratch / f"synth{r}",
                               args.workers)
            rows.append((r, args.n / render_s, synth["images_per_s_synth"], synth["images_per_s_process"],
                         1000 * render_cpu / args.n, synth["cpu_ms_per_image"], synth["check_failed"], load()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average at end: {load()}")
    print(f"{'round':<7}{'render img/s':>14}{'synth img/s':>13}{'(process)':>11}{'ratio':>8}{'(process)':>11}"
          f"{'render cpu ms/img':>19}{'synth cpu ms/img':>18}{'cpu ratio':>11}{'check fail':>12}  load after")
    for r, render_rate, synth_rate, process_rate, render_cpu, synth_cpu, failed, after in rows:
        print(f"{r:<7}{render_rate:>14,.0f}{synth_rate:>13,.0f}{process_rate:>11,.0f}{synth_rate / render_rate:>8.2f}"
              f"{process_rate / render_rate:>11.2f}{render_cpu:>19.3f}{synth_cpu:>18.3f}{render_cpu / synth_cpu:>11.2f}"
              f"{failed:>12}  {after}")


if __name__ == "__main__":
    main()
