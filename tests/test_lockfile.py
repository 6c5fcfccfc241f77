"""checkpoints.lock: the shipped file, every malformed variant, deterministic rewrite, `repro lock check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.cli import main
from repro.errors import LockError
from repro.facts.lockfile import CheckpointEntry, FileEntry, load_lockfile, parse_lockfile
from repro.facts.lockfile_writer import dump_lockfile, render_lockfile

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints.lock"
SHA1 = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "ab" * 32

PAPER_POOLS = {  # first and last in-the-wild checkpoint of each base (paper Appendix A)
    "llama-3.2-3b": (
        "MergeBench/Llama-3.2-3B-Instruct_instruction",
        "huihui-ai/Llama-3.2-3B-Instruct-abliterated",
    ),
    "llama-3.1-8b": ("mims-harvard/TxAgent-T1-Llama-3.1-8B", "tokyotech-llm/Llama-3.1-Swallow-8B-v0.5"),
    "qwen3-4b": ("mlxha/Qwen3-4B-grpo-medmcqa", "prithivMLmods/Draconis-Qwen3_Math-4B-Preview"),
    "qwen3-8b": ("Trendyol/Trendyol-LLM-8B-T1", "Vikhrmodels/QVikhr-3-8B-Instruction"),
}

SMALL = """\
# a tiny lockfile
version: 1
checkpoints:
  org/base:
    revision: null
    gated: false
    files: []
  org/ft-a:
    revision: null
    gated: false
    files: []
  org/ft-b:
    revision: null
    gated: false
    files: []
bases:
  tiny:
    model: org/base
    in_the_wild:
      - org/ft-a
      - org/ft-b
    homogeneous: {}
