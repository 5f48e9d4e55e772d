# Sourced by the shell test runners (tests/{install,cmake,dist,go,python,csharp}/run, and
# scripts/run-lang-clients for ensure): a counting check helper, toolchain installation, and the
# version numbers. The sourcing script sets $work (a scratch directory) and $root (the
# repository) first.
#
#   check NAME COMMAND...   runs COMMAND, its output kept in $work/last.log; prints "ok    NAME"
#                           or "FAIL  NAME" and the log's last lines
#   finish RUNNER           prints "RUNNER: N passed, N failed"; returns non-zero on a failure
#   ensure COMMAND PACKAGE...  makes COMMAND available, installing the Debian PACKAGEs with apt
#                           when running as root; on failure sets $reason (what to do) and fails
#   skip_runner RUNNER REASON  prints "SKIPPED RUNNER: REASON" and exits: 0, or 1 when
#                           RIGLLAMA_REQUIRE_ALL_CLIENTS=1 (CI that must not skip a language)
#   fixture_models MODEL    exports the models the fill-in-the-middle and rerank tests read:
#                           RIGLLAMA_FIM_MODEL (unless set: scripts/make-fim-model MODEL into the
#                           cache; failing to make it counts as a failure) and RIGLLAMA_RERANK_MODEL
#                           (unless set: scripts/make-reranker-model MODEL into the cache, the same),
#                           and the control-vector tests' directory, RIGLLAMA_CONTROL_VECTOR_DIR
#                           (unless set: scripts/make-control-vector MODEL into the cache's
#                           models/control-vectors, the same), and the per-request LoRA tests'
#                           adapters, RIGLLAMA_LORA_DIR (unless set: scripts/make-lora-adapter
#                           MODEL into the cache's models/lora, the same)
passed=0
failed=0
reason=""
apt_updated=0
version="$("$root/scripts/version")"
abi_series="$("$root/scripts/version" --abi)"
soname="librigllama.so.$abi_series"

check() {
    local name="$1"; shift
    if "$@" >"$work/last.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name; last lines:"
        tail -n 20 "$work/last.log" | sed 's/^/      /'
    fi
}

finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

ensure() {
    local cmd="$1"; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        reason="$cmd not found; install it with: sudo apt-get install -y $*"
        return 1
    fi
    local log="$work/apt.log"
    if [ "$apt_updated" = 0 ]; then
        echo "      installing $* (apt-get update first) ..."
        if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get update -qq >>"$log" 2>&1; then
            reason="apt-get update failed: $(tail -n 3 "$log" | tr '\n' ' ')"
            return 1
        fi
        apt_updated=1
    else
        echo "      installing $* ..."
    fi
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "$@" >>"$log" 2>&1; then
        reason="apt-get install $* failed: $(tail -n 3 "$log" | tr '\n' ' ')"
        return 1
    fi
    if ! command -v "$cmd" >/dev/null 2>&1; then
        reason="$cmd still not found after apt-get install $*"
        return 1
    fi
}

skip_runner() {
    echo "SKIPPED $1: $2"
    [ "${RIGLLAMA_REQUIRE_ALL_CLIENTS:-0}" = 1 ] && exit 1
    exit 0
}

# fixture VAR WHAT SCRIPT DEST: unless VAR is set, runs scripts/SCRIPT MODEL DEST and exports
# VAR as the file it printed last (or, for a fixture directory, DEST itself); a failure counts.
fixture() {
    local var="$1" what="$2" script="$3" model="$4" dest="$5" made
    [ -n "${!var:-}" ] && return 0
    if made="$("$root/scripts/$script" "$model" "$dest" 2>"$work/$script.log" | tail -n 1)" && [ -f "$made" ]; then
        if [ -d "$dest" ]; then
            export "$var=$dest"
        else
            export "$var=$made"
        fi
    else
        failed=$((failed + 1))
        echo "FAIL  scripts/$script ($what); last lines:"
        tail -n 20 "$work/$script.log" | sed 's/^/      /'
    fi
}

fixture_models() {
    local model="$1" models="${RIGLLAMA_CACHE:-$HOME/.cache/rigllama}/models"
    fixture RIGLLAMA_FIM_MODEL "the fill-in-the-middle tests' model" make-fim-model "$model" \
        "$models/fim-gemma3-270m.gguf"
    fixture RIGLLAMA_RERANK_MODEL "the rerank tests' model" make-reranker-model "$model" \
        "$models/bert-reranker-3x64-random.gguf"
    fixture RIGLLAMA_CONTROL_VECTOR_DIR "the control-vector tests' fixtures" make-control-vector "$model" \
        "$models/control-vectors"
    fixture RIGLLAMA_LORA_DIR "the per-request LoRA tests' adapters" make-lora-adapter "$model" \
        "$models/lora"
}
