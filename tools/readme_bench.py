"""Copy the merge benchmark summaries (runs/bench/merge.md, merge-quick.md) into README.md between the
`<!-- bench:merge -->` markers: `python tools/readme_bench.py` after `make bench`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parts = []
    for name in ("merge.md", "merge-quick.md"):
        path = ROOT / "runs" / "bench" / name
        if path.exists():
            text = path.read_text().strip().splitlines()
            parts.append("\n".join(["###" + line if line.startswith("# ") else line for line in text]))
    if not parts:
        print("no runs/bench/merge*.md: run `make bench` first", file=sys.stderr)
        return 2
    readme = ROOT / "README.md"
    block = "<!-- bench:merge -->\n" + "\n\n".join(parts) + "\n<!-- /bench:merge -->"
    text, count = re.subn(r"<!-- bench:merge -->.*?<!-- /bench:merge -->", lambda _: block, readme.read_text(), flags=re.S)
    if count != 1:
        print("README.md has no <!-- bench:merge --> block", file=sys.stderr)
        return 2
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
