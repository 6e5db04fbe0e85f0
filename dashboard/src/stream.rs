//! The dashboard's data routes, behind the admin API's guard (bearer
//! token, Host and Origin checks):
//!
//! - `GET /api/dashboard/stream?panel=..&q=..&after=..&offset=..&node=..&queue=..&state=..`:
//!   `text/event-stream`; a `data:` frame with `{"summary", "panel"}`
//!   every [`FRAME_EVERY`], and at once when membership changes (a node
//!   down shows within the failure detector's time, not a frame later).
//!   400 for a bad view, 503 past [`MAX_WATCHERS`](crate::hub::MAX_WATCHERS).
//! - `GET /api/dashboard/frame?...`: the same document once.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::hub::{Hub, WatcherSlot};
use crate::views::View;

/// How often a stream sends a frame when nothing else wakes it.
pub const FRAME_EVERY: Duration = Duration::from_secs(1);

type ViewQuery = Result<Query<View>, QueryRejection>;

fn refused(status: StatusCode, reason: String) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// The view in a query, checked, or why it is refused (400): a query that
/// is not a view at all (an unknown field, a number that is not one), or
/// a view [`View::check`] refuses.
fn checked(view: ViewQuery) -> Result<View, String> {
    let Query(view) = view.map_err(|e| e.body_text())?;
    view.check()?;
    Ok(view)
}

async fn frame(State(hub): State<Hub>, view: ViewQuery) -> Response {
    match checked(view) {
        Ok(view) => (
            [(header::CONTENT_TYPE, "application/json")],
            hub.frame(&view).await,
        )
            .into_response(),
        Err(e) => refused(StatusCode::BAD_REQUEST, e),
    }
}

async fn stream(State(hub): State<Hub>, view: ViewQuery) -> Response {
    let view = match checked(view) {
        Ok(view) => view,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e),
    };
    let Some(slot) = hub.watch() else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboards are watching this node".into(),
        );
    };
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(feed(hub, view, slot, tx));
    let frames = ReceiverStream::new(rx)
        .map(|frame: String| Ok::<_, Infallible>(Event::default().data(frame)));
    Sse::new(frames)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Sends `view`'s frames into `tx` until the stream is dropped: one every
/// [`FRAME_EVERY`], and one at once when membership changes (a burst of
/// changes makes one frame). The channel holds one frame, so a slow
/// reader slows this loop down instead of queueing frames.
async fn feed(hub: Hub, view: View, _slot: WatcherSlot, tx: mpsc::Sender<String>) {
    let mut membership = hub.drove().node().subscribe();
    let mut tick = tokio::time::interval(FRAME_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = membership.recv() => {
                if matches!(changed, Err(broadcast::error::RecvError::Closed)) {
                    return;
                }
                while membership.try_recv().is_ok() {}
            }
            () = tx.closed() => return,
        }
        let frame = hub.frame(&view).await;
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// `/api/dashboard/stream` and `/api/dashboard/frame`.
pub fn routes(hub: Hub) -> Router {
    Router::new()
        .route("/api/dashboard/stream", get(stream))
        .route("/api/dashboard/frame", get(frame))
        .with_state(hub)
}
