"""The committed gallery: what `make demo-quick` renders, kept in the repository so it can be seen without
running anything, and checked against a fresh render on every CI run.

    python tools/gallery.py copy SRC DEST     copy SRC's artifacts (tables, figures, index.html,
                                              manifest.json) into DEST, with gallery.json listing them
    python tools/gallery.py check SRC DEST    compare a fresh render SRC with the committed gallery DEST

`check` passes when every committed file is byte-identical to the fresh render. Rendering is deterministic
(fonts shipped with matplotlib, no timestamps, stable order), so on the pinned environment the bytes agree;
the numbers come from a world trained on the CPU, so a CPU whose float arithmetic differs (another vector
instruction set in torch's kernels) can train slightly other weights and change an accuracy: then the
tables differ and the check fails, naming each differing cell. When only figure files (PNG/PDF) differ
while every table, manifest and page is identical, the data are the same and only the rasterisation
differs (another FreeType or libpng build): reported, and a failure only with --strict.
Exit codes: 0 agree, 1 differ, 2 bad input (a missing folder, a file too large for the gallery).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

ARTIFACT_SUFFIXES = {".md", ".csv", ".tex", ".png", ".pdf", ".svg", ".html", ".json"}
FIGURE_SUFFIXES = {".png", ".pdf", ".svg"}
MAX_FILE_BYTES = 1_000_000  # small files only
LIST_FILE = "gallery.json"


class GalleryError(Exception):
    pass


def artifacts(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise GalleryError(f"{folder}: no such folder (render it first: make demo-quick)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ARTIFACT_SUFFIXES
                   and p.name != LIST_FILE and not p.name.startswith("."))
    if not any(p.name == "index.html" for p in files):
        raise GalleryError(f"{folder}: no index.html (not a `repro report all` folder)")
    too_big = [f"{p.name} ({p.stat().st_size:,} bytes)" for p in files if p.stat().st_size > MAX_FILE_BYTES]
    if too_big:
        raise GalleryError(f"{folder}: over {MAX_FILE_BYTES:,} bytes, too large for the gallery: {', '.join(too_big)}")
    return files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy(src: Path, dest: Path) -> int:
    files = artifacts(src)
    if dest.exists() and any(dest.iterdir()) and not (dest / LIST_FILE).is_file():
        raise GalleryError(f"{dest} exists and is not a gallery (no {LIST_FILE}): nothing was changed")
    listing = {"source": src.name, "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                                             for p in files}}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for p in files:
            shutil.copyfile(p, tmp / p.name)
        (tmp / LIST_FILE).write_text(json.dumps(listing, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(p.stat().st_size for p in files)
    print(f"gallery: {len(files)} files, {total / 1e6:.2f} MB -> {dest}")
    return 0


def _text_diff(fresh: Path, committed: Path, limit: int = 12) -> list[str]:
    try:
        a = committed.read_text(encoding="utf-8").splitlines()
        b = fresh.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return []
    lines = [line for line in difflib.unified_diff(a, b, "committed", "fresh", lineterm="", n=0)
             if not line.startswith(("---", "+++", "@@"))]
    return lines[:limit] + ([f"... {len(lines) - limit} more lines"] if len(lines) > limit else [])


def check(src: Path, dest: Path, strict: bool = False) -> int:
    if not (dest / LIST_FILE).is_file():
        raise GalleryError(f"{dest}: no committed gallery ({LIST_FILE} missing): run `make gallery` and commit it")
    fresh = {p.name: p for p in artifacts(src)}
    committed = {p.name: p for p in artifacts(dest)}
    listed = set(json.loads((dest / LIST_FILE).read_text(encoding="utf-8"))["files"])
    problems, figure_only = [], []
    for name in sorted(listed - set(committed)):
        problems.append(f"{name}: listed in {LIST_FILE} but missing from {dest}")
    for name in sorted(set(committed) - set(fresh)):
        problems.append(f"{name}: committed but not rendered any more")
    for name in sorted(set(fresh) - set(committed)):
        problems.append(f"{name}: rendered but not in the committed gallery")
    for name in sorted(set(fresh) & set(committed)):
        if fresh[name].read_bytes() == committed[name].read_bytes():
            continue
        if Path(name).suffix in FIGURE_SUFFIXES:
            figure_only.append(name)
            continue
        problems.append(f"{name}: differs")
        problems += [f"    {line}" for line in _text_diff(fresh[name], committed[name])]
    same = len(set(fresh) & set(committed)) - len(figure_only) - sum(1 for p in problems if p.endswith(": differs"))
    print(f"gallery check: {len(committed)} committed files, {same} byte-identical to the fresh render")
    for line in problems:
        print(f"  {line}")
    if figure_only:
        print(f"  figure files with other bytes ({len(figure_only)}): {', '.join(figure_only)}")
        if not problems:
            print("  every table, manifest and page is identical, so the data are the same; the figures differ "
                  "only in rasterisation (another FreeType/libpng build than the committed render's)")
    if problems or (strict and figure_only):
        print("gallery check FAILED: the committed demo artifacts are not what `make demo-quick` renders here "
              "(if the change is intended: make gallery, then commit paper_artifacts/demo)")
        return 1
    print("gallery check passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("copy", "check"))
    parser.add_argument("src", type=Path, help="a fresh `repro report all` folder (paper_artifacts/demo_quick)")
    parser.add_argument("dest", type=Path, help="the gallery (paper_artifacts/demo)")
    parser.add_argument("--strict", action="store_true", help="check: figure bytes must agree too")
    args = parser.parse_args(argv)
    try:
        if args.action == "copy":
            return copy(args.src, args.dest)
        return check(args.src, args.dest, args.strict)
    except GalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
