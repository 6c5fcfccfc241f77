"""The front door: README.md and every docs page it links name only what exists.

Checked for README.md and every Markdown page reachable from it through relative links:
- every relative link points to an existing file (anchors ignored);
- every `make TARGET` is a Makefile target;
- every `repro SUB ... --flag` names sub-commands and options the parser has;
- every repository path written in backticks exists (outputs under runs/ and paper_artifacts/<config>/,
  and paths with placeholders, are not files of the repository);
- no page speaks of how the kit was developed or points outside the repository;
and docs/cli.md is exactly what tools/cli_reference.py generates from the parser.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repro.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GENERATED = {ROOT / "docs" / "cli.md"}  # generated from the parser itself (checked below)

DEVELOPMENT_TALK = re.compile(
    r"build machine|previous engine|earlier engine|other sessions|this session|\bthis issue\b|"
    r"\.\./shared|/work/shared", re.I)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PLACEHOLDER = re.compile(r"[<>*{}…]|\.\.\.|\bX\b|\bDIR\b|\bNAME\b|\$")
PATH_LIKE = re.compile(r"^[\w.\-/]+$")


def _linked_pages() -> list[Path]:
    pages, todo = [], [README]
    while todo:
        page = todo.pop()
        if page in pages or not page.is_file():
            continue
        pages.append(page)
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target.split("#")[0]).resolve()
            if path.suffix == ".md" and ROOT in path.parents:
                todo.append(path)
    return pages


PAGES = _linked_pages()


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) + ("/" if path.is_dir() else "")


def _links(page: Path):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        target = target.split("#")[0]
        resolved = (page.parent / target).resolve()
        rel = str(resolved.relative_to(ROOT)) + ("/" if target.endswith("/") else "")
        yield rel, resolved


def _commands(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    spans = CODE_SPAN.findall(re.sub(r"```.*?```", "", text, flags=re.S))
    blocks = [line.strip() for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
              for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines()]  # a continued line is one command
    commands = [re.split(r"\s{2,}", s.strip())[0] for s in [*spans, *blocks]]  # drop a block line's comment
    return [c for c in commands if re.match(r"^(make|repro) ", c)]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z0-9_.-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check_repro(command: str, parser: argparse.ArgumentParser) -> list[str]:
    words = command.split("#")[0].split()[1:]
    options, node, problems = set(parser._option_string_actions), parser, []
    parent, alternative = parser, False
    for word in words:
        if word == "|":  # `check | resolve`: the next word is an alternative to the previous sub-command
            alternative = True
            continue
        word = word.strip("[]()|,")
        if not word:
            continue
        if alternative and not word.startswith("-"):
            node, alternative = parent, False
        subs = _subparsers(node)
        if word.startswith("-"):
            flag = word.split("=")[0]
            if flag not in options and flag not in node._option_string_actions:
                problems.append(f"`{command}`: no option {flag} in `{node.prog}`")
        elif subs and word in subs:
            parent, node = node, subs[word]
            options |= set(node._option_string_actions)
            if word in ("lm-eval", "mergekit-yaml"):  # every further argument belongs to the stock tool
                break
        elif subs and re.match(r"^[a-z][a-z0-9-]*$", word) and not PLACEHOLDER.search(word):
            # a word where a sub-command is expected (alternatives like `check | resolve` are each checked)
            problems.append(f"`{command}`: `{node.prog}` has no sub-command {word!r}")
    return problems


def _repo_paths(page: Path) -> list[str]:
    config_names = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    found = []
    for span in CODE_SPAN.findall(text):
        span = span.strip()
        if " " in span or PLACEHOLDER.search(span) or not PATH_LIKE.match(span):
            continue
        if "/" not in span or not (ROOT / span.split("/")[0]).exists():
            continue  # a bare file name, or a path inside some other folder (e.g. a model's)
        if span.startswith(("runs/", "/", "http")) or "=" in span:
            continue
        parts = span.split("/")
        if parts[0] == "paper_artifacts" and len(parts) > 1 and parts[1] in config_names | {"verify"} \
                and parts[1] != "demo":
            continue  # rendered by a command, not a file of the repository
        if parts[0] == "docs" and len(parts) > 2 and parts[1] == "benchmarks":
            continue  # written by the benchmarks
        found.append(span)
    return found


def test_readme_is_short_and_opens_with_the_essentials():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)
    first_screen = "\n".join(lines[:70])
    assert "make demo" in first_screen and "make test" in first_screen and "What it costs" in first_screen


def test_gpu_block_markers_follow_the_fresh_machine_commands():
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- reviewer-gpu:begin -->", "<!-- reviewer-gpu:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    assert text.index("make test") < text.index(begin) < text.index(end) < text.index("## For reviewers")
    assert [line for line in text.splitlines() if line.strip() in (begin, end)] == [begin, end]


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_links_exist(page):
    missing = [rel for rel, path in _links(page) if not path.exists()]
    assert missing == []


@pytest.mark.parametrize("page", [p for p in PAGES if p not in GENERATED], ids=_rel)
def test_commands_exist(page):
    targets, parser, problems = _make_targets(), build_parser(), []
    for command in _commands(page):
        if command.startswith("make "):
            try:  # quoted make variables (REPRODUCE_ARGS="--gpus all") are one word
                words = shlex.split(command.split("#")[0])
            except ValueError:
                words = command.split("#")[0].split()
            skip_next = False
            for word in words[1:]:
                word = word.strip("`,;()")
                if skip_next:  # the argument of make's -o/-f/-C option
                    skip_next = False
                    continue
                if word in ("-o", "-f", "-C"):
                    skip_next = True
                    continue
                if word.startswith("-") or "=" in word or not word:
                    continue
                if "*" in word or word.isupper():  # a placeholder: reproduce-*, TARGET
                    continue
                if word not in targets:
                    problems.append(f"`{command}`: no make target {word!r}")
        else:
            problems += _check_repro(command, parser)
    assert problems == []


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_paths_exist(page):
    missing = [p for p in _repo_paths(page) if not (ROOT / p).exists()
               and not (page.parent / p).exists()]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_pages_speak_of_the_kit_only(page):
    hits = [m.group(0) for m in DEVELOPMENT_TALK.finditer(page.read_text(encoding="utf-8"))]
    assert hits == []


def test_no_file_points_outside_the_repository():
    if shutil.which("git") is None:
        pytest.skip("git is not installed (the image has none)")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".png", ".pdf", ".gz") or not path.is_file() or name == "tests/test_docs.py":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if "../shared" in text or "/work/shared" in text:
            offenders.append(name)
    assert offenders == []


def test_cli_reference_is_generated_from_the_parser():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_reference.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_link_checker_finds_what_is_missing(tmp_path):
    """The checks above are not vacuous: a page with a broken link, target, option and path fails them."""
    page = ROOT / "docs" / "_probe_for_test.md"
    page.write_text("[x](nowhere.md) `make no-such-target` `repro merge --no-such-flag` `configs/nope.yaml`\n")
    try:
        assert [rel for rel, path in _links(page) if not path.exists()] == ["docs/nowhere.md"]
        commands = _commands(page)
        assert "make no-such-target" in commands
        assert _check_repro("repro merge --no-such-flag", build_parser())
        assert _check_repro("repro nonsense --config X", build_parser())
        assert not _check_repro("repro lock check | resolve --as-of config", build_parser())
        assert _repo_paths(page) == ["configs/nope.yaml"]
    finally:
        page.unlink()
    assert len(PAGES) >= 5
