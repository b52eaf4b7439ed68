"""Hardware schema: clock, precision, systolic arrays, vector unit, DRAM, DMA, buffers, energy.

Every quantity carries its unit in its key name (DESIGN §8). The objects are
frozen and free of I/O; derived quantities (bytes per element, effective DRAM
bytes per cycle) are properties so that cost functions and the roofline read
the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, model_validator

from speedsim.config.base import (BYTES_PER_ELEMENT, Frozen, NonNegFloat, PosFloat, PosInt,
                                  Precision)
from speedsim.config.errors import KeyedValueError
from speedsim.config.loader import apply_overrides, load_mapping, validate



class Array(Frozen):
    """``count`` R×C systolic arrays; cycles follow SCALE-Sim's closed forms."""

    rows: PosInt
    cols: PosInt
    dataflow: Literal["ws", "os", "is"] = "ws"
    count: PosInt = 1
    # serial: SCALE-Sim's fold model (each fold loads its stationary operand, then streams);
    # overlapped: the next fold's stationary operand loads while the current fold streams
    weight_load: Literal["serial", "overlapped"] = "serial"
    op_overhead_ns: NonNegFloat = 0.0  # fixed cost of issuing one work item (dispatch, launch)

    @property
    def pes(self) -> int:
        return self.rows * self.cols * self.count


class VectorCycles(Frozen):
    """Cycles one lane spends per element, per op kind."""

    softmax: PosFloat = 4.0  # max, subtract, exp, sum, divide
    norm: PosFloat = 4.0  # mean, variance, normalise, scale+shift
    activation: PosFloat = 2.0  # GELU by a piecewise/LUT approximation
    residual: PosFloat = 1.0  # one add
    embed: PosFloat = 1.0  # gather + positional add


class Vector(Frozen):
    lanes: PosInt
    cycles_per_element: VectorCycles = VectorCycles()
    op_overhead_ns: NonNegFloat = 0.0  # fixed cost of issuing one work item (dispatch, launch)


class Dram(Frozen):
    bandwidth_gb_s: PosFloat  # peak, 1 GB = 1e9 bytes
    latency_ns: NonNegFloat = 100.0
    efficiency: Annotated[float, Field(gt=0, le=1)] = 1.0  # achievable fraction of peak
    energy_pj_per_bit: NonNegFloat = 0.0
    channels: PosInt = 1  # independent channels; bandwidth splits evenly across them
    interleave_bytes: PosInt = 256  # address-interleaving granule: consecutive granules go to consecutive channels


class Dma(Frozen):
    engines: PosInt = 2  # concurrent DRAM<->buffer transfers in flight


class Buffer(Frozen):
    size_kib: PosFloat
    energy_pj_per_byte: NonNegFloat = 0.0


class Buffers(Frozen):
    weight: Buffer
    activation: Buffer
    accumulator: Buffer
    kv: Optional[Buffer] = None  # None: KV cache streams from DRAM through the activation buffer
    double_buffering: bool = True


class Energy(Frozen):
    mac_pj: NonNegFloat  # one multiply-accumulate at the configured precision
    vector_op_pj: NonNegFloat
    static_power_w: NonNegFloat = 0.0


class Hardware(Frozen):
    name: str
    clock_hz: PosFloat
    precision: Precision = "int8"
    array: Array
    vector: Vector
    dram: Dram
    dma: Dma = Dma()
    buffers: Buffers
    energy: Energy
    attention_on: Literal["array", "vector"] = "array"  # where attn_score / attn_value run
    # ahead: weight tiles are fetched ahead across items as far as buffer slots allow;
    # per_op: an item's weight tiles are not fetched before the item has started
    weight_prefetch: Literal["ahead", "per_op"] = "ahead"

    @property
    def bytes_per_element(self) -> int:
        return BYTES_PER_ELEMENT[self.precision]

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Effective (achievable) DRAM bytes per clock cycle, all channels together."""
        return self.dram.bandwidth_gb_s * 1e9 * self.dram.efficiency / self.clock_hz

    @property
    def dram_latency_cycles(self) -> int:
        return int(round(self.dram.latency_ns * 1e-9 * self.clock_hz))

    def op_overhead_cycles(self, unit: str) -> int:
        """Cycles a unit spends issuing one work item (``<unit>.op_overhead_ns``)."""
        ns = self.array.op_overhead_ns if unit == "array" else self.vector.op_overhead_ns
        return int(round(ns * 1e-9 * self.clock_hz))

    @model_validator(mode="after")
    def _buffers_hold_a_tile(self) -> "Hardware":
        eb = self.bytes_per_element
        tile = self.array.rows * self.array.cols * eb
        for name in ("weight", "activation", "accumulator"):
            buf = getattr(self.buffers, name)
            if buf.size_kib * 1024 < tile:
                raise KeyedValueError(
                    f"buffers.{name}.size_kib",
                    f"{buf.size_kib} KiB is smaller than one {self.array.rows}x{self.array.cols} "
                    f"{self.precision} array tile ({tile} bytes)")
        return self


def hardware_from_dict(data: dict[str, Any], *, file: str = "<hw>") -> Hardware:
    return validate(Hardware, data, file=file)


def load_hardware(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Hardware:
    """Read, override and validate a hardware YAML file."""
    path = Path(path)
    data = apply_overrides(load_mapping(path), overrides)
    return hardware_from_dict(data, file=str(path))
