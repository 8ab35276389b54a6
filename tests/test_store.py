from pathlib import Path

import numpy as np
import pytest

from babelrank import ModelMismatchError, StoreLockedError
from babelrank.store.chroma import ChromaStore

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


def _by_language(lifts: dict[str, float]):
    return lambda cos, codes, names: cos + np.array([lifts.get(x, -np.inf) for x in names])[codes]


def test_scan_is_exact_follows_writes_and_respects_its_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(40, 3)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    langs = ["en", "uk"] * 20
    ids = [f"c{i}" for i in range(40)]
    score = _by_language({"en": 0.0, "uk": 0.3})
    q = np.array([0.2, 1.0, -0.5], np.float32)

    def expected(live: dict[str, tuple[np.ndarray, str]], k: int) -> list[str]:
        s = {cid: float(v @ q) + (0.3 if lang == "uk" else 0.0) for cid, (v, lang) in live.items()}
        return sorted(s, key=s.get, reverse=True)[:k]

    with ChromaStore("test-col", FP, path=tmp_path) as store:
        assert store.mirror.scan(q, 5, score, 10**6) is None  # empty
        store.upsert(ids, vecs, ids, [{"doc_id": "d", "language": x} for x in langs])
        assert store.mirror.scan(q, 5, score, 40 * 3 - 1) is None and not store.mirror.loaded  # over budget
        live = {cid: (v, lang) for cid, v, lang in zip(ids, vecs, langs)}
        got, scores = store.mirror.scan(q, 7, score, 10**6)
        assert got == expected(live, 7)
        assert scores == pytest.approx([float(live[c][0] @ q) + (0.3 if live[c][1] == "uk" else 0) for c in got], abs=1e-5)
        store.delete_ids(["c3", got[0], "missing"])  # swap-removal inside the copy
        new = rng.normal(size=(3, 3)).astype(np.float32)  # not unit length: scored by cosine
        store.upsert(["c5", "n1", "n2"], new, ["x"] * 3, [{"doc_id": "d", "language": x} for x in ("en", "de", "uk")])
        for cid in ("c3", got[0]):
            live.pop(cid)
        unit = new / np.linalg.norm(new, axis=1, keepdims=True)
        live.update({"c5": (unit[0], "en"), "n1": (unit[1], "de"), "n2": (unit[2], "uk")})
        got = store.mirror.scan(q, 40, _by_language({"en": 0.0, "uk": 0.3, "de": 0.0}), 10**6)[0]
        assert sorted(got) == sorted(live) and got == expected(live, 40)
        assert "n1" not in store.mirror.scan(q, 40, score, 10**6)[0]  # -inf: language left out
        assert store.mirror.scan(q, 5, score, 10) is None and not store.mirror.loaded  # grew over the budget: dropped
    with ChromaStore("test-col", FP, path=tmp_path) as fresh:  # a fresh copy from Chroma agrees
        assert fresh.mirror.scan(q, 40, _by_language({"en": 0.0, "uk": 0.3, "de": 0.0}), 10**6)[0] == got


def test_scan_can_read_its_copy_in_the_background(tmp_path: Path) -> None:
    import time

    q = np.array([1.0, 0.2, 0.0], np.float32)
    score = _by_language({"en": 0.0})
    with ChromaStore("test-col", FP, path=tmp_path) as store:
        store.upsert(["a", "b", "c"], np.eye(3, dtype=np.float32), ["x"] * 3, [{"doc_id": "d", "language": "en"}] * 3)
        real_iter = store.iter_all

        def iter_with_a_write(*args, **kwargs):  # another write lands while the copy is read
            store.upsert(["e"], np.ones((1, 3), np.float32), ["x"], [{"doc_id": "d", "language": "en"}])
            yield from real_iter(*args, **kwargs)

        store.iter_all = iter_with_a_write
        store.mirror.load(3, 100)
        assert not store.mirror.loaded  # read across a write: discarded
        store.iter_all = real_iter
        first = store.mirror.scan(q, 2, score, 100, wait=False)  # starts the reader, answers at once
        deadline = time.monotonic() + 20
        while not store.mirror.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first is None or first[0] == ["a", "e"]
        assert store.mirror.scan(q, 2, score, 100, wait=False)[0] == ["a", "e"]


def test_reload_keeps_the_caches_unless_the_collection_metadata_changed(tmp_path: Path) -> None:
    with ChromaStore("test-col", FP, path=tmp_path) as store:
        store.upsert(["a", "b"], np.eye(3, dtype=np.float32)[:2], ["x", "y"], [{"doc_id": "d", "language": "en"}] * 2)
        store.mirror.scan(np.ones(3, np.float32), 2, _by_language({"en": 0.0}), 100)
        store.languages(["a"])
        store.reload()
        assert store.mirror.loaded and store._languages
        other = store.client.get_collection("test-col")  # as another process would write it
        other.modify(metadata={**(other.metadata or {}), "babelrank:calibration": "{}"})
        store.reload()
        assert not store.mirror.loaded and not store._languages


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
            "import sys; from babelrank.store.chroma import ChromaStore\n"
            f"try: ChromaStore('test-col', {FP!r}, path={str(tmp_path)!r})\n"
            "except Exception as e: print(type(e).__name__, e); sys.exit(3)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 3, out.stderr
        assert StoreLockedError.__name__ in out.stdout and "chroma run" in out.stdout
