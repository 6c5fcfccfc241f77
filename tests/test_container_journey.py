"""The README's container commands, run for real in the built image, against the local hub server.

Without a docker daemon the image is the one `tools/image.sh build` made with buildah (the image step of CI,
`nox -s image`, builds it; this test reuses it: `make docker-build` must find every layer cached), and
`make docker-run` runs through tools/docker-buildah.sh, the one translation of its `docker run` command to
`buildah run --isolation chroot` (`--gpus all` aside: DOCKER_GPUS=). The calling user is uid 1234
(DOCKER_USER, since buildah itself needs root here). Checked: from nothing (no lock, no models, no runs)
to Table 1 and the verify report, every file on the host and owned by that user, and the token (random,
for this test) in no file, no output, no `ps` line, and not in the image: its id, config and history are
unchanged and its docker-archive export (`podman save`, the input of `apptainer build`) holds the venv
and the entry point but not the token.

Needs root, buildah and podman, and the image (REPRO_IMAGE, default `repro`); skipped otherwise. Slow:
`nox -s image` runs it after building the image.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_server import LocalHub  # noqa: E402
from journey_project import BASES  # noqa: E402
from test_reviewer_journey import CONFIG, _all_text, _project, readme_blocks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("REPRO_IMAGE", "repro")
UID = GID = 1234  # the "calling user": not root, not the image's own uid 1000


def _image_id() -> str | None:
    done = subprocess.run(["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", IMAGE],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("buildah") or not shutil.which("podman"),
                       reason="needs root, buildah and podman (no docker daemon: buildah runs the image)"),
]


@pytest.fixture(scope="module")
def image_id():
    found = _image_id()
    if found is None:
        pytest.skip(f"no image {IMAGE!r}: build it first (make docker-build, or nox -s image)")
    return found


@pytest.fixture(scope="module")
def token():
    return "hf_" + secrets.token_hex(16)


def _containers() -> set[str]:
    out = subprocess.run(["buildah", "containers", "-q"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _watch_ps(stop: threading.Event, seen: list[str]) -> None:
    while not stop.is_set():
        seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
        stop.wait(0.5)


def test_readme_container_commands_in_the_image(tmp_path, image_id, token):
    _, container = readme_blocks()
    assert [c.split()[:2] for c in container] == [["make", "docker-build"], ["make", "docker-run"]], container
    build, run = container

    # make docker-build in the clone: the image exists (CI's image step built it), so every layer is cached
    env = {**os.environ, "IMAGE": IMAGE}
    env.pop("MAKEFLAGS", None)
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", build], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _image_id() == image_id, "make docker-build rebuilt the image instead of reusing its layers"
    print(f"make docker-build (cached): {time.monotonic() - started:.0f} s")

    with LocalHub(token=token) as hub:
        project, right = _project(tmp_path, hub, tmp_path / "worlds")
        for folder in ("runs", "paper_artifacts"):
            (project / folder).mkdir()
        subprocess.run(["chown", "-R", f"{UID}:{GID}", str(project)], check=True)
        before = _containers()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE", "MAKE"))}
        env.update({"HF_TOKEN": token, "HF_ENDPOINT": hub.endpoint, "CONFIG": CONFIG})
        command = (f"{run} IMAGE={IMAGE} DOCKER={ROOT / 'tools/docker-buildah.sh'} DOCKER_GPUS= "
                   f"DOCKER_USER={UID}:{GID}")
        stop, seen = threading.Event(), []
        watcher = threading.Thread(target=_watch_ps, args=(stop, seen), daemon=True)
        watcher.start()
        started = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                                  timeout=900)
        finally:
            stop.set()
            watcher.join()
        print(f"make docker-run TARGET=reproduce-table1 in the image: {time.monotonic() - started:.0f} s")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        gated_gets = [p for m, p, _, _ in hub.requests if m == "GET" and p.startswith("/gated-org/")]

    # the whole journey ran inside: pinned, downloaded (the gated base too: the token reached the container)
    for step in ("== pin: pin 8 of 8", "== download: download 8", "== run: run 20 of 20", "== render:", "== verify:"):
        assert step in done.stdout, step
    assert gated_gets
    import yaml

    lock = yaml.safe_load((project / "checkpoints.lock").read_text())["checkpoints"]
    assert {r: lock[r]["revision"] for r in right} == right
    artifacts = project / "paper_artifacts/journey"
    table = (artifacts / "table1.md").read_text()
    assert all(re.search(rf"^\| {base} \| TA \| \d", table, flags=re.M) for base in BASES), table
    assert (artifacts / "verify_run.md").stat().st_size > 0
    assert len(list((project / "runs/journey/results").glob("*.json"))) >= 20
    assert {p.name for p in (project / "runs/models/gated-org").iterdir()} == {
        r.split("/")[1] for r in right if r.startswith("gated-org/")}

    # on the host, owned by the calling user: every file and folder the container wrote
    written = [project / "checkpoints.lock", *(project / "runs").rglob("*"), *(project / "paper_artifacts").rglob("*")]
    assert len(written) > 50
    wrong = [f"{p} {p.lstat().st_uid}:{p.lstat().st_gid}" for p in written
             if (p.lstat().st_uid, p.lstat().st_gid) != (UID, GID)]
    assert not wrong, wrong[:10]

    # the token: in no file, no output, no command line; the container is gone and the image unchanged
    assert token not in _all_text(project)
    assert token not in done.stdout + done.stderr
    assert len(seen) >= 3 and any("buildah run" in s for s in seen)
    assert not [s for s in seen if token in s]
    assert _containers() == before
    assert _image_id() == image_id
    _assert_image_metadata_clean(token)


def _assert_image_metadata_clean(token: str) -> None:
    inspect = subprocess.run(["buildah", "inspect", "--type", "image", IMAGE], capture_output=True, text=True,
                             check=True).stdout
    history = subprocess.run(["podman", "history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE],
                             capture_output=True, text=True, check=True).stdout
    for text in (inspect, history):
        assert token not in text and "HF_TOKEN" not in text
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(name):  # a real token of this machine's environment, if any
            assert os.environ[name] not in inspect + history


def _scan(path: Path, needles: list[bytes], chunk: int = 1 << 24) -> list[bytes]:
    """The needles found anywhere in the file's bytes (read in chunks that overlap by the longest needle)."""
    found, overlap, tail = set(), max(len(n) for n in needles) - 1, b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            window = tail + block
            found.update(n for n in needles if n in window)
            tail = window[-overlap:]
    return sorted(found)


