"""The read-ahead started by a merge asks for the first bytes of every input, in rounds, within its budget."""

from __future__ import annotations

import os

import pytest

from repro.merge import readahead


def test_read_ahead_asks_for_each_input_in_rounds_within_the_budget(tmp_path, monkeypatch):
    sizes = {"base": [5_000], "a": [1_000, 9_000], "b": [0], "c": []}
    dirs = []
    for name, files in sizes.items():
        folder = tmp_path / name
        folder.mkdir()
        for number, size in enumerate(files):
            (folder / f"model-{number:05d}.safetensors").write_bytes(b"\0" * size)
        dirs.append(folder)
    asked = []
    monkeypatch.setattr(readahead, "ROUND_BYTES", 1_500)
    monkeypatch.setattr(readahead, "_advise", lambda path, offset, length: asked.append((path.parent.name, path.name, offset, length)))
    thread = readahead.start_readahead(dirs, budget=4 * 3_000)
    thread.join(timeout=10)
    assert not thread.is_alive()
    by_model = {name: [(f, o, n) for m, f, o, n in asked if m == name] for name in sizes}
    assert by_model["base"] == [("model-00000.safetensors", 0, 1_500), ("model-00000.safetensors", 1_500, 1_500)]
    assert by_model["a"] == [("model-00000.safetensors", 0, 1_000), ("model-00001.safetensors", 0, 1_500),
                             ("model-00001.safetensors", 1_500, 500)]
    assert by_model["b"] == by_model["c"] == []
    assert [m for m, *_ in asked[:2]] == ["base", "a"]  # round-robin: every input's start first


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise")
def test_read_ahead_of_real_files_and_of_nothing(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(os.urandom(100_000))
    thread = readahead.start_readahead([tmp_path / "m", tmp_path / "missing"], budget=1 << 20)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert readahead.start_readahead([tmp_path / "missing"]) is None
    assert readahead.start_readahead([]) is None
