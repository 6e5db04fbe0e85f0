//! The node's table of local actors, by id and by local name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::addr::LocalRef;
use crate::error::SpawnError;
use crate::mailbox::Mailbox;

#[derive(Default)]
struct Tables {
    by_id: HashMap<u64, Arc<dyn Mailbox>>,
    by_name: HashMap<String, u64>,
}

/// Local actors by id and by name.
#[derive(Default)]
pub(crate) struct LocalActors {
    tables: RwLock<Tables>,
}

impl LocalActors {
    pub(crate) fn insert(
        &self,
        id: u64,
        name: Option<&str>,
        mailbox: Arc<dyn Mailbox>,
    ) -> Result<(), SpawnError> {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        if let Some(name) = name {
            if t.by_name.contains_key(name) {
                return Err(SpawnError::NameTaken(name.to_string()));
            }
            t.by_name.insert(name.to_string(), id);
        }
        t.by_id.insert(id, mailbox);
        Ok(())
    }

    pub(crate) fn remove(&self, id: u64, name: Option<&str>) {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        t.by_id.remove(&id);
        if let Some(name) = name {
            if t.by_name.get(name) == Some(&id) {
                t.by_name.remove(name);
            }
        }
    }

    pub(crate) fn get(&self, local: &LocalRef) -> Option<Arc<dyn Mailbox>> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let id = match local {
            LocalRef::Id(id) => *id,
            LocalRef::Name(name) => *t.by_name.get(name)?,
        };
        t.by_id.get(&id).cloned()
    }

    pub(crate) fn id_of(&self, local: &LocalRef) -> Option<u64> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        match local {
            LocalRef::Id(id) => t.by_id.contains_key(id).then_some(*id),
            LocalRef::Name(name) => t.by_name.get(name).copied(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .len()
    }
}
