"""`repro reproduce`'s decisions and the pieces the GPU-host journey needs: which bases and repos a config
uses, the lock report (commit, date, repos with no commit before the date), one GPU per worker, the driver
check with a fake nvidia-smi, and `make lock CONFIG=configs/reduced.yaml`'s date. The tests marked SERVED (a project served by a local hub,
the CLI in subprocesses) run in `nox -s journey`, not in `make test`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_server import LocalHub  # noqa: E402
from journey_project import AS_OF, BASES, build_project  # noqa: E402

from repro.cli import main  # noqa: E402
from repro.errors import ConfigError, RunnerError  # noqa: E402
from repro.facts.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Tests that build a served project and run the CLI in subprocesses: not in `make test` (nox -s journey, CI).
SERVED = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("steps-worlds")


@pytest.fixture
def served(tmp_path, cache):
    with LocalHub() as hub:
        right = build_project(tmp_path / "p", hub, cache)
        yield hub, tmp_path / "p", right


def repro(project: Path, hub: LocalHub, *argv: str, token: bool = False) -> subprocess.CompletedProcess:
    """The repro CLI in its own process (the hub client reads HF_ENDPOINT when it is imported)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(project / ".hf"), PYTHONPATH=str(ROOT))
    if token:
        env["HF_TOKEN"] = hub.token
    return subprocess.run([sys.executable, "-m", "repro", *argv], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_every_lockfile_config_states_the_same_experiment_date():
    """One checkpoints.lock, one date: `make lock CONFIG=...` works for every config that uses the lockfile."""
    dates = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if path.name in ("costs.yaml", "suites.yaml"):
            continue
        cfg = load_config(path).config
        if cfg.lockfile is not None:
            assert cfg.checkpoints_as_of is not None, f"{path.name} has a lockfile but no checkpoints_as_of"
            dates.setdefault(cfg.lockfile, set()).add(cfg.checkpoints_as_of.date)
    assert dates and all(len(d) == 1 for d in dates.values()), dates


@SERVED
def test_reduced_config_pins_as_of_the_papers_date(served):
    hub, project, right = served
    reduced = yaml.safe_load((ROOT / "configs/reduced.yaml").read_text())
    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    assert reduced["checkpoints_as_of"]["date"] == paper["checkpoints_as_of"]["date"]
    # the same config shape in the served project: `lock resolve --as-of config` reads its date
    config = yaml.safe_load((project / "configs/journey.yaml").read_text())
    config.update(name="reduced", bases=["tiny-llama"], checkpoints_as_of=reduced["checkpoints_as_of"])
    (project / "configs/reduced.yaml").write_text(yaml.safe_dump(config))
    done = repro(project, hub, "lock", "resolve", "--config", "configs/reduced.yaml", "--as-of", "config")
    assert done.returncode == 0, done.stderr
    lock = yaml.safe_load((project / "checkpoints.lock").read_text())["checkpoints"]
    llama = [r for r in right if r.startswith("tiny-org/")]
    assert {r: lock[r]["revision"] for r in llama} == {r: right[r] for r in llama}
    assert all(lock[r]["revision"] is None for r in lock if r not in llama)  # only the repos it uses
    assert all(lock[r]["as_of"] == str(paper["checkpoints_as_of"]["date"]) for r in llama)


@SERVED
def test_make_lock_with_the_real_reduced_config_pins_its_repos_only(tmp_path, cache):
    """`make lock CONFIG=configs/reduced.yaml`'s command on the real config and checkpoints.lock, against a
    local hub that serves a tiny model under each of its repo ids, with commits before and after the date."""
    from datetime import UTC, datetime

    from hub_server import model_files
    from journey_project import _worlds

    from repro.reproduce import used_repos

    project = tmp_path / "clone"
    (project / "configs").mkdir(parents=True)
    for name in ("configs/reduced.yaml", "configs/suites.yaml", "checkpoints.lock"):
        (project / name).write_bytes((ROOT / name).read_bytes())
    loaded = load_config(ROOT / "configs/reduced.yaml")
    used = used_repos(loaded)
    assert len(used) == 13 and used[0] == loaded.lock.bases["llama-3.2-3b"].model
    files = model_files(_worlds(cache)["tiny-llama"].base)
    right = {}
    with LocalHub() as hub:
        for repo_id in loaded.lock.referenced_ids():
            right[repo_id] = hub.add_repo(repo_id, [(datetime(2025, 3, 1, tzinfo=UTC), files),
                                                    (datetime(2025, 11, 1, tzinfo=UTC), {**files, "x.json": b"{}"})])[0]
        done = repro(project, hub, "lock", "resolve", "--config", "configs/reduced.yaml", "--as-of", "config",
                     token=True)
    assert done.returncode == 0, done.stderr
    assert "pinning as of 2025-09-30" in done.stderr and "13 of 13 pinned" in done.stdout
    lock = yaml.safe_load((project / "checkpoints.lock").read_text())["checkpoints"]
    assert {r for r, e in lock.items() if e["revision"]} == set(used)
    assert all(lock[r]["revision"] == right[r] and lock[r]["as_of"] == "2025-09-30" for r in used)


@SERVED
def test_lock_report_names_commit_date_and_repos_without_a_commit_before_the_date(served):
    hub, project, right = served
    done = repro(project, hub, "lock", "resolve", "--lockfile", "checkpoints.lock", "--as-of", AS_OF, token=True)
    out, err = done.stdout, done.stderr
    assert done.returncode == 2
    for repo_id, sha in right.items():
        assert f"{sha[:12]}  2025-09-30T23:59:30Z  {repo_id}" in out
    assert "not pinned (1)" in out
    assert "late-org/llama-late: still unpinned (revision null); late-org/llama-late has no commit at or before " \
           f"{AS_OF} (its first commit is 2025-10-01T00:00:05Z)" in out
    assert f"{len(right)} of {len(right) + 1} pinned" in out
    assert err.count("error: ") == 1 and "late-org/llama-late" in err
    lock = yaml.safe_load((project / "checkpoints.lock").read_text())["checkpoints"]
    assert lock["late-org/llama-late"]["revision"] is None and all(lock[r]["revision"] == s for r, s in right.items())


@SERVED
def test_unknown_base_is_one_clear_error_naming_the_known_ones(served, capsys, monkeypatch):
    _, project, _ = served
    monkeypatch.chdir(project)
    for argv in (["reproduce", "--config", "configs/journey.yaml", "--base", "nope"],
                 ["download", "--config", "configs/journey.yaml", "--base", "nope"],
                 ["lock", "resolve", "--config", "configs/journey.yaml", "--base", "nope"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "unknown base(s) nope" in err and "tiny-llama, tiny-qwen3" in err and "Traceback" not in err


@SERVED
def test_steps_decide_from_the_files_on_disk(served):
    from repro.reproduce import download_todo, pin_todo, plan_for, run_todo, select_bases, used_repos

    hub, project, right = served
    loaded = load_config(project / "configs/journey.yaml")
    assert select_bases(loaded, None) == list(BASES)
    assert used_repos(loaded, ["tiny-llama"]) == [r for r in right if r.startswith("tiny-org/")]
    assert "pin 4 of 4" in pin_todo(loaded, ["tiny-llama"]).reason
    with pytest.raises(ConfigError, match="checkpoints_as_of"):
        pin_todo(_without_date(loaded), ["tiny-llama"])
    done = repro(project, hub, "lock", "resolve", "--config", "configs/journey.yaml", "--as-of", "config", "--base",
                 "tiny-llama")
    assert done.returncode == 0, done.stderr
    loaded = load_config(project / "configs/journey.yaml")
    assert pin_todo(loaded, ["tiny-llama"]).reason is None and pin_todo(loaded, list(BASES)).reason
    todo = download_todo(loaded, ["tiny-llama"])
    assert "download 4 checkpoint(s)" in todo.reason and todo.cost[0].startswith("download: ")
    plan = plan_for(loaded, "table1", ["tiny-llama"])
    assert {j.base for j in plan.jobs} == {"tiny-llama"} and len(plan.jobs) == 1 + 3 + 3 * 2
    run = run_todo(loaded, plan, project / "runs/journey")
    assert "run 10 of 10" in run.reason and run.cost[0].startswith("GPU-hours: ")


def _without_date(loaded):
    import dataclasses

    return dataclasses.replace(loaded, config=loaded.config.model_copy(update={"checkpoints_as_of": None}))


def test_gpu_hours_come_from_costs_yaml_for_the_papers_bases():
    from repro.plan import build_plan
    from repro.reproduce import gpu_hours_line, only_bases

    loaded = load_config(ROOT / "configs/reduced.yaml")
    plan = only_bases(build_plan(loaded), ["llama-3.2-3b"])
    line = gpu_hours_line(loaded, ["llama-3.2-3b"], len(plan.jobs), len(plan.jobs), None)
    assert line.startswith("GPU-hours: ~") and "costs.yaml" in line and "no estimate" not in line


# -- one GPU per worker ------------------------------------------------------------------------------------

def _auto_config():
    return load_config(ROOT / "configs/reduced.yaml")  # evaluation.device: auto


def test_workers_get_one_gpu_each(monkeypatch):
    from repro.runner import gpus

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpus, "device_count", lambda: 4)
    assert gpus.worker_gpus("0,1,2,3", None, _auto_config()) == ["0", "1", "2", "3"]
    assert gpus.worker_gpus("all", None, _auto_config()) == ["0", "1", "2", "3"]
    assert gpus.worker_gpus(None, 4, _auto_config()) == ["0", "1", "2", "3"]  # default: one per visible GPU
    assert gpus.worker_gpus(None, 1, _auto_config()) is None
    assert [gpus.worker_environment(["0", "1", "2", "3"], i) for i in range(4)] == [
        {"CUDA_VISIBLE_DEVICES": str(i)} for i in range(4)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7,9")  # a scheduler's allocation: its ids are handed out
    assert gpus.worker_gpus(None, 4, _auto_config()) == ["2", "5", "7", "9"]
    assert gpus.worker_gpus(None, 4, load_config(ROOT / "configs/smoke.yaml")) is None  # a CPU world config
    monkeypatch.setattr(gpus, "device_count", lambda: 0)
    with pytest.raises(RunnerError, match="no CUDA GPU"):
        gpus.worker_gpus("all", None, _auto_config())
    with pytest.raises(RunnerError, match="distinct GPU indices"):
        gpus.parse_gpus("0,0")


def test_each_worker_process_sees_only_its_gpu(monkeypatch, tmp_path):
    """The worker body sets its CUDA_VISIBLE_DEVICES before anything loads a model; its `cuda` device is then
    that GPU alone (cuda:0 of its own view)."""
    from repro.runner import local_runner

    seen = []

    def fake_run_worker(loaded, plan, runs_dir, **kwargs):
        from repro.runner.job_executor import resolve_device

        seen.append((os.environ.get("CUDA_VISIBLE_DEVICES"), resolve_device("auto")))

    import torch

    monkeypatch.setattr(local_runner, "run_worker", fake_run_worker)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    from repro.runner.gpus import worker_environment

    for index in range(3):
        local_runner._worker_process(str(ROOT / "configs/smoke.yaml"), str(tmp_path), None, False, None, None,
                                     worker_environment(["0", "1", "2"], index))
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert seen == [("0", "cuda"), ("1", "cuda"), ("2", "cuda")]


# -- driver check ------------------------------------------------------------------------------------------

def _fake_nvidia_smi(tmp_path: Path, monkeypatch, version: str) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho '{version}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_too_old_driver_gets_one_line_naming_the_way_out(tmp_path, monkeypatch, capsys):
    import torch

    from repro.runner.driver import driver_problem, driver_version
    from repro.runner.preflight import gpu_problem

    _fake_nvidia_smi(tmp_path, monkeypatch, "550.54.15")
    assert driver_version() == "550.54.15"
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    line = gpu_problem()
    assert "NVIDIA driver 550.54.15 is too old" in line and "needs driver >= 580" in line
    assert "host venv" in line and "download.pytorch.org/whl/cu126" in line and "\n" not in line
    assert driver_problem("12.6") is None  # the cu126 build runs on it
    assert driver_problem(None) is None  # a CPU build needs no driver
    _fake_nvidia_smi(tmp_path, monkeypatch, "580.65.06")
    assert driver_problem("13.0") is None

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "tools"))
    _fake_nvidia_smi(tmp_path, monkeypatch, "535.183.01")
    assert gpu_check.main([]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "NVIDIA driver 535.183.01 is too old" in out


def test_slurm_array_tasks_can_start_python_inside_an_image(monkeypatch, tmp_path):
    """`--slurm-option python=...` (or `slurm.python`) is the command each array task starts Python with,
    e.g. the .sif as the job's command prefix; submission stays on the login node."""
    import shutil

    import submitit

    from repro.plan import build_plan
    from repro.runner import slurm_executor

    made = {}

    class Stop(Exception):
        pass

    class FakeExecutor:
        def __init__(self, **kwargs):
            made.update(kwargs)

        def update_parameters(self, **kwargs):
            raise Stop

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(submitit, "SlurmExecutor", FakeExecutor)
    loaded = load_config(ROOT / "configs/smoke.yaml")
    prefix = "apptainer exec --nv repro.sif /repro/.venv/bin/python"
    with pytest.raises(Stop):
        slurm_executor.run_on_slurm(loaded, build_plan(loaded), tmp_path, ROOT / "configs/smoke.yaml",
                                    retry_failed=False, kinds=None, overrides=[f"python={prefix}"], progress=False)
    assert made["python"] == prefix


def test_docker_run_passes_the_token_by_name_and_mounts_this_clone_as_the_user(tmp_path):
    """`make docker-run TARGET=...`'s container command line (recorded by a stand-in for docker): the token
    by name only, the calling user, this clone mounted at /work (lockfile, runs/, paper_artifacts/), the
    image's venv, the target with CONFIG and BASE."""
    record = tmp_path / "argv.txt"
    fake = tmp_path / "docker"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\n")
    fake.chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.touch()
    env = {**os.environ, "HF_TOKEN": "hf_secret_value_123"}
    env.pop("MAKEFLAGS", None)
    done = subprocess.run(["make", "-s", "docker-run", f"DOCKER={fake}", "TARGET=reproduce-table1", "BASE=qwen3-4b",
                           f"STAMP={stamp}", f"RUNS_DIR={tmp_path / 'big'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = record.read_text().splitlines()
    assert "hf_secret_value_123" not in record.read_text() + done.stdout + done.stderr
    assert argv[argv.index("--env") + 1] == "HF_TOKEN"
    assert "HF_ENDPOINT" in argv  # by name too (a mirror, or a local hub), never its value on the line
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert f"{ROOT}:/work" in mounts and f"{tmp_path / 'big'}:/work/runs" in mounts
    assert argv[argv.index("-w") + 1] == "/work" and "HOME=/tmp" in argv
    inner = argv[argv.index("repro") + 1:]
    assert inner[:4] == ["make", "-o", "/repro/.venv/.installed", "VENV=/repro/.venv"]
    assert "reproduce-table1" in inner and "BASE=qwen3-4b" in inner and "CONFIG=configs/paper.yaml" in inner


def test_local_hub_speaks_the_hub_api_to_the_real_client(tmp_path, monkeypatch):
    """tests/hub_server.py against huggingface_hub itself: dated commits, LFS sha256, resolve redirect and
    ETags, 401 for a gated repo without a token, 404 for an unknown repo; the gated-repo message links to
    the HF_ENDPOINT host."""
    import hashlib
    from datetime import UTC, datetime

    import huggingface_hub.constants as constants
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub import errors as hf_errors

    from repro.hub.errors import hub_error

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests' offline switch; 127.0.0.1 only here
    weights, config = b"w" * 3000, b'{"model_type": "llama"}'
    with LocalHub() as hub:
        old, new = hub.add_repo("org/m", [(datetime(2025, 1, 1, tzinfo=UTC), {"model.safetensors": b"x" * 10}),
                                          (datetime(2025, 6, 1, tzinfo=UTC),
                                           {"model.safetensors": weights, "config.json": config})])
        hub.add_repo("org/gated", [(datetime(2025, 1, 1, tzinfo=UTC), {"config.json": config})], gated=True)
        api = HfApi(endpoint=hub.endpoint)
        commits = api.list_repo_commits("org/m")
        assert [c.commit_id for c in commits] == [new, old]
        assert commits[0].created_at == datetime(2025, 6, 1, tzinfo=UTC)
        info = api.model_info("org/m", revision=new, files_metadata=True)
        lfs = {s.rfilename: s.lfs for s in info.siblings}
        assert info.sha == new and lfs["config.json"] is None
        assert lfs["model.safetensors"].sha256 == hashlib.sha256(weights).hexdigest()
        meta = get_hf_file_metadata(hf_hub_url("org/m", "model.safetensors", revision=new, endpoint=hub.endpoint))
        assert meta.etag == hashlib.sha256(weights).hexdigest() and meta.size == 3000 and meta.commit_hash == new
        assert meta.location.startswith(hub.blob_endpoint)  # the redirect, like the hub's CDN
        path = hf_hub_download("org/m", "model.safetensors", revision=old, local_dir=tmp_path / "d",
                               endpoint=hub.endpoint)
        assert Path(path).read_bytes() == b"x" * 10
        with pytest.raises(hf_errors.GatedRepoError) as gated:
            hf_hub_download("org/gated", "config.json", local_dir=tmp_path / "g", endpoint=hub.endpoint)
        assert gated.value.response.status_code == 401
        assert Path(hf_hub_download("org/gated", "config.json", local_dir=tmp_path / "g", endpoint=hub.endpoint,
                                    token=hub.token)).read_bytes() == config
        with pytest.raises(hf_errors.RepositoryNotFoundError) as missing:
            api.model_info("org/nothing")
        assert missing.value.response.status_code == 404
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        message = str(hub_error(gated.value, "org/gated", "download"))
        assert f"{hub.endpoint}/org/gated" in message and "huggingface.co" not in message


def test_reproduce_calls_the_steps_in_order_with_their_options(monkeypatch, tmp_path, capsys):
    """The sequencing alone (each step's command recorded, not run): a world config has nothing to pin or
    download; with --executor slurm the preflight leaves this machine's GPU alone (the cluster has them)."""
    import repro.cli as cli

    calls = []
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 0)
    args = cli.build_parser().parse_args([
        "reproduce", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir", str(tmp_path), "--base",
        "tiny-llama", "--executor", "slurm", "--slurm-option", "partition=gpu"])
    assert args.handler(args) == 0
    config, where = str(ROOT / "configs/smoke.yaml"), ["--runs-dir", str(tmp_path)]
    assert calls == [
        ["preflight", "--config", config, "--downloads-pending", "--no-gpu-check", "--base", "tiny-llama", *where],
        ["run", "--config", config, "--base", "tiny-llama", *where, "--for", "table1", "--executor", "slurm",
         "--slurm-option", "partition=gpu"],
        ["report", "all", "--config", config, *where],
        ["verify", "--run", config, *where],
    ]
    out = capsys.readouterr().out
    assert "== pin: nothing to do" in out and "== download: nothing to do" in out and "== run: run " in out

    calls.clear()
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or (2 if argv[0] == "preflight" else 0))
    args = cli.build_parser().parse_args(["reproduce", "--config", config, "--runs-dir", str(tmp_path)])
    assert args.handler(args) == 2 and [c[0] for c in calls] == ["preflight"]  # stops at the failing step
    assert "== preflight stopped (exit 2)" in capsys.readouterr().err


def test_docker_buildah_translates_docker_run_and_keeps_the_token_off_the_command_line(tmp_path):
    """tools/docker-buildah.sh (make docker-run without a docker daemon) with a stand-in buildah: the
    options become buildah's, a variable passed by name reaches the container on stdin (never in argv),
    an unset one is not passed, the container is removed; --gpus and unknown options are refused."""
    script = ROOT / "tools" / "docker-buildah.sh"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "buildah"
    fake.write_text(f"""#!/bin/sh
case "$1" in
  from) echo ctr-1 ;;
  run) printf '%s\\n' "$@" > {tmp_path}/run-argv; cat > {tmp_path}/run-stdin ;;
  rm) echo "$2" > {tmp_path}/removed ;;
esac
""")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "HF_TOKEN": "hf_secret_value_123"}
    env.pop("HF_ENDPOINT", None)
    done = subprocess.run([str(script), "run", "--rm", "--user", "1234:1234", "--env", "HF_TOKEN", "--env",
                           "HF_ENDPOINT", "--env", "HOME=/tmp", "-v", "/a:/work", "-w", "/work", "repro", "make",
                           "reproduce-table1"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "run-argv").read_text().splitlines()
    assert "hf_secret_value_123" not in "\n".join(argv) + done.stdout + done.stderr
    assert (tmp_path / "run-stdin").read_text() == "hf_secret_value_123\n"
    assert argv[:3] == ["run", "--isolation", "chroot"]
    pairs = list(zip(argv, argv[1:], strict=False))
    assert ("--user", "1234:1234") in pairs and ("-v", "/a:/work") in pairs and ("--workingdir", "/work") in pairs
    assert ("--env", "HOME=/tmp") in pairs and ("--env", "REPRO_ENV_BY_NAME=HF_TOKEN") in pairs
    assert argv[argv.index("ctr-1") + 1:argv.index("ctr-1") + 3] == ["--", "sh"]
    assert argv[-2:] == ["make", "reproduce-table1"]
    assert (tmp_path / "removed").read_text().strip() == "ctr-1"
    for bad, message in ((["--gpus", "all"], "DOCKER_GPUS="), (["--network", "host"], "not translated")):
        done = subprocess.run([str(script), "run", *bad, "repro", "true"], env=env, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 2 and message in done.stderr, done.stderr
