"""Faults over the smoke grid, counted: kill -9 at random points of download, merge, evaluation and result
writing; a full disk while writing a merged model or a result; 2 and 4 workers with one killed while it
holds a claim; a results folder copied while a run writes into it; and an HF_TOKEN canary that must
appear nowhere. Every run and every rerun uses the real code paths; final results are compared with an
uninterrupted run of the same config.

Long (minutes): marked `reliability`, run by `nox -s reliability` (not by `make test`). The number of
kills is REPRO_RELIABILITY_RUN_KILLS (default 40) + REPRO_RELIABILITY_DOWNLOAD_KILLS (default 12) + one
per multi-worker run.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/smoke.yaml"
CANARY = f"hf_CANARY{secrets.token_hex(12)}"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "HF_TOKEN": CANARY, "PYTHONPATH": str(ROOT)}
RUN_KILLS = int(os.environ.get("REPRO_RELIABILITY_RUN_KILLS", "40"))
DOWNLOAD_KILLS = int(os.environ.get("REPRO_RELIABILITY_DOWNLOAD_KILLS", "12"))
VOLATILE = ("finished_at", "elapsed_s", "worker")  # when and by whom, not what: differ between any two runs
# (also merge.elapsed_s and each score row's date; everything else must be byte-identical)
OUTPUTS: list[str] = []  # every stdout/stderr of this module, for the canary check


def cli(*args: str, limit_bytes: int | None = None, check: bool = True) -> subprocess.CompletedProcess:
    def limit():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    proc = subprocess.run([sys.executable, "-m", "repro", *args], env=ENV, capture_output=True, text=True,
                          preexec_fn=limit, cwd=ROOT)
    OUTPUTS.extend([proc.stdout, proc.stderr])
    if check:
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
    return proc


def canonical(runs: Path) -> dict[str, object]:
    """What a run computed, by job: result records without timing/worker fields, and the items files."""
    out: dict[str, object] = {}
    for path in sorted((runs / "results").glob("*.json")):
        if path.name.startswith("."):
            continue
        record = json.loads(path.read_text())
        for key in VOLATILE:
            record.pop(key, None)
        if record.get("merge"):
            record["merge"].pop("elapsed_s", None)
        for row in record.get("scores", []):
            row.pop("date", None)  # when the score was computed
        out[path.name] = record
        out[record["items_file"]] = gzip.decompress((runs / record["items_file"]).read_bytes())
    return out


def tables(runs: Path, out: Path) -> dict[str, bytes]:
    """Tables 1 and 2 rendered by `repro report` (in this process: the report layer needs no torch)."""
    import contextlib
    import io

    from repro.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        codes = [main(["report", which, "--config", str(CONFIG), "--runs-dir", str(runs), "--out", str(out)])
                 for which in ("table1", "table2")]
    OUTPUTS.append(buffer.getvalue())
    assert codes == [0, 0], buffer.getvalue()
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".md", ".csv", ".tex")}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="module")
def reference(work):
    """An uninterrupted smoke run: its results, its tables, and its built worlds (reused by every test)."""
    runs = work / "ref" / "runs" / "smoke"
    cli("run", "--config", str(CONFIG), "--runs-dir", str(runs), "--no-progress")
    return {"runs": runs, "worlds": runs.parent / "worlds", "canonical": canonical(runs),
            "tables": tables(runs, work / "ref" / "artifacts")}


def _differences(a: object, b: object, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:80]} != {str(b)[:80]}"]


def compare(reference: dict, runs: Path, out: Path, case: str, reliability_log) -> None:
    differences = _differences(reference["canonical"], canonical(runs))
    same_tables = tables(runs, out) == reference["tables"]
    reliability_log("compare", case, not differences and same_tables, results=len(reference["canonical"]) // 2,
                    differences=differences[:5])
    assert not differences, f"{case}: results differ from the uninterrupted run: {differences[:10]}"
    assert same_tables, f"{case}: tables differ from the uninterrupted run"


def fresh_runs(reference: dict, folder: Path) -> Path:
    shutil.copytree(reference["worlds"], folder / "runs" / "worlds")
    return folder / "runs" / "smoke"


def test_kill_9_at_random_points_of_merge_evaluation_and_writing(reference, work, reliability_log):
    report_path = work / "kills-run.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests/fault_driver.py"), "run", "--config", str(CONFIG), "--work",
         str(work / "kills"), "--worlds", str(reference["worlds"]), "--kills", str(RUN_KILLS), "--seed", "12",
         "--report", str(report_path)],
        env=ENV, capture_output=True, text=True, cwd=ROOT,
    )
    OUTPUTS.extend([proc.stdout, proc.stderr])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    for i, runs in enumerate(report["rounds"], start=1):  # every rerun completes, identical
        cli("run", "--config", str(CONFIG), "--runs-dir", runs, "--no-progress")
        compare(reference, Path(runs), work / f"kills-artifacts-{i}", f"kill-round-{i}", reliability_log)
    for attempt in report["attempts"]:
        if attempt["killed"]:
            reliability_log("kill", f"{attempt['target']}:{attempt['phase']}", not attempt["problems"],
                            phase=attempt["phase"], problems=attempt["problems"])
    killed = [a for a in report["attempts"] if a["killed"]]
    assert len(killed) >= RUN_KILLS
    assert not [a for a in report["attempts"] if a["problems"]], [a for a in report["attempts"] if a["problems"]]
    assert not [a for a in report["attempts"] if a["errors"]]
    phases = {a["phase"] for a in killed}
    assert {"merge", "evaluate", "write"} <= phases, phases


def _mirror_and_lock(reference: dict, work: Path) -> tuple[Path, Path]:
    from repro.facts.lockfile import Lockfile
    from repro.facts.lockfile_writer import dump_lockfile
    from repro.hub import select_files, sha256_file

    mirror = work / "mirror"
    entries, bases = {}, {}
    for world in sorted(reference["worlds"].iterdir()):
        if not world.is_dir():
            continue
        family = world.name.split("-")[1]
        ids = []
        for model in sorted(p for p in world.iterdir() if p.is_dir()):
            repo = f"tiny-{family}/{model.name}"
            shutil.copytree(model, mirror / repo)
            files = [{"path": p, "sha256": sha256_file(model / p), "size": (model / p).stat().st_size}
                     for p in select_files([f.name for f in model.iterdir()])]
            entries[repo] = {"revision": secrets.token_hex(20), "files": files}
            ids.append(repo)
        bases[f"tiny-{family}"] = {"model": ids[0], "in_the_wild": ids[1:]}
    lockfile = work / "mirror.lock"
    dump_lockfile(Lockfile.model_validate({"version": 1, "checkpoints": entries, "bases": bases}), lockfile)
    return mirror, lockfile


def test_kill_9_at_random_points_of_download_from_a_mirror(reference, work, reliability_log):
    from repro.facts.lockfile import load_lockfile
    from repro.hub import local_model_dir

    mirror, lockfile = _mirror_and_lock(reference, work)
    report_path = work / "kills-download.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests/fault_driver.py"), "download", "--lockfile", str(lockfile), "--mirror",
         str(mirror), "--work", str(work / "dl"), "--kills", str(DOWNLOAD_KILLS), "--seed", "5",
         "--report", str(report_path)],
        env=ENV, capture_output=True, text=True, cwd=ROOT,
    )
    OUTPUTS.extend([proc.stdout, proc.stderr])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    lock = load_lockfile(lockfile)
    for i, dest in enumerate(report["rounds"], start=1):
        cli("download", "--lockfile", str(lockfile), "--mirror", str(mirror), "--dest", dest)
        same = all(
            (local_model_dir(dest, r) / f.path).read_bytes() == (local_model_dir(mirror, r) / f.path).read_bytes()
            for r in lock.referenced_ids() for f in lock.entry(r).files
        )
        leftovers = [p.name for p in Path(dest).glob("*/.*.partial")]
        reliability_log("compare", f"download-round-{i}", same and not leftovers, results=len(lock.checkpoints))
        assert same and not leftovers, leftovers
    for attempt in report["attempts"]:
        if attempt["killed"]:
            reliability_log("kill", f"download-{attempt['target']}:{attempt['phase']}", not attempt["problems"],
                            phase="download", problems=attempt["problems"])
    assert sum(a["killed"] for a in report["attempts"]) >= DOWNLOAD_KILLS
    assert not [a for a in report["attempts"] if a["problems"] or a["errors"]]


class Snapshots:
    """Copies a results folder while a run writes into it (like a user's sync): each time the results
    folder changed, at most `limit` times, so the copies are spread over the run."""

    def __init__(self, source: Path, target: Path, every_s: float = 0.5, limit: int = 12):
        self.source, self.target, self.every_s, self.limit = source, target, every_s, limit
        self.taken: list[Path] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.seen = -1

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s) and len(self.taken) < self.limit:
            results = self.source / "results"
            count = len(list(results.iterdir())) if results.is_dir() else -1
            if count <= 0 or count == self.seen or count % 2:  # copy at every other new result
                continue
            self.seen = count
            copy = self.target / f"copy-{len(self.taken) + 1}"
            try:
                shutil.copytree(self.source, copy, dirs_exist_ok=True, copy_function=_copy_if_present,
                                ignore=shutil.ignore_patterns("scratch", "claims"))
            except shutil.Error:
                pass  # something vanished mid-copy: the copy holds what it got, like a real sync
            self.taken.append(copy)


def _copy_if_present(src, dst):
    try:
        shutil.copy2(src, dst)
    except FileNotFoundError:  # renamed or removed while copying: the user's copy simply lacks it
        pass


def _kill_a_worker_holding_a_claim(runs: Path, parent_pid: int, timeout_s: float = 600) -> str | None:
    """SIGKILL the first worker (not the parent) seen holding a claim; returns the job id it held."""
    deadline = time.monotonic() + timeout_s
    claims = runs / "claims"
    while time.monotonic() < deadline:
        for claim in sorted(claims.glob("*.claim")) if claims.is_dir() else []:
            try:
                pid = int(json.loads(claim.read_text())["owner"].split(":")[1])
            except (OSError, ValueError, KeyError, IndexError):
                continue
            if pid != parent_pid:
                os.kill(pid, signal.SIGKILL)
                return claim.name[: -len(".claim")]
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_one_killed_holding_a_claim_each_job_done_exactly_once(reference, work, reliability_log,
                                                                       workers):
    from repro.results import ResultsStore

    runs = fresh_runs(reference, work / f"workers-{workers}")
    snapshots = Snapshots(runs, work / f"copies-{workers}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro", "run", "--config", str(CONFIG), "--runs-dir", str(runs), "--workers",
         str(workers), "--no-progress"], env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    snapshots.thread.start()
    time.sleep(1)  # let the run start and the claims appear
    held = _kill_a_worker_holding_a_claim(runs, proc.pid)
    out, err = proc.communicate(timeout=1800)
    OUTPUTS.extend([out, err])
    snapshots.stop.set()
    snapshots.thread.join()
    reliability_log("kill", f"worker-of-{workers}-holding-a-claim", held is not None, phase="claim")
    assert held is not None
    cli("run", "--config", str(CONFIG), "--runs-dir", str(runs), "--no-progress")  # whatever is left
    journal = ResultsStore(runs).read_journal()
    done = [e["job"] for e in journal if e["event"] == "done"]
    plan = json.loads((runs / "plan.json").read_text())
    exactly_once = sorted(done) == sorted(j["id"] for j in plan["jobs"])
    reliability_log("workers", f"{workers}-workers-exactly-once", exactly_once, jobs=len(done))
    assert exactly_once, "a job was done twice or never"
    compare(reference, runs, work / f"workers-artifacts-{workers}", f"{workers}-workers", reliability_log)
    _render_copies(snapshots.taken, reliability_log)


def _render_copies(copies: list[Path], reliability_log) -> None:
    """Each copy renders Table 1 from exactly the complete results it holds (a truncated file is skipped)."""
    from repro.facts.config import load_config
    from repro.plan import build_plan
    from repro.report.results_view import collect
    from repro.report.table1 import build_table1
    from repro.report.table_text import to_markdown
    from repro.results import ResultsStore

    assert copies, "no copy was taken while the run wrote"
    plan = build_plan(load_config(CONFIG))
    last = copies[-1]
    truncated = last.with_name(last.name + "-truncated")
    shutil.copytree(last, truncated)
    victims = sorted(p for p in (truncated / "results").glob("*.json") if not p.name.startswith("."))
    if victims:  # an interrupted copy: the last file it wrote is cut short
        victims[-1].write_bytes(victims[-1].read_bytes()[: victims[-1].stat().st_size // 2])
    for copy in [*copies, truncated]:
        complete = 0
        for path in (copy / "results").glob("*.json") if (copy / "results").is_dir() else []:
            if path.name.startswith("."):
                continue
            try:
                json.loads(path.read_text())
                complete += 1
            except ValueError:
                pass
        view = collect(plan, ResultsStore(copy))
        to_markdown(build_table1(view))
        ok = view.n_results == complete
        reliability_log("copy", copy.name, ok, results=complete)
        assert ok, (copy, view.n_results, complete)


def test_disk_full_while_writing_a_merged_model_or_a_result(reference, work, reliability_log):
    from repro.results import ResultsStore

    runs = fresh_runs(reference, work / "disk-full")
    cli("plan", "--config", str(CONFIG), "--runs-dir", str(runs))
    cases = [("merged-model", "merge", 200_000), ("result", "base,single", 6_000)]
    for case, only, limit in cases:
        proc = cli("run", "--config", str(CONFIG), "--runs-dir", str(runs), "--only", only, "--no-progress",
                   limit_bytes=limit, check=False)
        lines = proc.stderr.strip().splitlines()
        store = ResultsStore(runs)
        leftovers = [str(p.relative_to(runs)) for p in runs.rglob(".*") if ".tmp" in p.name]
        leftovers += [str(p.relative_to(runs)) for p in (runs / "scratch").glob("*")] if (runs / "scratch").is_dir() else []
        ok = (proc.returncode == 2 and "Traceback" not in proc.stderr and "disk" in lines[-1]
              and not store.failed_ids() and not leftovers and all(store.read_result(j) for j in store.finished_ids()))
        reliability_log("disk_full", case, ok, message=lines[-1] if lines else "")
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert lines[-1].startswith("error: ") and "disk" in lines[-1] and "Traceback" not in proc.stderr, lines
        assert not store.failed_ids() and not leftovers, leftovers
    cli("run", "--config", str(CONFIG), "--runs-dir", str(runs), "--no-progress")  # space freed: completes
    compare(reference, runs, work / "disk-full-artifacts", "disk-full-rerun", reliability_log)


def test_hf_token_canary_appears_nowhere(reference, work, reliability_log):
    """Runs (above) all had HF_TOKEN set to a canary; also an error path that uses the token. Then grep
    every file under the runs and artifacts folders and every output."""
    lock = work / "unresolved.lock"
    lock.write_text("version: 1\ncheckpoints:\n  org/a: {}\n  org/b: {}\nbases:\n  x: {model: org/a, in_the_wild: [org/b]}\n")
    proc = cli("lock", "resolve", "--lockfile", str(lock), check=False)
    assert proc.returncode == 2
    proc = cli("download", "--lockfile", str(lock), "--allow-unpinned", "--dest", str(work / "nowhere"), check=False)
    assert proc.returncode == 2
    leaks = [str(p) for p in work.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(OUTPUTS) if CANARY in (text or "")]
    files = sum(1 for p in work.rglob("*") if p.is_file())
    reliability_log("canary", "hf-token", not leaks, files=files, outputs=len(OUTPUTS))
    assert not leaks, leaks
    assert files > 100 and len(OUTPUTS) > 10
