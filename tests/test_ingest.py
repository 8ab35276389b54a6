import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from babelrank.ingest.pipeline import Ingestor
from babelrank.ingest.sources import SourceDocument
from babelrank.schema import chunk_id

UK = "Червоний автомобіль стоїть біля будинку на вулиці. Синій будинок біля річки, поруч старий міст і парк."
RU = "Красная машина стоит возле дома у реки. Синий дом у реки, рядом старый мост и парк."
EN = "The red car is parked outside the house near the river. A blue house stands by the river and the old bridge."


def _snapshot(index):
    res = index.store.collection.get(include=["metadatas", "documents", "embeddings"])
    order = np.argsort(res["ids"])
    return (
        [res["ids"][i] for i in order],
        [res["metadatas"][i] for i in order],
        [res["documents"][i] for i in order],
        np.asarray(res["embeddings"])[order] if len(order) else np.zeros((0,)),
    )


def _assert_same(a, b) -> None:
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert np.allclose(a[3], b[3], atol=1e-6)


def _corpus(n: int) -> list[SourceDocument]:
    texts = [UK, RU, EN]
    return [SourceDocument(f"doc{i}", f"{texts[i % 3]} {i}. " * (1 + i % 4), "test", {"n": i}) for i in range(n)]


def test_metadata_ids_and_languages(make_index, tmp_path: Path) -> None:
    index = make_index(expected_languages=("uk", "ru", "en"))
    (tmp_path / "a.txt").write_text(UK + "\n\n" + EN, encoding="utf-8")
    report = index.ingest([tmp_path / "a.txt"])
    assert report.added == 1 and report.chunks_written >= 1 and report.skipped == []
    ids, metas, docs, _ = _snapshot(index)
    for cid, meta, text in zip(ids, metas, docs):
        assert cid == chunk_id(meta["doc_id"], meta["chunk_index"], meta["content_sha256"])
        assert meta["source"] == str((tmp_path / "a.txt").resolve()) and meta["file_name"] == "a.txt"
        original = (tmp_path / "a.txt").read_text(encoding="utf-8")
        assert original[meta["char_start"] : meta["char_end"]] == text
        assert meta["language"] in {"uk", "ru", "en", "und"} and 0 <= meta["language_confidence"] <= 1
        assert meta["chunk_count"] == len(ids)


def test_reingest_unchanged_embeds_nothing_and_changed_replaces_exactly_its_chunks(make_index, tmp_path: Path) -> None:
    index = make_index(chunk_tokens=16, chunk_overlap=0)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "uk.txt").write_text(" ".join([UK] * 3), encoding="utf-8")
    (folder / "en.txt").write_text(EN, encoding="utf-8")
    first = index.ingest([folder])
    assert first.added == 2 and first.chunks_embedded == first.chunks_written
    before = _snapshot(index)
    again = index.ingest([folder])
    assert (again.unchanged, again.chunks_embedded, again.chunks_written) == (2, 0, 0)
    _assert_same(before, _snapshot(index))

    (folder / "uk.txt").write_text(" ".join([UK] * 2) + " Новий кінець.", encoding="utf-8")
    changed = index.ingest([folder])
    assert (changed.updated, changed.unchanged) == (1, 1)
    assert 0 < changed.chunks_embedded < changed.chunks_written  # unchanged leading chunks reuse vectors
    assert changed.chunks_deleted > 0
    ids, metas, _, _ = _snapshot(index)
    uk_chunks = [m for m in metas if m["doc_id"].endswith("uk.txt")]
    assert sorted(m["chunk_index"] for m in uk_chunks) == list(range(uk_chunks[0]["chunk_count"]))
    assert [i for i in ids if "en.txt" in i] == [i for i in before[0] if "en.txt" in i]

    # a fresh store given the final files directly ends in the same state
    fresh = make_index(chunk_tokens=16, chunk_overlap=0, collection="fresh-one")
    fresh.ingest([folder])
    _assert_same(_snapshot(fresh), _snapshot(index))


def test_delete_and_prune(make_index, tmp_path: Path) -> None:
    index = make_index()
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in (("a.txt", UK), ("b.txt", RU), ("c.txt", EN)):
        (folder / name).write_text(text, encoding="utf-8")
    index.ingest_texts(["outside the folder"], ids=["raw"])
    index.ingest([folder])
    assert index.delete(str((folder / "a.txt").resolve())) >= 1
    assert index.delete("no-such-doc") == 0
    (folder / "b.txt").unlink()
    kept = index.ingest([folder])
    assert kept.added == 1 and kept.deleted == 0  # a.txt comes back; vanished b.txt stays without prune
    assert str((folder / "b.txt").resolve()) in index.documents()
    pruned = index.ingest([folder], prune=True)
    assert (pruned.deleted, pruned.unchanged) == (1, 2)
    assert set(index.documents()) == {"raw", str((folder / "a.txt").resolve()), str((folder / "c.txt").resolve())}


