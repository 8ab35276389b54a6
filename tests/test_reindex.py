"""``babelrank reindex`` (#18): re-embed a collection with another model, switch when complete, resume when killed."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from babelrank import ModelMismatchError
from babelrank.store.aliases import alias_collection, physical_name
from babelrank.store.calibration import LanguageCalibration
from babelrank.store.chroma import CALIBRATION_KEY, ChromaStore

UK = ["Червоний автомобіль стоїть біля будинку.", "Синій будинок біля річки.", "Чайник кипить на кухні щоранку.",
      "Старий міст відремонтували минулого літа.", "Бібліотека відкривається о дев'ятій ранку."]
EN = ["The red car is parked outside the house.", "A blue house stands by the river.", "The kettle boils in the kitchen.",
      "The old bridge was repaired last summer.", "The library opens at nine in the morning."]
LANGUAGES = ("uk", "en")


def _corpus(n: int) -> tuple[list[str], list[str]]:
    texts, ids = [], []
    for i in range(n):
        texts += [f"{UK[i % 5]} {i}", f"{EN[i % 5]} {i}"]
        ids += [f"uk{i}", f"en{i}"]
    return texts, ids


def _filled(make_index: Any, n: int = 20, **options: Any) -> Any:
    index = make_index(expected_languages=LANGUAGES, **options)
    texts, ids = _corpus(n)
    index.ingest_texts(texts, ids=ids, metadata={"topic": "town"})
    return index


def _snapshot(store: ChromaStore) -> dict[str, tuple[str, dict[str, Any], np.ndarray]]:
    res = store.collection.get(include=["documents", "metadatas", "embeddings"])
    return {cid: (text, dict(meta), np.asarray(vec, np.float32))
            for cid, text, meta, vec in zip(res["ids"], res["documents"], res["metadatas"], res["embeddings"])}


def _assert_same_copy(got: dict, expected: dict, atol: float) -> None:
    assert sorted(got) == sorted(expected)
    for cid, (text, meta, vec) in expected.items():
        assert got[cid][0] == text and got[cid][1] == meta
        assert np.abs(got[cid][2] - vec).max() <= atol, cid


def _collections(store: ChromaStore) -> set[str]:
    return {c.name if hasattr(c, "name") else str(c) for c in store.client.list_collections()}


def test_reindex_copies_every_chunk_with_the_new_models_vectors(make_index, tiny_models, tmp_path: Path) -> None:
    index = _filled(make_index)
    assert index.store.physical == "babelrank" and index.store.alias is None  # a store as before: its own collection
    before = _snapshot(index.store)
    report = index.reindex(str(tiny_models["bi_plain"]), batch_size=7)
    assert report.switched and report.dropped and report.embedded == report.chunks == len(before) == 40
    assert report.batches == 6 and report.resumed == 0 and report.source == "babelrank"
    after = _snapshot(index.store)
    assert index.store.physical == report.target == physical_name("babelrank", index.encoder.fingerprint())
    assert index.encoder.name == str(tiny_models["bi_plain"]) and index.info()["physical_collection"] == report.target
    assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in before.items()}  # ids, texts, every metadata key
    fresh = _filled(make_index, embed_model=str(tiny_models["bi_plain"]), store_path=tmp_path / "fresh")
    reference = _snapshot(fresh.store)
    assert sorted(reference) == sorted(after)
    for cid, (text, meta, vec) in reference.items():  # the new model's vectors, as a fresh ingest writes them
        assert after[cid][0] == text and np.allclose(after[cid][2], vec, atol=1e-5)
        assert {k: v for k, v in after[cid][1].items() if k != "doc_sha256"} == {k: v for k, v in meta.items() if k != "doc_sha256"}
    saved = index.store.get_meta(CALIBRATION_KEY)
    assert saved["exact"] and not saved["pending"]
    kept, scratch = LanguageCalibration.from_dict(saved["calibration"]), fresh.calibration.rebuild()
    assert kept.counts == scratch.counts == {"uk": 20, "en": 20}
    for lang in kept.counts:
        assert np.allclose(kept._chunks.sums[lang], scratch._chunks.sums[lang], atol=1e-4)
    assert "babelrank" not in _collections(index.store)  # the old physical collection is gone
    assert index.search("The red car", rerank=False).nodes


def test_the_collection_remembers_its_model(make_index, tiny_models) -> None:
    index = _filled(make_index, n=5)
    index.reindex(str(tiny_models["bi_plain"]))
    index.close()
    reopened = make_index(embed_model=None)  # no model named: the one it was reindexed to
    assert reopened.encoder.name == reopened.settings.embed_model == str(tiny_models["bi_plain"])
    assert reopened.store.count() == 10 and reopened.search("The red car", rerank=False).nodes
    info = reopened.info()
    assert info["model"] == str(tiny_models["bi_plain"]) and info["physical_collection"].startswith("babelrank.tiny-bi-plain-")
    reopened.close()
    with pytest.raises(ModelMismatchError, match=r"babelrank reindex --to-model") as refused:
        make_index(embed_model=str(tiny_models["bi"]))
    assert str(tiny_models["bi_plain"]) in str(refused.value)
    make_index(embed_model=str(tiny_models["bi_plain"])).close()  # naming it works too


def test_keep_old_then_the_same_model_again_is_nothing_to_do(make_index, tiny_models) -> None:
    index = _filled(make_index, n=5)
    report = index.reindex(str(tiny_models["bi_plain"]), keep_old=True)
    assert report.switched and not report.dropped
    assert {"babelrank", report.target, alias_collection("babelrank")} <= _collections(index.store)
    assert index.store.alias is None and index.store.physical == report.target  # opened on the target itself
    again = index.reindex(str(tiny_models["bi_plain"]))
    assert not again.switched and again.embedded == 0 and index.store.physical == report.target


def test_queries_answer_from_the_old_collection_during_a_reindex(make_index, tiny_models) -> None:
    index = _filled(make_index, n=30)
    expected = [n.node.node_id for n in index.search("The old bridge", rerank=False).nodes]
    seen, errors, stop = [], [], threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                seen.append([n.node.node_id for n in index.search("The old bridge", rerank=False).nodes])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    asker = threading.Thread(target=ask)

    def between_batches(progress) -> None:
        if progress.batch == 1:
            asker.start()
        assert index.store.physical == "babelrank"  # not switched before the copy is complete
        seen.append([n.node.node_id for n in index.search("The old bridge", rerank=False).nodes])
        if progress.batch == progress.batches:
            stop.set()
            asker.join()

    report = index.reindex(str(tiny_models["bi_plain"]), batch_size=5, on_batch=between_batches)
    assert report.batches == 12 and not errors
    assert len(seen) >= 12 and all(ids == expected for ids in seen)
    assert index.store.physical == report.target


def test_a_store_opened_elsewhere_learns_of_the_switch(make_index, tiny_models, tmp_path: Path) -> None:
    index = _filled(make_index, n=5)
    other = ChromaStore("babelrank", index.encoder.fingerprint(), path=tmp_path / "store")  # e.g. another server worker
    index.reindex(str(tiny_models["bi_plain"]))
    with pytest.raises(ModelMismatchError, match="reindexed to embedding model"):
        other.reload()
    other.close()


CHILD = """
import json, sys, time
from babelrank import BabelIndex

