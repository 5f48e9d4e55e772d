"""ctypes bindings for rigllama.h: local GGUF models through llama.cpp.

    import rigllama
    with rigllama.Engine("model.gguf") as engine:
        engine.stream_to("The sea is", lambda piece: print(piece, end="", flush=True),
                         raw_prompt=True, max_tokens=24, temperature=0)
        vector = engine.embed("A sentence to embed.")      # list of floats, L2-normalised
        blob = engine.save_snapshot(messages=[...])          # bytes: a "save game"
        engine.load_snapshot(blob)                           # in this process or another
    with rigllama.Engine("model.gguf", n_seq=2) as engine:  # two requests at once
        npc, player = engine.submit("...", priority=0), engine.submit("...", priority=10)
        engine.pause(); engine.resume()                      # hold everything, go on
    with rigllama.Engine("model.gguf") as engine:            # tools, OpenAI's shapes
        reply, usage = engine.chat(messages=[...], tools=[{"type": "function", "function": {...}}],
                                   tool_choice=rigllama.TOOL_CHOICE_REQUIRED)
        reply["tool_calls"][0]["function"]["arguments"]      # JSON text valid against the schema
    with rigllama.Engine("model.gguf") as engine:            # log-probabilities, LoRA adapters
        job = engine.submit("...", temperature=0, n_logprobs=3)  # EVENT_LOGPROBS events: JSON arrays
        text, usage = engine.complete("Repeat: ...", draft_max=8)  # usage.drafted_tokens, .accepted_tokens
        lora = engine.add_lora("adapter.gguf", 0.5); engine.remove_lora(lora)
    with rigllama.Engine("mamba.gguf", max_checkpoints=8) as engine:  # recurrent/hybrid models:
        json.loads(engine.describe())["checkpoints"]         # the state copies kept to resume from
    rigllama.Engine("vlm.gguf", mmproj_path="mmproj.gguf")  # images in messages: needs a library
                                                             # built with the cargo feature mtmd
    rigllama.Engine("model.gguf", thread_priority=rigllama.THREAD_PRIORITY_LOW)  # a game keeps its frames

The library is loaded from $RIGLLAMA_LIBRARY if set, else as librigllama.so through the
dynamic linker (LD_LIBRARY_PATH, the ld.so cache). Structures mirror the C structs field by
field; check_layout() compares them with the x86-64 sizes and offsets that
tests/c/test_contract prints. Strings cross as UTF-8 bytes. A failed call raises
RigllamaError with the status and rigllama_last_error(), read on the thread that made the
call (ctypes releases the GIL during calls, but a Python thread stays on one OS thread).
"""

import ctypes
import ctypes.util
import json
import os

__all__ = ["Engine", "Job", "RigllamaError", "check_layout", "default_options", "version"]

# Status codes, event kinds and finish reasons: the numbers in rigllama.h, which never change.
OK, NULL_ARGUMENT, INVALID_ARGUMENT, MODEL_LOAD_FAILED, CONTEXT_OVERFLOW = 0, 1, 2, 3, 4
CANCELLED, BUSY, SHUT_DOWN, INTERNAL = 5, 6, 7, 8
EVENT_NONE, EVENT_TEXT, EVENT_DONE, EVENT_ERROR = 0, 1, 2, 3
EVENT_REASONING, EVENT_TOOL_CALL = 4, 5  # v0.2: text is a reasoning piece / one whole call as JSON
EVENT_LOGPROBS = 6  # v0.2, only when n_logprobs > 0: text is a JSON array of OpenAI logprobs.content entries
FINISH_STOP, FINISH_LENGTH, FINISH_CALLBACK = 0, 1, 2
FINISH_TOOL_CALLS = 3  # v0.2
CONTEXT_OVERFLOW_FAIL, CONTEXT_OVERFLOW_SHIFT = 0, 1
TOOL_CHOICE_AUTO, TOOL_CHOICE_NONE, TOOL_CHOICE_REQUIRED = 0, 1, 2  # v0.2
REASONING_AUTO, REASONING_OFF, REASONING_ON = 0, 1, 2  # v0.2
# v0.2: KV cache data types (type_k, type_v); a quantized type_v needs flash attention AUTO or ON.
KV_TYPE_F16, KV_TYPE_F32, KV_TYPE_BF16, KV_TYPE_Q8_0, KV_TYPE_Q4_0 = 0, 1, 2, 3, 4
KV_TYPE_Q4_1, KV_TYPE_Q5_0, KV_TYPE_Q5_1, KV_TYPE_IQ4_NL = 5, 6, 7, 8
FLASH_ATTENTION_AUTO, FLASH_ATTENTION_OFF, FLASH_ATTENTION_ON = 0, 1, 2  # v0.2
MIROSTAT_OFF, MIROSTAT_V1, MIROSTAT_V2 = 0, 1, 2  # v0.2
THREAD_PRIORITY_NORMAL, THREAD_PRIORITY_LOW = 0, 1  # v0.3: LOW: the engine's threads yield to the host's
MAX_TOKENS_UNLIMITED = SEED_RANDOM = 0xFFFFFFFF

