"""The notebooks run from a fresh kernel without error, and are committed executed.

Each notebook is re-executed with nbclient in its own folder (as Jupyter
would), with a timeout per cell; any cell error fails the test. The committed
files are not modified.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
# Notebooks use the public API; the model, trace, strategy and simulator internals stay out.
PRIVATE = re.compile(r"^\s*(from|import)\s+speedsim\.(model|trace|strategies|sim|metrics)\b", re.M)


def test_the_seven_notebooks_exist():
    assert [p.stem[:2] for p in PATHS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_and_uses_the_public_api(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "commit it executed"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "it shows figures"
    for c in code:
        assert not PRIVATE.search(c.source), f"imports an internal module: {c.source[:80]}"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs_from_a_fresh_kernel(path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
