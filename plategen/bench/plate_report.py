"""The typed result of a plate-level benchmark and its renderings: summary, targets, report.json, report.md, PNG.

The summary keeps the character benchmark's keys (`real_only`, `accuracy_vs_ratio`,
`synthetic_only`, `read_as_asked`, ...) with plate accuracy (exact match) as the value, and the
same figures as character accuracy (1 - CER) under `char_accuracy`.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from matplotlib.figure import Figure

from plategen import __version__
from plategen.bench.plate_runs import PlateRun
from plategen.bench.pools import GeneratorInfo
from plategen.bench.report import (REGIME_NOTES, Rows, Stat, Target, machine_info, markdown_table, paired_differences,
                                   StepCurves, ratio_lines, steps_panel, utc_now, write_report_files)
from plategen.bench.request import (DEFAULT_DATA, DEFAULT_PLATE_SCHEDULE, DEFAULT_SYNTHETIC_SIZE, GENERATORS,
                                    BenchmarkRequest)

LINE_NAMES = {"saae": "real + SAAE plates", "render": "real + render plates",
              "augment": "real + classical augmentation of real plates"}
DEFAULT_RUN_BUDGET_S = 25 * 60
COLOURS = {"saae": "tab:blue", "render": "tab:orange", "augment": "tab:green", "real": "black", "judge": "grey"}


@dataclass
class Figures:
    """One measure (plate or character accuracy), mean ± std over seeds."""

    accuracy_vs_ratio: dict[str, dict[str, Stat]]  # line (generator or augment) -> ratio f"{r:g}" -> stat
    saae_minus_render_paired: dict[str, Stat]
    real_only: Stat
    synthetic_only: dict[str, Stat]
    read_as_asked: dict[str, Stat]  # generated plates the judge reads exactly as their text
    read_as_asked_without_label_check: dict[str, Stat]
    all_real_judge: Stat  # real only with every plate outside the test plates: the ceiling


@dataclass
class PlateSummary(Figures):
    char_accuracy: Figures


def figures(runs: Sequence[PlateRun], ratios: Sequence[float], generators: Sequence[str],
            value: Callable[[PlateRun], float]) -> Figures:
    def of(name: str, kind: str) -> Stat:
        return Stat.of([value(r) for r in runs if r.name == name and r.kind == kind])

    return Figures(ratio_lines(runs, ratios, generators, value), paired_differences(runs, ratios, generators, value),
                   Stat.of([value(r) for r in runs if r.name == "real" and r.kind == "ratio"]),
                   {g: of(g, "synthetic") for g in generators}, {g: of(g, "read_as_asked") for g in generators},
                   {g: of(g, "read_as_asked_unchecked") for g in generators
                    if any(r.name == g and r.kind == "read_as_asked_unchecked" for r in runs)},
                   of("judge", "judge"))


def plate_summary(runs: Sequence[PlateRun], ratios: Sequence[float], generators: Sequence[str]) -> PlateSummary:
    plate = figures(runs, ratios, generators, lambda r: r.accuracy)
    return PlateSummary(**vars(plate), char_accuracy=figures(runs, ratios, generators, lambda r: r.char_accuracy))


def is_default_run(req: BenchmarkRequest) -> bool:
    """The run the issue's 25-minute target is about: `plategen benchmark --level plates` as it comes."""
    return (Path(req.data).resolve() == DEFAULT_DATA.resolve() and req.test is None and req.test_plates is None
            and req.ratios == (0.0, 1.0, 2.0, 4.0) and req.real_plates == 50 and req.seeds == 3
            and req.generators == GENERATORS and req.checkpoint is None and not req.train_generator
            and req.plate_schedule == DEFAULT_PLATE_SCHEDULE and req.synthetic_count == DEFAULT_SYNTHETIC_SIZE["plates"])