c_status = ctypes.c_int32
ProgressCallback = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_float)
# piece is declared as POINTER(c_char), not c_char_p, so ctypes does not stop at the NUL:
# exactly piece_len bytes are read with string_at.
TokenCallback = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t)


class EngineOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_ctx", ctypes.c_uint32),
        ("n_batch", ctypes.c_uint32),
        ("n_threads", ctypes.c_int32),
        ("n_gpu_layers", ctypes.c_int32),
        ("model_path", ctypes.c_char_p),
        ("chat_template", ctypes.c_char_p),
        ("on_progress", ProgressCallback),
        ("progress_user_data", ctypes.c_void_p),
        ("context_overflow", ctypes.c_int32),  # v0.2
        ("n_seq", ctypes.c_uint32),  # v0.2: requests served at once, 1..64
        ("type_k", ctypes.c_int32),  # v0.2: KV_TYPE_*
        ("type_v", ctypes.c_int32),  # v0.2: KV_TYPE_*
        ("flash_attention", ctypes.c_int32),  # v0.2: FLASH_ATTENTION_*
        ("fit", ctypes.c_uint32),  # v0.2: 0/1, llama.cpp's fitting picks GPU layers and n_ctx
        ("fit_min_ctx", ctypes.c_uint32),  # v0.2: the smallest context the fit may choose
        ("fit_margins_mib", ctypes.POINTER(ctypes.c_uint32)),  # v0.2: MiB left free per device
        ("n_fit_margins_mib", ctypes.c_size_t),  # v0.2
        # v0.2: state checkpoints of recurrent and hybrid models (others ignore both): the most
        # bytes they hold together (default 512 MiB) and the most kept (default 32; 0 = none).
        ("max_checkpoint_bytes", ctypes.c_uint64),
        ("max_checkpoints", ctypes.c_uint32),
        # v0.2: UTF-8 path of a multimodal projector (mmproj GGUF) for this model, or None
        # (default); a library built without the mtmd cargo feature refuses it (INVALID_ARGUMENT).
        ("mmproj_path", ctypes.c_char_p),
        ("thread_priority", ctypes.c_int32),  # v0.3: THREAD_PRIORITY_* (default NORMAL)
    ]


