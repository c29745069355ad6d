"""Does generated data help a recogniser? Accuracy versus generated-data ratio, with honest baselines.

For every seed:
  1. a plate-disjoint split of the real data (`splits.py`): N real training plates and test
     plates, whole physical plates (all frames of one plate) on one side only. In the product
     regime the test plates, and the training plates where enough remain, are drawn from
     plates the checkpoint never saw (by content hash).
  2. generated crops from each generator (`pools.py`), with the N real training plates as the
     only styles, class-balanced over the characters every generator can draw.
  3. one recogniser per training set (`runs.py`), every one with the same `Schedule`, evaluated
     on the real test crops: real only (ratio 0), real + r x generated for each generator and
     ratio, real + r x classical augmentation of the real crops ("augment"), generated only
     ("synthetic only", train-on-synthetic / test-on-real); and a judge (`judge.py`) trained
     on all real crops outside the test plates, which reads the generated crops ("read as
     asked class").
  4. mean and standard deviation over seeds, the targets met or not, report.json, report.md
     and benchmark.png (`report.py`).
`benchmark.run_benchmark` runs these in order from a checked `request.BenchmarkRequest`.

`--level plates` asks the same of a whole-plate recogniser (`plate_benchmark.run_plate_benchmark`):
the same splits and leakage guard, generated whole plates instead of crops (`plate_pools`: SAAE
plates through synth's own `make_plates`, render plates on the same erased style plates and texts,
augmented real plates), plate recogniser runs and judge (`plate_runs`), plate accuracy and
character accuracy in the report (`plate_report`).

Two regimes, never mixed in one report:
  product     - the shipped or given checkpoint; a test plate it trained on is refused
                (or, with allow_overlap, reported as a loud warning);
  same-budget - (`train_generator`) a fresh SAAE trained inside the benchmark on only the N
                real training plates of each seed, for a fixed time budget, with `train.fit_saae`.
"""

from plategen.bench.benchmark import run_benchmark
from plategen.bench.plate_benchmark import run_plate_benchmark
from plategen.bench.plate_report import PlateBenchmarkReport, PlateSummary, check_plate_targets, plate_summary_tables
from plategen.bench.judge import JUDGE_MIN_CROPS
from plategen.bench.pools import apportion, class_shares, generated_count, take_balanced
from plategen.bench.report import BenchmarkReport, BenchmarkResult, Rows, Stat, Summary, Target, check_targets, summary_tables
from plategen.bench.request import (DEFAULT_DATA, BenchmarkRequest, check_request, level_options, parse_generators,
                                    parse_ratios, parse_real_plates)
from plategen.bench.splits import Split, split_for_seed

__all__ = ["DEFAULT_DATA", "BenchmarkRequest", "BenchmarkReport", "BenchmarkResult", "JUDGE_MIN_CROPS",
           "PlateBenchmarkReport", "PlateSummary", "Rows", "Split", "Stat", "Summary", "Target", "apportion", "check_plate_targets",
           "check_request", "check_targets", "class_shares", "generated_count", "level_options", "parse_generators",
           "parse_ratios", "parse_real_plates", "plate_summary_tables", "run_benchmark", "run_plate_benchmark",
           "split_for_seed", "summary_tables", "take_balanced"]