def check_plate_targets(summary: PlateSummary, regime: str, ratios: Sequence[float],
                        total_s: float | None = None) -> list[Target]:
    """Issue 11's targets, checked where this run measured them (the time only for the default run)."""
    out = []
    lines, real = summary.accuracy_vs_ratio, summary.real_only.mean
    if "saae" in lines and 4.0 in ratios and real is not None:
        acc4 = lines["saae"]["4"].mean
        out.append(Target("ratio 4: plate error at most half of real-only, and plate accuracy at least 50%",
                          f"plate accuracy {acc4:.4f} vs real-only {real:.4f}; error {1 - acc4:.4f} vs "
                          f"{1 - real:.4f} ({(1 - acc4) / max(1 - real, 1e-9):.2f}x)",
                          bool(1 - acc4 <= (1 - real) / 2 and acc4 >= 0.5)))
    if "saae" in lines and "render" in lines and regime == "product":
        for r in (2.0, 4.0):
            if r in ratios:
                d = summary.saae_minus_render_paired[f"{r:g}"]
                out.append(Target(f"ratio {r:g}: SAAE plates above render plates by more than 2 sd (paired per seed)",
                                  f"difference {d.spread()}",
                                  bool(d.n > 1 and d.mean > 2 * d.std)))
    synthetic = summary.synthetic_only.get("saae")
    if synthetic is not None and synthetic.n:
        out.append(Target("synthetic only (SAAE plates): plate accuracy at least 50%", f"{synthetic.mean:.4f}",
                          bool(synthetic.mean >= 0.5)))
        ceiling = summary.all_real_judge
        if ceiling.n:
            out.append(Target("moonshot: synthetic only at least real only with all training plates",
                              f"{synthetic.mean:.4f} vs {ceiling.mean:.4f}",
                              bool(ceiling.mean > 0 and synthetic.mean >= ceiling.mean)))
    read = summary.read_as_asked.get("saae")
    if read is not None and read.n:
        raw = summary.read_as_asked_without_label_check.get("saae")
        out.append(Target("read as asked: >= 95% of generated plates read exactly as their text by the all-real judge",
                          f"{read.mean:.4f}" + (f"; {raw.mean:.4f} without synth's label check" if raw else ""),
                          bool(read.mean >= 0.95)))
    if total_s is not None:
        out.append(Target("the default run takes at most 25 minutes", f"{total_s:.0f} s",
                          bool(total_s <= DEFAULT_RUN_BUDGET_S)))
    return out


@dataclass
class PlateSplitRecord:
    """One seed's split as report.json lists it: which plates trained and tested, and the generated plates' alphabet."""

    seed: int
    train_plates: list[str]
    train_sha256: list[str]
    test_plates: list[str]
    test_sha256: list[str]
    train_plates_seen_by_checkpoint: int
    generated_chars: list[str]


@dataclass
class PlateBenchmarkReport:
    """Everything a plate-level run found; report.json is `to_json()`, report.md and the PNG render it."""

    request: BenchmarkRequest
    regime: str
    warnings: list[str]
    alphabet: str
    data_plates: int
    text_only_plates: int  # plates of --data (and --test) whose text could not be segmented: text only, no boxes
    generators: dict[str, GeneratorInfo]
    splits: list[PlateSplitRecord]
    runs: list[PlateRun]
    summary: PlateSummary
    targets: list[Target]
    timing_s: dict[str, float]
    generation_timing_s: dict[str, float]
    created: str = field(default_factory=utc_now)
    machine: dict = field(default_factory=machine_info)

    @property
    def real_plates(self) -> str:
        n = self.request.real_plates
        return "all" if n is None else str(n)

    @property
    def notes(self) -> dict[str, str]:
        s = self.request.plate_schedule
        return {
            "ratio_definition": "ratio r: the real training plates plus round(r x their count) generated plates",
            "schedule": f"every plate recogniser (every ratio, generator and reference) trains for exactly {s.steps} "
                        f"steps of {s.batch_size} plates at {s.input_size[0]}x{s.input_size[1]}, head {s.head}",
            "styles": "generated plates use as styles only the seed's real training plates (those with character "
                      "boxes); no test plate is a style",
            "texts": "one plan per seed for every generator: the same style plates, layouts and texts; texts drawn "
                     "balanced per slot kind over the characters of the seed's training plates that every generator "
                     "draws (generated_chars); a plate's text is exactly what it shows",
            "render": "render plates: the SAAE plates' erased style plates, the same texts and boxes, characters from "
                      "the shipped fonts (one per plate, jittered) in the plate's own ink colour, then uneven lighting "
                      "and the character baseline's camera degradations scaled to the plate's character size (their "
                      "warp moves the character boxes too, as it does those of the augmented real plates)",
            "text_only_plates": "plates whose text could not be segmented into character boxes are kept as "
                                "text-only plates: they train and test the plate recognisers like any other, but "
                                "are never a style plate (a style plate needs its boxes)",
            "judge": "the judge: a plate recogniser trained on every real plate outside the test plates (real only "
                     "with all training plates: the ceiling reference); it reads the generated plates",
            "workers": f"{self.request.workers} recogniser(s) trained at a time, each on {self.request.threads} torch "
                       "thread(s); the figures are the same for any number of workers at the same threads",
        }

    def to_json(self) -> dict:
        req = self.request
        return {
            "tool": "plategen benchmark", "level": "plates", "plategen_version": __version__,
            "command": req.command, "created": self.created, "machine": self.machine,
            "regime": self.regime, "regime_note": REGIME_NOTES[self.regime], "warnings": self.warnings,
            "data": str(req.data), "test": str(req.test) if req.test is not None else None,
            "alphabet": self.alphabet, "data_plates": self.data_plates, "text_only_plates": self.text_only_plates,
            "ratios": list(req.ratios), "seeds": list(range(req.seeds)),
            "seed_controls": "the split, the generated plates and the recogniser initialisation; every training set "
                             "of one seed uses the same recogniser initialisation and batch seed",
            "real_plates": self.real_plates,
            "test_plates_requested": req.held_out_images if req.test is None else None,
            "synthetic_size": req.synthetic_count,
            "schedule": req.plate_schedule.to_dict(), "notes": self.notes,
            "generators": {g: asdict(i) for g, i in self.generators.items()},
            "splits": [asdict(s) for s in self.splits],
            "summary": asdict(self.summary),
            "targets": [asdict(t) for t in self.targets],
            "timing_s": {k: round(v, 2) for k, v in self.timing_s.items()},
            "generation_timing_s": {k: round(v, 2) for k, v in self.generation_timing_s.items()},
            "runs": [asdict(r) for r in self.runs],
        }


