"""How often Subspace Boosting raises numerically-zero singular values on the SmolLM2 world's fine-tunes
(docs/methods.md, "Subspace Boosting: how often rank deficiency happens"):

    python tools/sb_null_share.py [--world-config configs/smollm2.yaml] [--methods-config configs/paper.yaml]
                                  [--sizes 2 4 12] [--subsets 3] [--runs-dir runs] [--out FILE.json [--resume]]

Builds (or reuses) the world of --world-config under --runs-dir/worlds, draws the subsets with the kit's
sampler (the world config's seed and base name), merges each subset with TA + SB and TIES + SB at the
methods config's parameters (float32, CPU) through `repro.merge.merge_checkpoints`, reads the
`subspace_boosting` record of each merge's repro_merge.json, deletes the merged folder and prints one line
per merge and a summary per method and n (--out: the same as JSON).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from repro.method_catalog import builtin_methods_where

METHODS = builtin_methods_where(lambda traits: traits.records_boosts)  # the Subspace Boosting methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world-config", default="configs/smollm2.yaml")
    parser.add_argument("--methods-config", default="configs/paper.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 12])
    parser.add_argument("--subsets", type=int, default=3, help="subsets per n (n = pool size: the full set)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, help="the per-merge records and the summary as JSON (after each merge)")
    parser.add_argument("--resume", action="store_true", help="skip the merges already recorded in --out")
    args = parser.parse_args(argv)
    if args.resume and not (args.out and args.out.is_file()):
        parser.error("--resume needs --out naming an earlier output of this tool")

    from repro.facts.config import load_config
    from repro.facts.subset_sampler import sample_subsets
    from repro.merge.engine import merge_checkpoints
    from repro.runner.model_sources import ModelSources

    world = load_config(args.world_config, check_suite=False)
    paper = load_config(args.methods_config, check_suite=False)
    params = {m.name: dict(m.params) for m in paper.config.methods if m.name in METHODS}
    base = world.base_names[0]
    pool = world.pool_size(base)
    sources = ModelSources(world, args.runs_dir)  # builds (or reuses) the world under runs/worlds
    base_dir = sources.base_dir(base)
    checkpoints = [sources.checkpoint_dir(base, i) for i in range(1, pool + 1)]
    scratch = args.runs_dir / "sb_null_share"
    records = json.loads(args.out.read_text(encoding="utf-8"))["merges"] if args.resume else []
    done = {(r["method"], r["n"], tuple(r["subset"])) for r in records}
    drawn = {n: sample_subsets(pool, n, args.subsets, seed=world.config.seed, base=base) for n in args.sizes}
    # the first subset of every (method, n) first, then the second ones, ...: every cell early
    for rank in range(args.subsets):
        for method in args.methods:
            for n in args.sizes:
                if rank >= len(drawn[n]) or (method, n, drawn[n][rank]) in done:
                    continue
                subset = drawn[n][rank]
                out = scratch / f"{method}-n{n}-{'-'.join(map(str, subset))}"
                shutil.rmtree(out, ignore_errors=True)
                started = time.perf_counter()
                merge_checkpoints(base_dir, [checkpoints[i - 1] for i in subset], method, params[method],
                                  out_dir=out, device="cpu", out_dtype="float32")
                boost = json.loads((out / "repro_merge.json").read_text(encoding="utf-8"))["subspace_boosting"]
                shutil.rmtree(out)
                records.append({"method": method, "n": n, "subset": list(subset), "params": params[method],
                                "seconds": round(time.perf_counter() - started, 1), **boost})
                print(f"{method} n={n} {subset}: raised_null {boost['raised_null']} of "
                      f"{boost['projection_matrices']} projection matrices (boosted {boost['boosted']}) "
                      f"{records[-1]['seconds']} s", flush=True)
                if args.out:
                    _write(args.out, records)
    summary = summarize(records)
    for row in summary:
        print(f"{row['method']} n={row['n']}: {row['affected_merges']} of {row['merges']} merges, "
              f"{row['raised_null']} of {row['projection_matrices']} matrices "
              f"(boosted {row['boosted']})")
    if args.out:
        _write(args.out, records)
    return 0


def _write(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"merges": records, "summary": summarize(records)}, indent=1) + "\n",
                   encoding="utf-8")
    tmp.replace(path)


def summarize(records: list[dict]) -> list[dict]:
    """Per (method, n): merges, merges with raised_null > 0, and the matrices summed over the merges."""
    rows: dict[tuple[str, int], dict] = {}
    for record in records:
        row = rows.setdefault((record["method"], record["n"]), {
            "method": record["method"], "n": record["n"], "merges": 0, "affected_merges": 0,
            "projection_matrices": 0, "boosted": 0, "raised_null": 0})
        row["merges"] += 1
        row["affected_merges"] += int(record["raised_null"] > 0)
        for key in ("projection_matrices", "boosted", "raised_null"):
            row[key] += record[key]
    return list(rows.values())


if __name__ == "__main__":
    sys.exit(main())
