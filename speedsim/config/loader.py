"""YAML loading, ``--set`` overrides and pydantic errors turned into ``ConfigError``.

Every config file goes through ``load_mapping`` (file -> plain dict, relative
paths left for the schema to resolve), then ``apply_overrides`` (dotted key
paths from the command line), then ``validate`` (plain dict -> frozen object).
Each step raises ``ConfigError`` naming the file and the key path.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from speedsim.config.errors import ConfigError, KeyedValueError
from speedsim.config.keys import field_names, models_at, tag_of, unknown_key_message

M = TypeVar("M", bound=BaseModel)


class _PyLoader(yaml.SafeLoader):
    """YAML 1.1 without its float pitfall: ``1.0e9`` and ``1e9`` are floats here, as in
    YAML 1.2 and as every user writing a clock frequency expects (PyYAML alone reads
    them as strings)."""


class _Loader(getattr(yaml, "CSafeLoader", _PyLoader)):
    """``_PyLoader`` parsed by libyaml where PyYAML has it (about ten times faster)."""


_FLOAT = (
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping, or an error at a key written twice (PyYAML keeps the last one silently,
    so the first value a user edits would do nothing). YAML merge keys (``<<: *base``) are
    merged first, as PyYAML does; a key written beside them overrides the merged one."""
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            again = key in seen
        except TypeError:  # a list or a mapping written as a key
            raise yaml.constructor.ConstructorError(None, None, f"a {type(key).__name__} as a key",
                                                    key_node.start_mark) from None
        if again:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                    key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


for _loader in (_PyLoader, _Loader):
    _loader.add_implicit_resolver(*_FLOAT)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                            _mapping_without_duplicates)


def yaml_load(text: str) -> Any:
    """The document in ``text``. What libyaml rejects is parsed again in Python, whose
    error messages are the clearer ones (it names the tab that cannot start a token)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_PyLoader)


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping at its top level."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a UTF-8 text file (byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror})", file=str(path)) from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML{where}: {problem}", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of keys to values", file=str(path))
    return data


KIND_KEYS = {"hardware": {"clock_hz", "array", "dram", "buffers"},
             "workload": {"model", "generation", "strategies"},
             "sweep": {"axes", "mode"},
             "resolved run config": {"hw", "workload"}}
KIND_HINTS = {"hardware": "speedsim run HW.yaml WORKLOAD.yaml", "workload": "speedsim run HW.yaml WORKLOAD.yaml",
              "sweep": "run it with speedsim sweep FILE",
              "resolved run config": "run it alone: speedsim run FILE"}


def check_kind(data: dict[str, Any], kind: str, *, file: str) -> None:
    """``ConfigError`` when ``data`` is plainly another kind of config file (a workload given
    where the hardware belongs, …): its top-level keys match another kind's better than
    half and this kind's less than half."""
    def score(k: str) -> float:
        return len(KIND_KEYS[k] & set(data)) / len(KIND_KEYS[k])

    others = [k for k in KIND_KEYS if k != kind and score(k) > 0.5]
    if others and score(kind) < 0.5:
        best = max(others, key=score)
        raise ConfigError(f"this is a {best} file, not a {kind} file ({KIND_HINTS[best]})",
                          file=file)


def parse_override(text: str) -> tuple[str, Any]:
    """``'a.b.c=value'`` -> ``('a.b.c', value)``, the value typed as YAML would type it."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like key.path=value", file="--set")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"value of {key} is not valid YAML: {raw!r}", file="--set") from None
    return key, value


def set_path(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the dotted ``key`` set to ``value`` (mappings made as needed)."""
    out = copy.deepcopy(data)
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts[: i + 1])} is not a mapping", key=key)
        node = child
    node[parts[-1]] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: Iterable[tuple[str, Any]],
                    root: type[BaseModel] | None = None) -> dict[str, Any]:
    """``data`` with each dotted key set. With the schema ``root``, setting a tagged union's
    ``source`` to another value also drops the keys the new source does not take (switching
    ``weights.source`` from packaged to random leaves no stray ``name`` behind)."""
    for key, value in overrides:
        data = set_path(data, key, value)
        if root is not None and key.split(".")[-1] == "source":
            data = _prune_for_source(data, root, key.split(".")[:-1], value)
    return data


def blaming_overrides(build: Callable[[], M], overrides: Iterable[tuple[str, Any]],
                      section: str) -> M:
    """``build()``, its ``ConfigError`` at a key an override set (or below it) blamed on
    ``--set section.key`` rather than on the file that never held the value (``section``
    empty: the keys already carry it)."""
    try:
        return build()
    except ConfigError as exc:
        key = exc.key or ""
        if any(key == k or key.startswith((f"{k}.", f"{k}[")) for k, _ in overrides):
            raise ConfigError(exc.message, file="--set",
                              key=f"{section}.{key}" if section else key) from None
        raise


def _prune_for_source(data: dict[str, Any], root: type[BaseModel], parts: list[str],
                      source: Any) -> dict[str, Any]:
    chosen = [m for m in models_at(root, parts) if tag_of(m) == source]
    node = data
    for part in parts:
        node = node[part]
    if len(chosen) == 1:
        for stray in [k for k in node if k not in chosen[0].model_fields]:
            del node[stray]
    return data


def _drop_tags(loc: tuple[Any, ...], unions: set[str]) -> tuple[Any, ...]:
    out: list[Any] = []
    for i, item in enumerate(loc):
        if i > 0 and loc[i - 1] in unions and isinstance(item, str) and len(loc) > i + 1:
            continue
        out.append(item)
    return tuple(out)


def _key_path(loc: tuple[Any, ...]) -> str:
    """pydantic's error location -> a dotted key path a user can find in the YAML.

    Tagged unions add the tag value as a location element (e.g. ``'bernoulli'``);
    those and pydantic's internal markers are dropped.
    """
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str) and not item.startswith(("function-", "tagged-union", "literal[")):
            parts.append(item)
    path = ".".join(parts)
    return path.replace(".[", "[")


def validate(model: type[M], data: dict[str, Any], *, file: str,
             context: dict[str, Any] | None = None, unions: Iterable[str] = ()) -> M:
    """Plain dict -> frozen config object, or ``ConfigError`` for the first problem.

    ``unions`` names the fields holding tagged unions (``weights``, ``acceptance``…):
    pydantic inserts the tag value after them in error locations; it is dropped.
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        err = _first_error(exc.errors())
        raise ConfigError(_message(model, err), file=file,
                          key=_error_key(err, set(unions)) or None) from None
    except ConfigError as exc:
        raise exc.with_file(file) from None


def _first_error(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """An unknown key first: a misspelt required key also reports the right name as
    missing, and the typo is what the user has to fix."""
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    return (extra or errors)[0]


def _error_key(err: dict[str, Any], unions: set[str]) -> str:
    loc = _drop_tags(tuple(err["loc"]), unions)
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedValueError):
        loc = loc + tuple(cause.key.split("."))
    return _key_path(loc)


def _message(model: type[BaseModel], err: dict[str, Any]) -> str:
    """pydantic's message in the user's terms: the typed key, the value, no prefixes."""
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedValueError):
        return cause.message
    if err["type"] == "extra_forbidden":
        loc = tuple(err["loc"])
        return unknown_key_message(str(loc[-1]), field_names(models_at(model, loc[:-1])))
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and err["type"] not in ("value_error", "assertion_error") \
            and not isinstance(err["input"], dict):
        msg = f"{msg} (got {err['input']!r})"
    return msg
