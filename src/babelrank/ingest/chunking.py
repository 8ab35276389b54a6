"""Token-aware splitting of documents into chunks that fit the bi-encoder."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, ContextManager, Sequence

# sentence ends (Latin, Cyrillic, CJK punctuation) or blank lines
_BOUNDARY = re.compile(r"(?<=[.!?…。！？;])\s+|\n\s*\n|\n(?=\s*[-*•#\d])")

PIECE_CHARS = 1_000_000
"""A text longer than this is tokenized in pieces of at most this many characters. A
tokenizer call with offsets costs about 100 bytes of memory per character (113 MB for 1.1
million characters with e5's tokenizer), so a 100 MB file in one call took 12 GB."""


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

    A text longer than `piece_chars` is tokenized piece by piece, so the tokenizer's memory
    does not grow with the text: each piece ends at a sentence boundary in its second half
    (else it is cut at `piece_chars`), its finished chunks are kept, and the next piece
    starts where its unfinished last chunk started. Where tokens do not depend on the text
    before a sentence start (WordPiece; e5's SentencePiece, checked on XQuAD in six
    languages) this gives the same chunks as one piece would.

    `lock`, when given, is held around every tokenizer call: pass the encoder's
    (`BiEncoder.lock`) when both share one tokenizer and may run on different threads (a
    Hugging Face fast tokenizer whose truncation settings change while another thread uses it
    can fail with "Already borrowed").
    """

    def __init__(
        self, tokenizer: Any, max_tokens: int, overlap: int = 0, piece_chars: int = PIECE_CHARS,
        lock: ContextManager[Any] | None = None,
    ) -> None:
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8, got {max_tokens}")
        if overlap >= max_tokens // 2:
            raise ValueError(f"overlap ({overlap}) must be less than half of max_tokens ({max_tokens})")
        if piece_chars < 2:
            raise ValueError(f"piece_chars must be >= 2, got {piece_chars}")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.piece_chars = piece_chars
        self._lock = lock if lock is not None else contextlib.nullcontext()

    def _tokenize(self, texts: list[str], offsets: bool) -> Any:
        with self._lock:
            return self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets, truncation=False, verbose=False)

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans of the tokens of each text (one batched tokenizer call)."""
        enc = self._tokenize(texts, offsets=True)
        return [[(s, e) for s, e in mapping if e > s] for mapping in enc["offset_mapping"]]

    def count(self, texts: list[str]) -> list[int]:
        """Token counts without special tokens."""
        if not texts:
            return []
        return [len(ids) for ids in self._tokenize(texts, offsets=False)["input_ids"]]

    def split(self, text: str) -> list[Chunk]:
        """Split `text` into chunks; whitespace-only text gives no chunk."""
        return self.split_many([text])[0]

    def split_many(self, texts: Sequence[str]) -> list[list[Chunk]]:
        """`split` of each text: one batched tokenizer call for all texts up to `piece_chars`
        characters (and one to re-count), calls of a piece each for longer ones."""
        texts = list(texts)
        out = [self._split_long(text) if len(text) > self.piece_chars else [] for text in texts]
        short = [d for d, text in enumerate(texts) if len(text) <= self.piece_chars]
        for d, chunks in zip(short, self._split_short([texts[d] for d in short])):
            out[d] = chunks
        return out

    def _split_short(self, texts: list[str]) -> list[list[Chunk]]:
        owners: list[int] = []
        pieces: list[tuple[str, int, int]] = []
        for d, (text, offsets) in enumerate(zip(texts, self._offsets(texts) if texts else [])):
            for start, end in self._windows(text, offsets):
                owners.append(d)
                pieces.append((text, start, end))
        out: list[list[Chunk]] = [[] for _ in texts]
        for d, chunks in zip(owners, self._fit(pieces)):
            out[d].extend(chunks)
        return out

    def _split_long(self, text: str) -> list[Chunk]:
        """Chunks of a text longer than `piece_chars`, tokenized a piece at a time."""
        chunks: list[Chunk] = []
        start = 0
        while start < len(text):
            end = _piece_end(text, start, self.piece_chars)
            piece = text[start:end]
            windows = self._windows(piece, self._offsets([piece])[0])
            restart = end - start
            if end < len(text) and len(windows) > 1:  # the last window may go on in the next piece
                restart = windows.pop()[0]
            chunks.extend(c for part in self._fit([(text, start + s, start + e) for s, e in windows]) for c in part)
            start += restart
        return chunks

    def _windows(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Character spans of the chunks of a text, before `_fit`."""
        return self._pack(self._sentences(text, offsets), offsets) if offsets else []

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


def _piece_end(text: str, start: int, size: int) -> int:
    """End of the piece of `text` from `start`: the last sentence boundary in the second half
    of `size` characters, else `start + size` (or the end of the text)."""
    if start + size >= len(text):
        return len(text)
    last = None
    for last in _BOUNDARY.finditer(text, start + size // 2, start + size):
        pass
    return last.start() if last else start + size


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
