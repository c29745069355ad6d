"""Commands launched by torchrun: which rank this process is, and the few messages ranks exchange.

`torchrun --nproc-per-node N -m plategen -- synth ...` (or `train`) starts N copies of the
command; torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
MASTER_PORT) says which one this is. Without it, or with WORLD_SIZE=1, a command runs alone
exactly as before and no process group is made (`SOLO`). Ranks talk over gloo (CUDA tensors
over NCCL where CUDA is present):
- `together()`: every rank checks its own inputs; when any refuses, all stop, and only the
  first refusing rank prints its line (the others exit 2 quietly: `RankStopped`);
- `from_leader(fn)`: rank 0 alone does `fn` (claiming the output folder, writing the manifest)
  and every rank gets its result, or stops with its error;
- `owns(ids, unit)`: this rank's part of a plan cut into units (generator batches, shards).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

import numpy as np

from plategen.errors import PlategenError, RankStopped, raise_terminated

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the CLI reads `launched_rank` before it knows whether the
# command needs torch at all (loading it takes seconds on a busy machine)
T = TypeVar("T")
# Ranks wait for each other only at the start and at the end of a run: a rank that finishes its
# share early waits for the slowest, which on mixed nodes can be hours, not gloo's default 30 min.
TIMEOUT = timedelta(hours=24)


def _say(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PlategenError) else f"{type(exc).__name__}: {exc}"


class PeerLost(PlategenError):
    """A message between ranks failed: another rank died (kill -9, out of memory) or stopped answering."""


def _exchange(call: Callable[..., T], *args, **kwargs) -> T:
    """A message between ranks. A rank killed mid-run (kill -9, out of memory) closes its connections, and the
    ranks waiting for it got gloo's RuntimeError as a traceback: one line instead, saying what to do."""
    try:
        return call(*args, **kwargs)
    except RuntimeError as exc:
        # "[.../gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4011. This is typically ...": its gist
        gist = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip()).split(". ")[0].splitlines()
        raise PeerLost(f"another rank is gone or stuck ({gist[0] if gist else type(exc).__name__}); what this "
                       "rank finished is kept, and --resume continues the run as after any interruption") from None


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # ranks on this machine

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def owns(self, ids: np.ndarray, unit: int) -> np.ndarray:
        """Which of `ids` are this rank's: unit k (ids k*unit ... (k+1)*unit - 1) goes to rank k mod size."""
        return (np.asarray(ids) // unit) % self.size == self.rank

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Run the block on every rank; if it raises on any, every rank stops: the first rank
        that failed with its own error, the others with `RankStopped`."""
        if self.size == 1:
            yield
            return
        try:
            yield
        except BaseException as exc:
            with contextlib.suppress(PeerLost):  # a rank gone too: this rank's own error is the one to say
                self._settle(exc)
            raise
        self._settle(None)

    def _settle(self, exc: BaseException | None) -> None:
        import torch.distributed as dist

        said: list[str | None] = [None] * self.size
        _exchange(dist.all_gather_object, said, None if exc is None else _say(exc))
        first = next((r for r, s in enumerate(said) if s is not None), None)
        if first is not None and first != self.rank:
            raise RankStopped(f"rank {first}: {said[first]}")

    def from_leader(self, fn: Callable[[], T]) -> T:
        """`fn()` on rank 0, its result on every rank; an error there stops every rank."""
        if self.size == 1:
            return fn()
        import torch.distributed as dist

        box: list = [None]
        if self.leader:
            try:
                box[0] = (fn(), None)
            except BaseException as exc:
                box[0] = (None, _say(exc))
                _exchange(dist.broadcast_object_list, box, src=0)
                raise
        _exchange(dist.broadcast_object_list, box, src=0)
        result, error = box[0]
        if error is not None:
            raise RankStopped(f"rank 0: {error}")
        return result

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order, on every rank."""
        if self.size == 1:
            return [value]
        import torch.distributed as dist

        values: list = [None] * self.size
        _exchange(dist.all_gather_object, values, value)
        return values

    def require_same(self, settings: dict, options: Callable[[list[str], dict, dict], list[str]]) -> None:
        """Refuse a rank whose `settings` differ from rank 0's, naming `options(differing keys, rank 0's, its own)`.
        Call it in a `together()` block of its own: only the rank that differs says so, the others stop quietly."""
        first = self.gather(settings)[0]
        differ = [k for k in settings if settings[k] != first.get(k)]
        if differ:
            raise PlategenError(f"started with other settings than rank 0 ({', '.join(options(differ, first, settings))})"
                                "; start every rank with the same command and the same input files")

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (the losses of a step split over them)."""
        if self.size == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(list(values.values()), dtype=torch.float64)
        _exchange(dist.all_reduce, t)
        return dict(zip(values, (t / self.size).tolist()))

    def any(self, flag: bool) -> bool:
        """Whether `flag` holds on any rank (so every rank takes the same branch)."""
        if self.size == 1:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(flag)])
        _exchange(dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def place(self, device: torch.device) -> torch.device:
        """`cuda` without an index means this rank's own GPU (LOCAL_RANK) when several run on a machine."""
        if device.type != "cuda" or self.size == 1:
            return device
        import torch

        if device.index is None:
            device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device


SOLO = World()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise PlategenError(f"environment variable {name}={value!r}: not a number; launch with torchrun") from None


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return _env_int("WORLD_SIZE", 1) > 1


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun), without joining."""
    return _env_int("RANK", 0) if launched() else 0


@contextlib.contextmanager
def _signals_end_the_process() -> Iterator[None]:
    """SIGTERM and Ctrl-C end the process outright while it waits for its peers: torch waits for them in C++, where
    Python's handlers never run, so a rank whose peers never came waited out the collectives' 24 h timeout through
    `kill` and Ctrl-C. Nothing is written before the ranks have met, so there is nothing to clean up."""
    if threading.current_thread() is not threading.main_thread():  # only there can a handler be set
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def joined() -> Iterator[World]:
    """The world of this command: `SOLO` without torchrun, else this rank, in a process group
    for the block (one made by the caller is used as is). SIGTERM, which torchrun sends to the
    other ranks when one fails, becomes `Terminated` (a KeyboardInterrupt), so a rank keeps what it finished."""
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        yield SOLO
        return
    import torch
    import torch.distributed as dist

    made = not dist.is_initialized()
    unset = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if made and not os.environ.get(name)]
    if unset:  # torch's own ValueError came as a traceback
        raise PlategenError(f"environment variable WORLD_SIZE={size} without {', '.join(unset)}: launch with torchrun, "
                            "or unset WORLD_SIZE to run alone")
    if made:
        with _signals_end_the_process():
            dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)
    world = World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                  _env_int("LOCAL_WORLD_SIZE", 1))
    main = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main else None
    try:
        yield world
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if made:
            dist.destroy_process_group()
