"""Bad input gets one clear answer: every problem of a config or lockfile, one line each, unknown keys
first with "did you mean"; every CLI command exits 2 on a user error, with a traceback only under --debug;
property-based fuzzing (hypothesis) of both parsers never crashes, only raises their typed error.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro.cli import build_parser, main
from repro.errors import ConfigError, LockError
from repro.facts.config import load_config
from repro.facts.lockfile import parse_lockfile

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
PAPER = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
SHA = "0" * 64
SMALL_LOCK = {
    "version": 1,
    "checkpoints": {
        "org/base": {"revision": "a" * 40, "gated": False, "files": [{"path": "config.json", "sha256": SHA, "size": 3}]},
        "org/ft-a": {"revision": None, "gated": False, "files": []},
        "org/ft-b": {"revision": None, "gated": True, "files": []},
    },
    "bases": {"tiny": {"model": "org/base", "in_the_wild": ["org/ft-a", "org/ft-b"], "homogeneous": {"math": ["org/ft-a"]}}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder (configs/, tasks/, checkpoints.lock) in which configs can be written and loaded."""
    root = tmp_path_factory.mktemp("project")
    (root / "configs").mkdir()
    shutil.copy(ROOT / "configs/suites.yaml", root / "configs/suites.yaml")
    shutil.copy(ROOT / "checkpoints.lock", root / "checkpoints.lock")
    shutil.copytree(ROOT / "tasks", root / "tasks")
    return root


