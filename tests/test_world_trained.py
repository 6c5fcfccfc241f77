"""The trained offline world (repro.worlds.trained): items, tasks, training, caching, and a run to Table 1.

The world under test is the demo's recipe (configs/demo.yaml: same skills, fine-tunes, conventions,
domains, replay) in a quick profile: a smaller model and fewer steps, so that it trains in seconds.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from repro.errors import ConfigError
from repro.facts.config import load_config
from repro.worlds import skills
from repro.worlds.recipe import TrainedWorldConfig, recipe_hash
from repro.worlds.world_tasks import held_out_keys, read_manifest, write_world_tasks

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"


def quick_profile(world: dict) -> dict:
    """The demo world, smaller and shorter: the test suite's profile."""
    quick = json.loads(json.dumps(world))
    quick["name"] = "demo-quick-test"
    quick["threads"] = 1
    quick["model"] = {**quick["model"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
    quick["pretrain"] = {**quick["pretrain"], "steps": 600, "lr": 0.005, "warmup_steps": 30}
    quick["finetunes"] = [{**f, "steps": 160, "lr": 2 * f["lr"]} for f in quick["finetunes"]]
    quick["tasks"] = {**quick["tasks"], "items_per_task": 80}
    return quick


def demo_world_dict() -> dict:
    return yaml.safe_load(DEMO.read_text())["world"]


@pytest.fixture(scope="session")
def quick_world(tmp_path_factory):
    """(config, runs root, built world): the quick-profile world trained once for the session."""
    from repro.worlds.trained import build_trained_world, world_folder

    config = TrainedWorldConfig.model_validate(quick_profile(demo_world_dict()))
    runs_root = tmp_path_factory.mktemp("trained-world") / "runs"
    return config, runs_root, build_trained_world(config, world_folder(runs_root, config), workers=1)


def _binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p)."""
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(successes, trials + 1))


# ------------------------------------------------------------------------------------------- items
@pytest.mark.parametrize("skill", list(skills.SKILLS))
def test_items_have_a_right_answer_and_distinct_well_formed_choices(skill):
    for item in skills.eval_items(skill, 60, seed=3):
        choices = item.choices()
        assert choices[0] == item.answer == item.standard and len(set(choices)) == len(choices)
        assert set("".join([item.prompt, *choices])) <= set(skills.ALPHABET)
        # no length shortcut (category and agreement choose among fixed labels: every item offers the same set)
    assert len({len(c) for c in choices}) == 1 or skill in ("category", "agreement")


def test_distractors_leave_no_shortcut():
    for item in skills.eval_items("sort", 40, seed=1):
        word = item.prompt.split()[1]
        ascending = [c for c in item.choices() if list(c) == sorted(c)]
        assert item.answer in ascending and len(ascending) >= 3  # sortedness alone does not decide
        assert sum(sorted(c) == sorted(word) for c in item.choices()) == 2  # nor do the letters alone
    for item in skills.eval_items("reverse", 40, seed=1):
        word = item.prompt.split()[1]
        assert all(sorted(c) == sorted(word) for c in item.choices())  # every choice is a permutation
    for skill in ("lookup", "maximum"):
        for item in skills.eval_items(skill, 40, seed=1):
            assert all(c in item.prompt.split("=")[-2] or c in item.prompt for c in item.choices())


def test_conventions_change_the_answer_not_the_problem():
    standard = skills.eval_items("sort", 30, seed=2)
    descending = skills.eval_items("sort", 30, seed=2, convention="descending")
    assert [i.key for i in standard] == [i.key for i in descending]
    assert all(d.answer == s.answer[::-1] and d.answer in d.choices() for s, d in zip(standard, descending, strict=True))
    shifted = skills.eval_items("category", 30, seed=2, convention="shifted")
    assert all(i.answer != i.standard and i.answer in i.choices() for i in shifted)


def test_task_files_are_written_by_the_item_code_and_training_never_sees_them(tmp_path):
    from repro.worlds.trained import ExampleStream

    tasks = TrainedWorldConfig.model_validate(quick_profile(demo_world_dict())).tasks
    folder = write_world_tasks(tasks, tmp_path / "tasks")
    manifest = read_manifest(folder)
    for skill in tasks.skills:
        rows = [json.loads(line) for line in (folder / f"synth_{skill}.jsonl").read_text().splitlines()]
        items = skills.eval_items(skill, tasks.items_per_task, tasks.seed)
        assert [r["prompt"] for r in rows] == [i.prompt for i in items]
        assert [r["choices"][r["label"]] for r in rows] == [i.answer for i in items]
        assert manifest["tasks"][f"synth_{skill}"]["items"] == len(rows)
        labels = [r["label"] for r in rows]
        assert len(set(labels)) == len(rows[0]["choices"])  # the answer is not always in one place
    mtime = (folder / "MANIFEST.json").stat().st_mtime_ns
    assert write_world_tasks(tasks, folder) == folder and (folder / "MANIFEST.json").stat().st_mtime_ns == mtime

    world = TrainedWorldConfig.model_validate(quick_profile(demo_world_dict()))
    held_out = held_out_keys(world.tasks)
    stream = ExampleStream(world.finetunes[0], world.pretrain, "t", held_out)
    seen = {item.key for _ in range(40) for item in stream.batch(32)}
    assert seen and not seen & held_out


def test_a_bad_world_recipe_is_one_config_error_naming_the_field(tmp_path):
    data = yaml.safe_load(DEMO.read_text())
    data["world"]["finetunes"][1]["conventions"] = {"sort": "sideways"}
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "suites.yaml", tmp_path / "configs" / "suites.yaml")
    path = tmp_path / "configs" / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"world.*sideways"):
        load_config(path)


# ------------------------------------------------------------------------------------- the world
# Neither the quick profile nor the demo world learns to extrapolate arithmetic sequences to held-out
# (start, step) pairs: every model stays at chance there (the demo world records it in its world.json,
# "learned"). Every other trained skill is asserted here.
QUICK_PROFILE_TOO_SMALL_FOR = {"sequence"}


def test_base_and_every_finetune_beat_chance_on_what_they_were_trained_on(quick_world):
    config, _, world = quick_world
    learned = json.loads((world.root / "world.json").read_text())["learned"]
    assert set(learned) == {"base", *(f"ft-{i:02d}" for i in range(1, 13))}
    failures = []
    for model, scores in learned.items():
        for check, score in scores.items():
            if check.split("/")[0] in QUICK_PROFILE_TOO_SMALL_FOR:
                continue
            p_value = _binomial_tail(score["correct"], score["items"], score["chance"])
            if p_value > 0.01:
                failures.append(f"{model} {check}: {score['correct']}/{score['items']} "
                                f"(chance {score['chance']:.2f}, p={p_value:.3g})")
    assert not failures, "\n".join(failures)


def test_world_is_cached_and_rebuilds_byte_identically(quick_world, tmp_path, monkeypatch):
    from repro.worlds import trained

    config, _, world = quick_world
    monkeypatch.setattr(trained, "train_stage", lambda *a, **k: pytest.fail("trained again"))
    assert trained.build_trained_world(config, world.root, workers=1) == world  # cached: nothing is retrained
    monkeypatch.undo()

    copy = tmp_path / "copy"
    shutil.copytree(world.root, copy)
    shutil.rmtree(copy / "ft-03")
    (copy / "world.json").unlink()
    calls = []
    real = trained.train_stage
    monkeypatch.setattr(trained, "train_stage", lambda *a, **k: calls.append(1) or real(*a, **k))
    rebuilt = trained.build_trained_world(config, copy, workers=1)
    assert len(calls) == 1  # only the missing checkpoint is trained
    assert (rebuilt.checkpoints[2] / "model.safetensors").read_bytes() == (
        world.checkpoints[2] / "model.safetensors"
    ).read_bytes()
    recorded = json.loads((world.root / "world.json").read_text())
    assert recorded["recipe_hash"] == recipe_hash(config) and recorded["threads"] == 1


def test_table1_of_a_trained_world_run_is_what_the_runs_produced(quick_world):
    from repro.plan import build_plan
    from repro.report.paired_bootstrap import TIE_TOLERANCE
    from repro.report.results_view import collect
    from repro.report.table1 import build_table1
    from repro.results import ResultsStore
    from repro.runner.local_runner import run_worker

    config, runs_root, _ = quick_world
    project = runs_root.parent
    (project / "configs").mkdir(exist_ok=True)
    suites = yaml.safe_load((ROOT / "configs" / "suites.yaml").read_text())
    suites["suites"] = {"demo": suites["suites"]["demo"]}
    suites["suites"]["demo"]["include_path"] = str(runs_root / "worlds" / "demo-tasks")
    (project / "configs" / "suites.yaml").write_text(yaml.safe_dump(suites))
    experiment = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    experiment.update(name="trained-test", world=config.model_dump(mode="json"))
    experiment["methods"] = experiment["methods"][:2]  # TA and TIES
    experiment["merge"].update(sizes=[2, 12], subsets_per_size=2)
    path = project / "configs" / "trained-test.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))

    loaded = load_config(path)
    plan = build_plan(loaded)
    runs_dir = runs_root / "trained-test"
    from repro.runner.model_sources import ModelSources

    ModelSources(loaded, runs_root).prepare(loaded.base_names)
    summary = run_worker(loaded, plan, runs_dir, progress=False)
    assert not summary.failed and len(summary.done) == len(plan.jobs) == 1 + 12 + 2 * 3

    records = [json.loads(p.read_text()) for p in (runs_dir / "results").glob("*.json")]
    base = next(r["average"] for r in records if r["job"]["kind"] == "base")
    table = build_table1(collect(plan, ResultsStore(runs_dir)))
    row = next(r for r in table.rows if r[1] == "TA")
    singles = [r["average"] for r in records if r["job"]["kind"] == "single"]
    merges_n2 = [r["average"] for r in records if r["job"]["kind"] == "merge" and r["job"]["label"] == "TA"
                 and r["job"]["n"] == 2]
    for cell, values in ((row[3], singles), (row[4], merges_n2)):
        percent = 100 * sum(v - base > TIE_TOLERANCE for v in values) / len(values)  # a tie is no gain
        delta = round(100 * sum(v - base for v in values) / len(values), 2) + 0.0
        assert cell == f"{percent:.0f} / {delta:+.2f}"
    assert all(0 <= r["average"] <= 1 for r in records) and len({r["average"] for r in records}) > 3
