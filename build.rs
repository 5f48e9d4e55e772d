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
    place_backend_modules();
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

/// The `dynamic-backends` build: llama.cpp and ggml are shared libraries and ggml's backends
/// modules (`libggml-cpu-<level>.so`), which rigllama loads from the directory its own code was
/// loaded from. So that the target dir is a layout that runs as it is (librigllama.so, the C
/// programs linked to it, and the test binaries in deps/), the libraries and modules are put
/// there, and librigllama.so finds its libraries through `$ORIGIN`. DT_RPATH rather than
/// DT_RUNPATH (--disable-new-dtags): libllama.so.0 itself has no search path for its own
/// libggml*.so.0, and only an RPATH is searched for the libraries of what it loads.
fn place_backend_modules() {
    if env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_none() {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags");
    let modules = PathBuf::from(env::var("DEP_LLAMA_BACKENDS_DIR").expect(
        "llama-cpp-sys-2 did not export DEP_LLAMA_BACKENDS_DIR although the dynamic-backends \
         feature is on; its version must be the one Cargo.toml pins",
    ));
    // <out>/lib/cmake -> <out>/lib: libllama.so.0 and the other shared libraries.
    let cmake_dir = PathBuf::from(env::var("DEP_LLAMA_GGML_CMAKE_DIR").unwrap());
    let libs = cmake_dir
        .parent()
        .expect("the cmake dir has a parent")
        .to_path_buf();
    // OUT_DIR is <target>/<profile>/build/rigllama-<hash>/out.
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let profile_dir = out
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is deep enough")
        .to_path_buf();
    let mut placed = 0;
    for dest in [
        profile_dir.join("deps"),
        profile_dir.join("examples"),
        profile_dir,
    ] {
        if !dest.is_dir() {
            continue;
        }
        placed += copy_shared_objects(&modules, &dest, "libggml-");
        copy_shared_objects(&libs, &dest, "lib");
    }
    assert!(
        placed > 0,
        "no backend modules (libggml-*.so) in {}: llama-cpp-sys-2's dynamic-backends build \
         installs them there",
        modules.display()
    );
}

/// Copies each `<prefix>*.so*` of `from` into `to`: files as files (replacing what is there,
/// so a rebuilt module is never left stale), symbolic links (`libllama.so.0 ->
/// libllama.so.0.0.N`) as links. Returns how many files it copied.
fn copy_shared_objects(from: &Path, to: &Path, prefix: &str) -> usize {
    let mut copied = 0;
    let entries =
        fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        if !text.starts_with(prefix) || !text.contains(".so") {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let _ = fs::remove_file(&dst);
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).unwrap();
            std::os::unix::fs::symlink(&target, &dst)
                .unwrap_or_else(|e| panic!("cannot link {}: {e}", dst.display()));
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| {
                panic!("cannot copy {} to {}: {e}", src.display(), dst.display())
            });
            copied += 1;
        }
    }
    copied
}
