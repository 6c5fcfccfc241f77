"""The job plan: paper counts, identical subsets across methods, stable content ids."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.facts.config import load_config
from repro.plan import build_plan

ROOT = Path(__file__).resolve().parents[1]


def test_paper_plan_counts_and_shared_subsets():
    plan = build_plan(load_config(ROOT / "configs/paper.yaml"))
    counts = plan.counts()
    assert list(counts) == ["llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b"]
    for base, per_base in counts.items():
        assert per_base["base"] == 1 and per_base["single"] == 12
        merges = {k: v for k, v in per_base.items() if k.startswith("merge:")}
        assert len(merges) == 7 and set(merges.values()) == {76}  # 15 x 5 + 1
        by_method: dict[str, list] = {}
        for job in plan.jobs:
            if job.base == base and job.kind == "merge":
                by_method.setdefault(job.method, []).append(job.subset)
        subsets = list(by_method.values())
        assert all(s == subsets[0] for s in subsets)
        assert sum(1 for s in subsets[0] if len(s) == 12) == 1
        assert len(set(subsets[0])) == 76
    assert len({job.id for job in plan.jobs}) == len(plan.jobs) == 4 * (13 + 7 * 76)


def test_plan_is_the_same_on_every_run_and_in_a_new_process(tmp_path):
    first = build_plan(load_config(ROOT / "configs/paper.yaml")).to_json()
    proc = subprocess.run([sys.executable, "-m", "repro", "plan", "--config", str(ROOT / "configs/paper.yaml"),
                           "--json", "--runs-dir", str(tmp_path)], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == first
    assert json.loads((tmp_path / "plan.json").read_text()) == first


def test_adding_a_method_keeps_ids_and_subsets(tmp_path):
    data = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    data["methods"] = data["methods"][:2]
    (tmp_path / "configs").mkdir()
    for name in ("suites.yaml",):
        (tmp_path / "configs" / name).write_text((ROOT / "configs" / name).read_text())
    (tmp_path / "checkpoints.lock").write_text((ROOT / "checkpoints.lock").read_text())
    small = tmp_path / "configs/paper.yaml"
    small.write_text(yaml.safe_dump(data, sort_keys=False))
    few = build_plan(load_config(small))
    full = build_plan(load_config(ROOT / "configs/paper.yaml"))
    assert {j.id for j in few.jobs} < {j.id for j in full.jobs}
    assert few.subsets == full.subsets


def test_homogeneous_plan_of_appendix_e():
    plan = build_plan(load_config(ROOT / "configs/homogeneous.yaml"))
    assert len(plan.jobs) == 2 * (1 + 3 * 7)
    sizes = {(j.base, j.experiment): j.n for j in plan.jobs if j.kind == "homogeneous"}
    assert sizes == {(b, e): n for b in ("qwen3-4b", "qwen3-8b") for e, n in
                     (("medical_only", 3), ("math_only", 3), ("all", 6))}
    all_qwen4 = next(j for j in plan.jobs if j.base == "qwen3-4b" and j.experiment == "all")
    assert "mlxha/Qwen3-4B-grpo-medmcqa" in all_qwen4.checkpoints and all_qwen4.suites == ("medical", "math")


def test_every_job_kind_is_handled_by_every_branch():
    """Each JobKind gets its own description and count key; a plain string from a stored plan becomes
    the enum, and the stored value (hence every content id) is the bare string."""
    from repro.plan import Job, JobKind, Plan, describe_job

    jobs = [Job(f"j{k}", kind, "m", 2, (1, 2), "ties", "TIES", {}, "exp" if kind == "homogeneous" else None)
            for k, kind in enumerate(JobKind)]
    descriptions = [describe_job(job) for job in jobs]
    assert len(set(descriptions)) == len(JobKind)
    assert "homogeneous" in describe_job(jobs[list(JobKind).index(JobKind.HOMOGENEOUS)])
    counts = Plan("c", "h", 0, {}, tuple(jobs)).counts()["m"]
    assert len(counts) == len(JobKind)
    restored = Job.from_json(json.loads(json.dumps(jobs[0].to_json())))
    assert restored.kind is JobKind.BASE and jobs[0].to_json()["kind"] == "base"
    assert json.dumps({"kind": JobKind.MERGE}) == '{"kind": "merge"}'
    with pytest.raises(ValueError):
        Job("x", "merged", "m", 0)
