"""Transcribe Tables 1-3 of the paper text, cell by cell, exactly as printed, into a CSV.

    python tools/transcribe_paper_tables.py PAPER.txt \
        paper_artifacts/reference/tables.csv

PAPER.txt is the paper's text (Markdown export). Used once to produce paper_artifacts/reference/tables.csv (then checked by eye against the paper). Every
value is kept as the printed text ("66", "+0.01", "-8.55"), never re-rounded or corrected.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

HEADER = ("table", "model", "method", "reference", "reference_accuracy", "n", "combinations", "percentage", "delta")
# The caption that follows each table's rows tells which table they belong to.
CAPTIONS = {"Table 1:": "table1", "Table 2:": "table2", "Table 3:": "table3"}
COLUMN = re.compile(r"\$n=(\d+)\$ \((\d+)\)")
CELL = re.compile(r"^(\d+) / ([+-]\d+\.\d+)$")


def _blocks(lines: list[str]):
    """(header line, data lines, table name) for each tab-separated table followed by its caption."""
    i = 0
    while i < len(lines):
        if lines[i].startswith("Model\t"):
            header, rows = lines[i], []
            i += 1
            while i < len(lines) and lines[i].strip():
                rows.append(lines[i])
                i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            caption = next((name for key, name in CAPTIONS.items() if lines[i].startswith(key)), None)
            if caption is None:
                raise SystemExit(f"no Table 1-3 caption after the table at line {i}")
            yield header, rows, caption
        i += 1


def transcribe(text: str) -> list[dict]:
    out = []
    for header, rows, table in _blocks(text.splitlines()):
        columns = header.split("\t")
        has_method = columns[1] == "Method"
        reference = columns[2 if has_method else 1]
        sizes = [COLUMN.fullmatch(c).groups() for c in columns[(3 if has_method else 2):]]
        model = ""
        for row in rows:
            fields = row.split("\t")
            model = fields[0] or model
            method = fields[1] if has_method else "TA"  # Table 2 is Task Arithmetic only (its caption)
            ref_value = fields[2 if has_method else 1]
            cells = fields[(3 if has_method else 2):]
            if len(cells) != len(sizes):
                raise SystemExit(f"{table} {model} {method}: {len(cells)} cells for {len(sizes)} columns")
            for (n, k), cell in zip(sizes, cells, strict=True):
                match = CELL.fullmatch(cell.strip())
                if match is None:
                    raise SystemExit(f"{table} {model} {method} n={n}: unreadable cell {cell!r}")
                out.append(dict(zip(HEADER, (table, model, method, reference, ref_value, n, k, *match.groups()),
                                    strict=True)))
    return out


def main(argv: list[str]) -> int:
    source, target = Path(argv[0]), Path(argv[1])
    rows = transcribe(source.read_text(encoding="utf-8"))
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} cells written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
