"""The method registry: names, paper defaults, parameter validation."""

from __future__ import annotations

import pytest

from repro.errors import MergeError
from repro.merge import METHODS, resolve_method_params


def test_the_seven_methods_with_the_paper_parameters():
    assert list(METHODS) == [
        "task_arithmetic",
        "ties",
        "model_stock",
        "tsv_m",
        "iso_c",
        "task_arithmetic_sb",
        "ties_sb",
    ]
    assert resolve_method_params("task_arithmetic", {}) == {"weight": 1.0, "normalize": True, "lambda": 1.0}
    ties = resolve_method_params("ties", {})
    assert (ties["density"], ties["lambda"], ties["normalize"]) == (0.1, 0.1, True)
    assert resolve_method_params("task_arithmetic_sb", {})["beta"] == 0.2
    sb = resolve_method_params("ties_sb", {})
    assert (sb["beta"], sb["lambda"], sb["density"], sb["normalize"]) == (0.2, 0.1, 0.1, True)
    assert resolve_method_params("tsv_m", {}) == {} == resolve_method_params("iso_c", {})
    for spec in METHODS.values():
        assert spec.reference and spec.title and spec.description and spec.mergekit_name


def test_values_are_typed_and_strings_from_the_command_line_parse():
    params = resolve_method_params("ties", {"lambda": "0.5", "normalize": "false", "density": 1})
    assert params["lambda"] == 0.5 and params["normalize"] is False and params["density"] == 1.0


@pytest.mark.parametrize(
    "name,params,needle",
    [
        ("ties_sbb", {}, "did you mean 'ties_sb'"),
        ("ties", {"lamda": 1}, "did you mean 'lambda'"),
        ("tsv_m", {"lambda": 1}, "takes no parameter 'lambda'"),
        ("ties", {"density": 0}, "density"),
        ("ties", {"density": 1.5}, "density"),
        ("ties_sb", {"beta": "x"}, "beta"),
        ("ties", {"normalize": "maybe"}, "normalize"),
        ("task_arithmetic", {"lambda": float("nan")}, "finite"),
    ],
)
def test_bad_names_and_values_are_merge_errors(name, params, needle):
    with pytest.raises(MergeError, match=needle):
        resolve_method_params(name, params)
