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

from speedsim.config.base import Frozen, NonNegFloat, NonNegInt, PosInt, SharingScheme
from speedsim.config.errors import KeyedValueError
from speedsim.config.loader import (apply_overrides, blaming_overrides, check_kind, load_mapping,
                                    validate)
from speedsim.config.weightsfile import weights_positions



class Sharing(Frozen):
    """Which weight set each of the N layers uses (Takase & Kiyono's schemes plus ``none``,
    and ``loop``: a prelude, a core of U sets repeated R times, a coda)."""

    scheme: SharingScheme = "none"  # layer -> weight set map
    unique_layers: Optional[PosInt] = None  # U; None means U = N (required unless scheme is none)
    prelude_layers: NonNegInt = 0  # P, unshared layers before the core (scheme loop only)
    coda_layers: NonNegInt = 0  # C, unshared layers after the core (scheme loop only);
    #                             R = (n_layers - P - C) / U must be an integer


def existing_file(path: str, info: ValidationInfo, what: str) -> str:
    """``path`` resolved against the config file's folder (validation context
    ``base_dir``); it must name an existing file."""
    base = (info.context or {}).get("base_dir")
    p = Path(path) if base is None or Path(path).is_absolute() else Path(base) / path
    if not p.is_file():
        raise ValueError(f"{what} not found: {p}")
    return str(p.resolve())  # absolute: a resolved config re-runs from any folder


class RandomWeights(Frozen):
    """Seeded random initialisation (untrained: early predictions rarely match)."""

    source: Literal["random"]
    seed: NonNegInt = 0  # seeds the initialisation
    init_std: Annotated[float, Field(gt=0)] = 0.02  # standard deviation of the normal initialisation


class NpzWeights(Frozen):
    """Weights read from an ``.npz`` file (``speedsim.model.weights`` layout)."""

    source: Literal["npz"]
    path: str  # resolved against the workload file's folder; must exist

    @field_validator("path")
    @classmethod
    def _exists(cls, v: str, info: ValidationInfo) -> str:
        return existing_file(v, info, "weights file")


class PackagedWeights(Frozen):
    """Weights shipped inside the package (``speedsim/data/<name>.npz``)."""

    source: Literal["packaged"]
    name: str  # speedsim/data/<name>.npz


class ShapeOnlyWeights(Frozen):
    """No numerics: the op trace is built from the shape alone (large models)."""

    source: Literal["shape_only"]


Weights = Annotated[Union[RandomWeights, NpzWeights, PackagedWeights, ShapeOnlyWeights],
                    Field(discriminator="source")]


class ModelShape(Frozen):
    """GPT-style pre-LN decoder (DESIGN §4)."""

    d_model: PosInt  # hidden size
    n_heads: PosInt  # attention heads; must divide d_model
    n_kv_heads: Optional[PosInt] = None  # grouped-query attention; None means n_heads
    d_ff: PosInt  # MLP hidden size
    n_layers: PosInt  # N
    vocab_size: PosInt  # LM head outputs (tied to the embedding)
    max_seq_len: Optional[PosInt] = None  # positional table size; None means prompt + new tokens
    mlp: Literal["gelu", "gated_gelu"] = "gelu"  # gated: three MLP matrices instead of two
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
        """U: the number of distinct weight sets (of the core, for ``loop``)."""
        if self.sharing.scheme == "none":
            return self.n_layers
        return self.sharing.unique_layers or self.n_layers

    @property
    def weight_sets(self) -> int:
        """Distinct weight sets: U, or P + U + C for ``loop``."""
        s = self.sharing
        return self.unique_layers + s.prelude_layers + s.coda_layers

    @property
    def core_layers(self) -> int:
        """Layers that the core's passes (or, without ``loop``, SPEED's stages) cover: N - P - C."""
        return self.n_layers - self.sharing.prelude_layers - self.sharing.coda_layers

    @property
    def recurrences(self) -> Optional[int]:
        """R = (N - P - C) / U for ``loop``; None for the other schemes."""
        return self.core_layers // self.unique_layers if self.sharing.scheme == "loop" else None

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
        self._check_loop()
        return self

    def _check_loop(self) -> None:
        """Prelude and coda belong to ``loop``; there R = (N - P - C) / U is a positive int."""
        s = self.sharing
        for key in ("prelude_layers", "coda_layers"):
            if s.scheme != "loop" and getattr(s, key):
                raise _at(f"sharing.{key}", f"{key} needs sharing.scheme loop, not {s.scheme}")
        core = self.core_layers
        if s.scheme == "loop" and (core < s.unique_layers or core % s.unique_layers):
            raise _at("sharing", f"the recurrence count R = (n_layers - prelude_layers - "
                                 f"coda_layers) / unique_layers = ({self.n_layers} - "
                                 f"{s.prelude_layers} - {s.coda_layers}) / {s.unique_layers} "
                                 "must be a positive integer")


