"""The HTTP service: endpoints, errors, auth, limits, concurrency, lifespan, Chroma server mode."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from babelrank import BabelIndex, Settings, StoreLockedError  # noqa: E402
from babelrank.apps.server import create_app  # noqa: E402
from babelrank.config import ServerSettings  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def _settings(tiny_models: dict[str, Path], store: Path, **extra: Any) -> Settings:
    values = {"embed_model": str(tiny_models["bi"]), "rerank_model": str(tiny_models["cross"]),
              "store_path": store, "progress": False, "min_relevance": "none", **extra}  # see conftest's _clean_env
    return Settings.from_env(env={}, **values)


@pytest.fixture(scope="module")
def shared_index(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[BabelIndex]:
    """One read-only index over examples/data for the query tests."""
    index = BabelIndex(_settings(tiny_models, tmp_path_factory.mktemp("server-store")))
    index.ingest([DATA])
    yield index
    index.close()


@pytest.fixture
def client(shared_index: BabelIndex) -> Iterator[TestClient]:
    with TestClient(create_app(index=shared_index, server_settings=ServerSettings())) as c:
        yield c


@pytest.fixture
def writable(make_index: Any) -> Iterator[tuple[TestClient, BabelIndex]]:
    index = make_index()
    with TestClient(create_app(index=index, server_settings=ServerSettings())) as c:
        yield c, index


def _error(response: httpx.Response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def test_health_and_collections(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/v1/collections").json()["collections"][0]
    assert info["documents"] == 9
    assert set(info["languages"]) >= {"uk", "ru", "en"}
    assert info["dimension"] == 32
    assert "store" in info and "model" in info
    assert client.get("/openapi.json").json()["paths"]["/v1/query"]


def test_query_returns_both_scores_language_and_timings(client: TestClient) -> None:
    response = client.post("/v1/query", json={"query": "Червоний автомобіль стоїть біля будинку", "k": 20, "top_n": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query_language"] == "uk"
    assert 0 <= body["query_language_confidence"] <= 1
    assert {"embed", "search", "rerank", "total"} <= set(body["timings"])
    results = body["results"]
    assert len(results) == 4
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    for r in results:
        assert r["rerank_score"] is not None and r["retrieval_score"] is not None
        assert r["score"] == pytest.approx(r["rerank_score"])
        assert r["language"] in {"uk", "ru", "en"}
        assert r["text"] and r["doc_id"] and r["source"]
        assert "content_sha256" not in r["metadata"]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_query_filters_and_no_rerank(client: TestClient) -> None:
    body = client.post("/v1/query", json={"query": "bridge over the river", "languages": ["ru"], "rerank": False}).json()
    assert body["results"] and all(r["language"] == "ru" for r in body["results"])
    assert all(r["rerank_score"] is None for r in body["results"])
    body = client.post("/v1/query", json={"query": "ринок", "top_k": 30, "where": {"topic": "places"}}).json()
    assert body["results"] and all(r["metadata"]["topic"] == "places" for r in body["results"])


def test_query_relevance_and_no_answer(tiny_models: dict[str, Path], tmp_path: Path,
                                       pin_relevance: Callable[[Any], None]) -> None:
    index = BabelIndex(_settings(tiny_models, tmp_path / "store"))
    index.ingest_texts([f"Note {i}: the river flows past mill {i} and the market square." for i in range(60)])
    pin_relevance(index)
    with TestClient(create_app(index=index, server_settings=ServerSettings())) as client:
        _relevance_answers(client)
    index.close()


def _relevance_answers(client: TestClient) -> None:
    body = client.post("/v1/query", json={"query": "bridge over the river", "min_relevance": 0}).json()
    assert body["answerable"] is True and body["results"]
    assert all(0.0 <= r["relevance"] <= 1.0 for r in body["results"])
    body = client.post("/v1/query", json={"query": "bridge over the river", "min_relevance": 1}).json()
    assert body["answerable"] is False and body["results"] == []
    bad = client.post("/v1/query", json={"query": "x", "min_relevance": 1.5})
    assert bad.status_code == 422 and "min_relevance" in bad.text


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"query": ""}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "top_n": "many"}, "top_n"),
        ({"query": "x", "colour": "red"}, "colour"),
        ({"text": "x"}, "query"),
        ({"query": "   "}, "blank"),
        ({"query": "x" * 2001}, "2000"),
    ],
)
def test_query_validation_errors(client: TestClient, payload: dict[str, Any], fragment: str) -> None:
    assert fragment in _error(client.post("/v1/query", json=payload), 422, "validation_error")


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"languages": ["xx"]}, "unknown language code 'xx'"),
        ({"prefer_languages": ["uk", "english"]}, "unknown language code 'english'"),
        ({"answer_language": "zz"}, "unknown language code 'zz'"),
        ({"dedup": "maybe"}, "dedup"),
        ({"dedup": True}, "dedup"),
        ({"neutral": "yes"}, "neutral"),
        ({"dedup_threshold": 1.5}, "dedup_threshold"),
        ({"prefer_margin": -0.1}, "prefer_margin"),
        ({"languages": "uk"}, "languages"),
    ],
)
def test_query_option_validation_errors(client: TestClient, payload: dict[str, Any], fragment: str) -> None:
    response = client.post("/v1/query", json={"query": "river", **payload})
    message = _error(response, 422, "validation_error")
    assert fragment in message and response.json()["error"]["details"]


def _languages(body: dict[str, Any]) -> list[str]:
    return [r["language"] for r in body["results"]]


def test_query_language_preferences(client: TestClient) -> None:
    base = {"query": "river and bridge", "top_n": 30, "dedup": "off"}
    body = client.post("/v1/query", json={**base, "languages": ["eng", "UKR"]}).json()
    assert set(_languages(body)) == {"uk", "en"}  # ISO 639-3 and upper case are normalised
    # A margin of 1 outweighs any score gap (sigmoids in [0, 1]): every ru result comes first.
    langs = _languages(client.post("/v1/query", json={**base, "prefer_languages": ["rus"], "prefer_margin": 1}).json())
    assert "ru" in langs and len(set(langs)) > 1 and langs == sorted(langs, key=lambda x: x != "ru")
    langs = _languages(client.post("/v1/query", json={**base, "answer_language": "en", "prefer_margin": 1}).json())
    assert "en" in langs and langs == sorted(langs, key=lambda x: x != "en")
    plain = _languages(client.post("/v1/query", json=base).json())
    assert plain != sorted(plain, key=lambda x: x != "ru")  # without the preference ru is not first


def test_query_dedup_modes(client: TestClient) -> None:
    base = {"query": "river and bridge", "top_n": 5, "rerank": False}
    body = client.post("/v1/query", json={**base, "dedup": "off"}).json()
    assert len(body["results"]) == 5 and all(r["alternates"] == [] for r in body["results"])
    # A threshold of -1 merges every candidate into one result, shown in the answer language.
    body = client.post("/v1/query", json={**base, "dedup": "on", "dedup_threshold": -1, "answer_language": "ru"}).json()
    assert [r["language"] for r in body["results"]] == ["ru"]
    alternates = body["results"][0]["alternates"]
    assert len(alternates) >= 4 and {a["language"] for a in alternates} >= {"uk", "en"}
    assert all(set(a) == {"id", "language", "score"} for a in alternates)
    assert [a["score"] for a in alternates] == sorted((a["score"] for a in alternates), reverse=True)
    assert "alternates" not in body["results"][0]["metadata"]


def test_query_neutral_modes(make_index: Any) -> None:
    index = make_index()
    index.ingest_texts([f"Нотатка {i}: у Києві й Львові є річки, мости, ринки і бібліотеки." for i in range(25)]
                       + [f"Note {i}: the river flows past the old mill and the market square." for i in range(25)])
    changed = 0
    with TestClient(create_app(index=index, server_settings=ServerSettings())) as c:
        for query, own in (("Де тут ринок і міст через річку?", "uk"), ("Where is the market and the bridge?", "en")):
            base = {"query": query, "top_n": 50, "rerank": False, "dedup": "off"}
            scores = {}
            for mode in ("off", "on", "auto"):
                body = c.post("/v1/query", json={**base, "neutral": mode}).json()
                assert body["query_language"] == own
                scores[mode] = {r["id"]: (r["language"], r["retrieval_score"]) for r in body["results"]}
            assert scores["auto"] == scores["on"]  # auto: the configured mode, on for two calibrated languages
            # "on" answers with the library's neutral scores, "off" with raw cosines
            stored = index.store.get(list(scores["on"]))
            ids = list(stored)
            vectors = np.stack([stored[cid][2] for cid in ids])
            q = index.encoder.encode_queries([query])[0]
            want = index.neutral_scorer("on").rescore(q, own, vectors, [stored[cid][1]["language"] for cid in ids])
            for cid, neutral, raw in zip(ids, want, vectors @ q):
                assert scores["on"][cid][1] == pytest.approx(neutral, abs=1e-5)
                assert scores["off"][cid][1] == pytest.approx(raw, abs=1e-5)
                changed += abs(neutral - raw) > 1e-4
    assert changed


def test_collections_report_backends(client: TestClient, shared_index: BabelIndex) -> None:
    info = client.get("/v1/collections").json()["collections"][0]
    assert info["backend"] == shared_index.encoder.backend != "auto"  # the backend running, "auto" resolved
    assert info["language_backend"] == "auto" and info["expected_languages"] == []
    schema = client.get("/openapi.json").json()["components"]["schemas"]["QueryRequest"]["properties"]
    assert {"prefer_languages", "prefer_margin", "answer_language", "dedup", "dedup_threshold", "neutral"} <= set(schema)


def test_bad_filter_and_malformed_json_are_422(client: TestClient) -> None:
    _error(client.post("/v1/query", json={"query": "x", "where": {"$bogus": 1}}), 422, "validation_error")
    response = client.post("/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    body = response.json()
    assert response.status_code == 422 and body["error"]["type"] == "validation_error" and body["error"]["details"]


@pytest.fixture(scope="module")
def neutral_index(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[BabelIndex]:
    """Two languages with enough chunks each for language-neutral scoring."""
    index = BabelIndex(_settings(tiny_models, tmp_path_factory.mktemp("neutral-store")))
    index.ingest_texts([f"Нотатка {i}: у Києві й Львові є річки, мости, ринки і бібліотеки." for i in range(25)]
                       + [f"Note {i}: the river flows past the old mill and the market square." for i in range(25)],
                       metadata={"topic": "places"})
    yield index
    index.close()


@pytest.mark.parametrize("where, fragment", [
    ({"$in": "ru"}, "'$in'"),
    ({"language": {"$in": "ru"}}, "non-empty list"),
    ({"language": ["uk", "ru"]}, '{"$in": [...]}'),
    ({"topic": None}, "null"),
    ({"topic": {"$eq": "a", "$ne": "b"}}, "exactly one operator"),
    ({"$or": [{"topic": "places"}]}, "at least two"),
    ({"year": {"$gt": "2000"}}, "number"),
    (["topic", "places"], "where"),
])
@pytest.mark.parametrize("neutral", ["on", "off"])
def test_malformed_where_is_422_in_every_mode(neutral_index: BabelIndex, where: Any, fragment: str, neutral: str) -> None:
    with TestClient(create_app(index=neutral_index, server_settings=ServerSettings())) as c:
        response = c.post("/v1/query", json={"query": "river", "where": where, "neutral": neutral})
        message = _error(response, 422, "validation_error")
        assert message.startswith("where: ") and fragment in message, message
        ok = c.post("/v1/query", json={"query": "river", "neutral": neutral, "rerank": False,
                                       "where": {"$or": [{"topic": "places"}, {"topic": {"$in": ["food", "art"]}}]}})
        assert ok.status_code == 200 and ok.json()["results"], ok.text


def test_unknown_route_and_method(client: TestClient) -> None:
    _error(client.get("/v1/nothing"), 404, "not_found")
    _error(client.get("/v1/query"), 405, "method_not_allowed")


def test_bearer_token(shared_index: BabelIndex) -> None:
    app = create_app(index=shared_index, server_settings=ServerSettings(api_token="s3cret"))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        response = c.post("/v1/query", json={"query": "river"})
        assert "missing" in _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        _error(c.get("/v1/collections", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        _error(c.get("/docs"), 401, "unauthorized")
        ok = c.post("/v1/query", json={"query": "river"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["results"]


def test_token_from_environment(shared_index: BabelIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BABELRANK_API_TOKEN", "from-env")
    monkeypatch.setenv("BABELRANK_MAX_QUERY_CHARS", "10")
    with TestClient(create_app(index=shared_index)) as c:
        _error(c.get("/v1/collections"), 401, "unauthorized")
        auth = {"Authorization": "bearer from-env"}
        assert c.get("/v1/collections", headers=auth).status_code == 200
        _error(c.post("/v1/query", json={"query": "x" * 11}, headers=auth), 422, "validation_error")


def test_body_size_limit(shared_index: BabelIndex) -> None:
    with TestClient(create_app(index=shared_index, server_settings=ServerSettings(max_body_bytes=1000))) as c:
        _error(c.post("/v1/query", json={"query": "x" * 2000}), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"documents": [{"text": "'
            for _ in range(50):
                yield b"y" * 100
            yield b'"}]}'

        response = c.post("/v1/documents", content=chunks(), headers={"content-type": "application/json"})
        _error(response, 413, "payload_too_large")
        assert c.post("/v1/query", json={"query": "river"}).status_code == 200


def test_json_documents_ingest_query_delete(writable: tuple[TestClient, BabelIndex]) -> None:
    c, index = writable
    docs = {"documents": [
        {"id": "kb/tea", "text": "Зелений чай заварюють водою температури вісімдесят градусів.", "metadata": {"team": "kitchen"}},
        {"id": "kb/train", "text": "Поезд в Киев отправляется с третьей платформы в полдень.", "metadata": {"team": "travel"}},
        {"text": "The museum is closed on Mondays.", "source": "faq"},
    ]}
    report = c.post("/v1/documents", json=docs).json()
    assert report["documents"] == 3 and report["added"] == 3 and report["skipped"] == []
    assert set(report["languages"]) == {"uk", "ru", "en"}
    again = c.post("/v1/documents", json=docs).json()
    assert again["unchanged"] == 3 and again["chunks_embedded"] == 0

    body = c.post("/v1/query", json={"query": "чай", "where": {"team": "kitchen"}}).json()
    assert [r["doc_id"] for r in body["results"]] == ["kb/tea"]
    assert body["results"][0]["metadata"]["team"] == "kitchen"

    deleted = c.delete("/v1/documents/kb/tea")
    assert deleted.status_code == 200 and deleted.json() == {"doc_id": "kb/tea", "chunks_deleted": 1}
    _error(c.delete("/v1/documents/kb/tea"), 404, "not_found")
    assert index.documents().keys() >= {"kb/train"} and "kb/tea" not in index.documents()


def test_json_documents_validation(writable: tuple[TestClient, BabelIndex]) -> None:
    c, _ = writable
    _error(c.post("/v1/documents", json={"documents": []}), 422, "validation_error")
    _error(c.post("/v1/documents", json={"documents": [{"id": "a"}]}), 422, "validation_error")
    _error(c.post("/v1/documents", json={"documents": [{"text": "  "}]}), 422, "validation_error")
    _error(c.post("/v1/documents", content=b"a,b", headers={"content-type": "text/csv"}), 415, "unsupported_media_type")


def test_multipart_upload(writable: tuple[TestClient, BabelIndex]) -> None:
    c, index = writable
    files = [
        ("files", ("city.md", (DATA / "uk" / "city.md").read_bytes(), "text/markdown")),
        ("files", ("notes.jsonl", (DATA / "notes.jsonl").read_bytes(), "application/x-ndjson")),
        ("files", ("tool.exe", b"MZ\x00\x00", "application/octet-stream")),
        ("files", ("bad.txt", b"\xff\xfe\x00bad", "text/plain")),
    ]
    response = c.post("/v1/documents", files=files, data={"metadata": json.dumps({"batch": "b1"})})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["added"] == 4  # city.md + 3 records
    assert sorted(s["source"] for s in report["skipped"]) == ["bad.txt", "tool.exe"]
    assert set(index.documents()) == {"city.md", "notes.jsonl#market", "notes.jsonl#phone", "notes.jsonl#bridge"}
    hit = c.post("/v1/query", json={"query": "ринок", "where": {"batch": "b1"}, "top_n": 10}).json()["results"]
    assert hit and all(r["metadata"]["batch"] == "b1" for r in hit)
    assert {r["source"] for r in hit} <= {"city.md", "notes.jsonl"}
    assert c.delete("/v1/documents/notes.jsonl#market").status_code == 404  # '#' starts a URL fragment
    assert c.delete("/v1/documents/notes.jsonl%23market").status_code == 200
    _error(c.post("/v1/documents", files=[("other", ("a.txt", b"x", "text/plain"))]), 422, "validation_error")


def test_fifty_concurrent_queries(shared_index: BabelIndex) -> None:
    app = create_app(index=shared_index, server_settings=ServerSettings())
    queries = ["Червоний автомобіль", "Красная машина у реки", "the old bridge", "чайник на кухні", "library hours"]

    async def main() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as ac:
                health = asyncio.create_task(ac.get("/health"))
                responses = await asyncio.gather(*(
                    ac.post("/v1/query", json={"query": queries[i % len(queries)], "k": 10, "top_n": 3})
                    for i in range(50)
                ))
                assert (await health).status_code == 200
                return list(responses)

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 50
    assert all(len(r.json()["results"]) == 3 for r in responses)
    assert {r.json()["query_language"] for r in responses} >= {"uk", "ru", "en"}


def test_lifespan_opens_and_closes_its_own_index(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    settings = _settings(tiny_models, tmp_path / "store")
    app = create_app(settings, server_settings=ServerSettings())
    with TestClient(app) as c:
        assert c.post("/v1/documents", json={"documents": [{"id": "a", "text": "Hello world, this is a test."}]}).json()["added"] == 1
        assert c.get("/v1/collections").json()["collections"][0]["documents"] == 1
    assert app.state.service.index is None  # closed at shutdown: the store can be opened again
    with BabelIndex(settings) as again:
        assert again.documents() == {"a": "text"}


def _hold_lock(store: Path) -> subprocess.Popen:
    store.mkdir(parents=True, exist_ok=True)
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(store / 'babelrank.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="the store lock is POSIX-only")
def test_locked_store_fails_startup_clearly(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    holder = _hold_lock(store)
    try:
        app = create_app(_settings(tiny_models, store), server_settings=ServerSettings())
        with pytest.raises(StoreLockedError, match="chroma-host"):
            with TestClient(app):
                pass
    finally:
        holder.kill()
        holder.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real `chroma run` on a free local port (skipped when the executable is missing)."""
    exe = shutil.which("chroma", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        pytest.skip("the `chroma` executable (chromadb's CLI) is not installed")
    port = _free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "chroma-data"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start: {(tmp_path / 'chroma.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_chroma_server_mode(tiny_models: dict[str, Path], tmp_path: Path, chroma_server: tuple[str, int]) -> None:
    host, port = chroma_server
    settings = _settings(tiny_models, tmp_path / "unused", chroma_host=host, chroma_port=port, collection="served")
    with TestClient(create_app(settings, server_settings=ServerSettings())) as c:
        info = c.get("/v1/collections").json()["collections"][0]
        assert info["store"] == f"http://{host}:{port}" and info["chunks"] == 0
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(DATA.rglob("*.txt"))]
        report = c.post("/v1/documents", files=files).json()
        assert report["added"] == 3 and report["skipped"] == []  # en/library, ru/station, uk/kitchen
        body = c.post("/v1/query", json={"query": "Чайник кипить на кухні", "top_n": 3}).json()
        assert body["query_language"] == "uk" and len(body["results"]) == 3
        assert all(r["rerank_score"] is not None for r in body["results"])
    # a second process-like client sees the same data through the server (no embedded-store lock)
    with BabelIndex(settings) as other:
        assert sorted(other.documents()) == ["kitchen.txt", "library.txt", "station.txt"]
    assert not (tmp_path / "unused").exists()
