"""The typed result of a benchmark and its renderings: summary, targets met or not, report.json, report.md, benchmark.png.

`summarize` turns the runs into a `Summary` of mean / std over seeds; `check_targets` compares it
with the issue's targets; `summary_tables` renders both into rows once, for the Markdown report
and the command's tables alike.
"""

from __future__ import annotations

import io
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from plategen import __version__
from plategen.atomic import atomic_write_bytes, atomic_write_text
from plategen.bench.judge import JUDGE_MIN_CROPS
from plategen.bench.pools import DATA_SHARE, GeneratorInfo
from plategen.bench.request import REPORT_FILES, BenchmarkRequest
from plategen.bench.runs import Run
from plategen.bench.splits import SplitRecord

if TYPE_CHECKING:
    from plategen.bench.plate_report import PlateBenchmarkReport

REGIME_NOTES = {
    "product": "product regime: the SAAE is the given checkpoint; test plates are plates it never saw (by content "
               "hash) unless a warning below says otherwise",
    "same-budget": "same-budget regime: a fresh SAAE per seed saw only that seed's N real training plates",
    "no model": "no SAAE in this run: render and classical augmentation only",
}
LINE_NAMES = {"saae": "real + SAAE", "render": "real + render", "augment": "real + classical augmentation of real"}


# ---------------------------------------------------------------- summary and targets


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds (std 0 for one seed; mean None for none)."""

    mean: float | None
    std: float
    n: int
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat":
        a = np.asarray(values, np.float64)
        return cls(float(a.mean()) if len(a) else None, float(a.std(ddof=1)) if len(a) > 1 else 0.0, int(len(a)),
                   [float(v) for v in a])

    def spread(self) -> str:
        """The mean (a fraction) with its spread over seeds, for the targets' lines."""
        if self.mean is None:
            return "not measured"
        if self.n < 2:
            return f"{self.mean:+.4f} from 1 seed: no spread to judge by"
        return f"{self.mean:+.4f} ± {self.std:.4f} over {self.n} seeds"

    def cell(self) -> str:
        """Percent: 'mean ± std' over several seeds, the value of one (its '± 0.0' was no spread), '-' of none."""
        if self.mean is None:
            return "-"
        return f"{100 * self.mean:.1f}" if self.n < 2 else f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass
class Summary:
    accuracy_vs_ratio: dict[str, dict[str, Stat]]  # line (generator or augment) -> ratio as f"{r:g}" -> stat
    saae_minus_render_paired: dict[str, Stat]  # per seed (same split, same recogniser seed), then mean/std
    real_only: Stat
    synthetic_only: dict[str, Stat]
    read_as_asked: dict[str, Stat]
    read_as_asked_known_classes: dict[str, Stat]
    read_as_asked_without_label_check: dict[str, Stat]
    all_real_judge: Stat


@dataclass(frozen=True)
class Target:
    target: str
    measured: str
    met: bool


def ratio_lines(runs: Sequence, ratios: Sequence[float], generators: Sequence[str],
                value: Callable[[Any], float] = lambda run: run.accuracy) -> dict[str, dict[str, Stat]]:
    """Line (each generator, then "augment" when it ran) -> ratio -> `value` over seeds; ratio 0 is real only.
    `runs`: anything with seed, name, kind, ratio (character or plate runs)."""
    def values(name: str, ratio: float) -> list[float]:
        return [value(r) for r in runs if r.name == name and r.kind == "ratio" and r.ratio == ratio]

    lines = {}
    for g in [*generators, "augment"]:
        if g == "augment" and not any(r.name == g and r.kind == "ratio" for r in runs):
            continue
        lines[g] = {f"{r:g}": Stat.of(values("real", 0.0) if r == 0 else values(g, r)) for r in ratios}
    return lines


