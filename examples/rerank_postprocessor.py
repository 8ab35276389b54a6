"""babelrank's cross-encoder as a postprocessor over a plain llama-index VectorStoreIndex.

    python examples/rerank_postprocessor.py ["your question" ...]

You already have a llama-index pipeline (reader -> VectorStoreIndex -> query engine) and only
want better multilingual ranking: add `babelrank.CrossEncoderReranker` to
`node_postprocessors`. It re-scores the retrieved nodes with a multilingual cross-encoder,
keeps the best `top_n`, and records `retrieval_score`, `rerank_score` and `rerank_logit` in
each node's metadata.

The embedding model here is babelrank's bi-encoder wrapped as a llama-index embedding (it
applies the model's query/passage prompts, e.g. for e5); any llama-index embedding works,
e.g. `HuggingFaceEmbedding(model_name="/path/to/local/model")`.

Models: BABELRANK_MODEL_DIR, BABELRANK_EMBED_MODEL, BABELRANK_RERANK_MODEL ("auto" = the
default multilingual cross-encoder). Runs offline with MockLLM.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter

from babelrank import CrossEncoderReranker, Settings
from babelrank.models.bi_encoder import BiEncoder, load_bi_encoder
from babelrank.models.presets import DEFAULT_RERANKER

DATA = Path(__file__).resolve().parent / "data"
QUESTIONS = ["Where can I drink hot coffee at the station?", "Що стоїть біля вікна на кухні?"]


class BabelEmbedding(BaseEmbedding):
    """A babelrank `BiEncoder` as a llama-index embedding model (query and passage prompts applied)."""

    _encoder: BiEncoder = PrivateAttr()

    def __init__(self, encoder: BiEncoder, **kwargs: Any) -> None:
        super().__init__(model_name=encoder.name, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "BabelEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode_queries([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode_documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode_documents(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


def main(argv: list[str] | None = None) -> int:
    questions = (argv if argv is not None else sys.argv[1:]) or QUESTIONS
    settings = Settings.from_env()
    rerank_model = DEFAULT_RERANKER if settings.rerank_model == "auto" else settings.rerank_model
    if rerank_model.lower() in {"none", "off", ""}:
        print("this example needs a rerank model: set BABELRANK_RERANK_MODEL", file=sys.stderr)
        return 2

    # --- an ordinary llama-index pipeline ----------------------------------------------------
    documents = SimpleDirectoryReader(str(DATA), recursive=True, required_exts=[".txt", ".md"]).load_data()
    embed_model = BabelEmbedding(load_bi_encoder(settings.embed_model, model_dir=settings.model_dir, device=settings.device))
    vector_index = VectorStoreIndex.from_documents(
        documents, embed_model=embed_model, transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0)]
    )
    print(f"VectorStoreIndex over {len(documents)} files, {len(vector_index.docstore.docs)} nodes")

    # --- plus babelrank's reranker -----------------------------------------------------------
    reranker = CrossEncoderReranker(
        rerank_model, top_n=3, model_dir=str(settings.model_dir) if settings.model_dir else None, device=settings.device
    )
    retriever = vector_index.as_retriever(similarity_top_k=10)
    for question in questions:
        candidates = retriever.retrieve(question)
        reranked = reranker.postprocess_nodes(candidates, query_str=question)
        print(f"\nQ: {question}")
        print(f"   {len(candidates)} candidates from the vector index -> top {len(reranked)} after rerank:")
        for n in reranked:
            meta = n.node.metadata
            print(f"   - rerank {meta['rerank_score']:.3f} (logit {meta['rerank_logit']:+.2f}, retrieval "
                  f"{meta['retrieval_score']:.3f}) {meta.get('file_name')}: {' '.join(n.node.get_content().split())[:80]}")

    # the same in a query engine: retrieve 10, rerank, keep 3, answer (MockLLM: offline placeholder)
    engine = vector_index.as_query_engine(llm=MockLLM(max_tokens=16), similarity_top_k=10, node_postprocessors=[reranker])
    response = engine.query(questions[0])
    print(f"\nquery engine: {len(response.source_nodes)} source nodes, best rerank score "
          f"{response.source_nodes[0].node.metadata['rerank_score']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
