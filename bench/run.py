#!/usr/bin/env python3
"""`make bench` / `make bench-quick`: rigllama against llama.cpp's own llama-bench and against
its peers, in one run, on the default model with 2 threads.

Everything slow to build (llama-bench, the peers, the AVX-512 variant) is built at bench time
into ~/.cache/rigllama/bench and reused; nothing built here is committed. Model-loading
processes run one at a time. Results: bench/results/<time>.json and .md, and latest.md.

--batched runs only the many-streams comparison (a few minutes): rigllama's aggregate generation
speed with 1, 2, 4 and 8 concurrent streams (n_seq = streams) against llama.cpp's batched-bench
with the same prompt and generation lengths, threads and KV cache settings.

--structured measures only what grammar-constrained sampling (json_schema, GBNF) adds per
generated token against the same request unconstrained (about a minute).

usage: bench/run.py [--quick | --batched | --structured] [--reps N]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import llama_tools  # noqa: E402  (scripts/llama_tools.py: llama.cpp's own programs, built)

llama_tools.set_prog("bench")
CACHE = os.environ.get("RIGLLAMA_CACHE", os.path.expanduser("~/.cache/rigllama"))
BENCH_CACHE = os.path.join(CACHE, "bench")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(CACHE, "target"))
AVX512_TARGET = os.path.join(CACHE, "target-avx512")
LLAMA_CPP_PYTHON = llama_tools.LLAMA_CPP_PYTHON
AVX512_ENV = {k: "ON" for k in ("GGML_AVX512", "GGML_AVX512_VBMI", "GGML_AVX512_VNNI",
                                 "GGML_AVX512_BF16", "GGML_AVX_VNNI")}
THREADS = 2
# Many streams at once, as batched-bench -npp 64 -ntg 96 -npl 1,2,4,8 -c 2048.
BATCHED_NPL = (1, 2, 4, 8)
BATCHED_NPP = 64
BATCHED_NTG = 96
BATCHED_CTX = 2048


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(cmd, env=None, timeout=1800, cwd=None):
    """Runs a command and returns its stdout; fails loudly with its stderr."""
    merged = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, env=merged, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"bench: failed ({proc.returncode}): {' '.join(cmd)}")
    return proc.stdout


def peak_rss_mb(cmd, env=None):
    """Runs `cmd` in a fresh Python child so RUSAGE_CHILDREN holds only its peak RSS."""
    probe = ("import resource, subprocess, sys\n"
             "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    code, kb = run([sys.executable, "-c", probe, *cmd], env=env).split()
    if code != "0":
        raise SystemExit(f"bench: {' '.join(cmd)} exited {code}")
    return int(kb) / 1024.0


def stats(values):
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def build_llama_bench(target, name):
    """llama-bench.cpp compiled unchanged against the exact llama.cpp libraries rigllama links."""
    return llama_tools.build("bench", target, name)


def build_batched_bench(target, name):
    """llama.cpp's batched-bench (tools/batched-bench), built the same way."""
    return llama_tools.build("batched-bench", target, name)


def llama_bench(binary, model, reps):
    """pp64, pp512 and tg128, each `reps` times: the per-run samples llama-bench records."""
    out = run([binary, "-m", model, "-t", str(THREADS), "-p", "64,512", "-n", "128", "-r", str(reps),
               "-o", "json"])
    results = {}
    for test in json.loads(out):
        key = f"pp{test['n_prompt']}" if test["n_gen"] == 0 else f"tg{test['n_gen']}"
        results[key] = stats(test["samples_ts"])
    return results


def batched_bench(binary, model, samples):
    """batched-bench once, its S_TG and S_PP added to `samples`. Its context is set up as
    rigllama's: n_batch = n_ubatch = 512, one unified KV cache for all sequences (-kvu),
    full-size sliding-window cache (--swa-full)."""
    out = run([binary, "-m", model, "-t", str(THREADS), "-tb", str(THREADS), "-c", str(BATCHED_CTX),
               "-b", "512", "-ub", "512", "-kvu", "--swa-full", "-npp", str(BATCHED_NPP),
               "-ntg", str(BATCHED_NTG), "-npl", ",".join(map(str, BATCHED_NPL)), "--output-format", "jsonl"])
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            s = samples.setdefault(str(r["pl"]), {"s_tg_tok_s": [], "s_pp_tok_s": []})
            s["s_tg_tok_s"].append(r["speed_tg"])
            s["s_pp_tok_s"].append(r["speed_pp"])
    missing = [n for n in BATCHED_NPL if str(n) not in samples]
    if missing:
        raise SystemExit(f"bench: batched-bench printed no result for {missing} streams")


