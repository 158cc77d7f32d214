//! The scrape endpoint over real sockets: formats, gzip, bad requests,
//! limits, slow clients, auth, stop.
#![cfg(feature = "serve")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringstat::serve::{BasicAuth, ServeConfig, ServeError, Server};
use ringstat::stats::{HistogramConfig, Registry, Snapshot};

/// A watchdog on every socket read: a hang fails the test instead of
/// blocking it (not a timing assertion).
const WATCHDOG: Duration = Duration::from_secs(30);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s
}

/// Sends `raw` on a new connection and reads until the server closes it.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    // A reset after the reply (the server closing with unread input) ends it too.
    let _ = s.read_to_end(&mut out);
    out
}

/// `(status, head, body)` of a `Connection: close` request.
fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    split(&exchange(addr, raw.as_bytes()))
}

fn split(reply: &[u8]) -> (u16, String, Vec<u8>) {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(reply)));
    let head = String::from_utf8(reply[..end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_lowercase(), reply[end + 4..].to_vec())
}

fn registry() -> Registry {
    let reg = Registry::new();
    reg.counter("logins", &[("region", "eu")]).unwrap().add(3);
    reg.gauge("online", &[]).unwrap().set(7);
    reg.set_buckets("latency_seconds", &[0.01, 0.1, 1.0])
        .unwrap();
    let cfg = HistogramConfig {
        max: 60_000_000,
        significant_digits: 3,
    };
    let h = reg
        .histogram_with_unit("latency_seconds", &[], cfg, 1e-6)
        .unwrap();
    for v in [0.005, 0.05, 0.5, 5.0] {
        h.record_f64(v).unwrap();
    }
    reg
}

fn start(config: ServeConfig) -> Server {
    Server::start(registry(), config).unwrap()
}

#[test]
fn smoke_prometheus_text_by_default() {
    let server = start(ServeConfig::default());
    assert!(server.local_addr().ip().is_loopback());
    let (status, head, body) = get(server.local_addr(), "/metrics", "");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"));
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text, registry().snapshot().to_prometheus());
    assert!(text.contains("logins_total{region=\"eu\"} 3\n"));
    assert!(text.contains("# TYPE latency_seconds histogram\n"));
    assert!(text.contains("latency_seconds_bucket{le=\"0.1\"} 2\n"));
    assert!(text.contains("latency_seconds_bucket{le=\"+Inf\"} 4\n"));
    server.stop();
}

#[test]
fn openmetrics_by_accept() {
    let server = start(ServeConfig::default());
    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n";
    let (status, head, body) = get(server.local_addr(), "/metrics?x=1", accept);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/openmetrics-text; version=1.0.0"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE logins counter\nlogins_total{region=\"eu\"} 3\n"));
}

#[test]
fn gzip_when_asked() {
    let server = start(ServeConfig::default());
    let (status, head, body) = get(server.local_addr(), "/metrics", "Accept-Encoding: gzip\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("content-encoding: gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, registry().snapshot().to_prometheus());
    // Not asked, or refused: plain.
    for h in ["", "Accept-Encoding: gzip;q=0, identity\r\n"] {
        let (_, head, body) = get(server.local_addr(), "/metrics", h);
        assert!(!head.contains("content-encoding"));
        assert!(body.starts_with(b"# TYPE"));
    }
    let off = start(ServeConfig {
        gzip: false,
        ..ServeConfig::default()
    });
    let (_, head, _) = get(off.local_addr(), "/metrics", "Accept-Encoding: gzip\r\n");
    assert!(!head.contains("content-encoding"));
}

