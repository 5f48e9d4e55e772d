"""llama-cpp-python streaming a completion, as its README shows: a peer for `make bench`.

usage: python llama_cpp_python_peer.py MODEL MAX_TOKENS [N_THREADS]
Without N_THREADS, the library's default thread count is used (out of the box).
Prints {"load_ms", "ttft_ms", "tokens", "tg_tok_s", "n_threads"}.
"""
import json
import sys
import time

from llama_cpp import Llama

model_path, max_tokens = sys.argv[1], int(sys.argv[2])
kwargs = {"n_ctx": 4096, "verbose": False}
if len(sys.argv) > 3:
    kwargs["n_threads"] = int(sys.argv[3])
started = time.perf_counter()
llm = Llama(model_path=model_path, **kwargs)
load_ms = (time.perf_counter() - started) * 1e3
sent = time.perf_counter()
first = last = None
tokens = 0
for chunk in llm.create_completion(
    "Once upon a time, in a faraway kingdom,", max_tokens=max_tokens, temperature=0.0, stream=True
):
    now = time.perf_counter()
    if first is None:
        first = now
    last = now
    tokens += 1
tg = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
print(json.dumps({
    "load_ms": round(load_ms, 1),
    "ttft_ms": round((first - sent) * 1e3, 1),
    "tokens": tokens,
    "tg_tok_s": round(tg, 3),
    "n_threads": llm.n_threads if hasattr(llm, "n_threads") else kwargs.get("n_threads"),
}))
