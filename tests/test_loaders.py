"""Loaders: every supported format is read, everything else is refused with one UsageError."""

from __future__ import annotations

import io
import random
import unicodedata
import zipfile
from pathlib import Path

import pytest

from rag import loaders
from rag.errors import UsageError
from rag.ingest import load_document
from rag.loaders import iter_files, read_text

VI = "Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023 là 2,27%, giảm 1,29% so với năm 2022.\nThừa ủy quyền, đồng chí Nguyễn Văn Toàn trao bằng khen.\n"
_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def to_cp1258(text: str) -> bytes:
    """Windows-1258 keeps base letters (â, ê, ơ, ư, đ…) precomposed and writes tones as combining marks."""
    out = []
    for ch in nfc(text):
        parts = unicodedata.normalize("NFD", ch)
        base = nfc("".join(c for c in parts if c not in _TONES))
        out.append(base + "".join(c for c in parts if c in _TONES))
    return "".join(out).encode("cp1258")


def make_pdf(lines: list[str], *, stream: bytes | None = None, stream_dict: str = "") -> bytes:
    """A minimal valid one-page PDF with a Helvetica text stream (ASCII text), xref offsets computed."""
    if stream is None:
        body = " ".join(f"({line}) Tj T*" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td 14 TL {body} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} {stream_dict}>>\nstream\n".encode() + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023 là 2,27%.")
    document.add_paragraph("Giải quyết việc làm cho 17.034 người.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Năm"
    table.cell(0, 1).text = "Tỷ lệ hộ nghèo"
    table.cell(1, 0).text = "2023"
    table.cell(1, 1).text = "2,27%"
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def replace_in_zip(data: bytes, member: str, content: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, content if info.filename == member else src.read(info.filename))
    return out.getvalue()


# ---------------------------------------------------------------- text files


def test_txt_utf8(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(VI.encode("utf-8"))
    assert read_text(path) == VI


def test_txt_utf8_with_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + VI.encode("utf-8"))
    text = read_text(path)
    assert text == VI
    assert not text.startswith("\ufeff")


def test_txt_decomposed_utf8_reads_and_cleans_to_nfc(tmp_path):
    path = tmp_path / "nfd.txt"
    path.write_bytes(unicodedata.normalize("NFD", VI).encode("utf-8"))
    doc = load_document(path)
    assert "Tỷ lệ hộ nghèo" in doc.text and "2,27%" in doc.text
    assert unicodedata.is_normalized("NFC", doc.text)


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda s: s.encode("utf-16"), id="utf-16-bom"),
        pytest.param(lambda s: s.encode("utf-16-le"), id="utf-16-le-no-bom"),
        pytest.param(to_cp1258, id="cp1258"),
        pytest.param(lambda s: to_cp1258(s * 20), id="cp1258-long"),
    ],
)
def test_legacy_encodings_are_detected_or_refused_never_crash(tmp_path, encode):
    data = encode(VI)
    path = tmp_path / "legacy.txt"
    path.write_bytes(data)
    try:
        text = read_text(path)
    except UsageError as exc:
        assert "legacy.txt" in str(exc)
        return
    # if it was read, it must be the right text, not mojibake
    assert nfc(text).startswith(nfc(VI))


def test_cp1258_is_detected_correctly(tmp_path):
    path = tmp_path / "cp.txt"
    path.write_bytes(to_cp1258(VI))
    assert nfc(read_text(path)) == nfc(VI)


def test_utf16_with_bom_is_detected(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_bytes(VI.encode("utf-16"))
    assert nfc(read_text(path)) == nfc(VI)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, id="png"),
        pytest.param(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64 + bytes(range(256)), id="elf"),
        pytest.param(bytes(random.Random(0).choices(range(1, 256), k=4000)), id="random-no-nul"),
    ],
)
def test_binary_file_named_txt_is_refused(tmp_path, data):
    path = tmp_path / "binary.txt"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="binary.txt"):
        read_text(path)


def test_markdown(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("# Tỷ lệ hộ nghèo\n\nHuế năm 2023: **2,27%**.\n", "utf-8")
    text = read_text(path)
    assert "Tỷ lệ hộ nghèo" in text and "2,27%" in text
    doc = load_document(path)
    assert doc.id == "note" and "2,27%" in doc.text


def test_html_drops_script_style_and_nav(tmp_path):
    html = """<!doctype html><html><head><meta charset="utf-8"><style>.x{color:red}</style>
    <script>var SCRIPT_TEXT = "không được lấy";</script></head>
    <body><nav><a href="/">Trang chủ</a> NAV_TEXT</nav>
    <header>HEADER_TEXT</header>
    <h1>Hội nghị tổng kết năm 2023</h1>
    <p>Tỷ lệ hộ nghèo <b>2,27%</b>, giảm 1,29%.</p><div>Giải quyết việc làm cho 17.034 người.</div>
    <footer>FOOTER_TEXT</footer><script>SCRIPT_TWO()</script></body></html>"""
    path = tmp_path / "page.html"
    path.write_text(html, "utf-8")
    text = read_text(path)
    for gone in ("SCRIPT_TEXT", "SCRIPT_TWO", "color:red", "NAV_TEXT", "Trang chủ", "HEADER_TEXT", "FOOTER_TEXT"):
        assert gone not in text
    assert "Tỷ lệ hộ nghèo 2,27%, giảm 1,29%." in text
    assert "Hội nghị tổng kết năm 2023" in text
    # block elements are separated, not glued together
    assert "2023Tỷ" not in text and "1,29%.Giải" not in text


def test_html_in_legacy_encoding(tmp_path):
    path = tmp_path / "page.htm"
    path.write_bytes(b"<html><body><p>" + to_cp1258("Tỷ lệ hộ nghèo 2,27% ở Huế") * 5 + b"</p></body></html>")
    try:
        text = read_text(path)
    except UsageError:
        return
    assert "Tỷ lệ hộ nghèo 2,27% ở Huế" in nfc(text)


def test_html_table_cells_and_title_are_not_glued(tmp_path):
    html = ("<html><head><title>Sở LĐTBXH</title></head><body><table><tr><th>Năm</th><th>Tỷ lệ</th></tr>"
            "<tr><td>2022</td><td>2023</td></tr><tr><td>Hộ nghèo</td><td>2,27%</td></tr></table></body></html>")
    path = tmp_path / "table.html"
    path.write_text(html, "utf-8")
    text = read_text(path)
    assert "20222023" not in text
    assert "nghèo2,27%" not in text
    assert "LĐTBXHNăm" not in text


# ---------------------------------------------------------------- PDF


def test_pdf_handwritten(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(["Poverty rate 2,27% in Hue 2023", "Second line of the report"]))
    text = read_text(path)
    assert "Poverty rate 2,27% in Hue 2023" in text
    assert "Second line of the report" in text
    doc = load_document(path)
    assert doc.id == "report" and "2,27%" in doc.text


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a pdf at all", id="text"),
        pytest.param(b"%PDF-1.4\ngarbage", id="header-only"),
        pytest.param(make_pdf(["Hello"])[:200], id="truncated"),
    ],
)
def test_corrupt_pdf_is_a_usage_error(tmp_path, data):
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="bad.pdf"):
        read_text(path)


