//! `check_model_file`: one test per `ModelFileError` variant, on files written under the
//! system temp directory, with the exact message each gives.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gguf_check::{check_gguf_bytes, check_model_file, GgufSummary, ModelFileError};

/// The smallest valid GGUF file: magic, version 3, no tensors, no metadata.
fn minimal_gguf() -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes
}

/// A fresh, empty directory of its own for each test (tests run in parallel threads).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rigllama-check-model-file-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
fn rejected(path: &Path) -> ModelFileError {
    let err = match check_model_file(path) {
        Ok(summary) => panic!("{}: accepted ({summary:?})", path.display()),
        Err(err) => err,
    };
    assert_eq!(err.path(), path);
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message:?}");
    assert!(
        message.contains(&path.display().to_string()),
        "names the path: {message:?}"
    );
    err
}

#[test]
fn valid_file_passes() {
    let dir = TempDir::new("valid");
    let bytes = minimal_gguf();
    let path = dir.write("valid.gguf", &bytes);
    let summary = check_model_file(&path).unwrap();
    assert_eq!(summary, check_gguf_bytes(&bytes).unwrap());
    assert_eq!(
        summary,
        GgufSummary {
            version: 3,
            tensor_count: 0,
            metadata_count: 0,
            architecture: None,
            data_offset: 24,
        }
    );
}

#[test]
fn not_found() {
    let dir = TempDir::new("not-found");
    let path = dir.0.join("missing.gguf");
    let err = rejected(&path);
    assert_eq!(err, ModelFileError::NotFound { path: path.clone() });
    assert_eq!(
        err.to_string(),
        format!("model file not found: {}", path.display())
    );
    // A missing parent directory is also "not found".
    let deeper = dir.0.join("no-such-dir").join("model.gguf");
    assert!(matches!(rejected(&deeper), ModelFileError::NotFound { .. }));
}

#[test]
fn is_directory() {
    let dir = TempDir::new("is-directory");
    let err = rejected(&dir.0);
    assert_eq!(
        err,
        ModelFileError::IsDirectory {
            path: dir.0.clone()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "model path is a directory, not a .gguf file: {}",
            dir.0.display()
        )
    );
}

#[test]
fn unreadable_path() {
    // A path std refuses before asking the OS, on every platform.
    let dir = TempDir::new("unreadable-nul");
    let path = dir.0.join("bad\0name.gguf");
    let err = rejected(&path);
    let ModelFileError::Unreadable { error, .. } = &err else {
        panic!("expected Unreadable, got {err:?}");
    };
    assert!(error.to_lowercase().contains("nul byte"), "{error}");
    assert_eq!(
        err.to_string(),
        format!("cannot read model file {}: {error}", path.display())
    );
}

/// A regular file used as a directory: ENOTDIR, which is not "not found".
#[cfg(unix)]
#[test]
fn unreadable_not_a_directory() {
    let dir = TempDir::new("unreadable-notdir");
    let file = dir.write("plain.gguf", &minimal_gguf());
    let path = file.join("model.gguf");
    let err = rejected(&path);
    let ModelFileError::Unreadable { error, .. } = &err else {
        panic!("expected Unreadable, got {err:?}");
    };
    assert!(error.contains("os error"), "{error}");
    assert_eq!(
        err.to_string(),
        format!("cannot read model file {}: {error}", path.display())
    );
}

/// The metadata is fine but reading the first bytes fails: /proc/self/mem at address 0.
#[cfg(target_os = "linux")]
#[test]
fn unreadable_read_error() {
    let path = Path::new("/proc/self/mem");
    let err = rejected(path);
    let ModelFileError::Unreadable { error, .. } = &err else {
        panic!("expected Unreadable, got {err:?}");
    };
    assert_eq!(
        err.to_string(),
        format!("cannot read model file /proc/self/mem: {error}")
    );
}

#[test]
fn too_short() {
    let dir = TempDir::new("too-short");
    for bytes in [&b""[..], b"G", b"GGU"] {
        let path = dir.write(&format!("short-{}.gguf", bytes.len()), bytes);
        let err = rejected(&path);
        let len = bytes.len() as u64;
        assert_eq!(
            err,
            ModelFileError::TooShort {
                path: path.clone(),
                len
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "model file is too short to be GGUF ({len} bytes): {}",
                path.display()
            )
        );
    }
}

#[test]
fn not_gguf() {
    let dir = TempDir::new("not-gguf");
    let cases: [(&str, &[u8], &str); 4] = [
        ("text.gguf", b"hello, this is not a model\n", "\"hell\""),
        ("page.gguf", b"<!DOCTYPE html><html></html>", "\"<!DO\""),
        ("ggml.gguf", b"GGML\x03\0\0\0", "\"GGML\""),
        // Invalid UTF-8 is shown lossily, control characters escaped.
        ("binary.gguf", b"\xff\0\x01Gxxxx", "\"\u{fffd}\\0\\u{1}G\""),
    ];
    for (name, bytes, shown) in cases {
        let path = dir.write(name, bytes);
        let err = rejected(&path);
        let magic: [u8; 4] = bytes[..4].try_into().unwrap();
        assert_eq!(
            err,
            ModelFileError::NotGguf {
                path: path.clone(),
                magic
            }
        );
        assert_eq!(
            err.to_string(),
            format!("not a GGUF file (bad magic {shown}): {}", path.display())
        );
    }
}

#[test]
fn malformed() {
    let dir = TempDir::new("malformed");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        // The magic alone: the version is missing.
        ("magic-only.gguf", b"GGUF".to_vec(), "truncated"),
        // One tensor declared, the file ends in the tensor count.
        (
            "truncated.gguf",
            b"GGUF\x03\0\0\0\x01\0\0\0".to_vec(),
            "truncated",
        ),
        (
            "version-9.gguf",
            {
                let mut bytes = minimal_gguf();
                bytes[4] = 9;
                bytes
            },
            "too new",
        ),
    ];
    for (name, bytes, word) in cases {
        let path = dir.write(name, &bytes);
        let err = rejected(&path);
        let reason = check_gguf_bytes(&bytes).unwrap_err();
        assert!(reason.contains(word), "{reason}");
        assert_eq!(
            err,
            ModelFileError::Malformed {
                path: path.clone(),
                reason: reason.clone()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("malformed GGUF file {}: {reason}", path.display())
        );
    }
}

#[test]
fn is_a_std_error() {
    fn boxed(err: ModelFileError) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        Box::new(err)
    }
    let path = PathBuf::from("/nonexistent/model.gguf");
    let err = boxed(ModelFileError::NotFound { path });
    assert_eq!(
        err.to_string(),
        "model file not found: /nonexistent/model.gguf"
    );
    assert!(err.source().is_none());
}
