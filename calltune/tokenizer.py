"""Hugging Face tokenizers built from a GGUF vocabulary.

transformers can load GGUF weights, but the tokenizer it derives from a GGUF is wrong (Gemma
comes out as Unigram). We rebuild it from the vocabulary itself instead:

- SentencePiece-style vocabularies (`tokenizer.ggml.model == "llama"`, Gemma, Llama 2) become a
  SentencePiece `tokenizer.model` (pieces, scores, types), which transformers' own Gemma/Llama
  converter turns into a fast tokenizer and llama.cpp's converter reads back unchanged;
- byte-level BPE vocabularies (`"gpt2"`: SmolLM2, Qwen, Llama 3) become a `tokenizers` BPE with
  the GGUF's merges and the pre-tokenizer its `tokenizer.ggml.pre` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from calltune.errors import InputError

# FunctionGemma renames seven of Gemma 3's unused control tokens (FORMAT.md).
FUNCTIONGEMMA_TOKENS = {
    46: "<start_function_declaration>",
    47: "<end_function_declaration>",
    48: "<start_function_call>",
    49: "<end_function_call>",
    50: "<start_function_response>",
    51: "<end_function_response>",
    52: "<escape>",
}

# GGUF token types (llama.cpp's llama_token_type); SentencePiece uses the same numbers.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Pre-tokenizer regexes of the byte-level BPE families llama.cpp names in tokenizer.ggml.pre.
_GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BPE_PRE_REGEX = {
    "default": _GPT2_REGEX, "gpt2": _GPT2_REGEX, "smollm": _GPT2_REGEX,
    "llama-bpe": _LLAMA3_REGEX, "llama3": _LLAMA3_REGEX, "qwen2": _QWEN2_REGEX,
}


@dataclass
class GGUFVocab:
    """The tokenizer part of a GGUF file's metadata."""

    model: str  # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    tokens: list[str]
    types: list[int]
    scores: list[float] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    pre: str = "default"
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    pad_id: int | None = None
    add_bos: bool = False
    add_space_prefix: bool = False
    chat_template: str | None = None

    def token(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.tokens[token_id]


def read_gguf_vocab(path) -> GGUFVocab:
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def value(name, default=None):
        f = fields.get(name)
        return default if f is None else f.contents()

    model = value("tokenizer.ggml.model")
    if model not in ("llama", "gpt2"):
        raise InputError(f"unsupported GGUF tokenizer model {model!r} (need 'llama' or 'gpt2')",
                         path=path, field="tokenizer.ggml.model")
    return GGUFVocab(
        model=model,
        tokens=value("tokenizer.ggml.tokens"),
        types=value("tokenizer.ggml.token_type"),
        scores=value("tokenizer.ggml.scores", []),
        merges=value("tokenizer.ggml.merges", []),
        pre=value("tokenizer.ggml.pre", "default"),
        bos_id=value("tokenizer.ggml.bos_token_id"),
        eos_id=value("tokenizer.ggml.eos_token_id"),
        unk_id=value("tokenizer.ggml.unknown_token_id"),
        pad_id=value("tokenizer.ggml.padding_token_id"),
        add_bos=bool(value("tokenizer.ggml.add_bos_token", model == "llama")),
        add_space_prefix=bool(value("tokenizer.ggml.add_space_prefix", False)),
        chat_template=value("tokenizer.chat_template"),
    )


def rename_tokens(vocab: GGUFVocab, names: dict[int, str]) -> None:
    """Rename tokens in place (FunctionGemma: ids 46-52); they stay control tokens."""
    for token_id, name in names.items():
        vocab.tokens[token_id] = name
        vocab.types[token_id] = CONTROL


def sentencepiece_model(vocab: GGUFVocab) -> bytes:
    """Serialize a SentencePiece BPE ModelProto equivalent to a GGUF "llama" vocabulary."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    spec = m.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = len(vocab.tokens)
    spec.byte_fallback = BYTE in vocab.types
    spec.unk_id = vocab.unk_id if vocab.unk_id is not None else 0
    spec.bos_id = vocab.bos_id if vocab.bos_id is not None else -1
    spec.eos_id = vocab.eos_id if vocab.eos_id is not None else -1
    spec.pad_id = vocab.pad_id if vocab.pad_id is not None else -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = vocab.add_space_prefix
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    scores = vocab.scores or [0.0] * len(vocab.tokens)
    for token, score, token_type in zip(vocab.tokens, scores, vocab.types):
        piece = m.pieces.add()
        piece.piece, piece.score, piece.type = token, float(score), int(token_type)
    return m.SerializeToString()


def byte_level_bpe(vocab: GGUFVocab):
    """A `tokenizers.Tokenizer` for a GGUF "gpt2" vocabulary (byte-level BPE with merges)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    if vocab.pre not in BPE_PRE_REGEX:
        raise InputError(f"unknown byte-level pre-tokenizer {vocab.pre!r}; known: {sorted(BPE_PRE_REGEX)}",
                         field="tokenizer.ggml.pre")
    merges = [tuple(m.split(" ", 1)) for m in vocab.merges]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab.tokens)}, merges=merges,
                               ignore_merges=vocab.pre in ("llama-bpe", "llama3")))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(BPE_PRE_REGEX[vocab.pre]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=ty == CONTROL, normalized=False)
                for t, ty in zip(vocab.tokens, vocab.types) if ty in (CONTROL, USER_DEFINED)]
    tok.add_tokens(specials)
    return tok


def hf_tokenizer(vocab: GGUFVocab, workdir, chat_template: str | None = None):
    """Build a transformers fast tokenizer for `vocab`; `workdir` receives tokenizer.model if SPM."""
    from transformers import GemmaTokenizerFast, LlamaTokenizerFast, PreTrainedTokenizerFast

    specials = dict(bos_token=vocab.token(vocab.bos_id), eos_token=vocab.token(vocab.eos_id),
                    unk_token=vocab.token(vocab.unk_id), pad_token=vocab.token(vocab.pad_id))
    specials = {k: v for k, v in specials.items() if v is not None}
    if vocab.model == "llama":
        model_file = Path(workdir) / "tokenizer.model"
        model_file.write_bytes(sentencepiece_model(vocab))
        # Gemma's converter keeps spaces as-is; Llama 2's adds the dummy-prefix space.
        cls = LlamaTokenizerFast if vocab.add_space_prefix else GemmaTokenizerFast
        tok = cls(vocab_file=str(model_file), add_bos_token=vocab.add_bos, add_eos_token=False, **specials)
    else:
        tok = PreTrainedTokenizerFast(tokenizer_object=byte_level_bpe(vocab), **specials)
    tok.chat_template = chat_template if chat_template is not None else vocab.chat_template
    return tok
