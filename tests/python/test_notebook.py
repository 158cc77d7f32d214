"""The example notebook runs headless, every cell without error, and its
plots come out as PNG images. Needs the notebook extras (installed by
``make venv`` from requirements-dev.txt); skipped without them."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "nbclient", reason='needs the notebook extras: pip install "ringstat[notebook]"'
)
pytest.importorskip(
    "ipykernel", reason='needs the notebook extras: pip install "ringstat[notebook]"'
)
pytest.importorskip("pandas", reason='needs the notebook extras: pip install "ringstat[notebook]"')
pytest.importorskip(
    "matplotlib", reason='needs the notebook extras: pip install "ringstat[notebook]"'
)

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _execute(path: Path) -> Any:
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call,unused-ignore]
    # The kernel is this interpreter (jupyter_client runs "python3" with
    # sys.executable), so it imports the ringstat under test.
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


@pytest.fixture(scope="module")
def user_activity(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Keep the kernel's matplotlib and IPython state out of the home directory.
    env = {
        "MPLCONFIGDIR": str(tmp_path_factory.mktemp("mpl")),
        "IPYTHONDIR": str(tmp_path_factory.mktemp("ipython")),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return _execute(NOTEBOOKS / "user_activity.ipynb")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.timeout(300)
def test_user_activity_notebook_runs(user_activity: Any) -> None:
    for cell in user_activity.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
    html = [
        out["data"]["text/html"]
        for cell in user_activity.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {})
    ]
    # the live display's final frame, the rich registry/snapshot/histogram
    # tables and the DataFrames
    assert any("ringstat.Registry" in h for h in html)
    assert any("final" in h for h in html)
    assert any("ringstat.Histogram" in h for h in html)


@pytest.mark.timeout(300)
def test_user_activity_notebook_plots_are_png(user_activity: Any, tmp_path: Path) -> None:
    images = [
        base64.b64decode(out["data"]["image/png"])
        for cell in user_activity.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert len(images) >= 3
    for i, png in enumerate(images):
        path = tmp_path / f"plot{i}.png"
        path.write_bytes(png)
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 1024
