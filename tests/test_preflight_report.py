"""`repro preflight`: the checkpoint compatibility report from small files only, against the fake hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from fake_hub import FakeHubApi, connect_error, http_error
from huggingface_hub import errors as hf_errors

from repro.cli import main
from repro.facts.config import load_config
from repro.facts.lockfile import Lockfile
from repro.facts.lockfile_writer import dump_lockfile
from repro.hub.compatibility import SMALL_FILES, human_bytes
from repro.runner.preflight import checkpoint_report, gpu_problem

ROOT = Path(__file__).resolve().parents[1]
WEIGHT_BYTES = 3000  # fake weight files: preflight never reads them, only their sizes
POOL = ["ft/good", "ft/wide-vocab", "ft/other-shape", "ft/remote", "ft/pickled", "ft/tied"]


def _repo(root: Path, repo_id: str, config: dict, *, pickle=False, tokenizer_extra=None) -> None:
    folder = root / repo_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048, **(tokenizer_extra or {})}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "README.md").write_text("not fetched\n")
    if pickle:
        (folder / "pytorch_model.bin").write_bytes(b"p" * WEIGHT_BYTES)
    else:
        (folder / "model-00001-of-00002.safetensors").write_bytes(b"w" * WEIGHT_BYTES)
        (folder / "model-00002-of-00002.safetensors").write_bytes(b"w" * WEIGHT_BYTES)
        (folder / "model.safetensors.index.json").write_text("{}")


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory, tiny_llama_world):
    """Repos made of the tiny Llama's real config.json, varied the ways in-the-wild checkpoints vary."""
    root = tmp_path_factory.mktemp("hub-preflight")
    config = json.loads((Path(tiny_llama_world.base) / "config.json").read_text())
    config["tie_word_embeddings"] = False
    _repo(root, "org/base", config)
    _repo(root, "ft/good", config)
    _repo(root, "ft/wide-vocab", {**config, "vocab_size": config["vocab_size"] + 64})
    _repo(root, "ft/other-shape", {**config, "hidden_size": config["hidden_size"] * 2, "num_hidden_layers": 7,
                                   "architectures": ["MistralForCausalLM"], "model_type": "mistral"})
    _repo(root, "ft/remote", {**config, "auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}})
    _repo(root, "ft/pickled", config, pickle=True)
    _repo(root, "ft/tied", {**config, "tie_word_embeddings": True})
    return root


def _project(tmp_path: Path, vocab_mismatch="truncate", min_free_disk_gb=0.0) -> Path:
    (tmp_path / "configs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "configs/suites.yaml", tmp_path / "configs/suites.yaml")
    data = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    data.update(lockfile="checkpoints.lock", bases=["tiny"], models_dir="models")
    data["merge"].update(sizes=[2, 4], vocab_mismatch=vocab_mismatch, min_free_disk_gb=min_free_disk_gb)
    config = tmp_path / "configs/paper.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    lock = Lockfile.model_validate(
        {
            "version": 1,
            "checkpoints": {r: {"revision": None, "gated": False, "files": []} for r in ["org/base", *POOL]},
            "bases": {"tiny": {"model": "org/base", "in_the_wild": POOL, "homogeneous": {}}},
        }
    )
    dump_lockfile(lock, tmp_path / "checkpoints.lock")
    return config


def _by_repo(messages: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for message in messages:
        repo, _, text = message.partition(": ")
        out.setdefault(repo, []).append(text)
    return out


def test_report_names_what_would_break_the_merge(tmp_path, hub_root):
    loaded = load_config(_project(tmp_path))
    api = FakeHubApi(hub_root)
    report = checkpoint_report(loaded, api=api)
    blocking, notes = _by_repo(report.blocking), _by_repo(report.notes)
    assert set(blocking) == {"ft/other-shape", "ft/pickled", "ft/tied"}
    other = " ".join(blocking["ft/other-shape"])
    assert "architecture MistralForCausalLM (mistral) differs from the base's LlamaForCausalLM (llama)" in other
    assert "hidden size" in other and "layer count 7" in other
    assert "--allow-pickle" in blocking["ft/pickled"][0]
    assert "lm_head" in blocking["ft/tied"][0]
    vocab = json.loads((hub_root / "org/base/config.json").read_text())["vocab_size"]
    assert notes["ft/wide-vocab"] == [
        f"{vocab + 64} vocabulary rows vs the base's {vocab}: the merge keeps the first {vocab} "
        "(merge.vocab_mismatch: truncate)"
    ]
    assert "trust_remote_code (auto_map in config.json)" in notes["ft/remote"][0]
    assert "ft/good" not in blocking and "ft/good" not in notes


def test_report_fetches_only_small_files_and_sums_the_download(tmp_path, hub_root):
    loaded = load_config(_project(tmp_path))
    api = FakeHubApi(hub_root)
    report = checkpoint_report(loaded, api=api)
    fetched = {name for method, _, name in api.calls if method == "hf_hub_download"}
    assert fetched == set(SMALL_FILES)
    assert sorted(report.fetched) == sorted((r, f) for r in ["org/base", *POOL] for f in SMALL_FILES)
    # download = what `repro download` fetches (weights, index, config, tokenizer files; no README)
    expected = 0
    for repo_id in ["org/base", *POOL]:
        for p in (hub_root / repo_id).iterdir():
            if p.name != "README.md":
                expected += p.stat().st_size
    text = "\n".join(report.lines)
    assert f"download: {human_bytes(expected)} for 7 checkpoint(s) (0 already present)" in text
    row = next(line for line in report.lines if line.strip().startswith("ft/wide-vocab"))
    assert "LlamaForCausalLM" in row and str(json.loads((hub_root / "ft/wide-vocab/config.json").read_text())[
        "vocab_size"]) in row


def test_vocab_policy_error_blocks_and_short_disk_blocks(tmp_path, hub_root):
    loaded = load_config(_project(tmp_path, vocab_mismatch="error", min_free_disk_gb=10**7))
    report = checkpoint_report(loaded, api=FakeHubApi(hub_root))
    blocking = _by_repo(report.blocking)
    assert "refused by merge.vocab_mismatch: error" in blocking["ft/wide-vocab"][0]
    assert any("needed (downloads + merged models)" in b for b in report.blocking)


def test_downloaded_checkpoints_are_read_locally(tmp_path, hub_root):
    loaded = load_config(_project(tmp_path))
    shutil.copytree(hub_root / "ft/good", tmp_path / "models/ft/good")
    api = FakeHubApi(hub_root)
    report = checkpoint_report(loaded, api=api)
    assert not [c for c in api.calls if c[1] == "ft/good"]
    assert "(1 already present)" in "\n".join(report.lines)


def test_gone_repo_is_named_and_the_hub_out_of_reach_is_one_problem(tmp_path, hub_root):
    loaded = load_config(_project(tmp_path))
    api = FakeHubApi(hub_root)
    api.failures["ft/good"] = http_error(404, "ft/good", hf_errors.RepositoryNotFoundError)
    report = checkpoint_report(loaded, api=api)
    assert any(b.startswith("ft/good: cannot read its config: ft/good was not found") for b in report.blocking)
    api = FakeHubApi(hub_root)
    api.failures["org/base"] = connect_error()
    report = checkpoint_report(loaded, api=api)
    assert len(report.blocking) == 1 and "compatibility not checked: cannot reach" in report.blocking[0]
    assert len(api.calls) == 1


def test_cli_preflight_prints_the_report_and_exits_2(tmp_path, hub_root, monkeypatch, capsys):
    import torch

    api = FakeHubApi(hub_root)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: api)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU host
    config = _project(tmp_path)
    assert main(["preflight", "--config", str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    out = capsys.readouterr()
    assert "tiny: base org/base" in out.out and "note: ft/wide-vocab" in out.out
    assert "ft/other-shape: architecture MistralForCausalLM" in out.err
    assert "no CUDA GPU" in out.err
    api.calls.clear()
    assert main(["preflight", "--config", str(config), "--no-hub", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert api.calls == [] and "architecture" not in capsys.readouterr().err


def test_missing_gpu_is_named_for_cpu_and_cuda_builds(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    message = gpu_problem()
    assert "no CUDA GPU visible" in message and "CUDA 13.0" in message and "--gpus all" in message
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "is a CPU build" in gpu_problem()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu_problem() is None


def test_keys_a_config_does_not_state_are_not_mismatches():
    from repro.hub.compatibility import CheckpointFacts, compare

    def facts(repo_id, **changes):
        shapes = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "head_dim": 16}
        shapes.update(changes.pop("shapes", {}))
        return CheckpointFacts(repo_id=repo_id, revision=None, architecture="LlamaForCausalLM", model_type="llama",
                               shapes=shapes, vocab_rows=320, tied_embeddings=changes.get("tied"), remote_code=[],
                               pickle_only=False, download_bytes=1, present=False)

    base = facts("org/base", tied=True)
    assert compare(base, facts("ft/no-head-dim", shapes={"head_dim": None}), "truncate") == []
    assert compare(base, facts("ft/tied-unknown", tied=None), "truncate") == []
    found = compare(base, facts("ft/no-layers", shapes={"num_hidden_layers": None}), "truncate")
    assert len(found) == 1 and found[0].blocking and "layer count None" in found[0].message
