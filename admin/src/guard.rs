//! What every admin request passes before a route sees it: the Host and
//! Origin headers (against DNS rebinding and cross-site requests), a JSON
//! content type on writes, an optional bearer token, and a body limit.
//!
//! - **Host**: an IP literal, `localhost`, or one of [`Guard::hosts`]. A
//!   DNS-rebinding page reaches the listener under its own name, which is
//!   none of these.
//! - **Origin** (when a browser sends one): the whole origin, scheme, host
//!   and port, must be this listener's own: `http://` and the request's
//!   Host, with port 80 where none is written. A page served from another
//!   port of the same host is another origin and is refused, as is `null`.
//! - **Writes** (anything but GET, HEAD, OPTIONS) that carry a content type
//!   must carry `application/json`: an HTML form can post only
//!   `text/plain`, urlencoded or multipart bodies across sites.
//! - **Token**: with [`Guard::token`], every request needs
//!   `Authorization: Bearer <token>` (compared in constant time).
//! - **Body**: at most [`MAX_BODY`] bytes; a larger declared
//!   `Content-Length` is refused (413) before the body is read.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;

use crate::reply;

/// Largest request body: a 1 MiB cache value, JSON-escaped, fits.
pub const MAX_BODY: usize = 4 << 20;

/// The admin listener's protections.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// Requests must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Host names accepted besides IP literals and `localhost`.
    pub hosts: Vec<String>,
}

/// `router` behind `guard`.
pub fn protect(router: Router, guard: Guard) -> Router {
    router
        .layer(middleware::from_fn_with_state(Arc::new(guard), check))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// `authority` with its port written out (80 when none is: the listeners
/// speak plain HTTP), lower-cased.
fn with_port(authority: &str) -> String {
    let a = authority.to_ascii_lowercase();
    let has_port = match a.strip_prefix('[') {
        Some(rest) => !rest.ends_with(']'),
        None => a.contains(':'),
    };
    if has_port {
        a
    } else {
        format!("{a}:80")
    }
}

/// Whether `origin` is `http://` followed by the request's `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    scheme.eq_ignore_ascii_case("http")
        && !authority.is_empty()
        && !authority.contains(['/', '@', '?', '#'])
        && with_port(authority) == with_port(host)
}

/// The host part of a `Host` header or an origin's authority.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

impl Guard {
    fn host_allowed(&self, host: &str) -> bool {
        host.parse::<IpAddr>().is_ok()
            || host.eq_ignore_ascii_case("localhost")
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Constant time: the comparison must not tell how much of a guess
        // was right.
        bool::from(want.as_bytes().ct_eq(given.as_bytes()))
    }

    /// Why `headers` and `method` are refused, if they are.
    fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST).map(host_of);
        if let Some(h) = host {
            if !self.host_allowed(h) {
                return Some(reply::error(
                    StatusCode::FORBIDDEN,
                    format!("host {h:?} is not allowed"),
                ));
            }
        }
        if let Some(origin) = text(header::ORIGIN) {
            let same = text(header::HOST).is_some_and(|h| same_origin(origin, h));
            if !same {
                return Some(reply::error(
                    StatusCode::FORBIDDEN,
                    format!("origin {origin:?} is not this listener's"),
                ));
            }
        }
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            if let Some(kind) = text(header::CONTENT_TYPE) {
                let json = kind
                    .split(';')
                    .next()
                    .is_some_and(|k| k.trim().eq_ignore_ascii_case("application/json"));
                if !json {
                    return Some(reply::error(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "writes take application/json",
                    ));
                }
            }
        }
        if !self.token_ok(headers) {
            let mut r = reply::error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return Some(r);
        }
        // Refused on its declared length, before the body is read: the
        // server then never asks a client that sent `Expect: 100-continue`
        // for a body it would not take.
        let declared = text(header::CONTENT_LENGTH).and_then(|n| n.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Some(reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a request body is at most {MAX_BODY} bytes"),
            ));
        }
        None
    }
}

