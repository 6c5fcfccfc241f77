"""A merge method added from outside the kit, the way a user adds one: one module holding its facts
(parameters, traits) and its mergekit method, and one entry point line in group `repro.merge_methods`.

Two such methods, written here into a temporary site folder:
- `trimmed_sum`, a fast-path variant of Task Arithmetic / TIES (each delta trimmed to its top-density
  magnitudes, as TIES does, then summed without sign election): traits `kernel=elementwise, trim=True`;
  the engine runs it with the chunked kernel, and it gives the bits of its own mergekit method object;
- `svd_mean`, an SVD method with a cache (the mean of each delta's leading singular triplets): traits
  `svd_cache`, `check_finite_first`, cost class `svd`.
Both run through the engine, the grid (one pass, many merges, identical to single merges) and, from a
config that places them in Tables 1 and 3, through `repro run` and `repro report`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]

TRIMMED_SUM = '''
"""trimmed_sum: W0 + lambda * sum_i w_i trim(delta_i) / sum_i w_i (TIES' trim, no sign election)."""
from dataclasses import replace

from repro.method_catalog import DENSITY, ELEMENTWISE, LAMBDA, NORMALIZE, WEIGHT, MethodFacts, MethodTraits

FACTS = MethodFacts(
    name="trimmed_sum",
    title="Trimmed sum",
    reference="a test plugin",
    description="TIES' magnitude trim of every delta, then Task Arithmetic's weighted sum",
    parameters=(WEIGHT, replace(DENSITY, default=0.3), NORMALIZE, LAMBDA),
    implementation="trimmed_sum_method:merge_method",
    traits=MethodTraits(kernel=ELEMENTWISE, trim=True, tables=(("table1", 9),)),
)

from repro.merge.methods.task_arithmetic_family import TaskArithmeticFamily  # noqa: E402

merge_method = TaskArithmeticFamily(FACTS)
'''

SVD_MEAN = '''
"""svd_mean: W0 + mean_i of the rank-r truncation of delta_i (r = a quarter of the smaller side) for every
matrix the subspace methods decompose; the mean of the deltas elsewhere."""
import torch
from mergekit.merge_methods.base import FunctionalGroupMergeMethod

from repro.merge.mergekit_specs import mergekit_spec
from repro.merge.methods.spectral import base_plus_update, robust_svd
from repro.merge.svd_cache import ContentKey
from repro.merge.tensor_roles import is_decomposed_matrix
from repro.method_catalog import SVD, MethodFacts, MethodTraits

FACTS = MethodFacts(
    name="svd_mean",
    title="SVD mean",
    reference="a test plugin",
    description="mean of the deltas' leading singular triplets",
    implementation="svd_mean_method:merge_method",
    traits=MethodTraits(check_finite_first=True, svd_cache=True, device_agreement=SVD, cost_class="svd",
                        tables=(("table3", 9),)),
)


class SvdMean(FunctionalGroupMergeMethod):
    def __init__(self, svd_cache=None):
        super().__init__(mergekit_spec(FACTS), self._merge_group)
        self.svd_cache = svd_cache

    def with_svd_cache(self, svd_cache):
        return SvdMean(svd_cache)

    def _merge_group(self, group):
        return base_plus_update(group, self._update)

    def _update(self, group):
        name, base = group.metadata.name, group.base.tensor.to(torch.float32)
        if not is_decomposed_matrix(name, base.ndim):
            return torch.stack([e.tensor.to(torch.float32) - base for e in group.non_base]).mean(dim=0)
        rank = max(1, min(base.shape) // 4)
        total = torch.zeros_like(base)
        for entry in group.non_base:
            def compute(entry=entry):
                return robust_svd(entry.tensor.to(torch.float32) - base, name)

            if self.svd_cache is not None and isinstance(entry.id, ContentKey):
                u, s, vh = self.svd_cache.leading_factors(entry.id.key, group.base.id.key, name, rank,
                                                          base.device, compute)
            else:
                u, s, vh = compute()
                u, s, vh = u[:, :rank], s[:rank], vh[:rank, :]
            total += (u * s) @ vh
        return total / len(group.non_base)


merge_method = SvdMean()
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The plugin's modules and its entry point lines, in a folder a Python path can name."""
    site = tmp_path_factory.mktemp("plugin-site")
    (site / "trimmed_sum_method.py").write_text(textwrap.dedent(TRIMMED_SUM))
    (site / "svd_mean_method.py").write_text(textwrap.dedent(SVD_MEAN))
    info = site / "merge_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: merge-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[repro.merge_methods]\ntrimmed_sum = trimmed_sum_method:FACTS\nsvd_mean = svd_mean_method:FACTS\n")
    return site


@pytest.fixture()
def plugin(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    return plugin_site


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_plugin_methods_are_in_the_catalog_with_their_traits(plugin):
    from repro.costs import BaseCost
    from repro.method_catalog import get_method, method_names

    assert {"trimmed_sum", "svd_mean"} <= set(method_names())
    assert get_method("trimmed_sum").traits.trim and not get_method("trimmed_sum").traits.sign_consensus
    assert get_method("svd_mean").traits.svd_cache
    cost = BaseCost(eval_s_per_item=0.1, model_load_s=1, merge_s={"default": 10, "svd": 70})
    assert cost.merge_seconds("svd_mean") == 70 and cost.merge_seconds("trimmed_sum") == 10


def test_wrong_traits_are_refused_with_every_problem_named():
    from repro.errors import MergeError
    from repro.method_catalog import ELEMENTWISE, MethodFacts, MethodTraits

    with pytest.raises(MergeError) as caught:
        MethodFacts(name="bad", title="Bad", reference="", description="",
                    traits=MethodTraits(kernel="fast", cost_class="cheap", tables=(("table9", 0),)))
    message = str(caught.value)
    assert "'bad'" in message and "kernel must be one of" in message and "'cheap'" in message
    assert "'table9'" in message and "traits" in message
    with pytest.raises(MergeError, match="elementwise kernel needs parameter 'weight'"):
        MethodFacts(name="bad", title="Bad", reference="", description="", traits=MethodTraits(kernel=ELEMENTWISE))


def test_the_fast_path_variant_runs_the_chunked_kernel_and_gives_its_mergekit_methods_bits(
        plugin, tiny_llama_world, monkeypatch):
    from mergekit.merge_methods.base import TensorGroup

    from repro.merge import merge_checkpoints, merge_grid, streaming
    from repro.merge.elementwise_kernel import ElementwiseKernel
    from repro.merge.engine import load_state_dict
    from repro.merge.input_ids import model_ids
    from repro.merge.mergekit_plugin import implementation

    base, checkpoints = tiny_llama_world.base, tiny_llama_world.checkpoints[:3]
    kernels = []
    real = streaming.make_kernel
    monkeypatch.setattr(streaming, "make_kernel", lambda *a, **k: kernels.append(real(*a, **k)) or kernels[-1])
    result = merge_checkpoints(base, checkpoints, "trimmed_sum", {"lambda": 0.8}, out_dir=None,
                               out_dtype="float32")
    assert kernels and all(isinstance(k, ElementwiseKernel) and k.trim and not k.consensus for k in kernels)

    # the same merge by the method's mergekit object, tensor by tensor on whole groups
    states = [load_state_dict(path) for path in (base, *checkpoints)]
    method, ids = implementation("trimmed_sum"), model_ids([base, *checkpoints])
    params = {"weight": 1.0, "density": 0.3, "normalize": True, "lambda": 0.8}
    for name, tensor in states[0].items():
        group = TensorGroup.from_tensors([s[name].to(torch.float32) for s in states], ids=ids, base_index=0,
                                         name=name)
        (expected,) = method((group,), parameters=params, dtype=torch.float32)
        assert torch.equal(result.state_dict[name], expected.to(tensor.dtype)), name
    assert result.task_vector_l2 > 0

    # the grid: one pass, several merges, each identical to the single merge of its subset
    subsets = [(0, 1), (1, 2), (0, 1, 2)]
    grid = merge_grid(base, checkpoints, subsets, "trimmed_sum", {"lambda": 0.8}, out_dtype="float32")
    for subset, merged in zip(subsets, grid, strict=True):
        single = merge_checkpoints(base, [checkpoints[i] for i in subset], "trimmed_sum", {"lambda": 0.8},
                                   out_dir=None, out_dtype="float32")
        assert _same(merged.state_dict, single.state_dict), subset


def test_the_svd_method_gets_the_engines_cache_in_single_merges_and_the_grid(plugin, tiny_llama_world, tmp_path):
    from repro.merge import SvdCache, merge_checkpoints, merge_grid

    base, checkpoints = tiny_llama_world.base, tiny_llama_world.checkpoints[:3]
    cache = SvdCache()
    first = merge_checkpoints(base, checkpoints[:2], "svd_mean", out_dir=tmp_path / "first", svd_cache=cache)
    again = merge_checkpoints(base, checkpoints[:2], "svd_mean", out_dir=None, svd_cache=cache)
    assert first.svd_cache_stats["computed"] > 0 and first.svd_cache_stats["memory_hits"] == 0
    assert again.svd_cache_stats["computed"] == 0 and again.svd_cache_stats["memory_hits"] > 0
    uncached = merge_checkpoints(base, checkpoints[:2], "svd_mean", out_dir=None)
    assert _same(again.state_dict, uncached.state_dict)
    assert (tmp_path / "first" / "repro_merge.yaml").read_text().count("merge_method: svd_mean") == 1

    subsets = [(0, 1), (1, 2)]  # checkpoint 1 in both: decomposed once in the pass (a pass-local cache)
    grid = merge_grid(base, checkpoints, subsets, "svd_mean")
    assert grid[0].svd_cache_stats["memory_hits"] > 0
    for subset, merged in zip(subsets, grid, strict=True):
        single = merge_checkpoints(base, [checkpoints[i] for i in subset], "svd_mean", out_dir=None)
        assert _same(merged.state_dict, single.state_dict), subset


def test_the_svd_method_has_its_inputs_checked_first(plugin, tiny_llama_world, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from repro.errors import MergeError
    from repro.merge import merge_checkpoints, streaming

    checked = []
    real = streaming.check_group_inputs
    monkeypatch.setattr(streaming, "check_group_inputs", lambda *a: checked.append(1) or real(*a))

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_world.checkpoints[0], broken)
    weights = sorted(broken.glob("*.safetensors"))[0]
    state = load_file(str(weights))
    name = next(n for n, t in state.items() if t.ndim == 2 and "proj" in n)
    state[name][0, 0] = float("nan")
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(MergeError, match="NaN/Inf") as caught:
        merge_checkpoints(tiny_llama_world.base, [broken, tiny_llama_world.checkpoints[1]], "svd_mean",
                          out_dir=None)
    assert str(broken) in str(caught.value) and checked  # found by the scan before the SVD, as the traits say
    checked.clear()
    merge_checkpoints(tiny_llama_world.base, tiny_llama_world.checkpoints[:2], "trimmed_sum", out_dir=None)
    assert not checked  # an elementwise method propagates NaN/Inf itself: no scan beforehand


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    shutil.copy(ROOT / "configs/suites.yaml", project / "configs/suites.yaml")
    shutil.copytree(ROOT / "tasks", project / "tasks")
    data = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    data["name"] = "plugin"
    data["world"].update(families=["llama"], checkpoints_per_base=3)
    data["methods"] = [{"name": "trimmed_sum", "params": {"lambda": 0.8}}, {"name": "svd_mean", "params": {}}]
    data["merge"].update(sizes=[2], subsets_per_size=2)
    data["evaluation"].update(limit=4, in_memory=True)  # in-memory merges of one base share a grid pass
    data["report"] = {"table1": ["trimmed_sum"], "table2": [], "table3": ["svd_mean"]}
    path = project / "configs/plugin.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_config_runs_the_plugin_methods_and_the_report_lists_them(plugin_site, tmp_path):
    config = _project(tmp_path)
    runs, out = tmp_path / "runs", tmp_path / "artifacts"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)]), "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1"}

    def repro(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "repro", *args], env=env, cwd=config.parent.parent,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    repro("run", "--config", str(config), "--runs-dir", str(runs), "--no-progress")
    repro("report", "table1", "--config", str(config), "--runs-dir", str(runs), "--out", str(out))
    repro("report", "table3", "--config", str(config), "--runs-dir", str(runs), "--out", str(out))
    table1 = (out / "table1.md").read_text()
    table3 = (out / "table3.md").read_text()
    assert "Trimmed sum" in table1 and "SVD mean" not in table1
    assert "SVD mean" in table3 and "Trimmed sum" not in table3
    for table in (table1, table3):  # every cell of the method's row is filled (n=2: 2 merges)
        row = next(line for line in table.splitlines() if "Trimmed sum" in line or "SVD mean" in line)
        assert "–" not in row and "*" not in row, row
