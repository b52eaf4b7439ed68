"""Strategies behind a registry: one name, one scheduler class.

A strategy (the protocol of ``speedsim.strategies.base``) turns the op trace
(and, for speculative strategies, the acceptance outcomes) into a ``Plan``: the
work-item DAG the accelerator replays plus the token executions it contains. Registering a name twice is a bug and fails at
import; asking for an unknown name is bad input and lists the valid ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from speedsim.config.errors import ConfigError

if TYPE_CHECKING:
    from speedsim.strategies.base import Strategy

_STRATEGIES: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        if name in _STRATEGIES:
            raise ValueError(f"strategy {name!r} is already registered by "
                             f"{_STRATEGIES[name].__qualname__}")
        cls.name = name
        _STRATEGIES[name] = cls
        return cls
    return deco


def get_strategy(name: str) -> "type[Strategy]":
    _load_builtin()
    try:
        return _STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(sorted(_STRATEGIES))}",
                          key="strategies") from None


def strategy_names() -> list[str]:
    _load_builtin()
    return sorted(_STRATEGIES)


def _load_builtin() -> None:
    from speedsim.strategies import (draft_spec, early_exit_spec, sequential,  # noqa: F401
                                     shallow, speed)  # (registration side effect)