def _cell(plate: Stat, char: Stat) -> str:
    return "-" if plate.mean is None else f"{plate.cell()} ({char.cell()})"


def plate_summary_tables(report: PlateBenchmarkReport) -> list[Rows]:
    """Plate accuracy vs ratio (character accuracy in brackets), the paired differences, the references, the targets."""
    s, c = report.summary, report.summary.char_accuracy
    ratios = [f"{r:g}" for r in report.request.ratios]
    tables = [Rows("Plate accuracy on real test plates, mean ± sd over seeds, % (character accuracy, 1 - CER)",
                   ["training data", *(f"ratio {r}" for r in ratios)],
                   [[LINE_NAMES.get(g, g), *(_cell(line[r], c.accuracy_vs_ratio[g][r]) for r in ratios)]
                    for g, line in s.accuracy_vs_ratio.items()])]
    if s.saae_minus_render_paired:
        tables.append(Rows(None, ["SAAE minus render plates, paired per seed (points)",
                                  *(f"ratio {r}" for r in s.saae_minus_render_paired)],
                           [["mean ± sd", *(_cell(v, c.saae_minus_render_paired[r])
                                            for r, v in s.saae_minus_render_paired.items())]]))
    n = report.request.synthetic_count
    refs = [[f"real only, {report.real_plates} training plates (ratio 0)", _cell(s.real_only, c.real_only)],
            ["real only, all plates outside the test plates (the judge; ceiling)",
             _cell(s.all_real_judge, c.all_real_judge)]]
    refs += [[f"{g} plates only ({n}), test on real", _cell(st, c.synthetic_only[g])]
             for g, st in s.synthetic_only.items()]
    for g, st in s.read_as_asked.items():
        refs.append([f"{g} plates read exactly as asked by the judge", _cell(st, c.read_as_asked[g])])
        if g in s.read_as_asked_without_label_check:
            refs.append(["... without synth's label check (first draws)",
                         _cell(s.read_as_asked_without_label_check[g], c.read_as_asked_without_label_check[g])])
    tables.append(Rows(None, ["reference", "plate accuracy (char accuracy), %"], refs))
    if report.targets:
        tables.append(Rows("Targets (issue 11)", ["target", "measured", "met"],
                           [[t.target, t.measured, "yes" if t.met else "no"] for t in report.targets], text_columns=3))
    return tables


