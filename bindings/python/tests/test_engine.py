"""The package against a real model ($RIGLLAMA_MODEL): each promise of the API, one test."""

from __future__ import annotations

import ctypes
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import rigllama
from rigllama import _native
from rigllama import Engine, EventKind, FinishReason, Request, RigllamaError, Status

GREEDY: Dict[str, Any] = {"raw_prompt": True, "temperature": 0.0}


@pytest.mark.parametrize("options, named", [
    ({"thread_priority": 7}, "thread_priority 7"),
    ({"mmproj_path": "/nonexistent/mmproj.gguf"}, "mtmd"),  # this library is built without mtmd
    ({"n_seq": 65}, "n_seq 65"),
])
def test_bad_options_are_refused_naming_the_value(model: str, options: Dict[str, Any], named: str) -> None:
    with pytest.raises(RigllamaError) as raised:
        Engine(model, **options)
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert named in raised.value.message


def test_options_as_a_dataclass_and_progress(model: str) -> None:
    progress: List[float] = []
    with Engine(model, rigllama.EngineOptions(n_ctx=1024), on_progress=progress.append) as engine:
        assert engine.describe()["n_ctx"] == 1024
    assert progress and progress[-1] >= 0.99


def test_describe(engine: Engine) -> None:
    described = engine.describe()
    assert described["checkpoints"] == {"active": False, "count": 0, "bytes": 0, "max_count": 32,
                                        "max_bytes": 512 << 20}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= described["n_threads"] <= (cores or 1)
    assert described["thread_priority"] == "normal"
    assert isinstance(described["thread_priority_applied"], bool)


def _within_10_percent(planned: Dict[str, int], allocated: Dict[str, int], keys: Tuple[str, ...]) -> None:
    for key in keys:
        assert allocated[key] > 0 and abs(planned[key] - allocated[key]) <= 0.1 * allocated[key], \
            f"{key}: estimated {planned[key]}, allocated {allocated[key]}"


def test_estimate_plans_what_the_engine_allocates(model: str, engine: Engine) -> None:
    # The shared engine has the default options: the estimate for them, without loading weights.
    planned = rigllama.estimate(model)
    assert planned["n_ctx"] == 4096 == engine.describe()["n_ctx"], planned
    assert planned["devices"] and planned["devices"][0]["name"] == "CPU", planned
    total = planned["total"]
    for key in ("model_bytes", "kv_cache_bytes", "compute_bytes"):
        assert total[key] == sum(device["memory"][key] for device in planned["devices"]), planned
    _within_10_percent(total, engine.describe()["memory"], ("model_bytes", "kv_cache_bytes"))
    # Options change the plan as they change the engine: half the context, half the KV cache.
    half = rigllama.estimate(model, rigllama.EngineOptions(n_ctx=2048))
    assert half["n_ctx"] == 2048 and half["total"]["kv_cache_bytes"] < total["kv_cache_bytes"], half


def test_estimate_refuses_fit(model: str) -> None:
    with pytest.raises(RigllamaError) as raised:
        rigllama.estimate(model, fit=True)
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert "fit" in raised.value.message


def test_an_unknown_device_is_refused_naming_it_and_those_there_are(model: str) -> None:
    with pytest.raises(RigllamaError) as raised:
        Engine(model, devices=["NoSuchGPU0"])
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert "NoSuchGPU0" in raised.value.message and "CPU" in raised.value.message, raised.value.message


def test_the_cpu_as_the_device(model: str) -> None:
    planned = rigllama.estimate(model, devices=["CPU"])
    with Engine(model, rigllama.EngineOptions(devices=["CPU"])) as e:
        described = e.describe()
        assert described["devices"][0]["name"] == "CPU" and described["devices"][0]["type"] == "cpu", described
        assert described["gpu_fallback"] is None
        assert described["cpu_backend"]["variant"] == "built-in", described["cpu_backend"]  # the static build
        _within_10_percent(planned["total"], described["memory"], ("model_bytes", "kv_cache_bytes"))
        text, _ = e.complete("Once upon a time", raw_prompt=True, max_tokens=4, temperature=0.0)
        assert text


