"""`repro run --with-appendix`: a config and its appendix configs with one set of workers give exactly the
results of separate runs, config after config (same jobs, ids, scores, reused records), and no job is
computed twice; bad combinations and bad appendix configs are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import yaml
from smoke_project import smoke_project, write_config

from repro.cli import main
from repro.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path) -> Path:
    """A tiny config `mini` (one tiny Llama world, 3 checkpoints, TA on n = 2, 3) and its appendix config
    `mini_appendix` (a TA λ sweep over all 3 checkpoints whose λ = 1 point, base and single-checkpoint
    evaluations are jobs of `mini`, reused from it)."""
    project = tmp_path / "project"
    data = smoke_project(project)
    data.update(name="mini")
    data["world"].update(families=["llama"], checkpoints_per_base=3)
    data["merge"].update(sizes=[2, 3], subsets_per_size=1)
    data["evaluation"].update(limit=3)
    data["report"] = {"table3": [], "appendix_configs": ["mini_appendix.yaml"]}
    write_config(project, data, "mini.yaml")
    appendix = {key: data[key] for key in ("seed", "world", "methods", "merge", "evaluation")}
    appendix["merge"] = {**data["merge"], "sizes": []}
    appendix["methods"] = [{**data["methods"][0], "label": "TA"}]
    appendix.update(name="mini_appendix", description="λ sweep", reuse_results_from=["mini"],
                    sweeps=[{"name": "ta_lambda", "figure": 11, "methods": ["TA"], "title": "λ",
                             "grid": {"lambda": [0.5, 1.0]}}])
    write_config(project, appendix, "mini_appendix.yaml")
    return project


def _outcome(runs_dir: Path) -> dict:
    out = {}
    for record in ResultsStore(runs_dir).iter_results():
        data = record.to_json()
        scores = [{k: v for k, v in row.items() if k != "date"} for row in data["scores"]]
        merge = data.get("merge") or {}
        out[data["job"]["id"]] = (data["job"], scores, data["average"], merge.get("task_vector_l2"),
                                  data.get("reused_from"))
    return out


def test_one_run_with_appendix_gives_the_results_of_separate_runs(tmp_path):
    project = _project(tmp_path)
    config, appendix = project / "configs/mini.yaml", project / "configs/mini_appendix.yaml"
    assert main(["run", "--config", str(config), "--with-appendix", "--workers", "2", "--no-progress"]) == 0
    together = project / "runs"
    separate = tmp_path / "separate"
    separate.mkdir()
    (separate / "worlds").symlink_to(together / "worlds")  # the same world files, not rebuilt
    for path, name in ((config, "mini"), (appendix, "mini_appendix")):
        assert main(["run", "--config", str(path), "--runs-dir", str(separate / name), "--workers", "1",
                     "--no-progress"]) == 0
    for name in ("mini", "mini_appendix"):
        assert (together / name / "plan.json").read_bytes() == (separate / name / "plan.json").read_bytes()
        joint, alone = _outcome(together / name), _outcome(separate / name)
        assert len(joint) >= 6 and joint == alone  # same jobs (ids), scores, norms and reused records
    # the appendix config's λ = 1 point, base and single evaluations are mini's jobs: reused, not recomputed
    main_ids = set(_outcome(together / "mini"))
    shared = main_ids & set(_outcome(together / "mini_appendix"))
    assert len(shared) == 5  # base, 3 single checkpoints, the n = 3 merge (= λ 1.0 over all 3)
    assert all(_outcome(together / "mini_appendix")[i][4]["config"] == "mini" for i in shared)
    started = [e["job"] for name in ("mini", "mini_appendix")
               for e in ResultsStore(together / name).read_journal() if e["event"] == "start"]
    assert sorted(started) == sorted(set(started))  # every job computed once, in one of the two configs
    assert set(started) == main_ids | set(_outcome(together / "mini_appendix"))
    # a second run has nothing to do
    assert main(["run", "--config", str(config), "--with-appendix", "--workers", "1", "--no-progress"]) == 0
    assert len([e for name in ("mini", "mini_appendix") for e in ResultsStore(together / name).read_journal()
                if e["event"] == "start"]) == len(started)


def test_with_appendix_refuses_options_that_select_jobs_of_one_config(tmp_path, capsys):
    project = _project(tmp_path)
    config = str(project / "configs/mini.yaml")
    code = main(["run", "--config", config, "--with-appendix", "--executor", "slurm", "--only", "merge",
                 "--for", "table1", "--base", "tiny-llama"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for option in ("--executor slurm", "--only", "--for", "--base"):
        assert f"{option}: " in err
    assert not (project / "runs").exists()  # nothing written


def test_every_bad_appendix_config_is_reported_before_anything_is_written(tmp_path, capsys):
    project = _project(tmp_path)
    bad = project / "configs/mini_appendix.yaml"
    data = yaml.safe_load(bad.read_text())
    data["merge"]["subsets_per_size"] = "many"
    bad.write_text(yaml.safe_dump(data))
    other = yaml.safe_load(bad.read_text())
    other.update(name="mini_other", seed="not a seed")
    (project / "configs/mini_other.yaml").write_text(yaml.safe_dump(other))
    config = project / "configs/mini.yaml"
    data = yaml.safe_load(config.read_text())
    data["report"]["appendix_configs"] = ["mini_appendix.yaml", "mini_other.yaml"]
    config.write_text(yaml.safe_dump(data))
    code = main(["run", "--config", str(config), "--with-appendix", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "mini_appendix.yaml: merge.subsets_per_size" in err and "mini_other.yaml: seed" in err
    assert not (project / "runs").exists()


def test_a_config_without_appendix_configs_runs_just_itself(tmp_path):
    from repro.cli.run_with_appendix import load_all

    project = _project(tmp_path)
    config = project / "configs/mini.yaml"
    data = yaml.safe_load(config.read_text())
    data["report"]["appendix_configs"] = []
    config.write_text(yaml.safe_dump(data))
    assert [loaded.name for loaded in load_all(config)] == ["mini"]


def test_a_job_an_earlier_config_is_computing_is_waited_for_then_reused(tmp_path, monkeypatch):
    """A later config's job that an earlier config of the run planned and has not finished is tried last,
    and before it runs the worker waits while another worker holds it in the earlier config."""
    import threading
    import time
    from types import SimpleNamespace

    from repro.runner import multi_run
    from repro.runner.claims import ClaimBoard

    def target(name, ids):
        plan = SimpleNamespace(jobs=[SimpleNamespace(id=i) for i in ids], config_name=name)
        return multi_run.RunTarget(tmp_path / f"{name}.yaml", plan, tmp_path / "runs" / name)

    targets = [target("main", ["a", "b"]), target("other", ["b", "c"]), target("appendix", ["a", "b", "c", "d"])]
    loaded = SimpleNamespace(config=SimpleNamespace(reuse_results_from=["main"]))
    waits = multi_run._reuse_waits(loaded, targets, 2)
    assert waits == {"a": targets[0].runs_dir, "b": targets[0].runs_dir}  # only from a config it reuses
    adopted = []
    monkeypatch.setattr(multi_run, "reuse_jobs", lambda config, ids, runs_dir: adopted.append((ids, runs_dir)))
    held = ClaimBoard(targets[0].runs_dir / "claims").try_claim("a", "another worker")
    released = []

    def finish():
        time.sleep(0.5)
        released.append(time.monotonic())
        held.release()

    thread = threading.Thread(target=finish)
    thread.start()
    hook = multi_run._reuse_hook(loaded, targets[2], waits, poll_s=0.05)
    hook(SimpleNamespace(id="d"))  # not shared: no wait, nothing to adopt
    assert adopted == []
    hook(SimpleNamespace(id="a"))
    assert released and time.monotonic() >= released[0]
    thread.join()
    assert adopted == [({"a"}, targets[2].runs_dir)]
    assert not (targets[0].runs_dir / "claims" / "a.claim").exists()  # the worker's look left no claim


def test_failed_jobs_of_each_config_are_reported_and_exit_1(tmp_path, monkeypatch, capsys):
    from repro.runner import job_executor

    class Failing:
        def __init__(self, loaded, runs_dir, store):
            self.name = loaded.name

        def run(self, job):
            raise RuntimeError(f"broken in {self.name}")

    monkeypatch.setattr(job_executor, "JobExecutor", Failing)
    project = _project(tmp_path)
    config = project / "configs/mini.yaml"
    assert main(["run", "--config", str(config), "--with-appendix", "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"job(s) failed; see `repro status --config {config}`" in err
    assert f"job(s) failed; see `repro status --config {project / 'configs/mini_appendix.yaml'}`" in err
    failures = [ResultsStore(project / "runs" / name).read_failure(i)["error"]
                for name in ("mini", "mini_appendix") for i in ResultsStore(project / "runs" / name).failed_ids()]
    assert any("broken in mini_appendix" in e for e in failures) and any(e.endswith("broken in mini") for e in failures)
