"""rigllama: local GGUF language models through llama.cpp, from Python.

    import rigllama

    with rigllama.Engine("model.gguf") as engine:
        for piece in engine.stream("The sea is", raw_prompt=True, max_tokens=24):
            print(piece, end="", flush=True)                 # breaking out cancels the request
        text, usage = engine.complete("Two plus two is", raw_prompt=True, max_tokens=4, temperature=0)
        reply, usage = engine.chat(messages=[...], tools=[...], tool_choice=rigllama.ToolChoice.REQUIRED)
        vector = engine.embed("A sentence.")                 # L2-normalised
        blob = engine.save_snapshot(messages=[...])          # a "save game"; engine.load_snapshot(blob)
        with engine.submit("Once upon a time", max_tokens=32) as job:   # frame loops: job.poll(0)
            for event in job:                                # waits; ends after the final event
                ...
        ids = engine.tokenize("The sea is")                  # what a raw prompt evaluates
        assert engine.detokenize(ids) == "The sea is"
        text, usage = engine.complete(prompt_tokens=ids, max_tokens=24)   # the ids, sent verbatim
        text, usage = engine.complete("Once upon a time", raw_prompt=True, temperature=1, adaptive_target=0.3)
        engine.set_control_vector("vector.gguf", 0.8)        # steer every layer (layer_start=10, layer_end=14:
        engine.clear_control_vector()                        # only those) until cleared
        text, usage = engine.complete("Why?", reasoning_budget=256)   # a thinking model: at most 256 thinking tokens
        style = engine.add_lora("style.gguf", 0.0)           # LoRA per request: off engine-wide,
        text, usage = engine.complete("Hi", lora=[(style, 1.0)])   # on for this request alone;
        text, usage = engine.complete("Hi", lora=[])         # no adapter at all (None: the engine-wide ones)

    with rigllama.Engine("coder.gguf") as coder:             # fill-in-the-middle: a model with FIM tokens
        middle, usage = coder.complete(before_gap, suffix=after_gap, raw_prompt=True)   # the middle
    with rigllama.Engine("reranker.gguf") as reranker:       # a reranker (pooling type rank)
        scores = reranker.rerank("what is a cat?", ["A cat purrs.", "Granite is a rock."])   # one per document

    rigllama.Engine("model.gguf", n_seq=2, thread_priority=rigllama.ThreadPriority.LOW)
    rigllama.Engine("model.gguf", rigllama.EngineOptions(n_ctx=8192))

    rigllama.list_devices()                                  # [{"name": "CPU", "type": "cpu", "memory_total": ...}, ...]
    planned = rigllama.estimate("model.gguf", n_ctx=8192)    # what that engine would allocate, per device,
    planned["total"]["kv_cache_bytes"]                       # without loading the weights
    rigllama.Engine("model.gguf", devices=["Vulkan0"])       # the layers on these devices ([]: the CPU only)

Requests are keyword arguments (the fields of Request) or a Request; options likewise
(EngineOptions). A failed call raises RigllamaError with the status and the library's message,
read on the thread that made the call (ctypes releases the GIL during calls, but a Python
thread stays on one OS thread).

The wheel carries librigllama.so beside this module, so `pip install` is all it takes and the
library always matches these bindings; library_path says which file was loaded.
RIGLLAMA_LIBRARY=/path/to/librigllama.so loads another; a package without one (a source
checkout) uses the system's.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._native import check_layout, library_path

__all__ = [
    "ContextOverflow", "Engine", "EngineOptions", "Event", "EventKind", "FinishReason", "FlashAttention", "Job",
    "KvType", "MAX_TOKENS_UNLIMITED", "Mirostat", "Reasoning", "Request", "RigllamaError", "SEED_RANDOM", "Status",
    "ThreadPriority", "ToolChoice", "Usage", "check_layout", "estimate", "library_path", "list_devices", "set_backend_dir", "version",
]

_lib = _native.lib

MAX_TOKENS_UNLIMITED = SEED_RANDOM = 0xFFFFFFFF


# The numbers in rigllama.h, which never change.
class Status(enum.IntEnum):
    OK = 0
    NULL_ARGUMENT = 1
    INVALID_ARGUMENT = 2
    MODEL_LOAD_FAILED = 3
    CONTEXT_OVERFLOW = 4
    CANCELLED = 5
    BUSY = 6
    SHUT_DOWN = 7
    INTERNAL = 8


class EventKind(enum.IntEnum):
    NONE = 0
    TEXT = 1
    DONE = 2
    ERROR = 3
    REASONING = 4  # v0.2: a piece of the model's reasoning, never part of the content
    TOOL_CALL = 5  # v0.2: one whole call as JSON: {"id", "name", "arguments": {...}}
    LOGPROBS = 6  # v0.2, when n_logprobs > 0: a JSON array of OpenAI logprobs.content entries


class FinishReason(enum.IntEnum):
    STOP = 0
    LENGTH = 1
    CALLBACK = 2
    TOOL_CALLS = 3  # v0.2


class ContextOverflow(enum.IntEnum):
    FAIL = 0
    SHIFT = 1  # drop the oldest turns of a conversation that outgrows n_ctx


class ToolChoice(enum.IntEnum):  # v0.2
    AUTO = 0
    NONE = 1
    REQUIRED = 2  # at least one call, valid against its schema even from a small model


class Reasoning(enum.IntEnum):  # v0.2: the template's thinking switch
    AUTO = 0
    OFF = 1
    ON = 2


class KvType(enum.IntEnum):  # v0.2: a quantized type_v needs flash attention AUTO or ON
    F16 = 0
    F32 = 1
    BF16 = 2
    Q8_0 = 3
    Q4_0 = 4
    Q4_1 = 5
    Q5_0 = 6
    Q5_1 = 7
    IQ4_NL = 8


class FlashAttention(enum.IntEnum):  # v0.2
    AUTO = 0
    OFF = 1
    ON = 2


class Mirostat(enum.IntEnum):  # v0.2: replaces top-k, typical-p, top-p, min-p and XTC
    OFF = 0
    V1 = 1
    V2 = 2


class ThreadPriority(enum.IntEnum):  # v0.3: LOW: the engine's threads yield to the host's
    NORMAL = 0
    LOW = 1


class RigllamaError(Exception):
    """A failed call: status (a Status) and message, the library's text naming the cause."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message


