"""Programs of llama.cpp's own tree (llama-bench, batched-bench, the embedding example...)
compiled unchanged against the exact static libraries of the llama-cpp-sys-2 build in a cargo
target dir, so that they run the same llama.cpp rigllama links. Shared by bench/run.py and
scripts/build-llama-tool.

llama-cpp-sys-2 ships llama.cpp without its tools/ and examples/ sources, so those come from
the llama-cpp-python source package (fetched once with pip into the cache, then used offline);
they are compiled with the headers of the crate's own llama.cpp and linked with its libraries.
Binaries go to <cache>/bench/<name> and are rebuilt only when the target dir's libllama.a is
newer than them, or when they were built from another target dir.

The scripts find this module through their own directory; bench/run.py adds scripts/ itself.
"""
import collections
import glob
import os
import shutil
import subprocess
import sys
import tarfile

from rigllama_fixtures import cache_dir

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
SDIST = "llama_cpp_python-0.3.36"
# The llama-cpp-sys-2 whose llama.cpp sources give the headers (Cargo.lock pins it).
SYS_CRATE = "llama-cpp-sys-2-0.1.161"

# The libraries a program that uses llama.cpp's common/ library links, relative to the crate's
# build output (OUT_DIR): lib/ holds what its CMake build installs, build/ the rest.
LLAMA_LIBS = ("build/common/libllama-common.a", "build/common/libllama-common-base.a", "lib/libllama.a",
              "lib/libggml.a", "lib/libggml-cpu.a", "lib/libggml-base.a", "build/vendor/hash/libvendor-hash.a",
              "build/vendor/cpp-httplib/libcpp-httplib.a")
SYSTEM_LIBS = ("-lssl", "-lcrypto", "-lpthread", "-ldl", "-lm")

# where: "tools" or "examples"; directory: under it in llama.cpp's tree; sources: the files of
# that directory its CMakeLists.txt compiles; binary: the name in <cache>/bench; libs: as
# LLAMA_LIBS; needs: what to tell someone whose build lacks one of the libs.
# target: the target dir under <cache> used when CARGO_TARGET_DIR is unset (None: <cache>/target).
Tool = collections.namedtuple("Tool", "where directory sources binary libs needs target",
                              defaults=(LLAMA_LIBS, None, None))

TOOLS = {
    "bench": Tool("tools", "llama-bench", ("llama-bench.cpp", "main.cpp"), "llama-bench"),
    # CMake builds batched-bench.cpp as a library (llama-batched-bench-impl) and main.cpp
    # against it; one command line does the same.
    "batched-bench": Tool("tools", "batched-bench", ("batched-bench.cpp", "main.cpp"), "llama-batched-bench"),
    "embedding": Tool("examples", "embedding", ("embedding.cpp",), "llama-embedding"),
    "lookup": Tool("examples", "lookup", ("lookup.cpp",), "llama-lookup"),
    # tools/rpc: llama.cpp's RPC server. It links only ggml, with ggml's RPC backend, which
    # llama.cpp builds only with GGML_RPC=ON: llama-cpp-sys-2 passes GGML_* variables from the
    # environment to CMake, so it comes from the target dir `make rpc-build` makes with
    # GGML_RPC=ON GGML_RPC_RDMA=OFF (CARGO_TARGET_DIR, else <cache>/target-rpc). The same
    # llama.cpp as the `rpc` library: the same protocol version.
    "rpc-server": Tool("tools", "rpc", ("rpc-server.cpp",), "rpc-server",
                       libs=("lib/libggml.a", "lib/libggml-rpc.a", "lib/libggml-cpu.a",
                             "lib/libggml-base.a"),
                       needs="a llama-cpp-sys-2 build with GGML_RPC=ON (make rpc-build)",
                       target="target-rpc"),
}

_prog = "build-llama-tool"


def set_prog(name):
    """The name the messages of this module start with (bench/run.py: "bench")."""
    global _prog
    _prog = name


def log(message):
    print(f"{_prog}: {message}", file=sys.stderr, flush=True)


def _run(cmd, env=None, timeout=1800):
    merged = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, env=merged, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"{_prog}: failed ({proc.returncode}): {' '.join(cmd)}")
    return proc.stdout


def bench_cache():
    """Where the sdist and the built programs are kept: <cache>/bench."""
    return os.path.join(cache_dir(), "bench")


def default_target():
    """The cargo target dir: CARGO_TARGET_DIR, else <cache>/target (what the Makefile uses)."""
    target = os.environ.get("CARGO_TARGET_DIR")
    return os.path.abspath(target) if target else os.path.join(cache_dir(), "target")