async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    match guard.refusal(req.method(), req.headers()) {
        Some(refused) => refused,
        None => next.run(req).await.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn status(g: &Guard, m: Method, pairs: &[(&'static str, &str)]) -> Option<u16> {
        g.refusal(&m, &headers(pairs)).map(|r| r.status().as_u16())
    }

    #[test]
    fn hosts_origins_content_types_and_tokens() {
        let g = Guard::default();
        assert_eq!(status(&g, Method::GET, &[("host", "127.0.0.1:8370")]), None);
        assert_eq!(status(&g, Method::GET, &[("host", "[::1]:8370")]), None);
        assert_eq!(status(&g, Method::GET, &[("host", "localhost:8370")]), None);
        assert_eq!(
            status(&g, Method::GET, &[("host", "evil.example:8370")]),
            Some(403)
        );
        let cross = [
            ("host", "127.0.0.1:8370"),
            ("origin", "http://evil.example"),
        ];
        assert_eq!(status(&g, Method::POST, &cross), Some(403));
        let null = [("host", "127.0.0.1:8370"), ("origin", "null")];
        // Another port of the same host is another origin.
        let other_port = [
            ("host", "127.0.0.1:8370"),
            ("origin", "http://127.0.0.1:3000"),
        ];
        assert_eq!(status(&g, Method::POST, &other_port), Some(403));
        let other_scheme = [
            ("host", "127.0.0.1:8370"),
            ("origin", "https://127.0.0.1:8370"),
        ];
        assert_eq!(status(&g, Method::POST, &other_scheme), Some(403));
        let default_port = [("host", "localhost"), ("origin", "http://LOCALHOST:80")];
        assert_eq!(status(&g, Method::POST, &default_port), None);
        let v6 = [("host", "[::1]:8370"), ("origin", "http://[::1]:8370")];
        assert_eq!(status(&g, Method::POST, &v6), None);
        let v6_other = [("host", "[::1]:8370"), ("origin", "http://[::1]")];
        assert_eq!(status(&g, Method::POST, &v6_other), Some(403));
        assert_eq!(status(&g, Method::POST, &null), Some(403));
        let same = [
            ("host", "127.0.0.1:8370"),
            ("origin", "http://127.0.0.1:8370"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert_eq!(status(&g, Method::POST, &same), None);
        let form = [("host", "127.0.0.1:8370"), ("content-type", "text/plain")];
        assert_eq!(status(&g, Method::POST, &form), Some(415));
        assert_eq!(status(&g, Method::GET, &form), None);
        let huge = (MAX_BODY + 1).to_string();
        let big = [
            ("host", "127.0.0.1:8370"),
            ("content-length", huge.as_str()),
        ];
        assert_eq!(status(&g, Method::POST, &big), Some(413));
        let fits = MAX_BODY.to_string();
        let ok = [
            ("host", "127.0.0.1:8370"),
            ("content-length", fits.as_str()),
        ];
        assert_eq!(status(&g, Method::POST, &ok), None);

        let named = Guard {
            token: Some("s3cret".into()),
            hosts: vec!["drove-0.drove".into()],
        };
        let host = ("host", "drove-0.drove:8370");
        assert_eq!(status(&named, Method::GET, &[host]), Some(401));
        assert_eq!(
            status(
                &named,
                Method::GET,
                &[host, ("authorization", "Bearer s3cre")]
            ),
            Some(401)
        );
        assert_eq!(
            status(
                &named,
                Method::GET,
                &[host, ("authorization", "Bearer s3cret!")]
            ),
            Some(401)
        );
        assert_eq!(
            status(
                &named,
                Method::GET,
                &[host, ("authorization", "Bearer s3cret")]
            ),
            None
        );
    }

    proptest::proptest! {
        /// A page served from any other origin (scheme, host or port) is
        /// refused a write; the listener's own origin is not.
        #[test]
        fn hostile_origins_are_refused(
            host in proptest::sample::select(vec!["127.0.0.1", "localhost", "[::1]", "198.18.0.7"]),
            port in 1u16..,
            other_port in 1u16..,
            other_host in proptest::sample::select(vec!["127.0.0.1", "localhost", "[::1]", "evil.example", "127.0.0.1.evil.example"]),
            scheme in proptest::sample::select(vec!["http", "HTTP", "https", "ws", "file", ""]),
            suffix in proptest::sample::select(vec!["", "/", "@evil.example", "/path", "?q"]),
        ) {
            let g = Guard::default();
            let listener = format!("{host}:{port}");
            let origin = format!("{scheme}://{other_host}:{other_port}{suffix}");
            let same = scheme.eq_ignore_ascii_case("http")
                && other_host == host
                && other_port == port
                && suffix.is_empty();
            let got = status(
                &g,
                Method::POST,
                &[("host", listener.as_str()), ("origin", origin.as_str())],
            );
            proptest::prop_assert_eq!(got.is_none(), same, "{} from {}", listener, origin);
        }

        #[test]
        fn any_headers_never_panic(
            host in ".{0,80}",
            origin in ".{0,80}",
            kind in ".{0,60}",
            auth in ".{0,80}",
        ) {
            let g = Guard { token: Some("t0k3n".into()), hosts: vec!["node-1".into()] };
            let mut h = HeaderMap::new();
            for (name, v) in [("host", &host), ("origin", &origin), ("content-type", &kind), ("authorization", &auth)] {
                if let Ok(v) = v.parse() {
                    h.insert(name, v);
                }
            }
            for m in [Method::GET, Method::POST, Method::DELETE] {
                if let Some(r) = g.refusal(&m, &h) {
                    proptest::prop_assert!(r.status().is_client_error());
                }
            }
        }
    }
}
