"""The words and patterns the pipeline reads Vietnamese with, in one place: the abbreviations and
English terms a question is expanded with, the words that say what a question asks (its expected type,
unit, measure, title, comparison), the titles, offices and names in documents, the units of counted
things, and the number and year patterns.

Each list lives here once; `rag/query.py` reads the question with them, `rag/answer.py`,
`rag/extract.py`, `rag/compare.py`, `rag/text.py` and `rag/chunker.py` read the documents with them.
Patterns named `…_FOLDED` or written without diacritics ("ty le") match folded text (`text.fold`);
the others match the text as written. This module imports nothing from the package.

>>> bool(TARGET.search("Mục tiêu giảm tỷ lệ hộ nghèo")), bool(TARGET.search("chương trình mục tiêu quốc gia"))
(True, False)
>>> [m.group() for m in VALUE_PATTERNS["count"].finditer("giải quyết việc làm cho khoảng 24 ngàn người")]
['khoảng 24 ngàn người']
>>> YEAR_RE.findall("năm 2023, so với 2022; 17.034 người, 2,2023 tỷ, ngày 10/12/2019")
['2023', '2022']
"""

from __future__ import annotations

import re

# -- numbers and years

# A number keeps its inner separators and a trailing percent sign: "2,27%", "17.034", "31/7/2023" (a token).
NUMBER_TOKEN = r"\d+(?:[.,/]\d+)*%?"
# A year standing alone: "2023", not inside "17.034", "2,2023" or "10/12/2019"'s day/month part.
# (The "not after a digit or separator" check is a look-behind over the matched digits: a pattern that
# starts with the digits lets the regex engine skip to candidate positions, 4-5x faster.)
YEAR_RE = re.compile(r"((?:19|20)\d{2})(?<![\d.,/]....)(?![\d.,]\d)")
YEAR_DIGITS = re.compile(r"(?:19|20)\d{2}")  # (with fullmatch) a number that is a year
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")  # a number as a text states it: "17.034", "2,27"
# "17.034" and "1.234,5" (dots group thousands, a comma marks decimals), "2,27", "25"; a lone dot is
# read as grouping too ("2.5" = 25), as it always was here
VIETNAMESE_NUMBER = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?")
MULTIPLIERS = {"ngàn": 1e3, "nghìn": 1e3, "vạn": 1e4, "triệu": 1e6, "tỷ": 1e9}
FOOTNOTE_MARK = re.compile(r"\[\d+\]|\(\d+\)")  # "[1]", "(2)"
# "so với năm 2021", "bằng cùng kỳ năm 2022": a year a figure is compared with, not dated to
COMPARED_YEAR = re.compile(r"(?:so với|bằng|như)\s+(?:cùng kỳ\s+)?(?:năm\s+)?(?:19|20)\d{2}", re.I)
YEAR_RANGE = re.compile(r"\b((?:19|20)\d{2})\s*[-–]\s*((?:19|20)\d{2})\b")  # "giai đoạn 2021 - 2025"
# A year the document plans for, not one it reports figures of: "tổng kết công tác năm 2019, triển khai nhiệm vụ năm 2020"
PLAN_YEAR = re.compile(r"\b(?:triển khai|phương hướng)(?:,?\s+(?:nhiệm vụ|kế hoạch|công tác|chương trình|mục tiêu))*"
                       r"\s+năm\s+(?:19|20)\d{2}", re.I)
# The wh-words of questions that ask for an explanation ("vì sao", "như thế nào"), folded: no typed value answers them
WHY_FOLDED = r"\b(?:tai sao|vi sao|vi dau|do dau|ly do|nguyen nhan)\b"
HOW_FOLDED = r"\b(?:nhu the nao|the nao|ra sao|lam sao|bang cach nao|cach nao)\b"
EXPLAINS = re.compile(f"{WHY_FOLDED}|{HOW_FOLDED}")
# A percentage of a plan or target done ("đạt 118,91% kế hoạch"), right after the value; and a question that asks one
PLAN_SHARE = re.compile(r"\s*(?:so với\s+)?(?:kế hoạch|KH\b|chỉ tiêu)", re.I)
PLAN_ASKED = re.compile(r"\bke hoach\b|\bchi tieu\b|\bkh\b|\bplan\b|\btarget\b")
# the words of a rate as written, folded: "tỷ lệ lao động qua đào tạo đạt 61%" → "lao dong qua dao tao dat"
RATE_OF = re.compile(r"\bty le ((?:[a-z]+\s*){1,6})")
# A date (a dateline, a publication date): the day something was written or held, not a year of figures
DATED = re.compile(r"\b\d{1,2}/\d{1,2}/(?:19|20)\d{2}\b|\bngày\s+\d{1,2}\s+tháng\s+\d{1,2}\s+năm\s+(?:19|20)\d{2}"
                   r"|\b(?:19|20)\d{2}-\d{2}-\d{2}\b", re.I)
