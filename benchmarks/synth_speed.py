"""How fast is `plategen synth`? End-to-end images/s for --n 50000 and the model alone.

    python benchmarks/synth_speed.py                      # files format, shipped model
    python benchmarks/synth_speed.py --format shards --device cuda

Prints the machine (cores, CPU model, GPU), the load average before and after (figures
taken on a busy machine are not the tool's speed), then:
- model only: the generator over pooled glyphs and cached style codes, nothing written;
- end to end: the real CLI in a fresh process (import, checks, generation, PNG encoding,
  writing, manifest), with its wall time and peak memory, and near twins in its output
  (images the same as another of their label up to the light noise).
Uses the shipped checkpoint when present, else a randomly initialised one of the default
size (same speed, meaningless pictures); it says which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plategen.charset import parse_charset  # noqa: E402
from plategen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint  # noqa: E402
from plategen.device import usable_cores  # noqa: E402
from plategen.model import Generator, SAAEConfig  # noqa: E402
from plategen.synth import Synthesizer, load_styles  # noqa: E402

EXAMPLE = REPO / "examples" / "plate-es.jpg"


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = usable_cores()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{usable} usable cores ({os.cpu_count()} logical), CPU {model}, GPU {gpu}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}")


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def checkpoint(path: Path | None, workdir: Path) -> tuple[Path, str]:
    if path is not None:
        return path, str(path)
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT, f"shipped {DEFAULT_CHECKPOINT.name}"
    charset = parse_charset("0-9A-Z")
    config = SAAEConfig(num_classes=len(charset))
    target = workdir / "random.safetensors"
    save_checkpoint(target, Generator(config).eval(), config, {"charset": charset})
    return target, "RANDOM default-size generator (no shipped checkpoint yet)"


def model_only(ckpt: Path, style: Path, n: int, batch_size: int, device: str) -> tuple[float, float]:
    """(images/s inside the generator and the label check, images/s of generate_batch incl. noise + uint8)."""
    if device == "cpu":  # as synth runs it: one core left to the PNG writers
        torch.set_num_threads(max(1, usable_cores() - 1))
    loaded = load_checkpoint(ckpt)
    synth = Synthesizer.build(loaded.generator, load_styles([style]), parse_charset("0-9A-Z"), n, 0,
                              batch_size=batch_size, device=device, charset=loaded.meta.get("charset"),
                              discriminator=loaded.discriminator)
    synth.generate_batch(0)  # warm-up
    synth.model_seconds = 0.0
    batches = min(synth.num_batches, max(1, 20000 // batch_size))
    start = time.perf_counter()
    count = sum(len(synth.generate_batch(b).ids) for b in range(batches))  # .cpu() syncs CUDA
    wall = time.perf_counter() - start
    return count / synth.model_seconds, count / wall


def end_to_end(ckpt: Path, style: Path, n: int, fmt: str, batch_size: int, device: str, out: Path,
               workers: int) -> dict:
    cmd = [sys.executable, "-m", "plategen.cli", "synth", "--style", str(style), "--chars", "0-9A-Z", "--n", str(n),
           "--out", str(out), "--checkpoint", str(ckpt), "--format", fmt, "--batch-size", str(batch_size),
           "--device", device, "--workers", str(workers)]
    start, cpu = time.perf_counter(), children_cpu()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"synth failed:\n{result.stderr}")
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"wall_s": wall, "images_per_s_process": n / wall, "images_per_s_synth": meta["images_per_s"],
            "cpu_ms_per_image": 1000 * cpu / n,
            "check_failed": meta["check_failed"], "twins": near_twins(out),
            "peak_mib": peak_mib, "duplicates": meta["duplicates"], "diversity": meta["within_class_diversity"],
            "closest": meta["closest_pair"], "bytes": size}


def children_cpu() -> float:
    """CPU seconds (user + system, all threads) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def near_twins(out: Path, radius: float = 4.0) -> int:
    """Images whose nearest image of the same label is closer than `radius` (RMS, 0-255): the
    same glyph and style up to the light noise (two noise fields differ by about 2.8)."""
    import csv

    import cv2

    by_label: dict[str, list[str]] = {}
    with (out / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_label.setdefault(row["label"], []).append(row["image_path"])
    if any("#" in p for paths in by_label.values() for p in paths):
        return -1  # shards: not counted
    twins = 0
    for paths in by_label.values():
        x = np.stack([cv2.imread(str(out / p)).reshape(-1) for p in paths]).astype(np.float32)
        sq = (x * x).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0) / x.shape[1]
        np.fill_diagonal(d2, np.inf)
        twins += int((d2.min(1) < radius ** 2).sum())
    return twins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--format", choices=["files", "shards", "both"], default="files")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--style", type=Path, default=EXAMPLE)
    parser.add_argument("--out", type=Path, help="scratch folder (default: a temporary one, deleted after)")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"load average at start: {load()}")
    scratch = Path(tempfile.mkdtemp(prefix="synth-speed-", dir=args.out))
    try:
        ckpt, which = checkpoint(args.checkpoint, scratch)
        print(f"checkpoint: {which}; style: {args.style}; n = {args.n:,}; batch {args.batch_size}; "
              f"device {args.device}")
        if not args.skip_model:
            model_rate, batch_rate = model_only(ckpt, args.style, args.n, args.batch_size, args.device)
            print(f"model only ({torch.get_num_threads()} torch thread(s)): {model_rate:,.0f} images/s in the "
                  f"generator and label check, {batch_rate:,.0f} images/s incl. noise and uint8 conversion")
        for fmt in (["files", "shards"] if args.format == "both" else [args.format]):
            out = scratch / f"out-{fmt}"
            r = end_to_end(ckpt, args.style, args.n, fmt, args.batch_size, args.device, out, args.workers)
            print(f"end to end ({fmt}): {r['images_per_s_process']:,.0f} images/s over the whole process "
                  f"({r['wall_s']:.1f} s incl. start-up), {r['images_per_s_synth']:,.0f} images/s inside synth; "
                  f"process CPU {r['cpu_ms_per_image']:.3f} ms per image (all threads); "
                  f"peak memory {r['peak_mib']:,.0f} MiB; {r['bytes'] / 2**20:,.0f} MiB written; "
                  f"duplicates {r['duplicates']}; near twins {r['twins']}; label check failed {r['check_failed']}; "
                  f"within-class diversity {r['diversity']} (closest pair {r['closest']})")
    finally:  # outputs go only now: deleting many files slows the next creations (render_vs_synth.py)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