class Request(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("max_tokens", ctypes.c_uint32),
        ("temperature", ctypes.c_float),
        ("top_p", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("seed", ctypes.c_uint32),
        ("raw_prompt", ctypes.c_uint32),
        ("prompt", ctypes.c_char_p),
        ("system_prompt", ctypes.c_char_p),
        ("messages_json", ctypes.c_char_p),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("n_stop", ctypes.c_size_t),
        ("priority", ctypes.c_int32),  # v0.2: higher runs first
        ("grammar", ctypes.c_char_p),  # v0.2: GBNF the reply must match
        ("json_schema", ctypes.c_char_p),  # v0.2: the reply is one JSON value valid against it
        ("tools_json", ctypes.c_char_p),  # v0.2: OpenAI tools array
        ("tool_choice", ctypes.c_int32),  # v0.2: TOOL_CHOICE_*
        ("reasoning", ctypes.c_int32),  # v0.2: REASONING_*
        ("presence_penalty", ctypes.c_float),  # v0.2 sampling, from here to mirostat_eta
        ("frequency_penalty", ctypes.c_float),
        ("penalty_last_n", ctypes.c_int32),
        ("dry_multiplier", ctypes.c_float),
        ("dry_base", ctypes.c_float),
        ("dry_allowed_length", ctypes.c_int32),
        ("dry_penalty_last_n", ctypes.c_int32),
        ("xtc_probability", ctypes.c_float),
        ("xtc_threshold", ctypes.c_float),
        ("typical_p", ctypes.c_float),
        ("top_n_sigma", ctypes.c_float),
        ("mirostat", ctypes.c_int32),  # MIROSTAT_*
        ("mirostat_tau", ctypes.c_float),
        ("mirostat_eta", ctypes.c_float),
        ("n_logprobs", ctypes.c_uint32),  # v0.2: 1..20 = EVENT_LOGPROBS events with this many alternatives
        ("logit_bias_json", ctypes.c_char_p),  # v0.2: {"token id": bias} or [[id or text, bias or false]]
        ("dry_sequence_breakers", ctypes.POINTER(ctypes.c_char_p)),  # v0.2
        ("n_dry_sequence_breakers", ctypes.c_size_t),  # v0.2
        ("draft_max", ctypes.c_uint32),  # v0.2: prompt-lookup speculation, up to this many guesses (0 = off, <= 64)
    ]


class Usage(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("finish_reason", ctypes.c_int32),
        ("prompt_tokens", ctypes.c_uint32),
        ("cached_prompt_tokens", ctypes.c_uint32),
        ("completion_tokens", ctypes.c_uint32),
        ("seed", ctypes.c_uint32),
        ("prompt_ms", ctypes.c_double),
        ("generation_ms", ctypes.c_double),
        ("dropped_tokens", ctypes.c_uint32),  # v0.2
        ("drafted_tokens", ctypes.c_uint32),  # v0.2: guessed by prompt-lookup speculation and evaluated
        ("accepted_tokens", ctypes.c_uint32),  # v0.2: of those, confirmed by the sampler
        ("image_tokens", ctypes.c_uint32),  # v0.2: of prompt_tokens, those standing for images
    ]

    def __repr__(self):
        names = [name for name, _ in self._fields_ if name != "struct_size"]
        return "Usage(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"


class Event(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kind", ctypes.c_int32),
        ("status", c_status),
        ("text", ctypes.POINTER(ctypes.c_char)),
        ("text_len", ctypes.c_size_t),
        ("message", ctypes.c_char_p),
    ]


# sizeof and offsetof of the C structs on x86-64 (tests/c/test_contract prints them).
C_LAYOUT_X86_64 = {
    EngineOptions: (136, {"struct_size": 0, "n_ctx": 4, "n_batch": 8, "n_threads": 12, "n_gpu_layers": 16,
                          "model_path": 24, "chat_template": 32, "on_progress": 40, "progress_user_data": 48,
                          "context_overflow": 56, "n_seq": 60, "type_k": 64, "type_v": 68, "flash_attention": 72,
                          "fit": 76, "fit_min_ctx": 80, "fit_margins_mib": 88, "n_fit_margins_mib": 96,
                          "max_checkpoint_bytes": 104, "max_checkpoints": 112, "mmproj_path": 120,
                          "thread_priority": 128}),
    Request: (216, {"struct_size": 0, "max_tokens": 4, "temperature": 8, "top_p": 12, "top_k": 16, "min_p": 20,
                    "repeat_penalty": 24, "seed": 28, "raw_prompt": 32, "prompt": 40, "system_prompt": 48,
                    "messages_json": 56, "stop": 64, "n_stop": 72, "priority": 80, "grammar": 88,
                    "json_schema": 96, "tools_json": 104, "tool_choice": 112, "reasoning": 116,
                    "presence_penalty": 120, "frequency_penalty": 124, "penalty_last_n": 128, "dry_multiplier": 132,
                    "dry_base": 136, "dry_allowed_length": 140, "dry_penalty_last_n": 144, "xtc_probability": 148,
                    "xtc_threshold": 152, "typical_p": 156, "top_n_sigma": 160, "mirostat": 164,
                    "mirostat_tau": 168, "mirostat_eta": 172, "n_logprobs": 176, "logit_bias_json": 184,
                    "dry_sequence_breakers": 192, "n_dry_sequence_breakers": 200, "draft_max": 208}),
    Usage: (56, {"struct_size": 0, "finish_reason": 4, "prompt_tokens": 8, "cached_prompt_tokens": 12,
                 "completion_tokens": 16, "seed": 20, "prompt_ms": 24, "generation_ms": 32, "dropped_tokens": 40,
                 "drafted_tokens": 44, "accepted_tokens": 48, "image_tokens": 52}),
    Event: (40, {"struct_size": 0, "kind": 4, "status": 8, "text": 16, "text_len": 24, "message": 32}),
}


def check_layout():
    """Returns a list of mismatches between these Structures and the C layout (x86-64 only)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return []
    problems = []
    for struct, (size, offsets) in C_LAYOUT_X86_64.items():
        if ctypes.sizeof(struct) != size:
            problems.append(f"sizeof({struct.__name__}) is {ctypes.sizeof(struct)}, C says {size}")
        if [name for name, _ in struct._fields_] != list(offsets):
            problems.append(f"{struct.__name__} fields differ from C")
        for name, offset in offsets.items():
            actual = getattr(struct, name).offset
            if actual != offset:
                problems.append(f"{struct.__name__}.{name} at {actual}, C says {offset}")
    return problems


def _load():
    path = os.environ.get("RIGLLAMA_LIBRARY") or ctypes.util.find_library("rigllama") or "librigllama.so"
    lib = ctypes.CDLL(path)
    P = ctypes.POINTER
    engine_p, job_p = ctypes.c_void_p, ctypes.c_void_p
    signatures = {
        "rigllama_version": (ctypes.c_char_p, []),
        "rigllama_status_str": (ctypes.c_char_p, [c_status]),
        "rigllama_last_error": (ctypes.c_char_p, []),
        "rigllama_engine_options_init": (c_status, [P(EngineOptions), ctypes.c_size_t]),
        "rigllama_request_init": (c_status, [P(Request), ctypes.c_size_t]),
        "rigllama_usage_init": (c_status, [P(Usage), ctypes.c_size_t]),
        "rigllama_event_init": (c_status, [P(Event), ctypes.c_size_t]),
        "rigllama_engine_create": (c_status, [P(EngineOptions), P(engine_p)]),
        "rigllama_engine_destroy": (None, [engine_p]),
        "rigllama_engine_complete": (c_status, [engine_p, P(Request), P(ctypes.c_void_p), P(Usage)]),
        "rigllama_engine_chat": (c_status, [engine_p, P(Request), P(ctypes.c_void_p), P(Usage)]),
        "rigllama_engine_apply_template": (c_status, [engine_p, P(Request), P(ctypes.c_void_p)]),
        "rigllama_engine_stream": (c_status, [engine_p, P(Request), TokenCallback, ctypes.c_void_p, P(Usage)]),
        "rigllama_engine_cancel": (c_status, [engine_p]),
        "rigllama_engine_pause": (c_status, [engine_p]),
        "rigllama_engine_resume": (c_status, [engine_p]),
        "rigllama_engine_reset": (c_status, [engine_p]),
        "rigllama_engine_describe": (c_status, [engine_p, P(ctypes.c_void_p)]),
        "rigllama_engine_count_tokens": (c_status, [engine_p, P(Request), P(ctypes.c_uint32)]),
        "rigllama_string_free": (None, [ctypes.c_void_p]),
        # out_data is a c_void_p, not POINTER(c_uint8), so the pointer survives to bytes_free.
        "rigllama_engine_save_snapshot": (c_status, [engine_p, P(Request), P(ctypes.c_void_p), P(ctypes.c_size_t)]),
        "rigllama_engine_load_snapshot": (c_status, [engine_p, ctypes.c_char_p, ctypes.c_size_t]),
        "rigllama_bytes_free": (None, [ctypes.c_void_p]),
        "rigllama_engine_embed": (c_status, [engine_p, ctypes.c_char_p, P(ctypes.c_float), ctypes.c_size_t,
                                             P(ctypes.c_size_t)]),
        "rigllama_engine_add_lora": (c_status, [engine_p, ctypes.c_char_p, ctypes.c_float, P(ctypes.c_uint32)]),
        "rigllama_engine_set_lora_scale": (c_status, [engine_p, ctypes.c_uint32, ctypes.c_float]),
        "rigllama_engine_remove_lora": (c_status, [engine_p, ctypes.c_uint32]),
        "rigllama_engine_submit": (c_status, [engine_p, P(Request), P(job_p)]),
        "rigllama_job_poll": (c_status, [job_p, ctypes.c_uint32, P(Event)]),
        "rigllama_job_usage": (c_status, [job_p, P(Usage)]),
        "rigllama_job_cancel": (c_status, [job_p]),
        "rigllama_job_free": (None, [job_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


_lib = _load()


class RigllamaError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{_lib.rigllama_status_str(status).decode()}: {message}")
        self.status = status
        self.message = message


def _check(status):
    if status != OK:
        raise RigllamaError(status, _lib.rigllama_last_error().decode("utf-8", "replace"))


def _take_string(ptr):
    """Copies a library-owned string and frees it with rigllama_string_free."""
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        _lib.rigllama_string_free(ptr)


def version():
    return _lib.rigllama_version().decode()


def _json_text(value):
    """A JSON argument given as a Python value or as JSON text, as UTF-8 bytes (None stays None)."""
    if value is None:
        return None
    return (value if isinstance(value, str) else json.dumps(value)).encode("utf-8")


# v0.2: the Request fields that _request takes as keyword arguments of the same name, as they are.
_SAMPLING_FIELDS = ("presence_penalty", "frequency_penalty", "penalty_last_n", "dry_multiplier", "dry_base",
                    "dry_allowed_length", "dry_penalty_last_n", "xtc_probability", "xtc_threshold", "typical_p",
                    "top_n_sigma", "mirostat", "mirostat_tau", "mirostat_eta")


def _request(prompt, *, raw_prompt=False, max_tokens=None, temperature=None, seed=None, system_prompt=None,
             messages=None, priority=None, grammar=None, json_schema=None, tools=None, tool_choice=None,
             reasoning=None, n_logprobs=None, logit_bias=None, dry_sequence_breakers=None, draft_max=None,
             **sampling):
    """messages: a conversation as a list of {"role": ..., "content": ...} dicts, or JSON text (sent
    as messages_json; a reply from chat() and {"role": "tool", "tool_call_id": ..., "content": ...}
    results may be appended as they are); prompt, if also given, is appended as the last user
    turn. priority: higher runs first (default 0); on an engine with n_seq > 1 a waiting request
    of higher priority pauses the lowest running one, which resumes after.
    v0.2: grammar: GBNF text the reply must match. json_schema: a dict or JSON text; the reply
    is one JSON value valid against it. tools: OpenAI's tools array, as a list or JSON text.
    tool_choice: TOOL_CHOICE_AUTO (default), _NONE or _REQUIRED (at least one call, valid
    against its schema even from a small model). reasoning: REASONING_AUTO (default), _OFF or
    _ON, the template's thinking switch.
    v0.2 sampling: n_logprobs: 1..20 makes a job deliver EVENT_LOGPROBS events (this many
    alternatives per token). logit_bias: {token_id: bias} or [[token_id or text, bias or
    False], ...], or JSON text. dry_sequence_breakers: a list of strings. And, by name, the
    numbers in _SAMPLING_FIELDS: presence_penalty, frequency_penalty, penalty_last_n, dry_*,
    xtc_*, typical_p, top_n_sigma, mirostat (MIROSTAT_*), mirostat_tau, mirostat_eta.
    v0.2: draft_max: prompt-lookup speculative decoding, up to this many tokens guessed from
    the conversation's earlier text and verified in one decode (0 = off, the default; at most
    64; 8 is what the bench measures); usage.drafted_tokens and usage.accepted_tokens report
    what it did. Near ties can resolve differently from plain decoding (batched rounding)."""
    unknown = set(sampling) - set(_SAMPLING_FIELDS)
    if unknown:
        raise TypeError(f"unknown request arguments: {', '.join(sorted(unknown))}")
    req = Request()
    _check(_lib.rigllama_request_init(ctypes.byref(req), ctypes.sizeof(req)))
    # The bytes assigned to c_char_p fields are kept alive by req itself (its _objects).
    req.prompt = prompt.encode("utf-8") if prompt is not None else None
    req.messages_json = _json_text(messages)
    req.system_prompt = system_prompt.encode("utf-8") if system_prompt is not None else None
    req.grammar = grammar.encode("utf-8") if grammar is not None else None
    req.json_schema = _json_text(json_schema)
    req.tools_json = _json_text(tools)
    req.logit_bias_json = _json_text(logit_bias)
    if dry_sequence_breakers is not None:
        req.dry_sequence_breakers = (ctypes.c_char_p * len(dry_sequence_breakers))(
            *[b.encode("utf-8") for b in dry_sequence_breakers])
        req.n_dry_sequence_breakers = len(dry_sequence_breakers)
    req.raw_prompt = 1 if raw_prompt else 0
    if max_tokens is not None:
        req.max_tokens = max_tokens
    if temperature is not None:
        req.temperature = temperature
    if seed is not None:
        req.seed = seed
    if priority is not None:
        req.priority = priority
    if tool_choice is not None:
        req.tool_choice = tool_choice
    if reasoning is not None:
        req.reasoning = reasoning
    if n_logprobs is not None:
        req.n_logprobs = n_logprobs
    if draft_max is not None:
        req.draft_max = draft_max
    for name, value in sampling.items():
        setattr(req, name, value)
    return req


def default_options():
    """An EngineOptions filled by rigllama_engine_options_init: the library's defaults."""
    options = EngineOptions()
    _check(_lib.rigllama_engine_options_init(ctypes.byref(options), ctypes.sizeof(options)))
    return options