TIME_FOLDED = re.compile(r"\b(?:(?:cuoi|dau|giua)\s+)?(?:nam\s+)?(?:19|20)\d{2}\b")  # "cuoi nam 2022"
# the year alone as a date's answer ("năm 1898", "thế kỷ thứ XV")
IN_YEAR = re.compile(r"(?:(?:vào\s+)?năm\s+)?(?<!\d)1?\d{3}(?!\d)|thế kỷ (?:thứ )?\w+")
# after a bare number: a duration ("5 năm") or a code ("714/QĐ-UBND"), not an amount
NOT_AN_AMOUNT = re.compile(r"\s*(?:năm|tháng|tuần|ngày|giờ|phút|giây|thế kỷ)\b|[/-][A-ZĐ]")

# -- typed values in a sentence (rag/extract.py)

_NUM = r"(?<![\w.,/])\d+(?:[.,]\d+)*"
_QUANT = r"(?:(?:khoảng|hơn|trên|gần|dưới|tới|ước)\s+)?"
# the things a count counts: "17.034 người", "62.696 vị trí việc làm"
COUNT_UNITS = (
    r"người|lao động|hộ|học viên|đối tượng|suất quà|suất|cá nhân|tập thể|chỉ tiêu|vị trí việc làm|"
    r"phiên|đơn vị|lượt|SV|HS|HV|trẻ em|xã|phường|huyện|ngôi nhà|căn nhà|nhà|doanh nghiệp|cơ sở|"
    r"trường|lớp|thẻ|hồ sơ|trường hợp|công trình|mô hình|dự án|gia đình|thôn|bản|tỷ đồng|triệu đồng"
)
VALUE_PATTERNS: dict[str, re.Pattern] = {
    "percent": re.compile(rf"{_QUANT}(?:từ\s+)?{_NUM}(?:\s*%?\s*(?:-|–|đến)\s*{_NUM})?\s?%"),
    "money": re.compile(rf"{_QUANT}{_NUM}\s*(?:tỷ|triệu|nghìn|ngàn)?\s*(?:đồng|USD|usd)", re.I),
    "count": re.compile(
        rf"{_QUANT}{_NUM}(?:/\d+)?(?:\s*(?:ngàn|nghìn|triệu|vạn))?\s+(?:lượt\s+)?(?:{COUNT_UNITS})\b"
    ),
    "date": re.compile(
        r"(?:[Nn]gày\s+)?(?<!\d)\d{1,2}/\d{1,2}(?:/\d{4})?(?![\d/])|ngày \d{1,2} tháng \d{1,2}(?: năm \d{4})?|tháng \d{1,2}/\d{4}"
    ),
    "number": re.compile(rf"{_QUANT}{_NUM}(?:/\d+)?(?:\s*(?:ngàn|nghìn|triệu|tỷ))?"),
    "code": re.compile(
        r"(?:(?:Quyết định|Nghị quyết|Nghị định|Thông tư|Chỉ thị|Kế hoạch|Công văn|Kết luận|Luật)\s+)?"
        r"số\s+\d+[\w/.-]*/[\w/.-]*\w",
        re.I,
    ),
}
# a word that may follow a number inside one quantity: the chunker never cuts before it ("13,5 | tỷ đồng")
UNIT_START = re.compile(
    r"(?:%|tỷ|triệu|nghìn|ngàn|trăm|đồng|usd|người|lượt|hộ|lao|động|suất|quà|đối|tượng|ha|km|tấn|năm|tháng|ngày)\b", re.I
)
# units that count the same things (folded): people, households; "2 chỉ tiêu" does not count people
UNIT_CLASSES = (
    {"nguoi", "lao dong", "hoc vien", "hv", "sv", "hs", "hoc sinh", "sinh vien", "doi tuong", "ca nhan", "workers",
     "people", "persons"},
    {"ho", "gia dinh", "households"},
)

