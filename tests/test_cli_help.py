"""Every `repro` command's --help exits 0; a bad command line is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from repro.cli import build_parser, main

# Sub-commands that hand every argument to another tool (their --help is that tool's).
PASSTHROUGH = {("mergekit-yaml",), ("lm-eval",)}


def _command_paths(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                yield path
                yield from _command_paths(sub, path)


COMMANDS = sorted(set(_command_paths(build_parser())))


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help exits through argparse (or click, for mergekit-yaml)
            code = exc.code or 0
    return code, out.getvalue(), err.getvalue()


def test_the_parser_has_every_area():
    top = {path[0] for path in COMMANDS}
    assert {"merge", "evaluate", "run", "report", "plan", "download", "lock", "verify", "data"} <= top
    assert ("report", "table1") in COMMANDS and ("lock", "resolve") in COMMANDS


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "repro")
def test_help_exits_0(path):
    code, out, err = _run([*path, "--help"])
    assert code == 0, err
    assert "Traceback" not in out + err
    if tuple(path) not in PASSTHROUGH:
        assert out.startswith("usage: repro"), out[:200]


@pytest.mark.parametrize("argv", [
    ["merge", "--bogus"],
    ["no-such-command"],
    ["report", "table1"],
    ["run", "--config"],
    ["plan", "--config", "x.yaml", "--budget-gpu-hours", "many"],
    [],
])
def test_argument_errors_are_one_line_and_exit_2(argv):
    code, out, err = _run(argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: repro"), err
    assert "usage:" not in err and "Traceback" not in err


def test_old_output_flags_are_hidden_aliases():
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--model", "m", "--tasks", "t", "--out-dir", "somewhere"])
    assert str(args.out_dir) == "somewhere"
    args = parser.parse_args(["evaluate", "--model", "m", "--tasks", "t", "--out", "elsewhere"])
    assert str(args.out_dir) == "elsewhere"
    args = parser.parse_args(["download", "--dest", "d"])
    assert str(args.dest) == "d"
    code, out, _ = _run(["download", "--help"])
    assert "--out DIR" in out and "--dest" not in out
    code, out, _ = _run(["evaluate", "--help"])
    assert "--out DIR" in out and "--out-dir" not in out
