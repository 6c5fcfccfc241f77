"""Fault injection for `nox -s reliability`: many kill -9 at random points, in one warm process.

Starting Python with torch, transformers, mergekit and lm-eval costs ~5 s, so instead of restarting
`repro run` for every kill, this driver imports everything once and forks a fresh worker for every
attempt. The child runs what `repro run` / `repro download` run after parsing their arguments
(`repro.runner.local_runner.run_worker` over the plan, `repro.hub.download` from a mirror) and dies by
SIGKILL:
  - sent by the parent at a random moment inside a merge or an evaluation (the child reports through a
    pipe when it enters and leaves each phase), or at a random moment of the whole attempt;
  - sent to itself in the middle of writing a result, items or merge-record file: a random prefix of
    the bytes is in the temp file when it dies (what a kill during write() leaves behind);
  - for downloads: in the middle of copying a file from the mirror (at a random byte), or at a random
    moment of the download.
After every kill the folder is checked the way a reader sees it: every result a reader counts is
complete JSON with a readable items file; no model directory is half there. Once a folder is complete,
the next attempts start a fresh round in a new folder. The caller finishes the last round with the real
CLI and compares every round with an uninterrupted run.

    python tests/fault_driver.py run --config C --work DIR --worlds DIR --kills N --seed S --report R.json
    python tests/fault_driver.py download --lockfile L --mirror M --work DIR --kills N --seed S --report R.json

The report (JSON) lists every attempt: its target, the phase it died in, and the folder checks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

PHASE_TARGETS = ("merge", "evaluate", "write", "anytime")
DOWNLOAD_TARGETS = ("copy", "anytime")
ATTEMPT_TIMEOUT_S = 300.0


# -- the child: hooks that report phases and can kill the process mid-write ----------------------------


class _Reporter:
    def __init__(self, fd: int):
        self.fd = fd

    def say(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())

    def phase(self, name: str, fn):
        def wrapped(*args, **kwargs):
            self.say(f"B {name}")
            try:
                return fn(*args, **kwargs)
            finally:
                self.say(f"E {name}")

        return wrapped


def _die(reporter: _Reporter, what: str) -> None:
    reporter.say(f"K {what}")
    os.kill(os.getpid(), signal.SIGKILL)


def _install_run_hooks(reporter: _Reporter, self_kill_at: int | None, cut: float) -> None:
    import repro.atomic_io as atomic_io
    import repro.evaluate as evaluate
    import repro.merge as merge

    for package, name, phase in ((merge, "merge_checkpoints", "merge"), (evaluate, "evaluate_model", "evaluate")):
        real = getattr(package, name)
        hooked = reporter.phase(phase, real)
        setattr(package, name, hooked)
        for module in [m for key, m in sys.modules.items() if key.startswith("repro") and m is not None]:
            if getattr(module, name, None) is real:  # bound by a module-level import before the hook
                setattr(module, name, hooked)
    real_write = atomic_io.atomic_write_bytes
    count = [0]

    def write(path, data):
        count[0] += 1
        if self_kill_at is not None and count[0] == self_kill_at:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, _ = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.write(fd, bytes(data)[: int(len(data) * cut)])
            _die(reporter, f"write {path.parent.name}/{path.name} at {cut:.2f}")
        return real_write(path, data)

    write = reporter.phase("write", write)
    for module in [m for name, m in sys.modules.items() if name.startswith("repro") and m is not None]:
        if getattr(module, "atomic_write_bytes", None) is real_write:
            module.atomic_write_bytes = write


def _install_download_hooks(reporter: _Reporter, self_kill_at_byte: int | None) -> None:
    import importlib

    download = importlib.import_module("repro.hub.download")  # the module (repro.hub.download is also a function)

    download.HASH_CHUNK_BYTES = 16 * 1024  # many chunks per tiny file: room for a kill inside one
    copied = [0]

    def fetch(self, path, dest, on_chunk):
        source = self.root / path
        reporter.say("B copy")
        real = self._inside(source) if source.is_file() else source
        if not source.is_file():
            raise download.HubError(f"{path} of {self.repo_id} is missing from the mirror ({source})")
        with open(real, "rb") as reader, open(dest, "wb") as writer:
            while chunk := reader.read(download.HASH_CHUNK_BYTES):
                if self_kill_at_byte is not None and copied[0] <= self_kill_at_byte < copied[0] + len(chunk):
                    writer.write(chunk[: self_kill_at_byte - copied[0]])
                    writer.flush()
                    _die(reporter, f"copy {self.repo_id}/{path} at byte {self_kill_at_byte - copied[0]}")
                writer.write(chunk)
                copied[0] += len(chunk)
                on_chunk(len(chunk))
        reporter.say("E copy")

    download._MirrorSource.fetch = fetch


# -- the parent: fork, watch, kill, check -------------------------------------------------------------------


def _fork(child_main) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        code = 0
        try:
            child_main(_Reporter(write_fd))
        except BaseException as exc:  # noqa: BLE001 - report and exit non-zero, never return to the parent's code
            os.write(write_fd, f"X {type(exc).__name__}: {exc}\n".encode(errors="replace"))
            code = 3
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


class _Watch:
    """Messages of one child: which phases it is in, what it said before dying."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.stack, self.lines = fd, b"", [], []
        self.since: dict[str, float] = {}  # phase -> when the child last entered it
        self.durations: dict[str, list[float]] = {}
        self.eof = False

    def _feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            kind, _, rest = line.partition(" ")
            if kind == "B":
                self.stack.append(rest)
                self.since[rest] = time.monotonic()
            elif kind == "E" and rest in self.stack:
                self.stack.remove(rest)
                self.durations.setdefault(rest, []).append(time.monotonic() - self.since[rest])

    def poll(self, timeout: float) -> None:
        if self.eof:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if ready:
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self._feed(chunk)

    def drain(self) -> None:
        """Read what the (dead) child wrote until the pipe closes."""
        deadline = time.monotonic() + 5
        while not self.eof and time.monotonic() < deadline:
            self.poll(0.05)

    def inside(self, phase: str) -> float | None:
        """Seconds since the child entered `phase`, if it is in it now."""
        return time.monotonic() - self.since[phase] if phase in self.stack else None

    def died_in(self) -> str:
        killed = [line for line in self.lines if line.startswith("K ")]
        if killed:
            return killed[-1][2:].split(" ", 1)[0]
        return self.stack[-1] if self.stack else "between phases"


