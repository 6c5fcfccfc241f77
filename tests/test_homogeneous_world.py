"""Appendix E (homogeneous merges) on the kit's offline worlds: expert groups of a world
(`homogeneous.groups`), `world_override`, the base shared with an identical finished world, and a real run
of configs/smoke_homogeneous.yaml (tiny worlds) to Tables 4-5, the Appendix E table and Figures 27-28."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.errors import ConfigError
from repro.facts.config import load_config
from repro.plan import build_plan

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _copy_configs(tmp_path: Path, *names: str) -> Path:
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    for name in ("suites.yaml", *names):
        shutil.copy(ROOT / "configs" / name, configs / name)
    if not (tmp_path / "tasks").exists():
        shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    return configs


def _variant(tmp_path: Path, mutate) -> Path:
    configs = _copy_configs(tmp_path, "smoke.yaml")
    data = yaml.safe_load((ROOT / "configs/smoke_homogeneous.yaml").read_text())
    mutate(data)
    path = configs / "smoke_homogeneous.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def test_world_groups_plan_whole_groups_as_subsets():
    loaded = load_config(ROOT / "configs/demo_homogeneous.yaml")
    plan = build_plan(loaded)
    merges = [j for j in plan.jobs if j.kind == "homogeneous"]
    assert len(merges) == 3 * 7 and len([j for j in plan.jobs if j.kind == "base"]) == 1
    subsets = {j.experiment: j.subset for j in merges}
    assert subsets == {"numeric_only": (1, 2, 3), "language_only": (4, 5, 6), "all": (1, 2, 3, 4, 5, 6)}
    suites = {j.experiment: j.suites for j in merges}
    assert suites["all"] == ("demo_numeric", "demo_language") and suites["numeric_only"] == ("demo_numeric",)
    assert all(j.base == "demo-llama" and not j.checkpoints for j in merges)
    assert len({j.id for j in plan.jobs}) == len(plan.jobs)


def test_world_override_keeps_the_demo_base_and_replaces_the_finetunes():
    from repro.worlds.trained import _base_key

    demo = load_config(ROOT / "configs/demo.yaml").config.world
    homogeneous = load_config(ROOT / "configs/demo_homogeneous.yaml").config.world
    assert _base_key(homogeneous) == _base_key(demo)  # the same base, bit for bit
    assert homogeneous.name == demo.name and homogeneous.tasks == demo.tasks
    assert [f.name for f in homogeneous.finetunes][:3] == ["numeric-add", "numeric-count", "numeric-mixed"]
    assert all(not f.conventions for f in homogeneous.finetunes)  # homogeneous experts: no conflicting labels


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["homogeneous"].pop("groups"), "homogeneous.groups", "names its expert groups"),
        (lambda d: d["homogeneous"]["groups"].update(numeric=[1, 2, 9]), "homogeneous.groups.numeric[2]",
         "outside 1..6"),
        (lambda d: d["homogeneous"]["groups"].update(numeric=[1, 1]), "homogeneous.groups.numeric[1]", "twice"),
        (lambda d: d["homogeneous"]["groups"].update(numeric=["medical-1"]), "homogeneous.groups.numeric[0]",
         "no fine-tune named"),
        (lambda d: d["homogeneous"]["experiments"][0].update(groups=["maths"]),
         "homogeneous.experiments[0].groups[0]", "no group 'maths'"),
        (lambda d: d["homogeneous"].update(bases=["tiny-mistral"]), "homogeneous.bases[0]", "tiny-llama"),
        (lambda d: d["homogeneous"]["experiments"][1].update(suites=["smoke_word"]),
         "homogeneous.experiments[1].suites[0]", "unknown suite"),
        (lambda d: d.update(world_override=[1]), "world_override", "mapping"),
    ],
)
def test_bad_world_groups_are_one_clear_error(tmp_path, mutate, field, words):
    path = _variant(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert field in text and words in text, text
    assert str(path) in text


def test_lockfile_groups_cannot_be_overridden(tmp_path):
    configs = _copy_configs(tmp_path, "paper.yaml")
    shutil.copy(ROOT / "checkpoints.lock", tmp_path / "checkpoints.lock")
    data = yaml.safe_load((ROOT / "configs/homogeneous.yaml").read_text())
    data["homogeneous"]["groups"] = {"math": ["x/y"]}
    (configs / "homogeneous.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"homogeneous.groups: a lockfile config takes its expert groups"):
        load_config(configs / "homogeneous.yaml")


def _fake_world(folder: Path, world_json: dict, stage: dict) -> None:
    from repro.worlds.recipe import WORLD_CODE_VERSION

    (folder / "base").mkdir(parents=True)
    (folder / "base" / "model.safetensors").write_bytes(b"weights of " + folder.name.encode())
    (folder / "base" / "repro_world.json").write_text(json.dumps({"role": "base", "stage": stage}))
    import importlib.metadata

    (folder / "world.json").write_text(json.dumps({"code": WORLD_CODE_VERSION, "recipe": world_json,
                                                   "torch": importlib.metadata.version("torch")}))


def test_a_base_identical_to_a_finished_worlds_is_copied_not_retrained(tmp_path):
    from repro.worlds.trained import _copy_identical_base, load_world, world_folder

    demo = load_config(ROOT / "configs/demo.yaml").config.world
    homogeneous = load_config(ROOT / "configs/demo_homogeneous.yaml").config.world
    runs = tmp_path / "runs"
    stage = demo.pretrain.model_dump(mode="json")
    _fake_world(world_folder(runs, demo), demo.model_dump(mode="json"), stage)
    other_seed = demo.model_copy(update={"seed": demo.seed + 1})
    _fake_world(runs / "worlds" / "aaa-other-seed", other_seed.model_dump(mode="json"), stage)  # sorted first
    built = load_world(world_folder(runs, homogeneous), homogeneous)
    source = _copy_identical_base(homogeneous, built, stage)
    assert source == world_folder(runs, demo)  # not the world of another seed
    assert (built.base / "model.safetensors").read_bytes() == b"weights of " + source.name.encode()
    # a world whose base differs (another seed) finds no identical base
    lonely = load_world(tmp_path / "runs" / "worlds" / "x", other_seed.model_copy(update={"name": "x"}))
    shutil.rmtree(runs / "worlds" / "aaa-other-seed")
    assert _copy_identical_base(other_seed, lonely, stage) is None


def _repro(*args: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True,
                          env={**os.environ, **OFFLINE})


def test_smoke_homogeneous_runs_for_real_and_renders_tables_4_5_and_figures_27_28(tmp_path):
    """The quick profile of Appendix E: real merges of whole expert groups of the tiny worlds, evaluated on
    the domain suites, then `repro report all` from the stored results (twice: byte-identical)."""
    config = ROOT / "configs/smoke_homogeneous.yaml"
    runs = tmp_path / "runs" / "smoke_homogeneous"
    proc = _repro("run", "--config", str(config), "--runs-dir", str(runs), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = []
    for attempt in ("a", "b"):
        proc = _repro("report", "all", "--config", str(config), "--runs-dir", str(runs), "--out", str(tmp_path / attempt))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / attempt).iterdir())})
    assert outputs[0] == outputs[1]
    manifest = json.loads(outputs[0]["manifest.json"])
    counts = {a["key"]: a["n_results"] for a in manifest["artifacts"]}
    assert counts == {"table4": 0, "table5": 0, "table6": 0, "appendix_e": 14,
                      "fig27_homogeneous_tiny-llama": 7, "fig28_homogeneous_tiny-qwen3": 7}
    appendix = outputs[0]["appendix_e.csv"].decode().splitlines()
    assert appendix[0] == ("Model,Method,base: smoke_numeric,base: smoke_words,numeric_only: smoke_numeric,"
                           "words_only: smoke_words,all: smoke_numeric,all: smoke_words")
    assert len(appendix) == 1 + 2 * 2 and "–" not in "".join(appendix)  # every cell from a real result
    for row in appendix[1:]:
        assert all(0.0 <= float(v) <= 100.0 for v in row.split(",")[2:])
    assert outputs[0]["table4.csv"].decode().splitlines()[1] == "tiny-llama,Numeric,checkpoint 1,generated offline (repro.worlds.tiny)"
    assert outputs[0]["table5.csv"].decode().splitlines()[:2] == ["Smoke numeric Tasks,Smoke words Tasks",
                                                                  "smoke_arithmetic,smoke_antonyms"]
    for stem in ("fig27_homogeneous_tiny-llama", "fig28_homogeneous_tiny-qwen3"):
        assert outputs[0][f"{stem}.png"][:8] == b"\x89PNG\r\n\x1a\n"
    captions = {a["key"]: a["notes"][0] for a in manifest["artifacts"]}
    assert captions["fig27_homogeneous_tiny-llama"].startswith("Paper: Figure 27 — homogeneous merges")
    assert "(Qwen3 8B)" in captions["fig27_homogeneous_tiny-llama"]
    assert "Differs: base (not one of the paper's: tiny-llama)" in captions["fig27_homogeneous_tiny-llama"]


@pytest.mark.parametrize("config", ["smoke.yaml", "demo_homogeneous.yaml", "demo_appendix.yaml", "demo_quick.yaml"])
def test_every_paper_figure_is_rendered_or_listed_as_not_supported(tmp_path, config):
    """The page accounts for all of Figures 3-28: rendered, "no results yet", or "not supported by these
    results" with the reason; nothing is silently missing, nothing crashes on a config without the data."""
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_results import write_synthetic_results

    from repro.report.render_all import render_all
    from repro.results import ResultsStore

    loaded = load_config(ROOT / "configs" / config)
    write_synthetic_results(loaded, tmp_path / "runs")
    artifacts, skipped = render_all(loaded, build_plan(loaded), ResultsStore(tmp_path / "runs"), tmp_path / "out")
    keys = [a.key for a in artifacts]
    families = {"Figure 3 ": "fig03_", "Figure 4 ": "fig04_", "Figure 6 ": "fig06_", "Figures 7-10": "_taskwise_",
                "Figure 11 ": "fig11_", "Figure 12 ": "fig12_", "Figures 13-16": "_ties_grid_", "Figure 17 ": "fig17_",
                "Figure 18 ": "fig18_", "Figures 19-22": "_cosine_", "Figures 23-26": "_layer_signs_",
                "Figures 27-28": "_homogeneous_"}
    for family, fragment in families.items():
        drawn = any(fragment in key for key in keys)
        listed = [s for s in skipped if s.startswith(family)]
        assert drawn != bool(listed), (family, keys, skipped)  # exactly one of the two
        assert all("not supported by these results (" in s or s.endswith("no results yet") for s in listed)
    for artifact in artifacts:  # every artifact names the paper table/figure it corresponds to
        assert artifact.notes and artifact.notes[0].startswith("Paper: "), artifact.key
    page = (tmp_path / "out" / "index.html").read_text()
    assert "not supported by these results" in page


