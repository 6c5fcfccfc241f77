"""Real text available offline, for the SmolLM2 world's fine-tunes (recipes in repro.worlds.smollm2_recipe).

`corpus_file(corpus, ...)` writes a corpus as one text file under runs/worlds/smollm2/corpora/
(atomically, keyed by the corpus recipe) and returns its path and sha256:

- debian: `apt-get download PKG=VERSION` into the downloads folder (once), the .deb's sha256 checked
  against the recipe, then the named files read straight out of the package's data.tar (the ar + tar
  layout that `dpkg -x` unpacks); `.gz`/`.dz` (dictzip) files are decompressed.
- python_stdlib: the named files of the running interpreter's standard library.
Paragraphs (blank-line separated) are the documents the trainer samples from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.errors import ReproError
from repro.worlds.smollm2_recipe import DebianCorpus, PythonStdlibCorpus

READER_VERSION = 1  # bump when a reader changes the text a corpus recipe produces (part of every corpus id)


class CorpusError(ReproError):
    """A fine-tune corpus could not be fetched, verified or read."""


def corpus_id(corpus) -> str:
    content = {"reader_version": READER_VERSION, "corpus": corpus.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------ debian
def _deb_path(corpus: DebianCorpus, downloads: Path) -> Path:
    """The pinned .deb in `downloads` (fetched with apt-get download when missing), sha256-checked."""
    downloads.mkdir(parents=True, exist_ok=True)
    found = [p for p in sorted(downloads.glob(f"{corpus.package}_*.deb")) if _sha256(p.read_bytes()) == corpus.sha256]
    if found:
        return found[0]
    if shutil.which("apt-get") is None:
        raise CorpusError(f"apt-get is not available to fetch the Debian package {corpus.package}={corpus.version}; "
                          f"copy the .deb (sha256 {corpus.sha256}) into {downloads}")
    done = subprocess.run(["apt-get", "download", f"{corpus.package}={corpus.version}"], cwd=downloads,
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["apt-get failed"])[-1]
        raise CorpusError(f"`apt-get download {corpus.package}={corpus.version}` failed ({last}); run "
                          f"`apt-get update` first, or copy the .deb (sha256 {corpus.sha256}) into {downloads}")
    for path in sorted(downloads.glob(f"{corpus.package}_*.deb")):
        digest = _sha256(path.read_bytes())
        if digest == corpus.sha256:
            return path
    raise CorpusError(f"the downloaded {corpus.package} {corpus.version} does not have the pinned sha256 "
                      f"{corpus.sha256}; the archive changed: pin the new version and sha256 in the config")


def _ar_members(data: bytes) -> dict[str, bytes]:
    """Members of a Unix ar archive (the outer layer of a .deb)."""
    if not data.startswith(b"!<arch>\n"):
        raise CorpusError("not a Debian package (no ar header)")
    members, offset = {}, 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)
    return members


def _debian_files(deb: Path, files: list[str]) -> dict[str, bytes]:
    members = _ar_members(deb.read_bytes())
    (data_name,) = [n for n in members if n.startswith("data.tar")] or [None]
    if data_name is None:
        raise CorpusError(f"{deb.name} has no data.tar member")
    if data_name.endswith(".zst"):
        raise CorpusError(f"{deb.name}: zstd-compressed data.tar is not supported; pick another package version")
    wanted = {f"./{f.lstrip('/')}": f for f in files}
    found = {}
    with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*") as tarred:
        for info in tarred:
            if info.name in wanted and info.isfile():
                found[wanted[info.name]] = tarred.extractfile(info).read()
    missing = [f for f in files if f not in found]
    if missing:
        raise CorpusError(f"{deb.name} has no file(s) {', '.join(missing)}")
    return found


def _decompressed(name: str, data: bytes) -> bytes:
    if name.endswith((".gz", ".dz")):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    return data


def _wordnet_glosses(text: str) -> str:
    """WordNet data.* lines -> "word: gloss" paragraphs (the license header lines start with spaces)."""
    out = []
    for line in text.splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        fields, gloss = line.split(" | ", 1)
        parts = fields.split()
        out.append(f"{parts[4].replace('_', ' ')}: {gloss.strip()}")
    return "\n\n".join(out)


def _fortunes(text: str) -> str:
    """fortune(6) files: entries separated by lines holding only "%" -> one paragraph each."""
    entries = [e.strip("\n") for e in text.replace("\r\n", "\n").split("\n%\n")]
    return "\n\n".join(e.replace("\n\n", "\n") for e in entries if e.strip())


def _line_groups(text: str, size: int = 16) -> str:
    """A list with one item per line -> paragraphs of `size` consecutive lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n\n".join("\n".join(lines[i:i + size]) for i in range(0, len(lines), size))


READERS = {"text": lambda text: text, "wordnet_glosses": _wordnet_glosses, "fortunes": _fortunes,
           "lines": _line_groups}


def _debian_text(corpus: DebianCorpus, downloads: Path) -> str:
    raw = _debian_files(_deb_path(corpus, downloads / "debian"), corpus.files)
    texts = [_decompressed(name, raw[name]).decode("utf-8", errors="replace") for name in corpus.files]
    return "\n\n".join(READERS[corpus.reader](t) for t in texts)


# ----------------------------------------------------------------------------------------- python stdlib
def _stdlib_text(corpus: PythonStdlibCorpus) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in corpus.files:
        path = root / name
        if not path.is_file():
            raise CorpusError(f"python_stdlib: {name} is not in {root} (Python {sys.version.split()[0]})")
        texts.append(f"# {name}\n" + path.read_text(encoding="utf-8"))
    return "\n\n".join(texts)


# ------------------------------------------------------------------------------------------------ public
def corpus_file(corpus, cache_dir: Path, downloads: Path) -> tuple[Path, str]:
    """(path of the corpus's text, sha256 of the text); texts are cached in `cache_dir`. A Debian text is
    identified by its pinned recipe; the stdlib text by its content (read afresh). Raises CorpusError."""
    cid = corpus_id(corpus)
    if isinstance(corpus, PythonStdlibCorpus):
        text = _stdlib_text(corpus)
        path = cache_dir / f"python_stdlib-{cid}-{_sha256(text.encode())[:12]}.txt"
        if not path.is_file():
            atomic_write_text(path, text)
    else:
        path = cache_dir / f"{corpus.source}-{cid}.txt"
        if not path.is_file():
            atomic_write_text(path, _debian_text(corpus, downloads))
    return path, _sha256(path.read_bytes())


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
