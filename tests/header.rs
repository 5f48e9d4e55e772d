//! The committed header is exactly what cbindgen generates from src/ffi now, and it declares
//! nothing a C program could collide with: only `rigllama_`/`RIGLLAMA_` names.
//! `UPDATE_HEADER=1 cargo test --test header` (or `make header`) rewrites it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let mut config =
        cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(format!(
        "\n/* The version of this header; rigllama_version() gives the library's. */\n\
         #define RIGLLAMA_VERSION_MAJOR {}\n#define RIGLLAMA_VERSION_MINOR {}\n#define RIGLLAMA_VERSION_PATCH {}\n",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ));
    let mut out = Vec::new();
    // The C API module alone (it follows its `mod` items), not the whole crate: cbindgen
    // then cannot export an engine constant or type by accident.
    cbindgen::Builder::new()
        .with_src(root().join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

fn header_path() -> PathBuf {
    root().join("include/rigllama.h")
}

#[test]
fn committed_header_matches_generated() {
    let generated = generate();
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(header_path(), &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(header_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "include/rigllama.h is stale: run `make header` and commit it"
    );
}

fn ours(name: &str) -> bool {
    name.starts_with("rigllama_") || name.starts_with("RIGLLAMA_")
}

/// Every macro the header defines, found by the preprocessor itself: those defined after
/// including it minus those the system headers it includes define on their own.
fn macros_defined(prelude: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("rigllama-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("probe.c");
    std::fs::write(&file, prelude).unwrap();
    let out = Command::new("cc")
        .args(["-std=c99", "-E", "-dM", "-I"])
        .arg(root().join("include"))
        .arg(&file)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("#define "))
        .map(|rest| rest.split([' ', '(']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn header_defines_only_prefixed_macros() {
    let system = macros_defined("#include <stddef.h>\n#include <stdint.h>\n");
    let with_header = macros_defined("#include \"rigllama.h\"\n");
    let foreign: Vec<_> = with_header
        .iter()
        .filter(|name| !system.contains(name) && !ours(name) && *name != "RIGLLAMA_H")
        .collect();
    assert!(foreign.is_empty(), "the header defines {foreign:?}");
    assert!(with_header.iter().any(|n| n == "RIGLLAMA_SEED_RANDOM"));
}

/// Every file-scope declaration in the header (functions, typedefs, struct and enum tags,
/// enumerators), read from clang's syntax tree so nothing escapes a hand-written parser.
#[test]
fn header_declares_only_prefixed_names() {
    let out = Command::new("clang")
        .args([
            "-x",
            "c",
            "-std=c99",
            "-fsyntax-only",
            "-Xclang",
            "-ast-dump=json",
        ])
        .arg(header_path())
        .output()
        .expect("clang runs (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ast: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let header = header_path().canonicalize().unwrap();
    let mut names = Vec::new();
    let mut in_header = false;
    // clang writes a declaration's file only when it changes from the previous one.
    for decl in ast["inner"].as_array().unwrap() {
        if let Some(file) = decl["loc"]["file"]
            .as_str()
            .or_else(|| decl["loc"]["spellingLoc"]["file"].as_str())
            .or_else(|| decl["loc"]["expansionLoc"]["file"].as_str())
        {
            in_header = Path::new(file).canonicalize().ok().as_deref() == Some(&header);
        }
        if !in_header {
            continue;
        }
        if let Some(name) = decl["name"].as_str() {
            names.push(name.to_owned());
        }
        if decl["kind"] == "EnumDecl" {
            for constant in decl["inner"].as_array().into_iter().flatten() {
                if let Some(name) = constant["name"].as_str() {
                    names.push(name.to_owned());
                }
            }
        }
    }
    assert!(names.len() > 30, "found only {names:?}");
    let foreign: Vec<_> = names.iter().filter(|n| !ours(n)).collect();
    assert!(foreign.is_empty(), "the header declares {foreign:?}");
    for expected in [
        "rigllama_engine_create",
        "rigllama_status",
        "RIGLLAMA_STATUS_OK",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} not found");
    }
}
