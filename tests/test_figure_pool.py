"""Figures drawn side by side (repro.report.figure_pool): `repro report all` with worker processes writes the
same files, byte for byte, and prints the same lines as drawing one figure after the other; errors are the
same; no pool for a handful of figures; workers load only the drawing code."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from repro.cli import main
from repro.errors import ReproError
from repro.facts.config import load_config
from repro.report import figure_pool
from repro.report.figure_pool import MIN_PARALLEL, FigureRenderer

sys.path.insert(0, str(Path(__file__).parent))
import figure_pool_draws as draws  # noqa: E402
from synthetic_results import write_synthetic_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_report_all_in_parallel_writes_the_same_bytes_and_lines_as_one_by_one(tmp_path, capsys):
    """The smoke config with both appendix configs, results of one base: line figures (3, 4, 6, 7, 11-18),
    heatmaps (19, 23) and bars (27), each kind drawn by workers (--jobs 2) and here (--jobs 1)."""
    runs = tmp_path / "runs"
    for config in ("smoke.yaml", "smoke_appendix.yaml", "smoke_homogeneous.yaml"):
        loaded = load_config(ROOT / "configs" / config)
        write_synthetic_results(loaded, runs / loaded.name, bases={"tiny-llama"})
    printed = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        code = main(["report", "all", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir",
                     str(runs / "smoke"), "--out", str(out), "--jobs", jobs])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        printed[jobs] = (captured.out.replace(str(out), "OUT"), captured.err)
    serial, parallel = _files(tmp_path / "jobs1"), _files(tmp_path / "jobs2")
    kinds = {name.split("_")[0] for name in serial if name.endswith(".pdf")}
    assert {"fig03", "fig11", "fig19", "fig23", "fig27"} <= kinds  # every drawing function took part
    assert sorted(parallel) == sorted(serial)
    assert [name for name in serial if parallel[name] != serial[name]] == []
    assert printed["2"] == printed["1"]
    assert sum(".png" in line for line in printed["1"][0].splitlines()) == len(kinds)
    assert not [p for p in (tmp_path / "jobs2").iterdir() if p.name.endswith(".tmp")]


def _pids(paths: list[Path]) -> set[int]:
    return {int(path.read_text().split()[-1]) for path in paths}


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    """Until `path` exists: a worker drew it (this process draws only in `finish()`)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no worker drew {path.name}"
        time.sleep(0.02)


def test_figures_are_drawn_by_workers_from_what_was_handed_over(tmp_path):
    values = [[i] for i in range(MIN_PARALLEL + 2)]
    with FigureRenderer(jobs=2) as renderer:
        paths = [renderer.draw(draws.write_pid, value, stem=tmp_path / f"fig{i}") for i, value in enumerate(values)]
        for value in values:
            value.append("changed after it was handed over")
        _wait_for(paths[0][1])
    assert paths == [[tmp_path / f"fig{i}.png", tmp_path / f"fig{i}.pdf"] for i in range(len(values))]
    assert [p.read_text().split()[0] for pair in paths for p in pair] == [f"[{i}]" for i in range(len(values))
                                                                         for _ in range(2)]
    assert int(paths[0][0].read_text().split()[-1]) != os.getpid()


def test_this_process_draws_what_no_worker_has_started(tmp_path):
    """--jobs 2: one worker and this process; while the worker is busy, `finish()` draws the rest here."""
    with FigureRenderer(jobs=2) as renderer:
        paths = [renderer.draw(draws.slow_write_pid, 0, tmp_path / "started", stem=tmp_path / "fig0")]
        paths += [renderer.draw(draws.write_pid, i, stem=tmp_path / f"fig{i}") for i in range(1, MIN_PARALLEL + 2)]
        _wait_for(tmp_path / "started")
    pids = [int(pair[0].read_text().split()[-1]) for pair in paths]
    assert pids[0] != os.getpid() and pids[-1] == os.getpid()
    assert [pair[0].read_text().split()[0] for pair in paths] == [str(i) for i in range(len(paths))]


