//! A scrape endpoint (cargo feature `serve`): an HTTP server on one native
//! thread serving a [`Snapshot`] source's exposition at `/metrics`.
//!
//! - [`Source`]: anything that produces a [`Snapshot`] (a [`Registry`], a
//!   [`SharedRegistry`](crate::stats::SharedRegistry) read by every process,
//!   or a closure), so another registry kind is served by the same server.
//! - [`Server`]: started by [`Server::start`], stopped by [`Server::stop`]
//!   or on drop (the thread is joined).
//! - [`ServeConfig`]: address (default `127.0.0.1`, an ephemeral port),
//!   path, limits, timeouts, [`BasicAuth`].
//!
//! Each scrape renders a fresh snapshot, as Prometheus text 0.0.4 or
//! OpenMetrics 1.0 by the `Accept` header ([`negotiate`]), gzip-compressed
//! when `Accept-Encoding` allows it. `GET` and `HEAD` of the path only
//! (404 elsewhere, 405 for other methods); request heads are bounded in
//! size and in the time they take to arrive, connections in number and
//! lifetime, so a slow or hostile client cannot hold the server. TLS is not
//! built in: put the endpoint behind a reverse proxy for it.
//!
//! The server is hyper's HTTP/1 on a current-thread tokio runtime: one
//! thread, every connection a task on it.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use ringstat::serve::{ServeConfig, Server};
//! use ringstat::stats::Registry;
//!
//! let reg = Registry::new();
//! reg.counter("logins", &[])?.inc();
//! let server = Server::start(reg.clone(), ServeConfig::default())?;
//! let mut s = std::net::TcpStream::connect(server.local_addr())?;
//! s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! let mut reply = String::new();
//! s.read_to_string(&mut reply)?;
//! assert!(reply.starts_with("HTTP/1.1 200 OK"));
//! assert!(reply.ends_with("logins_total 1\n"));
//! server.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod http;
mod shared;

use core::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::pin;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

pub use auth::BasicAuth;
pub use http::negotiate;

use crate::stats::{Registry, Snapshot};
use crate::sync::StdArc as Arc;

/// What a [`Server`] serves: a fresh [`Snapshot`] per scrape. Called on the
/// server's thread, so it must not block for long (and, from Python, never
/// touches the interpreter).
pub trait Source: Send + Sync + 'static {
    /// The metrics now.
    fn snapshot(&self) -> Snapshot;
}

impl Source for Registry {
    fn snapshot(&self) -> Snapshot {
        Registry::snapshot(self)
    }
}

impl<F: Fn() -> Snapshot + Send + Sync + 'static> Source for F {
    fn snapshot(&self) -> Snapshot {
        self()
    }
}

/// How a [`Server`] listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen; default `127.0.0.1:0` (loopback, a free port: read
    /// it back from [`Server::local_addr`]). Binding another interface
    /// exposes the metrics to that network.
    pub addr: SocketAddr,
    /// The one path served; default `/metrics` (a query string is ignored).
    pub path: String,
    /// The time a client has to send a request head; default 5 s. A
    /// connection that is slower, or idle that long between requests, is
    /// closed.
    pub read_timeout: Duration,
    /// The longest a connection lives, however busy; default 60 s.
    pub connection_lifetime: Duration,
    /// The largest request head accepted, in bytes (at least 8192, hyper's
    /// floor); default 8192. A larger one gets `431`/`400` and is closed;
    /// a request with a body gets `413`.
    pub max_request_bytes: usize,
    /// Connections served at once; past that a new one is closed at once.
    /// Default 64.
    pub max_connections: usize,
    /// Required credentials, if any (default none).
    pub basic_auth: Option<BasicAuth>,
    /// Compress with gzip when the client accepts it; default `true`.
    pub gzip: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: "/metrics".to_owned(),
            read_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(60),
            max_request_bytes: 8192,
            max_connections: 64,
            basic_auth: None,
            gzip: true,
        }
    }
}

/// Why a [`Server`] could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding the address or starting the thread failed.
    Io(std::io::Error),
    /// A configuration value is out of range (named in the text).
    Config(String),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot serve metrics: {e}"),
            Self::Config(m) => write!(f, "invalid server configuration: {m}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Config(_) => None,
        }
    }
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A running scrape endpoint. [`stop`](Server::stop) (or dropping it)
/// closes the listener and idle connections, lets scrapes in flight finish
/// (up to a second) and joins the thread.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a forked child has no such
    /// thread, and must not join it.
    pid: u32,
}

impl Server {
    /// Binds `config.addr` and serves `source` from a new thread.
    ///
    /// # Errors
    ///
    /// [`ServeError::Io`] if the address cannot be bound (in use, not
    /// local) or the thread cannot start; [`ServeError::Config`] for a path
    /// not starting with `/`, timeouts not in (0, 1 day], `max_connections`
    /// not in `1..=2^20`, `max_request_bytes` below 8192.
    pub fn start(source: impl Source, config: ServeConfig) -> Result<Self, ServeError> {
        check(&config)?;
        let listener = TcpListener::bind(config.addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let stop = Arc::new(Notify::new());
        let stop2 = Arc::clone(&stop);
        let source: Arc<dyn Source> = Arc::new(source);
        let thread = std::thread::Builder::new()
            .name("ringstat-serve".to_owned())
            .spawn(move || rt.block_on(run(listener, source, config, stop2)))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
            pid: std::process::id(),
        })
    }

    /// The address it listens on (with the port chosen for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread; also done on drop. In a child
    /// forked after the start, which has no server thread, it only forgets
    /// the handle (the parent's server keeps running).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            if std::process::id() != self.pid {
                // A forked child: the thread (and its runtime) exist only in
                // the parent; its copy of the handle is left alone.
                std::mem::forget(t);
                return;
            }
            // A stored permit: the accept loop sees it even if not waiting yet.
            self.stop.notify_one();
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

fn check(c: &ServeConfig) -> Result<(), ServeError> {
    let bad = |m: &str| Err(ServeError::Config(m.to_owned()));
    if !c.path.starts_with('/') {
        return bad("path must start with '/'");
    }
    let day = Duration::from_secs(86_400);
    let in_range = |d: Duration| !d.is_zero() && d <= day;
    if !in_range(c.read_timeout) {
        return bad("read_timeout must be above zero and at most a day");
    }
    if !in_range(c.connection_lifetime) {
        return bad("connection_lifetime must be above zero and at most a day");
    }
    if c.max_connections == 0 || c.max_connections > 1 << 20 {
        return bad("max_connections must be in 1..=1048576");
    }
    if c.max_request_bytes < 8192 {
        return bad("max_request_bytes must be at least 8192");
    }
    Ok(())
}

/// The first of two futures to finish: `Some` from `a`, `None` from `b`.
async fn first<A: Future>(a: A, b: impl Future<Output = ()>) -> Option<A::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        b.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// The accept loop: until `stop`, each connection a task holding one of
/// `max_connections` permits; then every connection is told to close (idle
/// ones at once) and those with a request in flight get up to a second.
async fn run(
    listener: TcpListener,
    source: Arc<dyn Source>,
    config: ServeConfig,
    stop: Arc<Notify>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let config = Arc::new(config);
    // Tells every connection to finish its request in flight and close.
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    loop {
        let Some(accepted) = first(listener.accept(), stop.notified()).await else {
            break;
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: back off, keep serving.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Over the limit: closed unanswered.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            continue;
        };
        let (source, config) = (Arc::clone(&source), Arc::clone(&config));
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            http::connection(stream, source, config, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(1), permits.acquire_many(all)).await;
}