# -- people, offices and organisations in documents (rag/extract.py)

TITLES = (
    "Phó Chủ tịch thường trực UBND tỉnh", "Phó Chủ tịch UBND tỉnh", "Chủ tịch UBND tỉnh", "Phó Chủ tịch HĐND tỉnh",
    "Phó Chủ tịch", "Chủ tịch", "Phó Giám đốc Sở", "Giám đốc Sở", "Phó Giám đốc", "Giám đốc", "Trưởng phòng",
    "Bộ trưởng", "Thứ trưởng", "Bí thư", "Phó Bí thư", "Đồng chí", "đồng chí", "Ông", "ông", "Bà", "bà",
)
ADDRESS = frozenset({"Đồng chí", "đồng chí", "Ông", "ông", "Bà", "bà"})  # forms of address, not offices
ADDRESS_BEFORE = re.compile(rf"^(?:{'|'.join(sorted(ADDRESS, key=len, reverse=True))})\s+")  # "Ông Nguyễn…"
SURNAMES = frozenset((
    "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đoàn Đinh Lương Trương Mai Cao Lâm "
    "Tạ Hà Châu Tô Trịnh Quách Lưu Đào Thái Kiều Thân Triệu La Từ Chu Tăng Lục Mạc Hứa Khúc Vương Đàm Nông Lò "
    "Lại Giang Kim Tống Văn Âu Doãn Khổng Ông Phùng Quan Tôn Trình Tiêu Hàn Hầu Mã Lã Diệp Thạch Viên Bạch"
).split())
NOT_NAMES = frozenset({"Lao Động", "Thương Binh", "Xã Hội", "Ủy Ban", "Nhân Dân", "Chính Phủ", "Thủ Tướng"})
# Words that may sit inside a name after its head: "Công ty TNHH gỗ Bình Minh", "Kỹ thuật – Tổng hợp".
NAME_GLUE = frozenset({"–", "-", "&", "và", "số"})
GENERIC_ORG_HEADS = frozenset({"co quan", "don vi", "to chuc"})  # "cơ quan nào": any organisation answers
ORGS = ("Công an", "Sở", "Ủy ban", "UBND", "Phòng", "Ban", "Cục", "Chi cục", "Trung tâm", "Ngân hàng", "Bệnh viện",
        "Trường", "Công ty", "Liên đoàn", "Đảng ủy", "Tỉnh ủy", "Bộ", "Viện", "Quỹ", "Bảo hiểm xã hội", "Kho bạc",
        "Bưu điện", "Đoàn")
# capitalised words that open an organisation's or a document's name, not a person's or a place's
ORG_WORDS = frozenset("Sở Bộ Ủy Ban Hội Nghị Trung Đảng Tỉnh Thành Công Ngân Trường Quỹ Chính Phó Chủ Giám Lao Thương Xã "
                      "Nhà Quyết Kế Thông Chỉ Luật Đại Tổng Cục Viện Sông Phường Huyện Quận Năm Ngày Tháng".split())
NAME_PARTICLES = frozenset({"de", "van", "von", "der", "la", "le", "du", "di", "da", "al", "bin", "of"})  # "Charles de Gaulle"
OFFICES = ("Chủ tịch", "Giám đốc", "Bí thư", "Trưởng phòng", "Trưởng ban", "Bộ trưởng", "Thứ trưởng", "Thủ tướng")
OFFICE_PREFIX = re.compile(r"(?:(?:Quyền|Phó|quyền|phó|Tổng)\s+)+$")
# the offices a "who" question asks about (folded); "phó" before one is part of it
TITLE_WORDS = ("chu tich", "giam doc", "bi thu", "truong phong", "bo truong", "thu truong", "truong ban")
# whose office a title is (folded): the People's Committee or the People's Council
ORGANS = {"ubnd": r"\bubnd\b|uy ban nhan dan|people's committee",
          "hdnd": r"\bhdnd\b|hoi dong nhan dan|people's council"}

