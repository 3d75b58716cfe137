"""Real files the tests and eval/ build: a scanned (image-only) PDF of a text, DOCX/PDF/XLSX/.doc
files with a figures table, and the character error rate of an OCR'd text.

Nothing here is a fixture file: each document is made from text at test time (fonts: DejaVu, which
has the Vietnamese glyphs; Debian's fonts-dejavu-core).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import unicodedata
from pathlib import Path

import numpy as np

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
A4_MM = (210, 297)


def have_font() -> bool:
    return FONT.is_file() and FONT_BOLD.is_file()


# ---------------------------------------------------------------- a scanned PDF


def render_pages(text: str, dpi: int = 300, size_pt: float = 11, margin_mm: float = 20,
                 max_pages: int | None = None) -> list:
    """The text typeset on A4 pages (PIL images, grayscale), paragraph by paragraph, wrapped at words."""
    from PIL import Image, ImageDraw, ImageFont

    px = lambda mm: round(mm / 25.4 * dpi)  # noqa: E731
    width, height = px(A4_MM[0]), px(A4_MM[1])
    margin = px(margin_mm)
    font = ImageFont.truetype(str(FONT), round(size_pt / 72 * dpi))
    line_h = round(size_pt / 72 * dpi * 1.45)
    lines: list[str] = []
    for para in text.split("\n"):
        words, line = para.split(), ""
        for word in words:
            trial = f"{line} {word}" if line else word
            if font.getlength(trial) <= width - 2 * margin:
                line = trial
            else:
                lines.append(line)
                line = word
        if line:
            lines.append(line)
        lines.append("")  # a blank line between paragraphs
    per_page = (height - 2 * margin) // line_h
    pages = []
    for start in range(0, len(lines), per_page):
        if max_pages is not None and len(pages) == max_pages:
            break
        image = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines[start:start + per_page]):
            draw.text((margin, margin + i * line_h), line, font=font, fill=0)
        pages.append(image)
    return pages


def image_pdf(images, dpi: int = 300) -> bytes:
    """A PDF of the images, one a page, with no text layer (what a scanner writes)."""
    buf = io.BytesIO()
    first, *rest = [im.convert("L") for im in images]
    first.save(buf, format="PDF", save_all=True, append_images=rest, resolution=float(dpi))
    return buf.getvalue()


def scanned_pdf(text: str, dpi: int = 300, max_pages: int | None = None, repeat_to: int | None = None) -> bytes:
    """`text` printed and scanned: an image-only PDF (`repeat_to`: its pages repeated up to that many)."""
    pages = render_pages(text, dpi, max_pages=max_pages)
    if repeat_to:
        pages = [pages[i % len(pages)] for i in range(repeat_to)]
    return image_pdf(pages, dpi)


# ---------------------------------------------------------------- a figures table in DOCX, PDF, XLSX, .doc


def table_docx(rows: list[list[str]], before: str = "", after: str = "", caption: str = "",
               merge_header: tuple[int, int, int] | None = None, page_break_before_table: bool = False) -> bytes:
    """A DOCX: a paragraph, the table (`merge_header`: (row, first col, last col) merged), a paragraph."""
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    if before:
        p = document.add_paragraph(before)
    if page_break_before_table:
        p = document.add_paragraph("")
        p.add_run().add_break(WD_BREAK.PAGE)
    if caption:
        document.add_paragraph(caption)
    table = document.add_table(rows=len(rows), cols=max(len(r) for r in rows))
    table.style = "Table Grid"
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                table.cell(r, c).text = value
    if merge_header:
        r, c0, c1 = merge_header
        keep = table.cell(r, c0).text
        table.cell(r, c0).merge(table.cell(r, c1))
        table.cell(r, c0).text = keep
    if after:
        document.add_paragraph(after)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def table_pdf(rows: list[list[str]], before: str = "", after: str = "", caption: str = "",
              pages_before: int = 0) -> bytes:
    """A PDF with a text layer (fpdf2, DejaVu embedded): paragraphs and a ruled table
    (`pages_before`: that many pages of text first, so the table is on page pages_before + 1)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("dejavu", "", str(FONT))
    pdf.add_font("dejavu", "B", str(FONT_BOLD))
    pdf.set_font("dejavu", size=11)
    for n in range(pages_before):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Trang {n + 1}. Phần thuyết minh chung của báo cáo, không có số liệu.")
    pdf.add_page()
    if before:
        pdf.multi_cell(0, 6, before)
        pdf.ln(3)
    if caption:
        pdf.set_font("dejavu", "B", 11)
        pdf.multi_cell(0, 6, caption)
        pdf.set_font("dejavu", size=11)
        pdf.ln(2)
    width = max(len(r) for r in rows)
    with pdf.table(col_widths=[3] + [1] * (width - 1), first_row_as_headings=True, line_height=7) as table:
        for row in rows:
            cells = table.row()
            for value in row:
                cells.cell(value or "")
    if after:
        pdf.ln(3)
        pdf.multi_cell(0, 6, after)
    return bytes(pdf.output())


def table_xlsx(sheets: dict[str, list[list]], percent_cols: dict[str, tuple[int, ...]] | None = None,
               title: str = "", merge_header: tuple[int, int, int] | None = None) -> bytes:
    """An .xlsx, each sheet's rows as given (numbers as numbers; `percent_cols`: 0.0227 shown as 2,27%);
    `title`: a first row merged across each table; `merge_header`: (row, first col, last col), 1-based, in the
    first sheet."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        offset = 0
        width = max(len(r) for r in rows)
        if title:
            sheet.cell(1, 1, title)
            sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
            offset = 1
        for r, row in enumerate(rows, 1 + offset):
            for c, value in enumerate(row, 1):
                if value is None:
                    continue
                cell = sheet.cell(r, c, value)
                if percent_cols and c - 1 in percent_cols.get(name, ()) and isinstance(value, float):
                    cell.number_format = "0.00%"
        if merge_header and name == next(iter(sheets)):
            r, c0, c1 = merge_header
            sheet.merge_cells(start_row=r + offset, start_column=c0, end_row=r + offset, end_column=c1)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def doc_from_docx(docx_bytes: bytes, workdir: Path) -> bytes:
    """A real Word 97–2003 .doc: the DOCX converted by LibreOffice headless (MS Word 97 filter)."""
    exe = soffice()
    if exe is None:
        raise RuntimeError("LibreOffice (soffice) is not installed")
    src = workdir / "source.docx"
    src.write_bytes(docx_bytes)
    profile = workdir / "lo-profile"
    subprocess.run([exe, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "doc:MS Word 97",
                    "--outdir", str(workdir), str(src)], check=True, capture_output=True, timeout=180)
    return (workdir / "source.doc").read_bytes()


# ---------------------------------------------------------------- character error rate


def normalise(text: str) -> str:
    """NFC, one space for any run of whitespace: what is compared when OCR is scored."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (numpy, one row at a time: the insertions along a row are a running minimum)."""
    if not a or not b:
        return max(len(a), len(b))
    x = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    y = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    ramp = np.arange(len(y) + 1, dtype=np.int64)
    prev = ramp.copy()
    for i, ch in enumerate(x, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[:-1] + (y != ch), prev[1:] + 1)  # substitution or match; deletion
        cur = np.minimum.accumulate(cur - ramp) + ramp  # insertion: cur[j] = min_k cur[k] + (j - k)
        prev = cur
    return int(prev[-1])


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of `hypothesis` against `reference`, both normalised."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))
