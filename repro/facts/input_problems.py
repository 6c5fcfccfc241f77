"""Every problem of a config or lockfile at once, one line each, unknown keys first with "did you mean".

A misspelt key is the usual cause of a "missing" one: `sed: 2026` makes `seed` missing. So unknown keys
come first, each with the closest allowed key at that place, and a "missing" problem whose key is the
suggestion for an unknown key at the same level is folded into that unknown key's line.

`pydantic_problems(exc, model)` turns a pydantic ValidationError into [(field, message)], walking the
model to name fields and suggest keys; `ProblemList` lets a model validator report several problems.
`UniqueKeyLoader` is the safe YAML loader of both files (refuses duplicate keys).
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable

import yaml
from pydantic import BaseModel, ValidationError

Problem = tuple[str, str]  # (field path, message including the fix)


class ProblemList(ValueError):
    """Raised inside a model validator to report several problems at precise fields."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def suggest(word: object, candidates: typing.Iterable[str]) -> str | None:
    """The closest candidate to `word` (difflib, case-insensitive), or None."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def field_path(*parts: str | int) -> str:
    """The one spelling of a field's place in a file: keys joined by dots, list positions in brackets
    (`field_path("methods", 0, "params", "lambda")` -> "methods[0].params.lambda"). Config, lockfile and
    pydantic problems all name their fields through it."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "":
            path += f".{part}" if path else str(part)
    return path


def shown_input(value: object, limit: int = 60) -> str:
    """A value as a problem line quotes it: its repr, cut to `limit` characters."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def pydantic_message(err: dict) -> str:
    """pydantic's message of one error without its "Value error, " prefix."""
    return err["msg"].removeprefix("Value error, ")


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """"not valid YAML at line L, column C: <problem>" for a parse error of a config or lockfile."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"


def _models_in(annotation) -> tuple[type[BaseModel] | None, bool]:
    """(the pydantic model inside an annotation, whether it sits under a mapping's values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict or origin is typing.Mapping:
        model, _ = _models_in(args[1]) if len(args) == 2 else (None, False)
        return model, model is not None
    for arg in args:
        model, mapping = _models_in(arg)
        if model is not None:
            return model, mapping
    return None, False


def _walk(model: type[BaseModel], loc: tuple) -> tuple[str, list[str] | None]:
    """(readable field path of `loc`, allowed keys of the model holding its last part)."""
    parts: list[str | int] = []
    current, skip_key = model, False
    allowed = list(model.model_fields)
    for part in loc:
        if isinstance(part, int):
            parts.append(part)
            continue
        if skip_key:  # a key of a mapping (e.g. a repo id): part of the path, not a field
            parts.append(str(part))
            skip_key = False
            continue
        if current is None:
            break  # union tags and the like after the last model: not part of the field path
        allowed = list(current.model_fields)
        parts.append(part)
        field = current.model_fields.get(part)
        if field is None:
            current = None
            continue
        current, skip_key = _models_in(field.annotation)
    path = field_path(*parts)
    return path or "(top level)", allowed


def pydantic_problems(
    exc: ValidationError, model: type[BaseModel], describe: Callable[[dict, str], str] | None = None
) -> list[Problem]:
    """Every problem of a failed validation: unknown keys first (with suggestions), then the rest.

    `describe(error, field)` may rewrite the message of other errors; messages of the same field are
    joined (a union type reports each alternative).
    """
    unknown: list[Problem] = []
    suggested: set[str] = set()
    others: dict[str, list[str]] = {}
    missing: dict[str, str] = {}
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ProblemList):
            for field, message in ctx_error.problems:
                others.setdefault(field, []).append(message)
            continue
        field, allowed = _walk(model, tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            key = err["loc"][-1]
            parent = field.rsplit(".", 1)[0] if "." in field else ""
            close = suggest(key, allowed or [])
            if close:
                suggested.add(f"{parent}.{close}" if parent else close)
                hint = f"did you mean `{close}`? Rename it"
            else:
                hint = f"remove it; allowed here: {', '.join(allowed or [])}"
            unknown.append((field, f"unknown key {key!r}; {hint}"))
            continue
        if err["type"] == "missing":
            missing[field] = "required key is missing; add it"
            continue
        message = describe(err, field) if describe else pydantic_message(err)
        if message not in others.setdefault(field, []):
            others[field].append(message)
    problems = list(unknown)
    for field, message in missing.items():
        if field in suggested:  # the misspelt unknown key above is this one
            continue
        problems.append((field, message))
    problems += [(field, " or ".join(messages)) for field, messages in others.items()]
    return problems


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate mapping keys (plain YAML silently keeps the last)."""


def _construct_unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError as error:  # an unhashable key (a list or mapping used as a key)
            raise yaml.constructor.ConstructorError(
                None, None, "a list or mapping cannot be a key", key_node.start_mark
            ) from error
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


# Aliases (`*name`) may repeat an anchored value; a config or lockfile never needs them to expand to more
# than this many nodes. Without a bound, nine levels of nine aliases ("an alias bomb") expand to 387M
# nodes: seconds of parsing and gigabytes of memory before any check could refuse the file.
MAX_EXPANDED_NODES = 100_000


class AliasExpansionError(yaml.YAMLError):
    """The document's aliases expand beyond MAX_EXPANDED_NODES (or refer to themselves)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _check_alias_expansion(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> None:
    """Count the nodes of the document with every alias expanded, without expanding anything: an alias is
    the same node object as its anchor, so each node's expanded size is computed once (iteratively)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > limit:
                raise AliasExpansionError(
                    f"its aliases (*name) expand to more than {limit:,} values; write the values out or "
                    "use fewer aliases (a YAML alias bomb is refused)")
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise AliasExpansionError("an alias (*name) refers to a value that contains it; write the value out")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str):
    """Parse YAML text with the safe, duplicate-refusing loader (raises yaml.YAMLError, RecursionError).

    Aliases are bounded: a document whose aliases expand to more than MAX_EXPANDED_NODES nodes is refused
    (AliasExpansionError, a yaml.YAMLError) after composing its node graph, before any value is built."""
    loader = UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_alias_expansion(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()
