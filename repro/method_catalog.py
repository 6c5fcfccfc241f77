"""The merge methods the kit knows, as facts: names, parameters with their study defaults, input contract.

This is the one place a method's facts are stated. It lives in the facts layer and imports neither torch
nor mergekit, so configs, plans and reports validate method names and parameters and compute job ids
without loading a model library. The declarations follow mergekit's own declarative model: a
`Parameter` is a mergekit `ParameterSpec` (name, type, default, scope: per model = NON_BASE, else
SHARED) plus the range the study accepts, and `min_models` is mergekit's `InputContract.min_non_base`
(every method here requires a base). The merge layer builds each method's mergekit spec from these facts
(`repro.merge.mergekit_specs.mergekit_spec`), so the two cannot disagree; for the three stock mergekit methods
a test checks the declared facts against mergekit's own spec.

A method's traits (`MethodTraits`: its kernel kind, whether its inputs are checked finite first, its SVD
cache, how a device comparison is judged, its cost class, its place in the paper's tables) say how it
runs; the engine, the grid, `make gpu-check`, the cost model and the report read them, never the name.

Adding a method (see docs/adding-a-method.md):
- in this repository: write `repro/merge/methods/<name>.py` (its mergekit method object, e.g.
  `repro.merge.mergekit_specs.facts_merge_method` or, for Task Arithmetic's family,
  `repro.merge.methods.task_arithmetic_family.TaskArithmeticFamily`) and add its `MethodFacts` to
  `BUILTIN_METHODS` below;
- from another package (or a test): one file holding `FACTS = MethodFacts(...)` and its merge method,
  plus one entry point line in group `repro.merge_methods`: `<name> = <module>:FACTS`. The kit lists
  entry-point names without importing them; their module is imported when the method's facts are needed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from types import MappingProxyType
from typing import Any

from repro.errors import MergeError

ENTRY_POINT_GROUP = "repro.merge_methods"

# How the engine computes a method's tensors (`MethodTraits.kernel`):
ELEMENTWISE = "elementwise"  # generalized task arithmetic, chunk by chunk (`repro.merge.elementwise_kernel`)
STOCK = "stock"  # Model Stock's interpolation (`repro.merge.model_stock_kernel`)
GROUP = "group"  # the method's mergekit object on the whole tensor group (`repro.merge.group_kernels`)
KERNELS = (ELEMENTWISE, STOCK, GROUP)
# How `make gpu-check` judges a CUDA merge against the CPU one (`MethodTraits.device_agreement`):
EXACT = "exact"  # element-wise arithmetic: relative difference under 1e-5
SVD = "svd"  # through an SVD (cuSOLVER vs LAPACK): under 1e-3
SPECTRUM = "spectrum"  # as SVD; where raised null directions make tensors arbitrary, the spectra must agree
DEVICE_AGREEMENTS = (EXACT, SVD, SPECTRUM)
# Cost classes (`MethodTraits.cost_class`): the key of configs/costs.yaml `merge_s` that prices a method
# for which a base has no entry of its own.
COST_CLASSES = ("default", "svd")
TABLES = ("table1", "table2", "table3")


@dataclass(frozen=True)
class Parameter:
    """One method parameter (mergekit's ParameterSpec, plus the accepted range)."""

    name: str
    type: type  # bool, float or int
    default: Any
    per_model: bool = False  # mergekit scope NON_BASE (`models[i].parameters`), else SHARED (`parameters`)
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    help: str = ""


@dataclass(frozen=True)
class MethodTraits:
    """How a method runs, read by the engine, the grid, `make gpu-check`, the cost model and the report
    (mergekit's MergeMethodSpec carries such traits too). Stated once, with the method's facts."""

    kernel: str = GROUP  # ELEMENTWISE, STOCK or GROUP
    # ELEMENTWISE only: TIES' magnitude trim of each delta to its top `density` entries before combining,
    # and TIES' sign election (mergekit's sparsification_method=magnitude, consensus_method=sum)
    trim: bool = False
    sign_consensus: bool = False
    check_finite_first: bool = False  # scan the inputs for NaN/Inf before merging (SVDs need finite inputs)
    svd_cache: bool = False  # the method object offers `with_svd_cache(cache)` (per-checkpoint SVDs)
    records_boosts: bool = False  # the method object offers `with_observer(BoostCount)` (Subspace Boosting)
    trim_cache: bool = False  # the method object offers `with_trim_cache(TrimRuleCache)` (TIES' trim rules)
    device_agreement: str = EXACT  # how gpu-check compares its CUDA and CPU merges
    cost_class: str = "default"  # costs.yaml merge_s key used where a base has no entry for the method
    tables: tuple[tuple[str, int], ...] = ()  # (table, position) in the paper's tables a config does not set
    paper_norm_group: str = ""  # Figure 4: "low" (task-vector norm below 50) or "high" (far above)

    def problems(self) -> list[str]:
        """What is wrong with these traits (empty: nothing)."""
        found = []
        if self.kernel not in KERNELS:
            found.append(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.kernel != ELEMENTWISE and (self.trim or self.sign_consensus):
            found.append("trim and sign_consensus apply to the elementwise kernel only")
        if self.device_agreement not in DEVICE_AGREEMENTS:
            found.append(f"device_agreement must be one of {', '.join(DEVICE_AGREEMENTS)}, "
                         f"got {self.device_agreement!r}")
        if self.cost_class not in COST_CLASSES:
            found.append(f"cost_class must be one of {', '.join(COST_CLASSES)}, got {self.cost_class!r}")
        found += [f"tables: unknown table {table!r} (known: {', '.join(TABLES)})"
                  for table, _ in self.tables if table not in TABLES]
        if self.paper_norm_group not in ("", "low", "high"):
            found.append(f"paper_norm_group must be '', 'low' or 'high', got {self.paper_norm_group!r}")
        return found


@dataclass(frozen=True)
class MethodFacts:
    """One merge method (mergekit's MergeMethodSpec + InputContract, plus the study's citation)."""

    name: str
    title: str
    reference: str
    description: str
    parameters: tuple[Parameter, ...] = ()
    min_models: int = 1  # fine-tuned checkpoints besides the base (mergekit's min_non_base)
    # "module:attribute" of the mergekit MergeMethod implementing it; empty: the stock mergekit method
    # called `mergekit_name` (Task Arithmetic, TIES, Model Stock run mergekit's own code).
    implementation: str = ""
    mergekit_name: str = ""
    traits: MethodTraits = MethodTraits()
    defaults: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "mergekit_name", self.mergekit_name or self.name)
        object.__setattr__(self, "defaults", MappingProxyType({p.name: p.default for p in self.parameters}))
        problems = self.traits.problems()
        needed = ("weight", "normalize", "lambda", *(("density",) if self.traits.trim else ()))
        if self.traits.kernel == ELEMENTWISE:
            problems += [f"the elementwise kernel needs parameter {name!r}" for name in needed
                         if name not in self.parameter_names]
        if problems:
            raise MergeError(f"merge method {self.name!r}: " + "; ".join(problems), field="traits")

    @property
    def ours(self) -> bool:
        """Implemented in this kit (or a plugin), registered with mergekit by `repro.merge.mergekit_plugin`."""
        return bool(self.implementation)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


# Parameters shared by several methods (each method states its own default).
WEIGHT = Parameter("weight", float, 1.0, per_model=True, help="per-model coefficient alpha_i of its task vector")
NORMALIZE = Parameter("normalize", bool, True, help="divide the merged update by the sum of (agreeing) weights")
LAMBDA = Parameter("lambda", float, 1.0, help="global scale of the merged update")
DENSITY = Parameter("density", float, 0.1, per_model=True, minimum=0.0, maximum=1.0, exclusive_minimum=True,
                    help="fraction of largest-|delta| entries TIES keeps")
INT8_MASK = Parameter("int8_mask", bool, False, help="mergekit's int8 sign mask (memory only, same result)")
BETA = Parameter("beta", float, 0.2, minimum=0.0, maximum=1.0,
                 help="Subspace Boosting cumulative-energy threshold (0: every singular value raised to the "
                 "largest; 1: nothing raised, the base method)")
KEEP_NULL = Parameter("keep_null", bool, False,
                      help="Subspace Boosting: numerically-zero singular values stay zero (a result determined "
                      "by the update alone); false raises them like the others, as the paper's authors did")
FILTER_WISE = Parameter("filter_wise", bool, False, help="Model Stock angle per row instead of per tensor")

_SB_REFERENCE = "Skorobogat, Roth and Georgescu, Subspace-Boosted Model Merging, arXiv 2025"

BUILTIN_METHODS: tuple[MethodFacts, ...] = (
    MethodFacts(
        name="task_arithmetic",
        title="Task Arithmetic",
        reference="Ilharco et al., Editing Models with Task Arithmetic, ICLR 2023 (arXiv:2212.04089)",
        description="W0 + lambda * sum_i w_i delta_i (divided by sum_i w_i when normalize).",
        parameters=(WEIGHT, NORMALIZE, LAMBDA),
        traits=MethodTraits(kernel=ELEMENTWISE, tables=(("table1", 0), ("table2", 0)),
                            paper_norm_group="low"),
    ),
    MethodFacts(
        name="ties",
        title="TIES-Merging",
        reference="Yadav et al., TIES-Merging: Resolving Interference When Merging Models, NeurIPS 2023 "
        "(arXiv:2306.01708)",
        description="Trim each delta to its top-density magnitudes, elect signs by sum, average the "
        "agreeing entries, scale by lambda.",
        parameters=(WEIGHT, DENSITY, NORMALIZE, replace(LAMBDA, default=0.1), INT8_MASK),
        traits=MethodTraits(kernel=ELEMENTWISE, trim=True, sign_consensus=True, tables=(("table1", 2),),
                            paper_norm_group="low"),
    ),
    MethodFacts(
        name="model_stock",
        title="Model Stock",
        reference="Jang et al., Model Stock: All We Need Is Just a Few Fine-tuned Models, ECCV 2024 "
        "(arXiv:2403.19522)",
        description="Interpolate between W0 and the mean of the W_i with t = N cos / (1 + (N-1) cos).",
        parameters=(FILTER_WISE,),
        min_models=2,
        traits=MethodTraits(kernel=STOCK, tables=(("table1", 1),), paper_norm_group="low"),
    ),
    MethodFacts(
        name="tsv_m",
        title="TSV-Merge",
        reference="Gargiulo et al., Task Singular Vectors: Reducing Task Interference in Model Merging, "
        "CVPR 2025",
        description="Keep the top 1/T singular triplets of every delta, orthogonalize the concatenated "
        "bases (polar factor), reconstruct; mean of deltas for non-matrix and embedding tensors.",
        implementation="repro.merge.methods.tsv_m:tsv_m_merge_method",
        traits=MethodTraits(check_finite_first=True, svd_cache=True, device_agreement=SVD, cost_class="svd",
                            tables=(("table3", 2),), paper_norm_group="high"),
    ),
    MethodFacts(
        name="iso_c",
        title="Iso-C",
        reference="Marczak et al., No Task Left Behind: Isotropic Model Merging with Common and "
        "Task-Specific Subspaces, ICML 2025",
        description="SVD of the summed deltas with every singular value replaced by their mean; mean of "
        "deltas for non-matrix and embedding tensors.",
        implementation="repro.merge.methods.iso_c:iso_c_merge_method",
        traits=MethodTraits(check_finite_first=True, device_agreement=SVD, cost_class="svd",
                            tables=(("table3", 3),), paper_norm_group="high"),
    ),
    MethodFacts(
        name="task_arithmetic_sb",
        title="Task Arithmetic + Subspace Boosting",
        reference=_SB_REFERENCE,
        description="Task Arithmetic whose summed update of every attention/MLP projection matrix has its "
        "singular values below the beta-energy cutoff raised to the cutoff value.",
        parameters=(WEIGHT, NORMALIZE, LAMBDA, BETA, KEEP_NULL),
        implementation="repro.merge.methods.subspace_boosting:task_arithmetic_sb_merge_method",
        traits=MethodTraits(check_finite_first=True, records_boosts=True, device_agreement=SPECTRUM,
                            cost_class="svd", tables=(("table3", 0),), paper_norm_group="low"),
    ),
    MethodFacts(
        name="ties_sb",
        title="TIES + Subspace Boosting",
        reference=_SB_REFERENCE,
        description="TIES whose sum of agreeing entries is boosted (projection matrices) before the "
        "division by the agreeing count and the lambda scale.",
        parameters=(WEIGHT, DENSITY, NORMALIZE, replace(LAMBDA, default=0.1), BETA, KEEP_NULL),
        implementation="repro.merge.methods.subspace_boosting:ties_sb_merge_method",
        traits=MethodTraits(check_finite_first=True, records_boosts=True, trim_cache=True, device_agreement=SPECTRUM,
                            cost_class="svd", tables=(("table3", 1),), paper_norm_group="low"),
    ),
)
_BUILTIN = {facts.name: facts for facts in BUILTIN_METHODS}


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name not in _BUILTIN}


