//! The one way every route answers an error: `{"error": "..."}` with a
//! status; `JsonBody` answers a body that is not the expected JSON the
//! same way.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

/// A JSON error answer: `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message: String = message.into();
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// A JSON error answer for `e`, its causes included:
/// `{"error": "what failed: why: ..."}` with `status`.
pub fn error_of(status: StatusCode, e: &dyn std::error::Error) -> Response {
    error(status, drove::runtime::error::chain(e))
}

/// A JSON request body; anything else is answered 400 with [`error`].
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(body)| JsonBody(body))
            .map_err(|e| {
                // Too large stays 413; every other malformed body is 400.
                let status = match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                error(status, e.body_text())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    use crate::cache::PutBody;
    use crate::children::SpawnBody;

    async fn answer(bytes: Vec<u8>) -> StatusCode {
        let app = Router::new()
            .route(
                "/spawn",
                post(|JsonBody(_): JsonBody<SpawnBody>| async { StatusCode::OK }),
            )
            .route(
                "/put",
                post(|JsonBody(_): JsonBody<PutBody>| async { StatusCode::OK }),
            );
        let mut worst = StatusCode::OK;
        for path in ["/spawn", "/put"] {
            let req = Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(bytes.clone()))
                .unwrap();
            let status = app.clone().oneshot(req).await.unwrap().status();
            if status != StatusCode::OK {
                worst = status;
            }
        }
        worst
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_an_answer(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let status = rt.block_on(answer(bytes));
            proptest::prop_assert!(status == StatusCode::OK || status.is_client_error(), "{status}");
        }

        #[test]
        fn json_shaped_bodies_are_answers(text in r#"\{("[a-z_]{1,8}":(null|[0-9]{1,20}|"[^"]{0,10}"|\[\]|\{\}),?){0,5}\}"#) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let status = rt.block_on(answer(text.into_bytes()));
            proptest::prop_assert!(status == StatusCode::OK || status.is_client_error(), "{status}");
        }
    }
}