def paired_differences(runs: Sequence, ratios: Sequence[float], generators: Sequence[str],
                       value: Callable[[Any], float] = lambda run: run.accuracy) -> dict[str, Stat]:
    """SAAE minus render per seed (same split, same recogniser seed) at each ratio > 0, when both ran."""
    if "saae" not in generators or "render" not in generators:
        return {}
    paired = {}
    for r in ratios:
        if r == 0:
            continue
        a = {x.seed: value(x) for x in runs if x.name == "saae" and x.kind == "ratio" and x.ratio == r}
        b = {x.seed: value(x) for x in runs if x.name == "render" and x.kind == "ratio" and x.ratio == r}
        paired[f"{r:g}"] = Stat.of([a[k] - b[k] for k in sorted(a) if k in b])
    return paired


def summarize(runs: Sequence[Run], ratios: Sequence[float], generators: Sequence[str]) -> Summary:
    def acc(name: str, kind: str, ratio: float | None = None) -> list[float]:
        return [r.accuracy for r in runs if r.name == name and r.kind == kind and (ratio is None or r.ratio == ratio)]

    return Summary(
        accuracy_vs_ratio=ratio_lines(runs, ratios, generators),
        saae_minus_render_paired=paired_differences(runs, ratios, generators),
        real_only=Stat.of(acc("real", "ratio", 0.0)),
        synthetic_only={g: Stat.of(acc(g, "synthetic")) for g in generators},
        read_as_asked={g: Stat.of(acc(g, "read_as_asked")) for g in generators},
        read_as_asked_known_classes={g: Stat.of(acc(g, "read_as_asked_known")) for g in generators},
        read_as_asked_without_label_check={g: Stat.of(acc(g, "read_as_asked_unchecked")) for g in generators
                                           if acc(g, "read_as_asked_unchecked")},
        all_real_judge=Stat.of(acc("judge", "judge")),
    )


def check_targets(summary: Summary, regime: str, ratios: Sequence[float]) -> list[Target]:
    """The issue's targets, checked where this run measured them."""
    out = []
    lines = summary.accuracy_vs_ratio
    real = summary.real_only.mean
    err0 = 1 - real if real is not None else None
    if "saae" in lines and 4.0 in ratios and err0:
        err4 = 1 - lines["saae"]["4"].mean
        if regime == "product":
            out.append(Target("product regime, ratio 4: character error at most half of real-only",
                              f"error {err4:.4f} vs real-only {err0:.4f} ({err4 / err0:.2f}x)", bool(err4 <= err0 / 2)))
        else:
            out.append(Target("same-budget regime, ratio 4: error at least 25% below real-only",
                              f"error {err4:.4f} vs real-only {err0:.4f} ({1 - err4 / err0:+.0%} reduction)",
                              bool(err4 <= 0.75 * err0)))
    if "saae" in lines and "render" in lines and regime == "product":
        for r in (2.0, 4.0):
            if r in ratios:
                a, b = lines["saae"][f"{r:g}"], lines["render"][f"{r:g}"]
                d = summary.saae_minus_render_paired[f"{r:g}"]
                sd = max(a.std, b.std)
                out.append(Target(f"ratio {r:g}: SAAE above render by more than 2 std over seeds (std of either line)",
                                  f"saae {a.mean:.4f}±{a.std:.4f}, render {b.mean:.4f}±{b.std:.4f}; "
                                  f"difference {a.mean - b.mean:+.4f} vs 2 std {2 * sd:.4f}" if a.n > 1 else
                                  f"saae {a.mean:.4f}, render {b.mean:.4f} from 1 seed: no spread to judge by",
                                  bool(a.n > 1 and a.mean - b.mean > 2 * sd)))
                out.append(Target(f"ratio {r:g}: SAAE above render by more than 2 std over seeds "
                                  "(paired: std of the per-seed differences, same split and recogniser seed)",
                                  f"difference {d.spread()}",
                                  bool(d.n > 1 and d.mean > 2 * d.std)))
    if "saae" in summary.synthetic_only and summary.synthetic_only["saae"].n:
        m = summary.synthetic_only["saae"].mean
        out.append(Target("train-on-synthetic / test-on-real (SAAE) >= 90%", f"{m:.4f}", bool(m >= 0.90)))
    if "saae" in summary.read_as_asked and summary.read_as_asked["saae"].n:
        m = summary.read_as_asked["saae"].mean
        k = summary.read_as_asked_known_classes["saae"].mean
        raw = summary.read_as_asked_without_label_check.get("saae")
        out.append(Target("generated characters read as asked class >= 97%",
                          f"{m:.4f} on all generated classes; {k:.4f} on classes the judge has at least "
                          f"{JUDGE_MIN_CROPS} real crops of" + (f"; {raw.mean:.4f} without synth's label check" if raw else ""),
                          bool(m >= 0.97)))
    return out


