//! llama.cpp's RPC backend: model layers on other machines' devices (`rpc-server`).
//!
//! ggml's RPC client calls `GGML_ABORT` on a bad endpoint, a failed connection or handshake,
//! a version mismatch and a malformed reply, which would end the host's process. So before
//! an endpoint reaches llama.cpp, [`attach`] resolves it, connects with a timeout and speaks
//! the protocol's HELLO itself ([`probe`]); only servers that answer with protocol 7.x are
//! handed to `ggml_backend_rpc_add_server`. A server lost after that cannot be survived
//! inside llama.cpp: see [`install_abort_hook`](super::backend::install_abort_hook).

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::data::description::RpcDevice;
use crate::engine::error::{Error, Result};
use crate::engine::llama::devices::layers_on;

/// The protocol version of the vendored ggml-rpc (`RPC_PROTO_*_VERSION` in ggml-rpc.h).
pub const PROTO_MAJOR: u8 = 7;
pub const PROTO_MINOR: u8 = 0;
pub const PROTO_PATCH: u8 = 0;
/// `RPC_CMD_HELLO` (fixed at 14 in every protocol version).
const CMD_HELLO: u8 = 14;
/// `RPC_CONN_CAPS_SIZE`: transport capabilities sent with HELLO (all zero: plain TCP).
const CONN_CAPS_SIZE: usize = 24;
/// `rpc_msg_hello_rsp`: major, minor, patch, padding, then the server's caps.
const HELLO_REPLY_SIZE: usize = 4 + CONN_CAPS_SIZE;

/// How long a connection, and then the HELLO reply, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `endpoint` (`host:port`) and performs the RPC protocol's HELLO, as ggml's
/// client does, with timeouts; `Ok` only if the server speaks a protocol this build's client
/// accepts (same major version, minor not newer). The connection is closed again: an
/// `rpc-server` serves one client at a time, and llama.cpp opens its own.
pub fn probe(endpoint: &str) -> std::result::Result<(), String> {
    let addrs: Vec<_> = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve it: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err("it resolves to no address".into());
    }
    let mut last = String::new();
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| format!("cannot set socket options: {e}"))?;
    // | cmd (1 byte) | request size (u64) | request (the caps) |
    let mut hello = Vec::with_capacity(1 + 8 + CONN_CAPS_SIZE);
    hello.push(CMD_HELLO);
    hello.extend_from_slice(&(CONN_CAPS_SIZE as u64).to_le_bytes());
    hello.extend_from_slice(&[0; CONN_CAPS_SIZE]);
    stream
        .write_all(&hello)
        .map_err(|e| format!("connected, but sending HELLO failed: {e}"))?;
    // | reply size (u64) | reply |
    let reading = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
            "connected, but no HELLO reply within {} s (not an llama.cpp rpc-server, or one \
             busy serving another client)",
            REPLY_TIMEOUT.as_secs()
        ),
        std::io::ErrorKind::UnexpectedEof => {
            "connected, but the server closed the connection instead of answering HELLO (not \
             an llama.cpp rpc-server, or one of another protocol version)"
                .to_owned()
        }
        _ => format!("connected, but reading the HELLO reply failed: {e}"),
    };
    let mut size = [0u8; 8];
    stream.read_exact(&mut size).map_err(reading)?;
    let size = u64::from_le_bytes(size);
    if size != HELLO_REPLY_SIZE as u64 {
        return Err(format!(
            "connected, but the reply to HELLO is {size} bytes, not {HELLO_REPLY_SIZE}: not an \
             llama.cpp rpc-server of protocol {PROTO_MAJOR}.x"
        ));
    }
    let mut reply = [0u8; HELLO_REPLY_SIZE];
    stream.read_exact(&mut reply).map_err(reading)?;
    let (major, minor, patch) = (reply[0], reply[1], reply[2]);
    if major != PROTO_MAJOR || minor > PROTO_MINOR {
        return Err(format!(
            "the server speaks RPC protocol {major}.{minor}.{patch}; this library's llama.cpp \
             speaks {PROTO_MAJOR}.{PROTO_MINOR}.{PROTO_PATCH} (run an rpc-server built from the \
             same llama.cpp: scripts/build-llama-tool rpc-server)"
        ));
    }
    Ok(())
}

/// Endpoints in use by loaded models in this process, and how many models use each. ggml
/// keeps one connection per endpoint while a model holds buffers on it: probing such an
/// endpoint would queue behind that connection (the server serves one client at a time), and
/// is not needed, since llama.cpp reuses the live connection.
static IN_USE: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Endpoints already registered with ggml (`ggml_backend_register`), with their devices.
static REGISTERED: Mutex<Vec<(String, Vec<usize>)>> = Mutex::new(Vec::new());

