"""The `plategen` command line: parse options, call one library function, print the result.

Every user-facing failure is a `PlategenError`; it is printed as one line and the
command exits with status 2.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import track as rich_track
from rich.table import Table

from plategen import __version__
from plategen.atomic import check_sheet_path
from plategen.charset import parse_charset
from plategen.distributed import launched, launched_rank
from plategen.errors import PlategenError, RankStopped, interrupt_status, raise_terminated, require_once
from plategen.inspection import inspect_import
from plategen.plates import load_plates, nothing_usable

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Labelled licence-plate character data in the style of real plates.")
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable)
ALLOW_OUTSIDE_HELP = "Follow CSV image paths that leave the data folder (absolute, or through ..)."


def printable(text: str) -> str:
    """`text` with control characters written as escapes: a file name cannot drive the terminal
    (colours, cursor moves, a fake prompt) or break one line into several."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(path) -> str:
    """A path for a rich table or line: control characters escaped (`printable`), brackets not read as markup."""
    return escape(printable(str(path)))


def _stopping() -> int:
    """The command has stopped and cleaned up: a SIGTERM now (torchrun stopping the other ranks once one failed)
    could only break into the exit, as a traceback from an atexit hook after the one line that said why.
    Returns this process's torchrun rank: 0 also where torchrun's variables are malformed (the error says so)."""
    try:
        rank, several = launched_rank(), launched()
    except PlategenError:  # WORLD_SIZE=abc: raised again here, it came as a traceback
        return 0
    if several and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return rank


def user_errors(command: F) -> F:
    """Turn a PlategenError into one red line and exit status 2, never a traceback. Under torchrun
    a rank other than 0 names itself; one stopped by another rank's error does not repeat it."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RankStopped:
            _stopping()
            raise typer.Exit(2) from None
        except PlategenError as exc:
            rank = _stopping()
            where = f"rank {rank}: " if rank else ""
            err_console.print(f"[bold red]error:[/] {where}{escape(printable(str(exc)))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            if not _stopping():
                err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(interrupt_status()) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"plategen {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")) -> None:
    """Labelled licence-plate character data in the style of real plates."""


def given_path(value: str, option: str) -> Path:
    """A path option as typed: typer would turn an empty one into '.', and a run would write into the
    current folder or read it as a data folder."""
    if not value.strip():
        raise PlategenError(f"{option}: an empty path")
    return Path(value)


def optional_path(value: Optional[str], option: str) -> Optional[Path]:
    return None if value is None else given_path(value, option)


def optional_checkpoint(value: Optional[str], option: str) -> Optional[Path]:
    """A checkpoint to read, as given: a path, or a shipped model's name (`checkpoint.checkpoint_path`)."""
    from plategen.checkpoint import checkpoint_path

    return None if value is None else checkpoint_path(given_path(value, option))


def preview_path(value: Optional[str], off: bool, out: str) -> Optional[Path]:
    """synth's sheet: where --preview says, else preview.png in --out (a person looks before training on it)."""
    if off and value is not None:
        raise PlategenError("--preview and --no-preview: give one")
    if off:
        return None
    from plategen.synth.writers import PREVIEW_NAME

    return optional_path(value, "--preview") if value is not None else given_path(out, "--out") / PREVIEW_NAME


