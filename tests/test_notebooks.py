"""The Studio notebooks run top to bottom against the local runtime (cells executed in order)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, continuum_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUUM_TARGET", "local")
    notebook = nbformat.read(path, as_version=4)
    namespace: dict = {"__name__": "__notebook__"}
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    for index, cell in enumerate(code_cells):
        try:
            exec(compile(cell.source, f"{path.name}[cell {index}]", "exec"), namespace)
        except Exception as exc:  # the failing cell is named in the message
            raise AssertionError(f"{path.name} cell {index} failed: {exc!r}\n{cell.source}") from exc
    assert namespace["steps"][0] == ("ResolveBaseline", "Processing")
    assert "LoraR" in namespace["parameters"]
    assert namespace["versions"] == []
