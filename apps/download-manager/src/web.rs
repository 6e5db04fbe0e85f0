//! The HTTP side: the page, the JSON API, the progress stream, and CORS
//! for pages that reconnect to another node.
//!
//! - `GET /`: the page.
//! - `POST /api/downloads`: 201 with the download; 409 when one exists.
//! - `GET /api/downloads/current`: 200 with the download, 404 when none.
//! - `DELETE /api/downloads/current`: 204, 404 when none.
//! - `GET /api/downloads/current/file`: the CSV file (and the entry is
//!   cleared); 409 while not ready, 404 when none.
//! - `GET /api/downloads/events`: server-sent events: `download` (the
//!   user's download, or null) and `cluster` (who serves, the members).
//! - `GET /api/app/cluster`: the same cluster view as JSON.
//!
//! Every answer carries the session cookie (a new user gets one). Errors
//! are JSON: `{"error": "..."}`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::app::{App, AppError};
use crate::download::{self, Download, Update};
use drove_admin::listener::ClientAddr;

use crate::limits::ClientLimits;
use crate::session::Sessions;

/// Everything a handler needs.
#[derive(Clone)]
pub(crate) struct WebState {
    /// The application.
    pub app: App,
    /// Session signing.
    pub sessions: Sessions,
    /// Limits per client address.
    pub limits: ClientLimits,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub proxies: std::sync::Arc<crate::proxy::TrustedProxies>,
}

/// The user of a request, and the cookie to set if it is new.
fn user(state: &WebState, headers: &HeaderMap) -> (String, Option<String>) {
    match state.sessions.user(headers) {
        Some(u) => (u, None),
        None => {
            let u = Sessions::new_user();
            let cookie = state.sessions.set_cookie(&u, headers);
            (u, Some(cookie))
        }
    }
}

fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn error(status: StatusCode, message: impl ToString) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

fn app_error(e: AppError) -> Response {
    match e {
        AppError::InProgress(d) => (
            StatusCode::CONFLICT,
            Json(
                serde_json::json!({ "error": "a download is already in progress", "download": d }),
            ),
        )
            .into_response(),
        AppError::NotFound => error(StatusCode::NOT_FOUND, "no download"),
        AppError::NotReady => error(StatusCode::CONFLICT, "the file is not ready yet"),
        AppError::ShareTaken => too_many("downloads running"),
        AppError::Unavailable(_) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        AppError::Damaged(_) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn page(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (_, cookie) = user(&state, &headers);
    with_cookie(Html(crate::page::PAGE).into_response(), cookie)
}

fn too_many(what: &str) -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many {what} from this address"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn create(
    State(state): State<WebState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    if !state.limits.start(client.ip()) {
        return too_many("downloads");
    }
    let (user, cookie) = user(&state, &headers);
    let response = match state.app.start(&user, client.ip()).await {
        Ok(d) => (StatusCode::CREATED, Json(d)).into_response(),
        Err(e) => app_error(e),
    };
    with_cookie(response, cookie)
}

async fn current(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (user, cookie) = user(&state, &headers);
    let response = match state.app.current(&user) {
        Some(d) => Json(d).into_response(),
        None => app_error(AppError::NotFound),
    };
    with_cookie(response, cookie)
}

async fn delete(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (user, cookie) = user(&state, &headers);
    let response = match state.app.clear(&user).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => app_error(e),
    };
    with_cookie(response, cookie)
}

async fn file(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (user, cookie) = user(&state, &headers);
    let response = match state.app.file(&user) {
        // A GET changes nothing (a cross-site page can make a browser send
        // one with the session cookie): the page clears the report with a
        // DELETE once it has the file.
        Ok((d, manifest, body)) => {
            let disposition = format!("attachment; filename=\"report-{}.csv\"", d.id);
            (
                [
                    (header::CONTENT_TYPE, "text/csv".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                    (
                        header::HeaderName::from_static("x-content-sha256"),
                        manifest.sha256,
                    ),
                    (header::HeaderName::from_static("x-download-id"), d.id),
                    (
                        header::HeaderName::from_static("x-produced-by"),
                        manifest.nodes.join(" "),
                    ),
                ],
                Body::from(body),
            )
                .into_response()
        }
        Err(e) => app_error(e),
    };
    with_cookie(response, cookie)
}

/// The `cluster` event and `GET /api/app/cluster`.
#[derive(Serialize)]
struct ClusterView {
    served_by: String,
    members: Vec<drove_admin::MemberJson>,
}

fn cluster_view(app: &App) -> ClusterView {
    let c = drove_admin::cluster_json(app.drove.node());
    ClusterView {
        served_by: c.node,
        members: c.members,
    }
}

async fn cluster(State(state): State<WebState>) -> Json<ClusterView> {
    Json(cluster_view(&state.app))
}

fn event(name: &str, data: &impl Serialize) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}

