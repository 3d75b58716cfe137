"""Vietnamese text primitives: NFC, modern tone placement, folding, tokens."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from rag import text as T

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
_WORD = re.compile(r"[^\W\d_]+")


def _seed_texts() -> list[str]:
    return [T.nfc(p.read_text("utf-8")) for p in sorted(SEEDS.glob("*.txt"))]


# ---------------------------------------------------------------- NFC and tone placement


def test_nfc_of_decomposed_input():
    composed = "Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023 là 2,27%"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed and len(decomposed) > len(composed)
    assert T.nfc(decomposed) == composed
    assert T.normalize(decomposed) == composed
    assert T.normalize_query(decomposed) == composed
    assert unicodedata.is_normalized("NFC", T.normalize(decomposed))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hoá", "hóa"),
        ("Thừa uỷ quyền", "Thừa ủy quyền"),
        ("cấp uỷ", "cấp ủy"),
        ("Hoà Bình", "Hòa Bình"),
        ("khoẻ mạnh", "khỏe mạnh"),
        ("thuỷ lợi", "thủy lợi"),
        ("Thừa uỷ quyền, hoá đơn", "Thừa ủy quyền, hóa đơn"),
    ],
)
def test_old_style_tones_are_modernised(old, new):
    assert T.normalize(old) == new
    assert T.normalize_query(old) == new
    # decomposed input gives the same result
    assert T.normalize(unicodedata.normalize("NFD", old)) == new


@pytest.mark.parametrize("word", ["hóa", "hoàn", "thuở", "Khuya", "người", "nghèo", "Huế", "quyền", "hoa"])
def test_modern_or_unaffected_spellings_are_left_alone(word):
    assert T.normalize(word) == word
    assert T.normalize_query(word) == word


def test_ascii_is_returned_unchanged():
    s = "ty le ho ngheo hue 2023, 2,27%"
    assert T.normalize(s) == s
    assert T.normalize_query(s) == s


def test_normalize_preserves_length_and_offsets_on_the_seeds():
    for text in _seed_texts():
        out = T.normalize(text)
        assert len(out) == len(text)
        # a tone may move between neighbouring letters, but every position keeps its base letter
        for a, b in zip(text, out):
            if a != b:
                assert a.isalpha() and b.isalpha(), (a, b)
                assert T.fold(a) == T.fold(b), (a, b)


def test_normalize_keeps_non_letters_in_place():
    s = "Thừa uỷ quyền — 2,27% (hoá)\n\tkhoẻ!"
    out = T.normalize(s)
    assert len(out) == len(s)
    assert [i for i, c in enumerate(s) if not c.isalpha()] == [i for i, c in enumerate(out) if not c.isalpha()]


def test_normalize_query_agrees_with_normalize_on_the_seed_words():
    words = sorted({w for text in _seed_texts() for w in _WORD.findall(text)})
    assert len(words) > 500
    diffs = [(w, T.normalize(w), T.normalize_query(w)) for w in words if T.normalize(w) != T.normalize_query(w)]
    print(f"normalize vs normalize_query: {len(diffs)} of {len(words)} seed words differ: {diffs}")
    assert len(diffs) <= 3, diffs


@pytest.mark.parametrize("word", ["Quỹ", "quý", "quỷ"])
def test_normalize_query_leaves_qu_clusters_alone(word):
    assert T.normalize_query(word) == word


# ---------------------------------------------------------------- folding


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Tỷ lệ hộ nghèo Huế", "ty le ho ngheo hue"),
        ("Thừa Thiên Huế", "thua thien hue"),
        ("Đà Nẵng", "da nang"),
        ("ĐẮK LẮK", "dak lak"),
        ("Nghệ An 2023: 2,27%", "nghe an 2023: 2,27%"),
        ("ty le ho ngheo", "ty le ho ngheo"),
        ("", ""),
    ],
)
def test_fold(text, folded):
    assert T.fold(text) == folded
    assert T.fold(unicodedata.normalize("NFD", text)) == folded


def test_fold_is_length_preserving_and_ascii_on_the_seeds():
    for text in _seed_texts():
        folded = T.fold(text)
        assert len(folded) == len(text)
        letters = {c for c in folded if c.isalpha()}
        assert all(c.isascii() for c in letters), sorted(c for c in letters if not c.isascii())


def test_has_diacritics():
    assert T.has_diacritics("hộ nghèo")
    assert T.has_diacritics("đi")
    assert not T.has_diacritics("ho ngheo hue 2023 2,27%")


# ---------------------------------------------------------------- tokens


def test_syllables_keep_numbers_whole():
    toks = T.syllables("Tỷ lệ hộ nghèo 2,27%, giảm 1,29%; giải quyết việc làm cho 17.034 người ngày 31/7/2023.")
    for number in ("2,27%", "1,29%", "17.034", "31/7/2023"):
        assert number in toks, toks
    assert toks[:4] == ["tỷ", "lệ", "hộ", "nghèo"]
    # punctuation after a number is not part of it
    assert "2,27%," not in toks and "31/7/2023." not in toks


def test_syllables_lowercase_and_nfc():
    toks = T.syllables(unicodedata.normalize("NFD", "THỪA Thiên HUẾ"))
    assert toks == ["thừa", "thiên", "huế"]


def test_syllables_of_seed_004_contain_the_figures():
    text = (SEEDS / "004_1400c37e89a2c6fc.txt").read_text("utf-8")
    toks = set(T.syllables(text))
    assert {"2,27%", "17.034", "1,29%", "2.325"} <= toks


def test_bigrams_and_collapse_spaces():
    assert T.bigrams(["hộ", "nghèo", "huế"]) == ["hộ_nghèo", "nghèo_huế"]
    assert T.bigrams(["một"]) == []
    assert T.collapse_spaces("  a \u00a0 b\t\tc  ") == "a b c"
