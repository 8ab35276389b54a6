"""Token-aware splitting of documents into chunks that fit the bi-encoder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

# sentence ends (Latin, Cyrillic, CJK punctuation) or blank lines
_BOUNDARY = re.compile(r"(?<=[.!?…。！？;])\s+|\n\s*\n|\n(?=\s*[-*•#\d])")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: `text == document[char_start:char_end]`."""

    text: str
    char_start: int
    char_end: int
    n_tokens: int


class TokenChunker:
    """Pack sentences into chunks of at most `max_tokens` tokens of the model's tokenizer.

    Sentences are kept whole where they fit; a sentence longer than a chunk is cut at token
    boundaries. Consecutive chunks share up to `overlap` tokens (whole sentences, or tokens
    inside an over-long sentence). Every chunk is re-counted on its own, so none exceeds
    `max_tokens` when tokenized alone.
    """

    def __init__(self, tokenizer: Any, max_tokens: int, overlap: int = 0) -> None:
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8, got {max_tokens}")
        if overlap >= max_tokens // 2:
            raise ValueError(f"overlap ({overlap}) must be less than half of max_tokens ({max_tokens})")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans of the tokens of each text (one batched tokenizer call)."""
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        return [[(s, e) for s, e in mapping if e > s] for mapping in enc["offset_mapping"]]

    def count(self, texts: list[str]) -> list[int]:
        """Token counts without special tokens."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]]

    def split(self, text: str) -> list[Chunk]:
        """Split `text` into chunks; whitespace-only text gives no chunk."""
        return self.split_many([text])[0]

    def split_many(self, texts: Sequence[str]) -> list[list[Chunk]]:
        """`split` of each text, with one batched tokenizer call for all of them (and one to re-count)."""
        texts = list(texts)
        if not texts:
            return []
        spans = [
            self._pack(self._sentences(text, offsets), offsets) if offsets else []
            for text, offsets in zip(texts, self._offsets(texts))
        ]
        flat = [(d, s, e) for d, doc_spans in enumerate(spans) for s, e in (_strip(texts[d], a, b) for a, b in doc_spans) if e > s]
        counts = self.count([texts[d][s:e] for d, s, e in flat])
        out: list[list[Chunk]] = [[] for _ in texts]
        for (d, s, e), n in zip(flat, counts):
            out[d].extend([Chunk(texts[d][s:e], s, e, n)] if n <= self.max_tokens else self._halve(texts[d], s, e))
        return out

    def _sentences(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Token-index ranges [i, j) of sentence-like segments."""
        cuts = sorted({m.start() for m in _BOUNDARY.finditer(text)})
        segments, start, ci = [], 0, 0
        for i, (s, _) in enumerate(offsets):
            while ci < len(cuts) and cuts[ci] <= s:
                if i > start:
                    segments.append((start, i))
                    start = i
                ci += 1
        segments.append((start, len(offsets)))
        return segments

    def _pack(self, segments: list[tuple[int, int]], offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Greedy packing of segments into token windows, as character spans."""
        limit, windows = self.max_tokens, []
        pieces: list[tuple[int, int]] = []
        for a, b in segments:  # cut over-long sentences into token windows with overlap
            step = limit - self.overlap
            while b - a > limit:
                pieces.append((a, a + limit))
                a += step
            pieces.append((a, b))
        cur: list[tuple[int, int]] = []
        for piece in pieces:
            if cur and piece[1] - cur[0][0] > limit:
                windows.append((cur[0][0], cur[-1][1]))
                keep: list[tuple[int, int]] = []
                for prev in reversed(cur):  # carry whole trailing pieces as overlap
                    if cur[-1][1] - prev[0] > self.overlap or piece[1] - prev[0] > limit:
                        break
                    keep.insert(0, prev)
                cur = keep
            cur.append(piece)
        if cur:
            windows.append((cur[0][0], cur[-1][1]))
        return [(offsets[i][0], offsets[j - 1][1]) for i, j in windows]

    def _halve(self, text: str, start: int, end: int) -> list[Chunk]:
        """Cut a span that grew past the limit when tokenized alone (context-dependent tokenizers) in two, recursively."""
        offsets = [(start + a, start + b) for a, b in self._offsets([text[start:end]])[0]]
        half = len(offsets) // 2
        out: list[Chunk] = []
        for s, e in ((start, offsets[half - 1][1]), (offsets[half][0], end)):
            s, e = _strip(text, s, e)
            if e <= s:
                continue
            n = self.count([text[s:e]])[0]
            out.extend([Chunk(text[s:e], s, e, n)] if n <= self.max_tokens else self._halve(text, s, e))
        return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
