"""babelrank: multilingual retrieve-and-rerank for LLM applications."""

from babelrank.config import VERSION, Settings
from babelrank.errors import (
    BabelrankError,
    ConfigError,
    ModelMismatchError,
    ModelNotFoundError,
    SourceError,
    StoreLockedError,
)
from babelrank.index import BabelIndex
from babelrank.ingest.pipeline import IngestReport
from babelrank.query.rerank import CrossEncoderReranker
from babelrank.query.retriever import BabelRetriever, SearchResult

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
__version__ = VERSION