/// A model's hold on its RPC servers: their devices (ggml device indices, for the model's
/// device list); dropped after the model, which releases the endpoints.
pub(crate) struct RpcServers {
    endpoints: Vec<String>,
    /// (device index, endpoint) in the order of `rpc_servers`.
    devices: Vec<(usize, String)>,
}

impl RpcServers {
    /// The ggml device indices of these servers, in order.
    pub fn device_indices(&self) -> Vec<usize> {
        self.devices.iter().map(|(i, _)| *i).collect()
    }

    /// Each device with its memory and the layers that `placement` (llama.cpp's
    /// `layer N assigned to device NAME` lines) put on it.
    pub fn describe(&self, placement: &[(u32, String)]) -> Vec<RpcDevice> {
        self.devices
            .iter()
            .map(|(index, endpoint)| {
                // SAFETY: indices come from ggml's registry, which never shrinks.
                let dev = unsafe { llama_cpp_sys_2::ggml_backend_dev_get(*index) };
                let name = unsafe { c_str(llama_cpp_sys_2::ggml_backend_dev_name(dev)) };
                let (mut free, mut total) = (0usize, 0usize);
                // A live connection (the model holds buffers on it) answers this.
                unsafe { llama_cpp_sys_2::ggml_backend_dev_memory(dev, &mut free, &mut total) };
                RpcDevice {
                    layers: layers_on(placement, &name),
                    name,
                    endpoint: endpoint.clone(),
                    memory_total_bytes: total as u64,
                    memory_free_bytes: free as u64,
                }
            })
            .collect()
    }
}

impl Drop for RpcServers {
    fn drop(&mut self) {
        let mut in_use = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        let map = in_use.get_or_insert_with(HashMap::new);
        for endpoint in &self.endpoints {
            if let Some(n) = map.get_mut(endpoint) {
                *n -= 1;
                if *n == 0 {
                    map.remove(endpoint);
                }
            }
        }
    }
}

/// Checks each endpoint (unless a loaded model already uses it), then adds it to llama.cpp's
/// RPC backend and ggml's device registry (once per process). Errors are MODEL_LOAD_FAILED
/// naming the endpoint and the cause; llama.cpp has seen nothing of a failing endpoint.
pub(crate) fn attach(endpoints: &[String]) -> Result<RpcServers> {
    // Held throughout, so two engines loading at once do not probe or register together.
    let mut in_use = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    let map = in_use.get_or_insert_with(HashMap::new);
    if !unsafe { llama_cpp_sys_2::llama_supports_rpc() } {
        return Err(Error::ModelLoadFailed(
            "rpc_servers is set, but the llama.cpp this library links was built without \
             GGML_RPC (build with `make rpc-build`, or GGML_RPC=ON GGML_RPC_RDMA=OFF in a target \
             dir of its own)"
                .into(),
        ));
    }
    for endpoint in endpoints {
        if !map.contains_key(endpoint) {
            probe(endpoint)
                .map_err(|why| Error::ModelLoadFailed(format!("RPC server {endpoint}: {why}")))?;
        }
    }
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    let mut devices = Vec::new();
    for endpoint in endpoints {
        let known = registered.iter().find(|(e, _)| e == endpoint);
        let indices = match known {
            Some((_, indices)) => indices.clone(),
            None => {
                let indices = register(endpoint)?;
                registered.push((endpoint.clone(), indices.clone()));
                indices
            }
        };
        if indices.is_empty() {
            return Err(Error::ModelLoadFailed(format!(
                "RPC server {endpoint} reports no devices"
            )));
        }
        devices.extend(indices.into_iter().map(|i| (i, endpoint.clone())));
    }
    for endpoint in endpoints {
        *map.entry(endpoint.clone()).or_insert(0) += 1;
    }
    warn_if_sigpipe_kills();
    Ok(RpcServers {
        endpoints: endpoints.to_vec(),
        devices,
    })
}

