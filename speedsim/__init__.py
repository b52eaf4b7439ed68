"""speedsim: a cycle-level simulator of speculative pipelined decoding (SPEED).

The data flows one way (see DESIGN §3):
config -> model (NumPy reference decoder) -> trace (op table) -> strategies
(work-item DAG) -> sim (SimPy accelerator, event log) -> metrics -> report.
"""

import os as _os

# The reference decoder runs many tiny matmuls; BLAS threads only add overhead
# (3-5x slower on two cores). Set before NumPy loads; an explicit setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
