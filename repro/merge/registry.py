"""The merge-method registry: name -> implementation, paper reference and default parameters.

Every method runs inside mergekit: `mergekit_name` is the mergekit merge method that implements it
(stock mergekit for Task Arithmetic, TIES and Model Stock; ours, registered by
`repro.merge.mergekit_plugin`, for the rest). Parameters are split the way mergekit users write them:
`weight` and `density` are per-model (`models[i].parameters`), everything else is global (`parameters`).

Adding a method: write one file under `repro/merge/methods/`, add it to `mergekit_plugin.OUR_METHODS`
and add one `MethodSpec` line below.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from repro.errors import MergeError

# Parameters bound per input model in mergekit's YAML (`models[i].parameters`); the rest are global.
PER_MODEL_PARAMETERS = frozenset({"weight", "density"})


@dataclass(frozen=True)
class ParamRule:
    """Type and range of one method parameter."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    help: str = ""


PARAM_RULES: Mapping[str, ParamRule] = MappingProxyType(
    {
        "weight": ParamRule(float, help="per-model coefficient alpha_i of its task vector"),
        "normalize": ParamRule(bool, help="divide the merged update by the sum of (agreeing) weights"),
        "lambda": ParamRule(float, help="global scale of the merged update"),
        "density": ParamRule(float, 0.0, 1.0, True, help="fraction of largest-|delta| entries TIES keeps"),
        "int8_mask": ParamRule(bool, help="mergekit's int8 sign mask (memory only, same result)"),
        "beta": ParamRule(float, 0.0, 1.0, True, help="Subspace Boosting cumulative-energy threshold"),
        "filter_wise": ParamRule(bool, help="Model Stock angle per row instead of per tensor"),
    }
)


@dataclass(frozen=True)
class MethodSpec:
    """One merge method of the study."""

    name: str
    title: str
    reference: str
    defaults: Mapping[str, Any]
    description: str
    mergekit_name: str
    ours: bool = False  # implemented in repro/merge/methods (else stock mergekit)
    parameters: tuple[str, ...] = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        if not self.parameters:
            object.__setattr__(self, "parameters", tuple(self.defaults))


_SPECS = (
    MethodSpec(
        name="task_arithmetic",
        title="Task Arithmetic",
        reference="Ilharco et al., Editing Models with Task Arithmetic, ICLR 2023 (arXiv:2212.04089)",
        defaults={"weight": 1.0, "normalize": True, "lambda": 1.0},
        description="W0 + lambda * sum_i w_i delta_i (divided by sum_i w_i when normalize).",
        mergekit_name="task_arithmetic",
    ),
    MethodSpec(
        name="ties",
        title="TIES-Merging",
        reference="Yadav et al., TIES-Merging: Resolving Interference When Merging Models, NeurIPS 2023 "
        "(arXiv:2306.01708)",
        defaults={"weight": 1.0, "density": 0.1, "normalize": True, "lambda": 0.1, "int8_mask": False},
        description="Trim each delta to its top-density magnitudes, elect signs by sum, average the "
        "agreeing entries, scale by lambda.",
        mergekit_name="ties",
    ),
    MethodSpec(
        name="model_stock",
        title="Model Stock",
        reference="Jang et al., Model Stock: All We Need Is Just a Few Fine-tuned Models, ECCV 2024 "
        "(arXiv:2403.19522)",
        defaults={"filter_wise": False},
        description="Interpolate between W0 and the mean of the W_i with t = N cos / (1 + (N-1) cos).",
        mergekit_name="model_stock",
    ),
    MethodSpec(
        name="tsv_m",
        title="TSV-Merge",
        reference="Gargiulo et al., Task Singular Vectors: Reducing Task Interference in Model Merging, "
        "CVPR 2025",
        defaults={},
        description="Keep the top 1/T singular triplets of every delta, orthogonalize the concatenated "
        "bases (polar factor), reconstruct; mean of deltas for non-matrix and embedding tensors.",
        mergekit_name="tsv_m",
        ours=True,
    ),
    MethodSpec(
        name="iso_c",
        title="Iso-C",
        reference="Marczak et al., No Task Left Behind: Isotropic Model Merging with Common and "
        "Task-Specific Subspaces, ICML 2025",
        defaults={},
        description="SVD of the summed deltas with every singular value replaced by their mean; mean of "
        "deltas for non-matrix and embedding tensors.",
        mergekit_name="iso_c",
        ours=True,
    ),
    MethodSpec(
        name="task_arithmetic_sb",
        title="Task Arithmetic + Subspace Boosting",
        reference="Skorobogat, Roth and Georgescu, Subspace-Boosted Model Merging, arXiv 2025",
        defaults={"weight": 1.0, "normalize": False, "lambda": 1.0, "beta": 0.2},
        description="Task Arithmetic whose summed update of every attention/MLP projection matrix has its "
        "singular values below the beta-energy cutoff raised to the cutoff value.",
        mergekit_name="task_arithmetic_sb",
        ours=True,
    ),
    MethodSpec(
        name="ties_sb",
        title="TIES + Subspace Boosting",
        reference="Skorobogat, Roth and Georgescu, Subspace-Boosted Model Merging, arXiv 2025",
        defaults={"weight": 1.0, "density": 0.1, "normalize": True, "lambda": 0.1, "beta": 0.2},
        description="TIES whose sum of agreeing entries is boosted (projection matrices) before the "
        "division by the agreeing count and the lambda scale.",
        mergekit_name="ties_sb",
        ours=True,
    ),
)

