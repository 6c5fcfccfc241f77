"""Method facts are stated once (repro.method_catalog, shaped like mergekit's ParameterSpec/InputContract);
the facts layer and the report import no model library; a new method is one file plus one registry line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from smoke_project import smoke_project, write_config

from repro.method_catalog import BUILTIN_METHODS, METHODS, get_method, resolve_method_params

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "mergekit", "lm_eval")


def _imported_after(code: str, env: dict | None = None) -> list[str]:
    script = code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_facts_layer_and_the_report_imports_no_model_library():
    report_modules = sorted(p.stem for p in (ROOT / "repro/report").glob("*.py") if p.stem != "__init__")
    imports = "\n".join(["import repro.facts.config", "import repro.report", "import repro.method_catalog",
                         "import repro.facts.suites", "import repro.facts.lockfile"]
                        + [f"import repro.report.{name}" for name in report_modules])
    assert _imported_after(imports) == []


def test_validating_a_config_and_planning_it_imports_no_model_library():
    code = ("from repro.facts.config import load_config\nfrom repro.plan import build_plan\n"
            "build_plan(load_config('configs/paper.yaml'))\nbuild_plan(load_config('configs/smoke.yaml'))")
    assert _imported_after(code) == []


def test_stock_method_facts_agree_with_mergekit_and_ours_build_their_spec_from_the_facts():
    from mergekit import merge_methods
    from mergekit.merge_methods.base import ParameterScope

    from repro.merge.mergekit_plugin import implementation
    from repro.merge.mergekit_specs import mergekit_spec

    for facts in BUILTIN_METHODS:
        if facts.ours:
            assert implementation(facts.name).spec == mergekit_spec(facts)
            continue
        stock = merge_methods.get(facts.mergekit_name).spec
        theirs = {p.name: p for p in stock.parameters}
        for parameter in facts.parameters:  # the study exposes a subset, with its own defaults
            assert parameter.name in theirs, (facts.name, parameter.name)
            assert theirs[parameter.name].value_type is parameter.type
            scope = ParameterScope.NON_BASE if parameter.per_model else ParameterScope.SHARED
            assert theirs[parameter.name].scope == scope, (facts.name, parameter.name)
        # mergekit counts the base among min_inputs
        assert max(stock.contract.min_inputs - 1, stock.contract.min_non_base or 0, 1) == facts.min_models


def test_the_engine_takes_the_minimum_number_of_models_from_the_facts(tiny_llama_world, tmp_path):
    from repro.errors import MergeError
    from repro.merge import merge_checkpoints

    assert get_method("model_stock").min_models == 2
    with pytest.raises(MergeError, match="at least 2 checkpoints"):
        merge_checkpoints(tiny_llama_world.base, tiny_llama_world.checkpoints[:1], "model_stock", out_dir=None)


TOY_METHOD = '''
"""A toy merge method: W0 + alpha * mean_i (W_i - W0)."""
from repro.method_catalog import MethodFacts, Parameter
from repro.merge.mergekit_specs import facts_merge_method

FACTS = MethodFacts(
    name="toy_scaled_mean", title="Toy scaled mean", reference="a test", description="W0 + alpha * mean delta",
    parameters=(Parameter("alpha", float, 0.5, minimum=0.0, maximum=2.0),),
    implementation="toy_method:toy_merge_method",
)


def toy_group(group, alpha):
    base = group.base.tensor.float()
    deltas = [entry.tensor.float() - base for entry in group.non_base]
    return (base + alpha * sum(deltas) / len(deltas)).to(group.base.tensor.dtype)


toy_merge_method = facts_merge_method(FACTS, toy_group)
'''


@pytest.fixture()
def toy_plugin(tmp_path):
    """One file (the method) and one registry line (its entry point), on PYTHONPATH."""
    site = tmp_path / "site"
    (site / "toy_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "toy_method.py").write_text(textwrap.dedent(TOY_METHOD))
    (site / "toy_plugin-0.1.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (site / "toy_plugin-0.1.dist-info/entry_points.txt").write_text(
        "[repro.merge_methods]\ntoy_scaled_mean = toy_method:FACTS\n")  # the one registry line
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    return env


def _repro(args, env, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_a_toy_method_added_as_one_file_and_one_line_runs_everywhere(toy_plugin, tiny_llama_world, tmp_path):
    from safetensors.torch import load_file

    assert "toy_scaled_mean" not in METHODS  # nothing registered in this process
    env = toy_plugin
    world = tiny_llama_world
    # 1. `repro merge`, with a parameter checked against the toy's facts
    bad = _repro(["merge", "--base", str(world.base), "--model", str(world.checkpoints[0]), "--method",
                  "toy_scaled_mean", "--set", "alpha=3", "--out", str(tmp_path / "bad")], env)
    assert bad.returncode == 2 and "alpha" in bad.stderr and "<= 2.0" in bad.stderr
    done = _repro(["merge", "--base", str(world.base), "--model", str(world.checkpoints[0]), "--model",
                   str(world.checkpoints[1]), "--method", "toy_scaled_mean", "--set", "alpha=1.5",
                   "--out", str(tmp_path / "a")], env)
    assert done.returncode == 0, done.stderr
    merged, base = load_file(str(tmp_path / "a/model.safetensors")), load_file(str(world.base / "model.safetensors"))
    ckpts = [load_file(str(c / "model.safetensors")) for c in world.checkpoints[:2]]
    name = "model.layers.0.self_attn.q_proj.weight"
    expected = base[name] + 1.5 * ((ckpts[0][name] - base[name]) + (ckpts[1][name] - base[name])) / 2
    assert (merged[name] - expected).abs().max() < 1e-6
    # 2. stock mergekit (through `repro mergekit-yaml`) reproduces it from the recorded configuration
    config = yaml.safe_load((tmp_path / "a/repro_merge.yaml").read_text())
    assert config["merge_method"] == "toy_scaled_mean" and config["parameters"] == {"alpha": 1.5}
    stock = _repro(["mergekit-yaml", str(tmp_path / "a/repro_merge.yaml"), str(tmp_path / "b")], env)
    assert stock.returncode == 0, stock.stderr
    again = {}
    for file in sorted((tmp_path / "b").glob("*.safetensors")):
        again.update(load_file(str(file)))
    assert (again[name] - merged[name]).abs().max() < 1e-6
    # 3. the runner: an experiment config naming the toy method plans and runs its merge jobs
    project = tmp_path / "project"
    data = smoke_project(project)
    data["world"].update(families=["llama"], checkpoints_per_base=3)
    data["name"] = "toy"
    data["methods"] = [{"name": "toy_scaled_mean", "params": {"alpha": 1.0}}]
    data["merge"].update(sizes=[2], subsets_per_size=1)
    data["evaluation"]["limit"] = 4
    data["report"] = {"table1": ["toy_scaled_mean"], "table2": [], "table3": []}
    write_config(project, data, "toy.yaml")
    run = _repro(["run", "--config", "configs/toy.yaml", "--only", "merge", "--no-progress"], env, cwd=project)
    assert run.returncode == 0, run.stderr
    from repro.results import ResultsStore

    store = ResultsStore(project / "runs/toy")
    records = [store.read_result(job_id) for job_id in store.finished_ids()]
    assert len(records) == 1 and records[0].job.method == "toy_scaled_mean", records
    assert records[0].job.label == "Toy scaled mean" and records[0].job.params == {"alpha": 1.0}
    assert records[0].task_vector_l2 > 0


def test_unknown_methods_are_named_with_close_matches_and_builtins_come_first():
    from repro.errors import MergeError

    with pytest.raises(MergeError, match="did you mean 'ties_sb'"):
        resolve_method_params("ties_sbb")
    assert list(METHODS)[:7] == [facts.name for facts in BUILTIN_METHODS]
