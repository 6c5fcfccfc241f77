"""Hostile and broken checkpoints: each is refused by `repro merge` (or `repro download`) with exit code 2
and one error naming the file (and the tensor where there is one); nothing is written.

Every case starts from a sound tiny Llama checkpoint and breaks one thing the way a stranger's upload
(or a bad disk, or an attacker) would.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file, save_file  # noqa: E402

from repro.cli import main  # noqa: E402

WEIGHTS = "model.safetensors"
TENSOR = "model.layers.1.mlp.up_proj.weight"


def split(file: Path) -> tuple[dict, bytes]:
    raw = file.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join(file: Path, header: dict | bytes, data: bytes, length: int | None = None) -> None:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    file.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)


def edit_header(edit):
    def apply(model: Path) -> None:
        header, data = split(model / WEIGHTS)
        edit(header)
        join(model / WEIGHTS, header, data)

    return apply


def edit_tensors(edit):
    def apply(model: Path) -> None:
        tensors = load_file(str(model / WEIGHTS))
        edit(tensors)
        save_file(tensors, str(model / WEIGHTS), metadata={"format": "pt"})

    return apply


def edit_json(name: str, edit):
    def apply(model: Path) -> None:
        data = json.loads((model / name).read_text())
        edit(data)
        (model / name).write_text(json.dumps(data))

    return apply


def truncate(fraction: float):
    def apply(model: Path) -> None:
        raw = (model / WEIGHTS).read_bytes()
        (model / WEIGHTS).write_bytes(raw[: int(len(raw) * fraction)])

    return apply


def huge_length(model: Path) -> None:
    header, data = split(model / WEIGHTS)
    join(model / WEIGHTS, header, data, length=2**62)


def length_past_end(model: Path) -> None:
    header, data = split(model / WEIGHTS)
    join(model / WEIGHTS, header, data, length=len(json.dumps(header)) + len(data) + 1000)


def offsets_past_end(header: dict) -> None:
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    begin, end = header[last]["data_offsets"]
    header[last]["data_offsets"] = [begin + 4096, end + 4096]


def overlapping(header: dict) -> None:
    a, b = "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"
    header[b]["data_offsets"] = list(header[a]["data_offsets"])


def wrong_span(header: dict) -> None:
    header[TENSOR]["shape"] = [header[TENSOR]["shape"][0] * 2, header[TENSOR]["shape"][1]]


def extra_layer(tensors: dict) -> None:
    for name in [n for n in tensors if n.startswith("model.layers.1.")]:
        tensors[name.replace("layers.1.", "layers.2.")] = tensors[name].clone()


def set_(key, value):
    return lambda data: data.__setitem__(key, value)


def shard_twice(model: Path) -> None:
    shutil.copy(model / WEIGHTS, model / "model-00002-of-00002.safetensors")


def nan_at(value):
    return edit_tensors(lambda t: t[TENSOR].view(-1).__setitem__(3, value))


# (case id, how to break the checkpoint, words of the error, whether it names the tensor)
CASES = [
    ("truncated-half", truncate(0.5), "truncated", True),
    ("truncated-to-4-bytes", truncate(0.00001), "truncated", False),
    ("header-claims-huge-length", huge_length, "claims", False),
    ("header-length-past-eof", length_past_end, "truncated", False),
    ("header-not-json", lambda m: join(m / WEIGHTS, b"{not json" + b" " * 40, split(m / WEIGHTS)[1]), "JSON", False),
    ("offsets-past-eof", edit_header(offsets_past_end), "past the end", True),
    ("overlapping-offsets", edit_header(overlapping), "overlap", True),
    ("shape-disagrees-with-bytes", edit_header(wrong_span), "span", True),
    ("unknown-dtype", edit_header(lambda h: h[TENSOR].__setitem__("dtype", "F128")), "dtype", True),
    ("int8-dtype", edit_tensors(lambda t: t.__setitem__(TENSOR, t[TENSOR].to(torch.int8))), "dtype I8", True),
    ("nan-weights", nan_at(float("nan")), "NaN", True),
    ("inf-weights", nan_at(float("inf")), "NaN/Inf", True),
    ("missing-tensor", edit_tensors(lambda t: t.pop(TENSOR)), "missing", True),
    ("extra-tensor", edit_tensors(lambda t: t.__setitem__("model.payload", torch.zeros(4))), "not in the base", True),
    ("tensor-in-two-shards", shard_twice, "both", True),
    ("other-architecture", edit_json("config.json", set_("model_type", "mistral")), "model_type", False),
    ("other-hidden-size", edit_json("config.json", set_("hidden_size", 128)), "hidden_size", False),
    ("more-layers", lambda m: (edit_tensors(extra_layer)(m),
                               edit_json("config.json", set_("num_hidden_layers", 3))(m)), "num_hidden_layers", False),
    ("more-layers-config-silent", edit_tensors(extra_layer), "model.layers.2.", True),
    ("shape-mismatch", edit_tensors(lambda t: t.__setitem__(TENSOR, torch.zeros(64, 96))), "shape", True),
    ("trust-remote-code", edit_json("config.json", set_("trust_remote_code", True)), "trust_remote_code", False),
    ("auto-map", edit_json("config.json", set_("auto_map", {"AutoModelForCausalLM": "evil.Model"})), "auto_map", False),
    ("tokenizer-auto-map", edit_json("tokenizer_config.json", set_("auto_map", {"AutoTokenizer": ["evil.T", None]})),
     "auto_map", False),
    ("config-not-json", lambda m: (m / "config.json").write_text("{'python': True}"), "JSON", False),
]


@pytest.mark.parametrize("case,breaker,words,names_tensor", CASES, ids=[c[0] for c in CASES])
def test_hostile_checkpoint_is_refused_by_repro_merge(
    tiny_llama_world, tmp_path, capsys, reliability_log, case, breaker, words, names_tensor
):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_world.checkpoints[1], broken)
    breaker(broken)
    out = tmp_path / "out"
    code = main(["merge", "--base", str(tiny_llama_world.base), "--model", str(tiny_llama_world.checkpoints[0]),
                 "--model", str(broken), "--method", "task_arithmetic", "--out", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    refused = (code == 2 and len(lines) == 1 and str(broken) in lines[0] and words in lines[0]
               and "Traceback" not in err and not out.exists()
               and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")])
    reliability_log("hostile", case, refused, message=lines[0] if lines else "")
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(broken) in lines[0] and words in lines[0], err
    if names_tensor:
        assert "tensor model." in lines[0] or "tensor lm_head." in lines[0], err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def _lockfile(tmp_path: Path, root: Path) -> Path:
    from repro.facts.lockfile import Lockfile
    from repro.facts.lockfile_writer import dump_lockfile
    from repro.hub import select_files, sha256_file

    entries = {}
    for repo in ("tiny/base", "tiny/ft-1"):
        files = [{"path": p, "sha256": sha256_file(root / repo / p), "size": (root / repo / p).stat().st_size}
                 for p in select_files([f.name for f in (root / repo).iterdir()])]
        entries[repo] = {"revision": "b" * 40, "gated": False, "files": files}
    lock = Lockfile.model_validate({"version": 1, "checkpoints": entries,
                                    "bases": {"tiny": {"model": "tiny/base", "in_the_wild": ["tiny/ft-1"]}}})
    path = tmp_path / "checkpoints.lock"
    dump_lockfile(lock, path)
    return path


def _symlink_file_outside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(root / "tiny/ft-1" / WEIGHTS, outside / WEIGHTS)
    os.symlink(outside / WEIGHTS, root / "tiny/ft-1" / WEIGHTS)


def _symlink_repo_outside(root: Path, tmp_path: Path) -> None:
    shutil.move(root / "tiny/ft-1", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", root / "tiny/ft-1")


def _corrupt_byte(root: Path, tmp_path: Path) -> None:
    file = root / "tiny/ft-1" / WEIGHTS
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


MIRROR_CASES = [
    ("mirror-symlink-file-outside", _symlink_file_outside, "outside the mirror"),
    ("mirror-symlink-repo-outside", _symlink_repo_outside, "outside the mirror"),
    ("sha256-mismatch-vs-lockfile", _corrupt_byte, "failed verification"),
]


@pytest.mark.parametrize("case,breaker,words", MIRROR_CASES, ids=[c[0] for c in MIRROR_CASES])
def test_hostile_mirror_is_refused_by_repro_download(tmp_path, tiny_llama_world, capsys, reliability_log,
                                                      case, breaker, words):
    root = tmp_path / "mirror"
    shutil.copytree(tiny_llama_world.base, root / "tiny/base")
    shutil.copytree(tiny_llama_world.checkpoints[0], root / "tiny/ft-1")
    lockfile = _lockfile(tmp_path, root)
    breaker(root, tmp_path)
    dest = tmp_path / "models"
    code = main(["download", "--lockfile", str(lockfile), "--mirror", str(root), "--dest", str(dest),
                 "--repo", "tiny/ft-1"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    refused = code == 2 and len(lines) == 1 and words in lines[0] and not (dest / "tiny/ft-1").exists()
    reliability_log("hostile", case, refused, message=lines[0] if lines else "")
    assert code == 2 and len(lines) == 1 and words in lines[0] and "tiny/ft-1" in lines[0], err
    assert not (dest / "tiny/ft-1").exists()
    stage = dest / "tiny/.ft-1.partial"
    assert not stage.exists() or WEIGHTS not in [p.name for p in stage.iterdir()]


class _Payload:
    """A pickle that runs code when loaded unsafely: it would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_never_runs(tmp_path, tiny_llama_world, capsys, reliability_log):
    """Pickle weights: refused without --allow-pickle; with it, torch.load(weights_only=True) refuses the
    payload; the code never runs and no model directory appears."""
    root = tmp_path / "mirror"
    shutil.copytree(tiny_llama_world.base, root / "tiny/base")
    repo = root / "tiny/ft-1"
    shutil.copytree(tiny_llama_world.checkpoints[0], repo)
    state = load_file(str(repo / WEIGHTS))
    (repo / WEIGHTS).unlink()
    marker = tmp_path / "payload-ran"
    torch.save({**dict(list(state.items())[:2]), "model.norm.weight": _Payload(marker)},
               repo / "pytorch_model.bin")
    lockfile = _lockfile(tmp_path, root)
    dest = tmp_path / "models"
    argv = ["download", "--lockfile", str(lockfile), "--mirror", str(root), "--dest", str(dest), "--repo", "tiny/ft-1"]
    first = main(argv)
    first_err = capsys.readouterr().err
    second = main([*argv, "--allow-pickle"])
    second_err = capsys.readouterr().err
    ok = first == 2 and second == 2 and not marker.exists() and not (dest / "tiny/ft-1").exists()
    reliability_log("hostile", "pickle-without-allow-pickle", first == 2 and not marker.exists())
    reliability_log("hostile", "pickle-payload-with-allow-pickle", ok)
    assert first == 2 and "--allow-pickle" in first_err, first_err
    assert second == 2 and "weights_only=True" in second_err and "Traceback" not in second_err, second_err
    assert not marker.exists(), "the pickle payload ran"
    assert not (dest / "tiny/ft-1").exists()


