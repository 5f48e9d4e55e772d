//! Layers on llama.cpp RPC servers (issue 27), on loopback: two `rpc-server` processes built
//! from the same llama.cpp (`scripts/build-llama-tool rpc-server`, `RIGLLAMA_RPC_SERVER`
//! overrides), each with one thread. Run with `make rpc-test` (feature `rpc`, its own target
//! dir); the tests share servers and models, so they run one at a time.
#![cfg(feature = "rpc")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rigllama::{Engine, EngineOptions, Error, LogLevel};

fn server_binary() -> PathBuf {
    let path = std::env::var_os("RIGLLAMA_RPC_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rigllama/bench/rpc-server")
        });
    assert!(
        path.is_file(),
        "rpc-server not found at {}: run scripts/build-llama-tool rpc-server (make rpc-test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An `rpc-server` on 127.0.0.1 with one thread, killed when dropped.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let mut command = Command::new(server_binary());
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The server dies with the test process even when that aborts (Drop does not run then).
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("rpc-server starts");
        let endpoint = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        // A connection closed before HELLO costs the server nothing: it goes back to accept.
        while TcpStream::connect(&endpoint).is_err() {
            assert!(
                Instant::now() < deadline,
                "rpc-server on {endpoint} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, endpoint }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rpc_options(servers: &[&Server]) -> EngineOptions {
    let mut options = options();
    options.n_threads = Some(1);
    options.n_gpu_layers = None; // all
    options.rpc_servers = servers.iter().map(|s| s.endpoint.clone()).collect();
    options
}

/// Every oracle prompt's greedy text, and generated tokens per second over them all.
fn oracle_texts(engine: &Engine) -> (Vec<String>, f64) {
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("greedy/expected.json")).unwrap();
    let (mut texts, mut tokens, mut seconds) = (Vec::new(), 0u32, 0f64);
    for case in expected["cases"].as_array().unwrap() {
        engine.reset().unwrap();
        let start = Instant::now();
        let (text, usage) = engine
            .complete(greedy_raw(
                case["prompt"].as_str().unwrap(),
                case["max_tokens"].as_u64().unwrap() as u32,
            ))
            .unwrap();
        seconds += start.elapsed().as_secs_f64();
        tokens += usage.completion_tokens;
        texts.push(text);
    }
    (texts, tokens as f64 / seconds)
}

/// Characters two texts share from the start.
#[test]
fn two_loopback_servers_give_llama_cpp_s_rpc_text() {
    let (a, b) = (Server::start(), Server::start());
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("greedy/expected.json")).unwrap();
    let oracle: Vec<&str> = expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    // The local engine at its default threads gives llama.cpp's oracle text (tests/greedy.rs).
    let local = Engine::create(options(), None).unwrap();
    let local_threads = local.describe().n_threads;
    let (local_texts, local_rate) = oracle_texts(&local);
    drop(local);
    let mut one_thread = options();
    one_thread.n_threads = Some(1);
    let local = Engine::create(one_thread, None).unwrap();
    let (_, local_rate_1) = oracle_texts(&local);
    drop(local);
    assert_eq!(
        local_texts, oracle,
        "the local engine ({local_threads} threads) is not llama.cpp's oracle"
    );

    let engine = Engine::create(rpc_options(&[&a, &b]), None).unwrap();
    let description = engine.describe();
    let devices = &description.rpc_devices;
    assert_eq!(devices.len(), 2, "{devices:?}");
    for (device, server) in devices.iter().zip([&a, &b]) {
        assert_eq!(device.endpoint, server.endpoint);
        assert!(!device.layers.is_empty(), "no layers on {device:?}");
        assert!(device.memory_total_bytes > 0, "{device:?}");
    }
    let on_rpc: usize = devices.iter().map(|d| d.layers.len()).sum();
    // Every layer and the output layer (llama.cpp's n_layer + 1 with all offloaded).
    assert_eq!(
        on_rpc as u32,
        description_layers(&engine) + 1,
        "{devices:?}"
    );
    let (rpc_texts, rpc_rate) = oracle_texts(&engine);
    drop(engine);
    // The same kernels however the layers are split: one server gives the same text.
    let engine = Engine::create(rpc_options(&[&b]), None).unwrap();
    let (one_server_texts, _) = oracle_texts(&engine);
    drop(engine);
    assert_eq!(rpc_texts, one_server_texts);
    // Against the local CPU engine with the same kernels: an rpc-server computes with plain
    // Q4_K weights, while the local CPU backend repacks them by default into interleaved
    // blocks whose kernels round differently. With repacking off (llama.cpp's --no-repack)
    // the local engine does the servers' arithmetic: the same greedy text on every prompt.
    let mut plain = options();
    plain.cpu_repack = false;
    let local_plain = Engine::create(plain, None).unwrap();
    let (plain_texts, plain_rate) = oracle_texts(&local_plain);
    drop(local_plain);
    assert_eq!(
        rpc_texts, plain_texts,
        "RPC text is not the local (no-repack) CPU engine's"
    );
    let repacked_equal = rpc_texts
        .iter()
        .zip(&local_texts)
        .filter(|(r, l)| r == l)
        .count();
    eprintln!(
        "RPC vs local greedy text: {} of {} prompts identical to the no-repack local engine; {repacked_equal} to the default (repacking) one",
        rpc_texts.iter().zip(&plain_texts).filter(|(r, l)| r == l).count(),
        rpc_texts.len()
    );
    eprintln!("local CPU, no repack: {plain_rate:.1} tok/s");
    eprintln!(
        "RPC devices: {:?}",
        devices
            .iter()
            .map(|d| format!(
                "{} {} layers {:?} memory {} MiB ({} MiB free)",
                d.name,
                d.endpoint,
                d.layers,
                d.memory_total_bytes >> 20,
                d.memory_free_bytes >> 20
            ))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "generation tok/s: local CPU {local_rate:.1} ({local_threads} threads), {local_rate_1:.1} \
         (1 thread); loopback RPC over 2 servers (1 thread each, engine n_threads 1) {rpc_rate:.1}"
    );
}

