"""Hardware schema: clock, precision, systolic arrays, vector unit, DRAM, DMA, buffers, energy.

Every quantity carries its unit in its key name (DESIGN §8). The objects are
frozen and free of I/O; derived quantities (bytes per element, effective DRAM
bytes per cycle) are properties so that cost functions and the roofline read
the same numbers.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Optional

from pydantic import Field, model_validator

from speedsim.config.base import (BYTES_PER_ELEMENT, BandwidthGBs, ClockHz, DelayNs, Frozen,
                                  LaneCycles, NonNegFloat, PosFloat, PosInt, Precision)
from speedsim.config.errors import KeyedValueError
from speedsim.config.loader import (apply_overrides, blaming_overrides, check_kind, load_mapping,
                                    validate)



class Array(Frozen):
    """``count`` R×C systolic arrays; cycles follow SCALE-Sim's closed forms."""

    rows: PosInt  # R, PEs per column (the reduction depth of a weight-stationary fold)
    cols: PosInt  # C, PEs per row (output columns of one fold)
    dataflow: Literal["ws", "os", "is"] = "ws"  # weight-, output- or input-stationary
    count: PosInt = 1  # identical arrays; a GEMM's folds spread over them
    weight_load: Literal["serial", "overlapped"] = "serial"  # serial: SCALE-Sim's folds; overlapped: next fold's operand loads while one streams
    op_overhead_ns: DelayNs = 0.0  # fixed cost of issuing one work item (dispatch, launch)
    # how one GEMM spreads over the arrays: columns (N split evenly) or blocks (every fold
    # dealt to the arrays in waves, as a GPU deals output tiles to its SMs; os only)
    split: Literal["columns", "blocks"] = "columns"

    @model_validator(mode="after")
    def _blocks_need_os(self) -> "Array":
        if self.split == "blocks" and self.dataflow != "os":
            raise KeyedValueError("split", "blocks needs dataflow: os (each fold has "
                                  f"its own outputs), got dataflow: {self.dataflow}")
        return self

    @property
    def pes(self) -> int:
        return self.rows * self.cols * self.count


class VectorCycles(Frozen):
    """Cycles one lane spends per element, per op kind."""

    softmax: LaneCycles = 4.0  # max, subtract, exp, sum, divide
    norm: LaneCycles = 4.0  # mean, variance, normalise, scale+shift
    activation: LaneCycles = 2.0  # GELU by a piecewise/LUT approximation
    residual: LaneCycles = 1.0  # one add
    embed: LaneCycles = 1.0  # gather + positional add
    pick: LaneCycles = 1.0  # the greedy pick: a compare-and-select per logit (``pick: kernel`` only)


class Vector(Frozen):
    """SIMD vector unit: softmax, norms, activations, residual adds, the embedding gather."""

    lanes: PosInt  # elements processed per cycle (attention on the vector unit: MACs per cycle)
    cycles_per_element: VectorCycles = VectorCycles()
    op_overhead_ns: DelayNs = 0.0  # fixed cost of issuing one work item (dispatch, launch)
    # the lanes one row of logits is picked on (``pick: kernel``): a GPU reduces each row in
    # one thread block on one SM, so a pick of R rows runs ⌈R / (lanes / pick_lanes)⌉ waves of
    # ⌈V · cycles_per_element.pick / pick_lanes⌉ cycles; absent: the R·V logits spread over
    # every lane
    pick_lanes: Optional[PosInt] = None

    @model_validator(mode="after")
    def _pick_lanes_within_lanes(self) -> "Vector":
        if self.pick_lanes is not None and self.pick_lanes > self.lanes:
            raise KeyedValueError("pick_lanes", f"{self.pick_lanes} is more than lanes "
                                                f"({self.lanes})")
        return self


