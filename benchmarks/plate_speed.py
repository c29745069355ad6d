"""How fast is `plategen synth --plates`? End-to-end plates/s, files and shards.

    python benchmarks/plate_speed.py                 # --n 500 per case, shipped model, CPU
    python benchmarks/plate_speed.py --n 2000 --device cuda

Cases: a CCPD crop (7 characters, province and separator), a UC3M-LP plate (5 characters), and the
whole openalpr-us folder as styles (620 plates, most erased once: the per-style work, boxing text-only
plates and erasing their characters, is in the time), each written as files (a plategen data folder)
and as tar shards. A case is one `synthesize`
call in this process, so the checkpoint and style plate import are inside the time, as for a
user; the first case also pays the imports' warm-up. Prints the machine and the load average
before and after: figures from a busy machine are not the tool's speed. The CPU time per plate
(all threads) moves much less with the load than plates/s does, so compare it between versions
measured on a shared machine. The cases' outputs are deleted together at the end, not between
cases: see render_vs_synth.py on what deleting thousands of files costs the next ones created.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.device import usable_cores  # noqa: E402
from plategen.synth import SynthRequest, synthesize  # noqa: E402

DATA = REPO.parent / "shared" / "data"
STYLES = {"ccpd (7 chars)": DATA / "ccpd-crops" / "images" / "京PL3N67.jpg",
          "uc3m (5 chars)": DATA / "uc3m-lp" / "images" / "00001_AN-074-C-V.jpg",
          "us-folder (620 styles)": DATA / "openalpr-us"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="plates per case")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="plates per generator batch")
    parser.add_argument("--threads", type=int, default=None, help="generator threads (default: synth's own)")
    parser.add_argument("--case", choices=["ccpd", "uc3m", "us-folder"], action="append", help="only these styles")
    parser.add_argument("--format", choices=["files", "shards"], action="append", help="only these formats")
    args = parser.parse_args()
    print(f"{usable_cores()} usable cores, load average before {os.getloadavg()[0]:.2f}, device {args.device}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="plate-speed-") as tmp:
        for name, style in STYLES.items():
            if args.case and name.split()[0] not in args.case:
                continue
            for fmt in args.format or ("files", "shards"):
                out = Path(tmp) / f"{len(rows)}"
                start, cpu = time.perf_counter(), time.process_time()
                report = synthesize(SynthRequest(styles=[style], chars=None, n=args.n, out=out, device=args.device,
                                                 batch_size=args.batch_size, format=fmt, plates=True,
                                                 threads=args.threads))
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                rows.append((name, fmt, args.n / seconds, 1000 * cpu / args.n, report.characters, report.check_failed))
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print(f"{'style':<24}{'format':<8}{'plates/s':>10}{'cpu ms/plate':>14}{'chars':>8}{'check fail':>12}")
    for name, fmt, rate, cpu, chars, failed in rows:
        print(f"{name:<24}{fmt:<8}{rate:>10.1f}{cpu:>14.1f}{chars:>8}{failed if failed is not None else '-':>12}")


if __name__ == "__main__":
    main()
