"""`babelrank tune`: fine-tune the embedding model on the user's pairs, parallel text or pairs
mined from the collection, with a held-out guard (issue #18).

Modules: `examples` (the one example type), `data` and `mining` (the sources), `methods`
(contrastive, distill, layers), `trainer` (sentence-transformers' trainer, checkpoints, time
budget), `guard` (held-out before/after), `card` (the model card), `api` (`tune`).

The names below load on first use, so reading examples does not import the training stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "tune": "babelrank.tune.api", "TuneResult": "babelrank.tune.api",
    "TrainOptions": "babelrank.tune.trainer", "METHODS": "babelrank.tune.methods",
    "Example": "babelrank.tune.examples", "TrainingData": "babelrank.tune.examples",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
