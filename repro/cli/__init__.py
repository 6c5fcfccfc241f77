"""The `repro` command line: a thin layer that parses arguments and calls the library.

Each area of the kit has one module here with a `register(subparsers)` function that adds its
sub-commands; a sub-command's handler receives the parsed namespace and returns an exit code.
Library code raises `repro.errors.ReproError`; `main` turns it into one line per problem on stderr and
exit 2 (also for a full disk or an unreadable file); anything else is a bug: one line and exit 1. A
traceback is printed only with `--debug` (anywhere on the command line) or REPRO_DEBUG=1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import traceback

from repro import __version__
from repro.errors import ReproError

# Sub-command modules, in the order they appear in `repro --help`.
COMMAND_MODULES = (
    "repro.cli.lock_commands",
    "repro.cli.merge_commands",
    "repro.cli.evaluate_commands",
    "repro.cli.data_commands",
    "repro.cli.run_commands",
    "repro.cli.report_commands",
    "repro.cli.verify_commands",
    "repro.cli.reproduce_commands",
)


class UsageError(Exception):
    """A command line argparse rejects: one line on stderr, exit 2 (raised by `CommandParser.error`)."""


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so that a bad argument goes through the
    same one-line error path as every other user error. Sub-command parsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def hidden_alias(parser: argparse.ArgumentParser, flag: str, dest: str, **kwargs) -> None:
    """An old spelling of an option, still accepted but not shown in --help."""
    parser.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="repro",
        description="Reproduce 'A Systematic Study of In-the-Wild Model Merging for LLMs'.",
    )
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of any error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Take `--debug` out of the arguments wherever it is (not after `--` or inside mergekit-yaml's)."""
    out, debug, passthrough = [], os.environ.get("REPRO_DEBUG", "") not in ("", "0"), False
    for arg in argv:
        if passthrough or arg != "--debug":
            passthrough = passthrough or arg in ("--", "mergekit-yaml")
            out.append(arg)
        else:
            debug = True
    return out, debug


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError a user can fix (disk full, missing or unreadable file)."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if exc.errno in DISK_FULL_ERRNOS:
        return (f"the disk is full or a file size limit was reached{where}: {exc.strerror or exc}; nothing "
                "partial was kept, free space (or raise the limit) and run the same command again")
    return f"{exc.strerror or exc}{where}"


def main(argv: list[str] | None = None) -> int:
    argv, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except UsageError as exc:
        _traceback(debug)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ReproError as exc:
        _traceback(debug)
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # disk full, permission denied, a path that does not exist: the user's to fix
        _traceback(debug)
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, the traceback only on request
        _traceback(debug)
        text = str(exc).strip().splitlines()
        print(f"error: internal error {type(exc).__name__}: {text[0] if text else ''} (a bug in repro; rerun "
              "with --debug for the traceback and report it)", file=sys.stderr)
        return 1


def _traceback(debug: bool) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