def rigllama_batched(binary, libdir, model, samples):
    """rigllama_bench's batched mode once, in its own process: N jobs submitted at once (engine
    paused, so they start in the same step), polled round-robin from one thread."""
    out = json.loads(run([binary, model, "batched", ",".join(map(str, BATCHED_NPL)), str(BATCHED_NPP),
                          str(BATCHED_NTG), str(BATCHED_CTX)], env={"LD_LIBRARY_PATH": libdir}))
    for r in out["runs"]:
        if r["generated"] != r["streams"] * BATCHED_NTG or r["cached_prompt_tokens"]:
            log(f"warning: {r['streams']} streams generated {r['generated']} tokens "
                f"({r['cached_prompt_tokens']} prompt tokens from cache)")
        s = samples.setdefault(str(r["streams"]), {"s_tg_tok_s": [], "engine_s_tg_tok_s": [], "s_pp_tok_s": [],
                                                   "first_token_spread_ms": []})
        for key in s:
            s[key].append(r[key])


def build_rigllama_bench(libdir, name):
    binary = os.path.join(ROOT, "build", name)
    os.makedirs(os.path.dirname(binary), exist_ok=True)
    run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{ROOT}/include",
         f"{ROOT}/bench/rigllama_bench.c", "-o", binary, f"-L{libdir}", "-lrigllama"])
    return binary


def rigllama_speed(binary, libdir, model, reps):
    """The C bench in `reps` separate processes (so each run pays its own warm-up), merged."""
    merged = {}
    for _ in range(reps):
        result = json.loads(run([binary, model, "speed", "1"], env={"LD_LIBRARY_PATH": libdir}))
        for key, value in result.items():
            merged.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    return {k: stats(v) for k, v in merged.items() if k != "threads"}


RIG_PROMPT = "Tell me a long story about a lighthouse keeper."


def rig_vs_c(rl_binary, libdir, model, reps):
    """The same greedy chat request through Rig's model.stream and through the C stream."""
    run(["cargo", "build", "--release", "--examples"], cwd=ROOT)
    example = os.path.join(TARGET, "release/examples/rig_stream")
    rig, c = [], []
    for _ in range(reps):
        out = subprocess.run([example, model, RIG_PROMPT, "128"], capture_output=True, text=True, check=True)
        line = next(l for l in out.stderr.splitlines() if "tokens/s through model.stream" in l)
        rig.append(float(line.split(" tokens/s")[0].split()[-1]))
        c.append(json.loads(run([rl_binary, model, "chat", RIG_PROMPT, "128"],
                                env={"LD_LIBRARY_PATH": libdir}))["tg_wall_tok_s"])
    return {"rig_model_stream_tok_s": stats(rig), "c_stream_tok_s": stats(c)}


def llama_cpp_python_venv(name, cmake_args):
    """A venv with llama-cpp-python built from source (several minutes, once per variant)."""
    venv = os.path.join(BENCH_CACHE, name)
    python = os.path.join(venv, "bin/python")
    if not os.path.exists(python):
        run([sys.executable, "-m", "venv", venv])
    if run([python, "-c", "import importlib.util; print(bool(importlib.util.find_spec('llama_cpp')))"]).strip() != "True":
        log(f"building llama-cpp-python from source into {name} (several minutes, once)")
        # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS, so a cached build of the other
        # variant would be reused.
        run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir",
             "--no-binary", "llama-cpp-python", LLAMA_CPP_PYTHON], env={"CMAKE_ARGS": cmake_args}, timeout=3600)
    return python


