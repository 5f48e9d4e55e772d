#!/usr/bin/env python3
"""Streams a reply through a CFUNCTYPE callback, cancels a second request submitted as a job,
checks the log-probabilities a job reports, has prompt-lookup speculation (draft_max) guess
a reply that repeats its prompt, embeds two sentences and prints their similarity, saves and
reloads a conversation's snapshot, and runs two requests at once (an NPC's chatter and the
player's line, at different priorities) on an n_seq=2 engine, paused and resumed midway.
Also checks the engine options' defaults (state checkpoints: 32, 512 MiB; no mmproj_path;
thread_priority NORMAL) and what describe reports of them and of the threads, that an unknown
thread_priority is refused, that this library (built without the mtmd cargo feature) refuses
a projector, and that a text request counts no image tokens. Exits non-zero on any failure.

    usage: stream_and_cancel.py MODEL.gguf     (librigllama.so on LD_LIBRARY_PATH, or
                                                RIGLLAMA_LIBRARY=/path/to/librigllama.so)
"""

import json
import os
import sys
import time

import rigllama

failures = 0


def expect(ok, what):
    global failures
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures += 1


def stream_reply(engine):
    prompt = "The three primary colors are"
    pieces = []

    def on_piece(piece):
        print(piece, end="", flush=True)
        pieces.append(piece)

    print("[stream] " + prompt, end="", flush=True)
    usage = engine.stream_to(prompt, on_piece, raw_prompt=True, max_tokens=24, temperature=0.0)
    print()
    expect(len(pieces) > 0 and "".join(pieces) != "", f"stream delivered {len(pieces)} pieces")
    expect(0 < usage.completion_tokens <= 24, f"usage.completion_tokens = {usage.completion_tokens}")
    expect(usage.finish_reason in (rigllama.FINISH_LENGTH, rigllama.FINISH_STOP), f"finish_reason = {usage.finish_reason}")
    expect(usage.image_tokens == 0, f"a text request has no image tokens (usage.image_tokens = {usage.image_tokens})")


def cancel_job(engine):
    with engine.submit("Once upon a time", raw_prompt=True, max_tokens=32, temperature=0.0) as job:
        deadline = time.monotonic() + 60
        kind = rigllama.EVENT_NONE
        while kind == rigllama.EVENT_NONE and time.monotonic() < deadline:
            kind, status, text, message = job.poll(1000)
        expect(kind == rigllama.EVENT_TEXT, f"job produced text before the cancel (kind {kind})")
        job.cancel()
        while kind not in (rigllama.EVENT_DONE, rigllama.EVENT_ERROR) and time.monotonic() < deadline:
            kind, status, text, message = job.poll(1000)
        print(f"[cancel job] final event kind {kind}, status {status}, message {message!r}")
        expect(kind == rigllama.EVENT_ERROR and status == rigllama.CANCELLED, "cancelled job ended with ERROR/CANCELLED")


def logprobs_of_a_job(engine):
    """n_logprobs=3: LOGPROBS events carry a JSON array per batch of tokens, before their TEXT.
    At temperature 0 the chosen token is the most likely one, the first of top_logprobs."""
    entries, kind = [], rigllama.EVENT_NONE
    with engine.submit("The capital of France is", raw_prompt=True, max_tokens=8, temperature=0.0,
                       n_logprobs=3) as job:
        deadline = time.monotonic() + 60
        while kind not in (rigllama.EVENT_DONE, rigllama.EVENT_ERROR) and time.monotonic() < deadline:
            kind, status, text, message = job.poll(1000)
            if kind == rigllama.EVENT_LOGPROBS:
                entries += json.loads(text)  # malformed JSON raises: a failure too
    print(f"[logprobs] {[(e['token'], round(e['logprob'], 3)) for e in entries]}")
    ok = kind == rigllama.EVENT_DONE and len(entries) > 0
    for e in entries:
        top = [t["logprob"] for t in e["top_logprobs"]]
        ok = ok and (e["logprob"] <= 0 and 0 < len(top) <= 3 and top == sorted(top, reverse=True)
                     and (e["id"], e["token"]) == (e["top_logprobs"][0]["id"], e["top_logprobs"][0]["token"]))
    expect(ok, f"{len(entries)} logprobs entries, each <= 0 with at most 3 alternatives, the first one chosen "
               f"(kind {kind}, {message or 'ok'})")