def test_pdf_with_unsupported_filter_is_a_usage_error_or_empty(tmp_path):
    path = tmp_path / "odd.pdf"
    path.write_bytes(make_pdf([], stream=b"BT ET", stream_dict="/Filter /NoSuchDecode "))
    try:
        read_text(path)
    except UsageError:
        pass


# ---------------------------------------------------------------- DOCX


def test_docx_paragraphs_and_table(tmp_path):
    path = tmp_path / "report.docx"
    path.write_bytes(make_docx())
    text = read_text(path)
    assert "Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023 là 2,27%." in text
    assert "Giải quyết việc làm cho 17.034 người." in text
    assert "Năm 2023 | Tỷ lệ hộ nghèo: 2,27%" in text  # the row carries its headers (rag/tables.py)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a zip", id="text"),
        pytest.param(b"PK\x03\x04garbage", id="zip-magic-only"),
        pytest.param(make_docx()[:300], id="truncated"),
    ],
)
def test_corrupt_docx_is_a_usage_error(tmp_path, data):
    path = tmp_path / "bad.docx"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="bad.docx"):
        read_text(path)


def test_zip_that_is_not_a_docx_is_a_usage_error(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    path = tmp_path / "fake.docx"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UsageError, match="fake.docx"):
        read_text(path)


@pytest.mark.parametrize("damage", ["document-xml", "content-types", "deflate"])
def test_docx_with_damaged_parts_is_a_usage_error(tmp_path, damage):
    good = make_docx()
    if damage == "document-xml":
        data = replace_in_zip(good, "word/document.xml", b"<w:document garbage")
    elif damage == "content-types":
        data = replace_in_zip(good, "[Content_Types].xml", b"<Types garbage")
    else:
        data = good[:500] + bytes(b ^ 0xFF for b in good[500:700]) + good[700:]
    path = tmp_path / "damaged.docx"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="damaged.docx"):
        read_text(path)


def test_a_damaged_docx_is_skipped_by_the_indexer(tmp_path):
    from rag.indexer import read_documents

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(VI, "utf-8")
    (folder / "damaged.docx").write_bytes(replace_in_zip(make_docx(), "word/document.xml", b"<w:document garbage"))
    docs, skipped = read_documents([folder])
    assert [d.id for d in docs] == ["good"]
    assert [Path(p).name for p, _ in skipped] == ["damaged.docx"]


# ---------------------------------------------------------------- suffixes, sizes, folders


def test_unsupported_suffix_is_a_usage_error(tmp_path):
    path = tmp_path / "slides.pptx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(UsageError, match="slides.pptx"):
        read_text(path)
    with pytest.raises(UsageError, match="not a supported document type"):
        list(iter_files([path]))


def test_missing_path_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        list(iter_files([tmp_path / "nope"]))


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MAX_FILE_BYTES", 10)
    path = tmp_path / "big.txt"
    path.write_text(VI, "utf-8")
    with pytest.raises(UsageError, match="big.txt"):
        read_text(path)


def test_empty_document_is_a_usage_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("  \n\n |\n", "utf-8")
    with pytest.raises(UsageError, match="empty.txt"):
        load_document(path)


def test_iter_files_skips_hidden_and_unsupported_and_sorts(tmp_path):
    root = tmp_path / "docs"
    for rel in ("b.txt", "a.md", "C.html", "sub/z.docx", "sub/a.pdf", "sub/deeper/m.htm",
                ".hidden.txt", ".git/config.txt", "sub/.cache/x.md", "notes.xyz", "image.png"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = list(iter_files([root]))
    rel = [p.relative_to(root).as_posix() for p in found]
    assert set(rel) == {"b.txt", "a.md", "C.html", "sub/z.docx", "sub/a.pdf", "sub/deeper/m.htm"}
    assert found == sorted(found)
    # a file given directly is yielded as is, after the folder's files, in argument order
    single = root / "b.txt"
    assert list(iter_files([root, single]))[-1] == single


def test_iter_files_suffix_is_case_insensitive(tmp_path):
    path = tmp_path / "UPPER.TXT"
    path.write_text(VI, "utf-8")
    assert list(iter_files([tmp_path])) == [path]
    assert read_text(path) == VI
