//! What an event is: a serde type with a stable type name ([`Event`]), its
//! id ([`EventId`]), and the form handlers receive it in ([`Envelope`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use drove_jobs::JobError;

/// An event: plain data with a name that stays the same across builds
/// (handlers on other nodes, and events stored before an upgrade, find
/// their type by it).
///
/// ```
/// use drove_events::Event;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ReportReady {
///     report: String,
/// }
///
/// impl Event for ReportReady {
///     const TYPE: &'static str = "app.report_ready";
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable type name.
    const TYPE: &'static str;
}

/// An event's id: the id of the job that carries it to its handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event as a handler receives it: its type and its payload, typed on
/// demand with [`decode`](Self::decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event, as JSON.
    pub payload: serde_json::Value,
}

impl Envelope {
    /// Whether this is an `E`.
    pub fn is<E: Event>(&self) -> bool {
        self.kind == E::TYPE
    }

    /// The payload as an `E`. A payload that does not decode is an error
    /// no retry fixes: the delivery is dead-lettered with the reason.
    pub fn decode<E: Event>(&self) -> Result<E, JobError> {
        if self.kind != E::TYPE {
            return Err(JobError::discard(format!(
                "event of type {:?} is not a {:?}",
                self.kind,
                E::TYPE
            )));
        }
        E::deserialize(&self.payload)
            .map_err(|e| JobError::discard(format!("payload does not decode as {}: {e}", E::TYPE)))
    }
}

/// Why a type name is refused.
pub(crate) fn check_type(kind: &str) -> Result<(), String> {
    if kind.is_empty() || kind.len() > 128 {
        return Err(format!(
            "an event type is 1 to 128 bytes, not {}",
            kind.len()
        ));
    }
    if !kind.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("event type {kind:?} is not printable ASCII"));
    }
    Ok(())
}