"""


def test_shipped_lockfile_has_the_papers_counts_and_order():
    lock = load_lockfile(SHIPPED)
    summary = lock.summary()
    assert (summary.bases, summary.in_the_wild, summary.homogeneous, summary.checkpoints) == (4, 48, 12, 62)
    assert summary.unresolved == 62
    assert list(lock.bases) == ["llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b"]
    models = [b.model for b in lock.bases.values()]
    assert models == [
        "meta-llama/Llama-3.2-3B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen3-4B",
        "Qwen/Qwen3-8B",
    ]
    for name, (first, last) in PAPER_POOLS.items():
        pool = lock.pool(name)
        assert len(pool) == 12 and pool[0].repo_id == first and pool[11].repo_id == last
    assert lock.pool("llama-3.1-8b")[9].repo_id == "AIDX-ktds/ktdsbaseLM-v0.13-onbased-llama3.1"
    assert [e.repo_id for e in lock.group("qwen3-4b", "medical")][1] == "mlxha/Qwen3-4B-grpo-medmcqa"
    assert lock.group("qwen3-4b", "math")[0] is lock.pool("qwen3-4b")[11]  # one entry, referenced twice
    assert set(lock.bases["qwen3-8b"].homogeneous) == {"math", "medical"}
    assert lock.bases["llama-3.2-3b"].homogeneous == {}
    gated = sorted(r for r, e in lock.checkpoints.items() if e.gated)
    assert gated == ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"]


def test_shipped_lockfile_is_in_canonical_form():
    assert render_lockfile(load_lockfile(SHIPPED)) == SHIPPED.read_text(encoding="utf-8")


def test_dump_is_deterministic_and_round_trips(tmp_path):
    lock = parse_lockfile(SMALL)
    entry = CheckpointEntry(
        repo_id="org/ft-b",
        revision=SHA1,
        gated=True,
        files=[
            FileEntry(path="z.safetensors", sha256=SHA256, size=5),
            FileEntry(path="config.json", sha256="c" * 64, size=2),
        ],
    )
    resolved = lock.with_entry(entry)
    first, second = tmp_path / "a.lock", tmp_path / "b.lock"
    dump_lockfile(resolved, first)
    dump_lockfile(load_lockfile(first), second)
    assert first.read_bytes() == second.read_bytes()
    assert load_lockfile(first) == resolved
    assert [f.path for f in load_lockfile(first).entry("org/ft-b").files] == ["config.json", "z.safetensors"]
    assert first.read_text().startswith("# a tiny lockfile\n")  # header kept
    assert lock.unresolved() == ["org/base", "org/ft-a", "org/ft-b"] and resolved.unresolved() == [
        "org/base",
        "org/ft-a",
    ]
    assert not list(tmp_path.glob(".*.tmp"))


def test_checkpoints_are_written_in_first_reference_order():
    entries = "checkpoints:\n  org/ft-b: {}\n  org/ft-a: {gated: true}\n  org/base: {}\nbases:\n"
    text = SMALL.split("checkpoints:\n")[0] + entries + SMALL.split("bases:\n")[1]
    lock = parse_lockfile(text)
    assert list(lock.checkpoints) == ["org/ft-b", "org/ft-a", "org/base"]
    rendered = render_lockfile(lock)
    order = [
        line.strip().rstrip(":")
        for line in rendered.split("bases:")[0].splitlines()
        if line.startswith("  org/")
    ]
    assert order == ["org/base", "org/ft-a", "org/ft-b"]
    assert parse_lockfile(rendered) == lock


def _edit(old: str, new: str) -> str:
    assert old in SMALL, old
    return SMALL.replace(old, new, 1)


MALFORMED = [
    ("yaml syntax", _edit("in_the_wild:\n", "in_the_wild: [\n"), None, "not valid YAML at line"),
    ("empty", "", None, "empty"),
    ("not a mapping", "- a\n- b\n", None, "expected a mapping"),
    ("unknown top key", SMALL + "extra: 1\n", "extra", "unknown key 'extra'"),
    (
        "unknown entry key",
        _edit("    gated: false\n", "    gated: false\n    sha: x\n"),
        "checkpoints.org/base.sha",
        "unknown key",
    ),
    (
        "unknown base key",
        _edit("    homogeneous: {}\n", "    homogeneous: {}\n    pool: []\n"),
        "bases.tiny.pool",
        "unknown key",
    ),
    ("missing version", SMALL.replace("version: 1\n", ""), "version", "required key is missing"),
    (
        "wrong version",
        SMALL.replace("version: 1\n", "version: 2\n"),
        "version",
        "unsupported lockfile version 2",
    ),
    (
        "revision not hex",
        _edit("revision: null", "revision: main"),
        "checkpoints.org/base.revision",
        "40-hex",
    ),
    (
        "revision short",
        _edit("revision: null", "revision: '0123abc'"),
        "checkpoints.org/base.revision",
        "40-hex",
    ),
    (
        "revision int",
        _edit("revision: null", "revision: 1234"),
        "checkpoints.org/base.revision",
        "valid string",
    ),
    ("gated not bool", _edit("gated: false", "gated: maybe"), "checkpoints.org/base.gated", "valid boolean"),
    (
        "sha256 not hex",
        _edit("files: []", f"files: [{{path: config.json, sha256: '{'g' * 64}', size: 3}}]"),
        "checkpoints.org/base.files[0].sha256",
        "64 lowercase hex",
    ),
    (
        "negative size",
        _edit("files: []", f"files: [{{path: config.json, sha256: '{SHA256}', size: -1}}]"),
        "checkpoints.org/base.files[0].size",
        "greater than or equal to 0",
    ),
    (
        "file path escapes",
        _edit("files: []", f"files: [{{path: ../x.json, sha256: '{SHA256}', size: 1}}]"),
        "checkpoints.org/base.files[0].path",
        "plain relative path",
    ),
    (
        "file listed twice",
        _edit(
            "files: []",
            f"files: [{{path: a, sha256: '{SHA256}', size: 1}}, {{path: a, sha256: '{SHA256}', size: 1}}]",
        ),
        "checkpoints.org/base.files",
        "listed twice",
    ),
    (
        "duplicate checkpoint key",
        SMALL.replace("  org/ft-b:\n", "  org/ft-a:\n"),
        None,
        "duplicate key 'org/ft-a'",
    ),
    ("duplicate base key", SMALL + "  tiny:\n    model: org/base\n", None, "duplicate key 'tiny'"),
    (
        "bad repo id",
        SMALL.replace("org/ft-b", "AIDX-kt ds/kt dsbaseLM"),
        "checkpoints.AIDX-kt ds/kt dsbaseLM.repo_id",
        "<org>/<name>",
    ),
    (
        "unknown reference",
        _edit("      - org/ft-b\n", "      - org/ft-c\n"),
        "bases.tiny.in_the_wild[1]",
        "'org/ft-c' is not in `checkpoints`",
    ),
    (
        "unknown model",
        _edit("model: org/base", "model: org/nope"),
        "bases.tiny.model",
        "not in `checkpoints`",
    ),
    (
        "listed twice",
        _edit("      - org/ft-b\n", "      - org/ft-a\n"),
        "bases.tiny.in_the_wild[1]",
        "listed twice",
    ),
    (
        "base in its pool",
        _edit("      - org/ft-b\n", "      - org/base\n"),
        "bases.tiny.in_the_wild[1]",
        "base model itself",
    ),
    ("unreferenced entry", _edit("      - org/ft-b\n", ""), "checkpoints.org/ft-b", "no base references"),
    (
        "empty pool",
        _edit("      - org/ft-a\n      - org/ft-b\n", "      []\n"),
        "bases.tiny.in_the_wild",
        "at least 1",
    ),
    (
        "pool not a list",
        _edit("    in_the_wild:\n      - org/ft-a\n      - org/ft-b\n", "    in_the_wild: org/ft-a\n"),
        "bases.tiny.in_the_wild",
        "valid list",
    ),
    ("no bases", SMALL.split("bases:")[0] + "bases: {}\n", "bases", "at least 1"),
    (
        "homogeneous unknown",
        _edit("homogeneous: {}", "homogeneous: {math: [org/ft-a, org/zzz]}"),
        "bases.tiny.homogeneous.math[1]",
        "not in `checkpoints`",
    ),
    (
        "homogeneous empty group",
        _edit("homogeneous: {}", "homogeneous: {math: []}"),
        "bases.tiny.homogeneous.math",
        "at least one",
    ),
    ("bad base name", SMALL.replace("  tiny:\n", "  'tiny base':\n"), "bases.tiny base", "base name"),
]


@pytest.mark.parametrize("label,text,field,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_lockfile_names_every_problem_one_line_each(tmp_path, label, text, field, message):
    path = tmp_path / "checkpoints.lock"
    path.write_text(text)
    with pytest.raises(LockError) as info:
        load_lockfile(path)
    error = info.value
    assert error.path == str(path)
    assert error.field == field
    assert message in str(error).splitlines()[0], str(error)
    assert all(line.startswith(f"{path}: ") for line in str(error).splitlines())  # one problem per line


def test_shipped_lockfile_variant_names_paper_position(tmp_path):
    text = SHIPPED.read_text().replace(
        "      - Menlo/Jan-nano\n", "      - Menlo/Jan-nano\n      - Menlo/Jan-nano\n", 1
    )
    path = tmp_path / "checkpoints.lock"
    path.write_text(text)
    with pytest.raises(LockError) as info:
        load_lockfile(path)
    assert info.value.field == "bases.qwen3-4b.in_the_wild[2]"


def test_missing_lockfile_and_unknown_base(tmp_path):
    with pytest.raises(LockError, match="lockfile not found"):
        load_lockfile(tmp_path / "nope.lock")
    lock = parse_lockfile(SMALL)
    with pytest.raises(LockError, match="unknown base 'big'; known bases: tiny"):
        lock.pool("big")
    with pytest.raises(LockError, match="no homogeneous group"):
        lock.group("tiny", "math")


def test_cli_lock_check_prints_counts(capsys):
    assert main(["lock", "check", "--lockfile", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert "4 bases, 48 in-the-wild, 12 homogeneous references, 62 checkpoints; 62 unresolved" in out
    assert "repro lock resolve" in out


def test_cli_lock_check_invalid_is_exit_2_one_line(tmp_path, capsys):
    path = tmp_path / "checkpoints.lock"
    path.write_text(_edit("revision: null", "revision: main"))
    before = path.read_bytes()
    assert main(["lock", "check", "--lockfile", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "checkpoints.org/base.revision" in lines[0]
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints.lock"]


def test_cli_lock_check_unknown_base_is_exit_2(capsys):
    assert main(["lock", "check", "--lockfile", str(SHIPPED), "--base", "gpt-5"]) == 2
    assert "unknown base 'gpt-5'" in capsys.readouterr().err
