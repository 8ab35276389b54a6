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
        owners: list[int] = []
        pieces: list[tuple[str, int, int]] = []
        for d, (text, offsets) in enumerate(zip(texts, self._offsets(texts) if texts else [])):
            for start, end in self._pack(self._sentences(text, offsets), offsets) if offsets else []:
                owners.append(d)
                pieces.append((text, start, end))
        out: list[list[Chunk]] = [[] for _ in texts]
        for d, chunks in zip(owners, self._fit(pieces)):
            out[d].extend(chunks)
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

    def _fit(self, pieces: list[tuple[str, int, int]]) -> list[list[Chunk]]:
        """The chunks of each (text, start, end) span: stripped, re-counted alone (one call), and
        cut in two, recursively, where it grew past the limit (context-dependent tokenizers)."""
        spans = [(text, *_strip(text, start, end)) for text, start, end in pieces]
        counts = iter(self.count([text[s:e] for text, s, e in spans if e > s]))
        out: list[list[Chunk]] = []
        for text, s, e in spans:
            if e <= s:
                out.append([])
                continue
            n = next(counts)
            if n <= self.max_tokens:
                out.append([Chunk(text[s:e], s, e, n)])
                continue
            offsets = [(s + a, s + b) for a, b in self._offsets([text[s:e]])[0]]
            half = len(offsets) // 2
            out.append([c for part in self._fit([(text, s, offsets[half - 1][1]), (text, offsets[half][0], e)]) for c in part])
        return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