class Sampling(Frozen):
    """Sampled decoding (``speedsim.model.sampling``): the target's logits / temperature,
    kept to the top_k most probable tokens, then to the nucleus of mass top_p, renormalized.
    Temperature 0 is greedy decoding (argmax), exactly as without ``sampling``; top_p,
    top_k and seed would then change nothing, so giving one with it is a config error."""

    temperature: NonNegFloat = 0.0  # logits are divided by it; 0 means greedy (argmax)
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # keep the smallest set of most
    #                                                      probable tokens whose mass reaches it
    top_k: Optional[PosInt] = None  # keep the k most probable tokens; None means all
    seed: NonNegInt = 0  # seeds every draw (the order is documented in speedsim.model.sampling)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @model_validator(mode="after")
    def _no_inert_keys(self) -> "Sampling":
        inert = sorted(self.model_fields_set - {"temperature"}) if self.greedy else []
        if inert:
            raise _at(inert[0], f"{inert[0]} changes nothing at temperature 0 (greedy decoding): "
                                "drop it, or set a temperature above 0")
        return self


class Generation(Frozen):
    """The prompt and how many tokens each of the ``batch`` sequences generates."""

    prompt_tokens: PosInt  # P
    new_tokens: Annotated[int, Field(ge=2)]  # tokens generated per sequence; the first comes
    #                                          from prefill, the rest from decode
    batch: PosInt = 1  # B
    seed: NonNegInt = 0  # seeds the random prompt when no prompt is given
    prompt: Optional[str] = None  # text, encoded byte-level (vocab must be >= 256)
    sampling: Optional[Sampling] = None  # sampled decoding; null means greedy (as temperature 0)

    @property
    def sampled(self) -> Optional[Sampling]:
        """The sampling settings when decoding samples (temperature > 0), else None: greedy."""
        return None if self.sampling is None or self.sampling.greedy else self.sampling


class ModelAcceptance(Frozen):
    """Early and final predictions of the reference decoder decide acceptance."""

    source: Literal["model"]


class BernoulliAcceptance(Frozen):
    """Each early prediction is accepted with probability ``rate``, independently."""

    source: Literal["bernoulli"]
    rate: Annotated[float, Field(ge=0.0, le=1.0)]  # probability that an early prediction is accepted
    seed: NonNegInt = 0  # seeds the draws


class FileAcceptance(Frozen):
    """A recorded per-position 0/1 sequence (one per line, or CSV column ``accepted``)."""

    source: Literal["file"]
    path: str  # resolved against the workload file's folder; must exist

    @field_validator("path")
    @classmethod
    def _exists(cls, v: str, info: ValidationInfo) -> str:
        return existing_file(v, info, "acceptance file")


class AcceptedLengthAcceptance(Frozen):
    """A deterministic sequence whose accepted runs have mean length ``mean`` (γ): one
    rejection per γ proposals, evenly spread (``speedsim.strategies.acceptance``)."""

    source: Literal["accepted_length"]
    mean: Annotated[float, Field(ge=1.0)]  # γ: proposals per rejection (1: every one rejected)


Acceptance = Annotated[Union[ModelAcceptance, BernoulliAcceptance, FileAcceptance,
                             AcceptedLengthAcceptance],
                       Field(discriminator="source")]


class SequentialStrategy(Frozen):
    """Ordinary decoding: one token at a time through all N layers."""


