"""Design-space sweeps: specs, deterministic points, executors and the driver.

``spec`` validates a sweep file (``load_sweep``); ``points`` expands it into
hashed points (``expand``); ``executor`` runs them in-process, on a process
pool or on Dask; the result store that appends rows as they finish, resumes
after a kill and reads results back sorted by point index is
``speedsim.report.store`` (files are written only by report and CLI code); ``runner``
ties these together (``run_sweep``); ``point.simulate_point`` is the real point
function (a simulation flattened by ``flatten``); ``grid.speedup_grid`` is a small
in-process stages × acceptance grid. The CLI is ``speedsim.cli.sweep``.

Nothing is imported here: pool and Dask workers import ``speedsim.sweep.executor``
and should not pay for pandas or rich.
"""
