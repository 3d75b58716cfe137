"""What a file may expand to (issue 14 #4): a small .docx or .pdf must not become minutes of parsing and
hundreds of MB. The bounds are checked before the parsing they protect; the upload answers 413 with a
sentence, `rag index` skips the file with the same sentence, and nothing is parsed under the write lock."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from rag import loaders
from rag.errors import TooLarge, UsageError
from rag.loaders import read_text

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
BEE_DOC = "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ.\n"


def docx_with(body_xml: bytes = b"", extra: dict[str, bytes] | None = None) -> bytes:
    """A real .docx (python-docx's template) with `body_xml` at the start of its body and extra members."""
    import docx

    template = io.BytesIO()
    docx.Document().save(template)
    source = zipfile.ZipFile(template)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                at = data.index(b"<w:body>") + len(b"<w:body>")
                data = data[:at] + body_xml + data[at:]
            z.writestr(info, data)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


def timed_refusal(name: str, data: bytes, match: str, seconds: float = 5.0) -> str:
    t0 = time.perf_counter()
    with pytest.raises(TooLarge, match=match) as caught:
        read_text(Path(name), data)
    assert time.perf_counter() - t0 < seconds
    message = str(caught.value)
    assert name in message and "\n" not in message
    return message


def test_a_docx_of_a_million_empty_paragraphs_is_refused_before_parsing():
    data = docx_with(b"<w:p/>" * 1_000_000)
    assert len(data) < 100_000  # 45 KB that python-docx took 25 s and 370 MB to read
    message = timed_refusal("bomb.docx", data, "paragraphs")
    assert f"{loaders.MAX_PARAGRAPHS:,}" in message


def test_a_docx_of_too_many_paragraphs_under_any_prefix_is_refused():
    body = (b'<x:p xmlns:x="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            b'<x:r><x:t>a</x:t></x:r></x:p>') * (loaders.MAX_PARAGRAPHS + 1)
    timed_refusal("prefixed.docx", docx_with(body), "paragraphs")


def test_a_docx_of_too_many_elements_is_refused():
    body = b"<w:p>" + b"<w:r/>" * (loaders.MAX_XML_ELEMENTS + 1) + b"</w:p>"
    timed_refusal("runs.docx", docx_with(body), "XML elements")


def test_a_docx_that_unzips_too_big_is_refused_before_inflating():
    zeros = bytes(loaders.MAX_UNZIPPED_BYTES + 1)
    data = docx_with(extra={"word/media/zeros.bin": zeros})
    del zeros
    assert len(data) < 1_000_000
    timed_refusal("zeros.docx", data, "once unzipped")


def test_a_zip_with_a_huge_directory_is_refused_before_it_is_read():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i in range(30_000):
            z.writestr(f"part-{i:08d}.xml", b"")
    timed_refusal("parts.docx", out.getvalue(), "parts")


def test_a_pdf_of_too_many_pages_is_refused():
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(loaders.MAX_PDF_PAGES + 1):
        writer.add_blank_page(72, 72)
    out = io.BytesIO()
    writer.write(out)
    timed_refusal("pages.pdf", out.getvalue(), "pages")


def test_reading_is_bounded_in_time(monkeypatch):
    monkeypatch.setattr(loaders, "MAX_READ_SECONDS", 0)
    timed_refusal("slow.docx", docx_with("<w:p><w:r><w:t>Huế</w:t></w:r></w:p>".encode() * 2000), "seconds")


def test_text_is_bounded_in_characters(monkeypatch):
    monkeypatch.setattr(loaders, "MAX_TEXT_CHARS", 100)
    timed_refusal("long.txt", ("Huế " * 100).encode(), "characters")
    timed_refusal("long.docx", docx_with("<w:p><w:r><w:t>Huế Huế Huế</w:t></w:r></w:p>".encode() * 50), "characters")


def test_a_normal_docx_still_reads():
    text = read_text(Path("ok.docx"), docx_with("<w:p><w:r><w:t>Tỷ lệ hộ nghèo 2,27%.</w:t></w:r></w:p>".encode()))
    assert "Tỷ lệ hộ nghèo 2,27%." in text


def test_rag_index_skips_a_bomb_with_the_reason(tmp_path):
    from rag.indexer import read_documents

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(BEE_DOC, "utf-8")
    (folder / "bomb.docx").write_bytes(docx_with(b"<w:p/>" * 1_000_000))
    t0 = time.perf_counter()
    docs, skipped = read_documents([folder])
    assert time.perf_counter() - t0 < 10
    assert [d.id for d in docs] == ["good"]
    assert [(Path(p).name, "paragraphs" in why) for p, why in skipped] == [("bomb.docx", True)]


def test_an_uploaded_bomb_gets_413_with_a_sentence(tmp_path):
    from fastapi.testclient import TestClient

    from rag.api import RAG
    from rag.server import create_app

    shutil.copytree(SEEDS, tmp_path / "seeds")
    rag, _ = RAG.build([tmp_path / "seeds"], tmp_path / "index", model="none")
    with TestClient(create_app(rag=rag, token="", ui=False)) as client:
        r = client.post("/api/documents", files={"file": ("bomb.docx", docx_with(b"<w:p/>" * 1_000_000),
                                                          "application/octet-stream")})
    assert r.status_code == 413, r.text
    assert "paragraphs" in r.json()["error"]
    assert "bomb" not in rag.documents


def test_an_upload_is_parsed_outside_the_write_lock(tmp_path, monkeypatch):
    from rag.api import RAG
    from rag.server import Library

    shutil.copytree(SEEDS, tmp_path / "seeds")
    rag, _ = RAG.build([tmp_path / "seeds"], tmp_path / "index", model="none")
    library = Library(rag)
    locked_while_parsing: list[bool] = []
    real = loaders.read_document

    def spy(path, data=None, progress=False):
        locked_while_parsing.append(library._write.locked())
        return real(path, data, progress)

    monkeypatch.setattr(loaders, "read_document", spy)
    assert library.add_upload("ong.txt", BEE_DOC.encode()).status == "added"
    assert locked_while_parsing == [False]  # parsed once, before the lock is taken
    library.remove("ong")


def test_an_expansion_refusal_is_a_usage_error():
    assert issubclass(TooLarge, UsageError)  # `rag index` skips such a file, the CLI exits 2
