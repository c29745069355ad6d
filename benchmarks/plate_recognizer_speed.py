"""Milliseconds per training step of the whole-plate recogniser, split into augmentation and model.

    python benchmarks/plate_recognizer_speed.py [--data ../shared/data] [--steps 100] [--threads 1]
        [--input-size 32 128] [--head ctc] [--width 16] [--batch-size 16] [--frame 1.0]

Times `--steps` training steps (after 5 warm-up steps) on real uc3m-lp plates (batch size 16 unless told):
`augment_plates` and the per-column labels of the box centres, then forward, loss, backward and AdamW step. Wall time depends on the load
of a shared machine, so the process CPU time is printed beside it (with one thread it is the
time the step would take on an idle core), with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# Idle OpenMP threads wait passively: with the default (spinning), 2 torch threads on a 2-core
# machine shared with other jobs ran a training step 15x slower than 1 thread (607 vs 42 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.plate_recognizer import images_of  # noqa: E402
from plategen.plates import load_plates  # noqa: E402
from plategen.recognizer import (FrameTargets, PlateRecognizer, PlateSchedule, augment_plates,  # noqa: E402
                                 encode_texts, plate_batch_loss, plate_tensor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--input-size", type=int, nargs=2, default=list(PlateSchedule.input_size))
    parser.add_argument("--head", choices=("ctc", "slots"), default=PlateSchedule.head)
    parser.add_argument("--width", type=int, default=PlateSchedule.width)
    parser.add_argument("--batch-size", type=int, default=PlateSchedule.batch_size)
    parser.add_argument("--frame", type=float, default=PlateSchedule.frame,
                        help="CTC: weight of the per-column loss at the box centres (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    schedule = PlateSchedule(input_size=tuple(args.input_size), head=args.head, width=args.width,
                             batch_size=args.batch_size, frame=args.frame)
    plates = load_plates(args.data / "uc3m-lp").plates
    alphabet = "".join(sorted({c for p in plates for c in p.text}))
    images, centres = images_of(plates, schedule.input_size)
    x_all = plate_tensor(images, schedule.input_size)
    targets = encode_texts([p.text for p in plates], alphabet, schedule.longest)
    frames = FrameTargets.of(centres, targets, schedule.longest)
    model = PlateRecognizer(len(alphabet) + 1, schedule)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)  # as train_plate_recognizer
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    wall = {"augment": 0.0, "model": 0.0}
    cpu = dict(wall)
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores, {args.threads} threads; "
          f"input {schedule.input_size}, head {schedule.head}, width {schedule.width}", flush=True)
    for step in range(args.steps + 5):
        idx = rng.integers(0, len(plates), schedule.batch_size)
        w0, c0 = time.perf_counter(), time.process_time()
        batch = torch.from_numpy(idx)
        x, warp = augment_plates(x_all[batch], gen)
        labels = frames.labels(batch, warp, schedule.columns) if schedule.frame > 0 else None
        w1, c1 = time.perf_counter(), time.process_time()
        loss = plate_batch_loss(model, x, [targets[i] for i in idx], schedule, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        w2, c2 = time.perf_counter(), time.process_time()
        if step >= 5:
            wall["augment"] += w1 - w0
            wall["model"] += w2 - w1
            cpu["augment"] += c1 - c0
            cpu["model"] += c2 - c1
    for part in ("augment", "model"):
        print(f"{part:>8}: {1000 * wall[part] / args.steps:6.1f} ms/step wall, "
              f"{1000 * cpu[part] / args.steps:6.1f} ms/step CPU")
    total = sum(wall.values()) / args.steps
    print(f"   total: {1000 * total:6.1f} ms/step wall -> {total * PlateSchedule.steps:.0f} s for a default training "
          f"of {PlateSchedule.steps} steps; load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
