"""The reviewer's journey on a GPU host, as the README tells it, end to end on CPU against a hub-compatible
HTTP server on 127.0.0.1 (tests/hub_server.py) reached by the real huggingface_hub client via HF_ENDPOINT.

The README's GPU section (between `<!-- reviewer-gpu:begin -->` and `<!-- reviewer-gpu:end -->`) is read
here and its host commands are run one by one in a fresh project (tests/journey_project.py: the Makefile,
a tiny paper-shaped config, an unpinned lockfile), with the README's example values replaced by the
project's (`export HF_TOKEN=...`, `export BASE=...`) and CONFIG pointing at the tiny config.
A few minutes on 2 cores: marked slow (not in `make test`); `nox -s journey` and CI run it.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_server import LocalHub  # noqa: E402
from journey_project import BASES, build_project  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- reviewer-gpu:begin -->", "<!-- reviewer-gpu:end -->"
CONFIG = "configs/journey.yaml"
TABLES = ("table1.md", "table1.csv", "table1.tex")


def readme_blocks() -> list[list[str]]:
    """The fenced bash blocks of the README's GPU section: one list of commands per block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README.md needs exactly one GPU section"
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert len(section.strip().splitlines()) <= 40, "the README's GPU section is at most ~40 lines"
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    out = []
    for block in blocks:
        commands = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
        out.append([c for c in commands if c and not c.startswith("#")])
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("journey-worlds")


@pytest.fixture
def hub():
    with LocalHub() as server:
        yield server


def _env(project: Path, hub: LocalHub, **extra) -> dict[str, str]:
    stamp = project.parent / f"{project.name}.installed"
    stamp.touch()  # newer than pyproject.toml / constraints.txt: `make setup` has nothing to do
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE", "MAKE"))}
    env.update({
        "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(project / ".hf"), "PYTHONPATH": str(ROOT),
        "CONFIG": CONFIG, "MAKEFLAGS": f"VENV={venv} STAMP={stamp}", "TQDM_DISABLE": "1",
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra)
    return env


def _project(tmp_path: Path, hub: LocalHub, cache: Path, name: str = "project") -> tuple[Path, dict]:
    project = tmp_path / name
    right = build_project(project, hub, cache)
    for name_ in ("pyproject.toml", "constraints.txt"):
        (project / name_).write_bytes((ROOT / name_).read_bytes())
    (project / "tools").mkdir()
    (project / "tools/gpu_check.py").write_bytes((ROOT / "tools/gpu_check.py").read_bytes())
    return project, right


def _sh(command: str, project: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "checkpoints.lock").read_text())["checkpoints"]


def _tables(project: Path) -> dict[str, bytes]:
    folder = project / "paper_artifacts/journey"
    return {name: (folder / name).read_bytes() for name in TABLES}


def test_readme_gpu_section_runs_command_by_command(tmp_path, hub, cache):
    host, container = readme_blocks()
    assert any(c.startswith("make reproduce-table1") for c in host) and any("docker-run" in c for c in container)
    project, right = _project(tmp_path, hub, cache)
    env = _env(project, hub)
    values = {"HF_TOKEN": hub.token, "BASE": "tiny-llama"}
    llama = [r for r in right if r.startswith("tiny-org/")]
    for command in host:
        if m := re.fullmatch(r"export (\w+)=(\S+)", command):
            assert m.group(1) in values, f"the test has no value for {command!r}"
            env[m.group(1)] = values[m.group(1)]
            continue
        done = _sh(command, project, env)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if command == "make lock":  # the commit of the right date, for the selected base only, reported
            lock = _lock(project)
            assert {r: lock[r]["revision"] for r in llama} == {r: right[r] for r in llama}
            assert all(lock[r]["revision"] is None for r in right if r not in llama)
            assert all(f"{right[r][:12]}  2025-09-30T23:59:30Z  {r}" in done.stdout for r in llama)
    artifacts = project / "paper_artifacts/journey"
    table = (artifacts / "table1.md").read_text()
    # BASE restricted every step: the other base of the config has no result (its cells are "–")
    assert re.search(r"^\| tiny-llama \| TA \| \d", table, flags=re.M)
    assert "| tiny-qwen3 | TA | – | – | – | – |" in table
    assert (artifacts / "verify_run.md").stat().st_size > 0
    models = project / "runs/models"
    assert sorted(p.name for p in (models / "tiny-org").iterdir()) == sorted(r.split("/")[1] for r in llama)
    assert not (models / "gated-org").exists()
    assert hub.token not in _all_text(project)


def _all_text(folder: Path) -> str:
    parts = []
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def _wait_for(predicate, proc, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"finished before it could be interrupted: {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the interruption point")


