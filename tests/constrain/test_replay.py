"""Reusing unconstrained outputs that the constraint would not have changed."""

from __future__ import annotations

from constrain_helpers import TOOLS

from calltune.constrain import Constraint
from calltune.constrain.replay import within_grammar
from calltune.formats import get_format

FG = get_format("functiongemma")
CALL = "<start_function_call>call:get_weather{location:<escape>Oslo<escape>}<end_function_call>"


def test_outputs_inside_the_grammar_are_recognised(gemma_tokenizer):
    constraint = Constraint.for_request(FG, TOOLS)
    stops = FG.stop_strings
    assert within_grammar(constraint, gemma_tokenizer, CALL, stops, truncated=False)
    assert within_grammar(constraint, gemma_tokenizer, "Sorry, no tool for that.", stops, truncated=False)
    assert not within_grammar(constraint, gemma_tokenizer, CALL.replace("location", "city"), stops, truncated=False)
    # a call cut off by the budget is inside the grammar so far, but cannot have ended there
    assert within_grammar(constraint, gemma_tokenizer, CALL[:60], stops, truncated=True)
    assert not within_grammar(constraint, gemma_tokenizer, CALL[:60], stops, truncated=False)
    # tool_choice "required": text is not a reply it allows
    required = Constraint.for_request(FG, TOOLS, "required")
    assert not within_grammar(required, gemma_tokenizer, "Sorry.", stops, truncated=False)
