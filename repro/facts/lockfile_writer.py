"""Writing checkpoints.lock: the canonical, deterministic text of a Lockfile (repro.facts.lockfile reads it).

`render_lockfile(lock)` gives the text (the file's comment header, then version, checkpoints in
first-reference order, bases in file order, files sorted by path); `dump_lockfile(lock, path)` writes it
atomically after checking it reads back. load(dump(x)) == x, and dumping is byte-stable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.facts.lockfile import DEFAULT_LOCKFILE, Lockfile, parse_lockfile

_PLAIN_SCALAR = re.compile(r"^[A-Za-z_][A-Za-z0-9._/-]*$")
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: str) -> str:
    """A YAML scalar for a string: plain when unambiguous, else a JSON (= YAML double-quoted) string."""
    if _PLAIN_SCALAR.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def render_lockfile(lock: Lockfile) -> str:
    """The canonical text of a lockfile: header, then version, checkpoints, bases (deterministic)."""
    lines = [f"version: {lock.version}", "checkpoints:"]
    order = lock.referenced_ids()
    for repo_id in order:
        entry = lock.checkpoints[repo_id]
        revision = "null" if entry.revision is None else json.dumps(entry.revision)
        lines += [f"  {_scalar(repo_id)}:", f"    revision: {revision}"]
        if entry.committed_at is not None:
            lines.append(f"    committed_at: {json.dumps(entry.committed_at)}")
        if entry.as_of is not None:
            lines.append(f"    as_of: {json.dumps(entry.as_of)}")
        lines.append(f"    gated: {'true' if entry.gated else 'false'}")
        if not entry.files:
            lines.append("    files: []")
        else:
            lines.append("    files:")
            for f in sorted(entry.files, key=lambda f: f.path):
                lines += [
                    f"      - path: {_scalar(f.path)}",
                    f"        sha256: {json.dumps(f.sha256)}",
                    f"        size: {f.size}",
                ]
    lines.append("bases:")
    for name, base in lock.bases.items():
        lines += [f"  {_scalar(name)}:", f"    model: {_scalar(base.model)}", "    in_the_wild:"]
        lines += [f"      - {_scalar(r)}" for r in base.in_the_wild]
        if not base.homogeneous:
            lines.append("    homogeneous: {}")
        else:
            lines.append("    homogeneous:")
            for group, members in base.homogeneous.items():
                lines.append(f"      {_scalar(group)}:")
                lines += [f"        - {_scalar(r)}" for r in members]
    if lock.offline_bases:
        lines.append("offline_bases:")
        for name, pin in lock.offline_bases.items():
            lines.append(f"  {_scalar(name)}:")
            for key in ("package", "version", "filename", "sha256", "member", "fetch", "note"):
                value = getattr(pin, key)
                if key != "note" or value:
                    lines.append(f"    {key}: {json.dumps(value, ensure_ascii=False)}")
    header = lock._header
    if header and not header.endswith("\n"):
        header += "\n"
    return header + "\n".join(lines) + "\n"


def dump_lockfile(lock: Lockfile, path: str | Path = DEFAULT_LOCKFILE) -> Path:
    """Write the canonical text of `lock` to `path` atomically (temp file, then rename)."""
    text = render_lockfile(lock)
    parse_lockfile(text, path)  # never write a file we could not read back
    return atomic_write_text(path, text)
