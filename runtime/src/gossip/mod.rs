//! Gossip membership through chitchat: starting it over sealed UDP,
//! publishing this node's keys, and reading snapshots for the membership
//! view.
//!
//! - [`seal`]: the MAC, timestamp and nonce on every datagram.
//! - [`check`]: what an authenticated datagram may hold before chitchat
//!   decodes it.
//! - `socket`: chitchat's transport built from the two.

pub mod check;
pub mod seal;
mod socket;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use std::sync::Arc;

use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

use drove_membership::{Announced, GossipNode, MemberInfo, NodeId};

use crate::cookie::ClusterKeys;
use crate::error::StartError;
use crate::metrics::GossipCounters;
use socket::SealedUdp;

const KEY_ADDR: &str = "addr";
const KEY_HTTP: &str = "http";
const KEY_STATUS: &str = "status";
const DOWN_PREFIX: &str = "down:";

/// Gossip and the failure detector run on a runtime of their own, one
/// thread, so a busy application runtime cannot delay heartbeats and get
/// a healthy node declared down (as Erlang keeps its tick apart).
fn gossip_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("drove-gossip")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// What gossip needs from the node's configuration.
pub(crate) struct GossipSettings<'a> {
    /// The UDP address (the node's `listen`).
    pub(crate) listen: SocketAddr,
    /// The keys derived from the cluster's cookie.
    pub(crate) keys: &'a ClusterKeys,
    /// Where the gossip socket counts what it refuses.
    pub(crate) counters: Arc<GossipCounters>,
    /// Other nodes' addresses.
    pub(crate) seeds: &'a [String],
    /// How often gossip runs.
    pub(crate) interval: Duration,
    /// The failure detector's threshold.
    pub(crate) phi_threshold: f64,
    /// How long dead nodes stay in gossip.
    pub(crate) tombstone_ttl: Duration,
}

pub(crate) async fn start(
    config: &GossipSettings<'_>,
    me: &MemberInfo,
) -> Result<ChitchatHandle, StartError> {
    let listen = config.listen;
    let gossip_err = |source: Box<dyn std::error::Error + Send + Sync>| StartError::Gossip {
        addr: listen.to_string(),
        source,
    };
    let chitchat_config = ChitchatConfig {
        chitchat_id: ChitchatId::new(me.id.name.clone(), me.id.incarnation.0, listen),
        cluster_id: config.keys.cluster_id().to_string(),
        gossip_interval: config.interval,
        listen_addr: listen,
        seed_nodes: config.seeds.to_vec(),
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: config.phi_threshold,
            sampling_window_size: 1000,
            max_interval: Duration::from_secs(2).max(config.interval * 4),
            initial_interval: config.interval,
            dead_node_grace_period: config.tombstone_ttl,
        },
        marked_for_deletion_grace_period: config.tombstone_ttl,
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    };
    let initial = vec![
        (KEY_ADDR.to_string(), me.addr.clone()),
        (KEY_HTTP.to_string(), me.http.clone()),
        (KEY_STATUS.to_string(), "up".to_string()),
    ];
    let transport = SealedUdp {
        key: *config.keys.gossip_key(),
        counters: config.counters.clone(),
    };
    let runtime = gossip_runtime().map_err(|e| gossip_err(e.into()))?;
    runtime
        .spawn(async move { spawn_chitchat(chitchat_config, initial, &transport).await })
        .await
        .map_err(|e| gossip_err(e.into()))?
        .map_err(|e| gossip_err(e.into()))
}

/// A member's cluster address must be its gossip address (the transport
/// and gossip share the port), and both addresses must be reachable ones.
fn addresses_valid(cid: &ChitchatId, addr: &str, http: &str) -> bool {
    let addr_ok = addr
        .parse::<SocketAddr>()
        .is_ok_and(|a| a == cid.gossip_advertise_addr && check::addr_usable(a));
    // The admin address is informational (a node may have none): short,
    // printable, no spaces, so it is safe to show and to put in a URL.
    let http_ok = http.len() <= 256 && http.bytes().all(|b| b.is_ascii_graphic());
    addr_ok && http_ok
}

/// What chitchat knows now, as the view's input.
pub(crate) async fn snapshot(handle: &ChitchatHandle) -> Vec<GossipNode> {
    let chitchat = handle.chitchat();
    let chitchat = chitchat.lock().await;
    let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
    let deleting: HashSet<&ChitchatId> = chitchat.scheduled_for_deletion_nodes().collect();
    let mut nodes = Vec::new();
    for (cid, state) in chitchat.node_states() {
        if deleting.contains(cid) {
            continue;
        }
        if drove_membership::validate_name(&cid.node_id).is_err() {
            continue;
        }
        let id = NodeId::new(
            cid.node_id.to_string(),
            drove_membership::Incarnation(cid.generation_id),
        );
        let (Some(addr), Some(http)) = (state.get(KEY_ADDR), state.get(KEY_HTTP)) else {
            continue;
        };
        if !addresses_valid(cid, addr, http) {
            tracing::warn!(node = %cid.node_id, %addr, %http, "ignoring a member whose gossiped addresses are not valid");
            continue;
        }
        let announced = match state.get(KEY_STATUS) {
            Some("leaving") => Announced::Leaving,
            _ => Announced::Up,
        };
        let declared_down = state
            .key_values()
            .filter_map(|(k, v)| {
                let target: NodeId = k.strip_prefix(DOWN_PREFIX)?.parse().ok()?;
                Some((target, v.parse::<u64>().ok()?))
            })
            .collect();
        nodes.push(GossipNode {
            info: MemberInfo {
                id,
                addr: addr.to_string(),
                http: http.to_string(),
            },
            announced,
            live: live.contains(cid),
            declared_down,
        });
    }
    nodes
}

pub(crate) async fn publish_down(handle: &ChitchatHandle, target: &NodeId, at_ms: u64) {
    let chitchat = handle.chitchat();
    let mut chitchat = chitchat.lock().await;
    chitchat
        .self_node_state()
        .set_with_ttl(format!("{DOWN_PREFIX}{target}"), at_ms);
}

pub(crate) async fn publish_leaving(handle: &ChitchatHandle) {
    let chitchat = handle.chitchat();
    let mut chitchat = chitchat.lock().await;
    chitchat.self_node_state().set(KEY_STATUS, "leaving");
}
