"""The Jinja sandbox: transformers-compatible helpers, and templates cannot reach Python internals."""

from __future__ import annotations

import pytest

from calltune.errors import InputError
from calltune.formats.sandbox import render_template

USER = [{"role": "user", "content": "<b>&"}]


def render(source: str, **variables) -> str:
    return render_template(source, USER, **variables)


def test_tojson_does_not_html_escape_and_takes_transformers_options():
    assert render("{{ messages[0] | tojson }}") == '{"role": "user", "content": "<b>&"}'
    assert render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=(',', ':')) }}") == '{"a":2,"b":1}'
    assert render("{{ 'é' | tojson }}") == '"é"'


def test_trim_blocks_lstrip_blocks_and_loopcontrols():
    source = "  {% for i in [1, 2, 3] %}\n{% if i == 2 %}{% continue %}{% endif %}{{ i }}\n  {% endfor %}"
    assert render(source) == "1\n3\n"


def test_variables_that_apply_chat_template_passes():
    source = "{{ bos_token }}|{{ add_generation_prompt }}|{{ tools | length }}|{{ documents is none }}"
    assert render_template(source, USER, [{"name": "f"}], True, bos_token="<s>") == "<s>|True|1|True"


def test_strftime_now_is_fixed_for_reproducible_data():
    assert render("{{ strftime_now('%d %b %Y') }}") == "26 Jul 2024"


def test_generation_blocks_render_their_body():
    assert render("{% generation %}{{ messages[0].content }}{% endgeneration %}!") == "<b>&!"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ messages.append(1) }}",
    "{{ messages[0].update({'role': 'x'}) }}",
    "{{ cycler.__init__.__globals__ }}",
])
def test_unsafe_templates_are_refused(source):
    with pytest.raises(InputError, match="chat template failed") as error:
        render(source)
    assert error.value.field == "chat_template"
    assert USER == [{"role": "user", "content": "<b>&"}]


def test_private_attributes_read_as_undefined():
    assert render("{{ messages.__class__ }}|{{ messages[0].__len__ }}") == "|"


def test_raise_exception_and_syntax_errors_are_input_errors():
    with pytest.raises(InputError, match="chat template failed: no system role"):
        render("{{ raise_exception('no system role') }}")
    with pytest.raises(InputError, match=r"does not compile: .* \(template line 2\)"):
        render("ok\n{% if %}")