# -- what a question asks (rag/query.py)

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
# Phrases that say the same thing in the documents' words; each adds the others to the query.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("xuất khẩu lao động", "đi làm việc ở nước ngoài", "làm việc ở nước ngoài theo hợp đồng"),
    ("giải quyết việc làm", "tạo việc làm"),
    ("hộ nghèo", "nghèo"),
)
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
    "went abroad": "đi làm việc ở nước ngoài", "abroad": "nước ngoài", "labour contracts": "theo hợp đồng",
    "labor contracts": "theo hợp đồng", "workers": "lao động", "disburse": "giải ngân", "disbursed": "giải ngân",
    "social policy bank": "Ngân hàng Chính sách Xã hội", "job creation": "tạo việc làm", "certificate of merit": "Bằng khen",
    "prime minister": "Thủ tướng Chính phủ", "degrees": "bằng cấp", "certificates": "chứng chỉ",
    "mid-term review": "sơ kết giữa nhiệm kỳ", "review conference": "hội nghị tổng kết", "party committee": "Đảng bộ",
    "people's committee": "Ủy ban nhân dân", "provincial": "tỉnh", "unemployment rate": "tỷ lệ thất nghiệp",
    "minimum wage": "lương tối thiểu", "wage": "tiền lương", "labour sector": "ngành lao động",
    "labor sector": "ngành lao động", "households": "hộ", "near-poor households": "hộ cận nghèo",
    "trained workers": "lao động qua đào tạo", "gift": "quà", "tet": "Tết", "war invalids": "thương binh",
}
# English words that make a question English (two or more of them)
ENGLISH_FUNCTION_WORDS = frozenset(
    "what which who whom how many much when where was were is are the of in did does do for to".split())

# Expected answer type: checked in order, on the folded question.
EXPECTED_TYPES: tuple[tuple[str, str], ...] = (
    ("code", r"so hieu|ky hieu|so may\b|\bnumber of the (?:decision|resolution)"),
    ("percent", r"ty le|bao nhieu phan tram|may phan tram|phan tram|%|\bpercent|\brate\b|\bshare\b|\bproportion"),
    # "giải ngân … cho bao nhiêu lao động": the thing counted outweighs the money words
    ("count", r"\b(?:bao nhieu|may)\s+(?:nguoi|lao dong|ho|hoc vien|doi tuong|luot|suat|ca nhan|tap the|don vi"
              r"|doanh nghiep|hoc sinh|sinh vien|tre em|vi tri|phien|truong hop)\b"),
    ("money", r"bao nhieu tien|kinh phi|so tien|ngan sach|\bvon\b|giai ngan|ty dong|trieu dong|\bmoney|\bbudget|\bfund"
              r"|how much|\bdisburs"),
    ("date", r"ngay nao|ngay bao nhieu|khi nao|bao gio|thoi gian nao|thang nao|\bwhen\b|what date|which day"),
    ("person", r"\bai\b|nguoi nao|dong chi nao|ong nao|ba nao|la ai|\bwho\b|ho ten|ten cua|ten la gi|ten gi"),
    ("place", r"o dau|tai dau|tinh nao|dia phuong nao|noi nao|\bwhere\b|which province"),
    ("count", r"bao nhieu|so luong|may nguoi|how many|\bmay\b"),
)
# Words that make a question without a wh-word ("XKLĐ Nghệ An 2023", "số lao động …") ask for a count; a question that
# has one ("Khó khăn lớn nhất của ngành lao động là gì?") asks for what its wh-word says
COUNT_WORDS = re.compile(r"\bso\b|xkld|lao dong")
OPEN_WH = re.compile(r"\b(?:gi|nao|ai|what|which|who|where)\b")  # (not "dau": "đâu", but also "đầu")
# "<noun> nào / gì": the answer is a name introduced by that noun ("Công ty TNHH gỗ Bình Minh").
ENTITY_HEADS = (
    "công ty", "doanh nghiệp", "trường", "ngân hàng", "nghị quyết", "nghị định", "quyết định", "thông tư",
    "chỉ thị", "chương trình", "đề án", "dự án", "đơn vị", "cơ quan", "tổ chức", "bệnh viện", "huyện", "quận",
    "thị xã", "thành phố", "phường", "xã", "thôn", "bản", "ấp", "quỹ", "nước", "thị trường",
)
ENGLISH_HEADS = {
    "company": "công ty", "school": "trường", "bank": "ngân hàng", "resolution": "nghị quyết", "decision": "quyết định",
    "district": "huyện", "ward": "phường", "commune": "xã", "programme": "chương trình", "program": "chương trình",
    "country": "nước", "market": "thị trường", "department": "sở", "agency": "cơ quan",
}
HOW_MANY_FOLDED = re.compile(r"\b(?:bao nhieu|may)\b")  # where the asked quantity starts
ASKED_UNIT_FOLDED = re.compile(r"\b(?:bao nhieu|may|how many)\s+((?:\w+\s*){1,4})")  # "bao nhieu vi tri viec lam"
# "tỷ lệ hộ nghèo …": the words after "tỷ lệ" up to one that ends what is measured
MEASURED_FOLDED = re.compile(
    r"\bty le ((?:(?!(?:cua|o|tai|nam|la|bao|trong|cuoi|dau|den|so|duoc|giam|tang|con|dat)\b)[a-z]+\s*){1,4})")
