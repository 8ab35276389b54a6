from pathlib import Path

import pytest

from babelrank.ingest.chunking import TokenChunker
from babelrank.models.bi_encoder import load_bi_encoder

TEXT = (
    "Червоний автомобіль стоїть біля будинку. Сусіди кажуть, що власник поїхав. "
    "Красная машина стоит возле дома у реки! The red car is parked outside the house. "
    "A very long sentence without any full stop " + "that keeps going and going " * 20 + ".\n\n"
    "Синій будинок біля річки. The kettle boils water."
)


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]):
    return load_bi_encoder(str(tiny_models["bi"]), device="cpu").tokenizer


@pytest.mark.parametrize("max_tokens,overlap", [(16, 0), (24, 4), (40, 8)])
def test_chunks_fit_cover_and_point_into_the_text(tokenizer, max_tokens: int, overlap: int) -> None:
    chunker = TokenChunker(tokenizer, max_tokens, overlap)
    chunks = chunker.split(TEXT)
    assert len(chunks) > 2
    for c in chunks:
        assert TEXT[c.char_start : c.char_end] == c.text
        assert c.text == c.text.strip()
        assert 0 < c.n_tokens <= max_tokens
        assert len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) == c.n_tokens
    # every non-space character is in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.char_start, c.char_end))
    assert all(i in covered for i, ch in enumerate(TEXT) if not ch.isspace())
    # chunks are in order
    assert [c.char_start for c in chunks] == sorted(c.char_start for c in chunks)


def test_sentences_stay_whole_when_they_fit(tokenizer) -> None:
    chunks = TokenChunker(tokenizer, 40, 0).split("Синій будинок біля річки. The kettle boils water. Чайник кипить.")
    assert len(chunks) == 1
    first, second = "Синій будинок біля річки, поруч старий міст і парк.", "The kettle boils water in the kitchen."
    sizes = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (first, second)]
    limit = max(sizes + [8])
    assert sum(sizes) > limit
    chunks = TokenChunker(tokenizer, limit, 0).split(f"{first} {second}")
    assert [c.text for c in chunks] == [first, second]


def test_overlap_is_shared_between_neighbours_in_long_sentences(tokenizer) -> None:
    chunks = TokenChunker(tokenizer, 16, 4).split("word " * 60)
    assert all(b.char_start < a.char_end for a, b in zip(chunks, chunks[1:]))


def test_empty_text_and_bad_sizes(tokenizer) -> None:
    assert TokenChunker(tokenizer, 16).split("  \n ") == []
    with pytest.raises(ValueError):
        TokenChunker(tokenizer, 4)
    with pytest.raises(ValueError):
        TokenChunker(tokenizer, 16, 8)


def test_split_many_equals_split_of_each_text(tokenizer) -> None:
    chunker = TokenChunker(tokenizer, 24, 4)
    texts = [TEXT, "", "Синій будинок біля річки.", "  \n ", TEXT[::-1]]
    assert chunker.split_many(texts) == [chunker.split(t) for t in texts]
    assert chunker.split_many([]) == []


class _ContextTokenizer:
    """Whitespace words; a text tokenized alone (no offsets asked) costs 4 extra tokens, as a
    context-dependent tokenizer can make a chunk longer alone than inside its document."""

    def __call__(self, texts, return_offsets_mapping: bool = False, **_: object) -> dict:
        import re

        spans = [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]
        if return_offsets_mapping:
            return {"offset_mapping": spans}
        return {"input_ids": [[0] * (len(s) + 4) for s in spans]}


def test_chunks_longer_alone_are_cut_until_they_fit() -> None:
    text = " ".join(f"w{i}" for i in range(40))
    chunks = TokenChunker(_ContextTokenizer(), 10, 0).split(text)
    assert all(c.n_tokens <= 10 and c.n_tokens == len(c.text.split()) + 4 for c in chunks)
    assert " ".join(c.text for c in chunks) == text
    assert [c.text for c in chunks] == [text[c.char_start : c.char_end] for c in chunks]


def _long_text(paragraphs: int) -> str:
    sentences = [
        "Червоний автомобіль стоїть біля будинку.", "The red car is parked outside the house!",
        "Красная машина стоит возле дома у реки?", "A very long sentence " + "that keeps going " * 12 + "without a stop",
        "- a list item\n- another item", "Синій будинок біля річки.",
    ]
    return "\n\n".join(" ".join(sentences[(p + i) % len(sentences)] for i in range(p % 5 + 1)) for p in range(paragraphs))


@pytest.mark.parametrize("max_tokens,overlap", [(16, 0), (24, 4), (40, 8)])
def test_long_texts_are_tokenized_in_pieces_with_the_same_chunks(tokenizer, max_tokens: int, overlap: int) -> None:
    text = _long_text(60)
    calls: list[int] = []

    def spy(texts, **kwargs):
        calls.append(max(map(len, texts)))
        return tokenizer(texts, **kwargs)

    whole = TokenChunker(tokenizer, max_tokens, overlap).split(text)
    pieces = TokenChunker(spy, max_tokens, overlap, piece_chars=600).split(text)
    assert len(text) > 10 * 600 and max(calls) <= 600
    assert pieces == whole


def test_pieces_without_a_sentence_boundary_are_cut_anywhere(tokenizer) -> None:
    text = "word " * 400 + "tail"
    chunks = TokenChunker(tokenizer, 16, 4, piece_chars=300).split(text)
    assert all(text[c.char_start : c.char_end] == c.text and 0 < c.n_tokens <= 16 for c in chunks)
    assert [c.char_start for c in chunks] == sorted(c.char_start for c in chunks)
    covered = {i for c in chunks for i in range(c.char_start, c.char_end)}
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
