//! Built-in handlers for black-box tests: `drove.record` appends each
//! event it gets to a node-local [`Ledger`] (after `payload.sleep_ms`, if
//! given, so a test can kill a node mid-handler); `drove.flaky` fails its
//! first `payload.times` attempts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use drove_jobs::JobError;

use crate::config::EventsConfig;
use crate::event::{Envelope, EventId};
use crate::handler::{EventCtx, Filter, Handler, Handlers};
use crate::route::now_ms;

/// The type `drove.flaky` handles.
pub const FLAKY_TYPE: &str = "drove.flaky";

/// The longest `sleep_ms` `drove.record` honours.
const MAX_RECORD_SLEEP_MS: u64 = 60_000;

/// The most entries a ledger keeps; older ones are dropped first.
pub const LEDGER_CAPACITY: usize = 100_000;

/// One event as `drove.record` saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The event.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The node that handled it.
    pub node: String,
    /// The delivery's attempt.
    pub attempt: u32,
    /// When (Unix ms).
    pub handled_at_ms: u64,
    /// Its payload.
    pub payload: serde_json::Value,
}

/// What `drove.record` recorded on this node, oldest first, bounded by
/// [`LEDGER_CAPACITY`].
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<VecDeque<Recorded>>,
}

impl Ledger {
    fn push(&self, entry: Recorded) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= LEDGER_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<Recorded> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().cloned().collect()
    }
}

/// Records every event of its types in the ledger.
pub struct Record {
    ledger: Arc<Ledger>,
    filter: Filter,
}

impl Handler for Record {
    const NAME: &'static str = "drove.record";

    fn filter(&self) -> Filter {
        self.filter.clone()
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        if let Some(ms) = event.payload.get("sleep_ms").and_then(|v| v.as_u64()) {
            tokio::time::sleep(Duration::from_millis(ms.min(MAX_RECORD_SLEEP_MS))).await;
        }
        self.ledger.push(Recorded {
            id: ctx.event,
            kind: event.kind,
            node: ctx.node,
            attempt: ctx.attempt,
            handled_at_ms: now_ms(),
            payload: event.payload,
        });
        Ok(())
    }
}

/// Fails the first `times` attempts of each `drove.flaky` event.
pub struct Flaky;

#[derive(Deserialize)]
struct FlakyPayload {
    #[serde(default)]
    times: u32,
}

impl Handler for Flaky {
    const NAME: &'static str = "drove.flaky";

    fn filter(&self) -> Filter {
        Filter::only([FLAKY_TYPE])
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        let payload: FlakyPayload = serde_json::from_value(event.payload)
            .map_err(|e| JobError::discard(format!("drove.flaky wants {{\"times\": n}}: {e}")))?;
        if ctx.attempt <= payload.times {
            return Err(JobError::retry(format!(
                "drove.flaky: attempt {} of {} planned failures",
                ctx.attempt, payload.times
            )));
        }
        Ok(())
    }
}

/// Adds the built-in handlers to `handlers`: `drove.record` for the types
/// in `config.record_types` (`*` for all), and `drove.flaky`. Returns the
/// record's ledger.
pub fn add_builtins(handlers: &mut Handlers, config: &EventsConfig) -> Arc<Ledger> {
    let ledger = Arc::new(Ledger::default());
    let filter = if config.record_types.iter().any(|t| t == "*") {
        Filter::except(Vec::<String>::new())
    } else {
        Filter::only(config.record_types.clone())
    };
    handlers.add(Record {
        ledger: ledger.clone(),
        filter,
    });
    handlers.add(Flaky);
    ledger
}
