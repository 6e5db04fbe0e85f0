//! What the page shows, as JSON: [`View`] (which panel, which page of it,
//! checked as hostile input), the per-panel readers, and the pieces of the
//! summary every panel shows. Lists that can be long are paged here, on
//! the server: a browser never asks a node for a million rows.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use drove::events::EventList;
use drove::jobs::{Job, JobState};
use drove::pool::Snapshot;
use drove::runtime::{Member, MemberStatus};
use drove::Drove;

use crate::agent::NodeCard;

/// Rows of one page of names, keys, children or jobs.
pub const PAGE: usize = 50;

/// The longest search text or cursor a view takes.
pub const MAX_TEXT: usize = 256;

/// The panels of the page.
pub const PANELS: [&str; 8] = [
    "cluster", "registry", "children", "pubsub", "cache", "pools", "jobs", "events",
];

/// Which panel a watcher looks at, and which page of it: the query of the
/// stream. Every field comes from a web visitor.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// One of [`PANELS`]; `cluster` if absent.
    #[serde(default)]
    pub panel: Option<String>,
    /// Search text: a substring of names, keys, ids or topics.
    #[serde(default)]
    pub q: Option<String>,
    /// Cursor: the last name or key of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// Rows to skip, for lists paged by position (children, jobs).
    #[serde(default)]
    pub offset: Option<u32>,
    /// Children of this node only.
    #[serde(default)]
    pub node: Option<String>,
    /// The jobs panel's queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// The jobs panel's state.
    #[serde(default)]
    pub state: Option<String>,
}

impl View {
    /// The panel, after checking every field; the error says what is
    /// wrong.
    pub fn check(&self) -> Result<&str, String> {
        let panel = self.panel.as_deref().unwrap_or("cluster");
        if !PANELS.contains(&panel) {
            return Err(format!("unknown panel {panel:?}; one of {PANELS:?}"));
        }
        for (name, text) in [
            ("q", &self.q),
            ("after", &self.after),
            ("node", &self.node),
            ("queue", &self.queue),
            ("state", &self.state),
        ] {
            if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
                return Err(format!("{name} is longer than {MAX_TEXT} bytes"));
            }
        }
        if let Some(state) = &self.state {
            state
                .parse::<JobState>()
                .map_err(|_| format!("unknown job state {state:?}"))?;
        }
        Ok(panel)
    }

    fn search(&self) -> &str {
        self.q.as_deref().unwrap_or("")
    }

    fn offset(&self) -> usize {
        self.offset.unwrap_or(0) as usize
    }
}

/// The cluster table: every member with its status, addresses, uptime
/// (from its card) and traffic with this node.
pub fn members(
    drove: &Drove,
    cards: &BTreeMap<String, NodeCard>,
    now_ms: u64,
    rates: &dyn Fn(&str) -> Value,
) -> Value {
    let me = drove.node().id();
    let metrics = drove.node().metrics();
    let row = |m: &Member| {
        let name = &m.info.id.name;
        let this = m.info.id == me;
        let card = (m.status == MemberStatus::Up)
            .then(|| cards.get(name))
            .flatten();
        let traffic = (!this).then(|| {
            let p = metrics.peer(name);
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            json!({
                "messages_out": n(&p.messages_out), "messages_in": n(&p.messages_in),
                "bytes_out": n(&p.bytes_out), "bytes_in": n(&p.bytes_in),
                "unacked_bytes": n(&p.unacked_bytes), "rates": rates(name),
            })
        });
        let unreachable = drove.node().unreachable_reason(&m.info.id);
        json!({
            "name": name,
            "incarnation": m.info.id.incarnation.to_string(),
            "addr": m.info.addr,
            "http": m.info.http,
            "status": if unreachable.is_some() { "unreachable" } else { m.status.as_str() },
            "reason": unreachable,
            "me": this,
            "uptime_ms": card.map(|c| now_ms.saturating_sub(c.started_at_ms)),
            "children": card.map(|c| c.running_children),
            "traffic": traffic,
        })
    };
    Value::Array(drove.node().members().iter().map(row).collect())
}

