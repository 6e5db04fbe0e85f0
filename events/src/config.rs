//! [`EventsConfig`]: whether this node handles events, how many at once,
//! how big a payload may be, and which types the built-in `drove.record`
//! takes.

use serde::{Deserialize, Serialize};

/// The events settings of a node (TOML `[events]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Whether this node handles events (Dawdle's `start_listener`). A
    /// node without a listener still signals them.
    pub listener: bool,
    /// Events and deliveries in flight on this node at most.
    pub max_demand: u32,
    /// The largest encoded payload a signal takes.
    pub max_payload_bytes: usize,
    /// Retries of a failing handler's delivery before the dead letter
    /// (`None`: the job store's backoff setting).
    pub max_retries: Option<u32>,
    /// The types the built-in `drove.record` handler records: `*` for
    /// every type but `drove.flaky`.
    pub record_types: Vec<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            listener: true,
            max_demand: 64,
            max_payload_bytes: 256 * 1024,
            max_retries: None,
            record_types: vec!["*".to_owned()],
        }
    }
}