@pytest.mark.parametrize("way", ["stream", "stream_to", "submit"])
def test_every_way_of_streaming_gives_what_complete_returns(engine: Engine, way: str) -> None:
    request = Request("The three primary colors are", max_tokens=16, **GREEDY)
    expected, usage = engine.complete(request)
    pieces: List[str] = []
    if way == "stream":
        pieces = list(engine.stream(request))
    elif way == "stream_to":
        usage = engine.stream_to(request, pieces.append)
    else:
        with engine.submit(request) as job:
            pieces = list(job.pieces())
            usage = job.usage()
    assert pieces and "".join(pieces) == expected
    assert 0 < usage.completion_tokens <= 16
    assert usage.finish_reason in (FinishReason.LENGTH, FinishReason.STOP)
    assert usage.image_tokens == 0


def test_keyword_arguments_override_a_request(engine: Engine) -> None:
    request = Request("Once upon a time", max_tokens=16, **GREEDY)
    _, usage = engine.complete(request, max_tokens=2)
    assert usage.completion_tokens == 2
    with pytest.raises(TypeError, match="maxtokens"):
        engine.complete("Once upon a time", maxtokens=2)


def test_leaving_the_stream_early_cancels_the_request(engine: Engine) -> None:
    for piece in engine.stream("Once upon a time", max_tokens=256, **GREEDY):
        assert piece
        break
    # Requests run in order: had the 255 tokens left not been cancelled, this would wait for them
    # (about 5 s here).
    started = time.monotonic()
    text, _ = engine.complete("Two plus two is", max_tokens=2, **GREEDY)
    assert text and time.monotonic() - started < 2.5


def test_a_stream_ended_by_an_error_raises(engine: Engine) -> None:
    with pytest.raises(RigllamaError) as raised:
        for _ in engine.stream("Once upon a time", max_tokens=256, **GREEDY):
            engine.cancel()
    assert raised.value.status == Status.CANCELLED


def test_stream_to_stops_when_the_callback_returns_false(engine: Engine) -> None:
    seen: List[str] = []
    usage = engine.stream_to("Once upon a time", lambda piece: seen.append(piece) or len(seen) < 3,
                             max_tokens=16, **GREEDY)
    assert usage.finish_reason == FinishReason.CALLBACK and usage.completion_tokens == 3


def test_an_exception_in_the_callback_reaches_the_caller(engine: Engine) -> None:
    def boom(piece: str) -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        engine.stream_to("Once upon a time", boom, max_tokens=16, **GREEDY)
    assert engine.complete("Two plus two is", max_tokens=2, **GREEDY)[0]


def test_a_cancelled_job_ends_with_error_cancelled(engine: Engine) -> None:
    with engine.submit("Once upon a time", max_tokens=256, **GREEDY) as job:
        events = []
        for event in job:
            events.append(event)
            if event.kind == EventKind.TEXT and len(events) == 1:
                job.cancel()
        assert events[0].kind == EventKind.TEXT
        assert events[-1].final and events[-1].kind == EventKind.ERROR and events[-1].status == Status.CANCELLED
        assert job.poll(0) == events[-1]  # the final event repeats
        assert job.usage().completion_tokens < 256


def test_a_job_polled_without_blocking(engine: Engine) -> None:
    engine.pause()
    try:
        with engine.submit("The guard said", max_tokens=4, **GREEDY) as job:
            started = time.monotonic()
            assert job.poll(0).kind == EventKind.NONE
            assert time.monotonic() - started < 0.05
            engine.resume()
            assert [event.kind for event in job][-1] == EventKind.DONE
    finally:
        engine.resume()


def test_logprobs(engine: Engine) -> None:
    entries: List[Dict[str, Any]] = []
    with engine.submit("The capital of France is", max_tokens=8, n_logprobs=3, **GREEDY) as job:
        for event in job:
            if event.kind == EventKind.LOGPROBS:
                entries += json.loads(event.text)
        assert event.kind == EventKind.DONE
    assert entries
    for entry in entries:
        top = [alternative["logprob"] for alternative in entry["top_logprobs"]]
        assert entry["logprob"] <= 0 and 0 < len(top) <= 3 and top == sorted(top, reverse=True)
        # Greedy: the chosen token is the likeliest.
        assert (entry["id"], entry["token"]) == (entry["top_logprobs"][0]["id"], entry["top_logprobs"][0]["token"])


@pytest.mark.parametrize("draft_max, guesses", [(0, False), (8, True)])
def test_prompt_lookup(engine: Engine, draft_max: int, guesses: bool) -> None:
    prompt = ("Repeat exactly: the quick brown fox jumps over the lazy dog. "
              "the quick brown fox jumps over the lazy dog.")
    _, usage = engine.complete(prompt, max_tokens=48, draft_max=draft_max, **GREEDY)
    assert (usage.drafted_tokens > 0) == guesses
    assert usage.accepted_tokens <= usage.drafted_tokens


