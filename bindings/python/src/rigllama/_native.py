"""The C layer of the rigllama package: ctypes Structures that mirror rigllama.h field by field,
the library's function signatures, and where the library is loaded from. The public, typed API
is in __init__.py.

check_layout() compares the Structures with the x86-64 sizes and offsets that
tests/c/test_contract prints. Strings cross as UTF-8 bytes.

The library: $RIGLLAMA_LIBRARY if set; else the librigllama.so the wheel carries beside this
file; else the system's (ctypes.util.find_library, LD_LIBRARY_PATH and the ld.so cache).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple, Type

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
        ("type_k", ctypes.c_int32),  # v0.2: KvType
        ("type_v", ctypes.c_int32),  # v0.2: KvType
        ("flash_attention", ctypes.c_int32),  # v0.2: FlashAttention
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
        ("thread_priority", ctypes.c_int32),  # v0.3: ThreadPriority (default NORMAL)
        # v0.3: comma-separated host:port of llama.cpp rpc-servers, or None (default); needs the
        # rpc cargo feature (else INVALID_ARGUMENT). Private networks only (no auth, no TLS).
        ("rpc_servers", ctypes.c_char_p),
        # v0.3: a model inside a larger file: where its GGUF starts and its length (0 = to the
        # end); 0/0 (default) = the file is the GGUF.
        ("model_offset", ctypes.c_uint64),
        ("model_size", ctypes.c_uint64),
        ("no_repack", ctypes.c_int32),  # v0.3: 1 = llama.cpp's --no-repack (default 0)
        # v0.3: comma-separated device names (rigllama_list_devices) for the offloaded layers, "none"
        # = the CPU only, or None (default) = llama.cpp's choice
        ("devices", ctypes.c_char_p),
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
        ("tool_choice", ctypes.c_int32),  # v0.2: ToolChoice
        ("reasoning", ctypes.c_int32),  # v0.2: Reasoning
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
        ("mirostat", ctypes.c_int32),  # Mirostat
        ("mirostat_tau", ctypes.c_float),
        ("mirostat_eta", ctypes.c_float),
        ("n_logprobs", ctypes.c_uint32),  # v0.2: 1..20 = EventKind.LOGPROBS events with this many alternatives
        ("logit_bias_json", ctypes.c_char_p),  # v0.2: {"token id": bias} or [[id or text, bias or false]]
        ("dry_sequence_breakers", ctypes.POINTER(ctypes.c_char_p)),  # v0.2
        ("n_dry_sequence_breakers", ctypes.c_size_t),  # v0.2
        ("draft_max", ctypes.c_uint32),  # v0.2: prompt-lookup speculation, up to this many guesses (0 = off, <= 64)
        # v0.3: the prompt as token ids (prompt/messages_json None), and how many
        ("prompt_tokens", ctypes.POINTER(ctypes.c_int32)),
        ("n_prompt_tokens", ctypes.c_size_t),
        ("suffix", ctypes.c_char_p),  # v0.3: fill-in-the-middle, the text after the gap (raw_prompt 1)
        ("adaptive_target", ctypes.c_float),  # v0.3: adaptive-p, [0, 1]; negative = off (default -1)
        ("adaptive_decay", ctypes.c_float),  # v0.3: adaptive-p's decay, [0, 0.99] (default 0.90)
        ("reasoning_budget", ctypes.c_int32),  # v0.3: thinking tokens; -1 = unlimited (default), 0 = none
        # v0.3: this request's own LoRA adapters (ids from add_lora) and their scales, in place of the
        # engine-wide ones; lora_ids NULL (default) = the engine-wide adapters, non-NULL with n_loras 0 = none
        ("lora_ids", ctypes.POINTER(ctypes.c_uint32)),
        ("lora_scales", ctypes.POINTER(ctypes.c_float)),
        ("n_loras", ctypes.c_size_t),
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
C_LAYOUT_X86_64: Dict[Type[ctypes.Structure], Tuple[int, Dict[str, int]]] = {
    EngineOptions: (176, {"struct_size": 0, "n_ctx": 4, "n_batch": 8, "n_threads": 12, "n_gpu_layers": 16,
                          "model_path": 24, "chat_template": 32, "on_progress": 40, "progress_user_data": 48,
                          "context_overflow": 56, "n_seq": 60, "type_k": 64, "type_v": 68, "flash_attention": 72,
                          "fit": 76, "fit_min_ctx": 80, "fit_margins_mib": 88, "n_fit_margins_mib": 96,
                          "max_checkpoint_bytes": 104, "max_checkpoints": 112, "mmproj_path": 120,
                          "thread_priority": 128, "rpc_servers": 136, "model_offset": 144,
                          "model_size": 152, "no_repack": 160, "devices": 168}),
    Request: (280, {"struct_size": 0, "max_tokens": 4, "temperature": 8, "top_p": 12, "top_k": 16, "min_p": 20,
                    "repeat_penalty": 24, "seed": 28, "raw_prompt": 32, "prompt": 40, "system_prompt": 48,
                    "messages_json": 56, "stop": 64, "n_stop": 72, "priority": 80, "grammar": 88,
                    "json_schema": 96, "tools_json": 104, "tool_choice": 112, "reasoning": 116,
                    "presence_penalty": 120, "frequency_penalty": 124, "penalty_last_n": 128, "dry_multiplier": 132,
                    "dry_base": 136, "dry_allowed_length": 140, "dry_penalty_last_n": 144, "xtc_probability": 148,
                    "xtc_threshold": 152, "typical_p": 156, "top_n_sigma": 160, "mirostat": 164,
                    "mirostat_tau": 168, "mirostat_eta": 172, "n_logprobs": 176, "logit_bias_json": 184,
                    "dry_sequence_breakers": 192, "n_dry_sequence_breakers": 200, "draft_max": 208,
                    "prompt_tokens": 216, "n_prompt_tokens": 224, "suffix": 232, "adaptive_target": 240,
                    "adaptive_decay": 244, "reasoning_budget": 248, "lora_ids": 256, "lora_scales": 264,
                    "n_loras": 272}),
    Usage: (56, {"struct_size": 0, "finish_reason": 4, "prompt_tokens": 8, "cached_prompt_tokens": 12,
                 "completion_tokens": 16, "seed": 20, "prompt_ms": 24, "generation_ms": 32, "dropped_tokens": 40,
                 "drafted_tokens": 44, "accepted_tokens": 48, "image_tokens": 52}),
    Event: (40, {"struct_size": 0, "kind": 4, "status": 8, "text": 16, "text_len": 24, "message": 32}),
}


def check_layout() -> List[str]:
    """Returns a list of mismatches between these Structures and the C layout (x86-64 only)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return []
    problems: List[str] = []
    for struct, (size, offsets) in C_LAYOUT_X86_64.items():
        if ctypes.sizeof(struct) != size:
            problems.append(f"sizeof({struct.__name__}) is {ctypes.sizeof(struct)}, C says {size}")
        if [field[0] for field in struct._fields_] != list(offsets):
            problems.append(f"{struct.__name__} fields differ from C")
        for name, offset in offsets.items():
            actual: int = getattr(struct, name).offset
            if actual != offset:
                problems.append(f"{struct.__name__}.{name} at {actual}, C says {offset}")
    return problems


