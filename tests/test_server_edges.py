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