def plate_report_markdown(report: PlateBenchmarkReport) -> str:
    req, data = report.request, report.to_json()
    lines = [f"# plategen benchmark --level plates ({report.regime} regime)", "", f"`{req.command}`", "",
             f"- {REGIME_NOTES[report.regime]}",
             f"- data: `{req.data}` ({report.data_plates} plates; {report.text_only_plates} plates of --data and "
             "--test are text only)" + (f"; test: `{req.test}`" if req.test is not None else
                            "; test: plate-disjoint split of the data, per seed"),
             f"- {report.real_plates} real training plates, seeds {data['seeds']}; training plates per seed: "
             f"{[len(sp.train_plates) for sp in report.splits]}; test plates per seed: "
             f"{[len(sp.test_plates) for sp in report.splits]}",
             *(f"- {note}" for note in report.notes.values()),
             f"- machine: {report.machine['cpu_count']} CPU cores, torch {report.machine['torch']} with "
             f"{report.machine['torch_threads']} threads; total {data['timing_s']['total']:.0f} s", ""]
    lines += [line for w in report.warnings for line in (f"> **WARNING:** {w}", "")]
    accuracy, *others = plate_summary_tables(report)
    lines += [f"## {accuracy.title}", "", *markdown_table(accuracy)]
    targets = others.pop() if report.targets else None
    for table in others:
        lines += ["", *markdown_table(table)]
    lines += ["", "## Generators", ""]
    for g, info in report.generators.items():
        extra = (f"; checkpoint `{info.checkpoint}` sha256 {info.checkpoint_sha256[:12]}…, trained on "
                 f"{info.plates_seen} plates" if info.checkpoint else "")
        lines.append(f"- **{g}**: {info.description}{extra}")
    if targets is not None:
        lines += ["", f"## {targets.title}", "", *markdown_table(targets)]
    lines += ["", "## Time (s)", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in data["timing_s"].items()]
    lines += ["", "![plate accuracy vs ratio and vs steps](benchmark.png)", ""]
    return "\n".join(lines)


def plate_plot_png(report: PlateBenchmarkReport) -> bytes:
    """Plate and character accuracy vs ratio (with the references as lines), plate accuracy vs training steps."""
    fig = Figure(figsize=(16, 4.8))
    axes = fig.subplots(1, 3)
    s, req = report.summary, report.request
    ratios = list(req.ratios)
    for ax, fig_s, what in ((axes[0], s, "plate accuracy (exact)"), (axes[1], s.char_accuracy,
                                                                     "character accuracy (1 - CER)")):
        for g, line in fig_s.accuracy_vs_ratio.items():
            ax.errorbar(ratios, [100 * line[f"{r:g}"].mean for r in ratios],
                        yerr=[100 * line[f"{r:g}"].std for r in ratios], marker="o", capsize=4,
                        label=f"real + {g}", color=COLOURS.get(g))
        for g, st in fig_s.synthetic_only.items():
            if st.n:
                ax.axhline(100 * st.mean, ls="--", lw=1, color=COLOURS.get(g), label=f"{g} plates only")
        if fig_s.all_real_judge.n:
            ax.axhline(100 * fig_s.all_real_judge.mean, ls=":", lw=1.5, color=COLOURS["judge"],
                       label="real only, all training plates")
        ax.set_xlabel("generated : real plates (ratio)")
        ax.set_ylabel(f"{what} on real test plates (%)")
        ax.set_title(f"{report.real_plates} real plates, {req.seeds} seed(s) ({report.regime})")
        ax.set_xticks(ratios)
        ax.set_ylim(0, max(ax.get_ylim()[1], 1.0))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    top = max(ratios)
    curves: dict[str, StepCurves] = {}
    for run in report.runs:
        key = colour = None
        if run.kind == "ratio" and run.name == "real":
            key, colour = "real only", "real"
        elif run.kind == "ratio" and run.ratio == top:
            key, colour = f"real + {top:g}x {run.name}", run.name
        elif run.kind == "synthetic":
            key, colour = f"{run.name} plates only", run.name
        elif run.kind == "judge":
            key, colour = "real only, all training plates", "judge"
        if key and run.curve:
            curves.setdefault(key, StepCurves(COLOURS.get(colour), run.kind == "synthetic")).runs.append(run.curve)
    steps_panel(axes[2], curves, "plate accuracy on real test plates (%)", "plate accuracy vs training steps")
    axes[2].set_ylim(0, max(axes[2].get_ylim()[1], 1.0))  # from 0: a line on the CTC plateau reads 0 for long
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_plate_report(out: Path, report: PlateBenchmarkReport) -> list[Path]:
    """The plate level's report files (`report.write_report_files`)."""
    return write_report_files(out, report.to_json(), plate_report_markdown(report), plate_plot_png(report))
