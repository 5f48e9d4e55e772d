#!/usr/bin/env python3
"""Streams a reply with the rigllama package, then cancels a second request submitted as a job,
then stops a third by leaving the loop. A user of the package (bindings/python); its tests
check the binding itself.

    usage: stream_and_cancel.py MODEL.gguf     (pip install rigllama-*.whl first)
"""

import sys
import time

import rigllama


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"rigllama {rigllama.version()} from Python {sys.version.split()[0]} ({rigllama.library_path})")
    with rigllama.Engine(sys.argv[1]) as engine:
        prompt = "The three primary colors are"
        print("[stream] " + prompt, end="", flush=True)
        with engine.submit(prompt, raw_prompt=True, max_tokens=24, temperature=0.0) as job:
            for piece in job.pieces():
                print(piece, end="", flush=True)
            usage = job.usage()
        print(f"\n[stream] {usage.completion_tokens} tokens in {usage.generation_ms:.0f} ms ({usage.finish_reason.name})")

        # A job polled once per "frame", cancelled after its first piece.
        with engine.submit("Once upon a time", raw_prompt=True, max_tokens=200) as job:
            started = time.monotonic()
            while True:
                event = job.poll(0)  # never blocks
                if event.kind == rigllama.EventKind.TEXT:
                    job.cancel()
                if event.final:
                    break
                time.sleep(1 / 60)  # the rest of the frame
            print(f"[job] ended with {event.status.name} after {time.monotonic() - started:.2f} s: {event.message}")
            if event.status != rigllama.Status.CANCELLED:
                return 1

        # Leaving the loop cancels the request.
        pieces = 0
        for _ in engine.stream("The lighthouse keeper", raw_prompt=True, max_tokens=200):
            pieces += 1
            if pieces == 5:
                break
        text, usage = engine.complete("Two plus two is", raw_prompt=True, max_tokens=4, temperature=0.0)
        print(f"[after break] the engine answers at once: {text!r} ({usage.prompt_ms:.0f} ms prompt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
