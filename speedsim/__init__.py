"""speedsim: a cycle-level simulator of speculative pipelined decoding (SPEED).

The data flows one way (see DESIGN §3). Layer order — a module may import
only its own package and earlier ones (``tests/test_layering.py`` checks it):

config → contracts → model → trace → strategies → hw → sim → metrics → report → forking → api → serve → sweep → cli

- ``config``: validated, frozen hardware and workload objects;
- ``contracts``: the data crossing layers (op row, work item, plan, schedule,
  replay result);
- ``model``: the NumPy reference decoder (and SPEED run numerically);
- ``trace``: the op table; ``strategies``: trace → work-item DAG;
- ``hw``: pure cost functions and the unit models (DRAM channels, DMA engines,
  weight buffer); ``sim``: the replay engine (a SimPy process per compute unit,
  the loaders, the period skipper, the tile-level reference engine);
- ``metrics``: every number of the summary, from the plan, the event log and the
  configs (formulas in docs/metrics.md); ``report``: summary, tables, plots,
  timeline export and the files they go to;
- ``forking``: independent jobs (one per strategy) on forked processes;
- ``api``: ``simulate``; ``serve``: requests arriving over time, continuously batched,
  each iteration replayed on the same engine; ``sweep``: design-space sweeps;
  ``cli``: the commands.
"""

import os as _os

# The reference decoder runs many tiny matmuls; BLAS threads only add overhead
# (3-5x slower on two cores). Set before NumPy loads; an explicit setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
