"""The HTTP service at its edges: errors on a kept-alive connection (real uvicorn), cross-site
requests without a token, queries beside a long ingest, and server paths in answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from babelrank import BabelIndex  # noqa: E402
from babelrank.apps.server import create_app  # noqa: E402
from babelrank.config import ServerSettings  # noqa: E402
from babelrank.errors import ConfigError  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
TEXTS = ["The river flows past the old mill and the market square.",
         "Річка тече повз старий млин і ринкову площу.",
         "Река течёт мимо старой мельницы и рыночной площади."]


@pytest.fixture
def index(make_index: Callable[..., BabelIndex]) -> BabelIndex:
    index = make_index()
    index.ingest_texts(TEXTS, ids=["en", "uk", "ru"])
    return index


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` under a real uvicorn on 127.0.0.1 (a free port), in a background thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _client_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried `response`."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def _error_type(response: httpx.Response) -> str:
    return str(response.json()["error"]["type"])


# ---- item: an error never poisons the connection ----------------------------------------------
def test_errors_keep_the_connection_usable(index: BabelIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(index=index, server_settings=ServerSettings(max_body_bytes=2000))
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        first = client.get("/health")
        assert first.status_code == 200
        port = _client_port(first)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("simulated failure deep in the core")

        monkeypatch.setattr(index, "search", broken)
        failed = client.post("/v1/query", json={"query": "river"})
        assert failed.status_code == 500 and _error_type(failed) == "internal_error"
        assert "RuntimeError" in failed.json()["error"]["message"]
        assert "simulated" not in failed.json()["error"]["message"]  # details stay in the server log
        monkeypatch.undo()

        ok = client.post("/v1/query", json={"query": "river", "top_n": 2})
        assert ok.status_code == 200 and len(ok.json()["results"]) == 2
        assert _client_port(ok) == port  # the same kept-alive connection

        errors = [
            client.post("/v1/query", json={"query": "x" * 3000}),  # 413 by Content-Length
            client.post("/v1/query", json={"query": "river", "where": {"$in": "ru"}}),
            client.get("/v1/nothing"),
            client.delete("/v1/documents/absent"),
        ]
        assert [r.status_code for r in errors] == [413, 422, 404, 404]
        again = client.get("/v1/collections")
        assert again.status_code == 200 and _client_port(again) == port


# ---- item: safe without a token ----------------------------------------------------------------
@pytest.fixture
def open_client(index: BabelIndex) -> Iterator[TestClient]:
    """No token, default settings; TestClient talks to http://testserver."""
    with TestClient(create_app(index=index, server_settings=ServerSettings())) as c:
        yield c