def test_embeddings(engine: Engine) -> None:
    cat, cat2, tax = (engine.embed(text) for text in (
        "The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly tax filings are due in April."))
    assert abs(sum(x * x for x in cat) ** 0.5 - 1.0) < 1e-3
    assert sum(x * y for x, y in zip(cat, cat2)) > sum(x * y for x, y in zip(cat, tax))


def test_a_snapshot_restores_the_conversation(engine: Engine) -> None:
    messages = [{"role": "user", "content": "Name three rivers in Europe."}]
    reply, _ = engine.complete(messages=messages, max_tokens=16, temperature=0.0)
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "Which is the longest?"}]
    blob = engine.save_snapshot(messages=messages)
    engine.reset()
    engine.load_snapshot(blob)
    _, usage = engine.complete(messages=messages, max_tokens=8, temperature=0.0)
    assert usage.cached_prompt_tokens > usage.prompt_tokens // 2
    with pytest.raises(RigllamaError) as raised:
        engine.load_snapshot(blob[:-1])
    assert raised.value.status == Status.INVALID_ARGUMENT


def test_two_requests_at_once_pause_and_resume(model: str) -> None:
    with Engine(model, n_seq=2) as engine:
        engine.pause()  # both start together on resume
        with engine.submit("The blacksmith told a long story about", max_tokens=12, **GREEDY) as npc, \
                engine.submit("The guard pointed to the exit and said", max_tokens=12, priority=10, **GREEDY) as player:
            engine.resume()
            texts = {"npc": 0, "player": 0}
            final: Dict[str, rigllama.Event] = {}
            paused_while_both_ran = False
            deadline = time.monotonic() + 60
            while len(final) < 2 and time.monotonic() < deadline:
                for name, job in (("npc", npc), ("player", player)):
                    event = job.poll(0)
                    if event.kind == EventKind.TEXT:
                        texts[name] += 1
                    elif event.final:
                        final.setdefault(name, event)
                if texts["npc"] and texts["player"] and not final and not paused_while_both_ran:
                    engine.pause()  # both running: a level load holds them
                    engine.resume()
                    paused_while_both_ran = True
                time.sleep(0.001)
            assert paused_while_both_ran, f"never both running: {texts}"
            assert all(event.kind == EventKind.DONE for event in final.values()) and len(final) == 2
            assert npc.usage().completion_tokens == player.usage().completion_tokens == 12


def test_a_grammar_decides_the_chat_reply(engine: Engine) -> None:
    reply, usage = engine.chat("Is the sky blue?", grammar='root ::= ("yes" | "no") "."',
                               reasoning=rigllama.Reasoning.OFF, max_tokens=8, temperature=0.0)
    assert reply["role"] == "assistant" and reply["content"] in ("yes.", "no.") and not reply.get("tool_calls")
    assert usage.finish_reason == FinishReason.STOP


WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 20},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}]


def test_a_tool_call_end_to_end(engine: Engine) -> None:
    messages: List[Dict[str, Any]] = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
    assert "get_weather" in engine.apply_template(messages=messages, tools=WEATHER,
                                                  tool_choice=rigllama.ToolChoice.REQUIRED)
    reply, usage = engine.chat(messages=messages, tools=WEATHER, tool_choice=rigllama.ToolChoice.REQUIRED,
                               temperature=0.8, seed=42, max_tokens=200)
    assert usage.finish_reason == FinishReason.TOOL_CALLS and reply["content"] is None and reply["tool_calls"]
    results = []
    for call in reply["tool_calls"]:
        arguments = json.loads(call["function"]["arguments"])
        assert call["function"]["name"] == "get_weather" and arguments["unit"] in ("celsius", "fahrenheit")
        results.append({"role": "tool", "tool_call_id": call["id"], "content": "18 degrees, sunny"})
    answer, usage = engine.chat(messages=messages + [reply] + results, tools=WEATHER,
                                tool_choice=rigllama.ToolChoice.NONE, temperature=0.8, seed=42, max_tokens=40)
    assert not answer.get("tool_calls") and answer["content"].strip()
    # As a job, the call is one TOOL_CALL event and no text.
    with engine.submit(messages=messages, tools=WEATHER, tool_choice=rigllama.ToolChoice.REQUIRED,
                       temperature=0.8, seed=42, max_tokens=200) as job:
        events = list(job)
    calls = [json.loads(event.text) for event in events if event.kind == EventKind.TOOL_CALL]
    assert calls and all(isinstance(call["arguments"], dict) for call in calls)
    assert not any(event.kind == EventKind.TEXT for event in events) and events[-1].kind == EventKind.DONE


