"""Benchmark pages: docs/benchmarks/<name>.md, written from a benchmark's JSON (runs/bench/<name>.json).

Every benchmark script calls `write_page` when it finishes, so the page always shows the latest run of
that benchmark (the engine of the commit it ran on) and is never edited by hand. Its header row says
what a reader needs to judge a number: the command, the machine, its load before and after, the date
and the versions. `python bench/pages.py` rewrites every page from the JSON files under runs/bench/.
Not a benchmark itself (`make bench` runs bench/bench_*.py only).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "runs" / "bench"
PAGES_DIR = ROOT / "docs" / "benchmarks"
NOT_RECORDED = "not recorded"


def provenance(argv: list[str] | None = None) -> dict:
    """What a benchmark's JSON records about its run: command, date, machine, versions, commit."""
    try:
        from repro.package_versions import package_versions

        versions = package_versions()
    except ImportError:  # pragma: no cover - the kit is importable wherever a benchmark runs
        versions = {"python": platform.python_version()}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or NOT_RECORDED
    except (OSError, subprocess.SubprocessError):
        commit = NOT_RECORDED
    return {
        "command": shlex.join([Path(sys.executable).name, *(sys.argv if argv is None else argv)]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "versions": versions,
        "commit": commit,
    }


def _load(data: dict) -> str:
    """'1.6 / 1.4' from whatever load fields a benchmark's JSON holds."""
    machine = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    before = data.get("load_before", machine.get("load_before"))
    after = data.get("load_after", machine.get("load_after"))

    def first(value):
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        return f"{value:.1f}" if isinstance(value, (int, float)) else NOT_RECORDED

    return f"{first(before)} before / {first(after)} after (1-min load average)"


def header(name: str, data: dict) -> str:
    prov = data.get("provenance") or {}
    machine = prov.get("machine") or data.get("machine") or NOT_RECORDED
    if isinstance(machine, dict):
        machine = ", ".join(f"{k} {v}" for k, v in machine.items() if not str(k).startswith("load"))
    versions = prov.get("versions") or {}
    version_text = ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or NOT_RECORDED
    rows = [
        ("command", f"`{prov['command']}`" if prov.get("command") else NOT_RECORDED),
        ("machine", str(machine)),
        ("load", _load(data)),
        ("date", prov.get("date", NOT_RECORDED)),
        ("versions", version_text),
        ("commit", prov.get("commit", NOT_RECORDED)),
        ("raw results", f"`runs/bench/{name}.json`"),
    ]
    lines = [f"<!-- written by bench/pages.py from runs/bench/{name}.json: rerun the benchmark to update it, "
             "do not edit by hand -->", f"# Benchmark `{name}`", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines) + "\n"


def _body(name: str, data) -> str:
    markdown = BENCH_DIR / f"{name}.md"
    if markdown.is_file():  # the benchmark's own summary (bench_merge writes one)
        text = markdown.read_text(encoding="utf-8").strip().splitlines()
        return "\n".join("#" + line if line.startswith("# ") else line for line in text) + "\n"
    if isinstance(data, dict) and isinstance(data.get("table"), str):
        return data["table"].rstrip() + "\n"
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    flat = data if isinstance(data, list) else [data]
    rows = []
    for entry in flat:
        if not isinstance(entry, dict):
            continue
        for key, value in entry.items():
            if key in ("provenance", "machine") or isinstance(value, (dict, list)):
                continue
            rows.append(f"| {key} | {value} |")
        rows.append("| | |")
    return "| result | value |\n|---|---|\n" + "\n".join(rows[:-1]) + "\n"


def write_page(name: str, data, pages_dir: Path = PAGES_DIR) -> Path:
    """Write docs/benchmarks/<name>.md for one benchmark result (replacing the page of its previous run)."""
    record = data if isinstance(data, dict) else {"provenance": {}, "results": data}
    page = header(name, record) + "\n" + _body(name, data)
    pages_dir.mkdir(parents=True, exist_ok=True)
    path = pages_dir / f"{name}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def main() -> int:
    files = sorted(BENCH_DIR.glob("*.json"))
    if not files:
        print("no runs/bench/*.json: run a benchmark first (make bench, make bench-demo, ...)", file=sys.stderr)
        return 2
    for path in files:
        print(f"written: {write_page(path.stem, json.loads(path.read_text(encoding='utf-8')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
