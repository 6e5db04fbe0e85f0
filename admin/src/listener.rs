//! The HTTP server behind the admin and app listeners, bounded against
//! slow and idle clients.
//!
//! - At most [`HttpLimits::max_connections`] open connections, and
//!   [`HttpLimits::max_per_source`] from one address. A new connection past
//!   either cap closes the oldest *idle* one (no request in flight, from the
//!   same address when that address is at its cap); with none idle, the new
//!   one is closed at once. So a client holding hundreds of silent sockets
//!   cannot keep `/healthz` or anyone else out.
//! - A connection with no request in flight for [`HttpLimits::idle`] is
//!   closed, whatever it sends: that covers a socket that never sends a
//!   request, one that sends its headers a byte at a time (a request is in
//!   flight only once its headers are in), and an idle keep-alive. hyper's
//!   own header-read timeout is not used: it also fires on a connection
//!   whose response is still streaming.
//! - A request is in flight from its headers to the end of its response
//!   body, so a long server-sent-event stream is never idle.
//! - Refusals are counted and logged at most once per interval.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use drove::runtime::throttle::Throttled;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

/// Open connections an admin or app listener holds by default.
pub const MAX_CONNECTIONS: usize = 512;

/// The bounds of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections at once.
    pub max_connections: usize,
    /// Open connections at once from one address.
    pub max_per_source: usize,
    /// How long a connection may go with no request in flight.
    pub idle: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_per_source: 128,
            idle: Duration::from_secs(5),
        }
    }
}

/// The client address of a connection, for handlers that limit per client
/// (`axum::extract::ConnectInfo<ClientAddr>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Set in [`Activity::state`] once a connection is chosen to close: no
/// request starts on it after that.
const CLOSING: usize = 1 << (usize::BITS - 1);

/// One open connection's activity.
struct Activity {
    /// Requests in flight, and [`CLOSING`]. One word, so that choosing an
    /// idle connection to close and a request starting on it cannot both
    /// win: a request that started is never cut off by the caps or the
    /// idle deadline.
    state: AtomicUsize,
    /// Milliseconds since the server started, when the last request ended
    /// (or the connection opened).
    last_active_ms: AtomicU64,
    close: Notify,
}

impl Activity {
    /// Marks the connection closing if nothing is in flight on it.
    fn try_close(&self) -> bool {
        self.state
            .compare_exchange(0, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Counts a request in, unless the connection is closing.
    fn try_begin(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & CLOSING == 0).then_some(s + 1)
            })
            .is_ok()
    }
}

struct Open {
    source: IpAddr,
    activity: Arc<Activity>,
}

/// Counters of one HTTP server, rendered at `/metrics` with the
/// listener's address as a label.
#[derive(Debug, Clone, Default)]
pub struct HttpCounters {
    /// Connections accepted.
    pub accepted: Arc<AtomicU64>,
    /// Idle connections closed to make room for a newer one.
    pub dropped_for_room: Arc<AtomicU64>,
    /// New connections closed at once: the caps were reached with every
    /// open connection busy.
    pub refused: Arc<AtomicU64>,
    /// Connections closed for being idle too long.
    pub idle_closed: Arc<AtomicU64>,
}

impl HttpCounters {
    /// The counters of the listener on `addr`, registered with `metrics`.
    pub fn registered(metrics: &drove::runtime::metrics::Metrics, addr: &str) -> Self {
        let labels = [("listener", addr)];
        Self {
            accepted: metrics.counter(
                "drove_http_accepted_total",
                "HTTP connections accepted.",
                &labels,
            ),
            dropped_for_room: metrics.counter(
                "drove_http_dropped_for_room_total",
                "Idle HTTP connections closed to make room for newer ones.",
                &labels,
            ),
            refused: metrics.counter(
                "drove_http_refused_total",
                "HTTP connections closed at once: the caps were reached and none was idle.",
                &labels,
            ),
            idle_closed: metrics.counter(
                "drove_http_idle_closed_total",
                "HTTP connections closed for having no request in flight for too long.",
                &labels,
            ),
        }
    }
}

struct Server {
    limits: HttpLimits,
    started: Instant,
    open: Mutex<(u64, BTreeMap<u64, Open>)>,
    counters: HttpCounters,
    refusals: Throttled,
}

