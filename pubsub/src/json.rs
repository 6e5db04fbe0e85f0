//! [`JsonMessage`]: any JSON document as a pub/sub message, for publishers
//! and subscribers that do not share a Rust type (the admin API, pages).

use serde::{Deserialize, Serialize};

use drove_runtime::Message;

/// A JSON document as a pub/sub message (JSON text, so it crosses the
/// wire through bincode unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonMessage(pub String);

impl Message for JsonMessage {
    const TAG: &'static str = "drove.pubsub.json.v1";
}