class Dram(Frozen):
    """Off-chip memory shared by every transfer (weights, KV cache, spilled activations)."""

    bandwidth_gb_s: BandwidthGBs  # peak, 1 GB = 1e9 bytes
    latency_ns: DelayNs = 100.0  # from request to first byte
    efficiency: Annotated[float, Field(gt=0, le=1)] = 1.0  # achievable fraction of peak
    energy_pj_per_bit: NonNegFloat = 0.0  # per bit moved, read or write
    channels: PosInt = 1  # channels of 1/channels of the bandwidth each; a transfer lasts as long as its busiest channel
    interleave_bytes: PosInt = 256  # address-interleaving granule: a transfer's granules go to consecutive channels, so one smaller than channels x granule uses only some


class Dma(Frozen):
    """DMA engines moving tiles between DRAM and the buffers."""

    engines: PosInt = 2  # concurrent DRAM<->buffer transfers in flight


class Buffer(Frozen):
    """One on-chip SRAM buffer."""

    size_kib: PosFloat  # capacity
    energy_pj_per_byte: NonNegFloat = 0.0  # per byte read or written
    # scratchpad: software-managed (weights LRU by tile, KV bypasses it; docs/hardware.md);
    # cache: a hardware cache in front of the DRAM, a GPU's L2 (weight buffer only; hw/l2.py)
    kind: Literal["scratchpad", "cache"] = "scratchpad"


class Buffers(Frozen):
    """On-chip SRAM: weight, activation and accumulator buffers, optionally a KV buffer."""

    weight: Buffer
    activation: Buffer
    accumulator: Buffer
    kv: Optional[Buffer] = None  # None: KV cache streams from DRAM through the activation buffer
    double_buffering: bool = True  # two tile slots per buffer: fetch the next tile during the current one

    @model_validator(mode="after")
    def _only_weights_cache(self) -> "Buffers":
        for name in ("activation", "accumulator", "kv"):
            buffer = getattr(self, name)
            if buffer is not None and buffer.kind != "scratchpad":
                raise KeyedValueError(f"{name}.kind", f"{buffer.kind}: only the weight buffer "
                                      "may be a cache (a GPU's L2)")
        return self


class Energy(Frozen):
    """Energy per operation and static power (DRAM and SRAM energy live with them)."""

    mac_pj: NonNegFloat  # one multiply-accumulate at the configured precision
    vector_op_pj: NonNegFloat  # one vector-unit operation on one element
    static_power_w: NonNegFloat = 0.0  # leakage and clock, paid for the whole elapsed time


class ComputeUnit(NamedTuple):
    """A compute unit as every module past the config sees it. Units are data: the
    cost model, the metrics, the energy and the reports iterate over ``Hardware.units``
    and branch on a unit's ``kind``, never on its name, so another unit of a known kind
    is one more entry here and its config section, not an edit of those modules."""

    name: str  # its config section, a work item's ``unit``, the prefix of its summary keys
    # matrix: GEMMs folded on the systolic arrays of its ``Array`` section, weights through
    # the weight buffer, MACs at ``energy.mac_pj``, utilization = MACs / (PEs · cycles);
    # elementwise: element-wise ops (and attention MACs) in the lanes of its ``Vector`` section,
    # parameters resident in the weight buffer's parameter share, each operation at
    # ``energy.vector_op_pj``, utilization = busy cycles / cycles
    kind: Literal["matrix", "elementwise"]
    stream_share: float  # of the activation buffer: its stream area (``speedsim.hw.cost``)
    energy_part: str  # the ``energy_j`` part its operations are charged to


# The accelerator's compute units: their names are the only place the modules past the
# config learn that an "array" and a "vector" unit exist (``tests/test_units_as_data.py``).
UNITS = (ComputeUnit("array", "matrix", 3 / 8, "compute"),
         ComputeUnit("vector", "elementwise", 1 / 8, "vector"))


