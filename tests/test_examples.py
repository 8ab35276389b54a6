"""examples/*.py run offline on tiny models (each in a subprocess, as a user would run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def example_env(tiny_models: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABELRANK_") and k != "OPENAI_API_KEY"}
    env.update({
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "BABELRANK_EMBED_MODEL": str(tiny_models["bi"]),
        "BABELRANK_RERANK_MODEL": str(tiny_models["cross"]),
        "BABELRANK_STORE_PATH": str(tmp_path / "store"),
    })
    return env


def _run(script: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_chatbot_backend(example_env: dict[str, str]) -> None:
    example_env["BABELRANK_API_TOKEN"] = "example-token"  # the private server requires it, the client sends it
    out = _run("chatbot_backend.py", example_env)
    assert "started a local babelrank service at http://127.0.0.1:" in out
    assert "uploaded 9 documents (9 new" in out
    for lang in ("uk", "ru", "en"):
        assert f"query language: {lang}" in out
    assert out.count("--- prompt for the LLM ---") == 3 and "Context:\n[1] (" in out
    assert "collection 'chatbot-example': 9 documents" in out


def test_query_engine(example_env: dict[str, str]) -> None:
    out = _run("query_engine.py", example_env, "Як доїхати трамваєм через річку?", "Where is the station buffet?")
    assert "LLM: MockLLM" in out and "ingested 9 documents (9 new)" in out
    assert out.count("\nQ: ") == 2 and out.count("\nA: ") == 2
    assert out.count("   - ") == 6 and "rerank " in out


def test_rerank_postprocessor(example_env: dict[str, str]) -> None:
    out = _run("rerank_postprocessor.py", example_env)
    assert "VectorStoreIndex over 5 files" in out
    assert out.count("10 candidates from the vector index -> top 3 after rerank") == 2
    assert "query engine: 3 source nodes" in out
