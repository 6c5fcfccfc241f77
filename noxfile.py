"""nox sessions for repro. Every session reuses the project's .venv (`make setup` builds it).

No session creates a virtualenv of its own (venv_backend="none"), so none reinstalls torch: the
.venv/bin directory is put first on PATH and its executables are called directly.

    nox -s tests            offline pytest (default session; extra args after `--`)
    nox -s lint             hadolint on the Dockerfile + ruff check
    nox -s smoke            repro run + repro report table1 on configs/smoke.yaml
    nox -s slurm            pytest -m slurm against a local single-node SLURM cluster (needs root + apt
                            packages slurmctld slurmd slurm-client munge)
    nox -s page             headless-Chromium screenshot of a rendered index.html (runs/page-screenshot.png);
                            installs Debian's chromium with apt-get when missing and possible, else skips
    nox -s reliability      hostile checkpoints, bad inputs + hypothesis fuzzing, kill -9 / disk full /
                            concurrent workers / copies mid-run / HF_TOKEN canary, then a counted summary
    nox -s image            build the Docker image (docker, else buildah: root + apt packages buildah podman
                            debootstrap) and run `make test` + `make smoke` inside it, offline (tools/image.sh);
                            then the README's container commands in that image against a local hub server
                            and its docker-archive export (tests/test_container_journey.py)
    nox -s journey          the README's GPU section end to end on CPU against a local hub server (127.0.0.1)
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
VENV_BIN = ROOT / ".venv" / "bin"
SMOKE_CONFIG = "configs/smoke.yaml"
LINT_PATHS = ("repro", "tests", "noxfile.py", "tools", "bench")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

nox.options.sessions = ["tests"]
nox.options.error_on_external_run = False


def _venv_env(session: nox.Session, offline: bool = True) -> dict[str, str]:
    """Environment for commands: the project's .venv first on PATH, and the hub switched off."""
    if not (VENV_BIN / "python").exists():
        session.error(f"{VENV_BIN / 'python'} is missing: run `make setup` first")
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV_BIN.parent)}
    if offline:
        env.update(OFFLINE_ENV)
    return env


def _run(session: nox.Session, *args: str, offline: bool = True, success_codes: list[int] | None = None):
    session.run(*args, env=_venv_env(session, offline), external=True, success_codes=success_codes)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Offline test suite (tests/conftest.py fails any test that reaches the network)."""
    _run(session, str(VENV_BIN / "python"), "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """hadolint on the Dockerfile, ruff check on the code."""
    hadolint_config = ROOT / ".hadolint.yaml"
    config_args = ["--config", str(hadolint_config)] if hadolint_config.exists() else []
    _run(session, str(VENV_BIN / "hadolint"), *config_args, "Dockerfile")
    paths = [path for path in LINT_PATHS if (ROOT / path).exists()]
    _run(session, str(VENV_BIN / "ruff"), "check", *paths)


@nox.session(venv_backend="none")
def smoke(session: nox.Session) -> None:
    """End-to-end smoke run on tiny offline models, then Table 1 from its results."""
    config = session.posargs[0] if session.posargs else SMOKE_CONFIG
    _run(session, str(VENV_BIN / "repro"), "run", "--config", config)
    _run(session, str(VENV_BIN / "repro"), "report", "table1", "--config", config)


@nox.session(venv_backend="none")
def slurm(session: nox.Session) -> None:
    """Tests marked `slurm`: they start a local SLURM cluster (tools/local_slurm.py) as root."""
    _run(session, str(VENV_BIN / "python"), "-m", "pytest", "-m", "slurm", *(session.posargs or ["-q"]))


RELIABILITY_TESTS = ("tests/test_hostile_checkpoints.py", "tests/test_bad_inputs.py", "tests/test_fault_injection.py")


@nox.session(venv_backend="none")
def reliability(session: nox.Session) -> None:
    """Every reliability check (see tests/test_fault_injection.py) and the summary of what was tried.

    Each test logs what it tried to runs/reliability/log.jsonl; tools/reliability_summary.py prints the
    totals (also written to runs/reliability/summary.{json,md}). Extra pytest args after `--`.
    """
    out = ROOT / "runs" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.jsonl"
    log.unlink(missing_ok=True)
    env = {**_venv_env(session), "REPRO_RELIABILITY_LOG": str(log), "REPRO_FUZZ_EXAMPLES": "400"}
    python = str(VENV_BIN / "python")
    junit = out / "junit.xml"
    junit.unlink(missing_ok=True)
    session.run(python, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider", f"--junitxml={junit}",
                *RELIABILITY_TESTS, *session.posargs, env=env, external=True, success_codes=[0, 1])
    # The summary exits 1 if any tried case or any test failed, which fails the session.
    session.run(python, str(ROOT / "tools" / "reliability_summary.py"), str(log), "--junit", str(junit),
                env=env, external=True)


@nox.session(venv_backend="none")
def page(session: nox.Session) -> None:
    """The static report page in a real browser: screenshot to runs/page-screenshot.png."""
    import shutil

    browsers = ("chromium", "chromium-browser", "google-chrome")
    if not any(shutil.which(b) for b in browsers) and shutil.which("apt-get") and os.geteuid() == 0:
        session.run("apt-get", "install", "-y", "--no-install-recommends", "chromium", external=True,
                    success_codes=[0, 100])  # 100: not installable here; the test then skips
    (ROOT / "runs").mkdir(exist_ok=True)
    env = {**_venv_env(session), "REPRO_SCREENSHOT": str(ROOT / "runs" / "page-screenshot.png")}
    session.run(str(VENV_BIN / "python"), "-m", "pytest", "-q", "-rs", "tests/test_report_page_browser.py",
                env=env, external=True)


@nox.session(venv_backend="none")
def image(session: nox.Session) -> None:
    """The image built for real and tested inside: tools/image.sh test (docker, else buildah; ~4 GB download).
    Then, on the same image (no second build), the README's container commands against a local hub server
    and its docker-archive export (tests/test_container_journey.py; needs root + buildah/podman, else
    skipped; a few minutes)."""
    session.run(str(ROOT / "tools" / "image.sh"), "test", external=True)
    _run(session, str(VENV_BIN / "python"), "-m", "pytest", "-q", "-rs", "-s", "-o", "addopts=",
         "tests/test_container_journey.py", *session.posargs)


@nox.session(venv_backend="none")
def journey(session: nox.Session) -> None:
    """The reviewer's journey on a GPU host as the README's GPU section tells it, on CPU against a local
    hub-compatible server (HF_ENDPOINT on 127.0.0.1): README commands, lock, download (kill -9, tampered
    file), make reproduce-table1 from nothing and after kill -9. A few minutes."""
    _run(session, str(VENV_BIN / "python"), "-m", "pytest", "-q", "-o", "addopts=",
         "tests/test_reviewer_journey.py", "tests/test_reproduce_steps.py", *session.posargs)