def prompt_lookup(engine, plain):
    """draft_max=8: tokens guessed from the prompt are verified in the same decode; usage counts
    them (drafted_tokens) and the ones the sampler confirmed (accepted_tokens). plain is the
    usage of a request without draft_max (the default 0): it guesses nothing."""
    expect(plain.drafted_tokens == 0 and plain.accepted_tokens == 0,
           f"without draft_max nothing is guessed (drafted {plain.drafted_tokens}, accepted {plain.accepted_tokens})")
    prompt = ("Repeat exactly: the quick brown fox jumps over the lazy dog. "
              "the quick brown fox jumps over the lazy dog.")
    text, usage = engine.complete(prompt, raw_prompt=True, max_tokens=48, temperature=0.0, draft_max=8)
    print(f"[draft] {text!r}: {usage.completion_tokens} tokens, {usage.drafted_tokens} guessed, "
          f"{usage.accepted_tokens} accepted")
    expect(usage.drafted_tokens > 0 and usage.accepted_tokens <= usage.drafted_tokens,
           f"draft_max 8 guesses from a repeated prompt (drafted {usage.drafted_tokens}, "
           f"accepted {usage.accepted_tokens})")


def compare_sentences(engine):
    a, b, c = "The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly tax filings are due in April."
    va, vb, vc = engine.embed(a), engine.embed(b), engine.embed(c)
    similar = sum(x * y for x, y in zip(va, vb))  # vectors are L2-normalised: dot = cosine
    unrelated = sum(x * y for x, y in zip(va, vc))
    print(f"[embed] {len(va)} dims; {a!r} vs {b!r}: {similar:.3f}; vs {c!r}: {unrelated:.3f}")
    norm = sum(x * x for x in va) ** 0.5
    expect(abs(norm - 1.0) < 1e-3, f"the embedding is normalised (norm {norm:.6f})")
    expect(similar > unrelated, "the similar sentence is closer than the unrelated one")