def test_count_tokens(engine: Engine) -> None:
    assert engine.count_tokens("Hello there", raw_prompt=True) > 0


@pytest.mark.parametrize("text", ["Hello, world!", "Übergrößenträger naïve café", "日本語のテキスト", "emoji 🦀🚀",
                                  "Привет, мир! مرحبا بالعالم", "<start_of_turn>user\nHi<end_of_turn>\n"])
def test_text_to_ids_to_text_is_exact_and_counts_as_a_raw_prompt(engine: Engine, text: str) -> None:
    ids = engine.tokenize(text)
    assert ids and all(isinstance(token, int) for token in ids)
    assert engine.detokenize(ids) == text
    assert len(ids) == engine.count_tokens(text, raw_prompt=True)


def test_tokenize_grows_its_buffer_for_text_that_makes_many_ids(engine: Engine) -> None:
    digits = "0123456789" * 20  # one id per digit with this model
    ids = engine.tokenize(digits)
    assert len(ids) > len(digits) // 2 + 8, "the first buffer was enough: nothing grew"
    assert engine.detokenize(ids) == digits
    assert len(ids) == engine.count_tokens(digits, raw_prompt=True)


def test_tokenize_flags(engine: Engine) -> None:
    assert len(engine.tokenize("<start_of_turn>", add_special=False)) == 1
    plain = engine.tokenize("<start_of_turn>", add_special=False, parse_special=False)
    assert len(plain) > 1
    assert engine.detokenize(plain, add_special=False, parse_special=False) == "<start_of_turn>"
    assert engine.detokenize([]) == ""
    with pytest.raises(RigllamaError) as raised:
        engine.tokenize("a\0b")
    assert raised.value.status == Status.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", [10_000_000, -3, 2**40])
def test_an_id_outside_the_vocabulary_is_refused_naming_it(engine: Engine, bad: int) -> None:
    with pytest.raises(RigllamaError) as raised:
        engine.detokenize([2, bad])
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert f"tokens[1] = {bad}" in raised.value.message


def test_prompt_tokens_give_the_reply_the_raw_text_gives(engine: Engine) -> None:
    prompt = "The old lighthouse keeper looked out at the storm and"
    # Each from an empty cache: a prompt whose first tokens are cached evaluates only its last
    # one, whose logits round differently from a batch's, and this prompt has a near tie.
    engine.reset()
    expected, _ = engine.complete(prompt, max_tokens=16, **GREEDY)
    ids = engine.tokenize(prompt)
    engine.reset()
    text, usage = engine.complete(prompt_tokens=ids, max_tokens=16, temperature=0.0)
    assert text == expected
    assert usage.prompt_tokens == len(ids)
    with pytest.raises(RigllamaError) as raised:
        engine.complete(prompt_tokens=[ids[0], 10_000_000], max_tokens=1)
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert "prompt_tokens[1] = 10000000" in raised.value.message
    with pytest.raises(RigllamaError) as raised:
        engine.complete(prompt, prompt_tokens=ids, max_tokens=1)
    assert raised.value.status == Status.INVALID_ARGUMENT


INFILL_PREFIX = "def add(a, b):\n    "
INFILL_SUFFIX = "\n\nprint(add(1, 2))\n"


def infill_layout(engine: Engine, prefix: str, suffix: str) -> List[int]:
    """llama-server's /infill layout on the FIM model (scripts/make-fim-model gives it FIM_PRE..
    FIM_SEP as ids 6..10, and FIM_REP/FIM_SEP add a repository header):
    [FIM_REP]myproject\\n[FIM_SEP]filename\\n[BOS][FIM_PRE]prefix[FIM_SUF]suffix[FIM_MID]."""
    def plain(text: str) -> List[int]:
        return engine.tokenize(text, add_special=False, parse_special=False)
    return ([9] + plain("myproject\n") + [10] + plain("filename\n") + [2, 6] + plain(prefix) + [7] + plain(suffix)
            + [8])


