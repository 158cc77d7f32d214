//! A private Kafka-protocol broker for the Rust Kafka tests, started the
//! way `tests/python/kafka_node.py` starts one: tansu (built by `make
//! kafka-tools` into build/tansu/bin/tansu; `RINGSTAT_TANSU` overrides the
//! path) on 127.0.0.1 only, on a free port, with its SQLite storage in a
//! private directory (so a broker stopped and started again keeps its
//! topics). It runs in a process group of its own; a watchdog (`sh`) kills
//! the group and removes the directory once this test process ends in any
//! way (its stdin pipe closes, even after SIGKILL).
//!
//! [`Node::start`] returns `None` (the test skips) when tansu is not built,
//! unless `RINGSTAT_REQUIRE_KAFKA` is set: then it panics.

#![allow(dead_code)] // each test file uses a part

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

/// Kills the process group `$1` once stdin closes, then removes the
/// directory `$0`.
const WATCHDOG: &str = r#"cat >/dev/null
kill -KILL -- "-$1" 2>/dev/null
sleep 1
rm -rf "$0""#;

/// Sends `sig` to the process group `pgid`; `false` if no process of the
/// group is left.
fn signal_group(pgid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) takes no pointers; a negative pid names the group of
    // our own child.
    unsafe { libc::kill(-(pgid as i32), sig) == 0 }
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range.
fn free_port() -> u16 {
    let low: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let span = u64::from(low.max(10_001) - 10_000);
    loop {
        let port = 10_000 + (random() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The tansu binary.
pub fn tansu() -> PathBuf {
    std::env::var_os("RINGSTAT_TANSU").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("build/tansu/bin/tansu"),
        PathBuf::from,
    )
}

/// One private broker; [`stop`](Node::stop) and [`restart`](Node::restart)
/// keep its storage and port.
pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
    server: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl Node {
    /// A started broker, or `None` (skip) if tansu is missing and not
    /// required.
    pub fn start() -> Option<Self> {
        let bin = tansu();
        if !bin.exists() {
            if std::env::var_os("RINGSTAT_REQUIRE_KAFKA").is_some() {
                panic!("{} missing: `make kafka-tools` builds tansu", bin.display());
            }
            eprintln!("skipped: tansu is not built (make kafka-tools)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "ringstat-kafka-rs-{}-{:x}",
            std::process::id(),
            random()
        ));
        fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut node = Self {
            url: format!("kafka://127.0.0.1:{port}"),
            dir,
            port,
            server: None,
            watchdog: None,
        };
        node.restart();
        Some(node)
    }

    /// Starts the broker (again) and waits until it answers a metadata
    /// request.
    pub fn restart(&mut self) {
        let t0 = Instant::now();
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let server = Command::new(tansu())
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            // Relative to the private directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            // Only what the broker needs: tansu reads STORAGE_ENGINE,
            // LISTENER_URL, ... from the environment.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("cannot start tansu");
        self.server = Some(server);
        self.arm_watchdog();
        let deadline = t0 + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.server.as_mut().unwrap().try_wait() {
                panic!("tansu exited ({status}):\n{}", self.log_tail());
            }
            if self.answers() {
                eprintln!("tansu ready in {:.1?}", t0.elapsed());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu not ready:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1))
            .is_err()
        {
            return false;
        }
        let c: BaseConsumer = match ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{}", self.port))
            .create()
        {
            Ok(c) => c,
            Err(_) => return false,
        };
        c.fetch_metadata(None, Duration::from_secs(2)).is_ok()
    }

    fn arm_watchdog(&mut self) {
        self.drop_watchdog();
        let pgid = self.server.as_ref().unwrap().id().to_string();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(self.dir.to_string_lossy().into_owned())
            .arg(pgid)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start the watchdog");
        let stdin = child.stdin.take().unwrap();
        self.watchdog = Some((child, stdin));
    }

    /// Kills the watchdog before its stdin closes (or it would kill the
    /// broker).
    fn drop_watchdog(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            drop(stdin);
        }
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the broker: SIGTERM to its group, SIGKILL after 30 s.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let pgid = server.id();
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pgid, libc::SIGKILL);
        let _ = server.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        self.drop_watchdog();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