METHODS: Mapping[str, MethodSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def get_method(name: str) -> MethodSpec:
    """The spec of method `name`, or a MergeError naming it and the closest known names."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(METHODS), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise MergeError(
            f"unknown merge method {name!r}; {hint}known methods: {', '.join(METHODS)}",
            field="method",
        ) from None


def _coerce(name: str, value: Any, rule: ParamRule) -> Any:
    """Validate one parameter value (strings from `--set key=value` are parsed)."""
    if rule.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise MergeError(f"must be true or false, got {value!r}", field=name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MergeError(f"must be a number, got {value!r}", field=name)
    try:
        number = float(value)
    except ValueError:
        raise MergeError(f"must be a number, got {value!r}", field=name) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise MergeError(f"must be a finite number, got {value!r}", field=name)
    low, high = rule.minimum, rule.maximum
    if low is not None and (number < low or (rule.exclusive_minimum and number == low)):
        bound = f"> {low}" if rule.exclusive_minimum else f">= {low}"
        raise MergeError(f"must be {bound} and <= {high}, got {value!r}", field=name)
    if high is not None and number > high:
        raise MergeError(f"must be <= {high}, got {value!r}", field=name)
    return number


def resolve_method_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The method's defaults overridden by `params`, validated and typed (floats / bools).

    Unknown method -> MergeError suggesting close names; a parameter the method does not take or an
    ill-typed value -> MergeError naming the parameter and the accepted ones.
    """
    spec = get_method(name)
    params = dict(params or {})
    resolved = dict(spec.defaults)
    for key, value in params.items():
        if key not in spec.parameters:
            accepted = ", ".join(spec.parameters) or "none"
            close = difflib.get_close_matches(str(key), spec.parameters, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MergeError(
                f"method {name!r} takes no parameter {key!r}{hint}; it accepts: {accepted}",
                field=str(key),
            )
        resolved[key] = _coerce(key, value, PARAM_RULES[key])
    return resolved


def split_parameters(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-model parameters, global parameters), as mergekit's YAML places them."""
    per_model = {k: v for k, v in params.items() if k in PER_MODEL_PARAMETERS}
    global_ = {k: v for k, v in params.items() if k not in PER_MODEL_PARAMETERS}
    return per_model, global_