/// Every pool of this node with its runners.
pub fn pools(drove: &Drove) -> Value {
    let row = |name: String, s: Snapshot| {
        json!({
            "name": name, "min": s.min, "max": s.max,
            "max_concurrency": s.max_concurrency,
            "booting": s.booting, "waiting": s.waiting,
            "runners": s.runners.iter().map(|r| json!({
                "name": r.name, "pid": r.pid, "busy": r.busy, "state": r.state,
                "age_ms": u64::try_from(r.age.as_millis()).unwrap_or(u64::MAX),
            })).collect::<Vec<_>>(),
        })
    };
    Value::Array(
        drove
            .pools()
            .all()
            .into_iter()
            .map(|p| row(p.name(), p.snapshot()))
            .collect(),
    )
}

/// Job queues with counts by state and pauses, or why they cannot be
/// read (no jobs on this node, the store is down).
pub async fn queues(drove: &Drove) -> Value {
    let Some(jobs) = drove.jobs() else {
        return json!({ "error": "this node runs no jobs" });
    };
    let up: Vec<String> = drove
        .node()
        .up_members()
        .into_iter()
        .map(|id| id.name)
        .collect();
    match jobs.queues().await {
        Ok(queues) => Value::Array(
            queues
                .into_iter()
                .map(|q| {
                    let counts: BTreeMap<String, u64> = q
                        .counts
                        .into_iter()
                        .map(|(state, n)| (state.to_string(), n))
                        .collect();
                    let nodes: Vec<String> = q
                        .paused_nodes
                        .into_iter()
                        .filter(|n| up.contains(n))
                        .collect();
                    json!({ "queue": q.queue, "paused": q.paused, "paused_nodes": nodes, "counts": counts })
                })
                .collect(),
        ),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// One panel's page for `view` (already checked).
pub async fn panel(
    drove: &Drove,
    view: &View,
    cards: &BTreeMap<String, NodeCard>,
    conflicts: Value,
) -> Value {
    match view.check().unwrap_or("cluster") {
        "registry" => registry(drove, view, conflicts),
        "children" => children(drove, view),
        "pubsub" => topics(drove, view, cards),
        "cache" => cache(drove, view),
        "jobs" => jobs(drove, view).await,
        "events" => events(drove).await,
        _ => Value::Null,
    }
}

fn registry(drove: &Drove, view: &View, conflicts: Value) -> Value {
    let page = drove
        .registry()
        .page(view.search(), view.after.as_deref(), PAGE);
    json!({
        "matched": page.matched,
        "more": page.more,
        "conflicts": conflicts,
        "entries": page.entries.iter().map(|e| json!({
            "name": e.name,
            "node": e.addr.node.name,
            "actor": e.addr.to_string(),
            "meta": e.meta,
        })).collect::<Vec<_>>(),
    })
}

fn children(drove: &Drove, view: &View) -> Value {
    let sup = drove.supervisor();
    let search = view.search();
    let mut rows: Vec<_> = sup
        .which_children()
        .into_iter()
        .filter(|c| view.node.as_ref().is_none_or(|n| &c.node == n))
        .filter(|c| {
            c.id.contains(search)
                || c.type_name.contains(search)
                || c.name.as_ref().is_some_and(|n| n.contains(search))
        })
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let matched = rows.len();
    let page: Vec<Value> = rows
        .into_iter()
        .skip(view.offset())
        .take(PAGE)
        .map(|c| {
            let checkpoint_bytes = c.checkpoint.as_ref().map(|v| v.to_string().len());
            json!({
                "id": c.id, "type": c.type_name, "name": c.name, "node": c.node,
                "restarts": c.restarts, "status": c.status,
                "checkpoint_bytes": checkpoint_bytes,
            })
        })
        .collect();
    json!({
        "matched": matched,
        "offset": view.offset(),
        "counts": sup.count_children(),
        "types": sup.local_types(),
        "children": page,
    })
}

fn topics(drove: &Drove, view: &View, cards: &BTreeMap<String, NodeCard>) -> Value {
    let search = view.search();
    let all: Vec<_> = drove
        .pubsub()
        .topics()
        .into_iter()
        .filter(|(t, _)| t.contains(search))
        .collect();
    let matched = all.len();
    let rows: Vec<Value> = all
        .into_iter()
        .skip(view.offset())
        .take(PAGE)
        .map(|(topic, nodes)| {
            let per_node: Vec<Value> = nodes
                .iter()
                .map(|n| {
                    // A node's own count comes from its card; without one
                    // (no agent, no answer) only "some" is known.
                    let count = cards.get(&n.name).and_then(|c| {
                        c.topics
                            .binary_search_by(|(t, _)| t.as_str().cmp(&topic))
                            .ok()
                            .map(|i| c.topics[i].1)
                    });
                    json!({ "node": n.name, "subscribers": count })
                })
                .collect();
            json!({ "topic": topic, "nodes": per_node })
        })
        .collect();
    json!({ "matched": matched, "offset": view.offset(), "topics": rows })
}

fn cache(drove: &Drove, view: &View) -> Value {
    let cache = drove.cache();
    let page = cache.page(view.search(), view.after.as_deref(), PAGE);
    json!({
        "matched": page.matched,
        "more": page.more,
        "bytes": cache.bytes(),
        "now_ms": cache.now_ms(),
        "keys": page.keys,
    })
}

/// A job as a row: its arguments cut short, its errors whole.
fn job_row(job: &Job) -> Value {
    let mut args = job.args.clone();
    if args.len() > 200 {
        let mut cut = 200;
        while !args.is_char_boundary(cut) {
            cut -= 1;
        }
        args.truncate(cut);
        args.push('…');
    }
    json!({
        "id": job.id.0, "worker": job.worker, "state": job.state.to_string(),
        "attempt": job.attempt, "max_retries": job.max_retries, "node": job.node,
        "args": args, "errors": job.errors,
        "scheduled_at_ms": job.scheduled_at_ms, "attempted_at_ms": job.attempted_at_ms,
        "completed_at_ms": job.completed_at_ms,
    })
}

async fn jobs(drove: &Drove, view: &View) -> Value {
    let Some(jobs) = drove.jobs() else {
        return json!({ "error": "this node runs no jobs" });
    };
    let (Some(queue), Some(state)) = (&view.queue, &view.state) else {
        return json!({ "jobs": [] });
    };
    let Ok(state) = state.parse::<JobState>() else {
        return json!({ "error": format!("unknown job state {state:?}") });
    };
    let offset = view.offset.unwrap_or(0);
    match jobs.list(queue, state, offset, PAGE as u32).await {
        Ok(list) => json!({
            "queue": queue, "state": state.to_string(), "offset": offset,
            "jobs": list.iter().map(job_row).collect::<Vec<_>>(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Events listed per kind on the events panel.
const EVENTS_LISTED: u32 = 20;

async fn events(drove: &Drove) -> Value {
    let Some(events) = drove.events() else {
        return json!({ "error": "this node runs no events" });
    };
    let mut out = serde_json::Map::new();
    for (key, which) in [
        ("pending", EventList::Pending),
        ("dispatched", EventList::Dispatched),
        ("dead", EventList::Dead),
    ] {
        let value = match events.list(which, EVENTS_LISTED).await {
            Ok(list) => serde_json::to_value(list).unwrap_or(Value::Null),
            Err(e) => json!({ "error": e.to_string() }),
        };
        out.insert(key.to_string(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_refuse_what_they_do_not_know() {
        let ok = View {
            panel: Some("jobs".into()),
            state: Some("available".into()),
            ..View::default()
        };
        assert_eq!(ok.check(), Ok("jobs"));
        assert_eq!(View::default().check(), Ok("cluster"));
        let bad_panel = View {
            panel: Some("../etc".into()),
            ..View::default()
        };
        assert!(bad_panel.check().unwrap_err().contains("unknown panel"));
        let long = View {
            q: Some("x".repeat(MAX_TEXT + 1)),
            ..View::default()
        };
        assert!(long.check().unwrap_err().contains("longer than"));
        let state = View {
            state: Some("sleeping".into()),
            ..View::default()
        };
        assert!(state.check().unwrap_err().contains("unknown job state"));
    }
}
