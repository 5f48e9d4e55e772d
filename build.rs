//! Compiles `csrc/chat_shim.cpp`, rigllama's bridge to llama.cpp's `common` chat layer
//! (Jinja templates, tool-call formats, reasoning parsers, grammars), and
//! `csrc/memory_shim.cpp` (memory use by purpose) against the very
//! llama.cpp sources `llama-cpp-sys-2` built. Those sources are found through the CMake cache
//! of that build, reached from the `DEP_LLAMA_GGML_CMAKE_DIR` it exports (its `links =
//! "llama"` metadata), so the shim always matches the compiled `common` library.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/chat_shim.cpp");
    println!("cargo:rerun-if-changed=csrc/memory_shim.cpp");
    println!("cargo:rerun-if-changed=build.rs");
    let src = llama_source_dir();
    check_rpc_build();
    cc::Build::new()
        .cpp(true)
        .file("csrc/chat_shim.cpp")
        .file("csrc/memory_shim.cpp")
        .include(src.join("common"))
        .include(src.join("include"))
        .include(src.join("src"))
        .include(src.join("ggml/include"))
        .include(src.join("vendor"))
        .flag_if_supported("-std=c++17")
        .flag_if_supported("-fvisibility=hidden")
        .pic(true)
        .warnings(false)
        .compile("rigllama_chat_shim");
}

fn llama_source_dir() -> PathBuf {
    let cmake_dir = env::var("DEP_LLAMA_GGML_CMAKE_DIR").expect(
        "llama-cpp-sys-2 did not export DEP_LLAMA_GGML_CMAKE_DIR; rigllama's build needs the \
         llama.cpp sources it compiled",
    );
    // <out>/lib/cmake -> <out>/build/CMakeCache.txt
    let out = Path::new(&cmake_dir)
        .parent()
        .and_then(Path::parent)
        .expect("DEP_LLAMA_GGML_CMAKE_DIR has no parent directories");
    let cache = out.join("build").join("CMakeCache.txt");
    let text = fs::read_to_string(&cache)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", cache.display()));
    let dir = text
        .lines()
        .find_map(|line| line.strip_prefix("CMAKE_HOME_DIRECTORY:INTERNAL="))
        .unwrap_or_else(|| panic!("no CMAKE_HOME_DIRECTORY in {}", cache.display()));
    let dir = PathBuf::from(dir.trim());
    CACHE.with(|c| *c.borrow_mut() = text.clone());
    assert!(
        dir.join("common").join("chat.h").is_file(),
        "{} has no common/chat.h",
        dir.display()
    );
    dir
}

thread_local! {
    /// The CMake cache of llama.cpp's build, read by `llama_source_dir`.
    static CACHE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The `rpc` feature needs a llama.cpp built with GGML_RPC, which llama-cpp-sys-2 does only
/// when GGML_RPC=ON is in the environment of its (first) build: fail the build early with the
/// way to get one, rather than every engine at run time.
fn check_rpc_build() {
    if env::var_os("CARGO_FEATURE_RPC").is_none() {
        return;
    }
    let rpc_on = CACHE.with(|c| c.borrow().lines().any(|l| l.trim() == "GGML_RPC:BOOL=ON"));
    assert!(
        rpc_on,
        "the `rpc` feature needs llama.cpp built with GGML_RPC: build it into a target dir of \
         its own with GGML_RPC=ON GGML_RPC_RDMA=OFF in the environment (`make rpc-build`; \
         CARGO_TARGET_DIR=~/.cache/rigllama/target-rpc)"
    );
}