def llama_sys_out(target):
    """The llama-cpp-sys-2 build output (static libs + headers) of a cargo target dir: of
    several, the one with the newest libllama.a."""
    outs = glob.glob(os.path.join(target, "release/build/llama-cpp-sys-2-*/out"))
    outs = [o for o in outs if os.path.exists(os.path.join(o, "lib/libllama.a"))]
    if not outs:
        raise SystemExit(f"{_prog}: no llama.cpp build under {target}; run `make lib` first")
    return max(outs, key=lambda o: os.path.getmtime(os.path.join(o, "lib/libllama.a")))


def llama_cpp_source():
    """The llama.cpp sources of the llama-cpp-sys-2 crate (its headers)."""
    home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    found = glob.glob(os.path.join(home, f"registry/src/*/{SYS_CRATE}/llama.cpp"))
    if not found:
        raise SystemExit(f"{_prog}: {SYS_CRATE} is not in {home}/registry/src; run `make lib` first")
    return found[0]


def ensure_apt(package, probe_path):
    if os.path.exists(probe_path) or glob.glob(probe_path):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {package}")
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "install", "-y", "-qq", package], env={"DEBIAN_FRONTEND": "noninteractive"})
    else:
        raise SystemExit(f"{_prog}: {package} is needed: sudo apt-get install -y {package}")


def llama_cpp_python_sdist():
    """The llama-cpp-python source package, for llama.cpp's tools/ and examples/ (pip, once)."""
    cache = bench_cache()
    os.makedirs(cache, exist_ok=True)
    tarball = os.path.join(cache, f"{SDIST}.tar.gz")
    if not os.path.exists(tarball):
        log("fetching the llama-cpp-python source package (for llama.cpp's tools' sources)")
        _run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
              "--quiet", "--disable-pip-version-check", LLAMA_CPP_PYTHON, "-d", cache])
    return tarball


def _record(binary):
    return binary + ".built-from"


def _up_to_date(binary, out):
    """Built after `out`'s libllama.a, and from `out` (a binary from before these records
    exist is taken as from `out`)."""
    if not os.path.exists(binary):
        return False
    if os.path.getmtime(binary) <= os.path.getmtime(os.path.join(out, "lib/libllama.a")):
        return False
    try:
        with open(_record(binary)) as f:
            return f.read().strip() == out
    except FileNotFoundError:
        return True


def build_llama_tool(target, tool, sources, name, where="tools", libs=LLAMA_LIBS, needs=None):
    """A program of llama.cpp's tree (<where>/<tool> of the llama-cpp-python sdist: tools/ or
    examples/) compiled unchanged against the exact llama.cpp libraries rigllama links; the
    path of the binary, <cache>/bench/<name>."""
    out = llama_sys_out(target)
    cache = bench_cache()
    binary = os.path.join(cache, name)
    if _up_to_date(binary, out):
        return binary
    missing = [lib for lib in libs if not os.path.exists(os.path.join(out, lib))]
    if missing:
        raise SystemExit(f"{_prog}: {name} needs {', '.join(missing)} in {out}"
                         + (f": {needs}" if needs else ""))
    ensure_apt("libssl-dev", "/usr/lib/*/libssl.so")
    tarball = llama_cpp_python_sdist()
    tools = f"{SDIST}/vendor/llama.cpp/{where}/{tool}"
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(tools + "/")]
        if not members:
            raise SystemExit(f"{_prog}: {tarball} has no {tools}")
        tar.extractall(cache, members=members, filter="data")
    src = llama_cpp_source()
    log(f"building {name} against {out}")
    tool_dir = os.path.join(cache, tools)
    part = binary + ".part"
    _run(["c++", "-O2", "-std=c++17", f"-I{out}/include", f"-I{src}/common", f"-I{src}/include",
          f"-I{src}/ggml/include", f"-I{src}/vendor", *[f"{tool_dir}/{s}" for s in sources],
          "-o", part, *[os.path.join(out, lib) for lib in libs], *SYSTEM_LIBS])
    os.replace(part, binary)
    with open(_record(binary), "w") as f:
        f.write(out + "\n")
    return binary


def build(key, target=None, name=None):
    """TOOLS[key] built against `target` (default: default_target()) as <cache>/bench/<name>
    (default: the tool's own binary name); the binary's path."""
    t = TOOLS[key]
    if target is None and t.target and not os.environ.get("CARGO_TARGET_DIR"):
        target = os.path.join(cache_dir(), t.target)
    return build_llama_tool(target or default_target(), t.directory, t.sources, name or t.binary,
                            where=t.where, libs=t.libs, needs=t.needs)