class Placement(NamedTuple):
    """Which compute unit runs each class of op (``speedsim.strategies.builder``)."""

    gemm: str  # projections, the MLP, the LM head: the first matrix unit
    attention: str  # attn_score / attn_value: ``attention_on``
    elementwise: str  # norms, softmax, activations, residual adds, the embedding: the first elementwise unit
    matrix: frozenset[str]  # the matrix units: their items are GEMM-shaped (m, k, n, count)
    # the greedy pick after an LM head (``pick``): kernel, the first elementwise unit, as an
    # item of its own; fused, None: done as the LM head's output drains, no item
    pick: Optional[str] = None


def placement(attention_on: str, units: tuple[ComputeUnit, ...] = UNITS,
              pick: str = "fused") -> Placement:
    """The ``Placement`` of ``units`` with attention on the unit ``attention_on`` and the
    greedy pick ``fused`` into the LM head or issued as a vector ``kernel``."""
    first = {kind: next((u.name for u in units if u.kind == kind), None)
             for kind in ("matrix", "elementwise")}
    if None in first.values():
        raise ValueError("the hardware needs a matrix and an elementwise compute unit")
    if attention_on not in {u.name for u in units}:
        raise ValueError(f"attention_on: no compute unit {attention_on!r}")
    if pick not in ("fused", "kernel"):
        raise ValueError(f"pick: fused or kernel, got {pick!r}")
    return Placement(first["matrix"], attention_on, first["elementwise"],
                     frozenset(u.name for u in units if u.kind == "matrix"),
                     first["elementwise"] if pick == "kernel" else None)


@cache
def units_by_name(hw_class: type) -> dict[str, ComputeUnit]:
    """A ``Hardware`` class's units by name (looked up per work item on hot paths)."""
    return {u.name: u for u in hw_class.units}


