import json
from pathlib import Path

import pytest

from babelrank import SourceError
from babelrank.sources import from_llama_documents, from_texts, html_to_text, read_file, read_paths

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
