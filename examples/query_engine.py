"""A llama-index query engine with babelrank as the retriever.

    python examples/query_engine.py ["your question" ...]

Ingests examples/data (uk/ru/en) into a babelrank collection, then answers questions with a
llama-index `RetrieverQueryEngine`: babelrank retrieves and reranks across languages, the LLM
writes the answer. Without a configured LLM it uses llama-index's offline `MockLLM`, so the
answer text is a placeholder; the sources printed below it are real.

LLM: set OPENAI_API_KEY and `pip install llama-index-llms-openai` to use OpenAI
(model from EXAMPLE_LLM_MODEL, default gpt-4o-mini), or edit `make_llm`.
Models and store: BABELRANK_MODEL_DIR, BABELRANK_EMBED_MODEL, BABELRANK_RERANK_MODEL,
BABELRANK_STORE_PATH (see docs/getting-started.md). Runs offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from llama_index.core import PromptTemplate
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from babelrank import BabelIndex, Settings

DATA = Path(__file__).resolve().parent / "data"
QUESTIONS = [
    "Як доїхати трамваєм через річку?",                 # uk
    "Как ухаживать за велосипедом?",                      # ru
    "What is on the shelf above the stove?",             # en: the answer is in a Ukrainian text
]

# ask for an answer in the question's language, whatever the context's languages
QA_TEMPLATE = PromptTemplate(
    "Context (it may be in several languages):\n"
    "---------------------\n{context_str}\n---------------------\n"
    "Using only the context, answer the question in the language it is asked in.\n"
    "Question: {query_str}\nAnswer: "
)


def make_llm() -> Any:
    """OpenAI when configured and installed, else the offline MockLLM."""
    if os.environ.get("OPENAI_API_KEY"):
        try:
            from llama_index.llms.openai import OpenAI  # type: ignore[import-not-found]
        except ImportError:
            print("OPENAI_API_KEY is set but llama-index-llms-openai is not installed; using MockLLM", file=sys.stderr)
        else:
            return OpenAI(model=os.environ.get("EXAMPLE_LLM_MODEL", "gpt-4o-mini"))
    return MockLLM(max_tokens=24)


def main(argv: list[str] | None = None) -> int:
    questions = (argv if argv is not None else sys.argv[1:]) or QUESTIONS
    settings = Settings.from_env(collection=os.environ.get("BABELRANK_COLLECTION", "query-engine-example"), progress=False)
    llm = make_llm()
    print(f"LLM: {type(llm).__name__}; embedding model: {settings.embed_model}; rerank model: {settings.rerank_model}")
    with BabelIndex(settings) as index:
        report = index.ingest([DATA])
        print(f"ingested {report.documents} documents ({report.added} new), chunks per language: {dict(report.languages)}")
        retriever = index.as_retriever(top_k=20, top_n=3)
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm, text_qa_template=QA_TEMPLATE)
        # the short way, with the default prompt: index.as_query_engine(llm=llm, top_n=3)
        for question in questions:
            response = engine.query(question)
            print(f"\nQ: {question}")
            print(f"A: {str(response).strip()[:300]}")
            for n in response.source_nodes:
                meta = n.node.metadata
                rerank = meta.get("rerank_score")
                print(f"   - {n.score:.3f} (retrieval {meta['retrieval_score']:.3f}"
                      f"{'' if rerank is None else f', rerank {rerank:.3f}'}) "
                      f"[{meta['language']}] {Path(meta['source']).name}: {' '.join(n.node.get_content().split())[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