def method_names() -> list[str]:
    """Every known method name: the built-in ones, then the plugins' (entry point names, not imported)."""
    return [*_BUILTIN, *sorted(_entry_points())]


def _plugin_facts(name: str, value: str) -> MethodFacts:
    """The facts a plugin's entry point names (importing its module; Python keeps imported modules)."""
    entry = metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
    try:
        facts = entry.load()
    except (ImportError, AttributeError) as error:
        raise MergeError(f"cannot load merge method {name!r} from entry point {value!r}: {error}",
                         field="method") from error
    if not isinstance(facts, MethodFacts) or facts.name != name:
        raise MergeError(f"entry point {name} = {value} must name a MethodFacts called {name!r}", field="method")
    return facts


def get_method(name: str) -> MethodFacts:
    """The facts of method `name`, or a MergeError naming it and the closest known names."""
    if isinstance(name, str) and name in _BUILTIN:
        return _BUILTIN[name]
    plugins = _entry_points()
    if isinstance(name, str) and name in plugins:
        return _plugin_facts(name, plugins[name].value)
    known = method_names()
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise MergeError(f"unknown merge method {name!r}; {hint}known methods: {', '.join(known)}", field="method")


class _Methods(Mapping[str, MethodFacts]):
    """name -> facts of every known method, read when asked (plugins can be installed at any time)."""

    def __getitem__(self, name: str) -> MethodFacts:
        try:
            return get_method(name)
        except MergeError as error:
            raise KeyError(name) from error

    def __iter__(self) -> Iterator[str]:
        return iter(method_names())

    def __len__(self) -> int:
        return len(method_names())

    def __contains__(self, name: object) -> bool:
        return name in method_names()