class Hardware(Frozen):
    """One accelerator: clock, precision, arrays, vector unit, DRAM, DMA, buffers, energy."""

    name: str  # shown in reports
    clock_hz: ClockHz  # one cycle of every unit; the boost clock behind peak figures (roofline, TFLOP/s)
    # the clock under sustained tensor-core load (measured; a GPU at its power limit throttles
    # below its boost clock): the array cycles of a compute-bound item (cycles > DRAM time) last
    # clock_hz / this longer; memory-bound items run at clock_hz. Absent: always clock_hz
    sustained_clock_hz: Optional[ClockHz] = None
    precision: Precision = "int8"  # bytes and energy per element
    array: Array
    vector: Vector
    dram: Dram
    dma: Dma = Dma()
    buffers: Buffers
    energy: Energy
    attention_on: Literal["array", "vector"] = "array"  # where attn_score / attn_value run
    # per_token: each token in flight's attention is its own item; batched: one item (one
    # kernel, as GPUs run decode attention) for all tokens in flight at a layer step, each
    # still reading its own KV (bytes add up, only the issue is shared)
    attention_issue: Literal["per_token", "batched"] = "per_token"
    weight_prefetch: Literal["ahead", "per_op"] = "ahead"  # ahead: across items as slots allow; per_op: not before the item's issue overhead ends
    # the greedy pick (argmax, or the sampler) that turns an LM head's logits into token ids:
    # fused: an NPU's vector unit picks from the head's output tiles as the array drains them
    # (no item: its V/lanes cycles hide behind a GEMV streaming V·d weights, and its B·V
    # vector ops' energy is negligible beside those weights'); kernel: a vector item of its
    # own after every LM head (a GPU's argmax kernel) reading the B·V logits and writing the
    # B ids, costed and charged as any vector op (``vector.cycles_per_element.pick``)
    pick: Literal["fused", "kernel"] = "fused"
    # the compute units, in the order every table and report lists them: class data, the
    # same for every instance (a subclass may declare others, with their sections)
    units: ClassVar[tuple[ComputeUnit, ...]] = UNITS

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

    @property
    def compute_units(self) -> tuple[str, ...]:
        """The compute units' names, each its config section (a work item's ``unit``);
        the replay runs one SimPy process per unit, each also a DRAM client."""
        return tuple(u.name for u in self.units)

    def unit(self, name: str) -> ComputeUnit:
        """The compute unit ``name`` (a work item's ``unit``)."""
        try:
            return units_by_name(type(self))[name]
        except KeyError:
            raise ValueError(f"no compute unit {name!r} (units: "
                             f"{', '.join(self.compute_units)})") from None

    def section(self, unit: str) -> Any:
        """The config section of the compute unit ``unit`` (its ``Array`` or ``Vector``)."""
        return getattr(self, self.unit(unit).name)

    @property
    def placement(self) -> Placement:
        """Which unit runs each class of op."""
        return placement(self.attention_on, self.units, self.pick)

    def compute_cycles(self, cycles: int) -> int:
        """``cycles`` of a compute unit at ``sustained_clock_hz``, counted in cycles of ``clock_hz``."""
        if self.sustained_clock_hz is None:
            return cycles
        return math.ceil(cycles * self.clock_hz / self.sustained_clock_hz - 1e-9)

    def op_overhead_cycles(self, unit: str) -> int:
        """Cycles a unit spends issuing one work item (``<unit>.op_overhead_ns``)."""
        return int(round(getattr(self, unit).op_overhead_ns * 1e-9 * self.clock_hz))

    @model_validator(mode="after")
    def _sustained_below_boost(self) -> "Hardware":
        if self.sustained_clock_hz is not None and self.sustained_clock_hz > self.clock_hz:
            raise KeyedValueError("sustained_clock_hz", f"{self.sustained_clock_hz:g} is above "
                                  f"clock_hz {self.clock_hz:g}, the boost clock")
        return self

    @model_validator(mode="after")
    def _pick_cost_only_for_a_kernel(self) -> "Hardware":
        # (one at its default is what a resolved config carries: it reruns)
        cost = self.vector.cycles_per_element
        if self.pick == "fused" and cost.pick != type(cost).model_fields["pick"].default:
            raise KeyedValueError("vector.cycles_per_element.pick", "changes nothing with "
                                  "pick: fused (no pick item): drop it, or set pick: kernel")
        if self.pick == "fused" and self.vector.pick_lanes is not None:
            raise KeyedValueError("vector.pick_lanes", "changes nothing with pick: fused (no "
                                  "pick item): drop it, or set pick: kernel")
        return self

    @model_validator(mode="after")
    def _buffers_hold_a_tile(self) -> "Hardware":
        """Each buffer holds one R×C array tile; the weight buffer one per in-flight slot
        (two with double buffering: the tile in use and the one being fetched)."""
        tile_bytes = self.array.rows * self.array.cols * self.bytes_per_element
        slots = 2 if self.buffers.double_buffering else 1
        for name, tiles in (("weight", slots), ("activation", 1), ("accumulator", 1)):
            size_kib = getattr(self.buffers, name).size_kib
            if size_kib * 1024 < tiles * tile_bytes:
                raise KeyedValueError(f"buffers.{name}.size_kib", _too_small(
                    size_kib, tiles, tile_bytes, self, name == "weight"))
        return self


def _too_small(size_kib: float, tiles: int, tile_bytes: int, hw: Hardware, slotted: bool) -> str:
    why = " (double buffering)" if slotted and tiles > 1 else ""
    return (f"{size_kib:g} KiB cannot hold {tiles} {hw.array.rows}x{hw.array.cols} {hw.precision} "
            f"array tile{'s' if tiles > 1 else ''} of {tile_bytes} bytes{why}")


def hardware_from_dict(data: dict[str, Any], *, file: str = "<hw>") -> Hardware:
    return validate(Hardware, data, file=file)


def load_hardware(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Hardware:
    """Read, override and validate a hardware YAML file."""
    path = Path(path)
    data = load_mapping(path)
    check_kind(data, "hardware", file=str(path))
    data = apply_overrides(data, overrides, root=Hardware)
    return blaming_overrides(lambda: hardware_from_dict(data, file=str(path)), overrides, "hw")
