"""Schema-constrained decoding: replies that can only be valid calls to the declared tools, or text.

    constraint = Constraint.for_request(fmt, tools, tool_choice="auto")
    engine.generate(prompt, max_new_tokens, fmt.stop_strings, constraint=constraint)

One grammar (calltune.constrain.grammar) is built from the request's tools and the chat format
(calltune.constrain.calls) and printed per engine: GBNF for llama.cpp (calltune.constrain.gbnf:
the in-process engine's grammar sampler and llama-server's `grammar` field), llguidance's Lark for
the token masks of the PyTorch, onnxruntime and MLX engines (calltune.constrain.mask).
"""

from calltune.constrain.constraint import Constraint

__all__ = ["Constraint"]
