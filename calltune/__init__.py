"""calltune: turn tool definitions and a few examples into a small, fast tool-calling model."""

__version__ = "0.1.0"

import logging as _logging

# transformers 4.57.6 warns that any local tokenizer saved by 4.57.3+ has Mistral's "incorrect regex
# pattern" (its version check is inverted) and applies no fix; the warning is wrong for every model
# calltune handles, so it is filtered rather than shown to users.
_logging.getLogger("transformers.tokenization_utils_base").addFilter(
    lambda record: "fix_mistral_regex" not in record.getMessage()
)
