"""PyTorch inference (a Hugging Face model directory), greedy, batched: the `base` and `tuned`
evaluation targets and `serve` on a directory."""

from __future__ import annotations

from pathlib import Path

from calltune.engines.base import Generation, finish, split_stops


class TorchEngine:
    """A Hugging Face model directory run by PyTorch/transformers (greedy, KV cache)."""

    def __init__(self, model_dir, *, dtype: str = "float32", device: str = "cpu", threads: int | None = None,
                 name: str = "torch"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(Path(model_dir), trust_remote_code=False)
        self.model = AutoModelForCausalLM.from_pretrained(
            Path(model_dir), dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=False,
        ).to(device).eval()

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str], constraint=None) -> Generation:
        import torch

        stop_ids, stop_texts = split_stops(self.tokenizer, stop)
        end_ids = sorted(set(stop_ids) | set(self._model_eos_ids()))
        input_ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                generation_config=self._greedy_config(max_new_tokens, end_ids, stop_texts),
                tokenizer=self.tokenizer,
                logits_processor=self._masks([constraint], input_ids.shape[1], max_new_tokens),
            )
        return finish(output[0, input_ids.shape[1]:].tolist(), end_ids, self._decode, stop)

    def _masks(self, constraints: list, prompt_length: int, max_new_tokens: int):
        """The logits processors that apply `constraints` (one per row; None: that row is free)."""
        from transformers import LogitsProcessorList

        first = next((c for c in constraints if c is not None), None)
        if first is None:
            return None
        return LogitsProcessorList([first.torch_processor(constraints, self.tokenizer, prompt_length, max_new_tokens)])

    def generate_batch(self, prompts: list[str], max_new_tokens: int, stop: list[str],
                       constraints: list | None = None) -> list[Generation]:
        """generate() for several prompts in one left-padded batch: the same greedy decoding,
        each row stopping on its own (rows that stop early are padded until the batch ends);
        `constraints`, one per prompt (or None), as generate's `constraint`."""
        import torch

        stop_ids, stop_texts = split_stops(self.tokenizer, stop)
        end_ids = sorted(set(stop_ids) | set(self._model_eos_ids()))
        config = self._greedy_config(max_new_tokens, end_ids, stop_texts)
        rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(len(r) for r in rows)
        pad = config.pad_token_id if config.pad_token_id is not None else 0  # masked out, any id will do
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         generation_config=config, tokenizer=self.tokenizer,
                                         logits_processor=self._masks(constraints or [None] * len(prompts), width,
                                                                      max_new_tokens))
        return [finish(self._until_stopped(row[width:].tolist(), end_ids, stop_texts), end_ids, self._decode, stop)
                for row in output]

    def _until_stopped(self, ids: list[int], end_ids: list[int], stop_texts: list[str]) -> list[int]:
        """A batch row's generated ids up to the token that stopped it (an end id, or the token that
        completes a stop string), dropping the padding that follows in a batch."""
        end = next((i + 1 for i, token in enumerate(ids) if token in end_ids), len(ids))
        ids = ids[:end]
        if stop_texts and any(s in self._decode(ids) for s in stop_texts):
            end = next(k for k in range(1, len(ids) + 1) if any(s in self._decode(ids[:k]) for s in stop_texts))
            ids = ids[:end]
        return ids

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _model_eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)

    def _greedy_config(self, max_new_tokens: int, end_ids: list[int], stop_texts: list[str]):
        from transformers import GenerationConfig

        pad = self.tokenizer.pad_token_id
        return GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, bos_token_id=self.tokenizer.bos_token_id,
            eos_token_id=end_ids or None, pad_token_id=pad if pad is not None else (end_ids or [None])[0],
            stop_strings=stop_texts or None,
        )


def generate_in_batches(engine: TorchEngine, prompts: list[str], max_new_tokens: int, stop: list[str],
                        batch_size: int, on_batch: Callable[[int], None] | None = None,
                        constraints: list | None = None) -> list[Generation]:
    """engine.generate_batch over `prompts` in batches of similar length, so little padding is
    computed; longest first, so running out of memory shows at once. Results in prompt order;
    `on_batch(n)` is called after each batch of n prompts (a progress bar); `constraints` (one per
    prompt, or None) as generate_batch's."""
    lengths = [len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    results: list[Generation | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        extra = {} if constraints is None else {"constraints": [constraints[i] for i in chunk]}
        for i, generation in zip(chunk, engine.generate_batch([prompts[i] for i in chunk], max_new_tokens, stop,
                                                              **extra)):
            results[i] = generation
        if on_batch:
            on_batch(len(chunk))
    return results
