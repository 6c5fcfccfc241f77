"""Wall time of `repro report all` with its figures drawn one after the other (--jobs 1) and by worker
processes (the default), on the same stored results, and whether both write the same bytes.

By default it renders the stored results of `make demo-quick` (runs/demo_quick and, beside it, its
appendix configs' results); without them, synthetic results of configs/smoke.yaml and its appendix
configs (tests/synthetic_results.py, in a temporary folder). The two modes alternate, `--repeats` times
each, every render into a fresh folder; the record keeps every time, the median of each mode and the
1-minute load average around each render (other work on the machine slows both modes).

    python bench/bench_report.py [--config configs/demo_quick.yaml] [--runs-dir runs/demo_quick]
                                 [--repeats 2] [--jobs N]     (results: runs/bench/report.json)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pages import provenance, write_page  # noqa: E402  (bench/pages.py)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _render(config: Path, runs_dir: Path, out: Path, jobs: str | None) -> dict:
    command = [sys.executable, "-m", "repro", "report", "all", "--config", str(config), "--runs-dir", str(runs_dir),
               "--out", str(out)] + (["--jobs", jobs] if jobs else [])
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr}")
    return {"wall_s": round(wall, 2), "load_before": round(load, 2),
            "printed": proc.stdout.replace(str(out), "OUT")}


def _synthetic(folder: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from synthetic_results import write_synthetic_results

    from repro.facts.config import load_config

    for name in ("smoke.yaml", "smoke_appendix.yaml", "smoke_homogeneous.yaml"):
        loaded = load_config(ROOT / "configs" / name)
        write_synthetic_results(loaded, folder / loaded.name)
    return ROOT / "configs" / "smoke.yaml", folder / "smoke"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo_quick.yaml")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default runs/<config name>")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", default=None, help="the parallel mode's --jobs (default: the kit's default)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        work = Path(tmp)
        config = args.config.resolve()
        runs_dir = (args.runs_dir or ROOT / "runs" / config.stem).resolve()
        shown = runs_dir.relative_to(ROOT) if ROOT in runs_dir.parents else runs_dir.name
        source = f"stored results of {config.name} ({shown}, with its appendix configs' beside it)"
        if not (runs_dir / "results").is_dir() or not any((runs_dir / "results").iterdir()):
            config, runs_dir = _synthetic(work / "runs")
            source = "synthetic results of smoke.yaml and its appendix configs (no stored results found)"
        renders: dict[str, list[dict]] = {"serial": [], "parallel": []}
        for repeat in range(args.repeats):
            for mode, jobs in (("serial", "1"), ("parallel", args.jobs)):
                out = work / f"{mode}{repeat}"
                renders[mode].append({**_render(config, runs_dir, out, jobs), "out": out})
        reference = _files(renders["serial"][0]["out"])
        identical = all(_files(r["out"]) == reference for mode in renders.values() for r in mode)
        same_lines = len({r["printed"] for mode in renders.values() for r in mode}) == 1
        figures = sum(name.endswith(".png") for name in reference)
    serial = statistics.median(r["wall_s"] for r in renders["serial"])
    parallel = statistics.median(r["wall_s"] for r in renders["parallel"])
    result = {"source": source, "figures": figures, "files": len(reference), "cpus": os.cpu_count(),
              "serial_s": [r["wall_s"] for r in renders["serial"]],
              "parallel_s": [r["wall_s"] for r in renders["parallel"]],
              "load_at_each_render": {m: [r["load_before"] for r in rs] for m, rs in renders.items()},
              "serial_median_s": serial, "parallel_median_s": parallel,
              "speedup": round(serial / parallel, 2), "byte_identical": identical, "same_printed_lines": same_lines}
    print(json.dumps(result))
    record = {"provenance": provenance(["bench/bench_report.py", *argv]), "results": [result],
              "load_before": load_before, "load_after": os.getloadavg()}
    path = ROOT / "runs" / "bench" / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"page: {write_page('report', record)}")
    return 0 if identical and same_lines else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