def _check(code: int) -> None:
    if code == Status.OK:
        return
    message = bytes(_lib.rigllama_last_error()).decode("utf-8", "replace")
    if code in Status._value2member_map_:
        raise RigllamaError(Status(code), message)
    # A newer library than these bindings: keep the number in the text.
    raise RigllamaError(Status.INTERNAL, f"status {code} (unknown to this package): {message}")


def _take_string(ptr: ctypes.c_void_p) -> str:
    """Copies a library-owned string and frees it with rigllama_string_free."""
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        _lib.rigllama_string_free(ptr)


def version() -> str:
    """The C library's version, e.g. "0.1.0"."""
    return bytes(_lib.rigllama_version()).decode()


def _package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as metadata_version
        try:
            return metadata_version("rigllama")
        except PackageNotFoundError:  # a source checkout: no metadata
            return version()
    except ImportError:  # pragma: no cover - Python < 3.8
        return version()


__version__ = _package_version()


@dataclass(frozen=True)
class Usage:
    """What a request cost and why it ended."""

    finish_reason: FinishReason
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    seed: int
    prompt_ms: float
    generation_ms: float
    dropped_tokens: int  # v0.2: oldest turns dropped to make room (ContextOverflow.SHIFT)
    drafted_tokens: int  # v0.2: guessed by prompt-lookup speculation (draft_max) and evaluated
    accepted_tokens: int  # v0.2: of those, the ones the sampler confirmed
    image_tokens: int  # v0.2: of prompt_tokens, those standing for images

    @classmethod
    def _from_c(cls, u: _native.Usage) -> Usage:
        return cls(FinishReason(u.finish_reason), u.prompt_tokens, u.cached_prompt_tokens, u.completion_tokens,
                   u.seed, u.prompt_ms, u.generation_ms, u.dropped_tokens, u.drafted_tokens, u.accepted_tokens,
                   u.image_tokens)


def _c_usage() -> _native.Usage:
    usage = _native.Usage()
    _check(_lib.rigllama_usage_init(ctypes.byref(usage), ctypes.sizeof(usage)))
    return usage


@dataclass(frozen=True)
class Event:
    """One event of a job. text: a piece of content (TEXT), of reasoning (REASONING), one whole
    tool call as JSON (TOOL_CALL), or a JSON array of log-probabilities (LOGPROBS); message:
    why an ERROR ended the job."""

    kind: EventKind
    status: Status = Status.OK
    text: str = ""
    message: str = ""

    @property
    def final(self) -> bool:
        """True for the job's last event, DONE or ERROR (later polls repeat it)."""
        return self.kind in (EventKind.DONE, EventKind.ERROR)


PathLike = Union[str, "os.PathLike[str]"]
JsonText = Union[str, Mapping[str, Any], Sequence[Any]]


