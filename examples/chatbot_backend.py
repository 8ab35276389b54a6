"""A chatbot backend that gets its context from the babelrank HTTP service.

    # against a running service (`babelrank serve`):
    python examples/chatbot_backend.py --url http://127.0.0.1:8000 "Де купити свіжий хліб?"

    # or let the script start a private service on a free local port:
    python examples/chatbot_backend.py

The script uploads examples/data (multipart, POST /v1/documents), then for each question
asks POST /v1/query and builds the prompt a chatbot would send to its LLM: the best chunks
in any language, with their language and source, and an instruction to answer in the
question's language. Replace `call_llm` with your LLM client.

Configuration: BABELRANK_SERVER_URL (instead of --url), BABELRANK_API_TOKEN (bearer token,
used by both the client and a server started here), and for a server started here the usual
BABELRANK_* model variables (BABELRANK_MODEL_DIR, BABELRANK_EMBED_MODEL, BABELRANK_RERANK_MODEL,
BABELRANK_STORE_PATH). Runs offline.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

DATA = Path(__file__).resolve().parent / "data"
QUESTIONS = [
    "Де можна купити свіжий хліб і мед?",          # uk
    "Когда отправляются поезда в столицу?",        # ru
    "How long can I keep a library book?",         # en
]


class BabelrankClient:
    """A thin client of the babelrank HTTP API."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{error['type']}: {error['message']}"
            except Exception:
                message = response.text
            raise RuntimeError(f"{response.request.method} {response.request.url.path} -> {response.status_code} {message}")
        return response.json()

    def upload_folder(self, folder: Path, metadata: str | None = None) -> dict[str, Any]:
        files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
                 for p in sorted(folder.rglob("*")) if p.is_file()]
        return self._check(self.http.post("/v1/documents", files=files, data={"metadata": metadata} if metadata else None))

    def query(self, question: str, top_n: int = 3, **options: Any) -> dict[str, Any]:
        return self._check(self.http.post("/v1/query", json={"query": question, "top_n": top_n, **options}))

    def collections(self) -> dict[str, Any]:
        return self._check(self.http.get("/v1/collections"))


def build_prompt(question: str, answer: dict[str, Any]) -> str:
    """The prompt for the chatbot's LLM: numbered context chunks, then the question."""
    context = "\n".join(
        f"[{r['rank']}] ({r['language']}, {r['source']}) {' '.join(r['text'].split())}" for r in answer["results"]
    )
    return (
        "Answer the question using only the context. The context may be in other languages; "
        f"answer in the language of the question ({answer['query_language']}) and cite sources as [n].\n\n"
        f"Context:\n{context}\n\nQuestion: {question}\nAnswer:"
    )


def call_llm(prompt: str) -> str:
    """Plug your LLM here (OpenAI, Ollama, llama-index `llm.complete(prompt).text`, ...)."""
    return "(no LLM configured: this is where the model's answer would go)"


# ---- a private server, when no URL is given --------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    """Run the babelrank app with uvicorn on 127.0.0.1 in a background thread."""
    import uvicorn

    from babelrank import Settings
    from babelrank.apps.server import create_app

    settings = Settings.from_env(collection=os.environ.get("BABELRANK_COLLECTION", "chatbot-example"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not server.started:  # models load during start-up
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the local babelrank server did not start (see the log above)")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def run(url: str, token: str | None, questions: list[str]) -> None:
    client = BabelrankClient(url, token)
    try:
        report = client.upload_folder(DATA)
        print(f"uploaded {report['documents']} documents ({report['added']} new, {report['unchanged']} unchanged), "
              f"chunks per language: {report['languages'] or '-'}")
        for s in report["skipped"]:
            print(f"  skipped {s['source']}: {s['reason']}")
        for question in questions:
            answer = client.query(question, top_n=3)
            prompt = build_prompt(question, answer)
            print(f"\n=== {question}  [query language: {answer['query_language']}, "
                  f"{answer['timings']['total'] * 1000:.0f} ms]")
            for r in answer["results"]:
                print(f"  [{r['rank']}] score {r['score']:.3f} (retrieval {r['retrieval_score']:.3f}) "
                      f"{r['language']} {r['source']}")
            print("--- prompt for the LLM ---")
            print(prompt)
            print("--- answer ---")
            print(call_llm(prompt))
        info = client.collections()["collections"][0]
        print(f"\ncollection {info['collection']!r}: {info['documents']} documents, {info['chunks']} chunks")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="*", help="questions to ask (default: one each in uk, ru, en)")
    parser.add_argument("--url", default=os.environ.get("BABELRANK_SERVER_URL"),
                        help="babelrank service URL (default: start a private one)")
    parser.add_argument("--token", default=os.environ.get("BABELRANK_API_TOKEN"), help="bearer token")
    args = parser.parse_args(argv)
    questions = args.questions or QUESTIONS
    if args.url:
        run(args.url, args.token, questions)
    else:
        with local_server() as url:
            print(f"started a local babelrank service at {url}")
            run(url, args.token, questions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
