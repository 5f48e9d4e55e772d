#!/usr/bin/env python3
"""A tool call end to end, in OpenAI's shapes: the model must call get_weather (tool_choice
REQUIRED, sampled at temperature 0.8 with a fixed seed), the program runs the tool, appends the
assistant's message and the tool's result to the conversation, and asks again with the tools
withdrawn (tool_choice NONE) for an answer in words. The same request as a job delivers the
call as a TOOL_CALL event. Exits non-zero on any failure.

    usage: tool_call.py MODEL.gguf     (pip install rigllama-*.whl first)

REQUIRED constrains sampling with a grammar made from the tools' schemas, so even the tiny
default model returns a call whose arguments are valid JSON with the required keys; a model
whose template has no tool format of its own gets the tools in a generic JSON format.
"""

import json
import os
import sys

import rigllama

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 20},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}]
SEED = 42  # with temperature 0.8: sampled, yet the same run every time

failures = 0


def expect(ok, what):
    global failures
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures += 1


def get_weather(city, unit):
    """The tool itself: what a game or an app would look up. (The result leaves the city out so
    the check below can find it verbatim in the next prompt, whatever characters were sampled.)"""
    del city
    return "18 degrees celsius, sunny" if unit == "celsius" else "64 degrees fahrenheit, sunny"


def checked_arguments(call):
    """The call's arguments as a dict when they are a JSON object with the required keys and a
    unit from the enum; None otherwise (reported as a failure)."""
    function = call.get("function", {})
    try:
        arguments = json.loads(function.get("arguments", ""))
    except ValueError as e:
        expect(False, f"arguments {function.get('arguments')!r} parse as JSON ({e})")
        return None
    ok = (call.get("type") == "function" and function.get("name") == "get_weather" and isinstance(arguments, dict)
          and isinstance(arguments.get("city"), str) and arguments.get("unit") in ("celsius", "fahrenheit"))
    expect(ok and call.get("id", "") != "", f"call {call.get('id')!r}: get_weather({json.dumps(arguments)})")
    return arguments if ok else None


def tool_call_as_a_job(engine, messages):
    """The same request through the job API: the call arrives as one TOOL_CALL event whose text is
    {"id", "name", "arguments": {...}} (arguments an object here, not JSON text)."""
    with engine.submit(messages=messages, tools=TOOLS, tool_choice=rigllama.ToolChoice.REQUIRED,
                       temperature=0.8, seed=SEED, max_tokens=200) as job:
        calls, texts = [], 0
        for event in job:  # waits for each event, ends after the final one
            if event.kind == rigllama.EventKind.TOOL_CALL:
                calls.append(json.loads(event.text))
            elif event.kind == rigllama.EventKind.TEXT:
                texts += 1
        usage = job.usage() if event.kind == rigllama.EventKind.DONE else None
        print(f"[job] events: {calls}")
        expect(usage is not None and usage.finish_reason == rigllama.FinishReason.TOOL_CALLS,
               f"the job ended with DONE and TOOL_CALLS ({event.kind.name}, {event.message or 'ok'})")
        expect(len(calls) >= 1 and texts == 0 and all(c.get("name") == "get_weather" and isinstance(c.get("arguments"), dict)
                                                      for c in calls),
               f"{len(calls)} TOOL_CALL events with object arguments, {texts} TEXT events")


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RIGLLAMA_MODEL")
    if not model:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"rigllama {rigllama.version()} from Python {sys.version.split()[0]}")
    problems = rigllama.check_layout()
    expect(not problems, "Structure sizes and offsets match the C header" + (": " + "; ".join(problems) if problems else ""))

    with rigllama.Engine(model) as engine:
        messages = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
        prompt = engine.apply_template(messages=messages, tools=TOOLS, tool_choice=rigllama.ToolChoice.REQUIRED)
        expect("get_weather" in prompt, f"the prompt describes the tool ({len(prompt)} characters)")

        reply, usage = engine.chat(messages=messages, tools=TOOLS, tool_choice=rigllama.ToolChoice.REQUIRED,
                                   temperature=0.8, seed=SEED, max_tokens=200)
        print(f"[turn 1] {json.dumps(reply)}")
        expect(usage.finish_reason == rigllama.FinishReason.TOOL_CALLS, f"finish_reason = {usage.finish_reason.name}")
        calls = reply.get("tool_calls") or []
        expect(reply.get("role") == "assistant" and len(calls) >= 1 and reply.get("content") is None,
               f"the reply is {len(calls)} tool call(s) and no content")
        results = []
        for call in calls:
            arguments = checked_arguments(call)
            if arguments is not None:
                results.append({"role": "tool", "tool_call_id": call["id"],
                                "content": get_weather(arguments["city"], arguments["unit"])})
        if not results or len(results) != len(calls):
            print("FAILED: no usable tool call to answer")
            return 1

        # The reply goes back as it came (content null, arguments as JSON text), then one result
        # per call; the tools stay listed, but NONE means the model may not call them again.
        messages += [reply] + results
        prompt = engine.apply_template(messages=messages, tools=TOOLS, tool_choice=rigllama.ToolChoice.NONE)
        expect(all(r["content"] in prompt for r in results), "the next prompt holds the tool results")
        answer, usage = engine.chat(messages=messages, tools=TOOLS, tool_choice=rigllama.ToolChoice.NONE,
                                    temperature=0.8, seed=SEED, max_tokens=60)
        print(f"[turn 2] {json.dumps(answer)}")
        expect(not answer.get("tool_calls") and isinstance(answer.get("content"), str) and answer["content"].strip() != "",
               f"with tool_choice NONE the answer is words, no calls (finish_reason {usage.finish_reason.name})")
        expect(usage.finish_reason in (rigllama.FinishReason.STOP, rigllama.FinishReason.LENGTH),
               f"finish_reason = {usage.finish_reason.name}")

        tool_call_as_a_job(engine, messages[:1])

    print("FAILED" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
