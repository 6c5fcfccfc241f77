"""Stand-in drawing functions for tests of repro.report.figure_pool: each writes a figure's two files without
matplotlib (the text says what was drawn and by which process), or fails, or stops its worker process. They
live in a module of their own so that a spawned worker can import them by name."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.errors import ReproError
from repro.report.figure_style import figure_files


def write_pid(value, *, stem: Path) -> list[Path]:
    """Both files hold `value` and the id of the process that wrote them."""
    return [atomic_write_text(path, f"{value!r} {os.getpid()}") for path in figure_files(stem)]


def fail(value, *, stem: Path) -> list[Path]:
    raise ReproError(f"figure {value} cannot be drawn", path=str(stem), field="panels")


def fail_on_disk(value, *, stem: Path) -> list[Path]:
    raise FileNotFoundError(2, "No such file or directory", str(stem) + ".png")


def stop_worker(parent_pid: int, *, stem: Path) -> list[Path]:
    """Kills the process it runs in unless that is the test's own (a worker dying, e.g. out of memory)."""
    if os.getpid() != parent_pid:
        os._exit(3)
    return write_pid("drawn by the test process", stem=stem)


def loaded_modules(*, stem: Path) -> list[Path]:
    """Loads both drawing modules, as a worker drawing real figures does, and writes its process id and what
    the process holds: its repro modules and any heavy library outside matplotlib and numpy."""
    # the drawing modules a real figure's inputs name, loaded here as a worker loads them
    import repro.report.figure_drawing  # noqa: F401
    import repro.report.panel_drawing  # noqa: F401

    names = sorted(m for m in sys.modules if m.split(".")[0] in ("repro", "torch", "transformers", "lm_eval",
                                                                  "mergekit", "pydantic", "yaml"))
    return [atomic_write_text(path, "\n".join([str(os.getpid()), *names])) for path in figure_files(stem)]


def slow_write_pid(value, started: Path, *, stem: Path) -> list[Path]:
    """Writes `started`, then takes a while before writing the figure (a worker busy with a big figure)."""
    atomic_write_text(started, str(os.getpid()))
    time.sleep(1.5)
    return write_pid(value, stem=stem)
