//! Counters, and their Prometheus text rendering.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use drove_membership::{Member, MemberStatus};

/// Traffic counters for one peer (by node name).
#[derive(Debug, Default)]
pub struct PeerCounters {
    /// Frames sent to the peer.
    pub messages_out: AtomicU64,
    /// Bytes of batches sent to the peer.
    pub bytes_out: AtomicU64,
    /// Frames received from the peer.
    pub messages_in: AtomicU64,
    /// Bytes of batches received from the peer.
    pub bytes_in: AtomicU64,
    /// Sends refused with `Overloaded`: the link's queue was full, or a
    /// call found the peer not reading.
    pub overloaded: AtomicU64,
    /// Bytes waiting in the link, not yet handed to the transport (a gauge).
    pub queued_bytes: AtomicU64,
    /// Bytes handed to the transport that the peer has not acknowledged
    /// (a gauge).
    pub unacked_bytes: AtomicU64,
}

/// What the gossip socket refused and passed.
#[derive(Debug, Default)]
pub struct GossipCounters {
    /// Datagrams that opened and passed the checks.
    pub accepted: AtomicU64,
    /// Datagrams without a valid MAC (no cookie, another cookie, tampered).
    pub unauthenticated: AtomicU64,
    /// Sealed datagrams outside the time window or seen before.
    pub replayed: AtomicU64,
    /// Authenticated datagrams that failed the checks.
    pub malformed: AtomicU64,
    /// Datagrams this node could not send.
    pub dropped_sends: AtomicU64,
    /// Bytes of sealed datagrams sent.
    pub bytes_sent: AtomicU64,
    /// Bytes of datagrams received, before any check.
    pub bytes_received: AtomicU64,
}

/// What the cluster port's gate let in and dropped.
#[derive(Debug, Default)]
pub struct GateCounters {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// Pending connections dropped to make room for a newer one.
    pub dropped_for_room: AtomicU64,
    /// Connections that did not authenticate within the deadline.
    pub handshake_timeouts: AtomicU64,
    /// Failed TLS handshakes.
    pub tls_failures: AtomicU64,
    /// Connections that sent more frames before authenticating than the
    /// limit allows.
    pub oversized: AtomicU64,
    /// Accept errors (out of file descriptors, most often).
    pub accept_errors: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One labelled counter family of a layer above the runtime.
#[derive(Debug)]
struct Family {
    help: &'static str,
    /// Series by their labels, rendered (`channel="cache"`).
    series: BTreeMap<String, Arc<AtomicU64>>,
}

/// Picks one counter out of a peer's set.
type CounterOf = fn(&PeerCounters) -> &AtomicU64;

/// The node's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    peers: Mutex<BTreeMap<String, Arc<PeerCounters>>>,
    /// Batches that did not decode (bad version, truncated header).
    pub bad_batches: AtomicU64,
    /// Frames dropped: undecodable, for an unknown actor or type, or stale.
    pub dropped_frames: AtomicU64,
    /// Calls answered with a delivery error.
    pub failed_calls: AtomicU64,
    /// Frames dropped because their batch did not carry the token granted
    /// to the node it names as sender.
    pub spoofed_frames: AtomicU64,
    /// The gossip socket's counters.
    pub gossip: Arc<GossipCounters>,
    /// The cluster port's gate counters.
    pub gate: Arc<GateCounters>,
    /// Labelled counters of the layers above, by metric name.
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Metrics {
    /// The counters of one peer, created on first use.
    pub fn peer(&self, name: &str) -> Arc<PeerCounters> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry(name.to_string()).or_default().clone()
    }

