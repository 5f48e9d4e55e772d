#!/usr/bin/env python3
"""Render every conversation of conversations.json with every template of
scripts/fetch-templates through reference.py (one batch), and compare the failures with the
"skip" list of conversations.json.

usage: tests/templates/check.py [--write] [--show FAMILY CONVERSATION]

Exit status 0 when exactly the listed pairs fail. --write rewrites the skip list from what
failed (keeping the "reason" of pairs already listed). --show prints one rendering.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONVERSATIONS = os.path.join(HERE, "conversations.json")


def applies(conv, entry):
    sel = conv["templates"]
    if sel == "all":
        return True
    if sel in ("tools", "reasoning"):
        return bool(entry[sel])
    return entry["family"] in sel


def main():
    args = sys.argv[1:]
    write = "--write" in args
    show = None
    if "--show" in args:
        i = args.index("--show")
        show = tuple(args[i + 1:i + 3])
    tdir = subprocess.run([os.path.join(ROOT, "scripts", "fetch-templates")], check=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1]
    manifest = json.load(open(os.path.join(tdir, "manifest.json"), encoding="utf-8"))
    doc = json.load(open(CONVERSATIONS, encoding="utf-8"))

    pairs, requests = [], []
    for entry in manifest["templates"]:
        template = open(os.path.join(tdir, entry["file"]), encoding="utf-8").read()
        for conv in doc["conversations"]:
            if not applies(conv, entry):
                continue
            if show and show != (entry["family"], conv["name"]):
                continue
            pairs.append((entry["family"], conv["name"]))
            requests.append({
                "template": template, "messages": conv["messages"], "tools": conv["tools"],
                "add_generation_prompt": conv["add_generation_prompt"],
                "bos_token": doc["bos_token"], "eos_token": doc["eos_token"], "extra": conv["extra"],
            })
    proc = subprocess.run([sys.executable, os.path.join(HERE, "reference.py")],
                          input=json.dumps(requests).encode(), stdout=subprocess.PIPE)
    results = json.loads(proc.stdout)
    if show:
        if not results:
            sys.exit(f"check.py: no such pair {show}")
        r = results[0]
        sys.stdout.write(r if isinstance(r, str) else json.dumps(r) + "\n")
        return

    failed = {pair: r["error"] for pair, r in zip(pairs, results) if not isinstance(r, str)}
    listed = {(s["template"], s["conversation"]): s for s in doc["skip"]}
    for pair, r in zip(pairs, results):
        status = "FAIL " + r["error"] if pair in failed else f"ok   {len(r)} chars"
        print(f"{pair[0]:14} {pair[1]:18} {status}")
    print(f"{len(pairs) - len(failed)} of {len(pairs)} rendered", file=sys.stderr)

    if write:
        doc["skip"] = [
            {"template": f, "conversation": c, "error": err,
             "reason": listed.get((f, c), {}).get("reason", "")}
            for (f, c), err in failed.items()
        ]
        with open(CONVERSATIONS, "w", encoding="utf-8") as out:
            json.dump(doc, out, indent=2, ensure_ascii=False)
            out.write("\n")
        return
    unexpected = sorted(set(failed) - set(listed))
    now_ok = sorted(set(listed) - set(failed))
    for f, c in unexpected:
        print(f"unexpected failure: {f} x {c}: {failed[(f, c)]}", file=sys.stderr)
    for f, c in now_ok:
        print(f"listed in skip but renders: {f} x {c}", file=sys.stderr)
    sys.exit(1 if unexpected or now_ok else 0)


if __name__ == "__main__":
    main()
