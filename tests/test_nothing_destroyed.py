"""Nothing destroyed by surprise: --out refuses folders the kit did not write, YAML alias bombs are refused
fast, and `make clean` removes exactly what `make help` says."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from repro.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _merge_argv(world, out: Path, *extra: str) -> list[str]:
    return ["merge", "--base", str(world.base), "--model", str(world.checkpoints[0]), "--model",
            str(world.checkpoints[1]), "--method", "task_arithmetic", "--out", str(out), *extra]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_merge_out_refuses_a_folder_of_user_files(tiny_llama_world, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2\n")
    before = _snapshot(out)
    for extra in ((), ("--overwrite",)):  # --overwrite is only for the kit's own outputs
        assert main(_merge_argv(tiny_llama_world, out, *extra)) == 2
        line = _one_error_line(capsys)
        assert str(out) in line and "--out" in line
        assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temp folder left beside it


def test_merge_out_replaces_its_own_output_only_with_overwrite(tiny_llama_world, tmp_path, capsys):
    out = tmp_path / "merged"
    assert main(_merge_argv(tiny_llama_world, out)) == 0
    capsys.readouterr()
    first = _snapshot(out)
    assert "repro_merge.json" in first
    assert main(_merge_argv(tiny_llama_world, out)) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert _snapshot(out) == first
    assert main(_merge_argv(tiny_llama_world, out, "--overwrite")) == 0
    assert (out / "repro_merge.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_merge_argv(tiny_llama_world, empty)) == 0  # an empty folder is fine


def test_report_out_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "table6.md").write_text("my own notes")
    before = _snapshot(out)
    assert main(["report", "table6", "--out", str(out)]) == 2
    assert str(out) in _one_error_line(capsys)
    assert _snapshot(out) == before
    fresh = tmp_path / "fresh"
    assert main(["report", "table6", "--out", str(fresh)]) == 0
    assert main(["report", "table6", "--out", str(fresh)]) == 0  # its own output: rendered again
    assert (fresh / "table6.md").is_file() and (fresh / ".repro-output.json").is_file()


def _bomb(levels: int = 9, width: int = 9) -> str:
    text = "x0: &x0 [" + ", ".join(["lol"] * width) + "]\n"
    for i in range(1, levels + 1):
        text += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]\n"
    return text


@pytest.mark.parametrize("kind", ["config", "lockfile"])
def test_an_alias_bomb_is_refused_in_under_a_second(tmp_path, capsys, kind):
    from repro.errors import ReproError
    from repro.facts.config import load_config
    from repro.facts.lockfile import load_lockfile

    path = tmp_path / ("bomb.yaml" if kind == "config" else "checkpoints.lock")
    path.write_text(_bomb())
    started = time.perf_counter()
    with pytest.raises(ReproError) as info:
        (load_config if kind == "config" else load_lockfile)(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in str(info.value) and "alias" in str(info.value)
    argv = ["plan", "--config", str(path)] if kind == "config" else ["lock", "check", "--lockfile", str(path)]
    started = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - started < 1.0
    assert "alias" in _one_error_line(capsys)


def test_small_aliases_and_merge_keys_still_load():
    from repro.facts.input_problems import load_yaml

    data = load_yaml("d: &d {lr: 0.1, steps: 2}\na: *d\nb: {<<: *d, seed: 3}\nl: [*d, *d]\n")
    assert data["a"] == {"lr": 0.1, "steps": 2} and data["b"] == {"lr": 0.1, "steps": 2, "seed": 3}
    assert len(data["l"]) == 2
    with pytest.raises(Exception, match="contains it"):
        load_yaml("x: &a [1, *a]\n")


def _help_line(target: str) -> str:
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*## (.*)$", text, re.M)
    assert match, target
    return match.group(1)


def test_make_clean_removes_exactly_the_smoke_and_demo_runs(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    configs = project / "configs"
    configs.mkdir()
    for config in ("smoke.yaml", "smoke_appendix.yaml", "demo.yaml", "demo_quick.yaml", "paper.yaml",
                   "reduced.yaml"):
        (configs / config).write_text("{}\n")
    made = {}
    for folder in ("runs/smoke", "runs/smoke_appendix", "runs/demo", "runs/demo_quick", "paper_artifacts/smoke",
                   "paper_artifacts/demo_quick", "runs/paper", "runs/reduced", "runs/models/meta-llama/x",
                   "runs/worlds/demo-llama-abc", "runs/downloads", "runs/data/mmlu", "paper_artifacts/paper",
                   "paper_artifacts/reference", "paper_artifacts/demo", "runs/bench"):
        (project / folder).mkdir(parents=True)
        (project / folder / "file").write_text(folder)
        made[folder] = project / folder
    subprocess.run(["make", "-s", "clean"], cwd=project, check=True, capture_output=True)
    gone = {name for name, path in made.items() if not path.exists()}
    assert gone == {"runs/smoke", "runs/smoke_appendix", "runs/demo", "runs/demo_quick",
                    "paper_artifacts/smoke", "paper_artifacts/demo_quick"}
    help_text = _help_line("clean")
    assert "smoke" in help_text and "demo" in help_text and "never" in help_text
    assert "clean-all" in help_text


def test_make_clean_all_asks_first(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "runs/paper").mkdir(parents=True)
    proc = subprocess.run(["make", "-s", "clean-all"], cwd=tmp_path, input="no\n", text=True, capture_output=True)
    assert proc.returncode != 0 and (tmp_path / "runs/paper").is_dir()
    subprocess.run(["make", "-s", "clean-all", "CONFIRM=yes"], cwd=tmp_path, check=True, capture_output=True)
    assert not (tmp_path / "runs").exists()


def test_download_never_replaces_a_model_folder_it_did_not_write(tiny_llama_world, tmp_path, capsys):
    from test_hostile_checkpoints import _lockfile

    root = tmp_path / "mirror"
    shutil.copytree(tiny_llama_world.base, root / "tiny/base")
    shutil.copytree(tiny_llama_world.checkpoints[0], root / "tiny/ft-1")
    lockfile = _lockfile(tmp_path, root)
    dest = tmp_path / "models"
    mine = dest / "tiny/ft-1"
    mine.mkdir(parents=True)
    (mine / "my-finetune-notes.md").write_text("mine")
    before = _snapshot(dest)
    argv = ["download", "--lockfile", str(lockfile), "--mirror", str(root), "--out", str(dest), "--repo", "tiny/ft-1"]
    assert main(argv) == 2
    assert str(mine) in _one_error_line(capsys)
    assert _snapshot(dest) == before
    shutil.rmtree(mine)
    assert main(argv) == 0  # a fresh folder: downloaded, and a rerun finds it present
    capsys.readouterr()
    assert main(argv) == 0