@pytest.mark.slow  # ~40 s idle, 2-3 min on a loaded 2-core machine: `pytest -m slow tests/test_homogeneous_world.py`
def test_trained_quick_profile_homogeneous_world_to_figure_27(tmp_path):
    """configs/demo_homogeneous.yaml in the trained world's quick profile (tests/test_world_trained.py: a
    smaller model, fewer steps): its six experts train for real, the base of a finished world with the same
    base recipe is copied (not retrained), and Appendix E runs to Figure 27, Tables 4-5 and the table."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_world_trained import quick_profile

    from repro.plan import build_plan as plan_of
    from repro.report.render_all import render_all
    from repro.results import ResultsStore
    from repro.runner.local_runner import run_worker
    from repro.runner.model_sources import ModelSources
    from repro.worlds.recipe import TrainedWorldConfig
    from repro.worlds.trained import build_trained_world, world_folder

    experiment = yaml.safe_load((ROOT / "configs/demo_homogeneous.yaml").read_text())
    demo_world = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())["world"]
    world = quick_profile({**demo_world, **experiment.pop("world_override")})
    world["finetunes"] = [{**f, "steps": 60} for f in world["finetunes"]]
    world["pretrain"] = {**world["pretrain"], "steps": 150}
    runs_root = tmp_path / "runs"
    # a finished world with the same base recipe (other fine-tunes): its base must be reused, bit for bit
    sibling = TrainedWorldConfig.model_validate({**world, "finetunes": world["finetunes"][:1]})
    first = build_trained_world(sibling, world_folder(runs_root, sibling), workers=1)

    configs = _copy_configs(tmp_path, "demo.yaml")
    suites = yaml.safe_load((configs / "suites.yaml").read_text())
    for name in ("demo", "demo_numeric", "demo_language"):
        suites["suites"][name]["include_path"] = str(runs_root / "worlds" / "demo-tasks")
    (configs / "suites.yaml").write_text(yaml.safe_dump(suites))
    experiment.pop("world_from")
    experiment.pop("methods_from")
    experiment["homogeneous"]["bases"] = [world["name"]]
    experiment.update(world=world, methods=yaml.safe_load((ROOT / "configs/demo.yaml").read_text())["methods"][:2])
    path = configs / "demo_homogeneous.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True))
    loaded = load_config(path)
    plan = plan_of(loaded)
    ModelSources(loaded, runs_root).prepare(loaded.base_names)
    built = build_trained_world(loaded.config.world, world_folder(runs_root, loaded.config.world))
    assert (built.base / "model.safetensors").read_bytes() == (first.base / "model.safetensors").read_bytes()
    summary = run_worker(loaded, plan, runs_root / "demo_homogeneous", progress=False)
    assert not summary.failed and len(summary.done) == len(plan.jobs) == 1 + 2 * 3

    artifacts, _ = render_all(loaded, plan, ResultsStore(runs_root / "demo_homogeneous"), tmp_path / "out")
    assert [a.key for a in artifacts] == ["table4", "table5", "table6", "appendix_e", "fig27_homogeneous_demo-quick-test"]
    rows = (tmp_path / "out" / "appendix_e.csv").read_text().splitlines()
    assert rows[0] == ("Model,Method,base: demo_numeric,base: demo_language,numeric_only: demo_numeric,"
                       "language_only: demo_language,all: demo_numeric,all: demo_language")
    values = [float(v) for row in rows[1:] for v in row.split(",")[2:]]
    assert len(values) == 2 * 6 and all(0 <= v <= 100 for v in values) and len(set(values)) > 2
    table4 = (tmp_path / "out" / "table4.csv").read_text().splitlines()
    assert table4[1].startswith("demo-quick-test,Numeric,ft-01 numeric-add,") and len(table4) == 1 + 6


def test_an_equal_accuracy_summed_in_another_order_is_no_gain():
    """Found on the demo world: two checkpoints with the base's accuracy (one item more on one task, one less
    on another) differ from it by 1.1e-16 and were counted as beating it in Table 1 and its CI companion."""
    import numpy as np

    from repro.report.paired_bootstrap import cell_bootstrap
    from repro.report.table1 import _cell

    base, tie = 0.757142857142857, 0.7571428571428571
    assert tie - base > 0  # the float noise itself
    cell = _cell([tie, 0.80, 0.70], base, 3)
    assert cell.percent == pytest.approx(100 / 3)
    observed = np.array([base, tie, 0.80])
    replicates = np.tile(observed, (4, 1))
    cb = cell_bootstrap(observed, replicates, [1, 2], 0, seed=0, resample_models=False)
    assert list(cb.cell_share) == [0.5] * 4 and list(cb.significant_gains()) == [False, True]
