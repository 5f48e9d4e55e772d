# rigllama — the two commands a new user types are `make demo` and `make test`.
#
# Builds go to a cargo target dir outside the clone so a fresh clone reuses llama.cpp's
# ~4-minute build; override with CARGO_TARGET_DIR=... . The default model is fetched once into
# ~/.cache/rigllama (RIGLLAMA_MODEL overrides it).

SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(HOME)/.cache/rigllama/target
export CARGO_TARGET_DIR
LIBDIR := $(CARGO_TARGET_DIR)/release
BUILD := build
CC ?= cc
CXX ?= c++
CFLAGS := -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -g -Iinclude
LDLIBS := -L$(LIBDIR) -Wl,-rpath,$(LIBDIR) -lrigllama -lpthread
EXAMPLES := complete stream chat cancel reload frame_loop save_game json_output npc_tools describe_image
C_TESTS := test_contract test_jobs test_memcheck test_snapshot test_batching test_structured test_knobs test_speculation test_checkpoints test_vision test_host test_tokens
MODEL = $$(scripts/fetch-model)
# Model-loading tests run one at a time: two thread pools on these cores collapse ggml.
TEST_THREADS := --test-threads=1
# Vision (cargo feature `mtmd`) builds into its own target dir, so the default library (and
# its build) stay as they were: `make vision-tests` builds it, the fixture projector and a
# test picture, runs tests/vision.rs, the C example and test_vision against it, and prints
# both libraries' sizes.
MTMD_TARGET_DIR ?= $(HOME)/.cache/rigllama/target-mtmd
MTMD_LIBDIR := $(MTMD_TARGET_DIR)/release
MTMD_FEATURES := mtmd,fault-injection
MMPROJ = $$(dirname "$(MODEL)")/gemma3-270m-mmproj-random.gguf
# RPC (cargo feature `rpc`: model layers on llama.cpp rpc-servers) needs llama.cpp built with
# GGML_RPC, which llama-cpp-sys-2 does only with GGML_RPC=ON in the environment: its own target
# dir, always built with the same GGML_* variables (build.rs re-runs only for those set on its
# previous run). A cold build there is ~9 minutes on 2 cores.
RPC_TARGET_DIR ?= $(HOME)/.cache/rigllama/target-rpc
RPC_ENV := CARGO_TARGET_DIR=$(RPC_TARGET_DIR) GGML_RPC=ON GGML_RPC_RDMA=OFF
RPC_FEATURES := rpc
# Vulkan (cargo feature `vulkan`): llama.cpp's Vulkan backend, built against the headers, loader
# and glslc that scripts/vulkan-sdk prepares (on Debian 12 the headers come from Debian 13; see
# the script), in its own target dir. On a machine without a GPU the device is Mesa's lavapipe
# (Vulkan on the CPU), which ggml skips unless GGML_VK_VISIBLE_DEVICES names it; tests/vulkan.rs
# sets that itself: in cargo's environment llama-cpp-sys-2 would pass it to CMake as a GGML_*
# option and rebuild llama.cpp whenever it changed. A cold build there took 25.5 minutes on 2
# busy cores, ~7.5 of them compiling ggml's ~150 compute shaders.
VULKAN_TARGET_DIR ?= $(HOME)/.cache/rigllama/target-vulkan
VULKAN_FEATURES := vulkan

# Runtime CPU variants (cargo feature `dynamic-backends`): llama.cpp and ggml as shared libraries
# and ggml's CPU code as one module per x86-64 level, the best this CPU runs loaded at run time.
# Its own target dir (a cold llama.cpp build of all the variants).
DYNBACK_TARGET_DIR ?= $(HOME)/.cache/rigllama/target-dynback
DYNBACK_LIBDIR := $(DYNBACK_TARGET_DIR)/release
# `make install PREFIX=... [DESTDIR=...]`
PREFIX ?= /usr/local

