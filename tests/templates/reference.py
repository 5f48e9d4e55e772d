#!/usr/bin/env python3
"""Render a chat template the way Hugging Face transformers' apply_chat_template does, as the
reference that rigllama's own rendering is compared with.

usage: tests/templates/reference.py < request.json

A request is a JSON object:
    {"template": "...", "messages": [...], "tools": [...] or null,
     "add_generation_prompt": true, "bos_token": "<bos>", "eos_token": "<eos>",
     "extra": {"enable_thinking": false, ...},
     "documents": [...] or null, "normalize_messages": false}
Only "template" and "messages" are required. Messages are passed to the template exactly as
given (OpenAI shape: an assistant's "tool_calls" with "function": {"name", "arguments"} —
whether "arguments" is an object or a JSON string is up to the caller), as transformers 4.x
does. "normalize_messages": true applies what transformers 5 does first instead: drop the
message keys whose value is null, and copy "thinking"/"reasoning" to "reasoning_content".
"bos_token"/"eos_token" stand for the tokenizer's special tokens (transformers passes its
special_tokens_map); "extra" holds the other template variables (apply_chat_template's
**kwargs), and overrides the tokens if it sets them too.

Single request in: the rendered text on stdout, byte for byte, nothing added; a template error
goes to stderr with exit status 1.
A JSON list of requests in (batch mode): a JSON list out, one entry per request, the rendered
string or {"error": "<exception type>: <message>"}; the exit status is 1 if any entry failed.

The environment is transformers' _compile_jinja_template: ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and the loopcontrols extension; a tojson filter that is json.dumps
with ensure_ascii=False and no HTML escaping (indent, separators and sort_keys passed through);
the globals raise_exception (raises TemplateError) and strftime_now (local time); and the
{% generation %} block, rendered as its body. jinja2 is imported from the system if it is
there, else installed (pinned) into the rigllama cache by pip.
"""
import json
import os
import sys
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from rigllama_fixtures import import_jinja2, logger  # noqa: E402

log = logger("reference.py")
jinja2 = import_jinja2(log)
import jinja2.ext  # noqa: E402
import jinja2.sandbox  # noqa: E402

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class GenerationBlock(jinja2.ext.Extension):
    """transformers' AssistantTracker without the tracking: {% generation %}...{% endgeneration %}
    renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def normalize(messages):
    # transformers 5: _normalize_chat_messages, then _alias_reasoning_fields.
    out = []
    for message in messages:
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


_compiled = {}


def render(env, request):
    if not isinstance(request, dict) or "template" not in request or "messages" not in request:
        raise ValueError("a request is an object with at least \"template\" and \"messages\"")
    template = _compiled.get(request["template"])
    if template is None:
        template = _compiled[request["template"]] = env.from_string(request["template"])
    messages = request["messages"]
    if request.get("normalize_messages"):
        messages = normalize(messages)
    variables = {}
    for token in ("bos_token", "eos_token"):
        if request.get(token) is not None:
            variables[token] = request[token]
    variables.update(request.get("extra") or {})
    return template.render(
        messages=messages,
        tools=request.get("tools"),
        documents=request.get("documents"),
        add_generation_prompt=bool(request.get("add_generation_prompt", False)),
        **variables,
    )


def main():
    if len(sys.argv) != 1:
        sys.exit("usage: reference.py < request.json (one request object, or a list of them)")
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    env = environment()
    out = sys.stdout.buffer
    if isinstance(request, list):
        results, failed = [], False
        for i, item in enumerate(request):
            try:
                results.append(render(env, item))
            except Exception as e:  # noqa: BLE001 - every failure is reported per request
                failed = True
                results.append({"error": f"{type(e).__name__}: {e}"})
        out.write(json.dumps(results, ensure_ascii=False).encode("utf-8"))
        out.flush()
        sys.exit(1 if failed else 0)
    try:
        text = render(env, request)
    except Exception as e:  # noqa: BLE001
        sys.exit(f"reference.py: {type(e).__name__}: {e}")
    out.write(text.encode("utf-8"))
    out.flush()


if __name__ == "__main__":
    main()
