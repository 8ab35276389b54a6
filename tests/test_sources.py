import json
import os
from pathlib import Path

import pytest

from babelrank import SourceError
from babelrank.ingest.sources import (
    Skipped,
    SourceDocument,
    from_llama_documents,
    from_texts,
    html_to_text,
    read_file,
    read_paths,
    vanished,
)


def _pdf(text: str) -> bytes:
    """A minimal one-page PDF showing `text` (ASCII), with a correct xref table."""
    stream = f"BT /F1 12 Tf 20 50 Td ({text}) Tj ET".encode()
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 100]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length %d>>stream\n" % len(stream) + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj" % i + body + b"endobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF" % (len(objects) + 1, xref)
    return bytes(out)


def test_folder_reads_every_supported_kind_with_globs(tmp_path: Path) -> None:
    (tmp_path / "uk").mkdir()
    (tmp_path / "uk" / "a.txt").write_text("Червоний автомобіль.", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\n\nBody text.", encoding="utf-8")
    (tmp_path / "c.html").write_text("<html><head><style>x{}</style></head><body><p>Один</p><p>Два</p><script>no()</script></body></html>")
    (tmp_path / "d.jsonl").write_text('{"id": "x", "text": "first", "tag": ["a"]}\n\n{"text": "second"}\n')
    (tmp_path / "e.json").write_text(json.dumps([{"id": 7, "text": "seven", "n": None}]))
    (tmp_path / "f.pdf").write_bytes(_pdf("Hello PDF world"))
    (tmp_path / "g.bin").write_bytes(b"\x00\x01")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.txt").write_text("hidden")
    docs, skipped = read_paths([tmp_path])
    by_id = {d.doc_id: d for d in docs}
    root = str(tmp_path.resolve())
    assert set(by_id) == {
        f"{root}/uk/a.txt", f"{root}/b.md", f"{root}/c.html", f"{root}/d.jsonl#x", f"{root}/d.jsonl#3",
        f"{root}/e.json#7", f"{root}/f.pdf",
    }
    assert by_id[f"{root}/c.html"].text == "Один\n\nДва"
    assert by_id[f"{root}/d.jsonl#x"].metadata == {"id": "x", "tag": '["a"]', "file_name": "d.jsonl"}
    assert "n" not in by_id[f"{root}/e.json#7"].metadata
    assert "Hello PDF world" in by_id[f"{root}/f.pdf"].text
    assert skipped == []
    only_uk, _ = read_paths([tmp_path], include=["uk/*"])
    assert [d.doc_id for d in only_uk] == [f"{root}/uk/a.txt"]
    no_md, _ = read_paths([tmp_path], exclude=["*.md", "*.pdf"])
    assert f"{root}/b.md" not in {d.doc_id for d in no_md} and len(no_md) == 5


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("empty.txt", b"  \n", "empty"),
        ("binary.txt", b"abc\x00def", "binary"),
        ("cp1251.txt", "Привіт".encode("cp1251"), "not valid UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{broken\n', "line 2"),
        ("nofield.json", b'[{"body": "x"}]', "no string field 'text'"),
        ("bad.pdf", b"%PDF-1.4 garbage", "PDF"),
    ],
)
def test_bad_files_are_skipped_with_a_reason_and_the_rest_is_read(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(data)
    (tmp_path / "good.txt").write_text("Good text.")
    docs, skipped = read_paths([tmp_path])
    assert [Path(d.source).name for d in docs] == ["good.txt"]
    assert len(skipped) == 1 and reason in skipped[0].reason and skipped[0].source.endswith(name)
    with pytest.raises(SourceError, match=reason):
        read_file(tmp_path / name)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_paths([tmp_path / "nope"])


def test_texts_and_llama_documents() -> None:
    from llama_index.core import Document

    docs = from_texts(["один", "two"], metadata={"lang_hint": "x"})
    assert docs[0].doc_id.startswith("text:") and docs[0].doc_id != docs[1].doc_id
    assert docs[1].metadata == {"lang_hint": "x"}
    with pytest.raises(SourceError):
        from_texts(["ok", " "])
    with pytest.raises(SourceError):
        from_texts(["a"], ids=["1", "2"])
    llama = from_llama_documents([Document(text="hello", doc_id="d1", metadata={"file_path": "/x.txt", "k": {"a": 1}})])
    assert llama[0].doc_id == "d1" and llama[0].source == "/x.txt" and llama[0].metadata["k"] == '{"a": 1}'


def test_html_to_text_decodes_entities() -> None:
    assert html_to_text("<p>a &amp; b</p><div>c<br>d</div>") == "a & b\n\nc\n\nd"



def test_unreadable_folder_is_listed_and_the_rest_is_read(refuse, tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.txt").write_text("Locked away.")
    (tmp_path / "b.txt").write_text("Readable.")
    refuse(tmp_path / "locked", os, "scandir")
    docs, skipped = read_paths([tmp_path])
    assert [Path(d.source).name for d in docs] == ["b.txt"]
    assert [(s.source, s.reason) for s in skipped] == [(str(tmp_path / "locked"), "cannot read folder: Permission denied")]


def test_unreadable_file_is_skipped_and_the_rest_is_read(refuse, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Locked away.")
    (tmp_path / "b.txt").write_text("Readable.")
    refuse(tmp_path / "a.txt", Path, "read_bytes")
    docs, skipped = read_paths([tmp_path])
    assert [Path(d.source).name for d in docs] == ["b.txt"]
    assert [(s.source, s.reason) for s in skipped] == [(str(tmp_path / "a.txt"), "cannot read file: Permission denied")]


@pytest.mark.parametrize("name,data", [
    ("deep.json", "[" * 100_000 + "]" * 100_000),
    ("deep.jsonl", '{"text": "ok"}\n{"text": "x", "m": ' + "[" * 5_000 + "]" * 5_000 + "}\n"),
])
def test_deeply_nested_json_is_skipped(tmp_path: Path, name: str, data: str) -> None:
    (tmp_path / name).write_text(data)
    (tmp_path / "good.txt").write_text("Good text.")
    docs, skipped = read_paths([tmp_path])
    assert [Path(d.source).name for d in docs] == ["good.txt"]
    assert len(skipped) == 1 and "nested too deeply" in skipped[0].reason


def test_file_name_that_is_not_utf8_is_skipped_with_a_printable_source(tmp_path: Path) -> None:
    bad = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(bad, "wb") as f:
        f.write(b"Cafe text.")
    (tmp_path / "good.txt").write_text("Good text.")
    docs, skipped = read_paths([tmp_path])
    assert [Path(d.source).name for d in docs] == ["good.txt"]
    assert len(skipped) == 1 and "not valid UTF-8" in skipped[0].reason and "rename" in skipped[0].reason
    assert skipped[0].source == str(tmp_path) + "/caf\\xe9.txt"
    skipped[0].source.encode("utf-8")  # printable: no lone surrogates


def test_links_loops_and_special_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Text in a linked folder.")
    root = tmp_path / "root"
    root.mkdir()
    (root / "good.txt").write_text("Good text.")
    (root / "loop.txt").symlink_to("loop.txt")
    (root / "gone.txt").symlink_to(tmp_path / "missing.txt")
    (root / "linked").symlink_to(tmp_path / "docs")
    os.mkfifo(root / "pipe.txt")
    os.mkfifo(root / "pipe.bin")  # not a supported type: ignored like any other .bin file
    docs, skipped = read_paths([root])
    assert [Path(d.source).name for d in docs] == ["good.txt"]
    reasons = {Path(s.source).name: s.reason for s in skipped}
    assert set(reasons) == {"loop.txt", "gone.txt", "linked", "pipe.txt"}
    assert "loop" in reasons["loop.txt"] and "broken" in reasons["gone.txt"]
    assert "not followed" in reasons["linked"] and "not a regular file" in reasons["pipe.txt"]
    _, excluded = read_paths([root], exclude=["linked"])
    assert "linked" not in {Path(s.source).name for s in excluded}
    assert read_paths([root / "pipe.txt"]) == ([], [Skipped(str(root / "pipe.txt"), "not a regular file (a FIFO, socket or device)")])


def test_files_over_the_size_limit_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("word " * 1000)
    (tmp_path / "small.txt").write_text("Small text.")
    docs, skipped = read_paths([tmp_path], max_file_mb=0.004)
    assert [Path(d.source).name for d in docs] == ["small.txt"]
    assert len(skipped) == 1 and skipped[0].source.endswith("big.txt")
    assert "max_file_mb" in skipped[0].reason and "0.004" in skipped[0].reason
    assert len(read_paths([tmp_path], max_file_mb=None)[0]) == 2


def _doc(doc_id: str, source: str) -> SourceDocument:
    return SourceDocument(doc_id, "text", source)


def test_vanished_documents(tmp_path: Path) -> None:
    """What a prune deletes: documents of files under the roots that were not read again, and
    records that a container file read again no longer holds; never what could not be read."""
    root = str(tmp_path)
    stored = {
        f"{root}/a.txt": f"{root}/a.txt",          # read again: kept
        f"{root}/gone.txt": f"{root}/gone.txt",    # not read: gone
        f"{root}/r.jsonl#1": f"{root}/r.jsonl",    # record read again: kept
        f"{root}/r.jsonl#2": f"{root}/r.jsonl",    # record removed from a file read again: gone
        f"{root}/bad.jsonl#1": f"{root}/bad.jsonl",  # container skipped: kept
        f"{root}/locked/x.txt": f"{root}/locked/x.txt",  # inside a folder that could not be read: kept
        "llama-uuid": f"{root}/a.txt",             # another way in, naming a file that was read: kept
        "raw": "text",                             # not from the roots: kept
        "/elsewhere/b.txt": "/elsewhere/b.txt",    # not from the roots: kept
    }
    docs = [_doc(f"{root}/a.txt", f"{root}/a.txt"), _doc(f"{root}/r.jsonl#1", f"{root}/r.jsonl")]
    skipped = [Skipped(f"{root}/bad.jsonl", "invalid JSON"), Skipped(f"{root}/locked", "cannot read folder")]
    assert sorted(vanished(stored, [tmp_path], docs, skipped)) == [f"{root}/gone.txt", f"{root}/r.jsonl#2"]
    assert vanished(stored, [tmp_path / "r.jsonl"], docs, skipped) == [f"{root}/r.jsonl#2"]  # a file named directly
    assert vanished({f"{root}2/c.txt": f"{root}2/c.txt"}, [tmp_path], [], []) == []  # a sibling sharing the prefix