def test_no_pool_for_a_few_figures_or_one_job(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(figure_pool, "ProcessPoolExecutor", lambda *args, **kwargs: started.append(args))
    with FigureRenderer(jobs=2) as renderer:
        few = [renderer.draw(draws.write_pid, i, stem=tmp_path / f"few{i}") for i in range(MIN_PARALLEL - 1)]
        assert not any(path.exists() for pair in few for path in pair)  # drawn at finish()
    with FigureRenderer(jobs=1) as renderer:
        one = [renderer.draw(draws.write_pid, i, stem=tmp_path / f"one{i}") for i in range(MIN_PARALLEL + 1)]
        assert all(path.exists() for pair in one for path in pair)  # drawn when handed over
    assert started == []
    assert _pids([p for pair in few + one for p in pair]) == {os.getpid()}


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_first_failing_figure_is_the_error_as_drawn_one_by_one(tmp_path, jobs):
    plan = [(draws.write_pid, 0), (draws.fail, 1), (draws.write_pid, 2), (draws.fail_on_disk, 3),
            (draws.write_pid, 4), (draws.write_pid, 5)]
    with pytest.raises(ReproError) as raised, FigureRenderer(jobs=jobs) as renderer:
        for i, (draw, value) in enumerate(plan):
            renderer.draw(draw, value, stem=tmp_path / f"fig{i}")
    assert type(raised.value) is ReproError
    assert str(raised.value) == f"{tmp_path / 'fig1'}: panels: figure 1 cannot be drawn"
    assert raised.value.field == "panels" and raised.value.path == str(tmp_path / "fig1")
    assert (tmp_path / "fig0.png").exists() and not (tmp_path / "fig1.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nothing half-written


def test_an_os_error_in_a_worker_keeps_its_file_name(tmp_path):
    with pytest.raises(FileNotFoundError) as raised, FigureRenderer(jobs=2) as renderer:
        for i in range(MIN_PARALLEL):
            renderer.draw(draws.fail_on_disk if i == 2 else draws.write_pid, i, stem=tmp_path / f"fig{i}")
    assert raised.value.filename == str(tmp_path / "fig2") + ".png" and raised.value.errno == 2


def test_a_worker_that_dies_leaves_its_figures_to_this_process(tmp_path):
    with FigureRenderer(jobs=2) as renderer:
        paths = [renderer.draw(draws.stop_worker, os.getpid(), stem=tmp_path / f"fig{i}")
                 for i in range(MIN_PARALLEL + 1)]
        wait([renderer._queued[0].future], timeout=60)  # the first figure went to a worker, which died
        assert renderer._queued[0].future.done()
    assert _pids([p for pair in paths for p in pair]) == {os.getpid()}


def test_workers_load_only_the_drawing_code(tmp_path):
    with FigureRenderer(jobs=2) as renderer:
        paths = [renderer.draw(draws.loaded_modules, stem=tmp_path / f"fig{i}") for i in range(MIN_PARALLEL)]
        _wait_for(paths[0][1])
    pid, *names = paths[0][0].read_text().split()
    assert int(pid) != os.getpid()
    loaded = set(names)
    assert {"repro.report.panel_drawing", "repro.report.figure_drawing", "repro.report.figure_pool"} <= loaded
    assert loaded <= {"repro", "repro.atomic_io", "repro.errors", "repro.report", "repro.report.figure_style",
                      "repro.report.panel_drawing", "repro.report.figure_drawing", "repro.report.figure_pool"}


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_jobs_below_one_is_a_usage_error(tmp_path, capsys, jobs):
    code = main(["report", "all", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir",
                 str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--jobs", jobs])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --jobs: must be a whole number of at least 1") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_default_is_the_cpus_this_process_may_use(monkeypatch):
    assert FigureRenderer().jobs == figure_pool.available_cpus() >= 1
    with pytest.raises(ReproError, match="at least 1"):
        FigureRenderer(jobs=0)
