"""The `repro` command line: a thin layer that parses arguments and calls the library.

Each area of the kit has one module here with a `register(subparsers)` function that adds its
sub-commands; a sub-command's handler receives the parsed namespace and returns an exit code.
Library code raises `repro.errors.ReproError`; `main` turns it into one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order they appear in `repro --help`.
COMMAND_MODULES = (
    "repro.cli.lock_commands",
    "repro.cli.merge_commands",
    "repro.cli.evaluate_commands",
    "repro.cli.data_commands",
    "repro.cli.run_commands",
    "repro.cli.report_commands",
    "repro.cli.verify_commands",
)


def build_parser() -> argparse.ArgumentParser:
    from repro import __version__

    parser = argparse.ArgumentParser(
        prog="repro",
        description="Reproduce 'A Systematic Study of In-the-Wild Model Merging for LLMs'.",
    )
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an area not built yet
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from repro.errors import ReproError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