def test_a_suffix_is_refused_without_fim_tokens(engine: Engine) -> None:
    with pytest.raises(RigllamaError) as raised:
        engine.complete(INFILL_PREFIX, suffix=INFILL_SUFFIX, max_tokens=8, **GREEDY)
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert "fill-in-the-middle tokens" in raised.value.message


def test_fill_in_the_middle(fim_model: str) -> None:
    with Engine(fim_model, n_ctx=1024) as engine:
        request = Request(INFILL_PREFIX, suffix=INFILL_SUFFIX, max_tokens=8, **GREEDY)
        layout = infill_layout(engine, INFILL_PREFIX, INFILL_SUFFIX)
        assert engine.count_tokens(request) == len(layout)
        assert engine.tokenize(engine.apply_template(request), add_special=False) == layout
        for prefix, suffix in (("", INFILL_SUFFIX), (INFILL_PREFIX, "")):  # either side may be empty
            assert engine.count_tokens(prefix, suffix=suffix, raw_prompt=True) == len(
                infill_layout(engine, prefix, suffix))
        with pytest.raises(RigllamaError) as raised:
            engine.count_tokens(request, raw_prompt=False)
        assert raised.value.status == Status.INVALID_ARGUMENT and "raw_prompt 1" in raised.value.message
        middle, usage = engine.complete(request)
        assert middle
        assert usage.prompt_tokens == len(layout) and usage.dropped_tokens == 0


def test_rerank(engine: Engine) -> None:
    documents = ["A cat is a small furry animal that purrs.", "Granite is a hard igneous rock.",
                 "Cats sleep for most of the day."]
    with pytest.raises(RigllamaError) as raised:
        engine.rerank("what is a cat?", documents)
    assert raised.value.status == Status.INVALID_ARGUMENT and "not a reranker" in raised.value.message
    assert engine.rerank("what is a cat?", []) == []
    with pytest.raises(TypeError):
        engine.rerank("what is a cat?", "one string")

    path = os.environ.get("RIGLLAMA_RERANK_MODEL")
    if not path:  # the scores of a reranker go unchecked (tests/python/run says so)
        return
    with Engine(path, n_ctx=1024) as reranker:
        scores = reranker.rerank("what is a cat?", documents)
    assert len(scores) == len(documents) and all(math.isfinite(score) for score in scores), scores


def test_adaptive_p_repeats_a_seeded_reply_and_changes_it(engine: Engine) -> None:
    defaults = _native.Request()  # rigllama_request_init's: off
    assert _native.lib.rigllama_request_init(ctypes.byref(defaults), ctypes.sizeof(defaults)) == Status.OK
    assert defaults.adaptive_target < 0 and math.isclose(defaults.adaptive_decay, 0.9, rel_tol=1e-6)
    seeded = Request("Once upon a time", raw_prompt=True, max_tokens=32, temperature=1.0, top_k=0, top_p=1.0,
                     min_p=0.0, seed=1234)

    def run(**fields: Any) -> str:
        engine.reset()  # each from an empty cache
        return engine.complete(seeded, **fields)[0]

    plain = run()
    first, again = run(adaptive_target=0.3), run(adaptive_target=0.3)
    assert first == again and first != plain, (first, again, plain)
    with pytest.raises(RigllamaError) as raised:
        engine.complete(seeded, adaptive_target=1.5)
    assert raised.value.status == Status.INVALID_ARGUMENT and "adaptive_target" in raised.value.message


def test_reasoning_budget_is_unlimited_by_default_and_leaves_a_plain_template_alone(engine: Engine) -> None:
    defaults = _native.Request()  # rigllama_request_init's: unlimited
    assert _native.lib.rigllama_request_init(ctypes.byref(defaults), ctypes.sizeof(defaults)) == Status.OK
    assert defaults.reasoning_budget == -1
    chat = Request("Name a colour.", max_tokens=6, temperature=0.0)  # the template applied

    def run(**fields: Any) -> Tuple[str, rigllama.Usage]:
        engine.reset()  # each from an empty cache
        return engine.complete(chat, **fields)

    plain, plain_usage = run()
    # The default model's template has no thinking block: a budget has nothing to limit.
    budgeted, usage = run(reasoning_budget=8)
    assert budgeted and budgeted == plain, (budgeted, plain)
    assert (usage.completion_tokens, usage.finish_reason) == (plain_usage.completion_tokens,
                                                              plain_usage.finish_reason)
    with pytest.raises(RigllamaError) as raised:
        engine.complete(chat, reasoning_budget=-2)
    assert raised.value.status == Status.INVALID_ARGUMENT and "reasoning_budget -2" in raised.value.message


