"""Query analysis: year, place, expected answer type, and abbreviation expansion.

>>> q = analyse("XKLĐ Nghệ An 2023")
>>> q.years, q.place, q.expects
((2023,), 'Nghệ An', 'count')
>>> "xuất khẩu lao động" in q.normalized
True
>>> analyse("ty le ho ngheo hue 2023").place
'Thừa Thiên Huế'
"""

from __future__ import annotations

import re

from . import gazetteer
from .text import collapse_spaces, fold, has_diacritics, normalize_query, years_in
from .types import Query

# Abbreviations officials write; each expands to the phrases documents use.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "XKLĐ": ("xuất khẩu lao động", "đi làm việc ở nước ngoài"),
    "LĐ-TB&XH": ("Lao động - Thương binh và Xã hội",),
    "LĐTB&XH": ("Lao động - Thương binh và Xã hội",),
    "LĐ-TBXH": ("Lao động - Thương binh và Xã hội",),
    "LĐTBXH": ("Lao động - Thương binh và Xã hội",),
    "BHXH": ("bảo hiểm xã hội",),
    "BHYT": ("bảo hiểm y tế",),
    "BHTN": ("bảo hiểm thất nghiệp",),
    "GDNN": ("giáo dục nghề nghiệp",),
    "GQVL": ("giải quyết việc làm",),
    "NCC": ("người có công",),
    "BTXH": ("bảo trợ xã hội",),
    "HĐND": ("Hội đồng nhân dân",),
    "UBND": ("Ủy ban nhân dân",),
    "TT-Huế": ("Thừa Thiên Huế",),
    "TTH": ("Thừa Thiên Huế",),
    "TP.HCM": ("Thành phố Hồ Chí Minh",),
    "TPHCM": ("Thành phố Hồ Chí Minh",),
    "SL": ("số lượng",),
    "LĐ": ("lao động",),
    "KH": ("kế hoạch",),
}
# A few English words users type, mapped to the Vietnamese that documents use.
ENGLISH: dict[str, str] = {
    "poverty rate": "tỷ lệ hộ nghèo", "poor households": "hộ nghèo", "poverty": "hộ nghèo",
    "near-poor": "cận nghèo", "unemployment": "thất nghiệp", "jobs": "giải quyết việc làm",
    "employment": "việc làm", "workers abroad": "đi làm việc ở nước ngoài", "labor export": "xuất khẩu lao động",
    "labour export": "xuất khẩu lao động", "vocational training": "đào tạo nghề", "trained": "qua đào tạo",
    "social insurance": "bảo hiểm xã hội", "health insurance": "bảo hiểm y tế", "gifts": "suất quà",
    "vice chairman": "Phó Chủ tịch", "chairman": "Chủ tịch", "director": "Giám đốc", "conference": "hội nghị",
    "billion": "tỷ đồng", "percent": "tỷ lệ", "rate": "tỷ lệ", "target": "chỉ tiêu kế hoạch",
    "people with meritorious": "người có công", "martyrs": "liệt sỹ", "explosion": "vụ nổ", "boiler": "lò hơi",
}
_ABBR_RE = re.compile(
    r"(?<![\w&.-])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w&-])",
    re.IGNORECASE,
)
_FOLDED_ABBR = {fold(a): a for a in ABBREVIATIONS}

# Expected answer type: checked in order, on the folded question.
_EXPECTS: tuple[tuple[str, str], ...] = (
    ("percent", r"ty le|bao nhieu phan tram|may phan tram|phan tram|%|\bpercent|\brate\b"),
    ("money", r"bao nhieu tien|kinh phi|so tien|ngan sach|von|giai ngan|ty dong|trieu dong|\bmoney|\bbudget|\bfund"),
    ("date", r"ngay nao|ngay bao nhieu|khi nao|bao gio|thoi gian nao|thang nao|\bwhen\b|what date"),
    ("person", r"\bai\b|nguoi nao|dong chi nao|ong nao|ba nao|la ai|\bwho\b|ho ten|ten cua"),
    ("place", r"o dau|tai dau|tinh nao|dia phuong nao|noi nao|\bwhere\b|which province"),
    ("count", r"bao nhieu|so luong|may nguoi|how many|\bso\b|\bmay\b|xkld|lao dong"),
)


def analyse(text: str) -> Query:
    """Parse a question; raises ValueError on an empty one."""
    cleaned = collapse_spaces(normalize_query(text))
    if not cleaned:
        raise ValueError("the question is empty")
    folded = not has_diacritics(cleaned)
    mentions = gazetteer.find_places(cleaned, folded=folded or None)
    if not mentions and not folded:  # "hộ nghèo ở hue": try the unaccented words too
        mentions = gazetteer.find_places(cleaned, folded=True)
    return Query(
        text=cleaned,
        normalized=expand(cleaned),
        folded=folded,
        years=tuple(dict.fromkeys(years_in(cleaned))),
        place=mentions[0].place.name if mentions else None,
        expects=_expects(fold(cleaned)),
    )


def expand(text: str) -> str:
    """Append the expansions of abbreviations and English terms to the question."""
    extra: list[str] = []
    for m in _ABBR_RE.finditer(text):
        key = next((a for a in ABBREVIATIONS if a.lower() == m.group(1).lower()), None)
        if key:
            extra += ABBREVIATIONS[key]
    for word in re.findall(r"[\w&.-]+", text):  # unaccented abbreviations: "xkld" → XKLĐ
        key = _FOLDED_ABBR.get(fold(word))
        if key and len(word) >= 3:
            extra += ABBREVIATIONS[key]
    lower = text.lower()
    for english, vietnamese in ENGLISH.items():
        if re.search(rf"\b{re.escape(english)}\b", lower):
            extra.append(vietnamese)
    extra = [e for e in dict.fromkeys(extra) if e.lower() not in lower]
    return " ".join([text, *extra])


def _expects(folded: str) -> str | None:
    for kind, pattern in _EXPECTS:
        if re.search(pattern, folded):
            return kind
    return None
