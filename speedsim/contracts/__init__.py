"""Contracts: the data that crosses a layer boundary, owned by neither side.

- ``oprow``: ``OpRow``, one row of the op trace (decoder recorder, both trace
  builders and the planner read and write exactly these fields);
- ``workitem``: ``WorkItem``, one node of the DAG a strategy hands the accelerator;
- ``plan``: ``Plan`` (a strategy's output: items + token executions) and
  ``TokenExec`` (one token execution inside a plan);
- ``schedule``: the SPEED schedule (``Schedule``, ``ScheduledExec``,
  ``FlushEvent``) and the acceptance outcomes it follows;
- ``results``: ``SimResult``, what a replay hands to metrics and reports, and the
  columns of its tables.

Only plain data and their invariants live here; no module of this package
imports anything of speedsim but ``speedsim.config``.
"""