class SpeedStrategy(Frozen):
    """Speculative pipelined decoding over G stages (for ``loop``: the R core passes)."""

    stages: Optional[PosInt] = None  # G; None means N / U (not settable for loop: G = R)
    exit_depth: PosInt = 1  # d1: the early prediction after this many stages (loop: the
    #                          prelude and d1 core passes); 1 <= d1 < G
    acceptance: Acceptance = ModelAcceptance(source="model")  # which early predictions are right
    second_depth: Optional[PosInt] = None  # d2: a second proposal after d2 stages; when it
    #                                         differs from the first, the successor restarts
    #                                         from it (d1 < d2 < G); None: no second proposal
    second_acceptance: Optional[Acceptance] = None  # which second proposals are right, consulted
    #                                                  where the first was rejected; None: model


class EarlyExitSpecStrategy(Frozen):
    """Early-exit self-speculation: draft K tokens with the first E layers + the tied head,
    verify them in one pass of all N layers (``speedsim.model.spec_exec``)."""

    draft_tokens: PosInt = 4  # K
    exit_layer: Optional[PosInt] = None  # E layers draft; None means SPEED's exit, N / G
    acceptance: Acceptance = ModelAcceptance(source="model")


class DraftSpecStrategy(Frozen):
    """Draft-model speculative decoding: a separate small model drafts K tokens."""

    draft_model: ModelShape  # its own shape and weights (packaged | random | npz | shape_only)
    draft_tokens: PosInt = 4  # K
    acceptance: Acceptance = ModelAcceptance(source="model")


class ShallowStrategy(Frozen):
    """The exit model alone: the first E layers + the tied head, decoded sequentially."""

    exit_layer: Optional[PosInt] = None  # E; None means SPEED's exit, N / G


class Strategies(Frozen):
    """The decoding strategies to compare (null: not run)."""

    sequential: Optional[SequentialStrategy] = SequentialStrategy()
    speed: Optional[SpeedStrategy] = None
    early_exit_spec: Optional[EarlyExitSpecStrategy] = None
    draft_spec: Optional[DraftSpecStrategy] = None
    shallow: Optional[ShallowStrategy] = None

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, data: Any) -> Any:
        unknown = sorted(set(data) - set(cls.model_fields)) if isinstance(data, dict) else []
        if unknown:
            raise _at(unknown[0], f"unknown strategy {unknown[0]!r}; valid: "
                                  f"{', '.join(cls.model_fields)}")
        return data

    def names(self) -> list[str]:
        return [n for n in type(self).model_fields if getattr(self, n) is not None]


SPECULATIVE = ("speed", "early_exit_spec", "draft_spec")  # strategies with an acceptance


