"""repro.hub: resolve against a hub-shaped fake, download from the fake hub or a mirror of tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_hub import FakeHubApi, connect_error, fake_commit, http_error
from huggingface_hub import errors as hf_errors

from repro.cli import main
from repro.errors import HubError
from repro.facts.lockfile import Lockfile, load_lockfile
from repro.facts.lockfile_writer import dump_lockfile
from repro.hub import (
    MANIFEST_NAME,
    download,
    is_downloaded,
    local_model_dir,
    resolve_lockfile,
    select_files,
    sha256_file,
)

POOL = ["tiny/ft-1", "tiny/ft-2", "tiny/pickled"]


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory, tiny_llama_world):
    """root/<org>/<name>/ repos: a base, two safetensors checkpoints, one sharded pickle-only checkpoint."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("hub")
    shutil.copytree(tiny_llama_world.base, root / "tiny/base")
    shutil.copytree(tiny_llama_world.checkpoints[0], root / "tiny/ft-1")
    shutil.copytree(tiny_llama_world.checkpoints[1], root / "tiny/ft-2")
    (root / "tiny/ft-1/README.md").write_text("not downloaded\n")
    (root / "tiny/ft-1/original").mkdir()
    (root / "tiny/ft-1/original/consolidated.00.pth").write_bytes(b"not downloaded")
    pickled = root / "tiny/pickled"
    shutil.copytree(tiny_llama_world.checkpoints[2], pickled)
    state = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    names = sorted(state)
    shards = {
        "pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
        "pytorch_model-00002-of-00002.bin": names[len(names) // 2 :],
    }
    for shard, keys in shards.items():
        torch.save({k: state[k] for k in keys}, pickled / shard)
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (pickled / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return root


def _lock(pool=POOL) -> Lockfile:
    ids = ["tiny/base", *pool]
    return Lockfile.model_validate(
        {
            "version": 1,
            "checkpoints": {r: {"revision": None, "gated": False, "files": []} for r in ids},
            "bases": {"tiny-llama": {"model": "tiny/base", "in_the_wild": list(pool), "homogeneous": {}}},
        }
    )


@pytest.fixture(scope="module")
def resolved(hub_root) -> Lockfile:
    return resolve_lockfile(_lock(), FakeHubApi(hub_root))


def test_select_files_keeps_config_tokenizer_and_one_weight_format():
    listing = [
        "README.md",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "original/consolidated.00.pth",
        "adapter_model.safetensors",
    ]
    assert select_files(listing) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert select_files(["config.json", "pytorch_model.bin", "merges.txt", "vocab.json"]) == [
        "config.json",
        "merges.txt",
        "pytorch_model.bin",
        "vocab.json",
    ]


def test_resolve_fills_revisions_and_hashes(hub_root, resolved):
    assert resolved.unresolved() == []
    ft1 = resolved.entry("tiny/ft-1")
    mirror_files = {p.name: p.read_bytes() for p in (hub_root / "tiny/ft-1").rglob("*") if p.is_file()}
    assert ft1.revision == fake_commit(
        {
            str(p.relative_to(hub_root / "tiny/ft-1")): p.read_bytes()
            for p in (hub_root / "tiny/ft-1").rglob("*")
            if p.is_file()
        }
    )
    paths = [f.path for f in ft1.files]
    assert "model.safetensors" in paths and "config.json" in paths and "tokenizer.json" in paths
    assert "README.md" not in paths and not any(p.startswith("original") for p in paths)
    for f in ft1.files:
        assert f.size == len(mirror_files[f.path])
        assert f.sha256 == sha256_file(hub_root / "tiny/ft-1" / f.path)
    pickled = [f.path for f in resolved.entry("tiny/pickled").files]
    assert "pytorch_model.bin.index.json" in pickled and not any(p.endswith(".safetensors") for p in pickled)


def test_resolve_uses_lfs_metadata_and_downloads_only_small_files(hub_root):
    api = FakeHubApi(hub_root)
    resolve_lockfile(_lock(), api, repo_ids=["tiny/ft-1"])
    downloaded = [name for method, repo, name in api.calls if method == "hf_hub_download"]
    assert "config.json" in downloaded and "model.safetensors" not in downloaded
    assert api.calls[:2] == [("list_repo_commits", "tiny/ft-1", None), ("model_info", "tiny/ft-1", None)]


def test_resolved_rewrite_is_deterministic_and_byte_stable(tmp_path, hub_root, resolved):
    first, second = tmp_path / "a.lock", tmp_path / "b.lock"
    dump_lockfile(resolved, first)
    dump_lockfile(resolve_lockfile(_lock(), FakeHubApi(hub_root)), second)
    assert first.read_bytes() == second.read_bytes()
    again = tmp_path / "c.lock"
    dump_lockfile(load_lockfile(first), again)
    assert again.read_bytes() == first.read_bytes()
    assert load_lockfile(first) == resolved


def test_resolve_skips_resolved_entries_and_keeps_pinned_revisions(hub_root, resolved):
    api = FakeHubApi(hub_root)
    assert resolve_lockfile(resolved, api) == resolved and api.calls == []
    assert resolve_lockfile(resolved, api, repo_ids=["tiny/ft-2"], force=True) == resolved
    pinned = resolved.entry("tiny/ft-2").revision
    stale = resolved.with_entry(resolved.entry("tiny/ft-2").model_copy(update={"revision": "f" * 40}))
    with pytest.raises(HubError, match=r"tiny/ft-2 has no such revision.*fix `revision`"):
        resolve_lockfile(stale, api, repo_ids=["tiny/ft-2"], force=True)
    assert pinned != "f" * 40


def test_resolve_401_asks_for_hf_token(hub_root):
    api = FakeHubApi(hub_root)
    api.failures["tiny/ft-1"] = http_error(401, "tiny/ft-1")
    with pytest.raises(HubError) as info:
        resolve_lockfile(_lock(), api)
    message = str(info.value)
    assert "set HF_TOKEN and accept the license of tiny/ft-1" in message and "HTTP 401" in message
    assert "\n" not in message


def test_gated_download_asks_for_hf_token(hub_root):
    api = FakeHubApi(hub_root, gated={"tiny/base": True})
    api.download_failures["tiny/base"] = http_error(403, "tiny/base", hf_errors.GatedRepoError)
    with pytest.raises(HubError, match="set HF_TOKEN and accept the license of tiny/base on its model page"):
        resolve_lockfile(_lock(), api)


def test_resolve_connection_error_is_a_clear_offline_message(hub_root):
    saved = []
    api = FakeHubApi(hub_root)
    api.failures["tiny/ft-2"] = connect_error()
    with pytest.raises(
        HubError,
        match=r"cannot reach the Hugging Face hub .*run `repro lock resolve` on a machine with network",
    ):
        resolve_lockfile(_lock(), api, on_resolved=saved.append)
    assert [lock.unresolved() for lock in saved][-1] == ["tiny/ft-2", "tiny/pickled"]  # progress kept
    api.failures["tiny/ft-2"] = ConnectionError("connection reset")
    with pytest.raises(HubError, match="cannot reach the Hugging Face hub"):
        resolve_lockfile(_lock(), api)
    api.failures["tiny/ft-2"] = http_error(404, "tiny/ft-2", hf_errors.RepositoryNotFoundError)
    with pytest.raises(HubError, match="tiny/ft-2 was not found on the hub"):
        resolve_lockfile(_lock(), api)


def test_cli_resolve_offline_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "checkpoints.lock"
    dump_lockfile(_lock(), path)
    before = path.read_bytes()
    assert main(["lock", "resolve", "--lockfile", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HF_HUB_OFFLINE" in err[0] and "tiny/base" in err[0]
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["checkpoints.lock"]


def _dir_files(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_download_from_mirror_verifies_and_skips_present_files(tmp_path, hub_root, resolved):
    dest = tmp_path / "models"
    results = download(resolved, dest, repo_ids=["tiny/base", "tiny/ft-1"], mirror=hub_root, progress=False)
    assert [(r.repo_id, r.status) for r in results] == [
        ("tiny/base", "downloaded"),
        ("tiny/ft-1", "downloaded"),
    ]
    model_dir = local_model_dir(dest, "tiny/ft-1")
    assert model_dir == dest / "tiny" / "ft-1"
    expected = sorted([f.path for f in resolved.entry("tiny/ft-1").files] + [MANIFEST_NAME])
    assert _dir_files(model_dir) == expected
    for f in resolved.entry("tiny/ft-1").files:
        assert sha256_file(model_dir / f.path) == f.sha256
    assert is_downloaded(resolved.entry("tiny/ft-1"), dest)
    assert sorted(p.name for p in (dest / "tiny").iterdir()) == ["base", "ft-1"]  # no staging dirs left
    mtime = (model_dir / "model.safetensors").stat().st_mtime_ns
    again = download(resolved, dest, repo_ids=["tiny/ft-1"], mirror=hub_root, progress=False)
    assert again[0].status == "present" and (model_dir / "model.safetensors").stat().st_mtime_ns == mtime

    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(model_dir).model_type == "llama"
    assert AutoTokenizer.from_pretrained(model_dir)("hi")["input_ids"]


def test_download_from_hub_api_resumes_from_verified_staging(tmp_path, hub_root, resolved):
    dest = tmp_path / "models"
    api = FakeHubApi(hub_root)
    stage = dest / "tiny" / ".ft-2.partial"
    stage.mkdir(parents=True)
    shutil.copyfile(
        hub_root / "tiny/ft-2/model.safetensors", stage / "model.safetensors"
    )  # an interrupted run
    results = download(resolved, dest, repo_ids=["tiny/ft-2"], api=api, progress=False)
    assert results[0].status == "downloaded" and results[0].revision == resolved.entry("tiny/ft-2").revision
    fetched = [name for method, _, name in api.calls if method == "hf_hub_download"]
    assert "model.safetensors" not in fetched and "config.json" in fetched
    assert not stage.exists() and is_downloaded(resolved.entry("tiny/ft-2"), dest)


def test_corrupted_file_is_refused_and_nothing_half_written(tmp_path, hub_root, resolved):
    mirror = tmp_path / "mirror"
    shutil.copytree(hub_root / "tiny/ft-1", mirror / "tiny/ft-1")
    weights = mirror / "tiny/ft-1/model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    dest = tmp_path / "models"
    expected = next(f.sha256 for f in resolved.entry("tiny/ft-1").files if f.path == "model.safetensors")
    with pytest.raises(HubError) as info:
        download(resolved, dest, repo_ids=["tiny/ft-1"], mirror=mirror, progress=False)
    message = str(info.value)
    assert (
        "tiny/ft-1/model.safetensors" in message and expected in message and sha256_file(weights) in message
    )
    assert not (dest / "tiny" / "ft-1").exists()
    stage = dest / "tiny" / ".ft-1.partial"
    for name in _dir_files(stage):  # only verified files remain staged (for a resumed run)
        entry = next(f for f in resolved.entry("tiny/ft-1").files if f.path == name)
        assert sha256_file(stage / name) == entry.sha256
    assert "model.safetensors" not in _dir_files(stage)


def test_unresolved_refused_unless_allow_unpinned(tmp_path, hub_root):
    dest = tmp_path / "models"
    with pytest.raises(
        HubError, match=r"unresolved \(revision null\): tiny/base.*repro lock resolve.*--allow-unpinned"
    ):
        download(_lock(), dest, mirror=hub_root, progress=False)
    assert not dest.exists()
    results = download(
        _lock(), dest, repo_ids=["tiny/ft-1"], mirror=hub_root, allow_unpinned=True, progress=False
    )
    assert results[0].status == "downloaded" and results[0].revision is None
    assert "README.md" not in _dir_files(dest / "tiny/ft-1")
    from_hub = download(
        _lock(), dest, repo_ids=["tiny/ft-2"], api=FakeHubApi(hub_root), allow_unpinned=True, progress=False
    )
    assert from_hub[0].revision == fake_commit(
        {p.name: p.read_bytes() for p in (hub_root / "tiny/ft-2").iterdir()}
    )


def test_pickle_only_refused_unless_allow_pickle_then_converted(
    tmp_path, hub_root, resolved, tiny_llama_world
):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    dest = tmp_path / "models"
    with pytest.raises(HubError, match="tiny/pickled has only pickle weights .*--allow-pickle"):
        download(resolved, dest, repo_ids=["tiny/pickled"], mirror=hub_root, progress=False)
    assert not dest.exists()
    results = download(
        resolved, dest, repo_ids=["tiny/pickled"], mirror=hub_root, allow_pickle=True, progress=False
    )
    assert results[0].status == "converted"
    model_dir = dest / "tiny" / "pickled"
    files = _dir_files(model_dir)
    assert not any(f.endswith(".bin") or f == "pytorch_model.bin.index.json" for f in files)
    assert {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    } <= set(files)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    original = load_file(tiny_llama_world.checkpoints[2] / "model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in original.items())
    assert is_downloaded(resolved.entry("tiny/pickled"), dest)
    again = download(
        resolved, dest, repo_ids=["tiny/pickled"], mirror=hub_root, allow_pickle=True, progress=False
    )
    assert again[0].status == "present"


def test_cli_download_with_mirror(tmp_path, hub_root, resolved, capsys):
    path = tmp_path / "checkpoints.lock"
    dump_lockfile(resolved, path)
    dest = tmp_path / "models"
    args = [
        "download",
        "--lockfile",
        str(path),
        "--repo",
        "tiny/ft-1",
        "--dest",
        str(dest),
        "--mirror",
        str(hub_root),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "downloaded tiny/ft-1" in out and "1 checkpoints in" in out
    assert (
        main(
            [
                "download",
                "--lockfile",
                str(path),
                "--base",
                "tiny-llama",
                "--dest",
                str(dest),
                "--mirror",
                str(hub_root),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-pickle" in err[0]
    assert sorted(p.name for p in (dest / "tiny").iterdir()) == ["ft-1"]


def test_cli_download_unresolved_is_exit_2(tmp_path, hub_root, capsys, monkeypatch):
    path = tmp_path / "checkpoints.lock"
    dump_lockfile(_lock(), path)
    monkeypatch.setenv("REPRO_MODELS", str(tmp_path / "models"))
    assert main(["download", "--lockfile", str(path), "--mirror", str(hub_root)]) == 2
    assert "--allow-unpinned" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_local_model_dir_rejects_paths_outside_dest(tmp_path):
    with pytest.raises(HubError, match="not a Hugging Face repo id"):
        local_model_dir(tmp_path, "../etc")
    with pytest.raises(HubError):
        local_model_dir(tmp_path, "a/..")


def test_changed_files_are_detected_and_verify_rehashes(tmp_path, hub_root, resolved):
    import os

    dest = tmp_path / "models"
    download(resolved, dest, repo_ids=["tiny/ft-2"], mirror=hub_root, progress=False)
    config = dest / "tiny/ft-2/config.json"
    original = config.read_bytes()
    config.write_bytes(original.replace(b"{", b" ", 1))  # same size, different content, new mtime
    again = download(resolved, dest, repo_ids=["tiny/ft-2"], mirror=hub_root, progress=False)
    assert again[0].status == "downloaded" and config.read_bytes() == original
    stat = config.stat()
    config.write_bytes(original.replace(b"{", b" ", 1))
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # tampered, but size and mtime unchanged
    assert (
        download(resolved, dest, repo_ids=["tiny/ft-2"], mirror=hub_root, progress=False)[0].status
        == "present"
    )
    assert not is_downloaded(resolved.entry("tiny/ft-2"), dest, rehash=True)
    fixed = download(resolved, dest, repo_ids=["tiny/ft-2"], mirror=hub_root, progress=False, verify=True)
    assert fixed[0].status == "downloaded" and config.read_bytes() == original


def test_programming_errors_in_the_api_are_not_masked(hub_root):
    api = FakeHubApi(hub_root)
    api.failures["tiny/base"] = TypeError("model_info() got an unexpected keyword argument")
    with pytest.raises(TypeError):
        resolve_lockfile(_lock(), api)
