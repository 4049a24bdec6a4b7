"""An Ollama Modelfile next to each GGUF: FROM, prompt handling, stop strings and sampling.

FunctionGemma models use Ollama's built-in FunctionGemma renderer and parser (Ollama >= 0.13.5):
/api/chat then takes OpenAI-style `tools` and answers with `tool_calls`. Older Ollama rejects those
two lines; the file says how to fall back to raw prompts rendered by calltune, which is the same
Jinja template as the GGUF's tokenizer.chat_template (a Go TEMPLATE cannot reproduce FunctionGemma's
declaration syntax: sorted keys, upper-cased types, <escape>-quoted strings at any depth).
Other models get FROM, stops and sampling; Ollama picks their prompt template from the GGUF's
tokenizer.chat_template when it recognises it.
"""

from __future__ import annotations

import json
from pathlib import Path

from calltune.io import write_text

FUNCTIONGEMMA_PROMPT = '''\
# Ollama >= 0.13.5: FunctionGemma prompt rendering and tool-call parsing built into Ollama.
RENDERER functiongemma
PARSER functiongemma
# Older Ollama: delete the two lines above. The template below then passes prompts through
# unchanged: render them with calltune (get_format("functiongemma").prompt(messages, tools), the
# template stored in this GGUF), POST them to /api/generate with "raw": true, and read the calls
# with get_format("functiongemma").parse(response).
TEMPLATE """{{ .Prompt }}"""
'''

GENERIC_PROMPT = """\
# Ollama takes the prompt template from the GGUF's tokenizer.chat_template when it knows it; if
# not, add TEMPLATE \"\"\"{{ .Prompt }}\"\"\" and send prompts rendered by calltune with "raw": true.
"""

SAMPLING = """\
# Greedy decoding, as tool calls are evaluated. FunctionGemma's recommended chat sampling is
# temperature 1.0, top_k 64, top_p 0.95 (set them here or per request).
PARAMETER temperature 0
"""


def modelfile_path(gguf_path: Path) -> Path:
    return gguf_path.with_suffix(".Modelfile")


def render_modelfile(gguf_name: str, stop: list[str], functiongemma: bool) -> str:
    stem = gguf_name.removesuffix(".gguf")
    stops = "".join(f"PARAMETER stop {json.dumps(s)}\n" for s in stop)
    return (
        f"# Ollama Modelfile for {gguf_name}, written by calltune.\n"
        f"#   ollama create calltune-{stem.removeprefix('model-')} -f {stem}.Modelfile\n"
        f"FROM ./{gguf_name}\n\n"
        f"{FUNCTIONGEMMA_PROMPT if functiongemma else GENERIC_PROMPT}\n"
        f"{stops}\n{SAMPLING}"
    )


def write_modelfile(gguf_path, stop: list[str], functiongemma: bool) -> Path:
    """Write NAME.Modelfile next to NAME.gguf; returns its path."""
    gguf_path = Path(gguf_path)
    path = modelfile_path(gguf_path)
    write_text(path, render_modelfile(gguf_path.name, stop, functiongemma))
    return path