def summary_table(title: str) -> Table:
    """A command's closing table of names and values. A long value (a path has no spaces to wrap at) folds onto
    the next lines: rich would cut it to the terminal's width, and in a log (80 columns) the paths written were lost."""
    table = Table(title=title, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    return table


def tracker(description: str) -> Callable:
    """A progress-bar wrapper for iterables, drawn on stderr so tables stay clean on stdout; not drawn
    when stderr is no terminal, where rich would leave an empty line before an error."""
    if not err_console.is_terminal:
        return lambda items: items

    def track(items):
        items = list(items)
        return rich_track(items, description=description, console=err_console, transient=True)

    return track


def count_grid(title: str, counts: dict[str, int], groups: int = 4) -> Table:
    """Per-label counts as a compact grid of (label, count) column pairs."""
    table = Table(title=title)
    for _ in range(groups):
        table.add_column("char")
        table.add_column("n", justify="right", no_wrap=True)
    items = list(counts.items())
    for start in range(0, len(items), groups):
        row = items[start:start + groups]
        cells = [cell for label, n in row for cell in (label, str(n))]
        table.add_row(*cells, *[""] * (2 * groups - len(cells)))
    return table


# --- commands: each one parses options and calls one library function ---
# Modules that load torch are imported inside the command that needs them, not above: torch takes
# ~3 s to load on a busy machine (help never needs it), and `run` must set
# OMP_WAIT_POLICY before it loads.


@app.command()
@user_errors
def benchmark(
    level: str = typer.Option("chars", help="chars: a character CNN on 32x32 crops; plates: a whole-plate recogniser, "
                                            "measured by plate accuracy (every character right)."),
    ratios: str = typer.Option("0,1,2,4", help="Generated:real crop (plate) ratios; 0 (real only) is always run."),
    data: Optional[str] = typer.Option(None, "--data",
                                        help="Real plates, any importer format. Default: ../shared/data/uc3m-lp "
                                             "relative to the repository root (the issue's targets are on it)."),
    real_plates: str = typer.Option("50", help="Real training plates per seed (scarce real data); with --level "
                                               "plates, all: every plate outside the test plates (the ceiling)."),
    seeds: int = typer.Option(3, help="Repetitions; each seed draws its own split, generated crops and "
                                      "recogniser initialisation. Results are mean ± std over seeds."),
    generator: str = typer.Option("both", help="saae, render (font rendering + augmentation) or both."),
    checkpoint: Optional[str] = typer.Option(None, help="SAAE checkpoint: a path, or a shipped model's name, default or allchars. Left out: the default, with the Chinese characters drawn by allchars, as synth draws them."),
    test: Optional[str] = typer.Option(None, help="External test plates (default: a plate-disjoint split of "
                                                   "--data, drawn from plates the checkpoint never saw)."),
    test_plates: Optional[int] = typer.Option(None, help="Test images held out of --data per seed (default 400; "
                                                         "whole plates, less those the checkpoint saw). Not with --test."),
    out: str = typer.Option("runs/benchmark", help="Report folder (must be new or empty)."),
    overwrite: bool = typer.Option(False, help="Write into a non-empty --out."),
    allow_overlap: bool = typer.Option(False, help="Run even when test plates were among the checkpoint's "
                                                   "training plates (reported as a warning)."),
    allow_outside_paths: bool = typer.Option(False, help=ALLOW_OUTSIDE_HELP),
    train_generator: bool = typer.Option(False, help="Same-budget regime: train a fresh SAAE per seed on only "
                                                     "the N real training plates instead of using a checkpoint."),
    budget: Optional[float] = typer.Option(None, help="Seconds of SAAE training per seed with --train-generator "
                                                      "(default 240)."),
    steps: Optional[int] = typer.Option(None, help="Recogniser training steps, the same for every training set "
                                                   "(default 600; --level plates 1400)."),
    batch_size: Optional[int] = typer.Option(None, help="Recogniser batch size (default 64; --level plates 16)."),
    synthetic_size: Optional[int] = typer.Option(None, help="Generated crops (plates) for the synthetic-only "
                                                            "reference (default 4000; --level plates 1000)."),
    balance: Optional[str] = typer.Option(None, help="Classes of generated crops (--level chars): data (default: "
                                                     "80% follow the real training crops' class frequencies, 20% "
                                                     "spread over every class) or uniform."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch in each worker (default 1)."),
    workers: Optional[int] = typer.Option(None, help="Recognisers trained side by side, each in its own process "
                                                     "(default 2, or 1 on a 1-core machine); the figures are the "
                                                     "same for any number."),
) -> None:
    """Recogniser accuracy on real test crops (or, with --level plates, plates) vs generated-data ratio,
    for SAAE and font rendering.

    Writes report.json, report.md and benchmark.png to --out.
    """
    from plategen.bench import (DEFAULT_DATA, BenchmarkRequest, level_options, parse_generators, parse_ratios, parse_real_plates,
                                plate_summary_tables, run_benchmark, summary_tables)

    data_dir = optional_path(data, "--data") or DEFAULT_DATA
    request = BenchmarkRequest(
        data=data_dir, out=given_path(out, "--out"), ratios=parse_ratios(ratios),
        real_plates=parse_real_plates(real_plates), seeds=seeds,
        generators=parse_generators(generator), checkpoint=optional_path(checkpoint, "--checkpoint"),
        test=optional_path(test, "--test"), test_plates=test_plates,
        allow_overlap=allow_overlap, allow_outside_paths=allow_outside_paths, train_generator=train_generator,
        generator_budget_s=budget, overwrite=overwrite, command="plategen " + " ".join(sys.argv[1:]),
        **level_options(level, steps, batch_size, synthetic_size, balance, threads, workers))
    columns = (TextColumn("recognisers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True,
                  disable=not err_console.is_terminal) as bar:
        task = bar.add_task("benchmark", total=None)
        result = run_benchmark(request, log=lambda msg: err_console.print(escape(msg), highlight=False),
                               warn=lambda msg: err_console.print(f"[bold red on yellow] WARNING [/] {escape(msg)}"),
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    report = result.report
    tables = plate_summary_tables if request.level == "plates" else summary_tables
    console.print(f"{report.regime} regime, mean ± std over {seeds} seed(s)")
    for rows in tables(report):
        table = Table(title=escape(rows.title) if rows.title else None)
        for i, name in enumerate(rows.header):
            table.add_column(escape(name), justify="left" if i < rows.text_columns else "right")
        for row in rows.rows:
            table.add_row(*map(escape, row))
        console.print(table)
    timing = report.timing_s
    console.print(f"{timing['total']:.0f} s in all; recogniser training {timing['recogniser_training']:.0f} s, "
                  f"generation {timing['generation']:.0f} s, generator training {timing['generator_training']:.0f} s")
    for path in result.files:
        console.print(f"wrote {shown(path)}")


@app.command()
@user_errors
def train(
    data: list[str] = typer.Option(..., "--data", help="A plate folder any importer reads; repeat to mix folders."),
    out: str = typer.Option(..., "--out", help="Checkpoint to write (.safetensors); optimizer state goes beside it."),
    preset: str = typer.Option("cpu", help="cpu: batch 64, sized for 2 cores; gpu: larger batches; finetune: "
                               "with --resume, adds 800 reconstruction-only steps at a low rate (the "
                               "discriminator kept fixed), "
                               "to adapt a trained model to a few plates of your own (about 2 min on 2 cores)."),
    steps: Optional[int] = typer.Option(None, help="Total iterations (default: the preset's)."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training crops, instead of --steps."),
    batch_size: Optional[int] = typer.Option(None, help="Samples per iteration (default: the preset's)."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate of both networks (default: the preset's; "
                                                  "lower to fine-tune a trained model gently)."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1."),
    seed: int = typer.Option(0, help="Seeds weights, batches and glyph variation."),
    resume: Optional[str] = typer.Option(None, help="Continue from this checkpoint (weights and optimizer state): "
                                         "a path, or a shipped model's name (default, allchars)."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out."),
    samples_dir: Optional[str] = typer.Option(None, help="Where sample grids go (default: <out stem>-samples/)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default 1: faster on a busy 2-core machine; try 2 on an idle one)."),
    chars: Optional[str] = typer.Option(None, help="Characters to train, e.g. 0-9A-Z京津沪 (default: the resumed "
                                                   "model's, else the training plates'); any a shipped font covers."),
    rendered_share: Optional[float] = typer.Option(None, help="Top every class with fewer real crops than this x the "
                                                              "median class up to it with rendered pairs, e.g. 0.5 "
                                                              "(default 0: real crops only)."),
    narrow_glyphs: bool = typer.Option(False, help="Narrow each content glyph to its crop's box (a font's M or W is up "
                                                   "to twice as wide as a plate's), in training and then in synth; "
                                                   "a new model only (checkpoints/README.md has the one run's figures)."),
    allow_outside_paths: bool = typer.Option(False, help=ALLOW_OUTSIDE_HELP),
) -> None:
    """Train the style generator (SAAE) on real plates; hold out the fixed validation plates."""
    from plategen.train import options_for, train_saae

    folders = [given_path(d, "--data") for d in data]
    require_once(folders, "--data", "its plates would count double")
    options = options_for(preset, steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, device=device, seed=seed,
                          samples_dir=optional_path(samples_dir, "--samples-dir"),
                          num_threads=threads, chars=chars, rendered_share=rendered_share,
                          narrow_glyphs=narrow_glyphs or None)
    checkpoint, began = given_path(out, "--out"), time.time()
    try:
        result = train_saae(folders, checkpoint, options, resume=optional_checkpoint(resume, "--resume"),
                            overwrite=overwrite, allow_outside=allow_outside_paths, progress=err_console.is_terminal)
    except KeyboardInterrupt:
        if launched_rank():
            raise
        if not (checkpoint.is_file() and checkpoint.stat().st_mtime >= began):
            err_console.print("[yellow]interrupted[/] before this run's first checkpoint: nothing was saved",
                              soft_wrap=True)
            raise typer.Exit(interrupt_status()) from None
        err_console.print(f"[yellow]interrupted:[/] {shown(checkpoint)} holds the last checkpoint; run the same "
                          f"command with --resume {shown(checkpoint)} to go on from it", soft_wrap=True)
        raise typer.Exit(interrupt_status()) from None
    if launched_rank():  # under torchrun rank 0 prints the table
        return
    table = summary_table(f"plategen train -> {shown(result.checkpoint)}")
    ran = f" ({result.steps - result.resumed_at:,} from step {result.resumed_at:,})" if result.resumed_at else ""
    table.add_row("steps", f"{result.steps:,}{ran} in {result.seconds / 60:.1f} min")
    if result.adam_restarted:
        table.add_row("optimizer state", f"restarted: no optimizer state of step {result.resumed_at:,} (and of these "
                      "weights) beside the checkpoint, so the weights differ from those of an unbroken run")
    if result.changed_options:
        table.add_row("options changed on resume", escape(f"{', '.join(result.changed_options)}: the weights differ "
                                                         "from those of an unbroken run"))
    if result.earlier_departures:
        table.add_row("earlier resumes", escape(f"{'; '.join(result.earlier_departures)}: the weights differ from those "
                                                "of an unbroken run"))
    if result.outside_charset:
        shown_chars = ", ".join(f"{c} {n}" for c, n in result.outside_charset.items())
        table.add_row("left out", escape(f"{sum(result.outside_charset.values()):,} crops of characters the model has "
                                         f"no class for ({shown_chars}); train with --chars to add classes "
                                         "(--preset cpu: a fine-tune keeps its classes)"))
    if result.untrained:
        table.add_row("untrained classes", escape(f"{''.join(result.untrained)}: no crop on the training plates and no "
                                                  "rendered pair (--rendered-share), so the model draws and checks "
                                                  "them untrained"))
    if result.ranks > 1:
        table.add_row("torchrun ranks", f"{result.ranks}, each on 1/{result.ranks} of every batch; same weights on "
                      "every rank at each checkpoint")
    table.add_row("training data", f"{result.plates:,} plates, {result.crops:,} character crops, "
                  f"{result.rendered:,} rendered pairs")
    if result.bad_records:
        table.add_row("bad records left out", escape(f"{len(result.bad_records):,}; first: {printable(result.bad_records[0])} "
                                                     "(plategen inspect lists them)"))
    if result.repeated:
        table.add_row("repeated images left out", escape(f"{len(result.repeated):,}; first: {printable(result.repeated[0])}"))
    if result.losses:
        table.add_row("(1) reconstruction L1", f"{result.losses.get('rec', float('nan')):.4f}")
        table.add_row("(2) discriminator CE", f"{result.losses.get('d', float('nan')):.3f}")
        table.add_row("(3) adversarial CE", f"{result.losses.get('adv', float('nan')):.3f}")
    else:  # three nan losses read as a run gone wrong
        table.add_row("losses", "none: no step ran, the model had reached this run's total already")
    table.add_row("validation L1 (held-out plates)", f"{result.val_l1:.4f}" if math.isfinite(result.val_l1)
                  else "not measured: no held-out crop of a trained character")
    table.add_row("checkpoint", shown(result.checkpoint))
    table.add_row("optimizer state", shown(result.optimizer_state) if result.optimizer_state is not None else
                  "none beside the checkpoint (a run stopped while writing it?): training it further starts Adam "
                  "afresh, and says so")
    if result.samples:
        table.add_row("sample grids", escape(printable(f"{len(result.samples)} in {result.samples[-1].parent}")))
    console.print(table)


@app.command()
@user_errors
def synth(
    style: list[str] = typer.Option(..., "--style", help="A plate image, a folder of plate crops, or a data "
                                    "folder (every plate a style); repeat for several."),
    chars: Optional[str] = typer.Option(None, "--chars", help="Characters to generate, e.g. 0-9A-Z or "
                                        "京沪0-9A-Z (default 0-9A-Z; with --plates the characters the layouts' slots "
                                        "take that the model has a class for, all provinces without --checkpoint, I "
                                        "and O left out on Chinese plates); any character a shipped font covers; "
                                        "those no model has a class for are marked unchecked."),
    n: int = typer.Option(1000, "--n", help="Total images, spread evenly over the characters (plates with --plates)."),
    out: str = typer.Option(..., "--out", help="Output folder (must be new or empty)."),
    checkpoint: Optional[str] = typer.Option(None, help="Generator checkpoint: a path, or a shipped model's name: default, or allchars (a class for every Chinese province, see checkpoints/README.md). Left out: the default, with the Chinese characters drawn by allchars."),
    seed: int = typer.Option(0, help="Same seed, same images (byte for byte on CPU)."),
    device: Optional[str] = typer.Option(None, help="auto (the default: CUDA when present), cpu, cuda, cuda:1."),
    batch_size: Optional[int] = typer.Option(None, help="Images per generator batch (default 256, 32 plates "
                                             "with --plates; with --resume the interrupted run's, as the bytes "
                                             "depend on it)."),
    fmt: str = typer.Option("files", "--format", help="files: <out>/<label>/<id>.png; shards: WebDataset tar shards."),
    shard_size: int = typer.Option(10000, help="Images per shard (--format shards)."),
    workers: int = typer.Option(2, help="Threads encoding and writing PNGs."),
    noise: float = typer.Option(2.0, help="Sigma (0-255) of light noise added after generation; 0 = none."),
    match_colours: bool = typer.Option(True, "--match-colours/--raw-colours", help="Recolour each character to "
                                       "its style plate's paper and ink (the generator's own colours drift on "
                                       "designs it never saw); --raw-colours keeps the generator's."),
    check: bool = typer.Option(True, help="Redraw images the model's discriminator reads as another character, "
                               "or as their own with under 90% probability (up to 4 draws; the manifest's check "
                               "column says pass or fail)."),
    resume: bool = typer.Option(False, help="Finish an interrupted run in --out to exactly --n images."),
    overwrite: bool = typer.Option(False, help="Replace an earlier synth run in --out."),
    preview: Optional[str] = typer.Option(None, help="Where to write the sheet of the style plate(s) beside samples "
                                          "(default: preview.png in --out)."),
    no_preview: bool = typer.Option(False, "--no-preview", help="Write no preview sheet."),
    plates: bool = typer.Option(False, "--plates", help="Whole plates: new texts on each style plate's layout, "
                                "written as a plategen data folder (images/, labels/, plates.csv, plate_config.yaml)."),
    pattern: Optional[str] = typer.Option(None, help="--plates: the layout to fill, one mark per slot: D digit, "
                                          "L letter, P province, O other, [DF] only these, . separator, _ gap, / next "
                                          "row (e.g. PL.DDDDD, DDDD_LLL)."),
    texts: Optional[str] = typer.Option(None, help="--plates: plate texts, one a line, used in order and cycled."),
    design: Optional[str] = typer.Option(None, help="--plates: repaint the style plates as another Chinese design: "
                                         "blue (white on blue), yellow (black on yellow), green (new energy: black "
                                         "on a white-to-green fade, 8 characters, PL.[DF][A-HJ-NP-Z0-9]DDDD)."),
    export: list[str] = typer.Option([], "--export", help="--plates: also write lprnet (94x24 images named by "
                                     "their text) or paddleocr (rec_gt.txt + dict.txt); repeatable. Both lay a two-row "
                                     "plate out as one row (paddleocr's in paddleocr/)."),
    allow_outside_paths: bool = typer.Option(False, help="--plates: " + ALLOW_OUTSIDE_HELP),
) -> None:
    """Generate labelled character images (or, with --plates, whole plates) in the style of real plates."""
    from plategen.synth import Diversity, SynthRequest, synthesize
    from plategen.synth.plan import CHECK_ATTEMPTS

    unit = "plates/s" if plates else "img/s"

    class RateColumn(ProgressColumn):
        def render(self, task):
            return f"{task.speed or 0:,.0f} {unit}"

    charset = parse_charset(chars) if chars is not None else None
    styles = [given_path(s, "--style") for s in style]
    request = SynthRequest(styles=styles, chars=charset, n=n,
                           out=given_path(out, "--out"), checkpoint=optional_path(checkpoint, "--checkpoint"),
                           seed=seed, device=device, batch_size=batch_size, format=fmt, shard_size=shard_size,
                           workers=workers, resume=resume, overwrite=overwrite,
                           preview=preview_path(preview, no_preview, out),
                           diversity=dataclasses.replace(Diversity(), noise=noise, match_colours=match_colours), check=check,
                           command=["plategen", *sys.argv[1:]], plates=plates, pattern=pattern,
                           texts=optional_path(texts, "--texts"), design=design, exports=list(export),
                           allow_outside_paths=allow_outside_paths)
    leader = launched_rank() == 0  # under torchrun rank 0 alone draws the bar (of its own images) and the table
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn())
    fresh = resume and not (request.out / "meta.json").is_file()  # --resume into a folder without a run (a typo?)
    with Progress(*columns, console=err_console, transient=True,
                  disable=not (err_console.is_terminal and leader)) as bar:
        # reading the style plates (a detector pass over text-only ones) comes first, and can take a while
        task = bar.add_task("reading the style plates", total=n)
        drawing = []

        def progress(done: int, total: int) -> None:
            if drawing:
                bar.update(task, completed=done, total=total)
            else:  # the rate counts from the first image drawn, not from the start of the reading
                drawing.append(True)
                bar.reset(task, total=total, completed=done, description="synth")

        try:
            report = synthesize(request, progress=progress)
        except KeyboardInterrupt:
            report = None
    if report is None:  # said once the bar is gone, so that it is the last line on the screen
        if leader and request.out.is_dir():
            err_console.print("[yellow]interrupted:[/] run the same command with --resume to finish "
                              f"{shown(out)}", soft_wrap=True)
        elif leader:  # stopped before its first file: the folder it made is gone
            err_console.print("[yellow]interrupted:[/] nothing was written", soft_wrap=True)
        raise typer.Exit(interrupt_status())
    if not leader:
        return
    if fresh:
        console.print(f"[yellow]--resume:[/] {shown(request.out)} held no run to finish; this was a "
                      "new one", highlight=False)
    if plates:
        print_plate_report(report)
        return
    table = summary_table(f"plategen synth -> {shown(report.out)}")
    if report.resumed == report.n:
        table.add_row("images", f"{report.n:,}, all already there: nothing to do")
    else:
        table.add_row("images", f"{report.n:,}" + (f" ({report.resumed:,} from the interrupted run)"
                                                   if report.resumed else ""))
    table.add_row("exact duplicates", str(report.duplicates))
    empty = [c for c, count in report.counts.items() if not count]
    if empty:
        table.add_row("no image", f"{len(empty)} of {len(report.counts)} characters ({escape(' '.join(empty[:12]))}"
                      f"{' ...' if len(empty) > 12 else ''}): --n {report.n:,} is under the alphabet; no folder is "
                      "made for them")
    chinese_row(table, report)
    if report.check_failed is None:
        table.add_row("label check", "off (--no-check, or the checkpoint has no discriminator)")
    else:
        table.add_row("label check", f"{report.redrawn:,} kept a later draw; {report.check_failed:,} still read as "
                      f"another character after {CHECK_ATTEMPTS} draws (check=fail in the manifest)"
                      + unchecked_note(report.unchecked))
    table.add_row("within-class diversity", "n/a (no character has two images)" if math.isnan(report.diversity) else
                  f"{report.diversity:.1f} mean / {report.closest:.1f} closest pair (RMS px distance, 0-255)")
    table.add_row("time", f"{report.seconds:.1f} s on {report.device}")
    table.add_row("images/s", f"{report.images_per_s:,.0f} end to end, {report.model_images_per_s:,.0f} in the model")
    if report.per_rank:
        table.add_row("torchrun ranks", per_rank(report.per_rank))
    table.add_row("format", written_as(report.format, report.out, "<label>/<id>.png"))
    table.add_row("manifest", shown(report.manifest))
    table.add_row("meta", shown(report.meta))
    if report.preview is not None:
        table.add_row("preview", shown(report.preview))
    console.print(table)
    console.print(count_grid("images per label", report.counts))


def chinese_row(table: Table, report) -> None:
    """Which model drew the Chinese characters, when the run's default took a second one for them."""
    if report.chinese:
        shown = "".join(report.chinese[:6]) + ("..." if len(report.chinese) > 6 else "")
        table.add_row("Chinese characters", escape(f"{len(report.chinese)} ({shown}) drawn by "
                                                   f"{report.chinese_checkpoint.name} (a class for every province), "
                                                   "the rest by the default model"))


def unchecked_note(unchecked: int) -> str:
    return (f"; {unchecked:,} unchecked (characters outside the checkpoint's charset: no class to read them as)"
            if unchecked else "")


def written_as(fmt: str, out: Path, files: str) -> str:
    """The format row: what the run wrote where (shards by name, as a loader is pointed at them)."""
    if fmt != "shards":
        return escape(printable(f"{fmt}: {files} in {out}"))
    shards = sorted(out.glob("shard-*.tar"))
    names = shards[0].name if len(shards) == 1 else f"{shards[0].name} .. {shards[-1].name}" if shards else "none"
    return escape(printable(f"shards: {len(shards)} WebDataset tar{'' if len(shards) == 1 else 's'}, {names} in {out}"))


def per_rank(counts: list[int]) -> str:
    return f"{len(counts)}, made " + " + ".join(f"{c:,}" for c in counts)


def print_plate_report(report) -> None:
    table = summary_table(f"plategen synth --plates -> {shown(report.out)}")
    table.add_row("plates", f"{report.n:,}" + (", all already there: nothing to do" if report.resumed == report.n else
                                              f" ({report.resumed:,} from the interrupted run)" if report.resumed else ""))
    table.add_row("style plates", f"{report.styles:,} used")
    chinese_row(table, report)
    if report.skipped:
        reasons = Counter(problem.message for problem in report.skipped).most_common(3)
        table.add_row("skipped style plates", escape(printable(f"{len(report.skipped):,}: " + "; ".join(
            f"{count} {reason}" for reason, count in reasons) + ("; ..." if len(reasons) == 3 else "")
            + f" (first: {report.skipped[0].path}; all in meta.json skipped_styles)")))
    if report.check_failed is None:
        table.add_row("label check", "off (--no-check, or the checkpoint has no discriminator)")
    else:
        table.add_row("label check", f"{report.check_failed:,} of {report.characters:,} characters still read as "
                      "another character (fail in the manifest's check column)" + unchecked_note(report.unchecked))
    table.add_row("time", f"{report.seconds:.1f} s on {report.device}"
                  + (f", {report.plates_per_s:,.1f} plates/s" if report.generated else ""))
    table.add_row("format", written_as(report.format, report.out, "images/, labels/ + classes.txt, plates.csv + "
                                                                  "plate_config.yaml"))
    if report.per_rank:
        table.add_row("torchrun ranks", per_rank(report.per_rank))
    table.add_row("manifest", shown(report.manifest))
    table.add_row("meta", shown(report.meta))
    for path in report.exports:
        table.add_row("export", shown(path))
    if report.preview is not None:
        table.add_row("preview", shown(report.preview))
    console.print(table)


@app.command()
@user_errors
def inspect(
    data_arg: str = typer.Argument(..., metavar="DATA", help="A plate folder: YOLO boxes, plate text as file name, or a CSV."),
    fmt: Optional[str] = typer.Option(None, "--format", help="yolo | filename | csv (default: detected)."),
    sheet_arg: Optional[str] = typer.Option(None, "--sheet", help="Contact sheet PNG (default: inspect-<folder>.png here)."),
    strict: bool = typer.Option(False, help="Fail on any bad record instead of listing it."),
    show: int = typer.Option(10, help="How many bad or skipped records to list."),
    allow_outside_paths: bool = typer.Option(False, help=ALLOW_OUTSIDE_HELP),
) -> None:
    """Show what an import reads: plates, characters per class, boxes, skipped plates; write a contact sheet."""
    if show < 0:
        raise PlategenError(f"--show {show}: must be 0 or more")
    data, sheet = given_path(data_arg, "DATA"), optional_path(sheet_arg, "--sheet")
    if sheet is not None:
        check_sheet_path(sheet, "--sheet")
    result = load_plates(data, fmt, strict=strict, progress=tracker(f"reading {shown(data)}"),
                         allow_outside=allow_outside_paths, listing=True)
    if not result.plates:  # the one error line names the first record; the others, each with its reason, above it
        bad = result.problems + result.skipped
        for problem in bad[:show] if len(bad) > 1 else []:
            console.print(f"  {printable(str(problem))}", highlight=False, markup=False, soft_wrap=True)
        if len(bad) > max(show, 1):
            console.print(f"  ... and {len(bad) - show} more (--show N lists more)")
        raise PlategenError(nothing_usable(result, advice=False))
    # a folder named with a newline gave a sheet named with one: its control characters become _
    sheet = sheet or Path("inspect-" + "".join(c if c.isprintable() else "_" for c in data.resolve().name) + ".png")
    summary = inspect_import(result, sheet, progress=tracker("cutting characters"))

    table = summary_table(escape(printable(f"{summary.folder} ({summary.format})")))
    table.add_row("plates read", str(summary.plates))
    table.add_row("characters", str(summary.characters))
    table.add_row("boxes annotated / estimated", f"{summary.annotated} / {summary.estimated}")
    table.add_row("plates not segmented", str(len(summary.skipped)))
    table.add_row("bad records", str(len(summary.problems)))
    if summary.copies:
        copy, original = summary.copies[0]
        table.add_row("byte-for-byte copies", escape(printable(f"{len(summary.copies)} (first: {copy.name} = "
                                                               f"{original.name})")))
    console.print(table)
    console.print(count_grid("characters per class", {escape(printable(k)): n for k, n in summary.per_class.items()}))
    for reason, count in summary.skipped_reasons.items():
        console.print(f"[yellow]skipped[/] {count} x {escape(printable(reason))}", highlight=False)
    for problem in (summary.problems + summary.skipped)[:show]:
        console.print(f"  {printable(str(problem))}", highlight=False, markup=False, soft_wrap=True)
    hidden = len(summary.problems) + len(summary.skipped) - show
    if hidden > 0:
        console.print(f"  ... and {hidden} more (--show N lists more)")
    console.print(f"contact sheet: [bold]{shown(sheet)}[/]")


def run() -> None:
    """The `plategen` command: the app, with click's own usage errors (an unknown option, a value of the wrong
    type, a missing option) as the one line every other wrong input gets, not click's usage block."""
    # OpenMP threads that sleep instead of spinning, set before torch loads: on a shared 2-core machine,
    # spinning made recogniser training 3-10x and the detector (inspect, synth --plates) 10-20x slower
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    signal.signal(signal.SIGTERM, raise_terminated)  # `kill` cleans up as Ctrl-C does
    try:
        code = app(prog_name="plategen", standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click's errors (typer vendors its own click in newer versions: matched by shape)
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `plategen`: its help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else " ".join(  # an option's missing value has no context
            ["plategen", *[a for a in sys.argv[1:2] if a in {c.name or c.callback.__name__ for c in app.registered_commands}]])
        see = f" (see {command} --help)"
        err_console.print(f"[bold red]error:[/] {escape(printable(exc.format_message()))}{see}", highlight=False,
                          soft_wrap=True)
        sys.exit(exc.exit_code)
    if code == 130:  # typer's status for an interrupt outside a command's own handling
        code = interrupt_status()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    run()
