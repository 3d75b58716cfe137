"""Cleaning (boilerplate, related news, footnotes) and metadata on the seed documents."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from rag.clean import clean
from rag.ingest import load_document
from rag.metadata import extract, infer_province
from rag.types import Document, Section

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


@lru_cache(maxsize=None)
def seed(prefix: str) -> Document:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return load_document(path)


def section_texts(doc: Document, kind: str) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.sections if s.kind == kind]


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("prefix", ["000", "001", "002", "003", "004"])
def test_sections_are_ordered_disjoint_and_trimmed(prefix):
    doc = seed(prefix)
    assert doc.sections, "every document has at least one section"
    assert doc.sections[0].start == 0 and doc.sections[-1].end == len(doc.text)
    for a, b in zip(doc.sections, doc.sections[1:]):
        assert a.end <= b.start
        assert doc.text[a.end : b.start].strip() == "", "nothing but blank lines between sections"
    for s in doc.sections:
        body = doc.text[s.start : s.end]
        assert body and body == body.strip()
        assert s.kind in ("body", "related", "footnotes")
    assert "\n\n\n" not in doc.text
    assert "\r" not in doc.text and "\ufeff" not in doc.text


@pytest.mark.parametrize("prefix", ["000", "001", "002", "003", "004"])
def test_no_boilerplate_lines_survive(prefix):
    lines = [line.strip() for line in seed(prefix).text.split("\n")]
    for line in lines:
        assert line not in ("|", "Các tin khác", "Các tin đã đưa", "Chuyên mục này", "Mọi chuyên mục")
        assert not line.startswith(("Xem các tin đã đưa ngày", "Tin trong:"))


def test_seed_000_navigation_is_gone():
    text = seed("000").text
    assert "Các tin khác" not in text
    assert "Xem các tin đã đưa ngày:" not in text
    assert "Tin trong: Chuyên mục này Mọi chuyên mục" not in text
    assert "Tin trong" not in text


def test_seed_000_related_news_are_kept_one_section_per_item():
    doc = seed("000")
    related = section_texts(doc, "related")
    headlines = [
        "Phát hiện 1 quả đạn pháo chưa nổ tồn sót sau chiến tranh ở lòng sông Đà",
        "Phân bổ 13,5 tỷ đồng thực hiện Pháp lệnh ưu đãi Người có công với cách mạng năm 2024",
        "Huyện Mai Châu đa dạng nguồn lực xóa nhà tạm, nhà dột nát",
        "Vụ nổ lò hơi tại Đồng Nai: Khẩn trương cấp cứu người bị nạn",
        "Những chính sách nổi bật có hiệu lực trong tháng 5/2024",
        "Những mái nhà ấm tình đại đoàn kết",
    ]
    assert [r.split("\n", 1)[0] for r in related] == headlines
    # each item = its headline + its summary, nothing more
    for item in related:
        head, _, summary = item.partition("\n")
        assert summary and "\n" not in summary
    (money,) = [r for r in related if "13,5 tỷ đồng" in r]
    assert "Quyết định số 714/QĐ-UBND" in money
    (boiler,) = [r for r in related if "Vụ nổ lò hơi tại Đồng Nai" in r]
    assert "Công ty TNHH gỗ Bình Minh" in boiler
    # the body ends with the byline, before the related news
    (body,) = section_texts(doc, "body")
    assert body.rstrip().endswith("Bùi Minh")
    assert "13,5 tỷ đồng" not in body
    assert doc.sections[0].kind == "body" and all(s.kind == "related" for s in doc.sections[1:])


def test_seed_000_old_tone_in_body_is_modernised():
    text = seed("000").text
    assert "Thừa ủy quyền" in text and "uỷ" not in text


def test_seed_002_stray_pipe_and_archive_link_are_gone():
    doc = seed("002")
    assert not doc.text.startswith("|")
    assert "\n|\n" not in doc.text
    assert "Các tin đã đưa" not in doc.text
    assert doc.text.rstrip().endswith("Indonesia: 01 lao động.")


def test_seed_002_footnotes_section():
    doc = seed("002")
    kinds = [s.kind for s in doc.sections]
    assert kinds == ["body", "footnotes"]
    (notes,) = section_texts(doc, "footnotes")
    lines = notes.split("\n\n")
    assert lines[0].startswith("[1] Đào tạo nghề cho 74.909 người")
    assert lines[1].startswith("[2] Nhật bản: 233 lao động")
    (body,) = section_texts(doc, "body")
    assert "đào tạo nghề[1]" in body and "xuất khẩu lao động[2]" in body
    assert "74.909" not in body


def test_clean_doctest_example():
    text, sections = clean("Tỷ lệ hộ nghèo 2,27%.\n\nCác tin khác\n\nTin A\n\nTóm tắt A.\n|\n")
    assert text == "Tỷ lệ hộ nghèo 2,27%.\n\nTin A\nTóm tắt A."
    assert [(s.kind, text[s.start : s.end]) for s in sections] == [
        ("body", "Tỷ lệ hộ nghèo 2,27%."),
        ("related", "Tin A\nTóm tắt A."),
    ]


def test_clean_handles_crlf_bom_and_spaces():
    text, sections = clean("\ufeffDòng  một\u00a0\u00a0có   khoảng trắng.\r\n\r\n\r\nĐoạn hai.\r\n")
    assert text == "Dòng một có khoảng trắng.\n\nĐoạn hai."
    assert sections == (Section(0, len(text), "body"),)


def test_clean_of_empty_input():
    text, sections = clean("")
    assert text == "" and sections == ()


# ---------------------------------------------------------------- metadata


def test_metadata_province_named_in_the_body():
    assert seed("004").meta.province == "Thừa Thiên Huế"
    assert seed("004").meta.province_confidence == 1.0
    assert seed("003").meta.province == "Nghệ An"
    assert seed("003").meta.province_confidence > 0.5
    assert seed("002").meta.province == "An Giang"


def test_metadata_province_inferred_from_related_news():
    meta = seed("000").meta
    assert meta.province == "Hòa Bình"
    assert 0 < meta.province_confidence < 1


def test_infer_province_without_any_place():
    text = "Tỷ lệ hộ nghèo giảm 1,52%."
    assert infer_province(text, (Section(0, len(text)),)) == (None, 0.0)


def test_metadata_author():
    assert seed("000").meta.author == "Bùi Minh"


@pytest.mark.parametrize(
    ("prefix", "author"),
    [("003", "Hữu Lương – Ngọc Ánh"), ("001", "Nguyễn Thị Thanh Tâm – Văn phòng Sở")],
)
def test_metadata_author_with_accented_capitals_and_office(prefix, author):
    assert seed(prefix).meta.author == author


def test_metadata_dates():
    assert seed("004").meta.dates[0] == "2024-01-08"
    assert seed("000").meta.dates[0] == "2024-01-04"  # "Ngày 4/1, … năm 2023, triển khai … năm 2024"
    assert seed("003").meta.dates[0] == "2023-12-26"
    assert "2023-07-31" in seed("002").meta.dates
    for prefix in ("000", "001", "002", "003", "004"):
        for iso in seed(prefix).meta.dates:
            y, m, d = map(int, iso.split("-"))
            assert 1990 <= y <= 2100 and 1 <= m <= 12 and 1 <= d <= 31


def test_metadata_years():
    assert seed("004").meta.year == 2023
    assert seed("003").meta.year == 2023
    assert seed("001").meta.year == 2019
    assert 2023 in seed("004").meta.years and 2024 in seed("004").meta.years


def test_metadata_title():
    assert seed("001").meta.title.startswith("Hội nghị tổng kết công tác lao động")
    assert seed("003").meta.title.startswith("Cửa Lò tham dự hội nghị trực tuyến")
    for prefix in ("000", "001", "002", "003", "004"):
        title = seed(prefix).meta.title
        assert title and "\n" not in title and len(title) <= 240


def test_extract_ignores_related_news_for_dates_and_title():
    text, sections = clean(
        "Hội nghị tổng kết công tác năm 2023 của ngành\n\nCác tin khác\n\nBài viết cũ ngày 1/2/2019\n\nTóm tắt."
    )
    assert [s.kind for s in sections] == ["body", "related"]
    meta = extract(text, sections)
    assert meta.title == "Hội nghị tổng kết công tác năm 2023 của ngành"
    assert "2019-02-01" not in meta.dates
    assert meta.year == 2023
