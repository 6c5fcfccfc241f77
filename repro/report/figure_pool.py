"""Drawing the report's figures side by side, in worker processes, with the same files as drawing them here.

Building a figure's data (panels, matrices, bars) is quick and reads the results; drawing and saving it
(constrained layout, PNG + PDF) is what takes the time. So each figure module hands a `FigureRenderer` a
drawing function and that figure's plain drawing inputs (dataclasses, lists, numbers, strings: never a
store or a plan), and the renderer either draws it at once, in this process, or queues it for a pool of
spawned worker processes, each of which draws and saves whole figures. A worker imports only the drawing
function's module (repro.report.panel_drawing or repro.report.figure_drawing: the figure style and
matplotlib), not the results, the plan or the config code.

- `jobs` = 1: every figure is drawn when it is handed over, in this process, in order.
- Otherwise (default: the CPUs this process may use) figures are queued; once `MIN_PARALLEL` are queued a
  pool of up to `jobs` - 1 workers starts (workers start as figures arrive, never more than there are
  figures) and draws them in order, each worker being handed its next figure when it is done with its
  last, while this process goes on with the tables. `finish()` then draws here the figures no worker has
  taken, from the last one back, and waits for the workers' ones: `jobs` processes draw. With fewer than
  `MIN_PARALLEL` figures no pool is started and they are drawn here at `finish()`.
- The files are the same either way: a figure's drawing depends only on its inputs and the kit's style
  (repro.report.figure_style: fixed font, no dates, fixed metadata), each file is written to a temporary
  sibling and renamed, and the paths handed back are the ones `figure_style.save` writes (`figure_files`).
- Errors: `finish()` raises the error of the first failing figure in the order they were handed over (the
  one drawing them here would have stopped at), unchanged (a ReproError stays one; an OSError keeps its
  file name); no further figure goes to a worker then. A pool that cannot start or whose worker dies
  (e.g. a script without a `__main__` guard, or a killed process) is not an error: the figures it did not
  draw are drawn here instead.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from repro.errors import ReproError
from repro.report.figure_style import figure_files

MIN_PARALLEL = 4  # fewer figures are drawn in this process: a worker takes ~0.5 s to start (2-core machine)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_jobs(jobs: int | None, field: str = "--jobs") -> int:
    """`jobs` (None: `available_cpus()`), refused below 1."""
    if jobs is None:
        return available_cpus()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ReproError(f"must be a whole number of at least 1 (1 draws every figure in this process), "
                         f"not {jobs!r}", field=field)
    return jobs


@dataclass
class _Figure:
    draw_name: str
    inputs: bytes  # (draw, args, kwargs), pickled when handed over: what the caller changes later is not drawn
    stem: Path
    future: Future | None = None

    def draw_here(self) -> list[Path]:
        return _draw_pickled(self.inputs, self.stem)


def _draw_pickled(inputs: bytes, stem: Path) -> list[Path]:
    """Draw one figure from its pickled inputs (in a worker, or here); returns the paths it wrote."""
    draw, args, kwargs = pickle.loads(inputs)
    return list(draw(*args, stem=stem, **kwargs))


class FigureRenderer:
    """Draws figures now (`jobs` = 1) or in worker processes (see the module doc); use it as a context
    manager, call `finish()` before relying on the files."""

    def __init__(self, jobs: int | None = None):
        self.jobs = check_jobs(jobs)
        self._queued: list[_Figure] = []
        self._pool: ProcessPoolExecutor | None = None
        # Figures _queued[:_next] went to a worker, _queued[_end:] are this process's (finish); a worker gets
        # the next one when it is done with its last, so no figure waits in a busy worker's queue.
        self._next = 0
        self._end: int | None = None  # None: the end of _queued
        self._in_flight = 0
        self._lock = threading.RLock()  # the pool's callbacks run in its own thread

    def __enter__(self) -> FigureRenderer:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is None:
            self.finish()
        else:  # the caller failed: no figure that has not started yet is drawn
            self._close()

    def draw(self, draw: Callable[..., list[Path]], /, *args, stem: Path, **kwargs) -> list[Path]:
        """Draw and save the figure `draw(*args, stem=stem, **kwargs)` (a module-level function of plain,
        picklable inputs that returns `figure_style.save(fig, stem)`); returns the paths of its files, which
        exist once `finish()` returned."""
        stem = Path(stem)
        if self.jobs == 1:
            return list(draw(*args, stem=stem, **kwargs))
        job = _Figure(draw.__name__, pickle.dumps((draw, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL), stem)
        with self._lock:
            self._queued.append(job)
            if self._pool is None and len(self._queued) >= MIN_PARALLEL:
                # this process is one of the `jobs`: it draws too, once its own work is done (finish)
                self._pool = ProcessPoolExecutor(self.jobs - 1, mp_context=multiprocessing.get_context("spawn"))
            self._feed()
        return figure_files(stem)

    def finish(self) -> None:
        """Wait for every figure handed over, drawing here those no worker has started yet (from the last
        one back, while the workers go on from the first); raises the first figure's error in the order
        they were handed over."""
        try:
            queued = self._queued
            drawn_here = self._help() if self._pool is not None else {}
            for index, job in enumerate(queued):
                written = drawn_here[index] if index in drawn_here else self._result(job)
                if isinstance(written, BaseException):
                    raise written
                if written != figure_files(job.stem):
                    raise RuntimeError(f"{job.draw_name} wrote {[p.name for p in written]}, not the files "
                                       f"of {job.stem.name} (figure_style.save)")
        finally:
            self._close()

    def _help(self) -> dict[int, list[Path] | Exception]:
        """Draw here, from the last figure back, each one no worker has taken. A figure that fails here ends
        it; its error is raised in order by `finish`. Afterwards no figure goes to a worker any more."""
        drawn: dict[int, list[Path] | Exception] = {}
        while True:
            with self._lock:
                end = len(self._queued) if self._end is None else self._end
                if end <= self._next:
                    break
                self._end = index = end - 1
            try:
                drawn[index] = self._queued[index].draw_here()
            except Exception as error:  # raised by finish() unless an earlier figure fails too
                drawn[index] = error
                break
        with self._lock:
            self._end = self._next  # what is left is drawn here, in order (finish)
        return drawn

    def _feed(self) -> None:
        """Hand the next figures in order to the workers that have none (called with the lock held)."""
        end = len(self._queued) if self._end is None else self._end
        while self._pool is not None and self._in_flight < self.jobs - 1 and self._next < end:
            job = self._queued[self._next]
            self._next += 1
            try:
                job.future = self._pool.submit(_draw_pickled, job.inputs, job.stem)
            except (BrokenProcessPool, RuntimeError):  # broken or shut down: drawn here at finish()
                continue
            self._in_flight += 1
            job.future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._in_flight -= 1
            self._feed()

    def _result(self, job: _Figure) -> list[Path]:
        if job.future is None:  # no pool (too few figures), or it broke before this figure was handed to it
            return job.draw_here()
        try:
            return list(job.future.result())
        except BrokenProcessPool:  # a worker could not start or died: draw what it did not draw here
            return job.draw_here()

    def _close(self) -> None:
        """Stop the pool: no figure goes to a worker any more, running ones finish (their files are whole)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._queued, self._next, self._end = [], 0, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # its callbacks have all run when it returns
        self._in_flight = 0