old, new, store, marker, corpus = sys.argv[1:6]
texts, ids = json.load(open(corpus))
index = BabelIndex(embed_model=old, rerank_model="none", store_path=store, progress=False, expected_languages=("uk", "en"))
index.ingest_texts(texts, ids=ids, metadata={"topic": "town"})

def slowly(progress):
    with open(marker, "a") as f:
        f.write("x")
    time.sleep(0.3)

index.reindex(new, batch_size=4, on_batch=slowly)
"""


def test_a_reindex_killed_with_sigkill_resumes_to_the_same_collection(make_index, tiny_models, tmp_path: Path) -> None:
    old, new = str(tiny_models["bi"]), str(tiny_models["bi_plain"])
    corpus, marker, killed = tmp_path / "corpus.json", tmp_path / "batches", tmp_path / "killed"
    corpus.write_text(json.dumps(_corpus(20)), encoding="utf-8")
    # the whole history up to the kill in another process: embedded Chroma keeps a store's state in memory
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), old, new, str(killed), str(marker), str(corpus)])
    deadline = time.time() + 120
    while time.time() < deadline and (not marker.exists() or len(marker.read_text()) < 3) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and 3 <= len(marker.read_text()) < 10

    survivor = _filled(make_index, embed_model=old, store_path=killed)  # same texts again: nothing changes
    assert survivor.store.physical == "babelrank" and survivor.store.count() == 40  # the old collection, whole
    assert survivor.search("The red car", rerank=False).nodes
    report = survivor.reindex(new, batch_size=4)
    assert report.switched and report.resumed >= 12 and report.embedded == 40 - report.resumed

    reference = _filled(make_index, embed_model=old, store_path=tmp_path / "reference")
    uninterrupted = reference.reindex(new, batch_size=4)
    assert uninterrupted.target == report.target and uninterrupted.resumed == 0
    _assert_same_copy(_snapshot(survivor.store), _snapshot(reference.store), atol=1e-6)
    assert survivor.store.get_meta(CALIBRATION_KEY) is not None


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """`main` configures logging for the process; undo it for the other tests."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_cli_reindex_then_info(make_index, tiny_models, tmp_path: Path, capsys, _restore_logging) -> None:
    from babelrank.apps.cli import main

    _filled(make_index, n=5).close()
    store = str(tmp_path / "store")
    assert main(["reindex", "--store", store]) == 2  # --to-model is required
    capsys.readouterr()
    assert main(["reindex", "--to-model", str(tiny_models["bi_plain"]), "--store", store, "--batch-size", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["switched"] and report["dropped"] and report["chunks"] == 10 and report["batch_size"] == 3
    assert main(["info", "--json", "--store", store, "--rerank-model", "none"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == str(tiny_models["bi_plain"]) and info["physical_collection"] == report["target"]
    assert main(["reindex", "--to-model", str(tiny_models["bi_plain"]), "--store", store]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["info", "--store", store, "--rerank-model", "none"]) == 0
    assert report["target"] in capsys.readouterr().out