def test_interrupted_ingest_rerun_equals_uninterrupted(make_index, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _corpus(12)
    reference = make_index(collection="reference", chunk_tokens=16, chunk_overlap=0)
    Ingestor(reference.encoder, reference.store, reference.chunker, reference.detector, group_chunks=5).run(docs)

    index = make_index(collection="interrupted", chunk_tokens=16, chunk_overlap=0)
    ingestor = Ingestor(index.encoder, index.store, index.chunker, index.detector, group_chunks=5)
    calls = {"n": 0}
    real_upsert = index.store.upsert

    def dying_upsert(ids, vectors, texts, metas):
        calls["n"] += 1
        if calls["n"] == 3:  # half of a group is written, then the process "dies"
            real_upsert(ids[: len(ids) // 2], vectors[: len(ids) // 2], texts[: len(ids) // 2], metas[: len(ids) // 2])
            raise KeyboardInterrupt
        real_upsert(ids, vectors, texts, metas)

    monkeypatch.setattr(index.store, "upsert", dying_upsert)
    with pytest.raises(KeyboardInterrupt):
        ingestor.run(docs)
    monkeypatch.setattr(index.store, "upsert", real_upsert)
    assert 0 < index.store.count() < reference.store.count()
    report = ingestor.run(docs)
    assert report.unchanged > 0 and report.unchanged < len(docs)
    _assert_same(_snapshot(index), _snapshot(reference))


def test_killed_process_rerun_equals_uninterrupted(make_index, tiny_models, tmp_path: Path) -> None:
    """SIGKILL a real ingest process half-way; a re-run ends in the uninterrupted state."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for doc in _corpus(40):
        (folder / f"{doc.doc_id}.txt").write_text(doc.text, encoding="utf-8")
    store = tmp_path / "killed"
    marker = tmp_path / "groups"
    script = textwrap.dedent(f"""
        import time
        from babelrank import BabelIndex
        from babelrank.ingest.pipeline import Ingestor
        from babelrank.ingest.sources import read_paths
        index = BabelIndex(embed_model={str(tiny_models['bi'])!r}, rerank_model="none", store_path={str(store)!r},
                           chunk_tokens=16, chunk_overlap=0, progress=False)
        real = index.store.upsert
        def slow_upsert(*args):
            real(*args)
            with open({str(marker)!r}, "a") as f:
                f.write("x")
            time.sleep(0.2)
        index.store.upsert = slow_upsert
        docs, _ = read_paths([{str(folder)!r}])
        Ingestor(index.encoder, index.store, index.chunker, index.detector, group_chunks=4).run(docs)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and (not marker.exists() or len(marker.read_text()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert marker.exists() and len(marker.read_text()) >= 3

    resumed = make_index(store_path=store, chunk_tokens=16, chunk_overlap=0)
    partial = resumed.store.count()
    report = resumed.ingest([folder])
    assert report.unchanged > 0
    reference = make_index(store_path=tmp_path / "reference", chunk_tokens=16, chunk_overlap=0)
    reference.ingest([folder])
    assert partial < reference.store.count()
    _assert_same(_snapshot(resumed), _snapshot(reference))


def test_model_mismatch_is_refused(make_index, tiny_models) -> None:
    from babelrank import ModelMismatchError

    make_index(collection="shared").close()
    with pytest.raises(ModelMismatchError, match="tiny-bi"):
        make_index(collection="shared", embed_model=str(tiny_models["bi_plain"]))


def test_duplicate_ids_keep_the_first(make_index) -> None:
    index = make_index()
    report = index.ingest_texts(["один", "два"], ids=["same", "same"])
    assert report.added == 1 and len(report.skipped) == 1


def test_small_groups_and_slices_store_the_same_as_one_write(make_index) -> None:
    """Groups, length-sorted slices and the writer thread change nothing in the stored state."""
    from babelrank.store.calibration import LanguageCalibration
    from babelrank.store.chroma import CALIBRATION_KEY

    first, final = _corpus(14), _corpus(14)
    final[3] = SourceDocument("doc3", UK + " Новий кінець.", "test", {"n": 3})  # changed: new and stale chunks
    final[8] = SourceDocument("doc8", EN, "test", {"n": 8})

    def ingest(index, docs, **options):
        return Ingestor(index.encoder, index.store, index.chunker, index.detector, listener=index.calibration, **options).run(docs)

    whole = make_index(collection="whole", chunk_tokens=16, chunk_overlap=0)
    ingest(whole, final, batch_size=32, group_chunks=10_000)
    sliced = make_index(collection="sliced", chunk_tokens=16, chunk_overlap=0)
    report = ingest(sliced, first, batch_size=1, group_chunks=3)  # slices of 4 chunks, groups of >= 3
    assert report.chunks_embedded == report.chunks_written == sliced.store.count()
    again = ingest(sliced, final, batch_size=1, group_chunks=3)
    assert (again.updated, again.unchanged) == (2, 12) and again.chunks_deleted > 0
    _assert_same(_snapshot(sliced), _snapshot(whole))
    kept = LanguageCalibration.from_dict(sliced.store.get_meta(CALIBRATION_KEY)["calibration"])
    rebuilt = sliced.calibration.rebuild()
    assert kept.counts == rebuilt.counts and sum(kept.counts.values()) == sliced.store.count()
    for lang in kept.counts:
        assert np.allclose(kept._chunks.sums[lang], rebuilt._chunks.sums[lang], atol=1e-5)


def test_writer_runs_jobs_in_order_and_stops_at_the_first_failure() -> None:
    import threading

    from babelrank.ingest.pipeline import _Writer

    done: list[int] = []
    gate = threading.Event()
    writer = _Writer(pending=10)
    writer.submit(gate.wait)  # hold the writer until every job is queued

    def fail() -> None:
        raise OSError("disk full")

    for job in (lambda: done.append(1), lambda: done.append(2), fail, lambda: done.append(4)):
        writer.submit(job)
    gate.set()
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert done == [1, 2]
    with pytest.raises(OSError, match="disk full"):
        writer.submit(lambda: done.append(5))



def test_prune_keeps_what_cannot_be_read(refuse, make_index, tmp_path: Path) -> None:
    index = make_index()
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text(UK, encoding="utf-8")
    (folder / "b.txt").write_text(RU, encoding="utf-8")
    (folder / "c.txt").write_text(EN, encoding="utf-8")
    index.ingest([folder])
    stored = set(index.documents())
    refuse(folder / "sub", os, "scandir")
    refuse(folder / "c.txt", Path, "read_bytes")
    report = index.ingest([folder], prune=True)
    assert (report.deleted, report.chunks_deleted, report.unchanged) == (0, 0, 1)
    assert {(Path(s.source).name, s.reason) for s in report.skipped} == {
        ("sub", "cannot read folder: Permission denied"), ("c.txt", "cannot read file: Permission denied")}
    assert set(index.documents()) == stored


def test_prune_deletes_records_removed_from_a_container(make_index, tmp_path: Path) -> None:
    index = make_index()
    folder = tmp_path / "docs"
    folder.mkdir()
    records = folder / "r.jsonl"
    records.write_text(f'{{"id": 1, "text": "{UK}"}}\n{{"id": 2, "text": "{RU}"}}\n{{"id": 3, "text": "{EN}"}}\n', encoding="utf-8")
    index.ingest([folder])
    ids = {f"{records.resolve()}#{n}" for n in (1, 2, 3)}
    assert set(index.documents()) == ids
    records.write_text(f'{{"id": 1, "text": "{UK}"}}\n{{"id": 3, "text": "{EN}"}}\n', encoding="utf-8")
    report = index.ingest([folder], prune=True)
    assert (report.deleted, report.unchanged) == (1, 2)
    assert set(index.documents()) == ids - {f"{records.resolve()}#2"}
    assert index.store.docs_state([f"{records.resolve()}#2"]) == {}  # no chunk of it left to find
    records.write_text(f'{{"id": 1, "text": "{UK}"}}\n{{broken\n', encoding="utf-8")  # unreadable now: all records stay
    report = index.ingest([records], prune=True)
    assert report.deleted == 0 and len(report.skipped) == 1
    assert set(index.documents()) == ids - {f"{records.resolve()}#2"}


def test_bad_inputs_are_skipped_and_the_rest_is_ingested(refuse, make_index, tmp_path: Path) -> None:
    index = make_index()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(EN, encoding="utf-8")
    (folder / "locked.txt").write_text(UK, encoding="utf-8")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with open(os.fsencode(folder) + b"/\xcf\xf0\xe8\xe2\xb3\xf2.txt", "wb") as f:  # "Привіт" in cp1251
        f.write(RU.encode("utf-8"))
    refuse(folder / "locked.txt", Path, "read_bytes")
    report = index.ingest([folder])
    assert report.added == 1 and set(index.documents()) == {str((folder / "good.txt").resolve())}
    reasons = sorted(s.reason.split(";")[0] for s in report.skipped)
    assert len(reasons) == 3
    assert reasons[0] == "JSON nested too deeply"
    assert reasons[1] == "cannot read file: Permission denied"
    assert reasons[2].startswith("file name is not valid UTF-8")


def test_size_limit_setting_skips_big_files(make_index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.txt").write_text(EN * 20, encoding="utf-8")
    (folder / "small.txt").write_text(UK, encoding="utf-8")
    monkeypatch.setenv("BABELRANK_MAX_FILE_MB", "0.001")
    index = make_index()
    assert index.settings.max_file_mb == 0.001
    report = index.ingest([folder])
    assert report.added == 1 and [Path(s.source).name for s in report.skipped] == ["big.txt"]
    assert "over the max_file_mb limit" in report.skipped[0].reason
    monkeypatch.delenv("BABELRANK_MAX_FILE_MB")
    report = make_index(collection="default-limit").ingest([folder])
    assert report.added == 2 and report.skipped == []