def test_per_request_lora_replaces_the_engine_wide_adapters(engine: Engine, lora_dir: Path) -> None:
    assert Request().lora is None  # the engine-wide adapters
    defaults = _native.Request()  # rigllama_request_init's: lora_ids NULL
    assert _native.lib.rigllama_request_init(ctypes.byref(defaults), ctypes.sizeof(defaults)) == Status.OK
    assert not defaults.lora_ids and not defaults.lora_scales and defaults.n_loras == 0
    request = Request("The capital of France is", max_tokens=16, **GREEDY)

    def greedy(**fields: Any) -> str:
        engine.reset()  # each from an empty cache: greedy text repeats only from the same state
        return engine.complete(request, **fields)[0]

    lora_id = engine.add_lora(lora_dir / "gemma3-270m-lora.gguf", 0.0)  # off engine-wide
    try:
        base = greedy()
        adapted = greedy(lora=[(lora_id, 1.0)])  # on for this request alone
        assert adapted != base, adapted
        engine.set_lora_scale(lora_id, 1.0)
        assert greedy() == adapted  # lora=None: the engine-wide adapter, the same text
        assert greedy(lora=[]) == base  # no adapter at all, whatever is applied engine-wide
        for lora, named in (([(77, 1.0)], "lora_ids[0] = 77"), ([(lora_id, 1000.0)], "lora_scales[0]"),
                            ([(-1, 1.0)], "lora_ids[0] = -1")):  # the last refused before the library
            with pytest.raises(RigllamaError) as raised:
                engine.complete(request, lora=lora)
            assert raised.value.status == Status.INVALID_ARGUMENT and named in raised.value.message, raised.value
    finally:
        engine.remove_lora(lora_id)  # snapshots are refused while an adapter is applied


def test_a_control_vector_steers_the_model_until_cleared(model: str, control_vector_dir: Path) -> None:
    vector = control_vector_dir / "control-vector-random.gguf"
    with Engine(model, n_ctx=1024) as engine:
        def greedy() -> str:
            engine.reset()  # each from an empty cache: a cached prefix can round differently
            return engine.complete("The lighthouse keeper", max_tokens=16, **GREEDY)[0]

        base = greedy()
        assert engine.describe()["control_vector"] is None
        engine.set_control_vector(vector, 0.0)
        assert greedy() == base  # strength 0: exactly the base model
        engine.set_control_vector(vector, 1.0)
        assert greedy() != base
        described = engine.describe()["control_vector"]
        assert described["path"] == str(vector) and described["strength"] == 1.0, described
        assert described["layer_start"] == 1 and described["layer_end"] > 1, described  # every layer
        with pytest.raises(RigllamaError) as raised:
            engine.set_control_vector(control_vector_dir / "control-vector-wrong-width.gguf")
        assert raised.value.status == Status.INVALID_ARGUMENT and "640 wide" in raised.value.message
        with pytest.raises(RigllamaError) as raised:
            engine.set_control_vector(vector, 1.0, 3, 99)
        assert raised.value.status == Status.INVALID_ARGUMENT and "layer range 3..99" in raised.value.message
        engine.set_control_vector(vector, 0.5, 2, 5)
        assert engine.describe()["control_vector"] == {"path": str(vector), "strength": 0.5, "layer_start": 2,
                                                        "layer_end": 5}
        engine.clear_control_vector()
        assert engine.describe()["control_vector"] is None
        assert greedy() == base


def test_a_model_range_and_no_repack(model: str) -> None:
    # The GGUF as a range of its own file (offset 0, its size), without repacking: it loads
    # through llama.cpp's FILE* loader and answers; a range past the end is refused.
    size = os.path.getsize(model)
    with Engine(model, n_ctx=256, model_size=size, no_repack=True) as e:
        text, _ = e.complete("Once upon a time", raw_prompt=True, max_tokens=4, temperature=0.0)
        assert text
    with pytest.raises(RigllamaError) as raised:
        Engine(model, n_ctx=256, model_offset=size + 10)
    assert raised.value.status == Status.MODEL_LOAD_FAILED
    assert "past the end of the file" in raised.value.message
