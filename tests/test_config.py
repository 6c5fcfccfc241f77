"""Config validation: good configs load; every malformed variant is one clear ConfigError (file + field)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.errors import ConfigError
from repro.facts.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_load():
    smoke = load_config(ROOT / "configs/smoke.yaml")
    assert smoke.base_names == ["tiny-llama", "tiny-qwen3"]
    paper = load_config(ROOT / "configs/paper.yaml")
    assert paper.base_names == ["llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b"]
    assert [m.name for m in paper.config.methods] == [
        "task_arithmetic", "ties", "model_stock", "tsv_m", "iso_c", "task_arithmetic_sb", "ties_sb"]
    assert paper.config.merge.sizes == [2, 4, 6, 8, 10, 12]
    assert paper.config.evaluation.dtype == "float16" and paper.config.evaluation.batch_size == "auto"


def _variant(tmp_path, mutate, name="paper.yaml"):
    """A copy of configs/<name> in tmp_path/configs with `mutate(data)` applied (plus lockfile and suites)."""
    (tmp_path / "configs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "checkpoints.lock", tmp_path / "checkpoints.lock")
    shutil.copy(ROOT / "configs/suites.yaml", tmp_path / "configs/suites.yaml")
    if (ROOT / "tasks").exists() and not (tmp_path / "tasks").exists():
        shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    data = yaml.safe_load((ROOT / "configs" / name).read_text())
    mutate(data)
    path = tmp_path / "configs" / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d.update(unknown_key=1), "unknown_key", "unknown key"),
        (lambda d: d["merge"].update(sizes=[1, 2]), "merge.sizes", ">= 2"),
        (lambda d: d["merge"].update(subsets_per_size=0), "merge.subsets_per_size", "greater than"),
        (lambda d: d["methods"][1].update(name="tiez"), "methods[1]", "ties"),
        (lambda d: d["methods"][0]["params"].update(lamda=1.0), "methods[0]", "lamda"),
        (lambda d: d.update(bases=["llama-3.2-3b", "mistral-7b"]), "bases[1]", "mistral-7b"),
        (lambda d: d["evaluation"].update(suite="nope"), "evaluation.suite", "nope"),
        (lambda d: d["evaluation"].update(dtype="float8"), "evaluation.dtype", "float16"),
        (lambda d: d.pop("seed"), "seed", "missing"),
        (lambda d: d["merge"].update(sizes=[2, 13]), "merge.sizes", "exceeds"),
    ],
)
def test_malformed_config_is_one_clear_error(tmp_path, mutate, field, words):
    path = _variant(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and field in message and words in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nseed: [1, 2\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_cli_exit_code_2_and_nothing_written(tmp_path):
    path = _variant(tmp_path, lambda d: d["methods"].append({"name": "dare_linear", "params": {}}))
    before = sorted(p for p in tmp_path.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "plan", "--config", str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "methods[7]" in lines[0] and "dare_linear" in lines[0] and str(path) in lines[0]
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_homogeneous_config_reuses_the_papers_methods():
    paper = load_config(ROOT / "configs/paper.yaml")
    homogeneous = load_config(ROOT / "configs/homogeneous.yaml")
    assert homogeneous.config.methods == paper.config.methods


def test_methods_and_methods_from_together_is_an_error(tmp_path):
    path = _variant(tmp_path, lambda d: d.update(methods_from="paper.yaml"))
    with pytest.raises(ConfigError, match="methods_from"):
        load_config(path)
