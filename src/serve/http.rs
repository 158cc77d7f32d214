//! One connection: hyper's HTTP/1 with bounded head size and read time, and
//! the `/metrics` handler (method, path, auth, format, gzip).

use std::convert::Infallible;
use std::io::Write as _;
use std::pin::pin;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::{first, ServeConfig, Source};
use crate::stats::Format;
use crate::sync::StdArc as Arc;

/// Serves one connection until the client closes it, a timeout, the
/// connection's lifetime ends, or `stop` changes (then a request in flight
/// is answered and the connection closed).
pub(super) async fn connection(
    stream: tokio::net::TcpStream,
    source: Arc<dyn Source>,
    config: Arc<ServeConfig>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let lifetime = config.connection_lifetime;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.read_timeout)
        .max_buf_size(config.max_request_bytes)
        .max_headers(64);
    let service = hyper::service::service_fn(move |req| {
        let (source, config) = (Arc::clone(&source), Arc::clone(&config));
        async move { Ok::<_, Infallible>(respond(&req, &*source, &config)) }
    });
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let serve = async {
        let stopped = async {
            // A dropped sender is a stop too.
            let _ = stop.wait_for(|&s| s).await;
        };
        if first(conn.as_mut(), stopped).await.is_none() {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    };
    let _ = tokio::time::timeout(lifetime, serve).await;
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn respond(
    req: &Request<Incoming>,
    source: &dyn Source,
    config: &ServeConfig,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if req.uri().path() != config.path {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if let Some(auth) = &config.basic_auth {
        if !auth.check(header_str(req, header::AUTHORIZATION)) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ringstat\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    // A scrape has no body: refuse one rather than read it.
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        let mut r = plain(StatusCode::PAYLOAD_TOO_LARGE, "a scrape has no body\n");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let format = negotiate(header_str(req, header::ACCEPT));
    let text = source.snapshot().render(format);
    let gzip = config.gzip && accepts_gzip(header_str(req, header::ACCEPT_ENCODING));
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(text.as_bytes());
        enc.finish().unwrap_or_default()
    } else {
        text.into_bytes()
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// The media ranges of an `Accept` or `Accept-Encoding` value, with their
/// weights (`q`, default 1).
fn weighted(value: &str) -> impl Iterator<Item = (&str, Vec<(&str, &str)>, f64)> {
    value.split(',').filter_map(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().filter(|n| !n.is_empty())?;
        let mut q = 1.0;
        let mut params = Vec::new();
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k.eq_ignore_ascii_case("q") {
                q = v.parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q))?;
            } else {
                params.push((k, v));
            }
        }
        Some((name, params, q))
    })
}

/// The format an `Accept` header asks for: OpenMetrics 1.0 when
/// `application/openmetrics-text` (without a version, or version `1.0.0`)
/// weighs more than anything that means the Prometheus text format
/// (`text/plain`, `text/*`, `*/*`, or no `Accept`); Prometheus text 0.0.4
/// otherwise.
///
/// # Examples
///
/// ```
/// use ringstat::serve::negotiate;
/// use ringstat::stats::Format;
///
/// // What Prometheus sends by default.
/// let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
///             version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(negotiate(prom), Format::OpenMetrics);
/// assert_eq!(negotiate(""), Format::Prometheus);
/// assert_eq!(negotiate("text/plain"), Format::Prometheus);
/// assert_eq!(negotiate("application/openmetrics-text; version=0.0.1"), Format::Prometheus);
/// ```
#[must_use]
pub fn negotiate(accept: &str) -> Format {
    let (mut om, mut text) = (0.0f64, 0.0f64);
    let mut any = false;
    for (name, params, q) in weighted(accept) {
        any = true;
        let version = params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("version"))
            .map(|&(_, v)| v);
        if name.eq_ignore_ascii_case("application/openmetrics-text") {
            if version.is_none_or(|v| v == "1.0.0") {
                om = om.max(q);
            }
        } else if name.eq_ignore_ascii_case("text/plain")
            || name.eq_ignore_ascii_case("text/*")
            || name == "*/*"
        {
            text = text.max(q);
        }
    }
    if any && om > 0.0 && om > text {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// `true` when an `Accept-Encoding` value allows gzip (named or `*`, with
/// a weight above 0).
fn accepts_gzip(value: &str) -> bool {
    let mut gzip = None;
    let mut star = None;
    for (name, _, q) in weighted(value) {
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if name == "*" {
            star = Some(q);
        }
    }
    gzip.or(star).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip;q=0, *"));
        assert!(!accepts_gzip("gzip;q=bad"));
    }
}
