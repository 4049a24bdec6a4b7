"""Run an exported decoder with onnxruntime: logits for a sequence, greedy decoding with the KV cache,
and an evaluation engine (calltune.engines.base.Engine) over the Transformers.js layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calltune.engines.base import Generation, finish, split_stops
from calltune.errors import InputError

ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."
PREFILL_CHUNK = 256  # prompt tokens a pass: bounds the [tokens, vocab] logits a long prompt produces


class OnnxCausalLM:
    """One onnxruntime session of an optimum `text-generation-with-past` export (batch 1)."""

    def __init__(self, model_path, threads: int | None = None):
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise InputError("ONNX model not found (run the export / quantize stage)", path=model_path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        self.past_inputs = [i for i in inputs if i.name.startswith(PAST_PREFIX)]
        self.has_position_ids = any(i.name == "position_ids" for i in inputs)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._passes: list[tuple[list[int], dict]] = []  # the previous prompt's full passes: (ids, cache after)

    def forget(self) -> None:
        """Drop the previous prompt's passes: the next prefill computes every pass."""
        self._passes = []

    def empty_cache(self) -> dict[str, np.ndarray]:
        """Zero-length past for every layer: [1, kv_heads, 0, head_dim]."""
        return {i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), dtype=ONNX_TYPES[i.type]) for i in self.past_inputs}

    def step(self, ids: list[int], cache: dict, past_len: int) -> tuple[np.ndarray, dict]:
        """Logits [len(ids), vocab] (float32) for `ids` after `past_len` cached tokens, and the new cache."""
        total = past_len + len(ids)
        feed = {"input_ids": np.array([ids], dtype=np.int64),
                "attention_mask": np.ones((1, total), dtype=np.int64), **cache}
        if self.has_position_ids:
            feed["position_ids"] = np.arange(past_len, total, dtype=np.int64)[None]
        outputs = dict(zip(self.output_names, self.session.run(None, feed)))
        new_cache = {PAST_PREFIX + name[len(PRESENT_PREFIX):]: value
                     for name, value in outputs.items() if name.startswith(PRESENT_PREFIX)}
        return outputs["logits"][0].astype(np.float32), new_cache

    def logits(self, ids: list[int]) -> np.ndarray:
        return self.step(ids, self.empty_cache(), 0)[0]

    def passes(self, ids: list[int], chunk: int, one_by_one_from: int | None = None, start: int = 0,
               cache: dict | None = None):
        """Feed `ids` through the KV cache `chunk` positions a pass (one a pass from `one_by_one_from`
        on, as decoding does), from `start` on with `cache` holding ids[:start]; yield (logits, cache)
        after each pass. A long sequence never holds [len, vocab] floats at once (1 MB a position
        with a 262k-token vocabulary)."""
        cache, end = self.empty_cache() if cache is None else cache, len(ids)
        single = end if one_by_one_from is None else one_by_one_from
        while start < end:
            stop = start + 1 if start >= single else min(start + chunk, single)
            logits, cache = self.step(ids[start:stop], cache, start)
            yield logits, cache
            start = stop

    def chunked_logits(self, ids: list[int], chunk: int, one_by_one_from: int | None = None):
        return (logits for logits, _ in self.passes(ids, chunk, one_by_one_from))

    def prefill(self, ids: list[int], chunk: int = PREFILL_CHUNK) -> tuple[np.ndarray, dict]:
        """Last-position logits [1, vocab] and the cache after the prompt `ids`, read in passes of
        `chunk` tokens; the passes it shares with the previous prompt (the tool declarations, in
        evaluation) come from their cache, not computed again (the same passes, so the same numbers)."""
        full = (len(ids) - 1) // chunk  # the last pass is always run: its logits are the answer
        previous = self._passes if self._passes and len(self._passes[0][0]) == chunk else []
        kept = 0
        while kept < min(full, len(previous)) and previous[kept][0] == ids[kept * chunk:(kept + 1) * chunk]:
            kept += 1
        self._passes = previous[:kept]
        start = kept * chunk
        for logits, cache in self.passes(ids, chunk, start=start, cache=previous[kept - 1][1] if kept else None):
            start += len(logits)
            if start <= full * chunk:  # a full pass, not the last
                self._passes.append((ids[start - chunk:start], cache))  # session.run returns new arrays: no copy
        return logits[-1:], cache

    def greedy(self, ids: list[int], max_new_tokens: int, end_ids=(), stop=lambda new_ids: False,
               mask=None) -> list[int]:
        """Greedy continuation of `ids`; ends after an id in `end_ids` (kept) or when `stop(new_ids)`.
        `mask` (a calltune.constrain.mask.TokenMask) limits each step to the tokens it allows."""
        logits, cache = self.prefill(ids)
        past, new_ids = len(ids), []
        for _ in range(max_new_tokens):
            scores = logits[-1] if mask is None else mask.apply(logits[-1])
            token = int(scores.argmax())
            if mask is not None:
                mask.consume(token)
            new_ids.append(token)
            if token in end_ids or stop(new_ids):
                break
            logits, cache = self.step([token], cache, past)
            past += 1
        return new_ids


class OnnxEngine:
    """Greedy generation from an exported directory (OUT/onnx/<file> + tokenizer files), with the
    same text conventions as calltune.engines.torch_engine.TorchEngine."""

    def __init__(self, export_dir, model_file: str = "model.onnx", threads: int | None = None, name: str = "onnx"):
        from transformers import AutoTokenizer, GenerationConfig

        export_dir = Path(export_dir)
        self.name = name
        self.model = OnnxCausalLM(export_dir / "onnx" / model_file, threads=threads)
        self.tokenizer = AutoTokenizer.from_pretrained(export_dir, trust_remote_code=False)
        eos = GenerationConfig.from_pretrained(export_dir).eos_token_id
        self.eos_ids = set([] if eos is None else [eos] if isinstance(eos, int) else eos)

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str], constraint=None) -> Generation:
        stop_ids, texts = split_stops(self.tokenizer, stop)
        end_ids = self.eos_ids | set(stop_ids)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        new_ids = self.model.greedy(ids, max_new_tokens, end_ids,
                                    stop=lambda new: any(t in self.decode(new) for t in texts),
                                    mask=None if constraint is None else constraint.token_mask(self.tokenizer, max_new_tokens))
        return finish(new_ids, end_ids, self.decode, stop)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
