"""Several writers on one collection: nothing fails and the language calibration ends exact."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from test_index import _same, _scratch, _texts
from test_server import chroma_server  # noqa: F401  (a real `chroma run` on a free local port)

from babelrank.store.calibration import LanguageCalibration
from babelrank.store.chroma import CALIBRATION_KEY, ChromaStore
from babelrank.store.lock import META_LOCK_LEASE, META_LOCK_SUFFIX

WRITER = """
import sys
from babelrank import BabelIndex

model, host, port, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
uk = "Червоний автомобіль стоїть біля будинку на вулиці {}."
en = "The red car is parked outside the house near the river {}."
with BabelIndex(embed_model=model, chroma_host=host, chroma_port=port, collection="shared", rerank_model="none",
                expected_languages=("uk", "en"), progress=False) as index:
    print("ready", flush=True)
    sys.stdin.readline()  # both start writing at once
    texts = [(uk if i % 2 else en).format(f"{name} {i}") for i in range(n)]
    ids = [f"{name}-{i}" for i in range(n)]
    index.ingest_texts(texts, ids=ids)
    index.ingest_texts([t + " Changed." for t in texts[: n // 4]], ids=ids[: n // 4])
    index.delete(ids[-(n // 8):])
"""


def test_two_processes_ingest_into_one_server_collection(tiny_models: dict[str, Path], chroma_server) -> None:  # noqa: F811
    host, port = chroma_server
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tiny_models["bi"]), host, str(port), name, "600"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in ("a", "b")
    ]
    for w in writers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    for w in writers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    outputs = [w.communicate(timeout=600)[0] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    client = chromadb.HttpClient(host=host, port=port)
    collection = client.get_collection("shared")
    saved = json.loads(collection.metadata[CALIBRATION_KEY])
    assert collection.count() == 2 * (600 - 75) and saved["pending"] == {} and saved["exact"] is True
    res = collection.get(include=["embeddings", "metadatas"])
    scratch = LanguageCalibration(32)
    scratch.add(np.asarray(res["embeddings"], dtype=np.float32), [m["language"] for m in res["metadatas"]])
    _same(LanguageCalibration.from_dict(saved["calibration"]), scratch)
    assert [c.name for c in client.list_collections()] == ["shared"]  # the metadata lock is gone


@pytest.fixture(params=["embedded", "server"])
def two_writers(request: pytest.FixtureRequest, make_index) -> tuple[Any, Any]:
    """Two indexes on one collection, as two processes would hold them."""
    options: dict[str, Any] = {"collection": "two", "expected_languages": ("uk", "en")}
    if request.param == "server":
        host, port = request.getfixturevalue("chroma_server")
        options.update(chroma_host=host, chroma_port=port)
    return make_index(**options), make_index(**options)


def _write(index, ids: list[str], vectors: np.ndarray, languages: list[str]) -> None:
    index.store.upsert(ids, vectors, ids, [{"doc_id": i, "language": lang} for i, lang in zip(ids, languages)])


def _saved(index) -> dict[str, Any]:
    index.store.reload()
    return index.store.get_meta(CALIBRATION_KEY)


def test_interleaved_writers_lose_no_update(two_writers) -> None:
    a, b = two_writers
    texts, ids = _texts(15)
    a.ingest_texts(texts, ids=ids)
    added = np.random.default_rng(0).normal(size=(6, 32)).astype(np.float32)
    languages = ["uk", "en"] * 3
    gone = b.store.get(list(b.store.docs_state(["uk0"])["uk0"].chunk_ids))
    none = np.zeros((0, 32), np.float32)
    a.calibration.before_write()  # both read the same calibration, then write
    b.calibration.before_write()
    _write(a, [f"new{i}" for i in range(6)], added, languages)
    b.store.delete_ids(list(gone))
    a.calibration.on_write(added, languages, none, [])
    b.calibration.on_write(none, [], np.stack([v[2] for v in gone.values()]), [v[1]["language"] for v in gone.values()])
    saved = _saved(a)
    _same(LanguageCalibration.from_dict(saved["calibration"]), _scratch(a))
    assert saved["pending"] == {} and saved["exact"] is True
    assert sum(b.calibration.latest.counts.values()) == a.store.count() == 30 + 6 - 1


def test_a_write_left_pending_is_recalibrated_after_its_lease(make_index, chroma_server) -> None:  # noqa: F811
    host, port = chroma_server
    index = make_index(collection="leased", chroma_host=host, chroma_port=port)
    texts, ids = _texts(10)
    index.ingest_texts(texts, ids=ids)
    vectors = np.random.default_rng(1).normal(size=(2, 32)).astype(np.float32)
    for age, rebuilt in ((10.0, False), (3600.0, True)):  # another process's write: under way / killed long ago
        saved = _saved(index)
        saved["pending"] = {"other-1-0": {"since": time.time() - age, "rebuild": False}}
        index.store.set_meta(CALIBRATION_KEY, saved)
        _write(index, [f"half{age}-0", f"half{age}-1"], vectors, ["uk", "en"])
        other = make_index(collection="leased", chroma_host=host, chroma_port=port)
        assert sum(other.calibration.latest.counts.values()) == index.store.count() - (0 if rebuilt else 2)
        assert (_saved(other)["pending"] == {}) is rebuilt
    _same(other.calibration.latest, _scratch(other))


def test_writes_wait_for_a_rebuild_and_a_rebuild_for_writes(make_index, monkeypatch) -> None:
    a, b = make_index(collection="turns"), make_index(collection="turns")
    texts, ids = _texts(5)
    a.ingest_texts(texts, ids=ids)
    reading, go_on, reads = threading.Event(), threading.Event(), []
    real_iter_all = b.store.iter_all

    def slow_iter_all(**kwargs):
        reads.append(kwargs)
        reading.set()
        go_on.wait(30)
        yield from real_iter_all(**kwargs)

    monkeypatch.setattr(b.store, "iter_all", slow_iter_all)
    rebuild = threading.Thread(target=b.calibration.rebuild)
    rebuild.start()
    assert reading.wait(30)
    write = threading.Thread(target=a.calibration.before_write)
    write.start()
    write.join(1.5)
    assert write.is_alive()  # held back while the rebuild reads
    go_on.set()
    rebuild.join(30)
    write.join(30)
    assert not write.is_alive() and len(_saved(a)["pending"]) == 1
    b.calibration.rebuild()  # with a write under way: left to the writer, nothing read
    assert len(reads) == 1
    a.calibration.on_write(np.zeros((0, 32), np.float32), [], np.zeros((0, 32), np.float32), [])
    saved = _saved(a)
    assert saved["pending"] == {} and saved["exact"] is True


def test_a_metadata_lock_left_by_a_killed_process_is_broken(chroma_server) -> None:  # noqa: F811
    host, port = chroma_server
    with ChromaStore("locked", {"model": "m"}, host=host, port=port) as store:
        store.client.create_collection("locked" + META_LOCK_SUFFIX, metadata={"since": time.time() - 2 * META_LOCK_LEASE})
        assert store.update_meta("k", lambda value: {"n": 1}) == {"n": 1}
        assert store.update_meta("k", lambda value: {"n": value["n"] + 1}) == {"n": 2} == store.get_meta("k")
        assert [c.name for c in store.client.list_collections()] == ["locked"]
