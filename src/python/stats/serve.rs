//! `Registry.serve()`, `SharedRegistry.serve()` and `ringstat.MetricsServer`: the scrape endpoint of
//! [`crate::serve`] for Python. The server thread renders from the Rust
//! registry (in-process or shared) and never takes the GIL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::super::errors::{int_arg, type_name};
use super::{percentiles_or_default, seconds_arg, str_arg};
use crate::serve::{BasicAuth, ServeConfig, ServeError, Server, Source};
use crate::sync::Mutex;

/// A running scrape endpoint (see `Registry.serve`).
#[pyclass(frozen, name = "MetricsServer", module = "ringstat._ringstat")]
pub(crate) struct PyMetricsServer {
    server: Mutex<Option<Server>>,
    addr: SocketAddr,
    path: String,
}

fn serve_err(e: ServeError) -> PyErr {
    match e {
        ServeError::Io(e) => e.into(),
        e => PyValueError::new_err(e.to_string()),
    }
}

/// `(user, secret)` from a 2-tuple of str, naming `name` on error.
fn pair_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<(String, String)> {
    let t = value
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "{name} must be a (user, password) tuple of str, not {}",
                type_name(value)
            ))
        })?;
    Ok((
        str_arg(&t.get_item(0)?, name)?,
        str_arg(&t.get_item(1)?, name)?,
    ))
}

/// The address `host:port`: `host` an IP address or `"localhost"` (never
/// looked up: binding needs no name service).
fn addr_arg(host: &Bound<'_, PyAny>, port: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let host = str_arg(host, "host")?;
    let port = int_arg(port, "port", 0)?;
    let port = u16::try_from(port)
        .map_err(|_| PyValueError::new_err(format!("port must be in 0..=65535, got {port}")))?;
    let ip = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "host must be an IP address (\"127.0.0.1\", \"::1\", \"0.0.0.0\") or \"localhost\", got {host:?}"
                ))
            })?
    };
    Ok(SocketAddr::new(ip, port))
}

/// The body of `Registry.serve` and `SharedRegistry.serve`: parses the
/// arguments (`None` takes the default) and serves the source `make` builds
/// from the validated quantiles.
#[allow(clippy::too_many_arguments)]
pub(super) fn start<'py, S: Source>(
    py: Python<'py>,
    make: impl FnOnce(Vec<f64>) -> S,
    port: Option<&Bound<'py, PyAny>>,
    host: Option<&Bound<'py, PyAny>>,
    path: Option<&Bound<'py, PyAny>>,
    percentiles: Option<&Bound<'py, PyAny>>,
    basic_auth: Option<&Bound<'py, PyAny>>,
    basic_auth_sha256: Option<&Bound<'py, PyAny>>,
    read_timeout: Option<&Bound<'py, PyAny>>,
    max_connections: Option<&Bound<'py, PyAny>>,
    gzip: bool,
) -> PyResult<Py<PyMetricsServer>> {
    let or = |v: Option<&Bound<'py, PyAny>>, d: Bound<'py, PyAny>| {
        v.filter(|v| !v.is_none()).cloned().unwrap_or(d)
    };
    let port = &or(port, 0u16.into_pyobject(py)?.into_any());
    let host = &or(host, "127.0.0.1".into_pyobject(py)?.into_any());
    let path = &or(path, "/metrics".into_pyobject(py)?.into_any());
    let read_timeout = &or(read_timeout, 5.0f64.into_pyobject(py)?.into_any());
    let max_connections = &or(max_connections, 64u32.into_pyobject(py)?.into_any());
    let addr = addr_arg(host, port)?;
    let path = str_arg(path, "path")?;
    let (_, qs) = percentiles_or_default(percentiles)?;
    let read_timeout = seconds_arg(read_timeout, "read_timeout")?;
    if read_timeout < Duration::from_millis(1) {
        return Err(PyValueError::new_err(format!(
            "read_timeout must be at least 0.001 s, got {read_timeout:?}"
        )));
    }
    let max_connections = int_arg(max_connections, "max_connections", 1)?;
    let auth = match (
        basic_auth.filter(|a| !a.is_none()),
        basic_auth_sha256.filter(|a| !a.is_none()),
    ) {
        (Some(_), Some(_)) => {
            return Err(PyTypeError::new_err(
                "give basic_auth or basic_auth_sha256, not both",
            ))
        }
        (Some(a), None) => {
            let (user, password) = pair_arg(a, "basic_auth")?;
            Some(BasicAuth::new(&user, &password))
        }
        (None, Some(a)) => {
            let (user, hex) = pair_arg(a, "basic_auth_sha256")?;
            Some(BasicAuth::from_sha256_hex(&user, &hex).map_err(serve_err)?)
        }
        (None, None) => None,
    };
    let config = ServeConfig {
        addr,
        path: path.clone(),
        read_timeout,
        max_connections,
        basic_auth: auth,
        gzip,
        ..ServeConfig::default()
    };
    let source = make(qs);
    let server = py
        .detach(|| Server::start(source, config))
        .map_err(serve_err)?;
    let addr = server.local_addr();
    let obj = Py::new(
        py,
        PyMetricsServer {
            server: Mutex::new(Some(server)),
            addr,
            path,
        },
    )?;
    // Stopped at interpreter exit if not before (stop() unregisters it).
    let atexit = py.import("atexit")?;
    atexit.call_method1("register", (obj.bind(py).getattr("stop")?,))?;
    Ok(obj)
}

impl PyMetricsServer {
    fn take(&self) -> Option<Server> {
        self.server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[pymethods]
impl PyMetricsServer {
    /// The port it listens on (the one chosen when asked for port 0).
    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on.
    #[getter]
    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The path served (`/metrics` unless told otherwise).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// `http://host:port/path`.
    #[getter]
    fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// `True` until `stop()`.
    #[getter]
    fn running(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Stops serving and joins the server thread (scrapes in flight finish,
    /// for up to a second). Idempotent.
    fn stop(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if let Some(server) = slf.get().take() {
            py.detach(|| server.stop());
            let atexit = py.import("atexit")?;
            atexit.call_method1("unregister", (slf.getattr("stop")?,))?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        Self::stop(slf)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.running() { "" } else { " stopped" };
        format!("<ringstat.MetricsServer {}{state}>", self.url())
    }
}

assert_python_alignment!(PyMetricsServer);