def save_and_load_a_conversation(engine):
    messages = [{"role": "user", "content": "Name three rivers in Europe."}]
    reply, _ = engine.complete(messages=messages, max_tokens=16, temperature=0.0)
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "Which is the longest?"}]
    blob = engine.save_snapshot(messages=messages)
    engine.reset()
    engine.load_snapshot(blob)
    _, usage = engine.complete(messages=messages, max_tokens=8, temperature=0.0)
    print(f"[snapshot] {len(blob)} bytes; after reset and load, {usage.cached_prompt_tokens} of "
          f"{usage.prompt_tokens} prompt tokens came from it (dropped_tokens {usage.dropped_tokens})")
    expect(usage.cached_prompt_tokens > usage.prompt_tokens // 2, "the loaded snapshot is reused")
    try:
        engine.load_snapshot(blob[:-1])
        expect(False, "a truncated snapshot raises")
    except rigllama.RigllamaError as e:
        expect(e.status == rigllama.INVALID_ARGUMENT, f"a truncated snapshot raises: {e}")


def two_requests_at_once(model):
    """Two jobs on one n_seq=2 engine advance together, polled round-robin from this thread as a
    game's frame loop would; pause holds both (nothing arrives), resume lets both finish."""
    with rigllama.Engine(model, n_seq=2) as engine:
        npc = engine.submit("The blacksmith leaned on his anvil and told the travellers a long story about",
                            raw_prompt=True, max_tokens=40, temperature=0.0, priority=0)
        player = engine.submit("The player asked the guard where the exit was, and the guard said",
                               raw_prompt=True, max_tokens=24, temperature=0.0, priority=10)
        jobs = {"npc": npc, "player": player}
        texts = {name: [] for name in jobs}
        final = {}
        order = []  # names in the order their final events were polled

        def poll_round(duration_s):
            """Polls every job without blocking for duration_s; returns the TEXT pieces taken."""
            taken = 0
            until = time.monotonic() + duration_s
            while time.monotonic() < until and len(final) < len(jobs):
                idle = True
                for name, job in jobs.items():
                    if name in final:
                        continue
                    kind, status, text, message = job.poll(0)
                    if kind == rigllama.EVENT_TEXT:
                        texts[name].append(text)
                        taken += 1
                        idle = False
                    elif kind != rigllama.EVENT_NONE:
                        final[name] = (kind, status, message)
                        order.append(name)
                if idle:
                    time.sleep(0.002)
            return taken

        deadline = time.monotonic() + 60
        while min(len(t) for t in texts.values()) < 3 and not final and time.monotonic() < deadline:
            poll_round(0.01)
        expect(not final and all(len(t) >= 3 for t in texts.values()),
               f"both requests stream at once ({len(texts['npc'])} and {len(texts['player'])} pieces, none finished)")

        started = time.monotonic()
        engine.pause()
        print(f"[two at once] paused in {(time.monotonic() - started) * 1000:.1f} ms")
        poll_round(0.1)  # pieces already on their way may still arrive
        moved = poll_round(0.3)
        expect(moved == 0 and not final, f"nothing arrives while paused ({moved} pieces in 300 ms)")
        engine.resume()
        poll_round(60)

        for name, job in jobs.items():
            kind, status, message = final.get(name, (None, None, "no final event"))
            usage = job.usage() if kind == rigllama.EVENT_DONE else None
            print(f"[two at once] {name}: {''.join(texts[name])!r} ({usage.completion_tokens if usage else '-'} tokens)")
            expect(kind == rigllama.EVENT_DONE and usage.completion_tokens == (40 if name == "npc" else 24),
                   f"the {name}'s request finished after resume ({kind}, {message or 'ok'})")
            job.free()
        print(f"[two at once] finished in the order {order}")


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RIGLLAMA_MODEL")
    if not model:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"rigllama {rigllama.version()} from Python {sys.version.split()[0]}")
    problems = rigllama.check_layout()
    expect(not problems, "Structure sizes and offsets match the C header" + (": " + "; ".join(problems) if problems else ""))
    defaults = rigllama.default_options()
    expect(defaults.max_checkpoints == 32 and defaults.max_checkpoint_bytes == 512 << 20,
           f"options_init's checkpoint defaults: max_checkpoints {defaults.max_checkpoints} (32), "
           f"max_checkpoint_bytes {defaults.max_checkpoint_bytes} (512 MiB)")
    expect(defaults.mmproj_path is None, f"options_init's mmproj_path is NULL ({defaults.mmproj_path!r})")
    expect(defaults.thread_priority == rigllama.THREAD_PRIORITY_NORMAL,
           f"options_init's thread_priority is NORMAL ({defaults.thread_priority})")

    # Refused before any model loads, naming the value: the field reaches C at its offset.
    try:
        rigllama.Engine(model, thread_priority=7)
        expect(False, "thread_priority 7 raises")
    except rigllama.RigllamaError as e:
        expect(e.status == rigllama.INVALID_ARGUMENT and "thread_priority 7" in e.message,
               f"thread_priority 7 raises INVALID_ARGUMENT: {e}")

    # The default build has no vision: a projector is refused before any model loads.
    try:
        rigllama.Engine(model, mmproj_path="/nonexistent/mmproj.gguf")
        expect(False, "a projector without the mtmd feature raises")
    except rigllama.RigllamaError as e:
        expect(e.status == rigllama.INVALID_ARGUMENT and "mtmd" in e.message,
               f"a projector without the mtmd feature raises INVALID_ARGUMENT: {e}")

    missing = "/nonexistent/modèle-ü.gguf"  # goes in as UTF-8, must come back intact
    try:
        rigllama.Engine(missing)
        expect(False, "a missing model raises")
    except rigllama.RigllamaError as e:
        expect(e.status == rigllama.MODEL_LOAD_FAILED and missing in e.message, f"a missing model raises: {e}")

    progress = []
    with rigllama.Engine(model, on_progress=progress.append) as engine:
        expect(len(progress) > 0 and progress[-1] >= 0.99, f"progress callback ran {len(progress)} times")
        # A transformer's cache can be cut back to a prefix: no state checkpoints, default bounds.
        described = json.loads(engine.describe())
        checkpoints = described.get("checkpoints")
        expect(checkpoints == {"active": False, "count": 0, "bytes": 0, "max_count": 32, "max_bytes": 512 << 20},
               f"describe's checkpoints: none for this model, the default bounds ({checkpoints})")
        # n_threads is the threads used: never more than the cores this process may run on.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = described.get("n_threads")
        expect(isinstance(threads, int) and 1 <= threads <= cores,
               f"describe's n_threads {threads} is within this process's {cores} cores")
        expect(described.get("thread_priority") == "normal"
               and isinstance(described.get("thread_priority_applied"), bool),
               f"describe's thread_priority {described.get('thread_priority')!r}, "
               f"applied {described.get('thread_priority_applied')!r}")
        stream_reply(engine)
        cancel_job(engine)

        seen = []

        def stop_after_three(piece):
            seen.append(piece)
            return len(seen) < 3  # False stops generation

        usage = engine.stream_to("Once upon a time", stop_after_three, raw_prompt=True, max_tokens=16, temperature=0.0)
        expect(usage.finish_reason == rigllama.FINISH_CALLBACK and usage.completion_tokens == 3,
               f"returning False stops the stream (finish_reason {usage.finish_reason}, {usage.completion_tokens} tokens)")
        text, plain = engine.complete("Two plus two is", raw_prompt=True, max_tokens=4, temperature=0.0)
        expect(text != "", "the engine serves a request after the cancel")
        logprobs_of_a_job(engine)
        prompt_lookup(engine, plain)
        compare_sentences(engine)
        save_and_load_a_conversation(engine)
    two_requests_at_once(model)

    print("FAILED" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