def test_writes_need_json_or_documented_multipart(open_client: TestClient, index: BabelIndex) -> None:
    body = b'{"documents": [{"id": "x", "text": "Injected by a cross-site form."}]}'
    for headers in ({}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}):
        response = open_client.post("/v1/documents", content=body, headers=headers)
        assert response.status_code == 415 and _error_type(response) == "unsupported_media_type", headers
        assert "application/json" in response.json()["error"]["message"]
    response = open_client.post("/v1/query", content=b'{"query": "river"}')
    assert response.status_code == 415
    response = open_client.post("/v1/query", files=[("query", ("q.txt", b"river", "text/plain"))])
    assert response.status_code == 415  # multipart only where documented (POST /v1/documents)
    assert "x" not in index.documents()
    assert open_client.post("/v1/query", json={"query": "river"}).status_code == 200
    assert open_client.post("/v1/query", content=b'{"query": "river"}',
                            headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_foreign_origins_are_refused(open_client: TestClient, index: BabelIndex) -> None:
    files = [("files", ("evil.txt", b"Injected by a cross-site form upload.", "text/plain"))]
    response = open_client.post("/v1/documents", files=files, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and _error_type(response) == "forbidden"
    assert "https://evil.example" in response.json()["error"]["message"]
    assert "BABELRANK_ALLOWED_ORIGINS" in response.json()["error"]["message"]
    for origin in ("null", "http://testserver:8080", "http://testserver.evil.example"):
        assert open_client.post("/v1/query", json={"query": "river"}, headers={"Origin": origin}).status_code == 403
    assert "evil.txt" not in index.documents()
    for origin in ("http://testserver", "https://testserver"):  # the server's own pages (e.g. /docs), maybe via TLS
        assert open_client.post("/v1/query", json={"query": "river"}, headers={"Origin": origin}).status_code == 200


def test_allowed_origins_setting(index: BabelIndex) -> None:
    server = ServerSettings(allowed_origins=("https://app.example",), api_token="t")
    with TestClient(create_app(index=index, server_settings=server)) as c:
        auth = {"Authorization": "Bearer t"}
        assert c.post("/v1/query", json={"query": "river"}, headers={**auth, "Origin": "https://app.example"}).status_code == 200
        response = c.post("/v1/query", json={"query": "river"}, headers={**auth, "Origin": "https://evil.example"})
        assert response.status_code == 403  # with a token too


def test_host_header_is_checked_without_a_token(index: BabelIndex) -> None:
    with TestClient(create_app(index=index, server_settings=ServerSettings()), base_url="http://127.0.0.1:8000") as c:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST."):
            assert c.get("/v1/collections", headers={"Host": host}).status_code == 200, host
        response = c.post("/v1/query", json={"query": "river"}, headers={"Host": "rebind.evil.example:8000"})
        assert response.status_code == 403 and _error_type(response) == "forbidden"
        message = response.json()["error"]["message"]
        assert "rebind.evil.example" in message and "BABELRANK_ALLOWED_HOSTS" in message
        assert c.get("/health", headers={"Host": "rebind.evil.example"}).status_code == 200  # liveness only
    server = ServerSettings(allowed_hosts=("search.internal",))
    with TestClient(create_app(index=index, server_settings=server), base_url="http://127.0.0.1") as c:
        assert c.get("/v1/collections", headers={"Host": "search.internal:8000"}).status_code == 200
        assert c.get("/v1/collections", headers={"Host": "other.internal"}).status_code == 403
    with TestClient(create_app(index=index, server_settings=ServerSettings(api_token="t")), base_url="http://127.0.0.1") as c:
        # with a token, the token protects it: any name the deployment uses works
        response = c.get("/v1/collections", headers={"Host": "search.example.com", "Authorization": "Bearer t"})
        assert response.status_code == 200


def test_host_check_on_a_real_server(index: BabelIndex) -> None:
    with serving(create_app(index=index, server_settings=ServerSettings())) as url:
        assert httpx.get(url + "/v1/collections").status_code == 200
        assert httpx.get(url + "/v1/collections", headers={"Host": "rebind.evil.example"}).status_code == 403


@pytest.mark.parametrize("token", ["   ", "\t\n"])
def test_a_blank_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigError, match="blank"):
        ServerSettings(api_token=token)
    with pytest.raises(ConfigError, match="BABELRANK_API_TOKEN"):
        ServerSettings.from_env({"BABELRANK_API_TOKEN": token})
    assert ServerSettings.from_env({"BABELRANK_API_TOKEN": ""}).api_token is None  # unset


# ---- item: queries do not wait behind an ingest ------------------------------------------------
def test_a_query_does_not_wait_for_a_whole_ingest(index: BabelIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_ingest, real_search = index.ingest_documents, index.search

    def slow_ingest(docs: Any, **kwargs: Any) -> Any:
        events.append("ingest started")
        time.sleep(0.3)  # a slow model
        report = real_ingest(docs, **kwargs)
        events.append("ingest")
        return report

    def search(query: str, **kwargs: Any) -> Any:
        events.append("query")
        return real_search(query, **kwargs)

    monkeypatch.setattr(index, "ingest_documents", slow_ingest)
    monkeypatch.setattr(index, "search", search)
    app = create_app(index=index, server_settings=ServerSettings(ingest_slice_chars=200))
    docs = [{"id": f"d{i}", "text": f"Document {i} is about rivers, mills and bridges. " * 3} for i in range(6)]

    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as ac:
                ingest = asyncio.create_task(ac.post("/v1/documents", json={"documents": docs}))
                while "ingest started" not in events:
                    await asyncio.sleep(0.01)
                query = await ac.post("/v1/query", json={"query": "river", "rerank": False})
                return query, await ingest

    query, ingest = asyncio.run(main())
    assert query.status_code == 200 and ingest.status_code == 200
    done = [e for e in events if e in ("query", "ingest")]
    assert done.index("query") < len(done) - 1, events  # answered before the ingest finished
    report = ingest.json()
    assert report["documents"] == report["added"] == 6 and report["chunks_written"] >= 6
    assert {f"d{i}" for i in range(6)} <= set(index.documents())


def test_a_query_does_not_wait_for_one_long_document(make_index: Callable[..., BabelIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    """One document cannot be sliced: the query lane, and an encoder lock the ingest takes one
    embedding slice (four batches) at a time, answer the query while the ingest still embeds."""
    index = make_index(embed_batch_size=2)
    slices: list[int] = []
    real = index.encoder._encode_locked

    def slow(texts: list[str], prompt: str, batch_size: int, progress: bool) -> Any:
        if prompt == index.encoder.document_prompt:
            slices.append(len(texts))
            time.sleep(0.05)  # a slow model
        return real(texts, prompt, batch_size, progress)

    monkeypatch.setattr(index.encoder, "_encode_locked", slow)
    # counted here: the ingest's slices (the relevance fit after it slices the same way, see test_relevance_wiring.py)
    monkeypatch.setattr(index.relevance, "refresh", lambda: None)
    text = " ".join(f"Sentence {i} tells of rivers, mills and the bridge {i}." for i in range(400))
    app = create_app(index=index, server_settings=ServerSettings())

    async def main() -> tuple[httpx.Response, httpx.Response, int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as ac:
                ingest = asyncio.create_task(ac.post("/v1/documents", json={"documents": [{"id": "long", "text": text}]}))
                while not slices:
                    await asyncio.sleep(0.01)
                query = await ac.post("/v1/query", json={"query": "river", "rerank": False})
                slices_then = len(slices)
                return query, await ingest, slices_then

    query, ingest, slices_then = asyncio.run(main())
    assert query.status_code == 200 and ingest.status_code == 200
    assert len(slices) >= 5 and slices_then < len(slices), (slices_then, len(slices))  # answered mid-ingest
    assert max(slices) == 4 * 2  # four batches of embed_batch_size a slice
    assert ingest.json()["chunks_written"] == sum(slices)


def test_queries_and_an_ingest_on_threads_share_the_tokenizer(index: BabelIndex) -> None:
    """The chunker and the encoder share one tokenizer and one model, used here from three
    threads at once (the server's query and write lanes do the same)."""
    text = " ".join(f"Sentence {i} tells of rivers, mills and the bridge {i}." for i in range(300))
    index.ingest_texts(["The mill by the river."], ids=["seed"])
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                index.search("river and mill " * 20, rerank=False)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for t in askers:
        t.start()
    try:
        report = index.ingest_texts([text] * 3, ids=["a", "b", "c"], progress=False)
    finally:
        stop.set()
        for t in askers:
            t.join()
    assert not errors, errors[:1]
    assert report.documents == 3 and report.chunks_written > 3


def test_ingest_slices_keep_duplicate_ids_together(index: BabelIndex) -> None:
    docs = [{"id": "same", "text": "First version of the document about the river."},
            {"id": "other", "text": "Another document about the old mill and the bridge."},
            {"id": "same", "text": "Second version, which must be skipped as a duplicate."}]
    with TestClient(create_app(index=index, server_settings=ServerSettings(ingest_slice_chars=10))) as c:
        report = c.post("/v1/documents", json={"documents": docs}).json()
    assert report["documents"] == 2 and report["added"] == 2
    assert [s["reason"] for s in report["skipped"]] == ["duplicate document id same"]
    stored = index.store.collection.get(where={"doc_id": "same"}, include=["documents"])["documents"]
    assert stored == ["First version of the document about the river."]


# ---- item: server paths in answers -----------------------------------------------------------
@pytest.fixture
def file_index(make_index: Callable[..., BabelIndex], tmp_path: Path) -> BabelIndex:
    """examples/data plus 24 more files (enough chunks for dedup), ingested from server folders."""
    more = tmp_path / "more"
    more.mkdir()
    for i in range(12):
        (more / f"uk{i}.txt").write_text(f"Нотатка {i}: у Львові є річка, міст і ринок.", encoding="utf-8")
        (more / f"en{i}.txt").write_text(f"Note {i}: in Lviv there is a river, a bridge and a market.", encoding="utf-8")
    index = make_index()
    index.ingest([DATA, more])
    return index


def _answers(index: BabelIndex, server: ServerSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {server.api_token}"} if server.api_token else {}
    with TestClient(create_app(index=index, server_settings=server), headers=headers) as c:
        info = c.get("/v1/collections").json()["collections"][0]
        body = c.post("/v1/query", json={"query": "river bridge", "top_n": 5, "rerank": False, "dedup": "on",
                                         "dedup_threshold": -1}).json()
    return info, body["results"]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_server_paths_are_hidden_when_a_token_is_set(file_index: BabelIndex, tmp_path: Path) -> None:
    folders = (str(tmp_path), str(DATA.resolve()))
    info, results = _answers(file_index, ServerSettings())  # no token: a local server, paths shown
    assert info["store"] == str(file_index.store.location) and Path(info["store"]).is_absolute()
    assert Path(results[0]["source"]).is_absolute() and results[0]["alternates"]

    info, results = _answers(file_index, ServerSettings(api_token="t"))
    assert [s for s in _strings([info, results]) if any(f in s for f in folders)] == []
    assert info["store"] == "store" and info["model"] == "tiny-bi"  # folder names only
    top = results[0]
    assert top["alternates"] and "/" not in top["source"] and top["doc_id"].startswith(top["source"])
    assert top["id"].startswith(top["doc_id"] + "::")

    info, results = _answers(file_index, ServerSettings(api_token="t", expose_paths=True))
    assert info["store"] == str(file_index.store.location) and Path(results[0]["source"]).is_absolute()
    info, _ = _answers(file_index, ServerSettings(expose_paths=False))
    assert info["store"] == "store"