@dataclass(frozen=True)
class EngineOptions:
    """Engine options; None keeps the library's default (EngineOptions.defaults() shows them).

    n_seq: requests served at once, advancing together (1..64). type_k, type_v: the KV cache's
    data types. fit: let llama.cpp's fitting choose the GPU layers and, if needed, a smaller
    context, not below fit_min_ctx, leaving fit_margins_mib (one value, or one per device)
    free. max_checkpoints, max_checkpoint_bytes: state checkpoints of recurrent and hybrid
    models (others ignore them). mmproj_path: the multimodal projector made for the model
    (needs a library built with the cargo feature mtmd). thread_priority: LOW makes the
    engine's threads yield to the host's, so a game's frame loop keeps its frames. devices:
    the devices that take the offloaded layers, by the names list_devices() reports ("Vulkan0",
    "CUDA1"; "CPU" is the CPU), in that order; [] = the CPU only; None = llama.cpp's choice (every
    GPU, falling back to the CPU when a GPU cannot start: describe()'s "gpu_fallback" says why).
    A name that is not there is refused (INVALID_ARGUMENT, naming it and the devices there are)."""

    n_ctx: Optional[int] = None
    n_batch: Optional[int] = None
    n_threads: Optional[int] = None
    n_gpu_layers: Optional[int] = None
    chat_template: Optional[str] = None
    context_overflow: Optional[ContextOverflow] = None
    n_seq: Optional[int] = None
    type_k: Optional[KvType] = None
    type_v: Optional[KvType] = None
    flash_attention: Optional[FlashAttention] = None
    fit: Optional[bool] = None
    fit_min_ctx: Optional[int] = None
    fit_margins_mib: Optional[Sequence[int]] = None
    max_checkpoint_bytes: Optional[int] = None
    max_checkpoints: Optional[int] = None
    mmproj_path: Optional[PathLike] = None
    thread_priority: Optional[int] = None  # a ThreadPriority
    # A model inside a larger file (an asset archive): where its GGUF starts and its length
    # (0 = to the end of the file); None/0 = the file is the GGUF.
    model_offset: Optional[int] = None
    model_size: Optional[int] = None
    no_repack: Optional[bool] = None  # llama.cpp's --no-repack (default False)
    # "host:port,host:port" of llama.cpp rpc-servers for the offloaded layers (needs the rpc
    # cargo feature); private networks only.
    rpc_servers: Optional[str] = None
    devices: Optional[Sequence[str]] = None  # v0.3: device names; [] = the CPU only

    @classmethod
    def defaults(cls) -> EngineOptions:
        """The library's defaults (rigllama_engine_options_init), every field filled in."""
        c = _native.EngineOptions()
        _check(_lib.rigllama_engine_options_init(ctypes.byref(c), ctypes.sizeof(c)))
        margins = [c.fit_margins_mib[i] for i in range(c.n_fit_margins_mib)] if c.fit_margins_mib else None
        return cls(
            n_ctx=c.n_ctx, n_batch=c.n_batch, n_threads=c.n_threads, n_gpu_layers=c.n_gpu_layers,
            chat_template=c.chat_template.decode("utf-8") if c.chat_template else None,
            context_overflow=ContextOverflow(c.context_overflow), n_seq=c.n_seq, type_k=KvType(c.type_k),
            type_v=KvType(c.type_v), flash_attention=FlashAttention(c.flash_attention), fit=bool(c.fit),
            fit_min_ctx=c.fit_min_ctx, fit_margins_mib=margins, max_checkpoint_bytes=c.max_checkpoint_bytes,
            max_checkpoints=c.max_checkpoints,
            mmproj_path=os.fsdecode(c.mmproj_path) if c.mmproj_path else None,
            thread_priority=ThreadPriority(c.thread_priority),
            model_offset=c.model_offset, model_size=c.model_size, no_repack=bool(c.no_repack),
            rpc_servers=c.rpc_servers.decode("utf-8") if c.rpc_servers else None,
            devices=_devices_from_c(c.devices),
        )


@dataclass(frozen=True)
class Request:
    """One generation request; None keeps the library's default (rigllama_request_init).

    messages: a conversation, [{"role": ..., "content": ...}, ...] or JSON text (a reply from
    chat() and {"role": "tool", "tool_call_id": ..., "content": ...} results may be appended as
    they are); prompt, if also given, is appended as the last user turn. raw_prompt: send
    prompt verbatim (text completion). priority: higher runs first. grammar: GBNF the reply
    must match. json_schema: the reply is one JSON value valid against it. tools: OpenAI's
    tools array. n_logprobs: 1..20 makes a job send LOGPROBS events. logit_bias:
    {token_id: bias} or [[token_id or text, bias or False], ...]. draft_max: prompt-lookup
    speculation, up to this many guessed tokens verified in one decode (0 = off; at most 64).
    prompt_tokens (v0.3): the prompt as token ids (Engine.tokenize), sent verbatim, nothing
    added (tokenize's defaults add the BOS a raw prompt gets); leave prompt, messages and
    system_prompt None (raw_prompt does not matter). An id outside the vocabulary raises
    RigllamaError (INVALID_ARGUMENT) naming its index and value. suffix (v0.3): fill-in-the-middle,
    the text after the gap, with prompt the text before it (either may be "", not both) and
    raw_prompt=True; the prompt is laid out with the vocabulary's FIM tokens as llama-server
    lays out an /infill prompt, and the reply is the middle (text that does not fit one batch is
    cut, counted in usage.dropped_tokens). A model whose vocabulary has no FIM tokens raises
    RigllamaError (INVALID_ARGUMENT), as does a suffix without raw_prompt. adaptive_target (v0.3):
    adaptive-p (llama.cpp's adaptive_p sampler), the draw favours tokens near this probability,
    adapting to what was chosen; it ends the chain in place of the plain draw; in [0, 1], negative
    = off (the default, -1); not with mirostat; no effect at temperature 0. adaptive_decay (v0.3):
    adaptive-p remembers about 1 / (1 - decay) tokens; [0, 0.99], default 0.90.
    reasoning_budget (v0.3): tokens the reply may think for, -1 = unlimited (the default), 0 = no
    thinking, N; when the template's thinking block (Qwen3's and DeepSeek-R1's <think>, ...)
    reaches it, the engine writes the block's end tag, as llama.cpp's reasoning-budget sampler
    does, and the answer follows; a template without a thinking block has nothing to limit, and
    with grammar or json_schema the budget is not applied; below -1 raises RigllamaError
    (INVALID_ARGUMENT). lora (v0.3): this request's own LoRA adapters, [(lora_id, scale), ...]
    with ids from Engine.add_lora and scales 0 = no effect, 1 = as trained, in place of the
    engine-wide ones: exactly these, every other loaded adapter off for this request (the
    engine-wide scales are left as they are); None (the default) keeps the engine-wide adapters
    at their engine-wide scales, and [] is no adapter at all (the base model). An id not loaded,
    an id given twice or a scale outside +-100 raises RigllamaError (INVALID_ARGUMENT) naming it
    ("lora_ids[0] = 77"); at most 64. Requests with different sets never share a decode (they
    take turns), and a cached prefix is reused only by requests with the same set."""

    prompt: Optional[str] = None
    messages: Optional[JsonText] = None
    system_prompt: Optional[str] = None
    raw_prompt: bool = False
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    repeat_penalty: Optional[float] = None
    seed: Optional[int] = None
    stop: Optional[Sequence[str]] = None
    priority: Optional[int] = None
    grammar: Optional[str] = None
    json_schema: Optional[JsonText] = None
    tools: Optional[JsonText] = None
    tool_choice: Optional[ToolChoice] = None
    reasoning: Optional[Reasoning] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    penalty_last_n: Optional[int] = None
    dry_multiplier: Optional[float] = None
    dry_base: Optional[float] = None
    dry_allowed_length: Optional[int] = None
    dry_penalty_last_n: Optional[int] = None
    dry_sequence_breakers: Optional[Sequence[str]] = None
    xtc_probability: Optional[float] = None
    xtc_threshold: Optional[float] = None
    typical_p: Optional[float] = None
    top_n_sigma: Optional[float] = None
    mirostat: Optional[Mirostat] = None
    mirostat_tau: Optional[float] = None
    mirostat_eta: Optional[float] = None
    n_logprobs: Optional[int] = None
    logit_bias: Optional[JsonText] = None
    draft_max: Optional[int] = None
    prompt_tokens: Optional[Sequence[int]] = None
    suffix: Optional[str] = None
    adaptive_target: Optional[float] = None
    adaptive_decay: Optional[float] = None
    reasoning_budget: Optional[int] = None
    lora: Optional[Sequence[Tuple[int, float]]] = None


