//! Pub/sub counters and their Prometheus text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct PeerCounters {
    sent: u64,
    sent_bytes: u64,
    received: u64,
}

/// A per-peer metric: name, help, and how to read it.
type PeerRow = (&'static str, &'static str, fn(&PeerCounters) -> u64);

/// One node's pub/sub counters.
#[derive(Default)]
pub(crate) struct Counters {
    peers: Mutex<BTreeMap<String, PeerCounters>>,
    delivered: AtomicU64,
    undecodable: AtomicU64,
    send_failures: AtomicU64,
    /// Messages dropped from full stream subscriptions.
    lagged: Arc<AtomicU64>,
}

impl Counters {
    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PeerCounters>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message of `bytes` payload bytes went to `peer`.
    pub(crate) fn sent(&self, peer: &str, bytes: u64) {
        let mut peers = self.peers();
        let c = peers.entry(peer.to_string()).or_default();
        c.sent += 1;
        c.sent_bytes += bytes;
    }

    /// A message came from `peer`.
    pub(crate) fn received(&self, peer: &str) {
        self.peers().entry(peer.to_string()).or_default().received += 1;
    }

    /// A message could not be sent.
    pub(crate) fn send_failed(&self) {
        self.send_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The counter of messages dropped from full stream subscriptions.
    pub(crate) fn lagged(&self) -> Arc<AtomicU64> {
        self.lagged.clone()
    }

    /// A message from a peer did not decode.
    pub(crate) fn undecodable(&self) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` messages were handed to subscribers here.
    pub(crate) fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text for node `node` with `topics` local topics.
    pub(crate) fn render(&self, node: &str, topics: usize) -> String {
        let mut out = String::new();
        let peers = self.peers();
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
        let rows: [drove_runtime::metrics::Sample<'_>; 5] = [
            (
                "drove_pubsub_delivered_total",
                "counter",
                "Messages handed to subscribers on this node.",
                self.delivered.load(Ordering::Relaxed),
            ),
            (
                "drove_pubsub_undecodable_total",
                "counter",
                "Messages from peers that did not decode as their subscribers' type.",
                self.undecodable.load(Ordering::Relaxed),
            ),
            (
                "drove_pubsub_send_failures_total",
                "counter",
                "Messages that could not be sent to a peer (no link).",
                self.send_failures.load(Ordering::Relaxed),
            ),
            (
                "drove_pubsub_lagged_total",
                "counter",
                "Messages dropped from stream subscriptions that fell behind (each subscriber was told how many).",
                self.lagged.load(Ordering::Relaxed),
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
