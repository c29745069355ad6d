"""Where does `plategen synth` spend its CPU and wall time? A per-stage table, ms per item.

    python benchmarks/synth_profile.py --plates --n 1000        # ccpd-crops style, files
    python benchmarks/synth_profile.py --n 20000                # characters, examples/plate-es.jpg, files
    python benchmarks/synth_profile.py --plates --format shards

Runs one real `synthesize` in this process with each stage's function wrapped by a timer
that adds up the CPU time of the thread calling it (`time.thread_time`, so stages running
side by side in worker threads are counted each on its own) and its wall time. Stages nest
(the generator pass holds the generator and colour matching; the draw holds all of those and
the label check), so a row is inclusive of the rows indented under it. The process CPU
(all threads, `resource.getrusage`) and wall per item are printed last; they are the figures
to compare between versions on a shared machine, as CPU time moves little with the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.synth import SynthRequest, synthesize  # noqa: E402
from plategen.synth import check, engine, plate_writers, plates, writers  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CCPD = DATA / "ccpd-crops" / "images" / "京PL3N67.jpg"
EXAMPLE = REPO / "examples" / "plate-es.jpg"

# (depth, label, owner, attribute): owner.attribute is wrapped; depth indents the row under its parent
STAGES = [
    (0, "set-up (pools, folding, split decoder)", engine.Engine, "__init__"),
    (0, "draw a chunk (generate + check + retries)", engine.Synthesizer, "_generate"),
    (1, "generator pass (all draws)", engine.Engine, "run"),
    (2, "decoder tail", engine.Engine, "_draw"),
    (2, "colour matching", engine, "match_colours"),
    (1, "label check (all draws)", check.LabelCheck, "read"),
    (1, "noise + uint8", engine, "_add_noise"),
    (0, "compose plates", plates, "compose_plates"),
    (0, "pixel hashes", writers, "batch_hashes"),
    (0, "PNG encode", writers, "encode_png"),
    (0, "write a character file", writers, "write_file"),
    (0, "write a plate (png + label txt)", plate_writers, "write_plate"),
    (0, "journal", writers.Journal, "append"),
    (0, "manifest", writers, "write_manifest"),
    (0, "plate index (plates.csv ...)", plates, "write_plate_index"),
]
ALIASES = {"encode_png": [plate_writers], "write_file": [plate_writers]}  # modules that imported the name


class Timers:
    def __init__(self):
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.rows: dict[str, int] = defaultdict(int)
        self.first: dict[str, float] = {}  # perf_counter at the first call's start
        self.last: dict[str, float] = {}  # ... and at the last call's end
        self.lock = threading.Lock()

    def wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            c, w = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.perf_counter()
                c, w = time.thread_time() - c, end - w
                with self.lock:
                    self.first.setdefault(label, end - w)
                    self.last[label] = end
                    self.cpu[label] += c
                    self.wall[label] += w
                    self.calls[label] += 1
                    if label.startswith("generator pass"):
                        self.rows[label] += len(args[1])
        return timed


def install(timers: Timers) -> None:
    for _, label, owner, name in STAGES:
        original = getattr(owner, name)
        wrapped = timers.wrap(label, original)
        setattr(owner, name, wrapped)
        for module in ALIASES.get(name, []):
            if getattr(module, name) is original:
                setattr(module, name, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", action="store_true", help="whole plates (ccpd-crops style); else characters")
    parser.add_argument("--n", type=int, default=None, help="plates (default 1000) or characters (default 20000)")
    parser.add_argument("--format", choices=["files", "shards"], default="files")
    parser.add_argument("--style", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write into, kept (default: a temporary folder, deleted after; deleting "
                             "thousands of files slows the next files created, see render_vs_synth.py)")
    args = parser.parse_args()
    n = args.n or (1000 if args.plates else 20000)
    style = args.style or (CCPD if args.plates else EXAMPLE)
    timers = Timers()
    install(timers)
    print(f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {n} "
          f"{'plates' if args.plates else 'characters'}, style {style.name}, {args.format}")
    scratch = Path(tempfile.mkdtemp(prefix="synth-profile-", dir=args.out))
    try:
        usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        began = wall
        report = synthesize(SynthRequest(styles=[style], chars=None if args.plates else list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                                         n=n, out=scratch / "out", format=args.format, plates=args.plates))
        ended = time.perf_counter()
        wall = ended - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        if args.out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    sys_cpu = after.ru_stime - usage.ru_stime
    unit = "plate" if args.plates else "char"
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    chars = report.characters if args.plates else n
    if args.plates:
        print(f"{chars} characters ({chars / n:.1f} a plate), label check failed {report.check_failed}")
    rows = timers.rows.get("generator pass (all draws)", 0)
    print(f"generator rows {rows} = {rows / chars:.2f} draws per character")
    print(f"{'stage':<46}{'cpu ms/' + unit:>14}{'wall ms/' + unit:>15}{'calls':>8}")
    for depth, label, _, _ in STAGES:
        if timers.calls.get(label):
            print(f"{'  ' * depth + label:<46}{1000 * timers.cpu[label] / n:>14.3f}{1000 * timers.wall[label] / n:>15.3f}"
                  f"{timers.calls[label]:>8}")
    print(f"{'process: all threads (system part)':<46}{1000 * cpu / n:>14.3f}{1000 * wall / n:>15.3f}"
          f"   sys {1000 * sys_cpu / n:.3f}")
    draw = "draw a chunk (generate + check + retries)"
    print(f"wall before the first chunk is drawn {timers.first[draw] - began:.2f} s, after the last journal entry "
          f"{ended - timers.last['journal']:.2f} s, of {wall:.2f} s")
    print(f"{n / wall:.1f} {unit}s/s wall, {n / cpu:.1f} {unit}s per CPU second")


if __name__ == "__main__":
    main()
