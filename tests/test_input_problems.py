"""One spelling of field paths, quoted inputs and YAML errors for configs and lockfiles; one collector of
package versions for every record."""

import json

import pytest

from repro.errors import ConfigError, LockError
from repro.facts.input_problems import field_path, shown_input


def test_field_path_spells_keys_and_positions_one_way():
    assert field_path("methods", 0, "params", "lambda") == "methods[0].params.lambda"
    assert field_path("bases", "llama-3b", "homogeneous", "math", 2) == "bases.llama-3b.homogeneous.math[2]"
    assert field_path(field_path("sweeps", 1), "grid") == "sweeps[1].grid"
    assert field_path() == ""
    assert shown_input("x" * 100).endswith("...") and len(shown_input("x" * 100)) == 60
    assert shown_input(3) == "3"


def test_config_and_lockfile_report_yaml_errors_alike_and_keep_the_cause(tmp_path):
    from repro.facts.config import load_config
    from repro.facts.lockfile import load_lockfile

    bad = "a: [1, 2\n"
    (tmp_path / "c.yaml").write_text(bad)
    (tmp_path / "checkpoints.lock").write_text(bad)
    with pytest.raises(ConfigError) as config_error:
        load_config(tmp_path / "c.yaml")
    with pytest.raises(LockError) as lock_error:
        load_lockfile(tmp_path / "checkpoints.lock")
    config_line = str(config_error.value).split(": ", 1)[1]
    lock_line = str(lock_error.value).split(": ", 1)[1]
    assert config_line == lock_line and config_line.startswith("not valid YAML at line 2")
    assert config_error.value.__cause__ is not None and lock_error.value.__cause__ is not None


def test_lockfile_problems_use_the_shared_field_paths(tmp_path):
    from repro.facts.lockfile import parse_lockfile

    text = (
        "version: 1\ncheckpoints:\n  org/a: {revision: null}\n"
        "bases:\n  b:\n    model: org/a\n    in_the_wild: [org/zz]\n"
    )
    with pytest.raises(LockError) as error:
        parse_lockfile(text)
    assert any(field == field_path("bases", "b", "in_the_wild", 0) for field, _ in error.value.problems)


def test_merge_record_and_job_provenance_read_versions_the_same_way(tiny_llama_world, tmp_path):
    from repro.merge import merge_checkpoints
    from repro.package_versions import package_version
    from repro.runner.provenance import package_versions

    merge_checkpoints(tiny_llama_world.base, tiny_llama_world.checkpoints[:2], "task_arithmetic",
                      out_dir=tmp_path / "m")
    record = json.loads((tmp_path / "m" / "repro_merge.json").read_text())
    provenance = package_versions()
    for name in ("repro", "mergekit", "torch"):
        assert record["versions"][name] == provenance[name] == package_version(name)
    assert package_version("surely-not-a-package-xyz") == "not installed"