/// The device list for a model without RPC servers, once RPC devices exist in this process:
/// every device but those (else llama.cpp's default list would offload onto them). `None`
/// while there are none: llama.cpp's default list is right.
pub(crate) fn local_devices() -> Option<Vec<usize>> {
    let registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if registered.is_empty() {
        return None;
    }
    let rpc: Vec<usize> = registered
        .iter()
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    let count = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
    Some(
        (0..count)
            .filter(|i| !rpc.contains(i))
            .filter(|&i| {
                let dev = unsafe { llama_cpp_sys_2::ggml_backend_dev_get(i) };
                let kind = unsafe { llama_cpp_sys_2::ggml_backend_dev_type(dev) };
                // llama.cpp's list holds GPUs (and iGPUs); the CPU is added by itself.
                kind == llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_GPU
                    || kind == llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_IGPU
            })
            .collect(),
    )
}

/// `ggml_backend_rpc_add_server` (found through the "RPC" registry, as llama.cpp's `--rpc`
/// does) and `ggml_backend_register`; returns the new devices' global indices.
fn register(endpoint: &str) -> Result<Vec<usize>> {
    let failed = |why: &str| Error::ModelLoadFailed(format!("RPC server {endpoint}: {why}"));
    let rpc = unsafe { llama_cpp_sys_2::ggml_backend_reg_by_name(c"RPC".as_ptr()) };
    if rpc.is_null() {
        return Err(failed("llama.cpp has no RPC backend registered"));
    }
    let add = unsafe {
        llama_cpp_sys_2::ggml_backend_reg_get_proc_address(
            rpc,
            c"ggml_backend_rpc_add_server".as_ptr(),
        )
    };
    if add.is_null() {
        return Err(failed(
            "llama.cpp's RPC backend has no ggml_backend_rpc_add_server",
        ));
    }
    type AddServer = unsafe extern "C" fn(*const c_char) -> llama_cpp_sys_2::ggml_backend_reg_t;
    // SAFETY: the symbol is ggml_backend_rpc_add_server, of this signature (ggml-rpc.h).
    let add: AddServer = unsafe { std::mem::transmute(add) };
    let endpoint_c = CString::new(endpoint).map_err(|_| failed("NUL in the endpoint"))?;
    // Connects (the probe just succeeded) and asks for the device count.
    let reg = unsafe { add(endpoint_c.as_ptr()) };
    if reg.is_null() {
        return Err(failed("the server reports no devices"));
    }
    let first = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
    unsafe { llama_cpp_sys_2::ggml_backend_register(reg) };
    let after = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
    Ok((first..after).collect())
}

/// ggml's RPC client writes to its sockets without MSG_NOSIGNAL: once a server is gone, the
/// next write raises SIGPIPE, which (unless the host ignores it; Rust programs do) ends the
/// process at once, before llama.cpp's own abort and its message.
fn warn_if_sigpipe_kills() {
    #[cfg(unix)]
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_DFL
        {
            crate::engine::llama::backend::log(
                crate::engine::llama::backend::LogLevel::Warn,
                "SIGPIPE is not ignored in this process: if an RPC server goes away, the process \
                 dies of SIGPIPE without a message; call signal(SIGPIPE, SIG_IGN) to get \
                 llama.cpp's abort message in the log callback instead",
            );
        }
    }
}

unsafe fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A listener on a free loopback port answering each connection with `reply`.
    fn fake_server(reply: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut hello = [0u8; 1 + 8 + CONN_CAPS_SIZE];
                let _ = conn.read_exact(&mut hello);
                let _ = conn.write_all(&reply);
            }
        });
        addr
    }

    fn hello_reply(major: u8, minor: u8) -> Vec<u8> {
        let mut r = (HELLO_REPLY_SIZE as u64).to_le_bytes().to_vec();
        r.extend_from_slice(&[major, minor, 0, 0]);
        r.extend_from_slice(&[0; CONN_CAPS_SIZE]);
        r
    }

    #[test]
    fn hello_accepts_the_same_protocol() {
        probe(&fake_server(hello_reply(7, 0))).unwrap();
    }

    #[test]
    fn hello_refuses_other_versions_and_garbage() {
        let e = probe(&fake_server(hello_reply(6, 1))).unwrap_err();
        assert!(e.contains("protocol 6.1.0"), "{e}");
        let e = probe(&fake_server(hello_reply(7, 1))).unwrap_err();
        assert!(e.contains("protocol 7.1.0"), "{e}");
        let e = probe(&fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())).unwrap_err();
        assert!(e.contains("not an llama.cpp rpc-server"), "{e}");
        let e = probe(&fake_server(Vec::new())).unwrap_err();
        assert!(e.contains("closed the connection"), "{e}");
    }

    #[test]
    fn closed_port_and_unknown_host() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = probe(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
        let e = probe("no-such-host.invalid:50052").unwrap_err();
        assert!(e.contains("cannot resolve"), "{e}");
    }
}
