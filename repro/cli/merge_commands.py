"""`repro merge` (one merge through the library) and `repro mergekit-yaml` (stock mergekit CLI)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from repro.cli.mergekit_yaml import run_mergekit_yaml
from repro.errors import MergeError
from repro.method_catalog import BUILTIN_METHODS, METHODS
from repro.output_folder import check_output_folder


def _parse_sets(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MergeError(f"expected key=value, got {item!r} (e.g. --set lambda=0.1)", field="--set")
        params[key.strip()] = value.strip()
    return params


def _merge(args: argparse.Namespace) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.merge import merge_checkpoints
    from repro.merge.engine import RECORD_FILE

    check_output_folder(args.out, "repro merge", provenance_files=(RECORD_FILE,), replaces=True,
                        overwrite=args.overwrite)

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    with _tensor_bar(show) as progress:
        result = merge_checkpoints(
            Path(args.base),
            [Path(m) for m in args.model],
            args.method,
            _parse_sets(args.set),
            out_dir=Path(args.out),
            device=args.device,
            vocab_mismatch=args.vocab_mismatch,
            out_dtype=args.out_dtype,
            progress=progress,
        )
    summary = {
        "out_dir": str(result.out_dir),
        "method": result.method,
        "params": result.params,
        "task_vector_l2": result.task_vector_l2,
        "vocab_truncations": len(result.vocab_truncations),
        "elapsed_s": round(result.elapsed_s, 3),
    }
    if result.subspace_boosting:
        summary["subspace_boosting_raised_null"] = result.subspace_boosting["raised_null"]
    print(json.dumps(summary, sort_keys=True))
    return 0


@contextlib.contextmanager
def _tensor_bar(enabled: bool):
    """A progress bar over the merge's tensors on stderr (None when disabled)."""
    if not enabled:
        yield None
        return
    # loaded when the command runs, so that `repro --help` stays light
    from tqdm import tqdm

    with tqdm(unit="tensor", desc="merging", file=sys.stderr, dynamic_ncols=True) as bar:
        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


def _mergekit_yaml(args: argparse.Namespace) -> int:
    return run_mergekit_yaml((["--help"] if args.help else []) + list(args.mergekit_args))


def register(subparsers) -> None:
    merge = subparsers.add_parser(
        "merge",
        help="merge checkpoints into a base model with one method",
        description="Merge fine-tuned checkpoints into their base with one of the study's methods; "
        "parameters default to the paper's (override with --set key=value).",
    )
    merge.add_argument("--base", required=True, metavar="DIR", help="base model directory")
    merge.add_argument("--model", required=True, action="append", metavar="DIR", help="checkpoint (repeat)")
    merge.add_argument("--method", required=True, metavar="NAME", help=f"one of: {', '.join(METHODS)}")
    merge.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method parameter")
    merge.add_argument("--out", required=True, metavar="DIR",
                       help="output folder (written atomically; must be new, empty, or an earlier `repro merge` "
                       "output with --overwrite)")
    merge.add_argument("--overwrite", action="store_true",
                       help="replace --out when it holds an earlier output of `repro merge`")
    merge.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    merge.add_argument("--vocab-mismatch", default="truncate", choices=("truncate", "error"))
    merge.add_argument("--out-dtype", default=None, help="float32, float16 or bfloat16 (default: the base's)")
    merge.add_argument("--progress", action="store_true", default=None,
                       help="show the tensors merged so far (default: when stderr is a terminal)")
    merge.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    merge.set_defaults(handler=_merge)

    ours = [facts.name for facts in BUILTIN_METHODS if facts.ours]  # plugins' methods are registered too
    yaml_cmd = subparsers.add_parser(
        "mergekit-yaml",
        help="stock mergekit-yaml with repro's merge methods registered",
        description=f"Run mergekit-yaml CONFIG OUT [options] with {', '.join(ours[:-1])} and {ours[-1]} "
        "available; all arguments are passed to mergekit unchanged.",
        add_help=False,
    )
    yaml_cmd.add_argument("-h", "--help", action="store_true", help="show mergekit-yaml's help")
    yaml_cmd.add_argument("mergekit_args", nargs=argparse.REMAINDER, help="CONFIG OUT [mergekit options]")
    yaml_cmd.set_defaults(handler=_mergekit_yaml)
