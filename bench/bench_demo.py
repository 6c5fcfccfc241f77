"""End-to-end time of the demo (`make demo`): world building included, in fresh folders.

    python bench/bench_demo.py            # configs/demo.yaml (the 5-minute goal on 2 cores)
    python bench/bench_demo.py --quick    # configs/demo_quick.yaml (the CI variant)
    python bench/bench_demo.py --workers 1   # one worker process instead of one per CPU

Runs exactly what `make demo` runs, as the same commands, into a fresh temporary runs folder (so the
world is trained from scratch and no result is reused): one `repro run --workers auto --with-appendix` (the
config and then each of its appendix configs: sweeps and geometry, homogeneous merges, with the same
worker processes), and `repro report all`. Reports:
- total wall time of the run (worlds + every job of every config) and of the report step;
- the world's training seconds per model (from its world.json);
- from the stored results, in all and per config: the number of jobs, summed evaluation and merge
  seconds (the remainder of the wall time: process start-up, plan, task loading, result writing).
A second `repro run` on the same folder must do nothing: its wall time is reported as "rerun"; the
report is then rendered again into a second folder and compared file by file with the first
("artifacts_identical"), and the world's files must be untouched by the second run ("world_reused").
Results: a table on stdout and runs/bench/demo.json (demo-quick.json with --quick). Timings on a shared
machine are noisy: run under `flock /tmp/repro-bench.lock`, and note the machine's load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pages import provenance, write_page  # bench/pages.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}


def _repro() -> list[str]:
    return [sys.executable, "-m", "repro"]


def _timed(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, env={**os.environ, **OFFLINE}, check=True)
    return time.monotonic() - started


def _report_command(config: str, runs_dir: Path, out: Path) -> list[str]:
    return [*_repro(), "report", "all", "--config", config, "--runs-dir", str(runs_dir), "--out", str(out)]


def _appendix_configs(config: str) -> list[str]:
    listed = subprocess.run([*_repro(), "plan", "--config", config, "--appendix-configs"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [str(Path(path).resolve().relative_to(ROOT)) for path in listed]


def _run_commands(config: str, scratch: Path, workers: str) -> list[tuple[str, list[str]]]:
    """(what it runs, command) of every `repro run` that `make demo` makes, in its order: one, the config
    with its appendix configs."""
    return [(f"{config} --with-appendix", [*_repro(), "run", "--config", config, "--runs-dir",
                                            str(scratch / _config_name(config)), "--no-progress",
                                            "--workers", workers, "--with-appendix"])]


def _config_name(config: str) -> str:
    import yaml

    return yaml.safe_load((ROOT / config).read_text(encoding="utf-8"))["name"]


def _job_seconds(runs_dirs: list[Path]) -> dict:
    evaluation = merge = total = 0.0
    jobs = 0
    for path in sorted(p for runs_dir in runs_dirs for p in (runs_dir / "results").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        jobs += 1
        total += record.get("elapsed_s") or 0.0
        merge += (record.get("merge") or {}).get("elapsed_s") or 0.0
    evaluation = total - merge
    return {"jobs": jobs, "job_seconds": round(total, 1), "merge_seconds": round(merge, 1),
            "evaluation_seconds": round(evaluation, 1)}


def _snapshot(folder: Path) -> dict:
    """(size, mtime) of every file under `folder`: a retrained or rewritten world changes it."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="configs/demo_quick.yaml instead of configs/demo.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the temporary runs folder")
    parser.add_argument("--workers", default="auto", help="`repro run --workers` (default auto, as `make demo`)")
    args = parser.parse_args(argv)
    config = "configs/demo_quick.yaml" if args.quick else "configs/demo.yaml"
    name = Path(config).stem
    (ROOT / "runs").mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-demo-", dir=ROOT / "runs"))
    runs_dir = scratch / _config_name(config)
    runs = _run_commands(config, scratch, args.workers)
    configs = [config, *_appendix_configs(config)]
    try:
        load_before = os.getloadavg()
        run_started = time.time()
        per_config = {c: round(_timed(command), 1) for c, command in runs}
        run_s = sum(per_config.values())
        report_s = _timed(_report_command(config, runs_dir, scratch / "artifacts"))
        world_jsons = sorted((scratch / "worlds").glob("*/world.json"), key=lambda p: p.stat().st_mtime)
        world_wall_s = world_jsons[0].stat().st_mtime - run_started  # world.json is written when the world is done
        world_files = {str(p): _snapshot(p.parent) for p in world_jsons}
        rerun_s = sum(_timed(command) for _, command in runs)
        _timed(_report_command(config, runs_dir, scratch / "artifacts-rerun"))
        first, second = _contents(scratch / "artifacts"), _contents(scratch / "artifacts-rerun")
        training, bases = {}, set()
        for path in world_jsons:
            world = json.loads(path.read_text(encoding="utf-8"))
            for model, stats in world["training"].items():
                if model == "base":  # a world with another's base copied it (same bytes): trained once
                    weights = hashlib.sha256((path.parent / "base" / "model.safetensors").read_bytes()).hexdigest()
                    if weights in bases:
                        continue
                    bases.add(weights)
                training[f"{path.parent.name}/{model}"] = stats["seconds"]
        result = {
            "config": config,
            "workers": args.workers,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                        "load_after": os.getloadavg()},
            "world_threads": world["threads"],
            "end_to_end_seconds": round(run_s + report_s, 1),
            "run_seconds": round(run_s, 1),
            "run_seconds_per_config": per_config,
            "report_seconds": round(report_s, 1),
            "rerun_seconds": round(rerun_s, 1),
            "world_reused": {str(p): _snapshot(p.parent) for p in world_jsons} == world_files,
            "artifacts_identical": bool(first) and first == second,
            "artifact_files": len(first),
            "world_training_seconds": round(sum(training.values()), 1),  # summed over parallel processes
            "world_wall_seconds": round(world_wall_s, 1),
            "world_training_per_model": training,
            **_job_seconds([scratch / _config_name(c) for c in configs]),
            "jobs_per_config": {c: _job_seconds([scratch / _config_name(c)]) for c in configs},
        }
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    out = ROOT / "runs" / "bench" / f"{name.replace('_', '-')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result["provenance"] = provenance()
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"page: {write_page(out.stem, result)}")
    rows = [
        ("end to end (run + report)", result["end_to_end_seconds"]),
        *((f"  repro run {c}", seconds) for c, seconds in result["run_seconds_per_config"].items()),
        ("  first world (wall; start-up included)", result["world_wall_seconds"]),
        ("    training, summed over processes", result["world_training_seconds"]),
        (f"  {result['jobs']} jobs: evaluation, summed over workers", result["evaluation_seconds"]),
        ("  jobs: merging, summed over workers", result["merge_seconds"]),
        *((f"    {c}: {v['jobs']} jobs, evaluation + merging", v["job_seconds"])
          for c, v in result["jobs_per_config"].items()),
        ("  report", result["report_seconds"]),
        ("second run (nothing to do)", result["rerun_seconds"]),
    ]
    print(f"second run: world reused {result['world_reused']}, {result['artifact_files']} artifacts "
          f"byte-identical {result['artifacts_identical']}")
    print(f"demo benchmark: {config}, {os.cpu_count()} CPUs, load before {load_before[0]:.1f}")
    for label, seconds in rows:
        print(f"{label:<34} {seconds:>8.1f} s")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
