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
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))
    }
}