# Request fields copied into the C struct as they are (None: the default stays).
_PLAIN_REQUEST_FIELDS = (
    "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "priority", "tool_choice",
    "reasoning", "presence_penalty", "frequency_penalty", "penalty_last_n", "dry_multiplier", "dry_base",
    "dry_allowed_length", "dry_penalty_last_n", "xtc_probability", "xtc_threshold", "typical_p", "top_n_sigma",
    "mirostat", "mirostat_tau", "mirostat_eta", "n_logprobs", "draft_max", "adaptive_target", "adaptive_decay",
    "reasoning_budget",
)
_PLAIN_OPTION_FIELDS = (
    "n_ctx", "n_batch", "n_threads", "n_gpu_layers", "context_overflow", "n_seq", "type_k", "type_v",
    "flash_attention", "fit_min_ctx", "max_checkpoint_bytes", "max_checkpoints", "thread_priority",
    "model_offset", "model_size",
)


def _utf8(text: Optional[str]) -> Optional[bytes]:
    return text.encode("utf-8") if text is not None else None


def _devices_to_c(devices: Optional[Sequence[str]]) -> Optional[bytes]:
    """EngineOptions.devices as the C option: None stays NULL (llama.cpp's choice), [] is "none"
    (the CPU only), else the names joined with commas."""
    if devices is None:
        return None
    if isinstance(devices, (str, bytes)):  # a str is a Sequence[str] too: "CPU" would be C,P,U
        raise TypeError(f"devices is a list of device names, e.g. [{devices!r}], not {type(devices).__name__}")
    return ",".join(devices).encode("utf-8") if devices else b"none"


def _devices_from_c(devices: Optional[bytes]) -> Optional[List[str]]:
    if devices is None:
        return None
    text = devices.decode("utf-8")
    return [] if text == "none" else text.split(",")


def _c_options(model_path: PathLike, o: EngineOptions,
               on_progress: Optional[Callable[[float], Optional[bool]]] = None) -> _native.EngineOptions:
    """The C options for model_path and o. Everything assigned is kept alive by the returned
    struct (ctypes keeps its objects) until the call that reads it returns; the library copies it."""
    c = _native.EngineOptions()
    _check(_lib.rigllama_engine_options_init(ctypes.byref(c), ctypes.sizeof(c)))
    c.model_path = os.fsencode(model_path)
    c.chat_template = _utf8(o.chat_template)
    c.rpc_servers = _utf8(o.rpc_servers)
    c.devices = _devices_to_c(o.devices)
    if o.mmproj_path is not None:
        c.mmproj_path = os.fsencode(o.mmproj_path)
    if o.fit is not None:
        c.fit = 1 if o.fit else 0
    if o.no_repack is not None:
        c.no_repack = 1 if o.no_repack else 0
    if o.fit_margins_mib is not None:
        c.fit_margins_mib = (ctypes.c_uint32 * len(o.fit_margins_mib))(*o.fit_margins_mib)
        c.n_fit_margins_mib = len(o.fit_margins_mib)
    for name in _PLAIN_OPTION_FIELDS:
        value = getattr(o, name)
        if value is not None:
            setattr(c, name, value)
    if on_progress is not None:
        # Called only during create, on the calling thread.
        c.on_progress = _native.ProgressCallback(
            lambda _user_data, fraction: 0 if on_progress(fraction) is not False else 1)
    return c


