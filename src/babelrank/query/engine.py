"""The llama-index query engine: answer with the LLM only when the collection holds an answer.

A `RetrieverQueryEngine` hands whatever the retriever found to the LLM, which then writes a
confident answer from chunks that do not contain one. `BabelQueryEngine` asks the retriever
first: when no result is left (none reached `min_relevance`, see `babelrank.query.relevance`,
or the collection holds nothing that matches the filters) it returns `no_answer_message`
without calling the LLM, with ``metadata["answerable"] = False``.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle


class BabelQueryEngine(RetrieverQueryEngine):
    """A `RetrieverQueryEngine` that says "no answer here" instead of asking the LLM.

    Build it with `from_args(retriever, llm=..., no_answer_message=...)` (llama-index's
    keywords otherwise) or through `BabelIndex.as_query_engine`.
    """

    no_answer_message: str = ""

    @classmethod
    def from_args(cls, retriever: Any, *args: Any, no_answer_message: str = "", **kwargs: Any) -> "BabelQueryEngine":  # type: ignore[override]
        engine = super().from_args(retriever, *args, **kwargs)
        engine.no_answer_message = no_answer_message
        return engine

    def _no_answer(self) -> Response:
        return Response(response=self.no_answer_message, source_nodes=[], metadata={"answerable": False})

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        with self.callback_manager.event(CBEventType.QUERY, payload={EventPayload.QUERY_STR: query_bundle.query_str}) as event:
            nodes = self.retrieve(query_bundle)
            response = self.synthesize(query_bundle, nodes) if nodes else self._no_answer()
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        with self.callback_manager.event(CBEventType.QUERY, payload={EventPayload.QUERY_STR: query_bundle.query_str}) as event:
            nodes = await self.aretrieve(query_bundle)
            response = await self.asynthesize(query_bundle, nodes) if nodes else self._no_answer()
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response
