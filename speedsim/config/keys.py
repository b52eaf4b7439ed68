"""Walking the config schema by key path: which keys exist where, and the nearest one to a typo.

The schema is the tree of ``Frozen`` classes below ``Hardware`` and
``Workload``. A field holds a config class directly, through ``Optional`` or
``Annotated``, or as a tagged union whose members are told apart by their
``source`` literal. The error messages (``unknown key 'x' (did you mean 'y'?)``),
the sweep spec's key check and the generated key reference all read the tree
through these functions, so they agree on what a key path is.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, Iterable, Literal, Sequence, Union

from pydantic import BaseModel


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config classes a field may hold (through Optional, Union and Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return models_in(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


TAG_FIELDS = ("source", "process", "dist")  # a tagged union's member names itself in one


def tag_field(model: type[BaseModel]) -> str | None:
    """The field whose literal selects ``model`` in a tagged union (``source``, or a traffic
    config's ``process`` / ``dist``), if it has one."""
    return next((name for name in TAG_FIELDS if name in model.model_fields and
                 typing.get_origin(model.model_fields[name].annotation) is Literal), None)


def tag_of(model: type[BaseModel]) -> str | None:
    """The literal that selects ``model`` in a tagged union, if it has one."""
    name = tag_field(model)
    return None if name is None else typing.get_args(model.model_fields[name].annotation)[0]


def _step(models: list[type[BaseModel]], part: Any) -> list[type[BaseModel]]:
    """The classes below ``models`` at location element ``part`` (a key, or a union tag)."""
    tagged = [m for m in models if tag_of(m) == part]
    if len(models) > 1 and tagged:
        return tagged
    fields = field_names(models)
    if part not in fields:
        return []
    return [sub for m in models if part in m.model_fields
            for sub in models_in(m.model_fields[part].annotation)]


def field_names(models: Iterable[type[BaseModel]]) -> list[str]:
    """Every key of any of ``models``, in declaration order."""
    return list(dict.fromkeys(name for m in models for name in m.model_fields))


def models_at(root: type[BaseModel], loc: Sequence[Any]) -> list[type[BaseModel]]:
    """The config classes at pydantic location ``loc`` below ``root`` (tags included)."""
    models = [root]
    for part in loc:
        models = _step(models, part)
        if not models:
            return []
    return models


def nearest(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate a typo most likely meant, or None when none is close."""
    near = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return near[0] if near else None


def unknown_key_message(name: str, candidates: Sequence[str]) -> str:
    """``unknown key 'x' (did you mean 'y'?)``, or the valid keys when none is close."""
    guess = nearest(name, candidates)
    if guess is not None:
        return f"unknown key {name!r} (did you mean {guess!r}?)"
    return f"unknown key {name!r} (valid keys: {', '.join(candidates) or 'none'})"
