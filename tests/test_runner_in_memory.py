"""`evaluation.in_memory`: merged models evaluated straight from memory score exactly like saved ones."""

from __future__ import annotations

import json
from pathlib import Path

from smoke_project import smoke_project, write_config

from repro.facts.config import load_config
from repro.plan import build_plan
from repro.results import ResultsStore
from repro.runner.local_runner import run_worker

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, in_memory: bool) -> Path:
    project = tmp_path / ("memory" if in_memory else "disk")
    data = smoke_project(project)
    data["evaluation"].update(in_memory=in_memory, limit=12)
    data["merge"]["out_dtype"] = "bfloat16"  # the in-memory model must carry the saved dtype's rounding
    path = write_config(project, data)
    return path


def test_in_memory_and_saved_merges_give_identical_results(tmp_path):
    scores = {}
    for in_memory in (False, True):
        loaded = load_config(_config(tmp_path, in_memory))
        plan = build_plan(loaded)
        merges = [j for j in plan.jobs if j.kind == "merge"]
        picked = {merges[0].id, merges[-1].id}  # one tiny Llama and one tiny Qwen3 merge
        runs = tmp_path / f"runs-{in_memory}" / "smoke"
        summary = run_worker(loaded, plan, runs, job_ids=picked, progress=False)
        assert summary.failed == [] and set(summary.done) == picked
        store = ResultsStore(runs)
        records = {job_id: store.read_result(job_id) for job_id in picked}
        assert all(r.merge["in_memory"] is in_memory for r in records.values())
        assert not (runs / "scratch").exists() or not any((runs / "scratch").iterdir())
        scores[in_memory] = {
            job_id: ([(s["task"], s["metric"], s["value"], s["stderr"]) for s in r.scores], r.average,
                     r.task_vector_l2, store.items_path(job_id).read_bytes())
            for job_id, r in records.items()
        }
    assert scores[True] == scores[False]


def test_an_in_memory_merge_job_writes_no_merged_weights_anywhere(tmp_path, monkeypatch):
    """Not just the scratch folder: no weight file appears anywhere (project, runs, temp dir) while the
    merge jobs run, and no weight writer is even called."""
    import tempfile

    import safetensors.torch
    import torch
    import transformers

    from repro.merge import tensor_io
    from repro.runner.model_sources import ModelSources

    loaded = load_config(_config(tmp_path, True))
    plan = build_plan(loaded)
    merges = [j for j in plan.jobs if j.kind == "merge"]
    picked = {merges[0].id, merges[-1].id}
    ModelSources(loaded, tmp_path / "memory" / "runs").prepare(loaded.base_names)  # worlds: written before
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    weight_suffixes = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
    before = {p for p in tmp_path.rglob("*") if p.suffix in weight_suffixes}
    writes = []

    def refuse(what):
        def writer(*args, **kwargs):
            writes.append(what)
            raise AssertionError(f"an in-memory merge job called {what}")
        return writer

    monkeypatch.setattr(tensor_io.ShardWriter, "__init__", refuse("ShardWriter"))
    monkeypatch.setattr(safetensors.torch, "save_file", refuse("safetensors.torch.save_file"))
    monkeypatch.setattr(torch, "save", refuse("torch.save"))
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", refuse("save_pretrained"))
    runs = tmp_path / "memory" / "runs" / "smoke"
    summary = run_worker(loaded, plan, runs, job_ids=picked, progress=False)
    assert summary.failed == [] and set(summary.done) == picked and writes == []
    after = {p for p in tmp_path.rglob("*") if p.suffix in weight_suffixes}
    assert after == before, sorted(str(p) for p in after - before)
    assert all(ResultsStore(runs).read_result(i).merge["in_memory"] for i in picked)


def test_the_job_record_states_seeds_batch_size_devices_and_tokenizer(tmp_path):
    """What lm-eval's own record stores and ours lacked: the seeds set, the batch size actually used
    (config says `auto`), the merge and evaluation devices, the tokenizer's identity."""
    from repro.evaluate.run_facts import lm_eval_seeds

    loaded = load_config(_config(tmp_path, True))
    plan = build_plan(loaded)
    picked = {next(j for j in plan.jobs if j.kind == "merge").id, next(j for j in plan.jobs if j.kind == "base").id}
    runs = tmp_path / "memory" / "runs" / "smoke"
    summary = run_worker(loaded, plan, runs, job_ids=picked, progress=False)
    assert summary.failed == [] and set(summary.done) == picked
    records = {job_id: ResultsStore(runs).read_result(job_id) for job_id in picked}
    for record in records.values():
        evaluation = record.evaluation
        assert evaluation["seeds"] == lm_eval_seeds() == {"random_seed": 0, "numpy_seed": 1234,
                                                          "torch_seed": 1234, "fewshot_seed": 1234}
        assert loaded.config.evaluation.batch_size == "auto" and isinstance(evaluation["batch_size_used"], int)
        assert evaluation["model_device"] == "cpu" == evaluation["device"]
        tokenizer = evaluation["tokenizer"]
        assert len(tokenizer["fingerprint"]) == 64 and tokenizer["vocab_size"] > 0 and tokenizer["class"]
        assert tokenizer["eos_token"][1] is not None
        # where the run lives is not a fact of the result: two copies of one run record the same thing
        assert tokenizer["name_or_path"].startswith("local:") and str(tmp_path) not in json.dumps(evaluation)
    merged = next(r for r in records.values() if r.merge is not None)
    assert merged.merge["device"] == "cpu"
    base = next(r for r in records.values() if r.merge is None)
    assert merged.evaluation["tokenizer"]["fingerprint"] == base.evaluation["tokenizer"]["fingerprint"]
