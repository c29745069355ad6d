"""Where a benchmark's recognisers train: side by side in worker processes, each on its own torch threads.

On a CPU a small recogniser cannot keep two cores busy from one process (one training on 2 threads
kept 2 idle cores 63% busy), so `Trainings` hands every training to one of `workers` spawned
processes. A job carries every array it needs and returns plain runs, so a report's figures do not
depend on the number of workers; runs come back in submission order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Generic, Iterator, Sequence, TypeVar

import torch

from plategen.errors import PlategenError

Job = TypeVar("Job")
RunT = TypeVar("RunT")


class InlineExecutor(Executor):
    """One worker: each job runs in this process when it is submitted (an error is raised at once)."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def trainer(workers: int, threads: int) -> Executor:
    """`workers` spawned processes of `threads` torch threads each; one worker is this process (which
    runs at `threads` too, so a job's weights are the same either way)."""
    if workers == 1:
        return InlineExecutor()
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(threads,))


class Trainings(Generic[Job, RunT]):
    """Every recogniser job of a benchmark: `submit` as soon as a seed's data is drawn (so they train
    while the next seed's is drawn), `runs` once all are submitted. `describe(runs)` is the log line of
    a finished job; `progress(done, total)` moves after each. Used as a context manager: on an error or an
    interrupt the trainings not yet started are dropped and the worker processes stopped."""

    def __init__(self, run_job: Callable[[Job], list[RunT]], workers: int, threads: int, total: int,
                 describe: Callable[[list[RunT]], str], log: Callable[[str], None],
                 progress: Callable[[int, int], None]):
        self.run_job, self.total, self.describe, self.log, self.progress = run_job, total, describe, log, progress
        self.pool = trainer(workers, threads)
        self.futures: list[Future] = []
        self.done = 0
        progress(0, total)

    def __enter__(self) -> "Trainings[Job, RunT]":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and isinstance(self.pool, ProcessPoolExecutor):
            # stopped now, not after the trainings they run: a SIGTERM reaches this process only
            for process in list((self.pool._processes or {}).values()):
                process.terminate()
        self.pool.shutdown(cancel_futures=True)

    def _finished(self, future: Future) -> None:
        if future.cancelled():  # dropped on an error or an interrupt: neither done nor a failure to report
            return
        if future.exception() is None:
            self.log(self.describe(future.result()))
        self.done += 1
        self.progress(self.done, self.total)

    def submit(self, jobs: Sequence[Job]) -> None:
        with _worker_deaths():
            for job in jobs:
                self.futures.append(self.pool.submit(self.run_job, job))
                self.futures[-1].add_done_callback(self._finished)

    def wait(self) -> None:
        """Until every job submitted so far has finished (so that what runs next has the cores alone)."""
        wait(self.futures)

    def runs(self) -> list[RunT]:
        with _worker_deaths():
            return [run for future in self.futures for run in future.result()]


@contextlib.contextmanager
def _worker_deaths() -> Iterator[None]:
    """A worker process killed from outside (the OOM killer, a stray `kill`) as one line, not a traceback."""
    try:
        yield
    except BrokenProcessPool:
        raise PlategenError("a recogniser worker process died (killed from outside, out of memory, or, from Python, "
                            "a script calling run_benchmark outside if __name__ == \"__main__\":); run again, with "
                            "--workers 1 to train in this process") from None