def list_devices() -> List[Dict[str, Any]]:
    """v0.3: the devices the library can use on this machine (rigllama_list_devices), callable
    before any engine: [{"name", "description", "type" ("cpu", "gpu", "igpu" or "accel"),
    "memory_total", "memory_free"}, ...] (bytes, as the driver reports them now; the host's RAM
    for the CPU), the CPU first, always there, named "CPU". A name is what
    EngineOptions.devices takes."""
    out = ctypes.c_void_p()
    _check(_lib.rigllama_list_devices(ctypes.byref(out)))
    devices: List[Dict[str, Any]] = json.loads(_take_string(out))
    return devices


def estimate(model_path: PathLike, options: Optional[EngineOptions] = None, **fields: Any) -> Dict[str, Any]:
    """v0.3: what Engine(model_path, options, **fields) would allocate, per device, without
    loading the weights (rigllama_estimate: llama.cpp reads the file's metadata and plans every
    buffer), so a game can pick the largest model tier that fits: {"n_ctx", "devices": [{"name",
    "type", "layers": [...], "memory": {"model_bytes", "kv_cache_bytes", "compute_bytes"},
    "memory_total", "memory_free"}, ...] (the CPU, for host memory, first), "total":
    {"model_bytes", "kv_cache_bytes", "compute_bytes"}}. Within 10% of what describe() reports
    after the real create; a projector's memory is not included. The options are checked as
    Engine checks them; fit and rpc_servers are refused (INVALID_ARGUMENT). Runs on the calling
    thread, milliseconds to a second."""
    o = dataclasses.replace(options or EngineOptions(), **fields)  # TypeError names an unknown field
    c, out = _c_options(model_path, o), ctypes.c_void_p()
    _check(_lib.rigllama_estimate(ctypes.byref(c), ctypes.byref(out)))
    planned: Dict[str, Any] = json.loads(_take_string(out))
    return planned


def set_backend_dir(path: PathLike) -> None:
    """v0.3: loads ggml's CPU modules (libggml-cpu-*.so, the best this CPU runs is used) from the
    directory path instead of the one librigllama.so was loaded from, or $RIGLLAMA_BACKEND_DIR
    (rigllama_set_backend_dir). Process-wide; call it before the first Engine. Only a library
    built with the dynamic-backends feature loads modules: the default build has its CPU code
    built in and raises RigllamaError (INVALID_ARGUMENT) saying so, as does a directory without
    modules, or another directory once they are loaded. describe()["cpu_backend"] names the code
    in use: {"variant" ("built-in" in the default build), "module", "features": [...]}."""
    _check(_lib.rigllama_set_backend_dir(os.fsencode(path)))


def _json_text(value: Optional[JsonText]) -> Optional[bytes]:
    """A JSON argument given as a Python value or as JSON text, as UTF-8 bytes."""
    if value is None:
        return None
    return (value if isinstance(value, str) else json.dumps(value)).encode("utf-8")


def _strings(values: Sequence[str]) -> Any:
    return (ctypes.c_char_p * len(values))(*[v.encode("utf-8") for v in values])


# rigllama_engine_tokenize's flags (RIGLLAMA_TOKENIZE_*).
_TOKENIZE_ADD_SPECIAL = 1
_TOKENIZE_PARSE_SPECIAL = 2


def _token_flags(add_special: bool, parse_special: bool) -> int:
    return (_TOKENIZE_ADD_SPECIAL if add_special else 0) | (_TOKENIZE_PARSE_SPECIAL if parse_special else 0)


def _token_array(ids: Sequence[int], what: str) -> Any:
    """ids as a C int32_t array. An id that does not fit one is refused here, as the library
    refuses one outside the vocabulary (ctypes would silently keep its low 32 bits)."""
    for i, token in enumerate(ids):
        if not -2**31 <= token < 2**31:
            raise RigllamaError(Status.INVALID_ARGUMENT, f"{what}[{i}] = {token} is not a 32-bit token id")
    return (ctypes.c_int32 * len(ids))(*ids)


def _lora_arrays(lora: Sequence[Tuple[int, float]]) -> Tuple[Any, Any]:
    """A per-request LoRA set as C arrays: the ids, with room for one at least so that [] reaches
    the library as set (no adapter at all) rather than as NULL (the engine-wide adapters), and
    the scales (None for []). An id that does not fit uint32_t is refused here, as the library
    refuses one not loaded (ctypes would silently keep its low 32 bits)."""
    for i, (lora_id, _scale) in enumerate(lora):
        if not 0 <= lora_id < 2**32:
            raise RigllamaError(Status.INVALID_ARGUMENT, f"lora_ids[{i}] = {lora_id} is not a 32-bit adapter id")
    ids = (ctypes.c_uint32 * max(len(lora), 1))(*[lora_id for lora_id, _ in lora])
    scales = (ctypes.c_float * len(lora))(*[scale for _, scale in lora]) if lora else None
    return ids, scales


def _make_request(prompt: Union[str, Request, None], fields: Dict[str, Any]) -> Request:
    base = prompt if isinstance(prompt, Request) else Request(prompt=prompt)
    return dataclasses.replace(base, **fields)  # TypeError names an unknown field