NAME_ASKED_FOLDED = re.compile(r"\bten\b|\bname\b")  # "tên là gì": a name is asked
DOCUMENT_ASKED = re.compile(r"ban hành|\bký\b|hiệu lực|\bissued|\bsigned", re.I)  # the date of a document is asked

# -- targets and results, changes (questions and documents)

TARGET = re.compile(r"(?<!chương trình )mục tiêu|phấn đấu|dự kiến|chỉ tiêu (?:chủ yếu|chính)|\btarget|\bgoal", re.I)
TARGET_FOLDED = re.compile(r"muc tieu|chi tieu|phan dau|ke hoach|\bplan")
BRACKETED_TARGET = re.compile(r"\(\s*(?:chỉ tiêu|kế hoạch|mục tiêu|dự kiến)[^()]*$", re.I)  # "… (chỉ tiêu được giao là"
# the verbs of a change or a level, folded: "giảm 3,09%", "còn 9,2%"
VERBS = ("giam", "tang", "con", "dat", "vuot", "xuong", "len")
VERB_RE = re.compile(r"\b(" + "|".join(VERBS) + r")\b")
# "Kế hoạch số 274-KH/ĐU ngày 13/3/2023": a date that dates a document, right before it
DOCUMENT_DATE = re.compile(r"\bsố\s+\d+[\w/.-]*\s*(?:của\s+[^,;()]{0,60}\s*)?$", re.I)
WHOLE_PROVINCE = re.compile(r"\b(?:toàn|cả)\s+(?:tỉnh|thành phố)\b", re.I)  # "toàn tỉnh": not a district's figure

# -- comparisons across places (rag/compare.py; folded)

_MORE = r"cao hon|nhieu hon|lon hon|tot hon|cao nhat|nhieu nhat|lon nhat|higher|more|most|larger|highest|largest"
_LESS = r"thap hon|it hon|nho hon|thap nhat|it nhat|nho nhat|lower|fewer|less|least|lowest|smaller"
# "nhiều lao động … hơn", "nhiều lao động nhất": the adjective and its degree word apart
_SPLIT_MORE = r"(?:nhieu|cao|lon)(?:\s+\S+){1,8}?\s+(?:hon|nhat)"
_SPLIT_LESS = r"(?:it|thap|nho)(?:\s+\S+){1,8}?\s+(?:hon|nhat)"
COMPARATIVE = re.compile(rf"\b(?:{_MORE}|{_LESS}|{_SPLIT_MORE}|{_SPLIT_LESS})\b")
MORE = re.compile(rf"\b(?:{_MORE}|{_SPLIT_MORE})\b")
WHICH = re.compile(r"\b(?:tinh nao|thanh pho nao|dia phuong nao|noi nao|ben nao|which)\b")
# Words that only frame the comparison; dropped from the per-place question.
FRAME = re.compile(
    rf"\b(?:{_MORE}|{_LESS}|tinh nao|thanh pho nao|dia phuong nao|noi nao|ben nao|trong (?:hai|ba|cac) tinh|"
    r"giua|hay|hoac|voi|va|which|or|and|between|province|hon|nhat)\b"
)
FRAME_LEFTOVERS = frozenset({"tinh", "nao"})  # what is left of "cao hơn", "tỉnh nào" dropped word by word
# the comparative as written, for the answer ("thấp hơn", "nhiều … nhất"); accented
COMPARATIVE_WORD = re.compile(r"\b(cao|nhiều|lớn|thấp|ít|nhỏ|tốt)(?:\s+\S+){0,8}?\s+(hơn|nhất)\b")
