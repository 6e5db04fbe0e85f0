//! drove's admin HTTP API: every service's routes, composed from one list
//! ([`SERVICES`]) over a [`Drove`] handle, and served until a signal. The
//! domain crates know nothing of HTTP; each module here is one service's
//! routes and JSON types, answering errors through [`reply::error`].
//!
//! - `GET /api/cluster`, `GET /metrics`: [`cluster`].
//! - `/api/registry`: [`registry`].
//! - `/api/children`: [`children`].
//! - `/api/pubsub`: [`pubsub`].
//! - `/api/cache`: [`cache`].
//! - `/api/pools`: [`pools`].
//! - `/api/jobs`: [`jobs`].
//! - `/api/events`: [`events`].
//! - `/`, `/dashboard/*`, `/api/dashboard/*`: the live dashboard
//!   (`drove-dashboard`).
//! - `GET /healthz`, `GET /readyz`: liveness and readiness probes
//!   ([`health`]).
//!
//! The admin API belongs on a listener of its own, loopback by default:
//! [`guard`] checks Host, Origin, content type and an optional bearer
//! token; [`listener`] bounds connections (in all, per address, idle
//! time). Applications serve their own pages on another listener
//! ([`serve`] takes several).
//!
//! # Layout
//!
//! - this file: [`SERVICES`], [`router`], [`bind`], [`serve`].
//! - [`guard`], [`listener`]: the protections.
//! - one module per service, [`reply`] (the error helper), [`client`] (a
//!   dependency-free HTTP/1.1 client for the CLI and tests).

pub mod cache;
pub mod children;
pub mod client;
pub mod cluster;
pub mod events;
pub mod guard;
pub mod health;
pub mod jobs;
pub mod listener;
pub mod pools;
pub mod pubsub;
pub mod registry;
pub mod reply;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use drove::{Drove, Shutdown};

pub use cluster::{cluster_json, ClusterJson, MemberJson};
pub use guard::Guard;

/// Why the admin API could not be bound or served.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin HTTP address could not be bound.
    #[error("binding --http {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the stop signal failed.
    #[error("waiting for a stop signal")]
    Signal(#[source] drove::DroveError),
}

/// Each service's routes, in the order they are merged.
pub const SERVICES: [fn(&Drove) -> Router; 8] = [
    cluster::routes,
    registry::routes,
    children::routes,
    pubsub::routes,
    cache::routes,
    pools::routes,
    jobs::routes,
    events::routes,
];

/// The admin API of `drove`: every service in [`SERVICES`] and the
/// dashboard's data, behind `guard`; and the dashboard's page at `/` and
/// the [`health`] probes, behind the same Host and Origin checks but
/// without the token (the page holds no data and asks the visitor for the
/// token; a probe cannot carry one).
pub async fn router(drove: &Drove, guard: Guard) -> Router {
    let hub = drove_dashboard::Hub::start(drove).await;
    let routes = SERVICES
        .iter()
        .fold(Router::new(), |router, routes| router.merge(routes(drove)))
        .merge(drove_dashboard::stream::routes(hub));
    let page = Guard {
        token: None,
        hosts: guard.hosts.clone(),
    };
    let open = drove_dashboard::assets::routes().merge(health::routes(drove));
    guard::protect(routes, guard).merge(guard::protect(open, page))
}

/// Binds the admin address; done before the node starts, so a port in
/// use fails before the node joins the cluster.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

/// Serves each router on its listener (bounded by
/// [`listener::HttpLimits`]'s defaults) until SIGTERM (hand the children
/// over, then leave) or SIGINT (leave without handing over: the whole
/// cluster is going); if an HTTP server itself stops, the node leaves too.
pub async fn serve(drove: &Drove, apps: Vec<(TcpListener, Router)>) -> Result<(), AdminError> {
    let mut servers = tokio::task::JoinSet::new();
    for (listener, app) in apps {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let counters = listener::HttpCounters::registered(drove.node().metrics(), &addr);
        servers.spawn(listener::serve(
            listener,
            app,
            listener::HttpLimits::default(),
            counters,
        ));
    }
    let how = tokio::select! {
        how = drove::wait_for_signal() => how.map_err(AdminError::Signal)?,
        Some(result) = servers.join_next() => {
            tracing::error!(?result, "an HTTP server stopped");
            Shutdown::Leave
        }
    };
    drove.shutdown(how).await;
    servers.abort_all();
    Ok(())
}
