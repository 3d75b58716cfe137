"""FAISS wrapper: exact search equals numpy, approximate kinds have good recall, save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from rag import dense  # noqa: E402
from rag.dense import DenseIndex, choose_kind  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    """OpenMP spinning on a busy 2-core runner makes IVF-PQ training take 10-20 s instead of 1 s."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int, clusters: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Vectors around a few centres (like real embeddings), and 100 queries drawn the same way."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    data = unit(centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim)))
    queries = unit(centres[rng.integers(0, clusters, 100)] + 0.3 * rng.standard_normal((100, dim)))
    return data, queries


def brute_force(data: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = data @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], order


# ---------------------------------------------------------------- exact search


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1001])
@pytest.mark.parametrize("k", [1, 5, 10, 2000])
def test_flat_search_equals_numpy_top_k(n, k):
    rng = np.random.default_rng(n * 31 + k)
    dim = 24
    data = unit(rng.standard_normal((n, dim)))
    index = DenseIndex.build(data)
    assert index.kind == "flat" and index.size == n
    for query in unit(rng.standard_normal((5, dim))):
        scores, ids = index.search(query, k)
        want_scores, want_ids = brute_force(data, query, k)
        assert len(ids) == min(k, n)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ids, want_ids)
        assert ids.dtype.kind == "i" and (ids >= 0).all()
        assert np.all(np.diff(scores) <= 1e-6), "best first"


def test_flat_search_with_a_stored_vector_finds_itself_first():
    rng = np.random.default_rng(3)
    data = unit(rng.standard_normal((101, 16)))
    index = DenseIndex.build(data)
    for i in (0, 50, 100):
        scores, ids = index.search(data[i], 3)
        assert ids[0] == i
        assert scores[0] == pytest.approx(1.0, abs=1e-5)


def test_search_accepts_float64_and_2d_queries():
    rng = np.random.default_rng(4)
    data = unit(rng.standard_normal((20, 8)))
    index = DenseIndex.build(data.astype(np.float64))
    q = data[3].astype(np.float64)
    _, ids = index.search(q.reshape(1, -1), 2)
    assert ids[0] == 3


def test_empty_index():
    index = DenseIndex.build(np.zeros((0, 8), np.float32))
    assert index.size == 0 and index.kind == "flat"
    scores, ids = index.search(np.ones(8, np.float32), 5)
    assert len(scores) == 0 and len(ids) == 0


@pytest.mark.parametrize("k", [0, -3])
def test_non_positive_k_returns_at_least_one(k):
    data = unit(np.random.default_rng(5).standard_normal((7, 8)))
    scores, ids = DenseIndex.build(data).search(data[2], k)
    assert list(ids) == [2]


# ---------------------------------------------------------------- approximate kinds


@pytest.mark.parametrize(("kind", "dim"), [("hnsw", 32), ("ivfpq", 16)])
def test_approximate_kinds_have_good_recall(kind, dim):
    data, queries = clustered(3000, dim, seed=7)
    index = DenseIndex.build(data, kind)
    assert index.kind == kind and index.size == 3000
    recalls = []
    for query in queries:
        _, exact = brute_force(data, query, 10)
        _, found = index.search(query, 10)
        assert len(found) == 10 and len(set(found.tolist())) == 10
        recalls.append(len(set(found.tolist()) & set(exact.tolist())) / 10)
    recall = float(np.mean(recalls))
    print(f"{kind} recall@10 on 3000 clustered vectors (dim {dim}): {recall:.3f}")
    assert recall >= 0.8


@pytest.mark.parametrize(("kind", "dim"), [("flat", 16), ("hnsw", 16), ("ivfpq", 16)])
def test_save_load_round_trip(tmp_path, kind, dim):
    data, queries = clustered(3000 if kind == "ivfpq" else 500, dim, seed=11)
    index = DenseIndex.build(data, kind)
    path = tmp_path / f"{kind}.faiss"
    index.save(path)
    loaded = DenseIndex.load(path, kind)
    assert loaded.kind == kind and loaded.size == index.size
    if kind == "hnsw":
        assert loaded.index.hnsw.efSearch == index.index.hnsw.efSearch
    if kind == "ivfpq":
        assert loaded.index.nprobe == index.index.nprobe
    for query in queries[:20]:
        s1, i1 = index.search(query, 10)
        s2, i2 = loaded.search(query, 10)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(s1, s2, rtol=1e-6)


def test_load_of_a_damaged_file_raises(tmp_path):
    data = unit(np.random.default_rng(1).standard_normal((10, 8)))
    path = tmp_path / "d.faiss"
    DenseIndex.build(data).save(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(RuntimeError):
        DenseIndex.load(path, "flat")


# ---------------------------------------------------------------- choosing a kind


def test_choose_kind_thresholds():
    assert choose_kind(0) == "flat"
    assert choose_kind(1) == "flat"
    assert choose_kind(dense.FLAT_MAX) == "flat"
    assert choose_kind(dense.FLAT_MAX + 1) == "hnsw"
    assert choose_kind(dense.HNSW_MAX) == "hnsw"
    assert choose_kind(dense.HNSW_MAX + 1) == "ivfpq"
    assert choose_kind(10_000_000) == "ivfpq"
    assert dense.FLAT_MAX < dense.HNSW_MAX


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_choose_kind_honours_an_explicit_request(kind):
    assert choose_kind(10, kind) == kind
    assert choose_kind(10_000_000, kind) == kind


@pytest.mark.parametrize("kind", ["HNSW", "ivf", "", "exact"])
def test_choose_kind_rejects_unknown_kinds(kind):
    with pytest.raises(ValueError, match="unknown FAISS index kind"):
        choose_kind(10, kind)
    with pytest.raises(ValueError):
        DenseIndex.build(np.ones((3, 8), np.float32), kind)
