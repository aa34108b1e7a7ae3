//! Unauthenticated attackers against an HTTPS listener (the appliance's API in
//! tests/mgmt_hostile.rs, the fleet's in tests/fleet_hostile.rs; both serve the
//! [`super::test_tls`] certificate): sockets kept open from many loopback addresses, each
//! reopened as soon as the listener closes it, and signed AWS JSON 1.0 calls that must get
//! through regardless.

use sigv4::Credentials;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{aws_json_headers, fresh_client, send_with, test_tls};

/// An AWS JSON 1.0 call on `api`, signed with `creds` for `region` (or unsigned), on a new
/// connection if `fresh`; `(0, error)` when it was not answered.
pub fn aws_call(
    api: &str,
    target: &str,
    body: &str,
    creds: Option<(&Credentials, &str)>,
    fresh: bool,
) -> (u16, String) {
    let headers = aws_json_headers(api, target, body.as_bytes(), creds);
    let client = if fresh {
        fresh_client()
    } else {
        super::client()
    };
    let (status, body) = send_with(client, "POST", api, "/", &headers, body.as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&test_tls().ca_file).unwrap();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    roots.add(ca).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A TCP connection from loopback address `127.0.0.<last>` (std cannot bind a client
/// socket before connecting; tokio's `TcpSocket` can).
fn connect_from(last: u8, api: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, last], 0)))?;
    let stream = rt.block_on(socket.connect(api))?.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

#[derive(Clone, Copy)]
enum Hostile {
    /// Bytes of a never-finished TLS ClientHello, one every half second.
    RawTrickle,
    /// A TLS session, then a request head one byte at a time.
    TlsTrickle,
    /// A TLS session, one `/healthz`, then silence on the kept-alive connection.
    TlsIdle,
}

/// Keeps one hostile socket open until `stop`, reopening it whenever the listener closes
/// it; counts (re)connections.
fn hostile(
    kind: Hostile,
    from: u8,
    api: SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    let tls = tls_config();
    while !stop.load(Ordering::Relaxed) {
        let Ok(tcp) = connect_from(from, api) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        match kind {
            Hostile::RawTrickle => {
                let mut tcp = tcp;
                let hello = [
                    0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ];
                for b in hello.iter().cycle() {
                    if stop.load(Ordering::Relaxed) || tcp.write_all(&[*b]).is_err() {
                        break;
                    }
                    let mut buf = [0u8; 64];
                    if matches!(tcp.read(&mut buf), Ok(0)) {
                        break;
                    }
                }
            }
            Hostile::TlsTrickle | Hostile::TlsIdle => {
                let Ok(conn) = rustls::ClientConnection::new(
                    Arc::clone(&tls),
                    "127.0.0.1".try_into().unwrap(),
                ) else {
                    continue;
                };
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let first: &[u8] = match kind {
                    Hostile::TlsIdle => b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                    _ => b"POST / HTTP/1.1\r\nHost: x\r\nX-Drip: ",
                };
                if s.write_all(first).is_err() {
                    continue;
                }
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if matches!(kind, Hostile::TlsTrickle) && s.write_all(b"a").is_err() {
                        break;
                    }
                    let mut buf = [0u8; 512];
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

/// A running attack; [`Attack::stop`] ends it.
pub struct Attack {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Attack {
    /// `sockets` hostile sockets (raw trickle, TLS trickle and TLS idle in turn), `per_address`
    /// of them from each of 127.0.0.10, .11, …, against `api`; returns once every socket
    /// has connected once (deadline 120 s).
    pub fn launch(api: SocketAddr, sockets: usize, per_address: usize) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let kinds = [Hostile::RawTrickle, Hostile::TlsTrickle, Hostile::TlsIdle];
        let threads = (0..sockets)
            .map(|i| {
                let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
                let kind = kinds[i % kinds.len()];
                let from = u8::try_from(10 + i / per_address).expect("at most 245 addresses");
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || hostile(kind, from, api, stop, opened))
                    .unwrap()
            })
            .collect();
        let attack = Attack {
            stop,
            opened,
            threads,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while attack.opened() < sockets as u64 {
            assert!(
                Instant::now() < deadline,
                "attackers never opened {sockets} sockets"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        attack
    }

    /// Connections the attackers opened so far (reopenings included).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Stops every attacker; returns the connections they opened.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.opened.load(Ordering::Relaxed)
    }
}