# ---------------------------------------------------------------- the typed report


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}



@dataclass
class BenchmarkReport:
    """Everything a run found; report.json is `to_json()`, report.md and benchmark.png render it."""

    request: BenchmarkRequest
    regime: str
    warnings: list[str]
    charset: list[str]
    generated_chars: list[str]
    generators: dict[str, GeneratorInfo]
    splits: list[SplitRecord]
    runs: list[Run]
    summary: Summary
    targets: list[Target]
    timing_s: dict[str, float]
    generation_timing_s: dict[str, float]
    created: str = field(default_factory=utc_now)
    machine: dict = field(default_factory=machine_info)

    @property
    def balance_note(self) -> str:
        req = self.request
        return ((f"generated crops: {DATA_SHARE:.0%} follow the class frequencies of the seed's real training crops, "
                 f"{1 - DATA_SHARE:.0%} are spread equally over the characters the seed draws (its split's "
                 "generated_chars), so every class is covered (largest-remainder rounding)" if req.balance == "data" else
                 "generated crops: the same count for every character the seed draws (its split's generated_chars)")
                + "; real crops keep their natural frequencies; the synthetic-only and read-as-asked sets use the "
                  "same class shares")

    @property
    def schedule_note(self) -> str:
        s = self.request.schedule
        return (f"every recogniser (every ratio, generator and reference) trains for exactly {s.steps} steps of "
                f"{s.batch_size} crops, whatever its training set size")

    def to_json(self) -> dict:
        req = self.request
        return {
            "tool": "plategen benchmark",
            "plategen_version": __version__,
            "command": req.command,
            "created": self.created,
            "machine": self.machine,
            "regime": self.regime,
            "regime_note": REGIME_NOTES[self.regime],
            "warnings": self.warnings,
            "data": str(req.data),
            "test": str(req.test) if req.test is not None else None,
            "charset": self.charset,
            "generated_chars": self.generated_chars,
            "balance": req.balance,
            "balance_note": self.balance_note,
            "ratios": list(req.ratios),
            "ratio_definition": "ratio r: the real training crops plus round(r x their count) generated crops",
            "seeds": list(range(req.seeds)),
            "seed_controls": "the split, the generated crops and the recogniser initialisation; every training set of "
                             "one seed uses the same recogniser initialisation and batch seed",
            "real_plates": req.real_plates,
            "test_plates_requested": req.held_out_images if req.test is None else None,
            "synthetic_size": req.synthetic_count,
            "schedule": {**req.schedule.to_dict(), "note": self.schedule_note},
            "generators": {g: asdict(i) for g, i in self.generators.items()},
            "styles": "generated crops use as styles only the seed's real training plates; no test plate is a style",
            "splits": [asdict(s) for s in self.splits],
            "summary": asdict(self.summary),
            "targets": [asdict(t) for t in self.targets],
            "timing_s": {k: round(v, 2) for k, v in self.timing_s.items()},
            "generation_timing_s": {k: round(v, 2) for k, v in self.generation_timing_s.items()},
            "runs": [asdict(r) for r in self.runs],
        }


@dataclass
class BenchmarkResult:
    out: Path
    report: "BenchmarkReport | PlateBenchmarkReport"  # typed: summary, targets (met or not), timing
    files: list[Path]
    seconds: float


# ---------------------------------------------------------------- rows, rendered once


@dataclass
class Rows:
    """A table as plain strings: the Markdown report and the command's rich tables both draw these."""

    title: str | None
    header: list[str]
    rows: list[list[str]]
    text_columns: int = 1  # the leading columns that hold words; the rest hold figures