def write_config(project: Path, data, name: str = "x.yaml") -> Path:
    path = project / "configs" / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def misspell(key: str) -> str:
    """A typo a user makes: two neighbouring letters swapped (or the last one doubled)."""
    for i in [*range(len(key) // 2, len(key)), *range(1, len(key) // 2)]:
        if key[i] != key[i - 1]:
            return key[:i - 1] + key[i] + key[i - 1] + key[i + 1:]
    return key + key[-1]


# -- unknown keys first, with "did you mean" -------------------------------------------------------------

TOP_KEYS = [(name, key) for name, data in (("smoke", SMOKE), ("paper", PAPER)) for key in data]


@pytest.mark.parametrize("source,key", TOP_KEYS, ids=[f"{s}-{k}" for s, k in TOP_KEYS])
def test_a_single_misspelt_top_level_key_is_named_with_its_fix(project, reliability_log, source, key):
    data = copy.deepcopy(SMOKE if source == "smoke" else PAPER)
    data[misspell(key)] = data.pop(key)
    path = write_config(project, data, f"{source}-{key}.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    ok = f"unknown key {misspell(key)!r}; did you mean `{key}`?" in lines[0]
    ok = ok and not any(f": {key}: required" in line for line in lines)  # folded into the unknown key
    reliability_log("bad_input", f"config-misspelt-{source}-{key}", ok, message=lines[0])
    assert f"{path}: {misspell(key)}: unknown key" in lines[0], lines
    assert f"did you mean `{key}`" in lines[0], lines
    assert not any(f": {key}: required" in line for line in lines), lines


def test_every_problem_one_line_each_unknown_keys_first(project, reliability_log):
    data = copy.deepcopy(SMOKE)
    data["sede"] = data.pop("seed")
    data["merge"]["sizez"] = data["merge"].pop("sizes")
    data["evaluation"]["dtype"] = "float8"
    data["methods"][0]["params"]["lamda"] = 1.0
    data["methods"].append({"name": "tiez", "params": {}})
    path = write_config(project, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    reliability_log("bad_input", "config-five-problems", len(lines) == 5, lines=len(lines))
    assert len(lines) == 5, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "unknown key" in lines[0] and "unknown key" in lines[1]
    text = "\n".join(lines)
    for needle in ("did you mean `seed`", "did you mean `sizes`", "evaluation.dtype", "float8",
                   "methods[0].params.lamda", "did you mean 'lambda'", "methods[1].name", "'ties'"):
        assert needle in text, text


LOCK_CASES = [
    ("dotdot-file", lambda d: d["checkpoints"]["org/base"]["files"][0].update(path="../../etc/passwd"), "plain relative"),
    ("absolute-file", lambda d: d["checkpoints"]["org/base"]["files"][0].update(path="/etc/passwd"), "plain relative"),
    ("nul-in-file", lambda d: d["checkpoints"]["org/base"]["files"][0].update(path="config\x00.json"), "control"),
    ("newline-in-file", lambda d: d["checkpoints"]["org/base"]["files"][0].update(path="a\nb"), "control"),
    ("backslash-file", lambda d: d["checkpoints"]["org/base"]["files"][0].update(path="..\\x"), "plain relative"),
    ("dotdot-repo-id", lambda d: d["checkpoints"].__setitem__("org/..", {"files": []}), "repo id"),
    ("misspelt-key", lambda d: d["checkpoints"]["org/ft-a"].update(revison=d["checkpoints"]["org/ft-a"].pop("revision")),
     "did you mean `revision`"),
    ("unknown-reference", lambda d: d["bases"]["tiny"]["in_the_wild"].append("org/ft-c"), "did you mean"),
    ("duplicate-in-pool", lambda d: d["bases"]["tiny"]["in_the_wild"].append("org/ft-a"), "listed twice"),
    ("bad-sha", lambda d: d["checkpoints"]["org/base"]["files"][0].update(sha256="xyz"), "64 lowercase hex"),
    ("branch-revision", lambda d: d["checkpoints"]["org/base"].update(revision="main"), "40-hex"),
]


@pytest.mark.parametrize("case,mutate,words", LOCK_CASES, ids=[c[0] for c in LOCK_CASES])
def test_bad_lockfile_is_refused_naming_the_field(reliability_log, case, mutate, words):
    data = copy.deepcopy(SMALL_LOCK)
    mutate(data)
    with pytest.raises(LockError) as info:
        parse_lockfile(yaml.safe_dump(data), "x.lock")
    reliability_log("bad_input", f"lockfile-{case}", words in str(info.value), message=str(info.value))
    assert words in str(info.value) and str(info.value).startswith("x.lock: ")


def test_duplicate_ids_in_lockfile_and_config_are_refused(project, reliability_log):
    text = yaml.safe_dump(SMALL_LOCK, sort_keys=False)
    duplicated = text.replace("  org/ft-b:\n", "  org/ft-a:\n")
    with pytest.raises(LockError, match="duplicate key 'org/ft-a'"):
        parse_lockfile(duplicated)
    config = (ROOT / "configs/smoke.yaml").read_text() + "seed: 3\n"
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(write_config(project, config))
    reliability_log("bad_input", "lockfile-duplicate-id", True)
    reliability_log("bad_input", "config-duplicate-key", True)


CONFIG_CASES = [
    ("unknown-method", lambda d: d["methods"].append({"name": "dare_ties", "params": {}}), "unknown merge method"),
    ("unknown-parameter", lambda d: d["methods"][0]["params"].update(density=0.5), "takes no parameter 'density'"),
    ("bad-parameter-value", lambda d: d["methods"][0]["params"].update(weight="heavy"), "must be a number"),
    ("n-larger-than-pool", lambda d: d["merge"].update(sizes=[2, 7]), "exceeds"),
    ("n-below-two", lambda d: d["merge"].update(sizes=[1]), ">= 2"),
    ("unknown-suite", lambda d: d["evaluation"].update(suite="smok"), "unknown suite"),
    ("both-world-and-lockfile", lambda d: d.update(lockfile="checkpoints.lock"), "exactly one"),
    ("not-a-mapping", lambda d: d.update(merge=[1, 2]), "merge"),
]


@pytest.mark.parametrize("case,mutate,words", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_refused_naming_the_field(project, reliability_log, case, mutate, words):
    data = copy.deepcopy(SMOKE)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(project, data))
    reliability_log("bad_input", f"config-{case}", words in str(info.value), message=str(info.value))
    assert words in str(info.value)


def test_n_larger_than_a_lockfile_pool_names_the_base(project, reliability_log):
    data = copy.deepcopy(PAPER)
    data["merge"]["sizes"] = [2, 13]
    with pytest.raises(ConfigError) as info:
        load_config(write_config(project, data))
    lines = str(info.value).splitlines()
    reliability_log("bad_input", "config-n-larger-than-lockfile-pool", len(lines) == len(PAPER["bases"]))
    assert len(lines) == len(PAPER["bases"])  # one line per base whose pool is too small
    assert all("merge size 13 exceeds the 12 checkpoints" in line for line in lines)


# -- every CLI command: exit 2, no traceback (unless --debug) ---------------------------------------------


def _leaf_commands(parser: argparse.ArgumentParser, prefix=()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(_leaf_commands(sub, (*prefix, name)))
    if not out and prefix:
        out[prefix] = parser
    return out


def _bad_argv(project: Path, command: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str] | None:
    options = {opt for action in parser._actions for opt in action.option_strings}
    broken_config = write_config(project, {**SMOKE, "sed": 1}, "broken.yaml")
    broken_lock = project / "broken.lock"
    broken_lock.write_text("version: 1\ncheckpoints: {}\nbases: {tiny: {model: org/x, in_the_wild: [org/y]}}\n")
    broken_suites = project / "broken-suites.yaml"
    broken_suites.write_text("suites: [unterminated\n")
    missing = str(project / "does-not-exist")
    if command == ("merge",):
        return ["merge", "--base", missing, "--model", missing + "2", "--method", "task_arithmetic", "--out",
                str(project / "out")]
    if command == ("evaluate",):
        return ["evaluate", "--model", missing, "--suite", "smoke", "--no-store"]
    if command == ("mergekit-yaml",):
        return None  # stock mergekit's own CLI, passed through unchanged
    if "--config" in options:
        return [*command, "--config", str(broken_config)]
    if "--lockfile" in options:
        return [*command, "--lockfile", str(broken_lock)]
    if "--suites" in options:
        extra = ["--suite", "smoke"] if any("--suite" in a.option_strings and a.required for a in parser._actions) else []
        return [*command, "--suites", str(broken_suites), *extra]
    return None


def test_every_cli_command_exits_2_without_traceback_on_bad_input(project, capsys, reliability_log):
    commands = _leaf_commands(build_parser())
    tried = 0
    for command, parser in sorted(commands.items()):
        argv = _bad_argv(project, command, parser)
        if argv is None:
            continue
        code = main(argv)
        err = capsys.readouterr().err
        ok = code == 2 and "Traceback" not in err and err.startswith("error: ")
        reliability_log("bad_input", "cli-" + "-".join(command), ok, message=err.strip().splitlines()[:1])
        assert ok, (argv, code, err)
        tried += 1
        code = main(["--debug", *argv])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" in err, (argv, err)
    assert tried >= 10


def test_a_bug_is_one_line_exit_1_and_the_traceback_only_with_debug(capsys, monkeypatch):
    import repro.cli.run_commands as run_commands

    def broken(args):
        raise KeyError("bug")

    monkeypatch.setattr(run_commands, "load_for_cli", broken)
    assert main(["plan", "--config", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert "internal error KeyError" in err and "--debug" in err and "Traceback" not in err
    assert main(["plan", "--config", "x.yaml", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


# -- property-based fuzzing: never a crash, only the typed error -------------------------------------------

# `make test`: 100 examples per property (fixed seed); `nox -s reliability` sets REPRO_FUZZ_EXAMPLES higher.
FUZZ = settings(max_examples=int(os.environ.get("REPRO_FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=list(HealthCheck), derandomize=True)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["..", "/etc/passwd", "a\x00b", "org/..", "", "main"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _fuzz_log(case: str, rejected: bool) -> None:
    """One line per fuzz example for the reliability summary (typed error or accepted: never a crash)."""
    path = os.environ.get("REPRO_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"category": "fuzz", "case": case, "ok": True, "rejected": rejected}) + "\n")


def _mutate(data, draw_path, value):
    """Replace (or add) the value at a random place of a nested structure."""
    node = data
    for choice in draw_path[:-1]:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        children = [(k, v) for k, v in children if isinstance(v, (dict, list))]
        if not children:
            break
        node = children[choice % len(children)][1]
    if isinstance(node, dict):
        keys = list(node) + ["extra_key"]
        node[keys[draw_path[-1] % len(keys)]] = value
    elif isinstance(node, list) and node:
        node[draw_path[-1] % len(node)] = value
    return data


@FUZZ
@given(text=st.text(max_size=400))
def test_fuzz_lockfile_arbitrary_text(text):
    try:
        parse_lockfile(text, "fuzz.lock")
    except LockError:
        return _fuzz_log("lockfile-text", True)
    _fuzz_log("lockfile-text", False)


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=5), value=values)
def test_fuzz_lockfile_mutated_structure(path, value):
    data = _mutate(copy.deepcopy(SMALL_LOCK), path, value)
    try:
        lock = parse_lockfile(yaml.safe_dump(data), "fuzz.lock")
    except LockError:
        return _fuzz_log("lockfile-structure", True)
    _fuzz_log("lockfile-structure", False)
    for entry in lock.checkpoints.values():  # whatever is accepted is safe to use as a path
        for f in entry.files:
            assert not f.path.startswith("/") and ".." not in f.path.split("/") and "\x00" not in f.path


@FUZZ
@given(name=st.text(min_size=1, max_size=30))
def test_fuzz_lockfile_file_names(name):
    data = copy.deepcopy(SMALL_LOCK)
    data["checkpoints"]["org/base"]["files"][0]["path"] = name
    try:
        lock = parse_lockfile(yaml.safe_dump(data), "fuzz.lock")
    except LockError:
        return _fuzz_log("lockfile-file-name", True)
    _fuzz_log("lockfile-file-name", False)
    accepted = lock.entry("org/base").files[0].path
    parts = accepted.split("/")
    assert not accepted.startswith("/") and ".." not in parts and "" not in parts
    assert all(ord(c) >= 32 for c in accepted)


_FUZZ_PROJECT = None


def _fuzz_project() -> Path:
    global _FUZZ_PROJECT
    if _FUZZ_PROJECT is None:
        root = Path(tempfile.mkdtemp(prefix="repro-fuzz-"))
        (root / "configs").mkdir()
        shutil.copy(ROOT / "configs/suites.yaml", root / "configs/suites.yaml")
        shutil.copy(ROOT / "checkpoints.lock", root / "checkpoints.lock")
        _FUZZ_PROJECT = root
    return _FUZZ_PROJECT


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_config_arbitrary_text(text):
    try:
        load_config(write_config(_fuzz_project(), text, "fuzz.yaml"))
    except ConfigError:
        return _fuzz_log("config-text", True)
    _fuzz_log("config-text", False)


@FUZZ
@given(source=st.sampled_from(["smoke", "paper"]), path=st.lists(st.integers(0, 50), min_size=1, max_size=5),
       value=values)
def test_fuzz_config_mutated_structure(source, path, value):
    data = _mutate(copy.deepcopy(SMOKE if source == "smoke" else PAPER), path, value)
    try:
        load_config(write_config(_fuzz_project(), data, "fuzz.yaml"))
    except (ConfigError, LockError):
        return _fuzz_log("config-structure", True)
    _fuzz_log("config-structure", False)
