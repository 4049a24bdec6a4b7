"""The grammar of a model's reply to a request with tools: calls to the declared tools or free text.

    grammar = call_grammar(fmt, tools, tool_choice="auto")

A reply is either one or more calls back to back (parallel calls), each naming a declared tool
with arguments its schema allows, or (unless tool_choice is "required" or names a function) free
text up to the end of the turn. tool_choice "none" allows free text only.

FunctionGemma: `<start_function_call>call:NAME{k:v,...}<end_function_call>` blocks, keys sorted,
then `<start_function_response>` (its stop token); text ends with `<end_of_turn>`.
Generic (a model's own template): the call text is read off the template itself by rendering a
probe call (calltune.constrain.template_calls), JSON arguments in the template's separators and
in the schema's key order; text ends with the template's end-of-turn marker.
"""

from __future__ import annotations

from calltune.constrain.grammar import Grammar, Lit, Repeat, Text, Token, alt, seq
from calltune.constrain.schema import FunctionGemmaValues, SchemaRules
from calltune.errors import InputError
from calltune.formats.functiongemma import FUNCTION_TOKENS
from calltune.formats.functiongemma.syntax import ESCAPE
from calltune.formats.messages import tool_function

TOOL_CHOICES = ("auto", "none", "required")
MAX_PARALLEL_CALLS = 8


def chosen_tools(tools: list[dict] | None, tool_choice) -> tuple[list[dict], bool, bool]:
    """(functions allowed, calls allowed, text allowed) for an OpenAI `tool_choice`:
    "auto" (default), "none", "required", or {"type": "function", "function": {"name": N}}."""
    functions = [tool_function(t) for t in tools or []]
    if tool_choice is None:
        tool_choice = "auto"
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") if isinstance(tool_choice.get("function"), dict) \
            else tool_choice.get("name")
        named = [f for f in functions if f["name"] == name]
        if not named:
            raise InputError(f"tool_choice names {name!r}, which is not among the request's tools",
                             field="tool_choice")
        return named, True, False
    if tool_choice not in TOOL_CHOICES:
        raise InputError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a named function, "
                         f"got {tool_choice!r}", field="tool_choice")
    if tool_choice == "required" and not functions:
        raise InputError('tool_choice "required" needs at least one tool', field="tool_choice")
    return functions, tool_choice != "none" and bool(functions), tool_choice != "required"


def call_grammar(fmt, tools: list[dict] | None, tool_choice="auto", *, minimal: bool = False) -> Grammar:
    """The grammar of a reply in chat format `fmt` (a calltune.formats.ChatFormat) to these tools.
    `minimal`: objects take their required keys only (the shortest way to finish a call, for
    calltune.constrain.wrapup)."""
    functions, calls_allowed, text_allowed = chosen_tools(tools, tool_choice)
    if fmt.name == "functiongemma":
        return _grammar(FunctionGemmaCalls(fmt), functions, calls_allowed, text_allowed, minimal)
    from calltune.constrain.template_calls import TemplateCalls

    return _grammar(TemplateCalls.probe(fmt), functions, calls_allowed, text_allowed, minimal)


def _grammar(shape, functions: list[dict], calls_allowed: bool, text_allowed: bool, minimal: bool) -> Grammar:
    g = Grammar()
    options = []
    if calls_allowed:
        values = SchemaRules(g, shape.values, minimal)
        one = alt(*(g.add(f"call-{f['name']}", shape.call(f["name"], values.arguments(f.get("parameters"),
                                                                                        f"args-{f['name']}")))
                    for f in functions))
        call = g.add("call", one)
        more = Repeat(seq(Lit(shape.between_calls), call), 0, MAX_PARALLEL_CALLS - 1)
        options.append(g.add("calls", seq(call, more, shape.after_calls)))
    if text_allowed:
        options.append(g.add("text", seq(Text(avoid=shape.text_avoid), shape.end_of_turn)))
    g.rules["root"] = alt(*options)
    g.rules = {"root": g.rules.pop("root"), **g.rules}
    g.closers, g.string_closers = shape.closers, shape.string_closers
    return g


class FunctionGemmaCalls:
    """FunctionGemma's call blocks (FORMAT.md)."""

    def __init__(self, fmt):
        stops = tuple(fmt.stop_strings)
        markers = tuple(dict.fromkeys((*FUNCTION_TOKENS, *stops, "<eos>")))
        self.values = FunctionGemmaValues(avoid=markers)
        self.between_calls = ""
        self.after_calls = Token("<start_function_response>")
        self.end_of_turn = Token("<end_of_turn>")
        self.text_avoid = markers
        self.closers = ("<start_function_response>", "<end_of_turn>", "<end_function_call>", "]", "}", ",", ESCAPE)
        self.string_closers = (ESCAPE,)

    def call(self, name: str, arguments):
        return seq(Token("<start_function_call>"), Lit(f"call:{name}"), arguments, Token("<end_function_call>"))