/// The model's layer count, from its GGUF metadata through describe's architecture.
fn description_layers(engine: &Engine) -> u32 {
    let d = engine.describe();
    let file = std::fs::read(&d.model_path).unwrap();
    let key = format!("{}.block_count", d.architecture);
    // GGUF metadata: the key's bytes, then the u32 type (4 = UINT32) and the value.
    let at = file
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .expect("block_count in the GGUF metadata")
        + key.len();
    assert_eq!(u32::from_le_bytes(file[at..at + 4].try_into().unwrap()), 4);
    u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap())
}

fn assert_load_fails(endpoint: &str, cause: &str) {
    let mut options = options();
    options.n_gpu_layers = None;
    options.rpc_servers = vec![endpoint.to_owned()];
    let start = Instant::now();
    match Engine::create(options, None) {
        Err(Error::ModelLoadFailed(message)) => {
            assert!(
                message.contains(endpoint) && message.contains(cause),
                "{endpoint}: {message}"
            );
            eprintln!("{endpoint}: {message} ({:.1?})", start.elapsed());
        }
        Err(other) => panic!("{endpoint}: {other:?}"),
        Ok(_) => panic!("{endpoint}: loaded"),
    }
}

/// A listener answering HELLO with `reply` (after reading the request).
fn fake_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut hello = [0u8; 33];
            let _ = conn.read_exact(&mut hello);
            let _ = conn.write_all(reply);
        }
    });
    endpoint
}

#[test]
fn bad_servers_fail_create_cleanly() {
    assert_load_fails(&format!("127.0.0.1:{}", free_port()), "cannot connect");
    assert_load_fails("no-such-host.invalid:50052", "cannot resolve");
    // Not routable: the connect times out (or the network says unreachable at once).
    assert_load_fails("10.255.255.1:50052", "cannot connect");
    assert_load_fails(
        &fake_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        "not an llama.cpp rpc-server",
    );
    // An rpc-server of protocol 6.1.0: size 28, then major 6.
    static V6: [u8; 36] = {
        let mut r = [0u8; 36];
        r[0] = 28;
        r[8] = 6;
        r[9] = 1;
        r
    };
    assert_load_fails(&fake_server(&V6), "protocol 6.1.0");
    // A listener that never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_load_fails(&silent.local_addr().unwrap().to_string(), "no HELLO reply");
}