def _c_request(r: Request) -> _native.Request:
    c = _native.Request()
    _check(_lib.rigllama_request_init(ctypes.byref(c), ctypes.sizeof(c)))
    # Bytes and arrays assigned to the struct's pointer fields are kept alive by it (_objects).
    c.prompt = _utf8(r.prompt)
    c.messages_json = _json_text(r.messages)
    c.system_prompt = _utf8(r.system_prompt)
    c.suffix = _utf8(r.suffix)
    c.grammar = _utf8(r.grammar)
    c.json_schema = _json_text(r.json_schema)
    c.tools_json = _json_text(r.tools)
    c.logit_bias_json = _json_text(r.logit_bias)
    c.raw_prompt = 1 if r.raw_prompt else 0
    if r.stop is not None:
        c.stop, c.n_stop = _strings(r.stop), len(r.stop)
    if r.dry_sequence_breakers is not None:
        c.dry_sequence_breakers = _strings(r.dry_sequence_breakers)
        c.n_dry_sequence_breakers = len(r.dry_sequence_breakers)
    if r.prompt_tokens is not None:
        c.prompt_tokens = _token_array(r.prompt_tokens, "prompt_tokens")
        c.n_prompt_tokens = len(r.prompt_tokens)
    if r.lora is not None:
        c.lora_ids, c.lora_scales = _lora_arrays(r.lora)
        c.n_loras = len(r.lora)
    for name in _PLAIN_REQUEST_FIELDS:
        value = getattr(r, name)
        if value is not None:
            setattr(c, name, value)
    return c


