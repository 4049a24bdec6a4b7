"""Run a GGUF with llama.cpp (llama-cpp-python), greedily, keeping special tokens in the text.

llama-cpp-python's completion API detokenizes without special tokens, which would erase
FunctionGemma's <start_function_call>/<escape> markers; this runner decodes with them kept, like
the other engines, so the chat formats can parse the output. It satisfies the evaluate Engine
protocol (name, generate).
"""

from __future__ import annotations

from pathlib import Path

from calltune.evaluate.engines import Generation, cut_at_stop


class LlamaCppEngine:
    def __init__(self, gguf_path, *, threads: int | None = 2, n_ctx: int = 2048, name: str | None = None):
        from llama_cpp import Llama

        self.name = name or f"gguf-{Path(gguf_path).stem.removeprefix('model-')}"
        self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         seed=0, verbose=False)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens written in it (such as <bos>) parsed as such."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def generate_ids(self, prompt_ids: list[int], max_new_tokens: int, stop: list[str] = ()) -> list[int]:
        """Greedy ids after `prompt_ids`, ending at end-of-generation or once a stop string appears."""
        import llama_cpp

        vocab = self.llm._model.vocab  # llama-cpp-python keeps the vocab handle here
        out: list[int] = []
        for token in self.llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                       repeat_penalty=1.0, reset=True):
            out.append(token)
            if (llama_cpp.llama_vocab_is_eog(vocab, token) or len(out) >= max_new_tokens
                    or any(s in self.decode(out) for s in stop)):
                break
        return out

    def decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids, special=True).decode("utf-8", errors="replace")

    def generate(self, prompt: str, max_new_tokens: int, stop: list[str]) -> Generation:
        import llama_cpp

        ids = self.generate_ids(self.tokenize(prompt), max_new_tokens, stop)
        n_tokens = len(ids)
        if ids and llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, ids[-1]):
            ids = ids[:-1]
        return Generation(cut_at_stop(self.decode(ids), stop), n_tokens)