#[test]
fn reload_to_unreachable_servers_keeps_the_old_model() {
    let (a, b) = (Server::start(), Server::start());
    let engine = Engine::create(rpc_options(&[&a]), None).unwrap();
    let (before, _) = engine
        .complete(greedy_raw("The capital of France is", 8))
        .unwrap();
    let closed = format!("127.0.0.1:{}", free_port());
    let mut bad = rpc_options(&[&b]);
    bad.rpc_servers.push(closed.clone());
    match engine.reload(bad, None) {
        Err(Error::ModelLoadFailed(m)) => assert!(m.contains(&closed), "{m}"),
        other => panic!("{other:?}"),
    }
    let (after, _) = engine
        .complete(greedy_raw("The capital of France is", 8))
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(engine.describe().rpc_devices[0].endpoint, a.endpoint);
    // To another server set: b only; a is released with the old model.
    engine.reload(rpc_options(&[&b]), None).unwrap();
    let devices = engine.describe().rpc_devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].endpoint, b.endpoint);
    let (moved, _) = engine
        .complete(greedy_raw("The capital of France is", 8))
        .unwrap();
    assert_eq!(moved, before);
}

const CHILD_SERVER: &str = "RIGLLAMA_RPC_CHILD_SERVER";
const CHILD_SERVER_PID: &str = "RIGLLAMA_RPC_CHILD_SERVER_PID";
const CHILD_LOG: &str = "RIGLLAMA_RPC_CHILD_LOG";

/// Run by `a_server_lost_mid_request_aborts_after_logging_why` in a child process: loads the
/// model on the server, kills the server at the first generated token, and keeps generating.
#[test]
fn child_loses_its_server_mid_request() {
    let (Some(endpoint), Some(pid), Some(log)) = (
        std::env::var_os(CHILD_SERVER),
        std::env::var_os(CHILD_SERVER_PID),
        std::env::var_os(CHILD_LOG),
    ) else {
        return; // only as the child
    };
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap(),
    ));
    let sink_log = log.clone();
    rigllama::set_log_sink(
        Some(Arc::new(move |level, line| {
            if level >= LogLevel::Error {
                let mut file = sink_log.lock().unwrap();
                let _ = writeln!(file, "{level:?} {line}");
                let _ = file.flush();
            }
        })),
        LogLevel::Warn,
    );
    let mut options = options();
    options.n_threads = Some(1);
    options.n_gpu_layers = None;
    options.rpc_servers = vec![endpoint.into_string().unwrap()];
    let engine = Engine::create(options, None).unwrap();
    let pid: i32 = pid.into_string().unwrap().parse().unwrap();
    let mut killed = false;
    let result = engine.stream(greedy_raw("Once upon a time", 200), |_text| {
        if !killed {
            killed = true;
            unsafe { libc::kill(pid, libc::SIGKILL) };
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    });
    // Not reached: llama.cpp aborts the process.
    println!("CHILD SURVIVED {result:?}");
}

#[test]
fn a_server_lost_mid_request_aborts_after_logging_why() {
    if std::env::var_os(CHILD_SERVER).is_some() {
        return;
    }
    let server = Server::start();
    let log = std::env::temp_dir().join(format!("rigllama-rpc-abort-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_loses_its_server_mid_request",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SERVER, &server.endpoint)
        .env(CHILD_SERVER_PID, server.child.id().to_string())
        .env(CHILD_LOG, &log)
        .env("RIGLLAMA_MODEL", model_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "the child was expected to abort: {:?}\nstdout: {}\nstderr: {stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    let prefix = "rigllama: llama.cpp is aborting the process: ";
    assert!(logged.contains(prefix), "log callback got: {logged:?}");
    assert!(stderr.contains(prefix), "stderr: {stderr}");
    eprintln!("the log callback got: {}", logged.trim());
}