def _attempt(child_main, decide_kill, rng: random.Random) -> dict:
    """Run one forked attempt; `decide_kill(watch, started)` returns True when the parent should kill."""
    started = time.monotonic()
    pid, fd = _fork(child_main)
    watch = _Watch(fd)
    killed_by_parent = False
    status = None
    while status is None:
        watch.poll(0.02)
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
            break
        if decide_kill(watch, started) or time.monotonic() - started > ATTEMPT_TIMEOUT_S:
            os.kill(pid, signal.SIGKILL)
            killed_by_parent = True
            _, status = os.waitpid(pid, 0)
    watch.drain()
    os.close(fd)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    errors = [line[2:] for line in watch.lines if line.startswith("X ")]
    return {
        "killed": killed,
        "by": "parent" if killed_by_parent else ("self" if killed else None),
        "phase": watch.died_in() if killed else None,
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status),
        "errors": errors,
        "seconds": round(time.monotonic() - started, 3),
        "durations": {k: v for k, v in watch.durations.items()},
    }


def check_runs_folder(runs_dir: Path) -> list[str]:
    """What a reader of the folder would get wrong after a kill (empty = nothing)."""
    from repro.evaluate.outcome import read_items
    from repro.results import ResultsStore

    store = ResultsStore(runs_dir)
    problems = []
    counted = store.finished_ids()
    for path in sorted(store.results_dir.glob("*.json")) if store.results_dir.is_dir() else []:
        if path.name.startswith("."):
            continue  # a temp file: never read
        job_id = path.name[: -len(".json")]
        if job_id not in counted:
            problems.append(f"{path.name}: an incomplete result under its final name")
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            assert record["job"]["id"] == job_id
            read_items(runs_dir / record["items_file"])
        except Exception as exc:  # noqa: BLE001 - any failure is a finding
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
    scratch = runs_dir / "scratch"
    for model_dir in sorted(scratch.iterdir()) if scratch.is_dir() else []:
        if not model_dir.name.startswith(".") and not (model_dir / "repro_merge.json").is_file():
            problems.append(f"scratch/{model_dir.name}: a merged model directory without its record")
    return problems


def _warm(loaded) -> None:
    """Import everything a job needs and index the suite's tasks, without starting torch's thread pools,
    so that each forked child starts warm (safe to fork: no OpenMP region has run in this process)."""
    import lm_eval.evaluator  # noqa: F401
    import mergekit.merge  # noqa: F401
    import transformers  # noqa: F401

    import repro.evaluate  # noqa: F401
    import repro.merge  # noqa: F401
    import repro.runner.job_executor  # noqa: F401

    try:
        from repro.evaluate.task_loading import resolve_specs, task_manager_for
        from repro.facts.suites import load_suites

        suite = load_suites(loaded.resolve(loaded.config.evaluation.suites_file))[loaded.config.evaluation.suite]
        specs, include_paths = resolve_specs(suite, None)
        task_manager_for([spec.name for spec in specs], include_paths)
    except (ImportError, AttributeError, TypeError):
        pass  # the evaluation layer changed shape: each child indexes the tasks itself (slower, same result)


