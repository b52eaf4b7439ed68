"""speedsim: a cycle-level simulator of speculative pipelined decoding (SPEED).

The data flows one way (see DESIGN §3):
config -> model (NumPy reference decoder) -> trace (op table) -> strategies
(work-item DAG) -> sim (SimPy accelerator, event log) -> metrics -> report.
"""

__version__ = "0.1.0"