def _kill(proc: subprocess.Popen) -> None:
    """kill -9 of the whole command (make and the repro process it started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _gets(hub: LocalHub, repo_id: str) -> int:
    return sum(1 for method, path, _, _ in hub.requests if method == "GET" and path.startswith(f"/{repo_id}/resolve/"))


def _results(project: Path) -> int:
    folder = project / "runs/journey/results"
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def test_reproduce_table1_from_nothing_and_again_after_kill_9(tmp_path, hub, cache):
    """One command from no lock, no models, no runs to Table 1 + verify report; the same after `kill -9`
    during the download and during the run, with byte-identical tables; no gated repo without a token."""
    clean, _ = _project(tmp_path, hub, cache, "clean")
    env = _env(clean, hub, HF_TOKEN=hub.token)
    done = _sh("make reproduce-table1", clean, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("== pin: pin 8 of 8", "== download: download 8", "   download: ", "   disk: ", "   GPU-hours: ",
                 "== run: run 20 of 20", "== render:", "== verify:"):
        assert step in done.stdout, step
    assert (clean / "paper_artifacts/journey/verify_run.md").is_file()
    again = _sh("make reproduce-table1", clean, env)
    assert again.returncode == 0 and all(f"== {s}: nothing to do" in again.stdout for s in ("pin", "download", "run"))
    expected = _tables(clean)

    project, _ = _project(tmp_path, hub, cache, "killed")
    env = _env(project, hub, HF_TOKEN=hub.token)
    hub.chunk_delay = 0.05  # slow file bodies: the first kill lands mid-download
    stage = project / "runs/models"
    for point in (lambda: any(stage.rglob("*.partial")), lambda: _results(project) >= 4):
        proc = subprocess.Popen(["make", "reproduce-table1"], cwd=project, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_for(point, proc)
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            assert "repro reproduce" in ps and hub.token not in ps  # the token is on no command line
        finally:
            _kill(proc)
        hub.chunk_delay = 0.0
    done = _sh("make reproduce-table1", project, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _tables(project) == expected
    assert hub.token not in _all_text(project) and hub.token not in _all_text(clean)


def test_download_resumes_after_kill_9_and_rejects_a_tampered_file(tmp_path, hub, cache):
    project, right = _project(tmp_path, hub, cache)
    env = _env(project, hub, HF_TOKEN=hub.token, BASE="tiny-llama")
    assert _sh("make lock", project, env).returncode == 0
    hub.chunk_delay = 0.1  # slow file bodies, so that the kill lands mid-way
    proc = subprocess.Popen(["make", "download"], cwd=project, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    models = project / "runs/models/tiny-org"
    first = "tiny-org/llama-base"
    try:  # the first checkpoint complete, the next one part-way (its folder still being staged)
        _wait_for(lambda: (models / "llama-base").is_dir() and any(models.glob(".*.partial")), proc)
    finally:
        _kill(proc)
    hub.chunk_delay = 0.0
    before = _gets(hub, first)
    assert before and not (models / "llama-ft-3").exists()
    done = _sh("make download", project, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _gets(hub, first) == before  # resumed: nothing of the complete checkpoint was fetched again
    assert f"present    {first}" in done.stdout and "downloaded tiny-org/llama-ft-3" in done.stdout.replace("  ", " ")
    lock = _lock(project)
    for repo_id in (r for r in right if r.startswith("tiny-org/")):
        folder = project / "runs/models" / repo_id
        for entry in lock[repo_id]["files"]:
            assert hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]

    tampered = "tiny-org/llama-ft-2"
    original = (project / "runs/models" / tampered / "model.safetensors").read_bytes()
    hub.tamper(tampered, "model.safetensors", original[:-16] + bytes(16))  # same size, other bytes
    fresh = _sh("make download DOWNLOAD_ARGS='--dest runs/other'", project, env)
    assert fresh.returncode == 2 and "Traceback" not in fresh.stderr
    assert tampered in fresh.stderr and "sha256" in fresh.stderr, fresh.stderr
    assert not (project / "runs/other" / tampered / "model.safetensors").exists()


def test_gated_repo_without_token_one_clear_error_linking_the_endpoint(tmp_path, hub, cache):
    project, right = _project(tmp_path, hub, cache)
    env = _env(project, hub)  # no HF_TOKEN
    done = _sh("make lock", project, env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    gated = [r for r in right if BASES["tiny-qwen3"][1].split("/")[0] in r]
    assert f"{hub.endpoint}/{gated[0]}" in done.stderr and "huggingface.co" not in done.stderr
    lock = _lock(project)
    assert all(lock[r]["revision"] is None for r in gated)  # left unpinned, reported
    assert all(lock[r]["revision"] == right[r] for r in right if r not in gated)
    assert f"not pinned ({len(gated)})" in done.stdout and "still unpinned" in done.stdout