def campaign_run(config: Path, work: Path, worlds: Path, kills: int, seed: int) -> dict:
    from repro.facts.config import load_config
    from repro.plan import build_plan, write_plan
    from repro.results import ResultsStore
    from repro.runner.local_runner import run_worker

    os.environ.setdefault("TQDM_DISABLE", "1")
    loaded = load_config(config)
    plan = build_plan(loaded)
    _warm(loaded)
    rng = random.Random(seed)
    attempts: list[dict] = []
    rounds: list[str] = []
    estimates = {"merge": 1.0, "evaluate": 1.0}

    def new_round() -> Path:
        runs_root = work / f"round-{len(rounds) + 1}" / "runs"
        shutil.copytree(worlds, runs_root / "worlds", dirs_exist_ok=True)
        runs_dir = runs_root / loaded.name
        write_plan(plan, runs_dir)
        rounds.append(str(runs_dir))
        return runs_dir

    runs_dir = new_round()
    injected = 0
    while injected < kills:
        if ResultsStore(runs_dir).finished_ids() >= {job.id for job in plan.jobs}:
            runs_dir = new_round()
        target = PHASE_TARGETS[len(attempts) % len(PHASE_TARGETS)]
        self_kill_at = rng.randint(1, 4) if target == "write" else None
        cut = rng.random()
        delay = rng.uniform(0.0, 1.0)
        anytime = rng.uniform(0.3, 8.0)
        child_seed = rng.randrange(2**31)

        def child_main(reporter, runs_dir=runs_dir, self_kill_at=self_kill_at, cut=cut, child_seed=child_seed):
            random.seed(child_seed)
            _install_run_hooks(reporter, self_kill_at, cut)
            run_worker(loaded, plan, runs_dir, progress=False)

        def decide(watch, started, target=target, delay=delay, anytime=anytime):
            if target == "anytime":
                return time.monotonic() - started >= anytime
            if target in ("merge", "evaluate"):  # a random moment inside the phase (expected length)
                elapsed = watch.inside(target)
                return elapsed is not None and elapsed >= delay * estimates[target]
            return False

        result = _attempt(child_main, decide, rng)
        for phase, values in result.pop("durations").items():
            if phase in estimates and values:
                estimates[phase] = 0.5 * estimates[phase] + 0.5 * (sum(values) / len(values))
        result.update(target=target, round=len(rounds), problems=check_runs_folder(runs_dir))
        attempts.append(result)
        injected += bool(result["killed"])
        if result["errors"]:
            break  # the child failed on its own: report it instead of retrying forever
    return {"kind": "run", "attempts": attempts, "rounds": rounds, "injected": injected}


def check_download_folder(lock, dest: Path) -> list[str]:
    from repro.hub import is_downloaded, local_model_dir

    problems = []
    for repo_id in lock.referenced_ids():
        final = local_model_dir(dest, repo_id)
        if final.exists() and not is_downloaded(lock.entry(repo_id), dest, rehash=True):
            problems.append(f"{repo_id}: a model directory that is not a complete verified download")
    return problems


def campaign_download(lockfile: Path, mirror: Path, work: Path, kills: int, seed: int) -> dict:
    from repro.facts.lockfile import load_lockfile
    from repro.hub import download, is_downloaded

    lock = load_lockfile(lockfile)
    total = sum(f.size for r in lock.referenced_ids() for f in lock.entry(r).files)
    rng = random.Random(seed)
    attempts: list[dict] = []
    rounds: list[str] = []

    def new_round() -> Path:
        dest = work / f"round-{len(rounds) + 1}" / "models"
        rounds.append(str(dest))
        return dest

    dest = new_round()
    injected = 0
    while injected < kills:
        if all(is_downloaded(lock.entry(r), dest) for r in lock.referenced_ids()):
            dest = new_round()
        target = DOWNLOAD_TARGETS[len(attempts) % len(DOWNLOAD_TARGETS)]
        at_byte = rng.randrange(total // 3) if target == "copy" else None
        anytime = rng.uniform(0.01, 1.0)

        def child_main(reporter, dest=dest, at_byte=at_byte):
            _install_download_hooks(reporter, at_byte)
            download(lock, dest, mirror=mirror, progress=False)

        def decide(watch, started, target=target, anytime=anytime):
            return target == "anytime" and time.monotonic() - started >= anytime

        result = _attempt(child_main, decide, rng)
        result.pop("durations")
        result.update(target=target, round=len(rounds), problems=check_download_folder(lock, dest))
        attempts.append(result)
        injected += bool(result["killed"])
        if result["errors"]:
            break  # the child failed on its own: report it instead of retrying forever
    return {"kind": "download", "attempts": attempts, "rounds": rounds, "injected": injected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("run")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--worlds", type=Path, required=True, help="a built runs/worlds folder to start each round")
    download = sub.add_parser("download")
    download.add_argument("--lockfile", type=Path, required=True)
    download.add_argument("--mirror", type=Path, required=True)
    for p in (run, download):
        p.add_argument("--work", type=Path, required=True)
        p.add_argument("--kills", type=int, required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.what == "run":
        report = campaign_run(args.config, args.work, args.worlds, args.kills, args.seed)
    else:
        report = campaign_download(args.lockfile, args.mirror, args.work, args.kills, args.seed)
    args.report.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