class Workload(Frozen):
    """One model, its generation and the strategies to compare on it."""

    name: str  # shown in reports
    model: ModelShape
    generation: Generation
    strategies: Strategies = Strategies()

    @property
    def stages(self) -> int:
        """G for SPEED, its one source: configured, or N / U; for ``loop`` the recurrences R."""
        sp, m = self.strategies.speed, self.model
        if m.recurrences is not None:
            return m.recurrences
        if sp is not None and sp.stages is not None:
            return sp.stages
        return m.n_layers // m.unique_layers

    @property
    def speed_exit_layers(self) -> int:
        """Layers before SPEED's early head: P + d1 · (N - P - C) / G (P = C = 0 but for loop)."""
        sp = self.strategies.speed
        d1 = sp.exit_depth if sp is not None else 1
        return self.model.sharing.prelude_layers + d1 * self.model.core_layers // self.stages

    def exit_layers(self, strategy: str) -> int:
        """E of ``early_exit_spec`` or ``shallow``: configured, or SPEED's exit."""
        configured = getattr(self.strategies, strategy).exit_layer
        return configured if configured is not None else self.speed_exit_layers

    @model_validator(mode="after")
    def _consistent(self) -> "Workload":
        m, g, sp = self.model, self.generation, self.strategies.speed
        _check_lengths(self)
        self._check_sampling()
        if g.prompt is not None and m.vocab_size < 256:
            raise _at("generation.prompt", "a text prompt is byte-level and needs vocab_size >= 256")
        if sp is not None:
            if sp.stages is None and m.n_layers % m.unique_layers and m.recurrences is None:
                raise _at("strategies.speed.stages",
                          f"n_layers={m.n_layers} is not a multiple of unique_layers="
                          f"{m.unique_layers}; set stages explicitly")
            G = self.stages
            if G < 2:
                raise _at("strategies.speed.stages",
                          "SPEED needs at least 2 stages (with sharing none, N / U = 1: "
                          "set stages explicitly)")
            if m.n_layers % G and m.recurrences is None:
                raise _at("strategies.speed.stages",
                          f"stages={G} must divide n_layers={m.n_layers}")
            self._check_speed_depths()
            if sp.acceptance.source == "model" and m.weights.source == "shape_only":
                raise _at("strategies.speed.acceptance.source",
                          "source 'model' needs numeric weights; with model.weights.source "
                          "shape_only set strategies.speed.acceptance={source: bernoulli, "
                          "rate: 0.9} (or {source: file, path: ...})")
            second = sp.second_acceptance
            if sp.second_depth is not None and m.weights.source == "shape_only" and \
                    (second is None or second.source == "model"):
                raise _at("strategies.speed.second_acceptance",
                          "with model.weights.source shape_only the second proposal needs "
                          "its own source, e.g. {source: bernoulli, rate: 0.5}")
        if not self.strategies.names():
            raise _at("strategies", "at least one strategy is needed")
        self._check_exits()
        self._check_draft()
        return self

    def _check_sampling(self) -> None:
        """Sampling needs numerics to sample from, or an acceptance source for each speculative
        strategy (then the source stands for the acceptance under sampling); top_k at most V."""
        s, m = self.generation.sampling, self.model
        if s is not None and s.top_k is not None and s.top_k > m.vocab_size:
            raise _at("generation.sampling.top_k",
                      f"top_k={s.top_k} exceeds vocab_size={m.vocab_size}")
        if self.generation.sampled is None or m.weights.source != "shape_only":
            return
        given = [n for n in SPECULATIVE if getattr(self.strategies, n) is not None
                 and getattr(self.strategies, n).acceptance.source != "model"]
        missing = [n for n in SPECULATIVE if getattr(self.strategies, n) is not None
                   and n not in given]
        if missing or not given:
            raise _at("generation.sampling",
                      "a shape-only model has no distributions to sample from: give "
                      + (f"strategies.{missing[0]}.acceptance" if missing else
                         "a speculative strategy an acceptance")
                      + " {source: bernoulli, rate: ...} (its acceptance under sampling), "
                      "or remove generation.sampling")

    def _check_speed_depths(self) -> None:
        """stages fixed by a loop; 1 <= d1 < d2 < G; second_acceptance only with d2; d2 only
        with greedy decoding (``speedsim.model.speed_exec``)."""
        sp, m = self.strategies.speed, self.model
        if m.recurrences is not None and sp.stages is not None:
            raise _at("strategies.speed.stages",
                      f"with sharing.scheme loop the stages are the R={m.recurrences} core "
                      "passes; remove stages (set exit_depth for the early prediction)")
        G = self.stages
        if sp.exit_depth >= G:
            raise _at("strategies.speed.exit_depth",
                      f"exit_depth={sp.exit_depth} must be below the stage count G={G} "
                      "(the early prediction comes before the final one)")
        if sp.second_depth is not None and not sp.exit_depth < sp.second_depth < G:
            raise _at("strategies.speed.second_depth",
                      f"second_depth={sp.second_depth} must lie between exit_depth="
                      f"{sp.exit_depth} and the stage count G={G} (both excluded)")
        if sp.second_acceptance is not None and sp.second_depth is None:
            raise _at("strategies.speed.second_acceptance",
                      "second_acceptance needs strategies.speed.second_depth")
        if sp.second_depth is not None and self.generation.sampled is not None:
            raise _at("strategies.speed.second_depth",
                      "a second proposal is defined for greedy decoding only: remove "
                      "second_depth, or generation.sampling (or set its temperature to 0)")

    def _check_exits(self) -> None:
        N = self.model.n_layers
        for name in ("early_exit_spec", "shallow"):
            if getattr(self.strategies, name) is None:
                continue
            E = self.exit_layers(name)
            if E >= N:
                raise _at(f"strategies.{name}.exit_layer",
                          f"exit_layer={E} must be below n_layers={N} (the first E layers "
                          "draft; with the default N / G, set it explicitly)")
            self._check_model_acceptance(name)

    def _check_draft(self) -> None:
        ds, m = self.strategies.draft_spec, self.model
        if ds is None:
            return
        if ds.draft_model.vocab_size != m.vocab_size:
            raise _at("strategies.draft_spec.draft_model.vocab_size",
                      f"the draft's vocab_size={ds.draft_model.vocab_size} must equal the "
                      f"target's {m.vocab_size}")
        if ds.acceptance.source == "model" and ds.draft_model.weights.source == "shape_only":
            raise _at("strategies.draft_spec.acceptance.source",
                      "source 'model' needs numeric draft weights; use bernoulli or file")
        self._check_model_acceptance("draft_spec")

    def _check_model_acceptance(self, name: str) -> None:
        acc = getattr(self.strategies, name)
        if getattr(acc, "acceptance", None) is None or acc.acceptance.source != "model":
            return
        if self.model.weights.source == "shape_only":
            raise _at(f"strategies.{name}.acceptance.source",
                      "source 'model' needs numeric weights; use bernoulli or file "
                      "with weights.source shape_only")


