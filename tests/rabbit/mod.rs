//! A private RabbitMQ node for the Rust broker tests, started the way
//! `tests/python/rabbitmq_node.py` starts one: Debian's rabbitmq-server on
//! 127.0.0.1 only, node `rabbit@localhost`, free ports for AMQP, Erlang
//! distribution and a private epmd, a private directory for data, logs and
//! config. Each process runs in a process group of its own; a watchdog
//! (`sh`) kills the groups and removes the directory once this test
//! process ends in any way (its stdin pipe closes, even after SIGKILL).
//!
//! [`Node::start`] returns `None` (the test skips) when rabbitmq-server is
//! not installed, unless `RINGSTAT_REQUIRE_RABBITMQ` is set: then it
//! panics (`make broker-tools` installs it).

#![allow(dead_code)] // each test file uses a part

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Kills the process groups named after `$0` once stdin closes, then
/// removes the directory `$0`.
const WATCHDOG: &str = r#"cat >/dev/null
d="$0"
for g in "$@"; do kill -KILL -- "-$g" 2>/dev/null; done
sleep 1
rm -rf "$d""#;

/// Sends `sig` to the process group `pgid` (a child spawned with
/// `process_group(0)`); `false` if no process of the group is left.
fn signal_group(pgid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) takes no pointers; a negative pid names the group of
    // our own child.
    unsafe { libc::kill(-(pgid as i32), sig) == 0 }
}

/// A random number (std's per-process random hasher keys).
fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// `n` distinct free ports on 127.0.0.1, below the kernel's ephemeral
/// range (so no outgoing connection takes one before the node binds it),
/// held open together while chosen.
fn free_ports(n: usize) -> Vec<u16> {
    let low: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let span = u64::from(low.max(10_001) - 10_000);
    let mut held = Vec::new();
    while held.len() < n {
        let port = 10_000 + (random() % span) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One private node; [`stop`](Node::stop) and [`restart`](Node::restart)
/// keep its data directory and ports.
pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
    env: Vec<(String, String)>,
    epmd: Option<Child>,
    server: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl Node {
    /// A started node, or `None` (skip) if rabbitmq-server is missing and
    /// not required.
    pub fn start() -> Option<Self> {
        if !Path::new(SERVER).exists() {
            if std::env::var_os("RINGSTAT_REQUIRE_RABBITMQ").is_some() {
                panic!("{SERVER} missing: `make broker-tools` installs rabbitmq-server");
            }
            eprintln!("skipped: rabbitmq-server is not installed (make broker-tools)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "ringstat-rabbit-rs-{}-{:x}",
            std::process::id(),
            random()
        ));
        fs::create_dir_all(dir.join("home")).unwrap();
        let ports = free_ports(3);
        let (port, dist, epmd_port) = (ports[0], ports[1], ports[2]);
        let cookie = dir.join("home/.erlang.cookie");
        fs::write(&cookie, format!("ringstat-test-{:x}", random())).unwrap();
        fs::set_permissions(&cookie, fs::Permissions::from_mode(0o400)).unwrap();
        fs::write(dir.join("env.conf"), "").unwrap();
        fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
        let env = vec![
            ("HOME".into(), d("home")),
            ("RABBITMQ_NODENAME".into(), "rabbit@localhost".into()),
            ("RABBITMQ_NODE_IP_ADDRESS".into(), "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT".into(), port.to_string()),
            ("RABBITMQ_DIST_PORT".into(), dist.to_string()),
            ("ERL_EPMD_ADDRESS".into(), "127.0.0.1".into()),
            ("ERL_EPMD_PORT".into(), epmd_port.to_string()),
            ("RABBITMQ_MNESIA_BASE".into(), d("mnesia")),
            ("RABBITMQ_LOG_BASE".into(), d("log")),
            ("RABBITMQ_CONF_ENV_FILE".into(), d("env.conf")),
            ("RABBITMQ_CONFIG_FILE".into(), d("rabbitmq")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE".into(), d("advanced.config")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE".into(), d("enabled_plugins")),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".into(),
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ];
        let mut node = Self {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2F"),
            dir,
            port,
            env,
            epmd: None,
            server: None,
            watchdog: None,
        };
        node.epmd = Some(node.spawn(
            "/usr/bin/epmd",
            &["-address", "127.0.0.1", "-port", &epmd_port.to_string()],
            "epmd.log",
        ));
        node.restart();
        Some(node)
    }

    fn spawn(&self, program: &str, args: &[&str], log: &str) -> Child {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))
            .unwrap();
        Command::new(program)
            .args(args)
            .current_dir(&self.dir) // an erl_crash.dump stays in the private directory
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    }

    /// Arms a new watchdog for the current process groups.
    fn arm_watchdog(&mut self) {
        self.drop_watchdog();
        let mut args = vec![self.dir.to_string_lossy().into_owned()];
        args.extend(
            [&self.epmd, &self.server]
                .into_iter()
                .flatten()
                .map(|c| c.id().to_string()),
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start the watchdog");
        let stdin = child.stdin.take().unwrap();
        self.watchdog = Some((child, stdin));
    }

    /// Kills the watchdog before its stdin closes (or it would kill the
    /// groups).
    fn drop_watchdog(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            drop(stdin);
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        let t0 = Instant::now();
        self.server = Some(self.spawn(SERVER, &[], "server.log"));
        self.arm_watchdog();
        let deadline = t0 + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = self.server.as_mut().unwrap().try_wait() {
                panic!("rabbitmq-server exited ({status}):\n{}", self.log_tail());
            }
            if self.accepts() {
                eprintln!("rabbitmq-server ready in {:.1?}", t0.elapsed());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server not ready:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether an AMQP connection opens.
    fn accepts(&self) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = tokio::time::timeout(
                Duration::from_secs(5),
                lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default()),
            )
            .await;
            match c {
                Ok(Ok(conn)) => {
                    let _ = conn.close(200, "ok".into()).await;
                    true
                }
                _ => false,
            }
        })
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server: SIGTERM to its group, SIGKILL after 30 s, and
    /// waits until no process of the group is left.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let pgid = server.id();
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        // The Erlang VM may outlive the wrapper script briefly: wait for
        // the whole group.
        while Instant::now() < deadline {
            let _ = server.try_wait();
            // Signal 0 only checks that the group still has a process.
            if !signal_group(pgid, 0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group(pgid, libc::SIGKILL);
        let _ = server.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut epmd) = self.epmd.take() {
            signal_group(epmd.id(), libc::SIGKILL);
            let _ = epmd.wait();
        }
        self.drop_watchdog();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