def test_docker_archive_export_for_apptainer(tmp_path, image_id, token):
    """`podman save --format docker-archive` (what `apptainer build repro.sif docker-archive://repro.tar`
    reads): one image whose config runs the venv's tools, whose layers hold the venv (torch's CUDA build,
    the kit's `repro` entry point) and the kit, and whose bytes hold no token."""
    archive = tmp_path / "repro.tar"
    started = time.monotonic()
    subprocess.run(["podman", "save", "--format", "docker-archive", "-o", str(archive), IMAGE], check=True,
                   capture_output=True, timeout=900)
    print(f"podman save: {archive.stat().st_size / 1e9:.1f} GB in {time.monotonic() - started:.0f} s")
    try:
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
            assert len(manifest) == 1
            config = json.load(tar.extractfile(manifest[0]["Config"]))["config"]
            layer_names = manifest[0]["Layers"]
            paths: set[str] = set()
            for name in layer_names:
                with tarfile.open(fileobj=tar.extractfile(name)) as layer:
                    paths.update(m.name.removeprefix("./") for m in layer)
        env = dict(e.split("=", 1) for e in config["Env"])
        assert env["PATH"].startswith("/repro/.venv/bin:") and env["VIRTUAL_ENV"] == "/repro/.venv"
        assert env["HF_HOME"] == "/data/hf" and not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} & set(env)
        assert config["Cmd"] == ["make", "help"] and config["WorkingDir"] == "/repro"
        assert config["User"] == "1000:1000"
        for path in ("repro/.venv/bin/python", "repro/.venv/bin/repro", "repro/.venv/.installed",
                     "repro/.venv/lib/python3.11/site-packages/torch/__init__.py", "repro/repro/__init__.py",
                     "repro/Makefile", "repro/constraints.txt", "usr/bin/make"):
            assert path in paths, path
        assert not any(p.startswith(("repro/runs/", "repro/.git/")) for p in paths)
        needles = [token.encode()]
        needles += [os.environ[n].encode() for n in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if os.environ.get(n)]
        known = b"repro.constraints.sha256"  # in the image's config: the scan does read the archive's bytes
        assert _scan(archive, [*needles, known]) == [known]
    finally:
        archive.unlink(missing_ok=True)