def _usage():
    usage = Usage()
    _check(_lib.rigllama_usage_init(ctypes.byref(usage), ctypes.sizeof(usage)))
    return usage


class Engine:
    """One loaded model with its worker thread. Use as a context manager, or call close()."""

    def __init__(self, model_path, *, n_ctx=None, on_progress=None, context_overflow=None, n_seq=None,
                 type_k=None, type_v=None, flash_attention=None, fit=None, fit_min_ctx=None, fit_margins_mib=None,
                 max_checkpoints=None, max_checkpoint_bytes=None, mmproj_path=None, thread_priority=None):
        """context_overflow: CONTEXT_OVERFLOW_FAIL (default) or CONTEXT_OVERFLOW_SHIFT (drop the
        oldest turns of a conversation that outgrows n_ctx). n_seq: requests served at once,
        advancing together (default 1, at most 64); more wait, in priority order.
        v0.2: type_k, type_v: the KV cache's data types, KV_TYPE_* (default F16).
        flash_attention: FLASH_ATTENTION_AUTO (default), _OFF or _ON. fit: True lets llama.cpp's
        fitting choose the GPU layers and, if needed, a smaller context, not below fit_min_ctx
        (default 4096), leaving fit_margins_mib (a list: one value for every device, or one per
        device; default 1024) free. max_checkpoints, max_checkpoint_bytes: state checkpoints of
        recurrent and hybrid models (others ignore them), copies of the state at the end of each
        prompt and reply that a request sharing a prefix resumes from: at most max_checkpoints
        (default 32; 0 = none) holding at most max_checkpoint_bytes together (default 512 MiB);
        describe()'s "checkpoints" reports what is kept. mmproj_path: the multimodal projector
        (mmproj GGUF) made for this model, loaded with it, so that images in messages (OpenAI
        image_url parts) reach it; usage.image_tokens counts the prompt tokens standing for
        them. Needs a library built with the cargo feature mtmd: otherwise RigllamaError
        (INVALID_ARGUMENT), before any model loads.
        v0.3: thread_priority: THREAD_PRIORITY_NORMAL (default) or THREAD_PRIORITY_LOW (the
        engine's threads yield to the host's, so a game's frame loop keeps its frames);
        describe()'s "thread_priority_applied" says whether the system applied it."""
        options = default_options()
        options.model_path = os.fsencode(model_path)
        if n_ctx is not None:
            options.n_ctx = n_ctx
        if context_overflow is not None:
            options.context_overflow = context_overflow
        if n_seq is not None:
            options.n_seq = n_seq
        if type_k is not None:
            options.type_k = type_k
        if type_v is not None:
            options.type_v = type_v
        if flash_attention is not None:
            options.flash_attention = flash_attention
        if fit is not None:
            options.fit = 1 if fit else 0
        if fit_min_ctx is not None:
            options.fit_min_ctx = fit_min_ctx
        if fit_margins_mib is not None:
            # Kept alive by options (its _objects) until create returns; the library copies it.
            options.fit_margins_mib = (ctypes.c_uint32 * len(fit_margins_mib))(*fit_margins_mib)
            options.n_fit_margins_mib = len(fit_margins_mib)
        if max_checkpoints is not None:
            options.max_checkpoints = max_checkpoints
        if max_checkpoint_bytes is not None:
            options.max_checkpoint_bytes = max_checkpoint_bytes
        if mmproj_path is not None:
            options.mmproj_path = os.fsencode(mmproj_path)  # kept alive by options until create returns
        if thread_priority is not None:
            options.thread_priority = thread_priority
        if on_progress is not None:
            # Kept referenced until create returns: the library calls it only during create.
            progress = ProgressCallback(lambda _user_data, fraction: 0 if on_progress(fraction) is not False else 1)
            options.on_progress = progress
        handle = ctypes.c_void_p()
        _check(_lib.rigllama_engine_create(ctypes.byref(options), ctypes.byref(handle)))
        self._handle = handle

    def close(self):
        if self._handle:
            _lib.rigllama_engine_destroy(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def complete(self, prompt=None, **kw):
        """Returns (text, usage): the reply's content only. Keyword arguments: raw_prompt,
        max_tokens, temperature, seed, system_prompt, messages, priority, grammar, json_schema,
        tools, tool_choice, reasoning, and v0.2's sampling ones and draft_max (see _request)."""
        req, usage, text = _request(prompt, **kw), _usage(), ctypes.c_void_p()
        _check(_lib.rigllama_engine_complete(self._handle, ctypes.byref(req), ctypes.byref(text), ctypes.byref(usage)))
        return _take_string(text), usage

    def chat(self, prompt=None, **kw):
        """Returns (message, usage): the assistant's reply as OpenAI's message dict,
        {"role": "assistant", "content": str or None, "reasoning_content": str (when any),
        "tool_calls": [{"id", "type": "function", "function": {"name", "arguments": JSON text}}]
        (when any)}. usage.finish_reason is FINISH_TOOL_CALLS when it ended in calls. Append the
        message to messages as it is, then one {"role": "tool", ...} result per call, for the
        next turn. Keyword arguments as complete()."""
        req, usage, out = _request(prompt, **kw), _usage(), ctypes.c_void_p()
        _check(_lib.rigllama_engine_chat(self._handle, ctypes.byref(req), ctypes.byref(out), ctypes.byref(usage)))
        return json.loads(_take_string(out)), usage

    def apply_template(self, prompt=None, **kw):
        """The exact prompt text the model would be given for this request (chat template
        applied, tools rendered), without running it."""
        req, out = _request(prompt, **kw), ctypes.c_void_p()
        _check(_lib.rigllama_engine_apply_template(self._handle, ctypes.byref(req), ctypes.byref(out)))
        return _take_string(out)

    def stream_to(self, prompt, on_piece, **kw):
        """Calls on_piece(str) with each piece on this thread; returns the usage. on_piece
        returning False stops generation (FINISH_CALLBACK); an exception in it stops
        generation and is re-raised here (it cannot propagate through the C frames)."""
        req, usage = _request(prompt, **kw), _usage()
        raised = []

        def trampoline(_user_data, piece, piece_len):
            try:
                return 1 if on_piece(ctypes.string_at(piece, piece_len).decode("utf-8")) is False else 0
            except BaseException as e:  # noqa: BLE001 - handed back to the caller below
                raised.append(e)
                return 1

        callback = TokenCallback(trampoline)  # referenced until stream returns
        status = _lib.rigllama_engine_stream(self._handle, ctypes.byref(req), callback, None, ctypes.byref(usage))
        if raised:
            raise raised[0]
        _check(status)
        return usage

    def submit(self, prompt, **kw):
        req, handle = _request(prompt, **kw), ctypes.c_void_p()
        _check(_lib.rigllama_engine_submit(self._handle, ctypes.byref(req), ctypes.byref(handle)))
        return Job(handle)

    def cancel(self):
        _check(_lib.rigllama_engine_cancel(self._handle))

    def pause(self):
        """Holds the worker between two decode steps (returns within one step): running requests
        keep their state, new ones wait; cancel and close still work. For moments that need every
        core."""
        _check(_lib.rigllama_engine_pause(self._handle))

    def resume(self):
        """Lets a paused engine go on where it stopped."""
        _check(_lib.rigllama_engine_resume(self._handle))

    def reset(self):
        """Empties the KV cache."""
        _check(_lib.rigllama_engine_reset(self._handle))

    def describe(self):
        """The engine as JSON text (rigllama_engine_describe): the model, n_ctx, n_seq, memory,
        checkpoints ({"active", "count", "bytes", "max_count", "max_bytes"}), n_threads (the
        threads used), thread_priority ("normal" or "low") and thread_priority_applied, ..."""
        out = ctypes.c_void_p()
        _check(_lib.rigllama_engine_describe(self._handle, ctypes.byref(out)))
        return _take_string(out)

    def count_tokens(self, prompt=None, **kw):
        req, n = _request(prompt, **kw), ctypes.c_uint32()
        _check(_lib.rigllama_engine_count_tokens(self._handle, ctypes.byref(req), ctypes.byref(n)))
        return n.value

    def save_snapshot(self, prompt=None, **kw):
        """The KV cache of the longest cached prefix of this request's prompt, as bytes (a
        "save game"): pass the conversation's next request (messages=..., ending with a user
        turn). Keep the messages yourself; the snapshot only saves evaluating them again."""
        req, data, length = _request(prompt, **kw), ctypes.c_void_p(), ctypes.c_size_t()
        _check(_lib.rigllama_engine_save_snapshot(self._handle, ctypes.byref(req), ctypes.byref(data),
                                                  ctypes.byref(length)))
        try:
            return ctypes.string_at(data, length.value)
        finally:
            _lib.rigllama_bytes_free(data)

    def load_snapshot(self, blob):
        """Makes a snapshot from save_snapshot (this process or another) the KV cache. A blob
        from another model, or a damaged one, raises RigllamaError (INVALID_ARGUMENT)."""
        blob = bytes(blob)
        _check(_lib.rigllama_engine_load_snapshot(self._handle, blob, len(blob)))

    def embed(self, text):
        """The pooled, L2-normalised embedding of text, as a list of floats."""
        encoded, dims = text.encode("utf-8"), ctypes.c_size_t()
        _check(_lib.rigllama_engine_embed(self._handle, encoded, None, 0, ctypes.byref(dims)))
        vector = (ctypes.c_float * dims.value)()
        _check(_lib.rigllama_engine_embed(self._handle, encoded, vector, dims.value, ctypes.byref(dims)))
        return list(vector[:dims.value])

    def add_lora(self, path, scale=1.0):
        """v0.2: loads the LoRA adapter GGUF at path (made for this model) and applies it at
        scale (0 = no effect, 1 = as trained), beside any already applied; returns its id.
        Runs after the requests submitted before it and empties the KV cache. An adapter for
        another model, or a file that is not one, raises RigllamaError (INVALID_ARGUMENT)."""
        lora_id = ctypes.c_uint32()
        _check(_lib.rigllama_engine_add_lora(self._handle, os.fsencode(path), scale, ctypes.byref(lora_id)))
        return lora_id.value

    def set_lora_scale(self, lora_id, scale):
        """v0.2: changes an applied adapter's scale; empties the KV cache."""
        _check(_lib.rigllama_engine_set_lora_scale(self._handle, lora_id, scale))

    def remove_lora(self, lora_id):
        """v0.2: removes an adapter and frees it; empties the KV cache."""
        _check(_lib.rigllama_engine_remove_lora(self._handle, lora_id))


class Job:
    """A submitted request whose events are polled. Use as a context manager, or call free()."""

    def __init__(self, handle):
        self._handle = handle
        self._event = Event()
        _check(_lib.rigllama_event_init(ctypes.byref(self._event), ctypes.sizeof(self._event)))

    def poll(self, timeout_ms=0):
        """Returns (kind, status, text, message); kind is EVENT_NONE if nothing was new. text is
        a piece of content (EVENT_TEXT), of reasoning (EVENT_REASONING), one whole tool call
        as JSON {"id", "name", "arguments": {...}} (EVENT_TOOL_CALL), or (n_logprobs > 0) a JSON
        array of {"token", "id", "logprob", "bytes", "top_logprobs": [...]}, one per token
        generated since the previous one, sent before the events carrying their text
        (EVENT_LOGPROBS)."""
        ev = self._event
        _check(_lib.rigllama_job_poll(self._handle, timeout_ms, ctypes.byref(ev)))
        text = ctypes.string_at(ev.text, ev.text_len).decode("utf-8") if ev.text and ev.text_len else ""
        message = ev.message.decode("utf-8", "replace") if ev.message else ""
        return ev.kind, ev.status, text, message

    def cancel(self):
        _check(_lib.rigllama_job_cancel(self._handle))

    def usage(self):
        usage = _usage()
        _check(_lib.rigllama_job_usage(self._handle, ctypes.byref(usage)))
        return usage

    def free(self):
        if self._handle:
            _lib.rigllama_job_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()