#[test]
fn other_paths_methods_and_bodies_are_refused() {
    let server = start(ServeConfig::default());
    let addr = server.local_addr();
    assert_eq!(get(addr, "/", "").0, 404);
    assert_eq!(get(addr, "/metrics/", "").0, 404);
    assert_eq!(get(addr, "/metricsx", "").0, 404);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let raw = format!("{method} /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (status, head, _) = split(&exchange(addr, raw.as_bytes()));
        assert_eq!(status, 405, "{method}");
        assert!(head.contains("allow: get, head"));
    }
    let raw = b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(split(&exchange(addr, raw)).0, 413);
    // HEAD: the headers of a scrape, no body.
    let raw = b"HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let (status, head, body) = split(&exchange(addr, raw));
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain"));
    assert!(body.is_empty());
    // Not HTTP at all.
    let reply = exchange(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(reply.is_empty() || split(&reply).0 == 400);
}

#[test]
fn an_oversize_head_is_refused() {
    let server = start(ServeConfig::default());
    let big = format!("X-Big: {}\r\n", "a".repeat(64 * 1024));
    let raw = format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{big}\r\n");
    let reply = exchange(server.local_addr(), raw.as_bytes());
    // hyper answers 431 (or closes) once the head passes its buffer bound.
    assert!(
        reply.is_empty() || [400, 431].contains(&split(&reply).0),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Many small headers: bounded in number too.
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    let raw = format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    let reply = exchange(server.local_addr(), raw.as_bytes());
    assert!(reply.is_empty() || [400, 431].contains(&split(&reply).0));
    // And the server still serves.
    assert_eq!(get(server.local_addr(), "/metrics", "").0, 200);
}

#[test]
fn a_slow_client_does_not_hold_the_server() {
    let server = start(ServeConfig {
        read_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    });
    let addr = server.local_addr();
    // Half a request, then silence.
    let mut slow = connect(addr);
    slow.write_all(b"GET /metr").unwrap();
    // Another client's scrapes complete while it stalls.
    for _ in 0..3 {
        assert_eq!(get(addr, "/metrics", "").0, 200);
    }
    // The stalled connection is closed by the server (408 or plain EOF),
    // not left open: the read ends well before the watchdog.
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.is_empty() || split(&rest).0 == 408);
}

#[test]
fn connections_past_the_limit_are_closed() {
    // The held connections must stay open (idle) while the third one is
    // tried: a read timeout far above a loaded host's scheduling delays.
    let server = start(ServeConfig {
        max_connections: 2,
        read_timeout: Duration::from_secs(3),
        ..ServeConfig::default()
    });
    let addr = server.local_addr();
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            // Read the reply head so the connection is surely accepted and counted.
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"HTTP/1.1 200");
            s
        })
        .collect();
    // A third connection is closed without an answer.
    let reply = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.is_empty());
    // Once the held ones go (idle past the read timeout), scrapes work again.
    for s in &mut held {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    drop(held);
    let mut status = 0;
    for _ in 0..100 {
        let reply = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        if !reply.is_empty() {
            status = split(&reply).0;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status, 200);
}

#[test]
fn basic_auth() {
    let server = start(ServeConfig {
        basic_auth: Some(BasicAuth::new("prom", "s3cret")),
        ..ServeConfig::default()
    });
    let addr = server.local_addr();
    let (status, head, _) = get(addr, "/metrics", "");
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic realm=\"ringstat\""));
    // prom:wrong, other:s3cret, not basic, not base64.
    for h in [
        "Basic cHJvbTp3cm9uZw==",
        "Basic b3RoZXI6czNjcmV0",
        "Bearer cHJvbTpzM2NyZXQ=",
        "Basic !!!",
    ] {
        let (status, _, _) = get(addr, "/metrics", &format!("Authorization: {h}\r\n"));
        assert_eq!(status, 401, "{h}");
    }
    let (status, _, body) = get(
        addr,
        "/metrics",
        "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.starts_with(b"# TYPE"));
}

#[test]
fn keep_alive_serves_several_scrapes_on_one_connection() {
    let server = start(ServeConfig::default());
    let mut s = connect(server.local_addr());
    for _ in 0..3 {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap().to_lowercase();
        assert!(head.starts_with("http/1.1 200"));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
    }
}

#[test]
fn a_closure_source_and_stop() {
    let snap = registry().snapshot();
    let server =
        Server::start(move || -> Snapshot { snap.clone() }, ServeConfig::default()).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/metrics", "").0, 200);
    // An idle keep-alive connection does not keep stop() from returning.
    let _idle = connect(addr);
    server.stop();
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn bad_configs_and_a_taken_port() {
    let server = start(ServeConfig::default());
    let taken = ServeConfig {
        addr: server.local_addr(),
        ..ServeConfig::default()
    };
    assert!(matches!(
        Server::start(registry(), taken),
        Err(ServeError::Io(_))
    ));
    for bad in [
        ServeConfig {
            path: "metrics".into(),
            ..ServeConfig::default()
        },
        ServeConfig {
            read_timeout: Duration::ZERO,
            ..ServeConfig::default()
        },
        ServeConfig {
            max_connections: 0,
            ..ServeConfig::default()
        },
        ServeConfig {
            max_request_bytes: 100,
            ..ServeConfig::default()
        },
    ] {
        let err = Server::start(registry(), bad).unwrap_err();
        assert!(matches!(err, ServeError::Config(_)), "{err}");
    }
    assert!(BasicAuth::from_sha256_hex("u", &"g".repeat(64)).is_err());
}

#[test]
fn a_shared_registry_is_a_source() {
    use ringstat::stats::{SharedOptions, SharedRegistry};
    let name = format!("ringstat-serve-test-{}", std::process::id());
    let opts = SharedOptions {
        max_processes: 4,
        max_entries: 16,
        data_bytes: 1 << 16,
        ..SharedOptions::default()
    };
    let (served, _) = SharedRegistry::create_or_attach(&name, opts).unwrap();
    // Another attachment (as another process would) writes; the server
    // reads the region afresh on each scrape.
    let writer = SharedRegistry::attach(&name).unwrap();
    served.unlink().unwrap();
    writer.counter("jobs", &[("kind", "a")]).unwrap().add(2);
    writer.gauge("inflight", &[]).unwrap().set(5);
    let server = Server::start(served.clone(), ServeConfig::default()).unwrap();
    let addr = server.local_addr();
    let (status, _, body) = get(addr, "/metrics", "");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text, served.snapshot().to_prometheus());
    assert!(text.contains("jobs_total{kind=\"a\"} 2\n"));
    assert!(text.contains("inflight 5\n"));
    writer.counter("jobs", &[("kind", "a")]).unwrap().add(1);
    let accept = "Accept: application/openmetrics-text;version=1.0.0\r\n";
    let (status, head, body) = get(addr, "/metrics", accept);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/openmetrics-text; version=1.0.0"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("# TYPE jobs counter\njobs_total{kind=\"a\"} 3\n"));
    assert!(text.ends_with("# EOF\n"));
    server.stop();
}