impl Server {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a connection from `source`, closing an idle one if a cap
    /// is reached; `None` if the caps are reached and nothing is idle.
    fn admit(&self, source: IpAddr) -> Option<(u64, Arc<Activity>)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (next, table) = &mut *open;
        let of_source = table.values().filter(|o| o.source == source).count();
        let full_source = of_source >= self.limits.max_per_source;
        if full_source || table.len() >= self.limits.max_connections {
            let victim = table
                .iter()
                .find(|(_, o)| (!full_source || o.source == source) && o.activity.try_close())
                .map(|(id, _)| *id);
            match victim.and_then(|id| table.remove(&id)) {
                Some(v) => {
                    v.activity.close.notify_one();
                    self.counters
                        .dropped_for_room
                        .fetch_add(1, Ordering::Relaxed);
                    self.refusals.note(format_args!(
                        "an idle connection from {} closed to make room",
                        v.source
                    ));
                }
                None => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    self.refusals
                        .note(format_args!("a connection from {source} refused: all busy"));
                    return None;
                }
            }
        }
        let id = *next;
        *next += 1;
        let activity = Arc::new(Activity {
            state: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        table.insert(
            id,
            Open {
                source,
                activity: activity.clone(),
            },
        );
        Some((id, activity))
    }

    fn forget(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.1.remove(&id);
    }
}

/// Serves `app` on `listener` within `limits` until the listener fails.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    counters: HttpCounters,
) -> std::io::Result<()> {
    let server = Arc::new(Server {
        limits,
        started: Instant::now(),
        open: Mutex::new((0, BTreeMap::new())),
        counters,
        refusals: Throttled::new("HTTP connections refused or closed early"),
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, most likely: back off, do not spin.
                server.refusals.note(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        server.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let Some((id, activity)) = server.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            server.clone(),
            id,
            activity,
            stream,
            peer,
            app.clone(),
        ));
    }
}

async fn connection(
    server: Arc<Server>,
    id: u64,
    activity: Arc<Activity>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
) {
    let tracked = activity.clone();
    let started = server.started;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(peer)));
        let app = app.clone();
        let busy = InFlight::begin(tracked.clone(), started);
        async move {
            let Some(busy) = busy else {
                // Chosen to close a moment ago: this request is not served.
                let mut closing = axum::response::Response::new(Body::empty());
                *closing.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                closing.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                return Ok(closing);
            };
            let response = match app.oneshot(request.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    _busy: busy,
                })
            }))
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle = server.limits.idle;
    let mut tick = tokio::time::interval(Duration::from_millis(
        (idle.as_millis() as u64 / 4).clamp(50, 1000),
    ));
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            () = activity.close.notified() => break,
            _ = tick.tick() => {
                let quiet = server.now_ms().saturating_sub(activity.last_active_ms.load(Ordering::Acquire));
                if quiet >= idle.as_millis() as u64 && activity.try_close() {
                    server.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    server.forget(id);
}

/// A request in flight on a connection, until its response body ends.
struct InFlight {
    activity: Arc<Activity>,
    started: Instant,
}

impl InFlight {
    /// The request's mark, or `None` if the connection is closing.
    fn begin(activity: Arc<Activity>, started: Instant) -> Option<Self> {
        activity.try_begin().then_some(Self { activity, started })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity
            .last_active_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
        self.activity.state.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it ends.
struct Tracked {
    inner: Body,
    _busy: InFlight,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity() -> Arc<Activity> {
        Arc::new(Activity {
            state: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            close: Notify::new(),
        })
    }

    #[test]
    fn a_busy_connection_is_never_chosen_and_a_closing_one_serves_nothing() {
        let a = activity();
        let started = Instant::now();
        let busy = InFlight::begin(a.clone(), started);
        assert!(busy.is_some());
        assert!(!a.try_close(), "a request is in flight");
        drop(busy);
        assert!(a.try_close());
        assert!(InFlight::begin(a.clone(), started).is_none());
    }

    #[test]
    fn closing_and_starting_race_to_one_winner() {
        for _ in 0..200 {
            let a = activity();
            let started = Instant::now();
            let starter = {
                let a = a.clone();
                std::thread::spawn(move || InFlight::begin(a, started).map(std::mem::forget))
            };
            let closed = a.try_close();
            let began = starter.join().map(|b| b.is_some()).unwrap_or(false);
            assert!(closed != began, "closed {closed}, began {began}");
        }
    }
}
