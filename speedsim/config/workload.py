"""Workload schema: the model shape, its sharing, its weights, the generation and strategies.

Key paths are a contract (DESIGN §8): sweeps and notebooks address them by name.
Relative file paths (``weights.path``, ``acceptance.path``) are resolved against
the directory of the YAML file by ``load_workload``; the objects here never
touch the file system except to check that a named file exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from speedsim.config.base import Frozen, NonNegInt, PosInt, SharingScheme
from speedsim.config.errors import KeyedValueError
from speedsim.config.loader import apply_overrides, load_mapping, validate



class Sharing(Frozen):
    """Which weight set each of the N layers uses (Takase & Kiyono's schemes plus ``none``)."""

    scheme: SharingScheme = "none"
    unique_layers: Optional[PosInt] = None  # U; None means U = N (required unless scheme is none)


def existing_file(path: str, info: ValidationInfo, what: str) -> str:
    """``path`` resolved against the config file's folder (validation context
    ``base_dir``); it must name an existing file."""
    base = (info.context or {}).get("base_dir")
    p = Path(path) if base is None or Path(path).is_absolute() else Path(base) / path
    if not p.is_file():
        raise ValueError(f"{what} not found: {p}")
    return str(p)


class RandomWeights(Frozen):
    source: Literal["random"]
    seed: NonNegInt = 0
    init_std: Annotated[float, Field(gt=0)] = 0.02


class NpzWeights(Frozen):
    source: Literal["npz"]
    path: str  # resolved against the workload file's folder; must exist

    @field_validator("path")
    @classmethod
    def _exists(cls, v: str, info: ValidationInfo) -> str:
        return existing_file(v, info, "weights file")


class PackagedWeights(Frozen):
    """Weights shipped inside the package (``speedsim/data/<name>.npz``)."""

    source: Literal["packaged"]
    name: str


class ShapeOnlyWeights(Frozen):
    source: Literal["shape_only"]


Weights = Annotated[Union[RandomWeights, NpzWeights, PackagedWeights, ShapeOnlyWeights],
                    Field(discriminator="source")]


class ModelShape(Frozen):
    """GPT-style pre-LN decoder (DESIGN §4)."""

    d_model: PosInt
    n_heads: PosInt
    n_kv_heads: Optional[PosInt] = None  # grouped-query attention; None means n_heads
    d_ff: PosInt
    n_layers: PosInt  # N
    vocab_size: PosInt
    max_seq_len: Optional[PosInt] = None  # positional table size; None means prompt + new tokens
    mlp: Literal["gelu", "gated_gelu"] = "gelu"
    sharing: Sharing = Sharing()
    weights: Weights = RandomWeights(source="random")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def unique_layers(self) -> int:
        """U, the number of distinct weight sets."""
        if self.sharing.scheme == "none":
            return self.n_layers
        return self.sharing.unique_layers or self.n_layers

    @model_validator(mode="after")
    def _shape_consistent(self) -> "ModelShape":
        if self.d_model % self.n_heads:
            raise _at("n_heads", f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise _at("n_kv_heads", f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}")
        s = self.sharing
        if s.scheme == "none" and s.unique_layers not in (None, self.n_layers):
            raise _at("sharing.unique_layers", "scheme none means unique_layers = n_layers")
        if s.scheme != "none" and s.unique_layers is None:
            raise _at("sharing.unique_layers", f"required for scheme {s.scheme}")
        if s.unique_layers is not None and s.unique_layers > self.n_layers:
            raise _at("sharing.unique_layers",
                      f"unique_layers={s.unique_layers} exceeds n_layers={self.n_layers}")
        return self


class Generation(Frozen):
    prompt_tokens: PosInt  # P
    new_tokens: Annotated[int, Field(ge=2)]  # tokens generated per sequence; the first comes
    #                                          from prefill, the rest from decode
    batch: PosInt = 1  # B
    seed: NonNegInt = 0  # seeds the random prompt when no prompt is given
    prompt: Optional[str] = None  # text, encoded byte-level (vocab must be >= 256)

    @model_validator(mode="after")
    def _prompt_fits(self) -> "Generation":
        if self.prompt is not None:
            n = len(self.prompt.encode("utf-8"))
            if n != self.prompt_tokens:
                raise _at("prompt", f"the text prompt is {n} UTF-8 bytes (= tokens); "
                                    f"prompt_tokens is {self.prompt_tokens}: make them equal")
        return self


class ModelAcceptance(Frozen):
    """Early and final predictions of the reference decoder decide acceptance."""

    source: Literal["model"]


class BernoulliAcceptance(Frozen):
    source: Literal["bernoulli"]
    rate: Annotated[float, Field(ge=0.0, le=1.0)]
    seed: NonNegInt = 0


class FileAcceptance(Frozen):
    """A recorded per-position 0/1 sequence (one per line, or CSV column ``accepted``)."""

    source: Literal["file"]
    path: str

    @field_validator("path")
    @classmethod
    def _exists(cls, v: str, info: ValidationInfo) -> str:
        return existing_file(v, info, "acceptance file")


Acceptance = Annotated[Union[ModelAcceptance, BernoulliAcceptance, FileAcceptance],
                       Field(discriminator="source")]


class SequentialStrategy(Frozen):
    pass


class SpeedStrategy(Frozen):
    stages: Optional[PosInt] = None  # G; None means N / U
    acceptance: Acceptance = ModelAcceptance(source="model")


class Strategies(Frozen):
    sequential: Optional[SequentialStrategy] = SequentialStrategy()
    speed: Optional[SpeedStrategy] = None

    def names(self) -> list[str]:
        return [n for n in type(self).model_fields if getattr(self, n) is not None]


class Workload(Frozen):
    name: str
    model: ModelShape
    generation: Generation
    strategies: Strategies = Strategies()

    @property
    def stages(self) -> int:
        """G for SPEED: configured, or N / U."""
        sp = self.strategies.speed
        if sp is not None and sp.stages is not None:
            return sp.stages
        return self.model.n_layers // self.model.unique_layers

    @model_validator(mode="after")
    def _consistent(self) -> "Workload":
        m, g, sp = self.model, self.generation, self.strategies.speed
        if m.max_seq_len is not None and m.max_seq_len < g.prompt_tokens + g.new_tokens:
            raise _at("model.max_seq_len",
                      f"max_seq_len={m.max_seq_len} < prompt_tokens + new_tokens = "
                      f"{g.prompt_tokens + g.new_tokens}")
        if g.prompt is not None and m.vocab_size < 256:
            raise _at("generation.prompt", "a text prompt is byte-level and needs vocab_size >= 256")
        if sp is not None:
            if sp.stages is None and m.n_layers % m.unique_layers:
                raise _at("strategies.speed.stages",
                          f"n_layers={m.n_layers} is not a multiple of unique_layers="
                          f"{m.unique_layers}; set stages explicitly")
            G = self.stages
            if G < 2:
                raise _at("strategies.speed.stages",
                          "SPEED needs at least 2 stages (with sharing none, N / U = 1: "
                          "set stages explicitly)")
            if m.n_layers % G:
                raise _at("strategies.speed.stages",
                          f"stages={G} must divide n_layers={m.n_layers}")
            if sp.acceptance.source == "model" and m.weights.source == "shape_only":
                raise _at("strategies.speed.acceptance.source",
                          "source 'model' needs numeric weights; use bernoulli or file "
                          "with weights.source shape_only")
        if self.strategies.sequential is None and sp is None:
            raise _at("strategies", "at least one strategy is needed")
        return self


def _at(key: str, message: str) -> KeyedValueError:
    return KeyedValueError(key, message)


_UNIONS = ("weights", "acceptance")


def workload_from_dict(data: dict[str, Any], *, file: str = "<workload>",
                       base_dir: str | Path | None = None) -> Workload:
    return validate(Workload, data, file=file, unions=_UNIONS,
                    context={"base_dir": str(base_dir) if base_dir else None})


def load_workload(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Workload:
    """Read, override and validate a workload YAML file."""
    path = Path(path)
    data = apply_overrides(load_mapping(path), overrides)
    return workload_from_dict(data, file=str(path), base_dir=path.parent)
