"""Output folders a user names with `--out`: never replace or write into a folder the kit did not write.

A folder is one a command may write into when it does not exist, is empty, or carries that command's
provenance file (`repro merge`: repro_merge.json; the report commands: `.repro-output.json`, or the
manifest.json of `repro report all`). A command that replaces its folder wholesale (`repro merge`) also
needs `overwrite=True` (the CLI's `--overwrite`) for its own earlier output. Anything else is refused
before a byte is written, naming the folder and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from repro.atomic_io import atomic_write_json
from repro.errors import OutputFolderError

MARKER_FILE = ".repro-output.json"


def _marker_command(folder: Path) -> str | None:
    try:
        data = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("command") if isinstance(data, dict) else None


def check_output_folder(
    folder: str | Path,
    command: str,
    *,
    provenance_files: Iterable[str] = (),
    replaces: bool = False,
    overwrite: bool = False,
) -> Path:
    """Raise OutputFolderError unless `command` (e.g. "repro merge") may write `folder`.

    `provenance_files`: files whose presence shows that `command` wrote the folder (besides the marker).
    `replaces`: the command replaces the whole folder, so even its own earlier output needs `overwrite`.
    """
    folder = Path(folder)
    if not folder.exists():
        return folder
    if not folder.is_dir():
        raise OutputFolderError(f"{folder} exists and is not a folder: pass another --out (nothing was changed)",
                                field="--out")
    if not any(folder.iterdir()):
        return folder
    ours = _marker_command(folder) == command or any((folder / name).is_file() for name in provenance_files)
    if not ours:
        raise OutputFolderError(
            f"{folder} exists and is not an output of `{command}` (it holds other files): pass a new or empty "
            "folder to --out; nothing was changed", field="--out")
    if replaces and not overwrite:
        raise OutputFolderError(
            f"{folder} holds an earlier output of `{command}`: pass --overwrite to replace it, or another "
            "--out; nothing was changed", field="--out")
    return folder


def mark_output_folder(folder: str | Path, command: str) -> None:
    """Record that `command` wrote `folder` (so that a later run of it may write there again)."""
    atomic_write_json(Path(folder) / MARKER_FILE, {"command": command, "written_by": "repro"})
