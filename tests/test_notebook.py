"""notebooks/quickstart.ipynb runs end to end (tiny models, temporary store) and is stored without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_runs_offline(tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits this process's environment
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BABELRANK_EMBED_MODEL", str(tiny_models["bi"]))
    monkeypatch.setenv("BABELRANK_RERANK_MODEL", str(tiny_models["cross"]))
    monkeypatch.setenv("BABELRANK_STORE_PATH", str(tmp_path / "store"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs if o.output_type == "display_data")
    for lang in ("uk", "ru", "en"):
        assert f"query language {lang}" in text
    assert "answer (MockLLM)" in text and "9 documents" in text
    assert "<table>" in html and "rerank" in html and "context chunk" in html
    assert (tmp_path / "store").is_dir()  # the store came from BABELRANK_STORE_PATH
