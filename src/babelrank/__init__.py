"""babelrank: multilingual retrieve-and-rerank for LLM applications."""

from babelrank.config import Settings
from babelrank.errors import (
    BabelrankError,
    ConfigError,
    ModelMismatchError,
    ModelNotFoundError,
    SourceError,
    StoreLockedError,
)
from babelrank.index import BabelIndex
from babelrank.ingest import IngestReport
from babelrank.rerank import CrossEncoderReranker
from babelrank.retriever import BabelRetriever, SearchResult

__all__ = [
    "BabelIndex",
    "BabelRetriever",
    "BabelrankError",
    "ConfigError",
    "CrossEncoderReranker",
    "IngestReport",
    "ModelMismatchError",
    "ModelNotFoundError",
    "SearchResult",
    "Settings",
    "SourceError",
    "StoreLockedError",
]
__version__ = "0.1.0"
