"""What a benchmark run is asked to do (`BenchmarkRequest`), parsed from the options and checked before any work.

Two levels share the options: `chars` (a character CNN on 32x32 crops, the paper's question) and
`plates` (a whole-plate recogniser, measured by plate accuracy); `level_options` fills in each
level's defaults and refuses an option of the other level."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from plategen.atomic import require_no_file_in_the_way, require_writable_folder
from plategen.device import usable_cores
from plategen.errors import PlategenError
from plategen.plates import synth_meta
from plategen.recognizer import PlateSchedule, Schedule
from plategen.sizes import MAX_BATCH_SIZE
from plategen.synth.writers import LOCK

LEVELS = ("chars", "plates")
GENERATORS = ("saae", "render")
BALANCES = ("data", "uniform")
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "uc3m-lp"
DEFAULT_TEST_PLATES = 400
DEFAULT_BUDGET_S = 240.0
MAX_SEEDS = 100  # --seeds 10000000 sat planning splits without a word; 100 seeds of the default run take about 11 h
MAX_BUDGET_S = 86400.0  # --budget: inf or 1e300 let the fresh SAAE train up to its step cap for hours
DEFAULT_SYNTHETIC_SIZE = {"chars": 4000, "plates": 1000}  # generated crops / plates of the synthetic-only reference
# ... at most 50x / 20x that: 10**8 ended in a MemoryError traceback (a pool of 286 GiB)
MAX_SYNTHETIC_SIZE = {"chars": 200_000, "plates": 20_000}
DEFAULT_SCHEDULE = Schedule(eval_points=8)
DEFAULT_PLATE_SCHEDULE = PlateSchedule(eval_points=8)


def default_workers() -> int:
    """Recognisers trained side by side: two, where there are two cores (one plate recogniser at a time
    on 2 torch threads kept 2 idle cores only 63% busy: 126% CPU over the default run)."""
    return max(1, min(2, usable_cores()))


def parse_ratios(text: str) -> tuple[float, ...]:
    """'0,1,2,4' -> (0.0, 1.0, 2.0, 4.0); ratio 0 (real only) is always included."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or not str(text).strip() or any(p == "" for p in parts):
        raise PlategenError(f"--ratios {text!r}: expected comma-separated numbers such as 0,1,2,4")
    values = []
    for p in parts:
        try:
            if "_" in p:  # float() reads 1_0 as 10
                raise ValueError
            v = float(p) + 0.0  # + 0.0: -0 is 0, not a column headed "ratio -0"
        except ValueError:
            raise PlategenError(f"--ratios {text!r}: {p!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise PlategenError(f"--ratios {text!r}: {p!r} must be a finite number >= 0")
        if v > 64:
            raise PlategenError(f"--ratios {text!r}: {p!r} is implausibly large (at most 64)")
        values.append(v)
    if len(set(values)) != len(values):
        raise PlategenError(f"--ratios {text!r}: a ratio is listed twice")
    return tuple(sorted(set(values) | {0.0}))


def parse_generators(text: str) -> tuple[str, ...]:
    key = str(text).strip().lower()
    if key == "both":
        return GENERATORS
    if key in GENERATORS:
        return (key,)
    raise PlategenError(f"--generator {text!r}: choose saae, render or both")


def parse_real_plates(text: str) -> int | None:
    """'50' -> 50; 'all' -> None: every plate outside the test plates trains (the plate level's ceiling)."""
    key = str(text).strip().lower()
    if key == "all":
        return None
    try:
        if "_" in key:  # int() reads 1_0 as 10
            raise ValueError
        return int(key)
    except ValueError:
        raise PlategenError(f"--real-plates {text!r}: expected a whole number or all") from None


def level_options(level: str, steps: int | None, batch_size: int | None, synthetic_size: int | None,
                  balance: str | None, threads: int | None = None, workers: int | None = None) -> dict:
    """The request fields that depend on the level, each left-out option at its level's default
    (chars: 600 steps of 64 crops, 4,000 crops; plates: `PlateSchedule`, 1,000 plates; both:
    `default_workers()` recognisers side by side on 1 torch thread each)."""
    if level not in LEVELS:
        raise PlategenError(f"--level {level!r}: choose chars or plates")
    size = synthetic_size if synthetic_size is not None else DEFAULT_SYNTHETIC_SIZE[level]
    common = {"level": level, "synthetic_size": size, "threads": threads if threads is not None else 1,
              "workers": workers if workers is not None else default_workers()}
    if level == "plates":
        if balance is not None:
            raise PlategenError("--balance sets the class shares of generated crops (--level chars); generated "
                                "plates take texts balanced per slot kind over the training plates' characters")
        base = DEFAULT_PLATE_SCHEDULE
        return {**common, "plate_schedule": PlateSchedule(
            steps=steps if steps is not None else base.steps,
            batch_size=batch_size if batch_size is not None else base.batch_size, eval_points=base.eval_points)}
    base = DEFAULT_SCHEDULE
    return {**common, "balance": balance if balance is not None else "data",
            "schedule": Schedule(steps=steps if steps is not None else base.steps,
                                 batch_size=batch_size if batch_size is not None else base.batch_size,
                                 eval_points=base.eval_points)}


REPORT_FILES = ("report.json", "report.md", "benchmark.png")  # what a run writes in --out (report.json last)


@dataclass(frozen=True)
class BenchmarkRequest:
    data: Path = DEFAULT_DATA
    out: Path = Path("runs/benchmark")
    ratios: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    real_plates: int | None = 50  # None: all plates outside the test plates (--real-plates all; plates level)
    seeds: int = 3
    generators: tuple[str, ...] = GENERATORS
    checkpoint: Path | None = None  # None: the shipped checkpoint (product regime)
    test: Path | None = None  # an external test folder instead of a split of `data`
    test_plates: int | None = None  # images held out of `data` for test (at least); None: DEFAULT_TEST_PLATES
    allow_overlap: bool = False
    allow_outside_paths: bool = False  # follow CSV image paths that leave --data / --test (see load_plates)
    train_generator: bool = False  # same-budget regime
    generator_budget_s: float | None = None  # per seed, same-budget regime; None: DEFAULT_BUDGET_S
    generator_max_steps: int | None = None  # a step cap for the fresh SAAE, so a run can be repeated exactly
    schedule: Schedule = DEFAULT_SCHEDULE  # every character recogniser's
    synthetic_size: int | None = None  # generated crops (plates) of the synthetic-only reference; None: the level's
    balance: str = "data"  # class shares of generated crops: see pools.class_shares
    augment_reference: bool = True
    overwrite: bool = False
    threads: int = 1  # torch threads of this process and of each worker
    workers: int = field(default_factory=default_workers)  # recognisers trained side by side, each in its own process
    command: str = ""
    level: str = "chars"  # chars | plates
    plate_schedule: PlateSchedule = DEFAULT_PLATE_SCHEDULE  # every plate recogniser's (level plates)

    @property
    def synthetic_count(self) -> int:
        """`synthetic_size`, or its level's default (resolved when read: `replace(req, level=...)` keeps it right)."""
        return self.synthetic_size if self.synthetic_size is not None else DEFAULT_SYNTHETIC_SIZE.get(self.level, 0)

    @property
    def regime(self) -> str:
        if "saae" not in self.generators:
            return "no model"
        return "same-budget" if self.train_generator else "product"

    @property
    def held_out_images(self) -> int:
        return self.test_plates if self.test_plates is not None else DEFAULT_TEST_PLATES

    @property
    def budget_s(self) -> float:
        return self.generator_budget_s if self.generator_budget_s is not None else DEFAULT_BUDGET_S


def _benchmark_report(out: Path) -> bool:
    """Whether `out` holds an earlier benchmark's report.json (its files are the ones --overwrite replaces)."""
    try:
        return json.loads((out / "report.json").read_text(encoding="utf-8")).get("tool") == "plategen benchmark"
    except (OSError, ValueError, AttributeError):
        return False


def check_request(req: BenchmarkRequest) -> None:
    """Every option alone and in combination; an option the run would ignore is refused, not dropped."""
    if not 1 <= req.seeds <= MAX_SEEDS:
        raise PlategenError(f"--seeds {req.seeds}: need 1 to {MAX_SEEDS}")
    if req.level not in LEVELS:
        raise PlategenError(f"--level {req.level!r}: choose chars or plates")
    if req.real_plates is None and req.level != "plates":
        raise PlategenError("--real-plates all is the plate level's ceiling reference (--level plates); at the "
                            "character level the judge is trained on all real crops outside the test plates")
    if req.real_plates is not None and req.real_plates < 1:
        raise PlategenError(f"--real-plates {req.real_plates}: need at least 1")
    if req.test_plates is not None and req.test_plates < 1:
        raise PlategenError(f"--test-plates {req.test_plates}: need at least 1")
    if req.balance not in BALANCES:
        raise PlategenError(f"--balance {req.balance!r}: choose {' or '.join(BALANCES)}")
    if not 1 <= req.synthetic_count <= MAX_SYNTHETIC_SIZE[req.level]:
        raise PlategenError(f"--synthetic-size {req.synthetic_count}: need 1 to {MAX_SYNTHETIC_SIZE[req.level]:,} "
                            f"({'crops' if req.level == 'chars' else 'plates'} at the {req.level} level)")
    schedule = req.plate_schedule if req.level == "plates" else req.schedule
    if schedule.steps < 1:
        raise PlategenError(f"--steps {schedule.steps}: need at least 1")
    if not 1 <= schedule.batch_size <= MAX_BATCH_SIZE:
        raise PlategenError(f"--batch-size {schedule.batch_size}: need 1 to {MAX_BATCH_SIZE}")
    cores = usable_cores()
    if not 1 <= req.threads <= cores:  # far more threads than cores crashed torch and OpenCV (segfault)
        raise PlategenError(f"--threads {req.threads}: need 1 to {cores}, the cores this process may use")
    if not 1 <= req.workers <= cores:
        raise PlategenError(f"--workers {req.workers}: need 1 to {cores}, the cores this process may use")
    if req.train_generator and "saae" not in req.generators:
        raise PlategenError("--train-generator trains a fresh SAAE: use it with --generator saae or both")
    if req.checkpoint is not None and "saae" not in req.generators:
        raise PlategenError("--checkpoint is the SAAE's: use it with --generator saae or both")
    if req.train_generator and req.checkpoint is not None:
        raise PlategenError("--train-generator and --checkpoint exclude each other (same-budget vs product regime)")
    if req.allow_overlap and req.regime != "product":
        raise PlategenError("--allow-overlap concerns the plates a checkpoint trained on: use it with "
                            "--generator saae or both, without --train-generator")
    if req.generator_budget_s is not None and not req.train_generator:
        raise PlategenError("--budget is the fresh SAAE's training time: use it with --train-generator")
    if req.generator_budget_s is not None and not (math.isfinite(req.generator_budget_s)
                                                   and 0 < req.generator_budget_s <= MAX_BUDGET_S):
        raise PlategenError(f"--budget {req.generator_budget_s}: must be a positive number of seconds, at most "
                            f"{MAX_BUDGET_S:.0f} (a day)")
    if req.generator_max_steps is not None and req.generator_max_steps < 1:
        raise PlategenError(f"generator_max_steps {req.generator_max_steps}: need at least 1")
    if req.test is not None and req.test_plates is not None:
        raise PlategenError("--test-plates holds out plates of --data; with --test every plate of --test is a "
                            "test plate: give one or the other")
    out = req.out
    for option, folder in (("--data", req.data), ("--test", req.test)):
        if folder is None:
            continue
        if not folder.is_dir():
            raise PlategenError(f"{option} {folder}: {'a file, not a' if folder.exists() else 'no such'} folder")
        if synth_meta(folder) is not None:  # its plates are plategen's drawings: "real" figures would be of them
            raise PlategenError(f"{option} {folder}: a plategen synth output (generated images, not real plates); "
                                "the benchmark trains and tests on real plates: give a folder of real ones")
        if out.resolve().is_relative_to(folder.resolve()):  # its report and PNG would be read as plates next time
            raise PlategenError(f"--out {out}: inside {option} {folder}; choose a folder outside the data")
    require_no_file_in_the_way(out)
    if out.exists() and not out.is_dir():
        raise PlategenError(f"--out {out}: exists and is not a folder")
    require_writable_folder(out, f"--out {out}")
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()) and not req.overwrite:  # this run's lock is in it
        raise PlategenError(f"--out {out}: exists and is not empty; pass --overwrite or choose another folder")
    if req.overwrite and any((out / name).exists() for name in REPORT_FILES) and not _benchmark_report(out):
        raise PlategenError(f"--out {out}: holds {', '.join(n for n in REPORT_FILES if (out / n).exists())} but no "
                            "report.json of a plategen benchmark; --overwrite replaces only an earlier benchmark's "
                            "report, so choose another folder")
