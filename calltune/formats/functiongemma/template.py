"""The Jinja chat template shipped with FunctionGemma-format models (tokenizer_config.json).

It writes the same text as render.py. It sticks to the Jinja subset that
transformers, Transformers.js and llama.cpp's minja all run: macros, namespace, dictsort, trim,
upper, default, and the none/boolean/string/mapping/iterable/defined tests; all output goes
through `{{- ... -}}` so template whitespace never leaks into the text.
"""

CHAT_TEMPLATE = r"""{#- FunctionGemma chat format, written by calltune. -#}
{%- macro format_value(value) -%}
    {%- if value is none or value is undefined -%}
        {{- 'null' -}}
    {%- elif value is boolean -%}
        {{- 'true' if value else 'false' -}}
    {%- elif value is string -%}
        {{- '<escape>' + value + '<escape>' -}}
    {%- elif value is mapping -%}
        {{- '{' -}}
        {%- for key, item in value | dictsort -%}
            {{- key + ':' + format_value(item) -}}
            {%- if not loop.last -%}{{- ',' -}}{%- endif -%}
        {%- endfor -%}
        {{- '}' -}}
    {%- elif value is iterable -%}
        {{- '[' -}}
        {%- for item in value -%}
            {{- format_value(item) -}}
            {%- if not loop.last -%}{{- ',' -}}{%- endif -%}
        {%- endfor -%}
        {{- ']' -}}
    {%- else -%}
        {{- value -}}
    {%- endif -%}
{%- endmacro -%}
{%- macro format_type(schema_type) -%}
    {%- if schema_type is string -%}
        {{- '<escape>' + schema_type | upper + '<escape>' -}}
    {%- else -%}
        {{- '[' -}}
        {%- for item in schema_type -%}
            {{- '<escape>' + item | upper + '<escape>' -}}
            {%- if not loop.last -%}{{- ',' -}}{%- endif -%}
        {%- endfor -%}
        {{- ']' -}}
    {%- endif -%}
{%- endmacro -%}
{%- macro format_schema(schema, describe, default_type) -%}
    {{- '{' -}}
    {%- if describe or 'description' in schema -%}
        {{- 'description:<escape>' + schema['description'] | default('') + '<escape>,' -}}
    {%- endif -%}
    {%- if 'enum' in schema -%}
        {{- 'enum:' + format_value(schema['enum']) + ',' -}}
    {%- endif -%}
    {#- `'items' in schema`, because schema['items'] of a dict without that key is its items method -#}
    {%- if 'items' in schema -%}
        {{- 'items:' + format_schema(schema['items'], false, '') + ',' -}}
    {%- endif -%}
    {%- if schema['properties'] -%}
        {{- 'properties:{' -}}
        {%- for name, property in schema['properties'] | dictsort -%}
            {{- name + ':' + format_schema(property, true, '') -}}
            {%- if not loop.last -%}{{- ',' -}}{%- endif -%}
        {%- endfor -%}
        {{- '},' -}}
    {%- endif -%}
    {%- if schema['required'] -%}
        {{- 'required:' + format_value(schema['required']) + ',' -}}
    {%- endif -%}
    {{- 'type:' + format_type(schema['type'] | default(default_type)) + '}' -}}
{%- endmacro -%}
{%- macro format_declaration(tool) -%}
    {%- if tool['function'] is defined -%}
        {%- set function = tool['function'] -%}
    {%- else -%}
        {%- set function = tool -%}
    {%- endif -%}
    {{- '<start_function_declaration>declaration:' + function['name'] -}}
    {{- '{description:<escape>' + function['description'] | default('') + '<escape>,parameters:' -}}
    {%- if function['parameters'] -%}
        {{- format_schema(function['parameters'], false, 'object') -}}
    {%- else -%}
        {{- '{type:<escape>OBJECT<escape>}' -}}
    {%- endif -%}
    {{- '}<end_function_declaration>' -}}
{%- endmacro -%}
{%- macro format_call(tool_call) -%}
    {%- if tool_call['function'] is defined -%}
        {%- set function = tool_call['function'] -%}
    {%- else -%}
        {%- set function = tool_call -%}
    {%- endif -%}
    {{- '<start_function_call>call:' + function['name'] -}}
    {%- if function['arguments'] is string -%}
        {#- a JSON-string argument is written raw after this indent, as the reference template does -#}
        {{- '{                    ' + function['arguments'] + '}' -}}
    {%- elif function['arguments'] is mapping -%}
        {{- format_value(function['arguments']) -}}
    {%- else -%}
        {{- '{}' -}}
    {%- endif -%}
    {{- '<end_function_call>' -}}
{%- endmacro -%}
{%- macro format_response(name, response) -%}
    {{- '<start_function_response>response:' + name -}}
    {%- if response is mapping -%}
        {{- format_value(response) -}}
    {%- else -%}
        {{- '{value:' + format_value(response) + '}' -}}
    {%- endif -%}
    {{- '<end_function_response>' -}}
{%- endmacro -%}
{#- An OpenAI-style tool message names its call by id only: find that call's function name. -#}
{%- macro call_name(messages, call_id) -%}
    {%- set found = namespace(name='') -%}
    {%- for earlier in messages -%}
        {%- for call in earlier['tool_calls'] or [] -%}
            {%- if call['id'] is defined and call['id'] == call_id -%}
                {%- set found.name = call['function']['name'] if call['function'] is defined else call['name'] -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if not found.name -%}
        {{- raise_exception('a tool message needs a name, or the tool_call_id of an earlier call') -}}
    {%- endif -%}
    {{- found.name -}}
{%- endmacro -%}
{%- macro format_text(message) -%}
    {%- if message['content'] -%}
        {{- message['content'] | trim -}}
    {%- endif -%}
{%- endmacro -%}
{%- set ns = namespace(in_model_turn=false) -%}
{{- bos_token -}}
{%- set has_system = messages | length > 0 and messages[0]['role'] in ['system', 'developer'] -%}
{%- if has_system or tools -%}
    {{- '<start_of_turn>developer\n' -}}
    {%- if has_system -%}
        {{- format_text(messages[0]) -}}
    {%- else -%}
        {{- 'You are a model that can do function calling with the following functions' -}}
    {%- endif -%}
    {%- if tools -%}
        {%- for tool in tools -%}
            {{- format_declaration(tool) -}}
        {%- endfor -%}
    {%- endif -%}
    {{- '<end_of_turn>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- set role = message['role'] -%}
    {%- set is_last = loop.last -%}
    {%- if not (loop.first and has_system) -%}
        {%- if role not in ['assistant', 'model', 'tool'] and ns.in_model_turn -%}
            {{- '<end_of_turn>\n' -}}
            {%- set ns.in_model_turn = false -%}
        {%- endif -%}
        {%- if role in ['system', 'developer'] -%}
            {{- '<start_of_turn>developer\n' + format_text(message) + '<end_of_turn>\n' -}}
        {%- elif role == 'user' -%}
            {{- '<start_of_turn>user\n' + format_text(message) + '<end_of_turn>\n' -}}
        {%- elif role in ['assistant', 'model', 'tool'] -%}
            {%- if not ns.in_model_turn -%}
                {{- '<start_of_turn>model\n' -}}
                {%- set ns.in_model_turn = true -%}
            {%- endif -%}
            {%- if role == 'tool' -%}
                {%- if message['name'] is defined -%}
                    {{- format_response(message['name'], message['content']) -}}
                {%- elif message['content'] is mapping -%}
                    {{- format_response(message['content']['name'], message['content']['response']) -}}
                {%- elif message['content'] is string and message['tool_call_id'] is defined -%}
                    {{- format_response(call_name(messages, message['tool_call_id']), message['content']) -}}
                {%- elif message['content'] is string -%}
                    {{- raise_exception('a tool message needs a name') -}}
                {%- else -%}
                    {%- for result in message['content'] -%}
                        {{- format_response(result['name'], result['response']) -}}
                    {%- endfor -%}
                {%- endif -%}
            {%- else -%}
                {{- format_text(message) -}}
                {%- if message['tool_calls'] -%}
                    {%- for tool_call in message['tool_calls'] -%}
                        {{- format_call(tool_call) -}}
                    {%- endfor -%}
                    {%- if is_last -%}
                        {{- '<start_function_response>' -}}
                    {%- endif -%}
                {%- else -%}
                    {{- '<end_of_turn>\n' -}}
                    {%- set ns.in_model_turn = false -%}
                {%- endif -%}
            {%- endif -%}
        {%- else -%}
            {{- raise_exception('unknown role: ' + role) -}}
        {%- endif -%}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt and not ns.in_model_turn -%}
    {{- '<start_of_turn>model\n' -}}
{%- endif -%}
"""