METHODS: Mapping[str, MethodFacts] = _Methods()


def default_table_methods() -> dict[str, tuple[str, ...]]:
    """table -> the built-in methods it shows when a config's `report:` section does not say (the paper's
    Tables 1-3), in the order of their `tables` positions. A plugin's method joins a table through the
    config's `report:` section (its facts module is imported only where its method is used)."""
    placed: dict[str, list[tuple[int, str]]] = {table: [] for table in TABLES}
    for facts in BUILTIN_METHODS:
        for table, position in facts.traits.tables:
            placed[table].append((position, facts.name))
    return {table: tuple(name for _, name in sorted(entries)) for table, entries in placed.items()}


def builtin_methods_where(predicate) -> tuple[str, ...]:
    """Names of the built-in methods whose traits satisfy `predicate(traits)`, in catalog order."""
    return tuple(facts.name for facts in BUILTIN_METHODS if predicate(facts.traits))


def _coerce(name: str, value: Any, rule: Parameter) -> Any:
    """Validate one parameter value (strings from `--set key=value` are parsed)."""
    if rule.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise MergeError(f"must be true or false, got {value!r}", field=name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MergeError(f"must be a number, got {value!r}", field=name)
    try:
        number = float(value)
    except ValueError as error:
        raise MergeError(f"must be a number, got {value!r}", field=name) from error
    if number != number or number in (float("inf"), float("-inf")):
        raise MergeError(f"must be a finite number, got {value!r}", field=name)
    if rule.type is int:
        if number != int(number):
            raise MergeError(f"must be a whole number, got {value!r}", field=name)
        number = int(number)
    low, high = rule.minimum, rule.maximum
    if low is not None and (number < low or (rule.exclusive_minimum and number == low)):
        bound = f"> {low}" if rule.exclusive_minimum else f">= {low}"
        raise MergeError(f"must be {bound} and <= {high}, got {value!r}", field=name)
    if high is not None and number > high:
        raise MergeError(f"must be <= {high}, got {value!r}", field=name)
    return number


def resolve_method_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The method's defaults overridden by `params`, validated and typed (floats / ints / bools).

    Unknown method -> MergeError suggesting close names; a parameter the method does not take or an
    ill-typed value -> MergeError naming the parameter and the accepted ones.
    """
    facts = get_method(name)
    accepted = facts.parameter_names
    resolved = dict(facts.defaults)
    for key, value in dict(params or {}).items():
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MergeError(
                f"method {name!r} takes no parameter {key!r}{hint}; it accepts: {', '.join(accepted) or 'none'}",
                field=str(key),
            )
        resolved[key] = _coerce(key, value, facts.parameter(key))
    return resolved


def split_parameters(name: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-model parameters, global parameters) of method `name`, as mergekit's YAML places them."""
    per_model = {p.name for p in get_method(name).parameters if p.per_model}
    return ({k: v for k, v in params.items() if k in per_model},
            {k: v for k, v in params.items() if k not in per_model})