class Job:
    """A submitted request whose events are polled; from Engine.submit. Use it as a context
    manager or call close(): closing a running job cancels it. Iterating waits for each event
    and ends after the final one (DONE or ERROR)."""

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._handle: Optional[ctypes.c_void_p] = handle
        self._event = _native.Event()
        _check(_lib.rigllama_event_init(ctypes.byref(self._event), ctypes.sizeof(self._event)))

    def poll(self, timeout_ms: int = 0) -> Event:
        """The next event; kind NONE when nothing arrived within timeout_ms (0 never blocks)."""
        ev = self._event
        _check(_lib.rigllama_job_poll(self._handle, timeout_ms, ctypes.byref(ev)))
        text = ctypes.string_at(ev.text, ev.text_len).decode("utf-8") if ev.text and ev.text_len else ""
        message = ev.message.decode("utf-8", "replace") if ev.message else ""
        status = Status(ev.status) if ev.status in Status._value2member_map_ else Status.INTERNAL
        return Event(EventKind(ev.kind), status, text, message)

    def __iter__(self) -> Iterator[Event]:
        while True:
            # Short waits, so that Ctrl-C (KeyboardInterrupt) lands between them.
            event = self.poll(100)
            if event.kind == EventKind.NONE:
                continue
            yield event
            if event.final:
                return

    def pieces(self) -> Iterator[str]:
        """The content's pieces as they arrive; raises RigllamaError if the job ends in ERROR."""
        for event in self:
            if event.kind == EventKind.TEXT:
                yield event.text
            elif event.kind == EventKind.ERROR:
                raise RigllamaError(event.status, event.message)

    def cancel(self) -> None:
        """Cancels this job only; its last event becomes ERROR with Status.CANCELLED."""
        _check(_lib.rigllama_job_cancel(self._handle))

    def usage(self) -> Usage:
        """The job's usage, once it has ended."""
        usage = _c_usage()
        _check(_lib.rigllama_job_usage(self._handle, ctypes.byref(usage)))
        return Usage._from_c(usage)

    def close(self) -> None:
        if self._handle:
            _lib.rigllama_job_free(self._handle)
            self._handle = None

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Engine:
    """One loaded model with its worker thread. Use it as a context manager, or call close().

    Engine(model_path, options=None, *, on_progress=None, **fields): fields are EngineOptions'
    (n_ctx=..., n_seq=..., ...) and override options'. on_progress(fraction) is called while
    the model loads; returning False cancels the load."""

    def __init__(self, model_path: PathLike, options: Optional[EngineOptions] = None, *,
                 on_progress: Optional[Callable[[float], Optional[bool]]] = None, **fields: Any) -> None:
        self._handle: Optional[ctypes.c_void_p] = None
        o = dataclasses.replace(options or EngineOptions(), **fields)  # TypeError names an unknown field
        c = _c_options(model_path, o, on_progress)
        handle = ctypes.c_void_p()
        _check(_lib.rigllama_engine_create(ctypes.byref(c), ctypes.byref(handle)))
        self._handle = handle

    def close(self) -> None:
        """Cancels what is running, joins the worker and frees the engine (again: nothing)."""
        if self._handle:
            _lib.rigllama_engine_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> Tuple[str, Usage]:
        """The whole reply's content and its usage. prompt is a str or a Request; fields are
        Request's (max_tokens=..., messages=..., ...) and override it."""
        req, usage, text = _c_request(_make_request(prompt, fields)), _c_usage(), ctypes.c_void_p()
        _check(_lib.rigllama_engine_complete(self._handle, ctypes.byref(req), ctypes.byref(text), ctypes.byref(usage)))
        return _take_string(text), Usage._from_c(usage)

    def chat(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> Tuple[Dict[str, Any], Usage]:
        """The assistant's reply as OpenAI's message dict, {"role": "assistant", "content": str
        or None, "reasoning_content": str (when any), "tool_calls": [{"id", "type": "function",
        "function": {"name", "arguments": JSON text}}] (when any)}, and its usage
        (finish_reason TOOL_CALLS when it ended in calls). Append the message to messages as it
        is, then one {"role": "tool", ...} result per call, for the next turn."""
        req, usage, out = _c_request(_make_request(prompt, fields)), _c_usage(), ctypes.c_void_p()
        _check(_lib.rigllama_engine_chat(self._handle, ctypes.byref(req), ctypes.byref(out), ctypes.byref(usage)))
        message: Dict[str, Any] = json.loads(_take_string(out))
        return message, Usage._from_c(usage)

    def apply_template(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> str:
        """The exact prompt text the model would be given (template applied, tools rendered)."""
        req, out = _c_request(_make_request(prompt, fields)), ctypes.c_void_p()
        _check(_lib.rigllama_engine_apply_template(self._handle, ctypes.byref(req), ctypes.byref(out)))
        return _take_string(out)

    def stream(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> Iterator[str]:
        """The reply's content, piece by piece, as it is generated (a job underneath). Leaving
        the loop early (break, an exception, closing the iterator) cancels the request; a job
        that ends in ERROR raises RigllamaError. For the usage too: submit() and Job.pieces()."""
        with self.submit(prompt, **fields) as job:
            yield from job.pieces()

    def stream_to(self, prompt: Union[str, Request, None], on_piece: Callable[[str], Optional[bool]],
                  **fields: Any) -> Usage:
        """Calls on_piece(piece) with each piece on this thread (the C library's callback) and
        returns the usage. on_piece returning False stops generation (FinishReason.CALLBACK);
        an exception in it stops generation and is re-raised here (it cannot cross the C frames)."""
        req, usage = _c_request(_make_request(prompt, fields)), _c_usage()
        raised: List[BaseException] = []

        def trampoline(_user_data: Any, piece: Any, piece_len: int) -> int:
            try:
                return 1 if on_piece(ctypes.string_at(piece, piece_len).decode("utf-8")) is False else 0
            except BaseException as e:  # noqa: BLE001 - handed back to the caller below
                raised.append(e)
                return 1

        callback = _native.TokenCallback(trampoline)  # referenced until stream returns
        status = _lib.rigllama_engine_stream(self._handle, ctypes.byref(req), callback, None, ctypes.byref(usage))
        if raised:
            raise raised[0]
        _check(status)
        return Usage._from_c(usage)

    def submit(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> Job:
        """Queues the request and returns its Job at once."""
        req, handle = _c_request(_make_request(prompt, fields)), ctypes.c_void_p()
        _check(_lib.rigllama_engine_submit(self._handle, ctypes.byref(req), ctypes.byref(handle)))
        return Job(handle)

    def cancel(self) -> None:
        """Cancels every request submitted before this call; returns at once, from any thread."""
        _check(_lib.rigllama_engine_cancel(self._handle))

    def pause(self) -> None:
        """Holds the worker between two decode steps (returns within one step): running requests
        keep their state, new ones wait; cancel and close still work."""
        _check(_lib.rigllama_engine_pause(self._handle))

    def resume(self) -> None:
        """Lets a paused engine go on where it stopped."""
        _check(_lib.rigllama_engine_resume(self._handle))

    def reset(self) -> None:
        """Forgets every cached conversation (the KV cache)."""
        _check(_lib.rigllama_engine_reset(self._handle))

    def describe(self) -> Dict[str, Any]:
        """The engine (rigllama_engine_describe): the model, n_ctx, n_seq, memory, checkpoints,
        n_threads (the threads used), thread_priority and thread_priority_applied, control_vector
        (None, or {"path", "strength", "layer_start", "layer_end"}), devices (v0.3: every device
        holding part of the model, the CPU first, shaped as estimate()'s), gpu_fallback (v0.3: None,
        or why the model runs on the CPU although GPU layers were asked for), ..."""
        out = ctypes.c_void_p()
        _check(_lib.rigllama_engine_describe(self._handle, ctypes.byref(out)))
        described: Dict[str, Any] = json.loads(_take_string(out))
        return described

    def count_tokens(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> int:
        """The prompt's size in tokens, formatted and tokenized exactly as complete() would,
        without running it (an image counts as its tokens): compare it with n_ctx to trim history."""
        req, n = _c_request(_make_request(prompt, fields)), ctypes.c_uint32()
        _check(_lib.rigllama_engine_count_tokens(self._handle, ctypes.byref(req), ctypes.byref(n)))
        return n.value

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> List[int]:
        """The token ids of text (a NUL character in it raises RigllamaError, INVALID_ARGUMENT).
        add_special: add BOS/EOS as the vocabulary wants; parse_special: special-token text
        ("<start_of_turn>") becomes its token, else it is plain text. The defaults give what a
        raw prompt evaluates (as many ids as count_tokens(text, raw_prompt=True)), and
        detokenize with the same flags gives text back exactly. The first call has room for
        len(bytes) // 2 + 8 ids, enough for most text; when the text makes more, the library
        says how many and the call is made again with that many."""
        encoded, flags = text.encode("utf-8"), _token_flags(add_special, parse_special)
        capacity = len(encoded) // 2 + 8
        while True:
            ids, n = (ctypes.c_int32 * capacity)(), ctypes.c_size_t()
            code = _lib.rigllama_engine_tokenize(self._handle, encoded, len(encoded), flags, ids, capacity,
                                                 ctypes.byref(n))
            if code == Status.OK:
                return list(ids[:n.value])
            if code != Status.INVALID_ARGUMENT or n.value <= capacity:
                _check(code)  # any failure but a too-small buffer, which says how many ids it needs
            capacity = n.value

    def detokenize(self, ids: Sequence[int], *, add_special: bool = True, parse_special: bool = True) -> str:
        """The text of token ids; the flags are the inverse of tokenize's (add_special: leave out
        the BOS/EOS such a tokenization added; parse_special: write special tokens out as their
        text, else as nothing). Bytes that are not whole characters (ids cut inside one) come out
        as U+FFFD. An id outside the vocabulary raises RigllamaError (INVALID_ARGUMENT) naming
        its index and value."""
        array, out = _token_array(ids, "tokens"), ctypes.c_void_p()
        _check(_lib.rigllama_engine_detokenize(self._handle, array, len(ids), _token_flags(add_special, parse_special),
                                               ctypes.byref(out)))
        return _take_string(out)

    def save_snapshot(self, prompt: Union[str, Request, None] = None, /, **fields: Any) -> bytes:
        """The KV cache of the longest cached prefix of this request's prompt, as bytes (a "save
        game"): pass the conversation's next request (messages=..., ending with a user turn).
        Keep the messages yourself; the snapshot only saves evaluating them again."""
        req, data, length = _c_request(_make_request(prompt, fields)), ctypes.c_void_p(), ctypes.c_size_t()
        _check(_lib.rigllama_engine_save_snapshot(self._handle, ctypes.byref(req), ctypes.byref(data),
                                                  ctypes.byref(length)))
        try:
            return ctypes.string_at(data, length.value)
        finally:
            _lib.rigllama_bytes_free(data)

    def load_snapshot(self, blob: bytes) -> None:
        """Makes a snapshot from save_snapshot (this process or another) the KV cache. A blob
        from another model, or a damaged one, raises RigllamaError (INVALID_ARGUMENT)."""
        blob = bytes(blob)
        _check(_lib.rigllama_engine_load_snapshot(self._handle, blob, len(blob)))

    def embed(self, text: str) -> List[float]:
        """The pooled, L2-normalised embedding of text."""
        encoded, dims = text.encode("utf-8"), ctypes.c_size_t()
        _check(_lib.rigllama_engine_embed(self._handle, encoded, None, 0, ctypes.byref(dims)))
        vector = (ctypes.c_float * dims.value)()
        _check(_lib.rigllama_engine_embed(self._handle, encoded, vector, dims.value, ctypes.byref(dims)))
        return list(vector[:dims.value])

    def rerank(self, query: str, documents: Sequence[str]) -> List[float]:
        """How well each of documents answers query: one score per document, in their order
        (higher is better; unnormalised, as llama-server's /rerank returns it), from a reranker
        model (a GGUF with pooling type rank, as bge-reranker's). The chat KV cache is untouched.
        A model that is not a reranker, an empty query or document, or a pair over 2048 tokens
        raises RigllamaError (INVALID_ARGUMENT) naming it. No documents: [] (at most 65,536)."""
        if isinstance(documents, str):
            raise TypeError("rerank: documents is a sequence of strings, not one string")
        n = len(documents)
        texts = _strings(documents) if n else None
        scores = (ctypes.c_float * n)() if n else None
        _check(_lib.rigllama_engine_rerank(self._handle, query.encode("utf-8"), texts, n, scores))
        return list(scores) if scores is not None else []

    def add_lora(self, path: PathLike, scale: float = 1.0) -> int:
        """Loads the LoRA adapter GGUF at path (made for this model) and applies it at scale
        (0 = no effect, 1 = as trained) beside any already applied; returns its id. Empties the
        KV cache. An adapter for another model raises RigllamaError (INVALID_ARGUMENT)."""
        lora_id = ctypes.c_uint32()
        _check(_lib.rigllama_engine_add_lora(self._handle, os.fsencode(path), scale, ctypes.byref(lora_id)))
        return lora_id.value

    def set_lora_scale(self, lora_id: int, scale: float) -> None:
        """Changes an applied adapter's scale; empties the KV cache."""
        _check(_lib.rigllama_engine_set_lora_scale(self._handle, lora_id, scale))

    def remove_lora(self, lora_id: int) -> None:
        """Removes an adapter and frees it; empties the KV cache."""
        _check(_lib.rigllama_engine_remove_lora(self._handle, lora_id))

    def set_control_vector(self, path: PathLike, strength: float = 1.0, layer_start: int = 0,
                           layer_end: int = 0) -> None:
        """Adds the control vector GGUF at path (direction.N tensors made for this model, as
        llama.cpp's cvector-generator writes them) times strength (finite, within ±100; 0 = no
        effect) to the output of layers layer_start..layer_end inclusive (1-based; 0, 0 = every
        layer), replacing any control vector set before. Runs after the requests submitted before
        it and empties the KV cache. A file that is not a control vector, one made for a model of
        another width, or a layer range outside the model raises RigllamaError
        (INVALID_ARGUMENT) with the reason; the engine keeps serving. describe() reports it
        ("control_vector"); snapshots are refused while it is set."""
        _check(_lib.rigllama_engine_set_control_vector(self._handle, os.fsencode(path), strength, layer_start,
                                                       layer_end))

    def clear_control_vector(self) -> None:
        """Removes the control vector, if one is set; empties the KV cache."""
        _check(_lib.rigllama_engine_clear_control_vector(self._handle))