.PHONY: all demo test deps model lib import-check header header-check examples c-tests rust-tests rig-examples \
        run-examples lang-clients cmake-test dist dist-test go-test python-test nuget csharp-test package-tests vision-build vision-tests rpc-build rpc-server rpc-test vulkan-build vulkan-test dynback-build dynback-test dynback-install test-valgrind-vision install install-test clean bench bench-quick bench-batched bench-host bench-structured bench-kv bench-lookup stress test-valgrind test-valgrind-quick

all: lib

deps:
	@scripts/install-deps

model: deps
	@scripts/fetch-model >/dev/null

lib: deps
	cargo build --release

# Regenerates include/rigllama.h from src/ffi.
header:
	UPDATE_HEADER=1 cargo test --release --test header

$(BUILD):
	@mkdir -p $(BUILD)

$(BUILD)/%: examples-c/%.c include/rigllama.h lib | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

$(BUILD)/test_%: tests/c/test_%.c include/rigllama.h lib | $(BUILD)
	$(CC) $(CFLAGS) -D_POSIX_C_SOURCE=200809L $< -o $@ $(LDLIBS)

# Built against the frozen v0.1 header (tests/abi/) only: old programs must keep working.
$(BUILD)/abi_v0_1_client: tests/abi/v0_1_client.c tests/abi/rigllama-v0.1.h lib | $(BUILD)
	$(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -g -D_POSIX_C_SOURCE=200809L -Itests/abi $< -o $@ $(LDLIBS)

examples: $(addprefix $(BUILD)/,$(EXAMPLES))

demo: model examples
	@echo
	@echo "== streaming a reply from C (examples-c/stream.c) =="
	@$(BUILD)/stream "$(MODEL)" "Once upon a time, in a small village by the sea,"

# The header compiles alone as C99 and as C++17, so does rigllama.hpp as C++17, and the library
# exports only rigllama_*.
header-check: lib | $(BUILD)
	cargo test --release --test header
	printf '#include "rigllama.h"\nint main(void) { return 0; }\n' > $(BUILD)/header_only.c
	$(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -Iinclude -c $(BUILD)/header_only.c -o $(BUILD)/header_only.o
	$(CXX) -std=c++17 -Wall -Wextra -Wpedantic -Werror -Iinclude -x c++ -c $(BUILD)/header_only.c -o $(BUILD)/header_only_cpp.o
	printf '#include "rigllama.hpp"\nint main() { return 0; }\n' > $(BUILD)/hpp_only.cpp
	$(CXX) -std=c++17 -Wall -Wextra -Wpedantic -Werror -Iinclude -c $(BUILD)/hpp_only.cpp -o $(BUILD)/hpp_only.o
	@leaked=$$(nm -D --defined-only $(LIBDIR)/librigllama.so | awk '{print $$3}' | grep -v '^rigllama_' || true); \
	if [ -n "$$leaked" ]; then echo "symbols other than rigllama_* exported:"; echo "$$leaked" | head; exit 1; fi; \
	echo "header-check: header compiles as C99 and C++17; librigllama.so exports only rigllama_* ($$(nm -D --defined-only $(LIBDIR)/librigllama.so | grep -c ' rigllama_') symbols)"

rust-tests: model
	RIGLLAMA_MODEL="$(MODEL)" cargo test --release --features fault-injection -- $(TEST_THREADS)
	RIGLLAMA_MODEL="$(MODEL)" cargo test --release -p rigllama-gguf-check -p rigllama-snapshot-format

# The Rig adapter's examples, run against the real model.
rig-examples: model
	cargo build --release --examples
	$(CARGO_TARGET_DIR)/release/examples/rig_agent "$(MODEL)"
	$(CARGO_TARGET_DIR)/release/examples/rig_stream "$(MODEL)" "The lighthouse keeper"

c-tests: model examples $(addprefix $(BUILD)/,$(C_TESTS)) $(BUILD)/abi_v0_1_client
	RIGLLAMA_MODEL="$(MODEL)" scripts/run-c-tests $(BUILD)

# The C++, Go, C# and Python clients (toolchains installed with apt when root, else SKIPPED).
lang-clients: model lib | $(BUILD)
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" scripts/run-lang-clients $(BUILD)

# lib/librigllama.so.X.Y.Z (SONAME librigllama.so.X) + symlinks, lib/librigllama.a,
# include/rigllama.h and rigllama.hpp, lib/pkgconfig/rigllama.pc, lib/cmake/rigllama/ (CMake
# package), share/doc/rigllama/ (licenses) under $(PREFIX).
install: lib
	DESTDIR="$(DESTDIR)" RIGLLAMA_LIBDIR="$(LIBDIR)" scripts/install "$(PREFIX)"

# Installs into a temporary prefix and builds a C example with nothing but pkg-config.
install-test: model lib
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" tests/install/run

# The CMake package: tests/cmake configured with find_package(rigllama 0.x CONFIG REQUIRED) against
# a temporary prefix, built, and run against the model (shared, static, C++).
cmake-test: model lib
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" tests/cmake/run

# The Go module (bindings/go): go vet, go test ./... against the model through pkg-config from
# a temporary prefix, the build without pkg-config, examples-go (golang-go installed with apt
# when root, else SKIPPED).
go-test: model lib
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" tests/go/run

# The Python package (bindings/python): the wheel (librigllama.so inside) built with pip, checked
# with auditwheel, installed into a fresh venv; mypy --strict and pytest against the model there,
# then examples-python. Needs the package index (hatchling, pytest, mypy, auditwheel).
python-test: model lib
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" tests/python/run

# The C# package: dist/Rigllama.VERSION/ (lib/netstandard2.0/Rigllama.dll, runtimes/linux-x64/native/
# librigllama.so, the .nuspec) and dist/Rigllama.VERSION.nupkg (nuget pack), built with Mono.
nuget: lib
	RIGLLAMA_LIBDIR="$(LIBDIR)" scripts/nuget-package dist

# Builds that package, then runs its NUnit tests and examples-csharp against the unpacked .nupkg
# (mono-devel, nuget, nunit-console installed with apt when root).
csharp-test: model lib
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" tests/csharp/run

# Every package's own test runner: CMake, the release archive, Go, Python, C#.
package-tests: cmake-test dist-test go-test python-test csharp-test

# The release archive: dist/rigllama-VERSION-linux-ARCH.tar.gz (stripped .so with its SONAME and
# links, .a, headers, pkg-config and CMake files, licenses, a README) and its .sha256.
dist: lib
	RIGLLAMA_LIBDIR="$(LIBDIR)" scripts/dist dist

# Builds the archive (twice: the same bytes) into a temporary directory, unpacks it into an empty
# one, checks its contents, builds and runs a C program and tests/cmake against it. A given
# archive: tests/dist/run dist/rigllama-....tar.gz
dist-test: model lib
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(LIBDIR)" tests/dist/run

# The mtmd library, the C programs built against it, and the fixture projector and picture.
vision-build: model | $(BUILD)
	CARGO_TARGET_DIR=$(MTMD_TARGET_DIR) cargo build --release --features $(MTMD_FEATURES)
	@mkdir -p $(BUILD)/mtmd
	$(CC) $(CFLAGS) examples-c/describe_image.c -o $(BUILD)/mtmd/describe_image -L$(MTMD_LIBDIR) -Wl,-rpath,$(MTMD_LIBDIR) -lrigllama -lpthread
	$(CC) $(CFLAGS) -D_POSIX_C_SOURCE=200809L tests/c/test_vision.c -o $(BUILD)/mtmd/test_vision -L$(MTMD_LIBDIR) -Wl,-rpath,$(MTMD_LIBDIR) -lrigllama -lpthread
	@scripts/make-vision-projector "$(MODEL)" "$(MMPROJ)" >/dev/null
	@scripts/make-test-image $(BUILD)/mtmd/picture.png >/dev/null

vision-tests: vision-build
	CARGO_TARGET_DIR=$(MTMD_TARGET_DIR) RIGLLAMA_MODEL="$(MODEL)" cargo test --release --features $(MTMD_FEATURES) --test vision -- $(TEST_THREADS)
	$(BUILD)/mtmd/describe_image "$(MODEL)" "$(MMPROJ)" $(BUILD)/mtmd/picture.png
	RIGLLAMA_MMPROJ="$(MMPROJ)" RIGLLAMA_TEST_IMAGE=$(BUILD)/mtmd/picture.png $(BUILD)/mtmd/test_vision "$(MODEL)"
	@echo "vision-tests: librigllama.so $$(stat -c %s $(LIBDIR)/librigllama.so) bytes without mtmd, $$(stat -c %s $(MTMD_LIBDIR)/librigllama.so) with"

# test_vision against the mtmd library under memcheck (~4 minutes): mtmd's allocations too.
test-valgrind-vision: vision-build
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_MMPROJ="$(MMPROJ)" RIGLLAMA_TEST_IMAGE=$(BUILD)/mtmd/picture.png scripts/run-valgrind $(BUILD)/mtmd test_vision

# The rpc library (librigllama with the `rpc` feature) in its own target dir.
rpc-build: model
	$(RPC_ENV) cargo build --release --features $(RPC_FEATURES)

# llama.cpp's rpc-server from the same sources, linked with that build's libraries
# (~/.cache/rigllama/bench/rpc-server).
rpc-server: rpc-build
	CARGO_TARGET_DIR=$(RPC_TARGET_DIR) scripts/build-llama-tool rpc-server

# tests/rpc.rs on loopback: two rpc-servers (one thread each) against the local engine's greedy
# text, describe's devices and layers, unreachable/closed/garbage/wrong-version servers, reload,
# and a server killed mid-request in a child process (its abort message reaches the log callback).
# Not in `make test`: a cold llama.cpp build of its own (~9 minutes here).
rpc-test: rpc-server
	$(RPC_ENV) RIGLLAMA_MODEL="$(MODEL)" cargo test --release --features $(RPC_FEATURES) --lib -- rpc
	$(RPC_ENV) RIGLLAMA_MODEL="$(MODEL)" cargo test --release --features $(RPC_FEATURES) --test rpc -- $(TEST_THREADS) --nocapture

# The vulkan library (librigllama with the `vulkan` feature) in its own target dir.
vulkan-build: model
	sdk="$$(scripts/vulkan-sdk)" && CARGO_TARGET_DIR=$(VULKAN_TARGET_DIR) VULKAN_SDK="$$sdk" \
		cargo build --release --features $(VULKAN_FEATURES)

# tests/vulkan.rs: every layer on the Vulkan device (lavapipe here) against the CPU engine of the
# same build: greedy tokens on the oracle prompts, where llama.cpp put the layers, tok/s (about
# 2 minutes on lavapipe). Not in `make test`: a cold llama.cpp build of its own.
vulkan-test: vulkan-build
	sdk="$$(scripts/vulkan-sdk)" && CARGO_TARGET_DIR=$(VULKAN_TARGET_DIR) VULKAN_SDK="$$sdk" RIGLLAMA_MODEL="$(MODEL)" \
		cargo test --release --features $(VULKAN_FEATURES) --test vulkan -- $(TEST_THREADS) --nocapture
	sdk="$$(scripts/vulkan-sdk)" && CARGO_TARGET_DIR=$(VULKAN_TARGET_DIR) VULKAN_SDK="$$sdk" RIGLLAMA_MODEL="$(MODEL)" \
		cargo test --release --features $(VULKAN_FEATURES) --test vulkan_fallback -- $(TEST_THREADS) --nocapture

# The dynamic-backends library: target-dynback/release holds librigllama.so, llama.cpp's and
# ggml's shared libraries and the CPU modules (libggml-cpu-x64.so ... -zen4.so), side by side.
dynback-build: deps
	CARGO_TARGET_DIR=$(DYNBACK_TARGET_DIR) cargo build --release --features dynamic-backends

# tests/dynback/run: the library from a directory holding only the baseline module answers the
# greedy oracle prompts as the static build does; with all modules it picks the one this CPU's
# flags call for; the directory overrides; no module → a clear error; and on an emulated CPU
# without AVX (qemu-x86_64 -cpu Nehalem, if installed) it picks sse42, where the static library
# dies of SIGILL. Not in `make test`: a cold llama.cpp build of its own.
dynback-test: model dynback-build
	RIGLLAMA_MODEL="$(MODEL)" RIGLLAMA_LIBDIR="$(DYNBACK_LIBDIR)" \
	RIGLLAMA_STATIC_LIB="$$([ -f $(LIBDIR)/librigllama.so ] && echo $(LIBDIR)/librigllama.so)" \
	tests/dynback/run

# `make install` of the dynamic-backends library: the modules and libraries beside librigllama.so.
dynback-install: dynback-build
	DESTDIR="$(DESTDIR)" RIGLLAMA_LIBDIR="$(DYNBACK_LIBDIR)" scripts/install "$(PREFIX)"

# No file under src/ imports a file that imports it back.
import-check:
	scripts/import-graph

test: deps model lib import-check header-check rust-tests rig-examples c-tests lang-clients install-test package-tests vision-tests
	@echo "make test: all passed"

# The C examples and tests under valgrind memcheck (slow: tens of minutes).
test-valgrind: model examples $(addprefix $(BUILD)/,$(C_TESTS))
	RIGLLAMA_MODEL="$(MODEL)" scripts/run-valgrind $(BUILD)

# Every C API path once under memcheck (tests/c/test_memcheck.c, ~10 minutes): what CI runs.
test-valgrind-quick: model $(BUILD)/test_memcheck
	RIGLLAMA_MODEL="$(MODEL)" scripts/run-valgrind $(BUILD) test_memcheck

# Soak tests: 8 threads x 50 requests, concurrent engines, 1000 create/destroy cycles and 100
# reloads with RSS/threads/fds flat, 100 destroys mid-stream. Several minutes.
stress: model lib
	RIGLLAMA_MODEL="$(MODEL)" cargo test --release --test stress -- --ignored $(TEST_THREADS) --nocapture

# Speed and memory against llama.cpp's own llama-bench and against peers (bench/run.py).
# Not part of `make test`: it builds peers once (~15 minutes) and wants an idle machine.
bench: model lib
	python3 bench/run.py

# rigllama vs llama-bench, prompt and generation only (about 2 minutes).
bench-quick: model lib
	python3 bench/run.py --quick

# rigllama with 1, 2, 4, 8 streams at once vs llama.cpp's batched-bench (a few minutes).
bench-batched: model lib
	python3 bench/run.py --batched

# rigllama as a guest in a host's process (about 2 minutes): one, two and three engines
# generating at once, idle CPU after a reply, and a 60 Hz loop's frame work beside an engine.
bench-host: model lib | $(BUILD)
	$(CC) $(CFLAGS) -D_GNU_SOURCE bench/host.c -o $(BUILD)/bench_host $(LDLIBS) -lm
	$(BUILD)/bench_host "$(MODEL)"

# What json_schema and GBNF constraints cost per generated token (about a minute).
bench-structured: model lib
	python3 bench/run.py --structured

# KV cache types and flash attention: memory and speed against llama-bench (a few minutes).
bench-kv: model lib
	python3 bench/run.py --kv

# Prompt-lookup speculation on four workloads: against plain decoding, llama-bench tg128 and
# llama.cpp's own lookup example (several minutes).
bench-lookup: model lib
	python3 bench/run.py --lookup

clean:
	rm -rf $(BUILD)
