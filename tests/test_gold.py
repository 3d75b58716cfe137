"""Consistency checks for the evaluation gold set eval/gold.jsonl.

Every answerable row must be grounded in its seed document: the evidence is a
verbatim (NFC) substring of seeds/<doc>.txt and every answer string occurs in
the document and in the evidence.  Comparison rows (type "comparison") may name
an entity (e.g. a province) that appears in the document but not inside the
evidence sentence that carries the deciding figure, so for them the answer is
only required to occur in the document.
"""

import json
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold.jsonl"
SEEDS = ROOT / "seeds"

REQUIRED_KEYS = {"id", "question", "answers", "doc", "evidence", "type", "answerable"}
OPTIONAL_KEYS = {"tags"}
ALLOWED_TYPES = {
    "percent", "count", "money", "person", "date", "place", "org",
    "number", "footnote", "comparison", "unanswerable", "other",
}


def nfc(s):
    return unicodedata.normalize("NFC", s)


def load_rows():
    rows = []
    with GOLD.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:  # pragma: no cover - reported as failure
                pytest.fail(f"line {lineno} is not valid JSON: {e}")
    return rows


ROWS = load_rows()
_DOC_CACHE = {}


def doc_text(stem):
    if stem not in _DOC_CACHE:
        _DOC_CACHE[stem] = nfc((SEEDS / f"{stem}.txt").read_text(encoding="utf-8"))
    return _DOC_CACHE[stem]


def test_file_is_utf8_nfc():
    raw = GOLD.read_bytes().decode("utf-8")
    assert raw == nfc(raw), "gold.jsonl is not NFC-normalised"


def test_sizes():
    assert len(ROWS) >= 60
    unanswerable = [r for r in ROWS if r["answerable"] is False]
    assert len(unanswerable) >= 10


def test_keys_and_types():
    for r in ROWS:
        keys = set(r)
        assert REQUIRED_KEYS <= keys, (r.get("id"), REQUIRED_KEYS - keys)
        assert keys <= REQUIRED_KEYS | OPTIONAL_KEYS, (r.get("id"), keys - REQUIRED_KEYS - OPTIONAL_KEYS)
        assert isinstance(r["id"], str) and r["id"]
        assert isinstance(r["question"], str) and r["question"].strip(), r["id"]
        assert isinstance(r["answers"], list), r["id"]
        assert all(isinstance(a, str) and a for a in r["answers"]), r["id"]
        assert isinstance(r["answerable"], bool), r["id"]
        assert r["type"] in ALLOWED_TYPES, (r["id"], r["type"])
        if "tags" in r:
            assert isinstance(r["tags"], list), r["id"]
            assert all(isinstance(t, str) and t for t in r["tags"]), r["id"]


def test_ids_unique():
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_questions_unique():
    qs = [nfc(r["question"]).strip().lower() for r in ROWS]
    assert len(qs) == len(set(qs)), sorted({q for q in qs if qs.count(q) > 1})


@pytest.mark.parametrize("row", [r for r in ROWS if r.get("answerable")], ids=lambda r: r["id"])
def test_answerable_grounded(row):
    assert row["type"] != "unanswerable", row["id"]
    assert isinstance(row["doc"], str) and row["doc"], row["id"]
    path = SEEDS / f"{row['doc']}.txt"
    assert path.is_file(), f"{row['id']}: missing {path}"
    text = doc_text(row["doc"])
    assert row["answers"], f"{row['id']}: answerable row without answers"
    assert isinstance(row["evidence"], str) and row["evidence"].strip(), row["id"]
    evidence = nfc(row["evidence"])
    assert evidence in text, f"{row['id']}: evidence not found verbatim in {row['doc']}"
    for ans in row["answers"]:
        a = nfc(ans)
        assert a in text, f"{row['id']}: answer {ans!r} not in {row['doc']}"
        if row["type"] != "comparison":
            assert a in evidence, f"{row['id']}: answer {ans!r} not in evidence"


@pytest.mark.parametrize("row", [r for r in ROWS if not r.get("answerable")], ids=lambda r: r["id"])
def test_unanswerable_shape(row):
    assert row["answerable"] is False
    assert row["doc"] is None, row["id"]
    assert row["answers"] == [], row["id"]
    assert row["evidence"] is None, row["id"]
    assert row["type"] == "unanswerable", row["id"]
