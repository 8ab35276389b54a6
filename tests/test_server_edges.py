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
from babelrank.errors import ConfigError  # noqa: E402
from babelrank.server import ServerSettings, create_app  # noqa: E402

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