def find_library() -> str:
    """The path (or, for the system's library, the name) of the librigllama.so to load."""
    explicit = os.environ.get("RIGLLAMA_LIBRARY")
    if explicit:
        return explicit
    bundled = Path(__file__).with_name("librigllama.so")
    if bundled.is_file():
        return str(bundled)
    system = ctypes.util.find_library("rigllama")
    if system:
        return system
    raise ImportError(
        "rigllama: librigllama.so not found: this installation of the package carries none, "
        "RIGLLAMA_LIBRARY is not set and the dynamic linker knows no librigllama. Install the wheel "
        "(it carries the library), install the C library (make install; then ldconfig or "
        "LD_LIBRARY_PATH), or set RIGLLAMA_LIBRARY=/path/to/librigllama.so")


def load(path: str) -> Any:
    """Loads the library and declares every function's signature."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"rigllama: cannot load {path}: {e} (RIGLLAMA_LIBRARY overrides the path)") from e
    P = ctypes.POINTER
    engine_p, job_p = ctypes.c_void_p, ctypes.c_void_p
    signatures: Dict[str, Tuple[Any, List[Any]]] = {
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
        # v0.3. text is c_char_p over bytes: len says how many, a NUL among them reaches C.
        "rigllama_engine_tokenize": (c_status, [engine_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                                P(ctypes.c_int32), ctypes.c_size_t, P(ctypes.c_size_t)]),
        "rigllama_engine_detokenize": (c_status, [engine_p, P(ctypes.c_int32), ctypes.c_size_t, ctypes.c_uint32,
                                                  P(ctypes.c_void_p)]),
        "rigllama_string_free": (None, [ctypes.c_void_p]),
        # out_data is a c_void_p, not POINTER(c_uint8), so the pointer survives to bytes_free.
        "rigllama_engine_save_snapshot": (c_status, [engine_p, P(Request), P(ctypes.c_void_p), P(ctypes.c_size_t)]),
        "rigllama_engine_load_snapshot": (c_status, [engine_p, ctypes.c_char_p, ctypes.c_size_t]),
        "rigllama_bytes_free": (None, [ctypes.c_void_p]),
        "rigllama_engine_embed": (c_status, [engine_p, ctypes.c_char_p, P(ctypes.c_float), ctypes.c_size_t,
                                             P(ctypes.c_size_t)]),
        # v0.3. documents is an array of n UTF-8 strings; out_scores has room for n floats.
        "rigllama_engine_rerank": (c_status, [engine_p, ctypes.c_char_p, P(ctypes.c_char_p), ctypes.c_size_t,
                                              P(ctypes.c_float)]),
        "rigllama_engine_add_lora": (c_status, [engine_p, ctypes.c_char_p, ctypes.c_float, P(ctypes.c_uint32)]),
        "rigllama_engine_set_lora_scale": (c_status, [engine_p, ctypes.c_uint32, ctypes.c_float]),
        "rigllama_engine_remove_lora": (c_status, [engine_p, ctypes.c_uint32]),
        # v0.3. path is UTF-8 (os.fsencode); layer_start and layer_end 0, 0 = every layer.
        "rigllama_engine_set_control_vector": (c_status, [engine_p, ctypes.c_char_p, ctypes.c_float, ctypes.c_int32,
                                                          ctypes.c_int32]),
        "rigllama_engine_clear_control_vector": (c_status, [engine_p]),
        "rigllama_engine_submit": (c_status, [engine_p, P(Request), P(job_p)]),
        "rigllama_job_poll": (c_status, [job_p, ctypes.c_uint32, P(Event)]),
        "rigllama_job_usage": (c_status, [job_p, P(Usage)]),
        "rigllama_job_cancel": (c_status, [job_p]),
        "rigllama_job_free": (None, [job_p]),
        # v0.3: JSON text, freed with rigllama_string_free (callable before any engine).
        "rigllama_list_devices": (c_status, [P(ctypes.c_void_p)]),
        "rigllama_estimate": (c_status, [P(EngineOptions), P(ctypes.c_void_p)]),
        # v0.3: dir is UTF-8 (os.fsencode); process-wide, before the first engine.
        "rigllama_set_backend_dir": (c_status, [ctypes.c_char_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


library_path = find_library()
lib: Any = load(library_path)


