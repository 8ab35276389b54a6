from pathlib import Path

import numpy as np
import pytest

from babelrank import ModelMismatchError, StoreLockedError
from babelrank.store import ChromaStore

FP = {"model": "m", "dimension": 3, "query_prompt": "", "document_prompt": ""}


def test_upsert_get_query_and_doc_state(tmp_path: Path) -> None:
    with ChromaStore("test-col", FP, path=tmp_path) as store:
        vecs = np.eye(3, dtype=np.float32)
        metas = [{"doc_id": "d1", "doc_sha256": "h", "chunk_count": 2, "language": "en"},
                 {"doc_id": "d1", "doc_sha256": "h", "chunk_count": 2, "language": "uk"},
                 {"doc_id": "d2", "doc_sha256": "g", "chunk_count": 2, "language": "uk"}]
        store.upsert(["a", "b", "c"], vecs, ["x", "y", "z"], metas)
        assert store.count() == 3
        hits = store.query(np.array([1, 0.1, 0], np.float32), 2)
        assert [h.id for h in hits] == ["a", "b"] and hits[0].score == pytest.approx(0.995, abs=1e-3)
        assert [h.id for h in store.query(np.array([1, 0, 0], np.float32), 5, where={"language": "uk"})] == ["b", "c"]
        state = store.docs_state(["d1", "d2", "d3"])
        assert state["d1"].complete and not state["d2"].complete and "d3" not in state
        got = store.get(["c", "missing"])
        assert list(got) == ["c"] and np.allclose(got["c"][2], [0, 0, 1])
        store.set_meta("babelrank:x", {"a": [1.5]})
        assert store.get_meta("babelrank:x") == {"a": [1.5]}


def test_nearest_languages_and_hits(tmp_path: Path) -> None:
    with ChromaStore("test-col", FP, path=tmp_path) as store:
        assert store.nearest(np.ones(3, np.float32), 5)[0] == []  # empty store
        metas = [{"doc_id": "d", "language": lang} for lang in ("en", "uk", "ru")]
        store.upsert(["a", "b", "c"], np.eye(3, dtype=np.float32), ["x", "y", "z"], metas)
        ids, cos = store.nearest(np.array([1, 0.5, 0], np.float32), 10)  # more than stored: all of them
        assert ids == ["a", "b", "c"] and cos == pytest.approx([0.894, 0.447, 0.0], abs=1e-3)
        assert store.languages(["c", "a", "gone"]) == ["ru", "en", "und"]
        store.upsert(["a"], np.eye(3, dtype=np.float32)[:1], ["x"], [{"doc_id": "d", "language": "de"}])
        store.delete_ids(["c"])
        assert store.languages(["a", "c"]) == ["de", "und"]
        with ChromaStore("test-col", FP, path=tmp_path) as other:  # a fresh cache reads the metadata
            assert other.languages(["b", "a"]) == ["uk", "de"]
        hits = store.hits(["b", "gone", "a"], [0.7, 0.6, 0.5], include_embeddings=True)
        assert [(h.id, h.text, h.score, h.metadata["language"]) for h in hits] == [("b", "y", 0.7, "uk"), ("a", "x", 0.5, "de")]
        assert np.allclose(hits[0].embedding, [0, 1, 0])


def test_other_model_is_refused(tmp_path: Path) -> None:
    ChromaStore("test-col", FP, path=tmp_path).close()
    with pytest.raises(ModelMismatchError, match="built with embedding model 'm'.*dimension: collection has 3, model gives 4"):
        ChromaStore("test-col", {**FP, "dimension": 4}, path=tmp_path)
    ChromaStore("test-col", FP, path=tmp_path).close()  # the lock was released on refusal


def test_embedded_store_is_locked_while_open(tmp_path: Path) -> None:
    import subprocess
    import sys

    with ChromaStore("test-col", FP, path=tmp_path):
        code = (
            "import sys; from babelrank.store import ChromaStore\n"
            f"try: ChromaStore('test-col', {FP!r}, path={str(tmp_path)!r})\n"
            "except Exception as e: print(type(e).__name__, e); sys.exit(3)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 3, out.stderr
        assert StoreLockedError.__name__ in out.stdout and "chroma run" in out.stdout
