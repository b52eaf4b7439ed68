"""The config key reference (``docs/config.md``), generated from the schema itself.

Every key of ``Hardware`` and ``Workload`` gets one table row: its dotted path
(as ``--set`` and sweeps write it), type and allowed values, default, unit
and the comment written beside it in the schema. Units come from the key's
name, the project's contract (``_hz``, ``_gb_s``, ``_kib``…). Tagged unions
(``model.weights``, ``strategies.speed.acceptance``) list each ``source``
with its own keys. ``tests/test_config_reference.py`` fails when the file
and the schema disagree; ``make docs`` (``python -m speedsim.config.reference``)
regenerates it.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from typing import Annotated, Any, Iterator, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from speedsim.config.hw import Hardware
from speedsim.config.keys import models_in, tag_field, tag_of
from speedsim.config.traffic import Traffic
from speedsim.config.workload import Workload

UNITS = {"_hz": "Hz", "_gb_s": "GB/s (10⁹ bytes/s)", "_kib": "KiB (1024 bytes)", "_ns": "ns",
         "_pj_per_bit": "pJ/bit", "_pj_per_byte": "pJ/byte", "_pj": "pJ", "_w": "W",
         "_bytes": "bytes", "_tokens": "tokens", "_layers": "layers", "_len": "positions"}

HEADER = """# Config reference

Generated from the schema by `python -m speedsim.config.reference > docs/config.md`
(`make docs`); `tests/test_config_reference.py` keeps it in sync. Every key can be set
in the YAML file or on the command line as `--set hw.<path>=value` /
`--set workload.<path>=value` (values typed as YAML). Unknown keys, wrong types and
impossible values are errors naming the file and the key path.
"""


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``# comment`` written after each field of ``model``'s class body, with the
    comment-only lines that continue it; a field with no comment of its own takes the
    comment-only lines written just above it."""
    try:
        lines = inspect.getsource(model).splitlines()
    except (OSError, TypeError):
        return {}
    notes: dict[str, str] = {}
    last, pending = None, []
    for line in lines:
        field = re.match(r"^    (\w+): [^#]*(?:#\s*(.*))?$", line)
        more = re.match(r"^\s+#\s*(.*)$", line)
        if more:
            pending.append(more.group(1).strip())
            continue
        if field and pending and not field.group(2):
            notes[field.group(1)] = " ".join(pending)  # the comment above it
        elif pending and last:
            notes[last] += " " + " ".join(pending)  # it continued the field before
        pending = []
        last = field.group(1) if field and field.group(2) else None
        if last:
            notes[last] = field.group(2).strip()
    if pending and last:
        notes[last] += " " + " ".join(pending)
    return notes


def _unit(name: str) -> str:
    return next((u for suffix, u in UNITS.items() if name.endswith(suffix)), "")


def _bounds(metadata: list[Any]) -> str:
    ops = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    parts = [f"{sym} {getattr(m, op):g}" for m in metadata for op, sym in ops.items()
             if isinstance(m, annotated_types.BaseMetadata) and hasattr(m, op)]
    return f" {', '.join(parts)}" if parts else ""


def type_text(annotation: Any, metadata: list[Any] = ()) -> str:
    """A reader's name for a field type: ``int > 0``, ``'ws' | 'os'``, ``mapping or null``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *meta = typing.get_args(annotation)
        return type_text(inner, [*metadata, *meta, *getattr(meta[0], "metadata", [])] if meta else metadata)
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if models_in(annotation) and len(models_in(annotation)) > 1:
            text = f"mapping, by `{tag_field(models_in(annotation)[0])}`"
        else:
            text = " or ".join(type_text(a, metadata) for a in args)
        return f"{text} or null" if type(None) in typing.get_args(annotation) else text
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if origin in (list, tuple):
        return f"list of {type_text(typing.get_args(annotation)[0])}"
    name = getattr(annotation, "__name__", str(annotation))
    return f"{name}{_bounds(list(metadata))}"


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.default if field.default is not PydanticUndefined else field.get_default(call_default_factory=True)
    if value is None:
        return "null"
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{value}`"


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """One markdown table row per key below ``model``, depth first."""
    notes = _comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        kind = type_text(field.annotation, field.metadata)
        subs = models_in(field.annotation)
        note = notes.get(name) or (_doc(subs[0]) if len(subs) == 1 else "")
        yield f"| `{path}` | {kind} | {default_text(field)} | {_unit(name)} | {note} |"
        if len(subs) == 1:
            yield from rows(subs[0], f"{path}.")
        for sub in subs if len(subs) > 1 else ():
            tag = tag_field(sub)
            yield f"| `{path}` with `{tag}: {tag_of(sub)}` | | | | {_doc(sub)} |"
            yield from (r for r in rows(sub, f"{path}.") if not r.startswith(f"| `{path}.{tag}`"))


def _doc(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) if model.__doc__ else ""
    return " ".join((doc or "").split("\n\n")[0].split())


def section(title: str, model: type[BaseModel]) -> str:
    intro = [_doc(model), ""] if _doc(model) else []
    head = ["", f"## {title}", "", *intro,
            "| key | type / allowed values | default | unit | meaning |", "|---|---|---|---|---|"]
    return "\n".join(head + list(rows(model))) + "\n"


def markdown() -> str:
    return (HEADER + section("Hardware (`hw.`)", Hardware) + section("Workload (`workload.`)", Workload)
            + section("Traffic (`traffic.`, `speedsim serve`)", Traffic))


if __name__ == "__main__":
    sys.stdout.write(markdown())