/// The progress display never goes backwards: a resumed tracker may redo
/// a step the page has already seen, and a page that reconnects to another
/// node may first read a copy that lags by a delta.
fn forward(last: &mut Option<(String, u8)>, d: &Download) -> bool {
    if let Some((id, progress)) = last {
        if *id == d.id && d.progress < *progress {
            return false;
        }
    }
    *last = Some((d.id.clone(), d.progress));
    true
}

async fn events(
    State(state): State<WebState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(slot) = state.limits.stream(client.ip()) else {
        return too_many("progress streams");
    };
    let (user, cookie) = user(&state, &headers);
    let mut updates = match state
        .app
        .drove
        .pubsub()
        .subscribe_stream::<Update>(&download::topic(&user))
    {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (tx, rx) = mpsc::channel::<Event>(64);
    let app = state.app.clone();
    tokio::spawn(async move {
        // The slot is held for as long as the stream runs.
        let _slot = slot;
        let node = app.drove.node().name().to_string();
        let mut last = None;
        let snapshot = app.current(&user);
        if let Some(d) = &snapshot {
            forward(&mut last, d);
        }
        let first = [
            event("cluster", &cluster_view(&app)),
            event(
                "download",
                &serde_json::json!({ "download": snapshot, "served_by": node }),
            ),
        ];
        for e in first.into_iter().flatten() {
            if tx.send(e).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next = tokio::select! {
                u = updates.recv() => match u {
                    Some(Ok(Update::Changed(d))) => forward(&mut last, &d)
                        .then(|| event("download", &serde_json::json!({ "download": d, "served_by": node })))
                        .flatten(),
                    Some(Ok(Update::Cleared)) => {
                        last = None;
                        event("download", &serde_json::json!({ "download": null, "served_by": node }))
                    }
                    // Updates were dropped while this stream fell behind:
                    // the current state replaces them.
                    Some(Err(_lagged)) => {
                        let d = app.current(&user);
                        last = None;
                        if let Some(d) = &d {
                            forward(&mut last, d);
                        }
                        event("download", &serde_json::json!({ "download": d, "served_by": node }))
                    }
                    None => return,
                },
                _ = tick.tick() => event("cluster", &cluster_view(&app)),
            };
            if let Some(e) = next {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok::<Event, Infallible>);
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(5)));
    with_cookie(sse.into_response(), cookie)
}

/// Every request spends from its client's request bucket first.
async fn rate_limit(
    State(state): State<WebState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !state.limits.request(client.ip()) {
        return too_many("requests");
    }
    next.run(request).await
}

/// Pages reconnect to another member when theirs dies; another port is
/// another origin, so members' origins may call with credentials.
async fn cors(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let allowed = origin.filter(|o| {
        state
            .app
            .drove
            .node()
            .members()
            .iter()
            .any(|m| *o == format!("http://{}", m.info.http))
    });
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = allowed.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-content-sha256, x-download-id, x-produced-by"),
        );
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
        }
    }
    response
}

/// Unknown paths: a JSON 404.
pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path")
}

/// A known path with the wrong method: a JSON 405.
pub(crate) async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

/// The app's routes, to merge with the admin API.
pub(crate) fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/downloads", axum::routing::post(create))
        // The page on another member's origin clears with a DELETE, which
        // a browser preflights; `cors` adds the answer's headers.
        .route(
            "/api/downloads/current",
            get(current)
                .delete(delete)
                .options(|| async { StatusCode::NO_CONTENT }),
        )
        .route(download::FILE_URL, get(file))
        .route("/api/downloads/events", get(events))
        .route("/api/app/cluster", get(cluster))
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(
            state.proxies.clone(),
            crate::proxy::real_client,
        ))
        .with_state(state)
}