def summary_tables(report: BenchmarkReport) -> list[Rows]:
    """Accuracy vs ratio, the paired SAAE - render differences (when both ran), the references, the targets."""
    s = report.summary
    ratios = [f"{r:g}" for r in report.request.ratios]
    tables = [Rows("Accuracy on real test crops (mean ± std over seeds, %)",
                   ["training data", *(f"ratio {r}" for r in ratios)],
                   [[LINE_NAMES.get(g, g), *(line[r].cell() for r in ratios)]
                    for g, line in s.accuracy_vs_ratio.items()])]
    if s.saae_minus_render_paired:
        tables.append(Rows(None, ["SAAE minus render, paired per seed (points)",
                                  *(f"ratio {r}" for r in s.saae_minus_render_paired)],
                           [["mean ± std", *(v.cell() for v in s.saae_minus_render_paired.values())]]))
    refs = [["real only (ratio 0)", s.real_only.cell()]]
    refs += [[f"{g} synthetic only ({report.request.synthetic_count} crops), test on real", st.cell()]
             for g, st in s.synthetic_only.items()]
    for g, st in s.read_as_asked.items():
        refs.append([f"{g} generated crops read as asked class by the judge", st.cell()])
        refs.append([f"... on classes the judge has >= {JUDGE_MIN_CROPS} real crops of",
                     s.read_as_asked_known_classes[g].cell()])
        if g in s.read_as_asked_without_label_check:
            refs.append(["... without synth's label check (first draws only)",
                         s.read_as_asked_without_label_check[g].cell()])
    refs.append(["judge (all real crops outside the test plates) on the test crops", s.all_real_judge.cell()])
    tables.append(Rows(None, ["reference", "accuracy (%)"], refs))
    if report.targets:
        tables.append(Rows("Targets", ["target", "measured", "met"],
                           [[t.target, t.measured, "yes" if t.met else "no"] for t in report.targets], text_columns=3))
    return tables


def markdown_table(rows: Rows) -> list[str]:
    return (["| " + " | ".join(rows.header) + " |", "|" + "---|" * len(rows.header)]
            + ["| " + " | ".join(row) + " |" for row in rows.rows])


def report_markdown(report: BenchmarkReport) -> str:
    req, data = report.request, report.to_json()
    lines = [f"# plategen benchmark ({report.regime} regime)", "",
             f"`{req.command}`", "",
             f"- {REGIME_NOTES[report.regime]}",
             f"- data: `{req.data}`" + (f"; test: `{req.test}`" if req.test is not None else
                                        "; test: plate-disjoint split of the data, per seed"),
             f"- {req.real_plates} real training plates, seeds {data['seeds']}; "
             f"test crops per seed: {[sp.test_crops for sp in report.splits]}; "
             f"training crops per seed: {[sp.train_crops for sp in report.splits]}",
             f"- schedule: {report.schedule_note} (AdamW one-cycle, peak lr {req.schedule.lr}, "
             f"light augmentation {'on' if req.schedule.augment else 'off'})",
             f"- {data['ratio_definition']}; {report.balance_note}",
             f"- {data['styles']}",
             f"- machine: {report.machine['cpu_count']} CPU cores, torch {report.machine['torch']} with "
             f"{report.machine['torch_threads']} threads; total {data['timing_s']['total']:.0f} s", ""]
    for w in report.warnings:
        lines += [f"> **WARNING:** {w}", ""]
    accuracy, *others = summary_tables(report)
    lines += [f"## {accuracy.title}", "", *markdown_table(accuracy)]
    targets = others.pop() if report.targets else None
    for table in others:
        lines += ["", *markdown_table(table)]
    lines += ["", "## Generators", ""]
    for g, info in report.generators.items():
        extra = (f"; checkpoint `{info.checkpoint}` sha256 {info.checkpoint_sha256[:12]}…, trained on "
                 f"{info.plates_seen} plates" if info.checkpoint else "")
        lines.append(f"- **{g}**: {info.description}{extra}")
    seen = [sp.train_plates_seen_by_checkpoint for sp in report.splits]
    if any(seen):
        lines.append(f"- training plates the checkpoint had seen, per seed: {seen} (too few unseen plates remained)")
    if targets is not None:
        lines += ["", f"## {targets.title}", "", *markdown_table(targets)]
    lines += ["", "## Time (s)", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in data["timing_s"].items()]
    lines += ["", "![accuracy vs ratio and vs steps](benchmark.png)", ""]
    return "\n".join(lines)