def length_problems(wl: Workload) -> list[tuple[str, str]]:
    """(key, what to change) for each part of the workload that P + T tokens do not fit:
    the text prompt, the positional table, the weights file's positions."""
    m, g = wl.model, wl.generation
    need = g.prompt_tokens + g.new_tokens
    out = []
    if g.prompt is not None and len(g.prompt.encode("utf-8")) != g.prompt_tokens:
        out.append(("generation.prompt",
                    f"the text prompt is {len(g.prompt.encode('utf-8'))} UTF-8 bytes (= tokens), "
                    f"not prompt_tokens={g.prompt_tokens}: give a {g.prompt_tokens}-byte "
                    "generation.prompt, or set generation.prompt=null for a seeded random one"))
    if m.max_seq_len is not None and m.max_seq_len < need:
        out.append(("model.max_seq_len", f"max_seq_len={m.max_seq_len} < prompt_tokens + new_tokens"
                                         f" = {need}: set model.max_seq_len to {need} or more"))
    held = weights_positions(m.weights)
    if held is not None and held < need:
        out.append(("model.weights", f"the {m.weights.source} weights hold {held} positions < "
                                     f"{need}: use model.weights={{source: random}} (untrained), "
                                     "or {source: shape_only} with strategies.speed.acceptance="
                                     "{source: bernoulli, rate: 0.9}"))
    return out


def _check_lengths(wl: Workload) -> None:
    """All length problems in one error, so that one round of changes fixes them."""
    problems = length_problems(wl)
    if len(problems) == 1:
        raise _at(*problems[0])
    if problems:
        g = wl.generation
        raise _at("generation", f"prompt_tokens={g.prompt_tokens} + new_tokens={g.new_tokens} "
                                "do not fit this workload; change all of: "
                                + "; ".join(f"({i}) {msg}" for i, (_, msg) in enumerate(problems, 1)))


def _at(key: str, message: str) -> KeyedValueError:
    return KeyedValueError(key, message)


_UNIONS = ("weights", "acceptance", "second_acceptance")


def workload_from_dict(data: dict[str, Any], *, file: str = "<workload>",
                       base_dir: str | Path | None = None) -> Workload:
    return validate(Workload, data, file=file, unions=_UNIONS,
                    context={"base_dir": str(base_dir) if base_dir else None})


def load_workload(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Workload:
    """Read, override and validate a workload YAML file."""
    path = Path(path)
    data = load_mapping(path)
    check_kind(data, "workload", file=str(path))
    data = apply_overrides(data, overrides, root=Workload)
    return blaming_overrides(lambda: workload_from_dict(data, file=str(path), base_dir=path.parent),
                             overrides, "workload")
