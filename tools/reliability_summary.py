"""Print the summary of `nox -s reliability` from the log its tests write (one JSON line per tried case).

    python tools/reliability_summary.py runs/reliability/log.jsonl [--out runs/reliability]

Counts: kills injected and survived (by phase), hostile files tried and refused, bad inputs tried and
rejected (plus fuzz examples run and crashes), results compared and identical, disk-full cases, worker
runs with every job done exactly once, copied folders rendered, HF_TOKEN canary leaks. Writes
summary.json and summary.md beside the log (or to --out); exits 1 if any case failed or nothing ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROWS = (
    ("kill", "kills injected / survived"),
    ("hostile", "hostile files tried / refused"),
    ("bad_input", "bad inputs tried / rejected"),
    ("fuzz", "fuzzed parser inputs / no crash"),
    ("compare", "final results compared / identical"),
    ("disk_full", "disk-full cases / clean error, rerun ok"),
    ("workers", "multi-worker runs / each job once"),
    ("copy", "folders copied mid-run / rendered"),
    ("canary", "HF_TOKEN canary checks / no leak"),
)


def summarize(records: list[dict]) -> dict:
    summary: dict = {}
    for category, _ in ROWS:
        mine = [r for r in records if r["category"] == category]
        summary[category] = {"tried": len(mine), "ok": sum(r["ok"] for r in mine),
                             "failed": [r["case"] for r in mine if not r["ok"]]}
    kills = [r for r in records if r["category"] == "kill"]
    summary["kill"]["by_phase"] = dict(sorted(Counter(r.get("phase") or "?" for r in kills).items()))
    fuzz = [r for r in records if r["category"] == "fuzz"]
    summary["fuzz"]["rejected"] = sum(bool(r.get("rejected")) for r in fuzz)
    compared = [r for r in records if r["category"] == "compare"]
    summary["compare"]["records"] = sum(int(r.get("results") or 0) for r in compared)
    canary = [r for r in records if r["category"] == "canary"]
    summary["canary"]["files"] = sum(int(r.get("files") or 0) for r in canary)
    summary["canary"]["outputs"] = sum(int(r.get("outputs") or 0) for r in canary)
    return summary


def render(summary: dict) -> str:
    lines = ["Reliability summary (nox -s reliability)", ""]
    for category, title in ROWS:
        row = summary[category]
        extra = ""
        if category == "kill" and row["by_phase"]:
            extra = "  (" + ", ".join(f"{phase} {n}" for phase, n in row["by_phase"].items()) + ")"
        elif category == "fuzz":
            extra = f"  ({row['rejected']} rejected with the typed error, the rest valid)"
        elif category == "compare":
            extra = f"  ({row['records']} result records and download sets compared byte for byte)"
        elif category == "canary":
            extra = f"  ({row['files']} files and {row['outputs']} outputs grepped)"
        lines.append(f"  {title:<42} {row['tried']:>5} / {row['ok']:<5}{extra}")
        if row["failed"]:
            lines.append(f"      FAILED: {', '.join(row['failed'][:10])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--junit", type=Path, default=None, help="pytest's --junitxml report of the same run")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()] \
        if args.log.is_file() else []
    summary = summarize(records)
    text = render(summary)
    if args.junit is not None:
        summary["pytest"] = _junit_counts(args.junit)
        tests = summary["pytest"]
        text += (f"\n  pytest: {tests['tests']} tests, {tests['failures']} failed, {tests['errors']} errors, "
                 f"{tests['skipped']} skipped, {tests['time_s']:.0f} s\n")
    print(text)
    out = args.out or args.log.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "summary.md").write_text("```\n" + text + "```\n")
    failed = any(summary[c]["failed"] for c, _ in ROWS)
    tests = summary.get("pytest", {"failures": 0, "errors": 0})
    return 1 if failed or not records or tests["failures"] or tests["errors"] else 0


def _junit_counts(path: Path) -> dict:
    """Totals of a pytest --junitxml file (a missing file counts as one error)."""
    import xml.etree.ElementTree as ElementTree

    if not path.is_file():
        return {"tests": 0, "failures": 0, "errors": 1, "skipped": 0, "time_s": 0.0}
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time_s": 0.0}
    for suite in suites:
        for key in ("tests", "failures", "errors", "skipped"):
            total[key] += int(suite.get(key, 0))
        total["time_s"] += float(suite.get("time", 0))
    return total


if __name__ == "__main__":
    sys.exit(main())
