//! [`SupervisorBuilder`]: declaring the child types a node runs and the
//! strategies, then starting its supervisor.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use drove_registry::Registry;
use drove_replication::Replicated;
use drove_runtime::Node;

use crate::candidates::{Placer, QuorumConfig};
use crate::child::{factory, Factory};
use crate::decider::{DeciderConfig, Redistribution};
use crate::error::SupervisorError;
use crate::local_children::LocalChildren;
use crate::moves::{child_work, types_work, Moves, Work};
use crate::placement::{Placement, Uniform};
use crate::protocol::{SupervisorActor, SUPERVISOR_NAME};
use crate::records::Records;
use crate::spec::Child;
use crate::supervisor::Supervisor;

/// Declares the child types this node can run, then starts the supervisor.
pub struct SupervisorBuilder {
    node: Node,
    registry: Registry,
    factories: HashMap<String, Factory>,
    duplicate: Option<&'static str>,
    placement: Box<dyn Placement>,
    quorum: Option<QuorumConfig>,
    redistribution: Redistribution,
}

impl std::fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("node", &self.node.id())
            .field("types", &self.factories.keys().collect::<Vec<_>>())
            .field("quorum", &self.quorum)
            .field("redistribution", &self.redistribution)
            .finish_non_exhaustive()
    }
}

impl SupervisorBuilder {
    /// A builder for the supervisor on `node`, using `registry` for the
    /// children's global names.
    pub fn new(node: &Node, registry: &Registry) -> Self {
        SupervisorBuilder {
            node: node.clone(),
            registry: registry.clone(),
            factories: HashMap::new(),
            duplicate: None,
            placement: Box::new(Uniform),
            quorum: None,
            redistribution: Redistribution::Passive,
        }
    }

    /// Declares that this node runs children of type `C`; `child` is
    /// cloned for every start. Declaring two types under one
    /// [`Child::TYPE`] makes [`start`](Self::start) fail.
    pub fn child<C: Child>(mut self, child: C) -> Self {
        if self
            .factories
            .insert(C::TYPE.to_string(), factory(child))
            .is_some()
        {
            self.duplicate.get_or_insert(C::TYPE);
        }
        self
    }

    /// Replaces the default placement (rendezvous hashing).
    pub fn placement(mut self, placement: impl Placement) -> Self {
        self.placement = Box::new(placement);
        self
    }

    /// The quorum strategy: a side of the cluster without a strict majority
    /// starts nothing and stops what it runs, and the majority waits
    /// `fencing_margin` after a node is declared down before starting its
    /// children, so a singleton never runs on both sides.
    pub fn quorum(mut self, config: QuorumConfig) -> Self {
        self.quorum = Some(config);
        self
    }

    /// What this node does with its running children when another node
    /// joins (passive by default).
    pub fn redistribution(mut self, redistribution: Redistribution) -> Self {
        self.redistribution = redistribution;
        self
    }

    /// Starts the supervisor and advertises the declared types.
    pub async fn start(self) -> Result<Supervisor, SupervisorError> {
        if let Some(type_name) = self.duplicate {
            return Err(SupervisorError::DuplicateType(type_name));
        }
        let node = self.node;
        let mut children = Replicated::builder(&node);
        let child_work = children.subscribe(child_work);
        let records = Records::new(children.start().await?);
        let mut types = Replicated::builder(&node);
        let types_work = types.subscribe(types_work);
        let placer = Placer::new(&node, types.start().await?, self.placement, self.quorum);
        let declared: Vec<Arc<str>> = self
            .factories
            .keys()
            .map(|k| Arc::from(k.as_str()))
            .collect();
        let local_children = LocalChildren::new(&node, &self.registry, &records, self.factories);
        let moves = Moves::new(&node, &local_children, &records, &placer);
        placer.declare(&declared);
        let (stops_tx, stops) = mpsc::unbounded_channel();
        node.on_actor_stopped(Box::new(move |id, reason| {
            let _ = stops_tx.send(Work::Stopped(id, reason.clone()));
        }));
        node.spawn_named(SUPERVISOR_NAME, SupervisorActor(local_children.clone()), ())
            .await?;
        let config = DeciderConfig {
            fencing_ms: self.quorum.map(|q| q.fencing_margin.as_millis() as u64),
            redistribution: self.redistribution,
        };
        tokio::spawn(
            moves
                .clone()
                .work(config, declared, stops, child_work, types_work),
        );
        Ok(Supervisor::new(
            &node,
            local_children,
            records,
            placer,
            moves,
        ))
    }
}