def plot_png(report: BenchmarkReport) -> bytes:
    """Accuracy vs ratio (with the synthetic-only references) and accuracy vs recogniser training steps."""
    fig = Figure(figsize=(12, 4.6))  # no pyplot: no global figure state, no GUI backend
    ax1, ax2 = fig.subplots(1, 2)
    colours = {"saae": "tab:blue", "render": "tab:orange", "augment": "tab:green", "real": "black"}
    s = report.summary
    ratios = list(report.request.ratios)
    for g, line in s.accuracy_vs_ratio.items():
        means = [100 * line[f"{r:g}"].mean for r in ratios]
        stds = [100 * line[f"{r:g}"].std for r in ratios]
        ax1.errorbar(ratios, means, yerr=stds, marker="o", capsize=4, label=f"real + {g}", color=colours.get(g))
    for g, st in s.synthetic_only.items():
        if st.n:
            ax1.axhline(100 * st.mean, ls="--", lw=1, color=colours.get(g), label=f"{g} synthetic only")
    ax1.set_xlabel("generated : real crops (ratio)")
    ax1.set_ylabel("accuracy on real test crops (%)")
    ax1.set_title(f"{report.request.real_plates} real plates, {report.request.seeds} seed(s) ({report.regime})")
    ax1.set_xticks(ratios)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    top = max(ratios)
    curves: dict[str, StepCurves] = {}
    for run in report.runs:
        key = None
        if run.kind == "ratio" and run.name == "real":
            key = "real only"
        elif run.kind == "ratio" and run.ratio == top:
            key = f"real + {top:g}x {run.name}"
        elif run.kind == "synthetic":
            key = f"{run.name} synthetic only"
        if key and run.curve:
            curves.setdefault(key, StepCurves(colours.get(run.name), run.kind == "synthetic")).runs.append(run.curve)
    steps_panel(ax2, curves, "accuracy on real test crops (%)", "accuracy vs training steps")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


@dataclass
class StepCurves:
    """One line of a steps panel: its colour, dashed or not, and each seed's (step, accuracy) curve."""

    colour: str | None
    dashed: bool
    runs: list = field(default_factory=list)


def steps_panel(ax, curves: dict[str, StepCurves], ylabel: str, title: str) -> None:
    """Accuracy on the real test set against the recogniser's training steps, mean and sd over seeds per line: a
    line still rising at the end wanted more steps; one flat at zero for long sat on the CTC plateau."""
    for key, line in curves.items():
        acc = np.array([[c[1] for c in curve] for curve in line.runs]) * 100
        ax.errorbar([c[0] for c in line.runs[0]], acc.mean(0), yerr=acc.std(0, ddof=1) if len(acc) > 1 else None,
                    marker=".", capsize=3, label=key, color=line.colour, ls="--" if line.dashed else "-")
    ax.set_xlabel("recogniser training steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def write_report(out: Path, report: BenchmarkReport) -> list[Path]:
    """The character level's report files (`write_report_files`)."""
    return write_report_files(out, report.to_json(), report_markdown(report), plot_png(report))


def write_report_files(out: Path, data: dict, markdown: str, png: bytes) -> list[Path]:
    """report.json, report.md and benchmark.png (REPORT_FILES), each written atomically, report.json last: its
    presence means the run completed. The JSON is made first, so a report it cannot hold replaces no file."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    paths = [out / name for name in REPORT_FILES]
    atomic_write_bytes(paths[2], png)
    atomic_write_text(paths[1], markdown)
    atomic_write_text(paths[0], text)
    return paths