def peers(model, reps):
    results = {}
    script = os.path.join(ROOT, "bench/peers/llama_cpp_python_peer.py")
    # Out of the box, pip builds llama.cpp with GGML_NATIVE=ON; on CPUs with AMX that path
    # crashes in the first decode (see FACTS.md). Record what happens, then measure a portable
    # build (the same flags rigllama uses).
    native = llama_cpp_python_venv("venv-llama-cpp-python", "")
    probe = subprocess.run([native, script, model, "8"], capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        results["llama-cpp-python (pip source build, out of the box)"] = {
            "failed": f"exit {probe.returncode} (signal {-probe.returncode if probe.returncode < 0 else 0}) "
                      "in its first decode: GGML_NATIVE=ON enables ggml's AMX path on this CPU"}
    python = llama_cpp_python_venv("venv-llama-cpp-python-portable", "-DGGML_NATIVE=OFF")
    for label, extra in (("portable build, default threads", []), (f"portable build, n_threads={THREADS}", [str(THREADS)])):
        runs = [json.loads(run([python, script, model, "128", *extra], timeout=1200)) for _ in range(reps)]
        results[f"llama-cpp-python ({label})"] = summarize_peer(runs)

    # rig-llama-cpp 0.6 through Rig. Its API has no thread setting, so only out of the box;
    # llama.cpp's default of 4 threads on 2 cores makes it very slow, hence 16 tokens.
    target = os.path.join(BENCH_CACHE, "target-rig-llama-cpp")
    manifest = os.path.join(ROOT, "bench/peers/rig_llama_cpp/Cargo.toml")
    log("building the rig-llama-cpp peer (several minutes, once)")
    run(["cargo", "build", "--release", "--manifest-path", manifest], env={"CARGO_TARGET_DIR": target},
        timeout=3600)
    binary = os.path.join(target, "release/rig-llama-cpp-peer")
    runs = [json.loads(run([binary, model, "16"], timeout=1200)) for _ in range(reps)]
    results["rig-llama-cpp 0.6 (out of the box, 16 tokens)"] = summarize_peer(runs)
    return results


def summarize_peer(runs):
    return {key: stats([r[key] for r in runs]) for key in ("load_ms", "ttft_ms", "tg_tok_s")}


def avx512_variant(model, reps):
    flags = open("/proc/cpuinfo").read()
    if " avx512f" not in flags:
        return {"skipped": "this CPU has no AVX-512"}
    log("building the AVX-512 variant of rigllama (a clean llama.cpp build, once)")
    run(["cargo", "build", "--release", "--lib"], cwd=ROOT,
        env=dict(AVX512_ENV, CARGO_TARGET_DIR=AVX512_TARGET), timeout=3600)
    libdir = os.path.join(AVX512_TARGET, "release")
    bench = build_rigllama_bench(libdir, "rigllama_bench_avx512")
    return {
        "rigllama": rigllama_speed(bench, libdir, model, reps),
        "llama-bench": llama_bench(build_llama_bench(AVX512_TARGET, "llama-bench-avx512"), model, reps),
    }


def ratio(a, b):
    return a["median"] / b["median"] if b["median"] else float("nan")


def fmt(s, digits=1):
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def batched_report(results):
    b = results["batched"]
    rl, bb = b["rigllama"], b["batched-bench"]
    one_rl, one_bb = rl[str(BATCHED_NPL[0])]["s_tg_tok_s"], bb[str(BATCHED_NPL[0])]["s_tg_tok_s"]
    lines = [
        f"Many streams at once: {BATCHED_NPP}-token prompts, {BATCHED_NTG} greedy tokens each, {THREADS} threads, "
        f"n_ctx {BATCHED_CTX}. rigllama: N jobs on an n_seq = N engine, submitted while paused so they start "
        f"together, polled round-robin from one thread; S_TG = tokens after each stream's first / time from the "
        f"first stream's first token to the last stream's end. batched-bench: `-npp {BATCHED_NPP} -ntg {BATCHED_NTG} "
        f"-npl {','.join(map(str, BATCHED_NPL))} -c {BATCHED_CTX} -b 512 -ub 512 -kvu --swa-full` (rigllama's KV "
        f"settings), its S_TG. Median (min–max) of {results['reps']} runs.",
        "",
        "| streams | rigllama aggregate S_TG, tok/s | batched-bench S_TG, tok/s | ratio | rigllama / its 1 stream "
        "| batched-bench / its 1 stream |",
        "|---|---|---|---|---|---|",
    ]
    for n in BATCHED_NPL:
        r, l = rl[str(n)]["s_tg_tok_s"], bb[str(n)]["s_tg_tok_s"]
        lines.append(f"| {n} | {fmt(r)} | {fmt(l)} | {ratio(r, l):.3f} | {ratio(r, one_rl):.2f}× | {ratio(l, one_bb):.2f}× |")
    if "4" in rl:
        lines += ["", f"rigllama with 4 streams: {ratio(rl['4']['s_tg_tok_s'], one_rl):.2f}× its single-stream "
                      f"generation speed ({rl['4']['s_tg_tok_s']['median']:.1f} vs {one_rl['median']:.1f} tok/s)."]
    lines += ["", "Beside it: rigllama's S_TG by the engine's own clock (usage.generation_ms), the prompt phase "
                  "(all prompt tokens / resume to the last stream's first token) against batched-bench's S_PP, and "
                  "the time between the first and the last stream's first token.", "",
              "| streams | rigllama S_TG, engine clock | rigllama prompt phase, tok/s | batched-bench S_PP, tok/s "
              "| rigllama first-token spread, ms |",
              "|---|---|---|---|---|"]
    for n in BATCHED_NPL:
        r = rl[str(n)]
        lines.append(f"| {n} | {fmt(r['engine_s_tg_tok_s'])} | {fmt(r['s_pp_tok_s'])} | {fmt(bb[str(n)]['s_pp_tok_s'])} | "
                     f"{fmt(r['first_token_spread_ms'], 2)} |")
    return lines


def report(results):
    if "llama-bench" not in results and "structured" in results:  # --structured
        return "\n".join([f"# rigllama bench (constrained sampling) — {results['when']}", "",
                          f"Model `{os.path.basename(results['model'])}`, {results['cpu']}, "
                          f"median of {results['reps']} runs.", "",
                          *structured_report(results["structured"])]) + "\n"
    if "llama-bench" not in results and "lookup" in results:  # --lookup
        return "\n".join([f"# rigllama bench (prompt-lookup speculation) — {results['when']}", "",
                          f"Model `{os.path.basename(results['model'])}`, {results['cpu']}, "
                          f"{results['threads']} threads; median (min–max) of {results['reps']} runs.", "",
                          *lookup_report(results["lookup"])]) + "\n"
    if "llama-bench" not in results and "kv" in results:  # --kv
        return "\n".join([f"# rigllama bench (KV cache types) — {results['when']}", "",
                          f"Model `{os.path.basename(results['model'])}`, {results['cpu']}, "
                          f"{results['threads']} threads; each figure tok/s, median (min–max) of "
                          f"{results['reps']} runs, llama-bench in the same invocation.", "",
                          *kv_report(results["kv"])]) + "\n"
    if "llama-bench" not in results:  # --batched
        return "\n".join([f"# rigllama bench (many streams) — {results['when']}", "",
                          f"Model `{os.path.basename(results['model'])}`, {results['cpu']}.", "",
                          *batched_report(results)]) + "\n"
    lb, rl = results["llama-bench"], results["rigllama"]
    lines = [
        f"# rigllama bench — {results['when']}",
        "",
        f"Model `{os.path.basename(results['model'])}`, {THREADS} threads, {results['cpu']}. "
        f"Each figure: median (min–max) of {results['reps']} runs.",
        "",
        "| measure | llama-bench | rigllama (C ABI, stream) | ratio | target |",
        "|---|---|---|---|---|",
        f"| prompt eval pp64, tok/s | {fmt(lb['pp64'])} | {fmt(rl['pp64_tok_s'])} | {ratio(rl['pp64_tok_s'], lb['pp64']):.3f} | ≥ 0.95 |",
        f"| prompt eval pp512, tok/s | {fmt(lb['pp512'])} | {fmt(rl['pp512_tok_s'])} | {ratio(rl['pp512_tok_s'], lb['pp512']):.3f} | ≥ 0.95 |",
        f"| generation tg128, tok/s (engine clock) | {fmt(lb['tg128'])} | {fmt(rl['tg128_tok_s'])} | {ratio(rl['tg128_tok_s'], lb['tg128']):.3f} | ≥ 0.96 |",
        f"| generation tg128, tok/s (callback wall clock) | {fmt(lb['tg128'])} | {fmt(rl['tg128_wall_tok_s'])} | {ratio(rl['tg128_wall_tok_s'], lb['tg128']):.3f} | ≥ 0.96 |",
        *([f"| generation tg128 with the default sampling settings, tok/s (engine clock) | {fmt(lb['tg128'])} | "
           f"{fmt(rl['tg128_sampled_tok_s'])} | {ratio(rl['tg128_sampled_tok_s'], lb['tg128']):.3f} | ≥ 0.96 |"]
          if "tg128_sampled_tok_s" in rl else []),
        "",
        "| rigllama measure | value | target |",
        "|---|---|---|",
        f"| time to first token (short prompt), ms | {fmt(rl['ttft_ms'])} | |",
        f"| call overhead per delivered piece, µs (upper bound of the callback path) | {fmt(rl['callback_overhead_us'], 2)} | < 5 |",
        f"| load time, ms | {fmt(rl['load_ms'])} | |",
        f"| multi-turn: turn-1 TTFT, ms | {fmt(rl['turn1_ttft_ms'])} | |",
        f"| multi-turn: turn-2 TTFT, ms | {fmt(rl['turn2_ttft_ms'])} | ≤ 0.3 × turn 1 |",
        f"| multi-turn: turn-2 / turn-1 TTFT | {ratio(rl['turn2_ttft_ms'], rl['turn1_ttft_ms']):.3f} | ≤ 0.3 |",
        f"| multi-turn: turn-2 cached tokens / turn-1 prompt+reply | {fmt(rl['turn2_cached_ratio'], 3)} | |",
        *([f"| long multi-turn: turn 1 of {rl['long_turn1_prompt_tokens']['median']:.0f} tokens (system prompt + "
           f"2 exchanges + a user line), TTFT ms | {fmt(rl['long_turn1_ttft_ms'])} | |",
           f"| long multi-turn: turn 2 (its reply + the next user line), TTFT ms | {fmt(rl['long_turn2_ttft_ms'])} | |",
           f"| long multi-turn: turn-2 / turn-1 TTFT | "
           f"{ratio(rl['long_turn2_ttft_ms'], rl['long_turn1_ttft_ms']):.3f} | ≤ 0.1 |",
           f"| long multi-turn: turn-2 prompt share from cache | {fmt(rl['long_turn2_cached_share'], 3)} | |"]
          if "long_turn1_ttft_ms" in rl else []),
    ]
    if "rig" in results:
        r = results["rig"]
        lines += ["", "| same greedy chat request, 128 tokens | tok/s (callback / event wall clock) |", "|---|---|",
                  f"| C ABI `rigllama_engine_stream` | {fmt(r['c_stream_tok_s'], 2)} |",
                  f"| Rig `model.stream` (rigllama::rig) | {fmt(r['rig_model_stream_tok_s'], 2)} |",
                  f"| ratio Rig / C | {ratio(r['rig_model_stream_tok_s'], r['c_stream_tok_s']):.3f} |"]
    if "rss" in results:
        r = results["rss"]
        lines += ["", "| peak RSS at n_ctx 512, MB | llama-bench (-p 512 -n 128) | rigllama (384-token prompt + 128) | difference | target |",
                  "|---|---|---|---|---|",
                  f"| | {r['llama-bench']:.1f} | {r['rigllama']:.1f} | {r['rigllama'] - r['llama-bench']:+.1f} | ≤ +10 |"]
    if "peers" in results:
        lines += ["", "| peer (same model, prompt, greedy) | load ms | TTFT ms | generation tok/s | rigllama TTFT / peer | rigllama tg / peer |",
                  "|---|---|---|---|---|---|"]
        for name, p in results["peers"].items():
            if "failed" in p:
                lines.append(f"| {name} | failed: {p['failed']} | | | | |")
                continue
            lines.append(f"| {name} | {fmt(p['load_ms'])} | {fmt(p['ttft_ms'])} | {fmt(p['tg_tok_s'], 2)} | "
                         f"{ratio(rl['ttft_ms'], p['ttft_ms']):.3f} | {ratio(rl['tg128_wall_tok_s'], p['tg_tok_s']):.2f} |")
    if "avx512" in results:
        v = results["avx512"]
        if "skipped" in v:
            lines += ["", f"AVX-512 variant: skipped ({v['skipped']})."]
        else:
            lines += ["", "| build variant | rigllama pp512 tok/s | rigllama tg128 tok/s | llama-bench pp512 | llama-bench tg128 |",
                      "|---|---|---|---|---|",
                      f"| portable (default) | {fmt(rl['pp512_tok_s'])} | {fmt(rl['tg128_tok_s'])} | {fmt(lb['pp512'])} | {fmt(lb['tg128'])} |",
                      f"| AVX-512 flags | {fmt(v['rigllama']['pp512_tok_s'])} | {fmt(v['rigllama']['tg128_tok_s'])} | {fmt(v['llama-bench']['pp512'])} | {fmt(v['llama-bench']['tg128'])} |"]
    if "batched" in results:
        lines += ["", *batched_report(results)]
    if "structured" in results:
        lines += ["", *structured_report(results["structured"])]
    if "kv" in results:
        lines += ["", *kv_report(results["kv"])]
    if "lookup" in results:
        lines += ["", *lookup_report(results["lookup"])]
    return "\n".join(lines) + "\n"


def run_structured(libdir, model, reps):
    """ms per generated token of one chat request free, under a JSON Schema and under a GBNF
    grammar (bench/rigllama_bench.c structured)."""
    rl_binary = build_rigllama_bench(libdir, "rigllama_bench")
    log("constrained vs free generation")
    out = json.loads(run([rl_binary, model, "structured", str(reps)], env={"LD_LIBRARY_PATH": libdir}))
    return {k: (stats(v) if isinstance(v, list) else v) for k, v in out.items()}


def structured_report(s):
    lines = ["## Constrained sampling: ms per generated token (same chat request, engine time)",
             "",
             "| sampling | free | json_schema | ratio | gbnf | ratio |",
             "|---|---|---|---|---|---|"]
    for mode in ("greedy", "sampled"):
        free = s[f"free_{mode}_ms_per_token"]["median"]
        schema = s[f"json_schema_{mode}_ms_per_token"]["median"]
        gbnf = s[f"gbnf_{mode}_ms_per_token"]["median"]
        lines.append(f"| {mode} | {free:.2f} | {schema:.2f} | {schema / free:.3f} | {gbnf:.2f} | {gbnf / free:.3f} |")
    lines += ["", "Tokens per reply: " + ", ".join(f"{k.replace('_tokens', '')} {v}" for k, v in s.items()
                                                   if k.endswith("_tokens"))]
    return lines


# (cache type, flash attention) pairs, as bench/rigllama_bench.c's KV_CONFIGS lists them.
KV_CONFIGS = [("f16", False), ("f16", True), ("q8_0", True), ("q4_0", True)]


def run_kv(target, libdir, model, reps):
    """Per KV cache type and flash-attention setting: rigllama's KV bytes at n_ctx 4096, pp512
    and tg128, against llama-bench with the same -ctk/-ctv/-fa in the same invocation."""
    lb_binary = build_llama_bench(target, "llama-bench")
    rl_binary = build_rigllama_bench(libdir, "rigllama_bench")
    log("rigllama per KV type")
    rl = json.loads(run([rl_binary, model, "kv", str(reps)], env={"LD_LIBRARY_PATH": libdir}))
    rows = []
    for (kv, flash), r in zip(KV_CONFIGS, rl["runs"]):
        assert (r["type"], r["flash_attention"]) == (kv, flash), r
        log(f"llama-bench -ctk {kv} -ctv {kv} -fa {int(flash)}")
        out = run([lb_binary, "-m", model, "-t", str(THREADS), "-p", "512", "-n", "128", "-r", str(reps),
                   "-ctk", kv, "-ctv", kv, "-fa", "1" if flash else "0", "-o", "json"])
        lb = {}
        for test in json.loads(out):
            lb["pp512" if test["n_gen"] == 0 else "tg128"] = stats(test["samples_ts"])
        rows.append({"type": kv, "flash_attention": flash, "kv_cache_bytes": r["kv_cache_bytes"],
                     "rigllama": {"pp512": stats(r["pp512"]), "tg128": stats(r["tg128"])}, "llama-bench": lb})
    return {"n_ctx": rl["n_ctx"], "rows": rows}


def kv_report(k):
    lines = [f"## KV cache types and flash attention (n_ctx {k['n_ctx']}; K and V of the same type)",
             "",
             "| K/V type | flash attention | KV cache, MiB | pp512 llama-bench | pp512 rigllama | ratio "
             "| tg128 llama-bench | tg128 rigllama | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in k["rows"]:
        cells = [r["type"], "on" if r["flash_attention"] else "off", f"{r['kv_cache_bytes'] / 2**20:.1f}"]
        for test in ("pp512", "tg128"):
            lb, rl = r["llama-bench"][test], r["rigllama"][test]
            cells += [fmt(lb), fmt(rl), f"{ratio(rl, lb):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def run_batched(target, libdir, model, reps):
    bb_binary = build_batched_bench(target, "llama-batched-bench")
    rl_binary = build_rigllama_bench(libdir, "rigllama_bench")
    bb, rl = {}, {}
    # Alternated, so a machine that slows down mid-run slows both alike.
    for rep in range(reps):
        log(f"batched-bench, then rigllama with many streams ({rep + 1} of {reps})")
        batched_bench(bb_binary, model, bb)
        rigllama_batched(rl_binary, libdir, model, rl)

    def summary(samples):
        return {n: {k: stats(v) for k, v in s.items()} for n, s in samples.items()}
    return {"batched-bench": summary(bb), "rigllama": summary(rl)}


# Speculation workloads (bench/workloads/*.txt): what a reply copies from its prompt, and one
# that copies nothing in particular.
LOOKUP_WORKLOADS = [("code edit", "code_edit.txt", 0.0), ("quotes", "quotes.txt", 0.0),
                    ("JSON extraction", "extract.txt", 0.0), ("summary", "summary.txt", 0.0),
                    ("free form", "free_form.txt", 0.0),
                    # Sampled, the reply repeats itself less: the guesses' worst case.
                    ("free form, temperature 1", "free_form.txt", 1.0)]
LOOKUP_TOKENS = 300
LOOKUP_DRAFT = 8


def gemma_chat(text):
    """The default model's chat template around one user turn: llama.cpp's lookup example takes
    a raw prompt, so both get the same tokens (BOS added by both)."""
    return f"<start_of_turn>user\n{text.strip()}<end_of_turn>\n<start_of_turn>model\n"


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b)))