def test_run_refuses_a_hostile_downloaded_checkpoint_before_any_job(tmp_path, tiny_llama_world, capsys,
                                                                     reliability_log):
    """`repro run` inspects every downloaded input (headers, configs) before any job starts."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    models = tmp_path / "models"
    shutil.copytree(tiny_llama_world.base, models / "tiny/base")
    for i in (1, 2):
        shutil.copytree(tiny_llama_world.checkpoints[i - 1], models / f"tiny/ft-{i}")
    edit_json("config.json", set_("auto_map", {"AutoModelForCausalLM": "x.Y"}))(models / "tiny/ft-2")
    from repro.facts.lockfile import Lockfile
    from repro.facts.lockfile_writer import dump_lockfile

    ids = ["tiny/base", "tiny/ft-1", "tiny/ft-2"]
    dump_lockfile(Lockfile.model_validate({
        "version": 1, "checkpoints": {r: {"revision": "c" * 40, "files": []} for r in ids},
        "bases": {"tiny": {"model": "tiny/base", "in_the_wild": ids[1:]}}}), tmp_path / "checkpoints.lock")
    (tmp_path / "configs").mkdir()
    shutil.copy(root / "configs/suites.yaml", tmp_path / "configs/suites.yaml")
    shutil.copytree(root / "tasks", tmp_path / "tasks")
    config = yaml.safe_load((root / "configs/smoke.yaml").read_text())
    config.pop("world")
    config.update(lockfile="checkpoints.lock", bases=["tiny"], models_dir=str(models))
    config["merge"].update(sizes=[2], subsets_per_size=1)
    (tmp_path / "configs/x.yaml").write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs" / "x"
    code = main(["run", "--config", str(tmp_path / "configs/x.yaml"), "--runs-dir", str(runs), "--no-progress"])
    err = capsys.readouterr().err
    refused = code == 2 and "auto_map" in err and not (runs / "results").exists()
    reliability_log("hostile", "run-with-auto-map-checkpoint", refused)
    assert code == 2 and "tiny/ft-2/config.json" in err and "auto_map" in err, err
    assert not (runs / "results").exists()


@pytest.mark.parametrize("case,breaker,words", [
    ("evaluate-auto-map", edit_json("config.json", set_("auto_map", {"AutoModelForCausalLM": "x.Y"})), "auto_map"),
    ("evaluate-truncated", truncate(0.5), "truncated"),
], ids=["auto-map", "truncated"])
def test_repro_evaluate_refuses_a_hostile_model_before_loading_it(tiny_llama_world, tmp_path, capsys,
                                                                   reliability_log, case, breaker, words):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_world.checkpoints[0], broken)
    breaker(broken)
    code = main(["evaluate", "--model", str(broken), "--suite", "smoke", "--no-store"])
    err = capsys.readouterr().err
    reliability_log("hostile", case, code == 2 and words in err and "Traceback" not in err)
    assert code == 2 and words in err and str(broken) in err and "Traceback" not in err, err
