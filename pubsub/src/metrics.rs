//! Pub/sub counters and their Prometheus text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::pubsub::PubSub;

#[derive(Default)]
pub(crate) struct PeerCounters {
    pub(crate) sent: u64,
    pub(crate) sent_bytes: u64,
    pub(crate) received: u64,
}

/// A per-peer metric: name, help, and how to read it.
type PeerRow = (&'static str, &'static str, fn(&PeerCounters) -> u64);

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) peers: Mutex<BTreeMap<String, PeerCounters>>,
    pub(crate) delivered: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) send_failures: AtomicU64,
}

impl PubSub {
    /// Prometheus text: per-peer messages and bytes, deliveries, errors.
    pub fn metrics_text(&self) -> String {
        let node = self.shared.node.name();
        let c = &self.shared.counters;
        let mut out = String::new();
        let peers = c.peers.lock().unwrap_or_else(|p| p.into_inner());
        let per_peer: [PeerRow; 3] = [
            (
                "drove_pubsub_sent_total",
                "Pub/sub messages sent to each peer (one per broadcast per node with subscribers).",
                |p| p.sent,
            ),
            (
                "drove_pubsub_sent_bytes_total",
                "Payload bytes of pub/sub messages sent to each peer.",
                |p| p.sent_bytes,
            ),
            (
                "drove_pubsub_received_total",
                "Pub/sub messages received from each peer.",
                |p| p.received,
            ),
        ];
        for (name, help, get) in per_peer {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (peer, counters) in peers.iter() {
                out.push_str(&format!(
                    "{name}{{node=\"{node}\",peer=\"{peer}\"}} {}\n",
                    get(counters)
                ));
            }
        }
        drop(peers);
        let topics = self.lock().topics().count();
        let rows: [drove_runtime::metrics::Sample<'_>; 4] = [
            (
                "drove_pubsub_delivered_total",
                "counter",
                "Messages handed to subscribers on this node.",
                c.delivered.load(Ordering::Relaxed),
            ),
            (
                "drove_pubsub_undecodable_total",
                "counter",
                "Messages from peers that did not decode as their subscribers' type.",
                c.undecodable.load(Ordering::Relaxed),
            ),
            (
                "drove_pubsub_send_failures_total",
                "counter",
                "Messages that could not be sent to a peer (no link).",
                c.send_failures.load(Ordering::Relaxed),
            ),
            (
                "drove_pubsub_local_topics",
                "gauge",
                "Topics with subscribers on this node.",
                topics as u64,
            ),
        ];
        out.push_str(&drove_runtime::metrics::render_samples(node, &rows));
        out
    }
}
