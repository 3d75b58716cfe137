"""Document metadata: title, dates, years, province (named or inferred) and author."""

from __future__ import annotations

import re
from collections import Counter

from . import gazetteer
from .types import DocMeta, Section

_DMY = re.compile(r"\b(\d{1,2})/(\d{1,2})/((?:19|20)\d{2})\b")
_LONG_DATE = re.compile(r"\bngày (\d{1,2}) tháng (\d{1,2}) năm ((?:19|20)\d{2})\b", re.I)
_DATELINE = re.compile(r"^(?:Đăng )?ngày (\d{1,2})/(\d{1,2})(?:/((?:19|20)\d{2}))?\b", re.I | re.M)
_RANGE = re.compile(r"\b(?:19|20)\d{2}\s*[-–]\s*(?:19|20)\d{2}\b")
_YEAR = re.compile(r"(?<![\d/.,])((?:19|20)\d{2})(?![\d/.,]\d)")


def extract(text: str, sections: tuple[Section, ...], fallback_title: str = "") -> DocMeta:
    body = "\n\n".join(text[s.start : s.end] for s in sections if s.kind != "related") or text
    dates = _dates(body)
    years = _years(body)
    province, confidence = infer_province(text, sections)
    return DocMeta(
        title=_title(body) or fallback_title,
        dates=dates,
        years=tuple(y for y, _ in years.most_common()),
        year=_main_year(years, dates),
        province=province,
        province_confidence=round(confidence, 3),
        author=_author(body),
    )


def infer_province(text: str, sections: tuple[Section, ...]) -> tuple[str | None, float]:
    """The document's province and a confidence in [0, 1].

    The province of the provincial outlet or portal that published it wins ("Nguồn: Báo Lâm Đồng",
    "nghean.gov.vn"; confidence 0.9). Then a province named in the body (confidence from its share of the body's mentions). A local
    site never names its own province in its related news, only its wards and districts, so
    otherwise each related-news item votes for the provinces it mentions, sub-places counting
    fully, and the share of votes is the confidence.
    """
    publisher = gazetteer.publisher_province(text)
    if publisher is not None:  # "Nguồn: Báo Lâm Đồng": a provincial outlet writes about its province
        return publisher.name, 0.9
    body = [s for s in sections if s.kind != "related"] or [Section(0, len(text))]
    counts: Counter[str] = Counter()
    for sec in body:
        counts.update(gazetteer.province_counts(text[sec.start : sec.end]))
    if counts:
        name, top = counts.most_common(1)[0]
        return name, top / sum(counts.values())
    votes: Counter[str] = Counter()
    items = [s for s in sections if s.kind == "related"]
    for sec in items:  # one vote per item and province
        votes.update({m.place.name for m in gazetteer.find_places(text[sec.start : sec.end], folded=False)})
    if not votes:
        return None, 0.0
    name, top = votes.most_common(1)[0]
    return name, 0.8 * top / sum(votes.values())


def _dates(text: str) -> tuple[str, ...]:
    """ISO dates, the dateline's first ("Ngày 8/1, … năm 2024" → 2024-01-08)."""
    found: list[str] = []
    head = text[:400]
    if m := _DATELINE.search(head):
        d, mo, y = m.groups()
        if y is None:  # "Ngày 4/1, … tổng kết năm 2023, triển khai năm 2024": the later year
            sentence = head[m.end() :].split(". ", 1)[0]
            y = max(_YEAR.findall(sentence), default=None)
        if y and 1 <= int(d) <= 31 and 1 <= int(mo) <= 12:
            found.append(f"{y}-{int(mo):02d}-{int(d):02d}")
    for rx in (_DMY, _LONG_DATE):
        for d, m, y in rx.findall(text):
            if 1 <= int(d) <= 31 and 1 <= int(m) <= 12:
                iso = f"{y}-{int(m):02d}-{int(d):02d}"
                if iso not in found:
                    found.append(iso)
    return tuple(found)


def _years(text: str) -> Counter[int]:
    text = _RANGE.sub(" ", text)  # "nhiệm kỳ 2020 – 2025" is a term, not a year reported on
    return Counter(int(y) for y in _YEAR.findall(text) if 1990 <= int(y) <= 2100)


def _main_year(years: Counter[int], dates: tuple[str, ...]) -> int | None:
    """The year reported on: the most mentioned one (ties go to the earlier year, the results' year)."""
    if not years:
        return int(dates[0][:4]) if dates else None
    best = max(years.values())
    return min(y for y, c in years.items() if c == best)


def _title(body: str) -> str:
    """The first line that reads like a headline: 5–40 words, not a dateline."""
    for line in body.split("\n"):
        words = line.split()
        if 5 <= len(words) <= 40 and not line.endswith(".") and not line.lower().startswith(("ngày", "đăng ngày")):
            return line.strip()
    first = body.strip().split("\n", 1)[0]
    return first[:120].rsplit(" ", 1)[0] + "…" if len(first) > 120 else first


def _author(body: str) -> str | None:
    """A short byline (capitalised words, optionally "– Văn phòng Sở") on the last line."""
    lines = [line.strip() for line in body.strip().split("\n") if line.strip()]
    lines = [line for line in lines if not line.startswith("[")]  # footnotes come after the byline
    if not lines:
        return None
    last = lines[-1]
    if len(last.split()) > 10 or last.endswith((".", ":", ";", ",")):
        return None
    parts = [p.split() for p in re.split(r"\s+[–—-]\s+", last)]
    # "Bùi Minh", "Hữu Lương – Ngọc Ánh", "Nguyễn Thị Thanh Tâm – Văn phòng Sở"
    name_like = all(w[:1].isupper() and w.isalpha() for w in parts[0]) and 2 <= len(parts[0]) <= 5
    rest_ok = all(p and p[0][:1].isupper() for p in parts[1:])
    return last if name_like and rest_ok else None
