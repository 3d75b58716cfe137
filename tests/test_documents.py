"""Documents as they come: scanned PDFs (OCR), tables in DOCX/PDF/.doc/.xlsx, page numbers on citations,
and the page image the API serves. Every file is built here (tests/make_docs.py), except the .doc that
LibreOffice made once from the DOCX below (tests/fixtures/table.doc; the slow test makes it again)."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import make_docs  # noqa: E402

from rag import ocr  # noqa: E402
from rag.clean import clean_pages  # noqa: E402
from rag.errors import TooLarge, UsageError  # noqa: E402
from rag.ingest import load_document  # noqa: E402
from rag.loaders import read_document  # noqa: E402
from rag.tables import Cell, plain_grid, table_lines  # noqa: E402

SEED_004 = Path(__file__).parent.parent / "seeds" / "004_1400c37e89a2c6fc.txt"
FIXTURES = Path(__file__).parent / "fixtures"
ROWS = [["Chỉ tiêu", "Năm 2022", "Năm 2023"], ["Tỷ lệ hộ nghèo", "3,56%", "2,27%"], ["Số hộ nghèo", "12.345", "8.765"]]
ROW = "Tỷ lệ hộ nghèo | Năm 2022: 3,56% | Năm 2023: 2,27%"
INTRO = "Báo cáo kết quả giảm nghèo tỉnh Thừa Thiên Huế năm 2023."
CAPTION = "Biểu 1: Kết quả thực hiện các chỉ tiêu"

needs_font = pytest.mark.skipif(not make_docs.have_font(), reason="no DejaVu fonts (fonts-dejavu-core)")


def _ocr_or_skip() -> None:
    reason = ocr.missing()
    if reason:
        print(f"OCR test skipped: {reason}", file=sys.stderr)
        pytest.skip(f"OCR is not available here: {reason} (scripts/setup.sh installs it)")


# ---------------------------------------------------------------- tables as rows with headers


def test_a_row_carries_its_headers():
    assert table_lines(plain_grid(ROWS)) == [ROW, "Số hộ nghèo | Năm 2022: 12.345 | Năm 2023: 8.765"]


def test_multi_row_merged_header_heads_both_columns():
    year = object()
    grid = [[Cell("Chỉ tiêu", "c"), Cell("Năm 2023", year), Cell("Năm 2023", year)],
            [Cell("Chỉ tiêu", "c"), Cell("Kế hoạch"), Cell("Thực hiện")],
            [Cell("Tỷ lệ hộ nghèo"), Cell("4,8%"), Cell("2,27%")]]
    assert table_lines(grid) == ["Tỷ lệ hộ nghèo | Năm 2023 Kế hoạch: 4,8% | Năm 2023 Thực hiện: 2,27%"]


def test_title_row_unit_column_and_stt():
    title = object()
    grid = [[Cell("Biểu 1: Kết quả", title)] * 5] + plain_grid(
        [["STT", "Chỉ tiêu", "ĐVT", "Năm 2022", "Năm 2023"], ["1", "Tỷ lệ hộ nghèo", "%", "3,56", "2,27"],
         ["2", "Tổng vốn đầu tư", "tỷ đồng", "21.450", "22.870"], ["", "", "", "", ""]])
    assert table_lines(grid) == ["Biểu 1: Kết quả", ROW,
                                 "Tổng vốn đầu tư | Năm 2022: 21.450 tỷ đồng | Năm 2023: 22.870 tỷ đồng"]


def test_a_value_merged_across_columns_is_given_once():
    merged = object()
    grid = plain_grid([["Chỉ tiêu", "Năm 2022", "Năm 2023"]]) + [
        [Cell("Số xã nông thôn mới"), Cell("70", merged), Cell("70", merged)]]
    assert table_lines(grid) == ["Số xã nông thôn mới | Năm 2022: 70"]


# ---------------------------------------------------------------- pages


def test_clean_pages_maps_pages_to_offsets():
    text, _, starts = clean_pages(["Trang một.", "  \n", "Trang  ba.\n\nHết."])
    assert text == "Trang một.\n\nTrang ba.\n\nHết."
    assert starts == (0, 12, 12)


def test_docx_table_and_page_break(tmp_path):
    path = tmp_path / "bieu.docx"
    path.write_bytes(make_docs.table_docx(ROWS, before=INTRO, caption=CAPTION, after="Nơi nhận: như trên.",
                                          page_break_before_table=True))
    doc = load_document(path)
    assert ROW in doc.text.split("\n")
    assert len(doc.pages) == 2
    assert doc.page_at(doc.text.index(INTRO)) == 1
    assert doc.page_at(doc.text.index(ROW)) == 2


def test_docx_without_page_breaks_has_no_pages(tmp_path):
    path = tmp_path / "bieu.docx"
    path.write_bytes(make_docs.table_docx(ROWS, before=INTRO))
    doc = load_document(path)
    assert doc.pages == () and doc.page_at(0) is None
    assert doc.text.index(INTRO) < doc.text.index(ROW)  # paragraphs and tables in document order


@needs_font
def test_pdf_table_rows_on_their_page(tmp_path):
    path = tmp_path / "bieu.pdf"
    path.write_bytes(make_docs.table_pdf(ROWS, before=INTRO, caption=CAPTION, after="Nơi nhận: như trên.",
                                         pages_before=1))
    doc = load_document(path)
    lines = doc.text.split("\n")
    assert ROW in lines and "Số hộ nghèo | Năm 2022: 12.345 | Năm 2023: 8.765" in lines
    assert doc.text.index(INTRO) < doc.text.index(ROW) < doc.text.index("Nơi nhận")
    assert doc.page_at(doc.text.index(ROW)) == 2 and doc.page_at(0) == 1
    assert doc.ocr_pages == ()


def test_xlsx_sheets_rows_with_headers(tmp_path):
    path = tmp_path / "thong-ke.xlsx"
    path.write_bytes(make_docs.table_xlsx(
        {"Biểu 1": [["Chỉ tiêu", "Năm 2023", None], [None, "Kế hoạch", "Thực hiện"],
                    ["Tỷ lệ hộ nghèo", 0.048, 0.0227], ["Số hộ nghèo", 9000, 8765]],
         "Lao động": [["Chỉ tiêu", "Năm 2023"], ["Lao động có việc làm mới", 17034]]},
        percent_cols={"Biểu 1": (1, 2)}, title="Biểu 1: Kết quả", merge_header=(1, 2, 3)))
    lines = load_document(path).text.split("\n")
    assert "Tỷ lệ hộ nghèo | Năm 2023 Kế hoạch: 4,80% | Năm 2023 Thực hiện: 2,27%" in lines
    assert "Số hộ nghèo | Năm 2023 Kế hoạch: 9.000 | Năm 2023 Thực hiện: 8.765" in lines
    assert "Lao động có việc làm mới | Năm 2023: 17.034" in lines
    assert "Biểu 1: Kết quả" in lines and "Lao động" in lines


def test_damaged_xlsx_is_a_usage_error(tmp_path):
    path = tmp_path / "hong.xlsx"
    path.write_bytes(b"PK\x03\x04 not a workbook")
    with pytest.raises(UsageError, match="hong.xlsx"):
        load_document(path)


@pytest.mark.skipif(shutil.which("antiword") is None, reason="antiword is not installed (scripts/setup.sh)")
def test_doc_through_antiword(tmp_path):
    # tests/fixtures/table.doc: make_docs.doc_from_docx of the DOCX in test_doc_made_by_libreoffice_again
    doc = load_document(FIXTURES / "table.doc")
    lines = doc.text.split("\n")
    assert INTRO in lines and CAPTION in lines
    assert "Tỷ lệ hộ nghèo | Năm 2022: 3,56% | Năm 2023: 2,27%" in lines  # the STT column dropped, % joined
    assert "Số hộ nghèo | Năm 2022: 12.345 hộ | Năm 2023: 8.765 hộ" in lines


def test_a_docx_renamed_doc_is_a_usage_error(tmp_path):
    path = tmp_path / "gia.doc"
    path.write_bytes(make_docs.table_docx(ROWS))
    with pytest.raises(UsageError, match="gia.doc"):
        load_document(path)


DOC_ROWS = [["STT", "Chỉ tiêu", "ĐVT", "Năm 2022", "Năm 2023"], ["1", "Tỷ lệ hộ nghèo", "%", "3,56", "2,27"],
            ["2", "Số hộ nghèo", "hộ", "12.345", "8.765"]]


@pytest.mark.slow
@pytest.mark.skipif(make_docs.soffice() is None or shutil.which("antiword") is None,
                    reason="needs LibreOffice and antiword")
def test_doc_made_by_libreoffice_again(tmp_path):
    data = make_docs.doc_from_docx(make_docs.table_docx(DOC_ROWS, before=INTRO, caption=CAPTION,
                                                        after="Nơi nhận: như trên."), tmp_path)
    assert data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a Word 97–2003 file
    path = tmp_path / "bieu.doc"
    path.write_bytes(data)
    assert load_document(path).text == load_document(FIXTURES / "table.doc").text


# ---------------------------------------------------------------- OCR


def _seed_head() -> str:
    """The first three paragraphs of seed 004 (the poverty rate is in the third): one short page."""
    return "\n".join(SEED_004.read_text("utf-8").split("\n")[:3])


@needs_font
def test_scanned_page_is_read_by_ocr_and_answers_with_its_page(tmp_path):
    _ocr_or_skip()
    from rag.api import RAG

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(make_docs.scanned_pdf(_seed_head(), max_pages=1))
    doc = load_document(folder / "scan.pdf")
    error = make_docs.cer(_seed_head(), doc.text)
    print(f"CER of one scanned page of seed 004: {error:.2%}")
    assert doc.ocr_pages == (1,) and doc.pages == (0,)
    assert error <= 0.03
    rag, _ = RAG.build([folder], tmp_path / "index", model="none")
    answer = RAG.open(tmp_path / "index", llm=False).ask("Tỷ lệ hộ nghèo Huế 2023?").to_json()
    assert answer["answer"] == "2,27%"
    citation = answer["citations"][0]
    assert list(citation)[-1] == "page" and citation["page"] == 1


def test_without_tesseract_a_scan_is_refused_plainly(tmp_path, monkeypatch):
    monkeypatch.setattr(ocr, "missing", lambda: "Tesseract is not installed (apt-get install tesseract-ocr)")
    path = tmp_path / "scan.pdf"
    from PIL import Image

    path.write_bytes(make_docs.image_pdf([Image.new("L", (200, 280), 255)]))
    with pytest.raises(UsageError, match="OCR is not available: Tesseract is not installed"):
        read_document(path)


def test_ocr_page_and_time_limits(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "scan.pdf"
    path.write_bytes(make_docs.image_pdf([Image.new("L", (200, 280), 255)] * 3))
    monkeypatch.setattr(ocr, "missing", lambda: None)
    monkeypatch.setattr(ocr, "MAX_OCR_PAGES", 2)
    with pytest.raises(TooLarge, match=r"3 pages without text to read by OCR \(at most 2\)"):
        read_document(path)
    monkeypatch.setattr(ocr, "MAX_OCR_PAGES", 10)
    monkeypatch.setattr(ocr, "MAX_OCR_SECONDS", 0)
    with pytest.raises(TooLarge, match="takes more than 0 seconds"):
        read_document(path)


@pytest.mark.slow
@needs_font
def test_scanned_seed_004_whole(tmp_path):
    """Seed 004 printed on A4 and scanned at 300 dpi (3 pages, no text layer): CER ≤ 3%, the seed question
    answered from the scan, cited to page 1."""
    _ocr_or_skip()
    from rag.api import RAG

    text = SEED_004.read_text("utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "004_scan.pdf").write_bytes(make_docs.scanned_pdf(text))
    rag, _ = RAG.build([folder], tmp_path / "index", model="none")
    doc = rag.documents["004_scan"]
    error = make_docs.cer(text, doc.text)
    print(f"CER of seed 004 scanned at 300 dpi ({len(doc.pages)} pages): {error:.2%}")
    assert len(doc.pages) >= 2 and doc.ocr_pages == tuple(range(1, len(doc.pages) + 1))
    assert error <= 0.03
    answer = rag.ask("Tỷ lệ hộ nghèo Huế 2023?")
    assert answer.answer == "2,27%" and answer.citations[0].page == 1


# ---------------------------------------------------------------- the JSON contract, the API's page image


@needs_font
def test_citation_page_and_page_image(tmp_path):
    from fastapi.testclient import TestClient
    from PIL import Image

    from rag.api import RAG
    from rag.server import create_app

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bieu.pdf").write_bytes(make_docs.table_pdf(ROWS, before=INTRO, caption=CAPTION, pages_before=1))
    (folder / "note.txt").write_text("Tỷ lệ che phủ rừng của tỉnh Quảng Trị năm 2023 đạt 50,1%.", "utf-8")
    rag, _ = RAG.build([folder], tmp_path / "index", model="none")
    with TestClient(create_app(rag=rag, token="s3cret", ui=False)) as client:
        auth = {"Authorization": "Bearer s3cret"}
        r = client.post("/api/ask", json={"question": "Tỷ lệ hộ nghèo năm 2023 là bao nhiêu?"}, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answer"] == "2,27%"
        citation = body["citations"][0]
        assert list(citation) == ["n", "doc_id", "source", "chunk_id", "start", "end", "text", "score", "page"]
        assert citation["page"] == 2 and citation["text"] == ROW
        url = f"/api/documents/bieu/pages/2?start={citation['start']}&end={citation['end']}"
        assert client.get(url).status_code == 401
        r = client.get(url, headers=auth)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        marked = Image.open(io.BytesIO(r.content)).convert("RGB")
        plain = Image.open(io.BytesIO(client.get("/api/documents/bieu/pages/2", headers=auth).content)).convert("RGB")
        yellow = lambda im: sum(1 for p in im.getdata() if p[0] > 200 and p[1] > 170 and p[2] < 150)  # noqa: E731
        assert yellow(marked) > 500 and yellow(plain) == 0
        assert client.get("/api/documents/bieu/pages/3", headers=auth).status_code == 404
        assert client.get("/api/documents/note/pages/1", headers=auth).status_code == 404
        (folder / "bieu.pdf").write_bytes(make_docs.table_pdf(ROWS, before="Đã sửa."))
        r = client.get("/api/documents/bieu/pages/1", headers=auth)
        assert r.status_code == 409 and "changed" in r.json()["error"]
    answer = RAG.open(tmp_path / "index", llm=False).ask("Tỷ lệ che phủ rừng Quảng Trị năm 2023?")
    assert answer.answer == "50,1%" and answer.citations[0].doc_id == "note"
    assert answer.to_json()["citations"][0]["page"] is None  # a text file has no pages


def test_reindexing_the_same_files_changes_nothing_but_a_new_reading_does(tmp_path, monkeypatch):
    from rag import indexer
    from rag.store import IndexConfig

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bieu.docx").write_bytes(make_docs.table_docx(ROWS, before=INTRO, page_break_before_table=True))
    config = IndexConfig(model=None)
    indexer.build([folder], tmp_path / "index", config, None)
    again = indexer.build([folder], tmp_path / "index", config, None)
    assert again.unchanged == ("bieu",) and not again.updated
    real = indexer.load_document  # an index written by an older reader: the same bytes, another text

    def older_reader(path, *args, **kwargs):
        from dataclasses import replace

        doc = real(path, *args, **kwargs)
        return replace(doc, text=doc.text.replace(" | ", " "), pages=())

    monkeypatch.setattr(indexer, "load_document", older_reader)
    indexer.build([folder], tmp_path / "index", config, None)
    monkeypatch.setattr(indexer, "load_document", real)
    fresh = indexer.build([folder], tmp_path / "index", config, None)
    assert fresh.updated == ("bieu",)


def test_ocr_time_does_not_count_against_the_read_limit(tmp_path, monkeypatch):
    import time

    from PIL import Image

    from rag import loaders

    path = tmp_path / "scan.pdf"
    path.write_bytes(make_docs.image_pdf([Image.new("L", (200, 280), 255)]))

    def slow_ocr(pdf, indexes, name, progress=None):
        time.sleep(2.5)  # longer than the read limit below: OCR has its own
        return {i: "Tỷ lệ hộ nghèo 2,27%." for i in indexes}

    import pypdfium2  # noqa: F401  (imported before the clock starts)

    monkeypatch.setattr(loaders, "MAX_READ_SECONDS", 2)
    monkeypatch.setattr(ocr, "missing", lambda: None)
    monkeypatch.setattr(ocr, "ocr_pages", slow_ocr)
    out = read_document(path)
    assert out.pages == ("Tỷ lệ hộ nghèo 2,27%.",) and out.ocr_pages == (1,)


def test_docx_pages_follow_words_rendered_page_breaks(tmp_path):
    """A file Word laid out records where each page began (w:lastRenderedPageBreak); those are the pages."""
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document()
    document.add_paragraph("Trang một.")
    second = document.add_paragraph()
    second.add_run().add_break()  # a line break: no new page
    run = second.add_run("Trang hai bắt đầu giữa đoạn")
    run._r.insert(0, OxmlElement("w:lastRenderedPageBreak"))
    document.add_paragraph("Vẫn trang hai.")
    buf = io.BytesIO()
    document.save(buf)
    path = tmp_path / "word.docx"
    path.write_bytes(buf.getvalue())
    doc = load_document(path)
    assert len(doc.pages) == 2
    assert doc.page_at(doc.text.index("Trang một")) == 1
    assert doc.page_at(doc.text.index("Trang hai")) == 2 and doc.page_at(doc.text.index("Vẫn trang hai")) == 2