def run_lookup(target, libdir, model, reps):
    """Per workload: rigllama greedy with draft_max 0 and 8 (alternating, from an empty cache),
    llama.cpp's lookup example with the same draft length, and llama-bench tg128, all in this
    invocation."""
    lb_binary = build_llama_bench(target, "llama-bench")
    lookup_binary = llama_tools.build("lookup", target, "llama-lookup")
    rl_binary = build_rigllama_bench(libdir, "rigllama_bench")
    log("llama-bench tg128")
    out = run([lb_binary, "-m", model, "-t", str(THREADS), "-p", "0", "-n", "128", "-r", str(reps), "-o", "json"])
    tg128 = stats(json.loads(out)[0]["samples_ts"])
    rows = []
    work = tempfile.mkdtemp(prefix="rigllama-lookup-")
    for name, file, temperature in LOOKUP_WORKLOADS:
        prompt_file = os.path.join(work, file)
        with open(os.path.join(ROOT, "bench/workloads", file)) as f:
            prompt_text = gemma_chat(f.read())
        with open(prompt_file, "w") as f:
            f.write(prompt_text)
        log(f"rigllama, {name}")
        rl = json.loads(run([rl_binary, model, "lookup", prompt_file, str(LOOKUP_TOKENS), str(LOOKUP_DRAFT),
                             str(reps), work, str(temperature)], env={"LD_LIBRARY_PATH": libdir}))
        texts = {k: open(os.path.join(work, f"{k}.txt")).read() for k in ("plain", "guessed")}
        log(f"llama.cpp lookup, {name}")
        lk = {"ts": [], "drafted": 0, "accepted": 0}
        for _ in range(reps):
            cmd = [lookup_binary, "-m", model, "-t", str(THREADS), "-c", "4096", "-n", str(LOOKUP_TOKENS),
                   "--spec-draft-n-max", str(LOOKUP_DRAFT), "--temp", str(temperature), "--seed", "1234",
                   # -p, not -f: -f drops the prompt's final newline (a token of the template).
                   "-p", prompt_text]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise SystemExit(f"bench: failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
            speed = re.search(r"decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t/s", proc.stderr)
            if not speed:
                raise SystemExit(f"bench: llama-lookup printed no speed:\n{proc.stderr[-2000:]}")
            lk["ts"].append(float(speed.group(1)))
            lk["drafted"] = int(re.search(r"n_drafted\s+=\s+(\d+)", proc.stderr).group(1))
            lk["accepted"] = int(re.search(r"n_accept\s+=\s+(\d+)", proc.stderr).group(1))
            # stdout: the prompt as tokens, the reply, two newlines; the prompt ends with the
            # model turn's header.
            header = "<start_of_turn>model\n"
            at = proc.stdout.find(header)
            lk["text"] = proc.stdout[at + len(header):-2] if at >= 0 else None
        # lookup may run a few tokens past -n: compare what both produced.
        plain = texts["plain"]
        lookup_text = lk.pop("text")
        n = min(len(plain), len(lookup_text)) if lookup_text is not None else 0
        lk["first_difference_from_plain"] = (first_difference(plain[:n], lookup_text[:n])
                                             if lookup_text is not None else "unparsed")
        if temperature > 0:
            # llama.cpp's sampler chain and rigllama's draw differently from the same seed.
            lk["first_difference_from_plain"] = "n/a (sampled)"
        rows.append({"workload": name, "rigllama": {"plain": stats(rl["plain"]), "guessed": stats(rl["guessed"]),
                                                     "tokens": rl["tokens"], "drafted": rl["drafted"],
                                                     "accepted": rl["accepted"]},
                     "same_text": texts["plain"] == texts["guessed"],
                     "first_difference": first_difference(texts["plain"], texts["guessed"]),
                     "lookup": {"ts": stats(lk["ts"]), "drafted": lk["drafted"], "accepted": lk["accepted"],
                                "first_difference_from_plain": lk["first_difference_from_plain"]}})
    shutil.rmtree(work, ignore_errors=True)
    return {"tg128": tg128, "tokens": LOOKUP_TOKENS, "draft": LOOKUP_DRAFT, "rows": rows}


def lookup_vs_plain(difference):
    if difference is None:
        return "same"
    return f"to byte {difference}" if isinstance(difference, int) else difference


def lookup_report(k):
    lines = [f"## Prompt-lookup speculation ({k['tokens']} greedy tokens, draft_max {k['draft']}, "
             f"llama-bench tg128 {fmt(k['tg128'])} tok/s in the same run)",
             "",
             "Generation speed, tok/s (median; the tg128 measure: tokens after the first over generation time). "
             "llama.cpp's lookup example runs the same raw prompt with `--spec-draft-n-max` the same.",
             "",
             "| workload | plain | guessed | guessed / plain | guessed / llama-bench tg128 | accepted / drafted "
             "| same text as plain | llama.cpp lookup | its accepted / drafted | lookup's text vs rigllama plain |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in k["rows"]:
        rl = r["rigllama"]
        same = "yes" if r["same_text"] else f"to byte {r['first_difference']}"
        lines.append("| " + " | ".join([
            r["workload"], fmt(rl["plain"]), fmt(rl["guessed"]), f"{ratio(rl['guessed'], rl['plain']):.2f}",
            f"{ratio(rl['guessed'], k['tg128']):.2f}",
            f"{rl['accepted']} / {rl['drafted']} ({100 * rl['accepted'] / max(rl['drafted'], 1):.0f}%)", same,
            fmt(r["lookup"]["ts"]), f"{r['lookup']['accepted']} / {r['lookup']['drafted']}",
            lookup_vs_plain(r["lookup"]["first_difference_from_plain"])]) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="llama-bench vs rigllama pp/tg only")
    parser.add_argument("--batched", action="store_true",
                        help="only rigllama with 1, 2, 4, 8 streams at once vs llama.cpp's batched-bench")
    parser.add_argument("--structured", action="store_true",
                        help="only the cost of grammar-constrained sampling per token")
    parser.add_argument("--kv", action="store_true",
                        help="only KV cache types and flash attention: memory and speed vs llama-bench")
    parser.add_argument("--lookup", action="store_true",
                        help="only prompt-lookup speculation on the workloads vs plain decoding and llama.cpp's lookup")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    model = run([os.path.join(ROOT, "scripts/fetch-model")]).strip().splitlines()[-1]
    libdir = os.path.join(TARGET, "release")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    results = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "model": model, "cpu": cpu,
               "reps": args.reps, "threads": THREADS}
    if args.batched:
        results["batched"] = run_batched(TARGET, libdir, model, args.reps)
        write_results(results, "-batched", "latest-batched.md")
        return
    if args.structured:
        results["structured"] = run_structured(libdir, model, args.reps)
        write_results(results, "-structured", "latest-structured.md")
        return
    if args.lookup:
        results["lookup"] = run_lookup(TARGET, libdir, model, args.reps)
        write_results(results, "-lookup", "latest-lookup.md")
        return
    if args.kv:
        results["kv"] = run_kv(TARGET, libdir, model, args.reps)
        write_results(results, "-kv", "latest-kv.md")
        return
    lb_binary = build_llama_bench(TARGET, "llama-bench")
    rl_binary = build_rigllama_bench(libdir, "rigllama_bench")
    log("llama-bench")
    results["llama-bench"] = llama_bench(lb_binary, model, args.reps)
    log("rigllama")
    results["rigllama"] = rigllama_speed(rl_binary, libdir, model, args.reps)
    if not args.quick:
        log("Rig model.stream vs C stream")
        results["rig"] = rig_vs_c(rl_binary, libdir, model, args.reps)
        log("peak RSS")
        results["rss"] = {
            "llama-bench": peak_rss_mb([lb_binary, "-m", model, "-t", str(THREADS), "-p", "512", "-n", "128", "-r", "1"]),
            "rigllama": peak_rss_mb([rl_binary, model, "rss", "512"], env={"LD_LIBRARY_PATH": libdir}),
        }
        results["structured"] = run_structured(libdir, model, args.reps)
        results["kv"] = run_kv(TARGET, libdir, model, args.reps)
        results["lookup"] = run_lookup(TARGET, libdir, model, args.reps)
        log("many streams at once")
        results["batched"] = run_batched(TARGET, libdir, model, args.reps)
        log("peers")
        results["peers"] = peers(model, args.reps)
        results["avx512"] = avx512_variant(model, args.reps)
    write_results(results, "-quick" if args.quick else "", "latest-quick.md" if args.quick else "latest.md")


def write_results(results, suffix, latest):
    out_dir = os.path.join(ROOT, "bench/results")
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + suffix
    # The measurements first: a report that fails to format must not lose them.
    with open(os.path.join(out_dir, f"{stamp}.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = report(results)
    for name in (f"{stamp}.md", latest):
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(table)
    print(table)


if __name__ == "__main__":
    main()