    /// A counter of a layer above the runtime, rendered with this node's
    /// others: `name{node=..., labels}`. The same name and labels give the
    /// same counter; the first help text given for a name is kept. Label
    /// values must be plain (they are written as given).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Arc<AtomicU64> {
        let labels: String = labels
            .iter()
            .map(|(k, v)| format!(",{k}=\"{v}\""))
            .collect();
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families
            .entry(name)
            .or_insert_with(|| Family {
                help,
                series: BTreeMap::new(),
            })
            .series
            .entry(labels)
            .or_default()
            .clone()
    }

    /// Prometheus text exposition of these counters and the member table.
    pub fn render(&self, node: &str, members: &[Member], local_actors: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP drove_members Members of the cluster by status, as this node sees them."
        );
        let _ = writeln!(out, "# TYPE drove_members gauge");
        for status in [
            MemberStatus::Up,
            MemberStatus::Leaving,
            MemberStatus::Down,
            MemberStatus::Left,
        ] {
            let n = members.iter().filter(|m| m.status == status).count();
            let _ = writeln!(
                out,
                "drove_members{{node=\"{node}\",status=\"{}\"}} {n}",
                status.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP drove_local_actors Actors running on this node."
        );
        let _ = writeln!(out, "# TYPE drove_local_actors gauge");
        let _ = writeln!(out, "drove_local_actors{{node=\"{node}\"}} {local_actors}");
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let series: [(&str, &str, &str, CounterOf); 7] = [
            (
                "drove_peer_messages_out_total",
                "counter",
                "Messages sent to a peer.",
                |c| &c.messages_out,
            ),
            (
                "drove_peer_bytes_out_total",
                "counter",
                "Bytes sent to a peer.",
                |c| &c.bytes_out,
            ),
            (
                "drove_peer_messages_in_total",
                "counter",
                "Messages received from a peer.",
                |c| &c.messages_in,
            ),
            (
                "drove_peer_bytes_in_total",
                "counter",
                "Bytes received from a peer.",
                |c| &c.bytes_in,
            ),
            (
                "drove_peer_overloaded_total",
                "counter",
                "Sends to a peer refused with Overloaded: its link was full, or a call found it not reading.",
                |c| &c.overloaded,
            ),
            (
                "drove_peer_queued_bytes",
                "gauge",
                "Bytes waiting in the link to a peer, not yet handed to the transport.",
                |c| &c.queued_bytes,
            ),
            (
                "drove_peer_unacked_bytes",
                "gauge",
                "Bytes handed to the transport for a peer that it has not acknowledged.",
                |c| &c.unacked_bytes,
            ),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (peer, c) in &peers {
                let v = get(c).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{node=\"{node}\",peer=\"{peer}\"}} {v}");
            }
        }
        let totals = [
            (
                "drove_bad_batches_total",
                "Batches from peers that did not decode.",
                &self.bad_batches,
            ),
            (
                "drove_dropped_frames_total",
                "Frames from peers that could not be delivered.",
                &self.dropped_frames,
            ),
            (
                "drove_failed_calls_total",
                "Calls answered with a delivery error.",
                &self.failed_calls,
            ),
            (
                "drove_spoofed_frames_total",
                "Frames dropped: their batch did not prove it came from the node it names.",
                &self.spoofed_frames,
            ),
            (
                "drove_gossip_accepted_total",
                "Gossip datagrams that were authenticated and passed the checks.",
                &self.gossip.accepted,
            ),
            (
                "drove_gossip_unauthenticated_total",
                "Gossip datagrams dropped before decoding: no valid MAC.",
                &self.gossip.unauthenticated,
            ),
            (
                "drove_gossip_replayed_total",
                "Gossip datagrams dropped: outside the time window or replayed.",
                &self.gossip.replayed,
            ),
            (
                "drove_gossip_malformed_total",
                "Authenticated gossip datagrams that failed the checks.",
                &self.gossip.malformed,
            ),
            (
                "drove_gossip_dropped_sends_total",
                "Gossip datagrams this node could not send.",
                &self.gossip.dropped_sends,
            ),
            (
                "drove_gossip_sent_bytes_total",
                "Bytes of sealed gossip datagrams sent.",
                &self.gossip.bytes_sent,
            ),
            (
                "drove_gossip_received_bytes_total",
                "Bytes of gossip datagrams received, before any check.",
                &self.gossip.bytes_received,
            ),
            (
                "drove_cluster_accepted_total",
                "TCP connections accepted on the cluster port.",
                &self.gate.accepted,
            ),
            (
                "drove_cluster_dropped_for_room_total",
                "Unauthenticated cluster connections dropped to make room for newer ones.",
                &self.gate.dropped_for_room,
            ),
            (
                "drove_cluster_handshake_timeouts_total",
                "Cluster connections closed for not authenticating in time.",
                &self.gate.handshake_timeouts,
            ),
            (
                "drove_cluster_tls_failures_total",
                "Failed TLS handshakes on the cluster port.",
                &self.gate.tls_failures,
            ),
            (
                "drove_cluster_oversized_total",
                "Cluster connections closed for sending too much before authenticating.",
                &self.gate.oversized,
            ),
            (
                "drove_cluster_accept_errors_total",
                "Accept errors on the cluster port (out of file descriptors, most often).",
                &self.gate.accept_errors,
            ),
        ];
        for (name, help, v) in totals {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, v) in &family.series {
                let _ = writeln!(
                    out,
                    "{name}{{node=\"{node}\"{labels}}} {}",
                    v.load(Ordering::Relaxed)
                );
            }
        }
        out
    }
}

/// One single-sample metric of a layer above the runtime: name, kind
/// (`counter` or `gauge`), help text, value.
pub type Sample<'a> = (&'a str, &'a str, &'a str, u64);

/// Prometheus text for `samples`, each labelled with `node`.
pub fn render_samples(node: &str, samples: &[Sample<'_>]) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in samples {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}\n"
        );
    }
    out
}
