//! Nodes on a shared job store, and what their tests keep on disk: the
//! helpers the jobs and events tests share.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::{random_hex, send_json, NodeProc};

/// `n` nodes seeded by the first, on the job store `store`, each with
/// `extra` flags.
pub fn store_nodes(n: usize, store: &str, extra: &[&str]) -> Vec<NodeProc> {
    let cookie = random_hex();
    let mut nodes: Vec<NodeProc> = Vec::new();
    for i in 0..n {
        let seeds = nodes
            .first()
            .map(|f| vec![f.listen.to_string()])
            .unwrap_or_default();
        let mut node = NodeProc::new(&format!("n{}", i + 1), seeds, &cookie);
        node.extra = ["--jobs", store]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        nodes.push(node);
    }
    nodes
}

/// A file a test made, removed (with SQLite's WAL files) when dropped.
#[derive(Debug)]
pub struct TempFiles(PathBuf);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

/// A fresh SQLite file for one test's nodes to share: its store URL.
pub fn sqlite_file() -> (String, TempFiles) {
    let path = std::env::temp_dir().join(format!("drove-store-test-{}.sqlite3", random_hex()));
    (format!("sqlite:{}", path.display()), TempFiles(path))
}

/// A config file with these TOML lines (the settings flags lack).
pub fn config_file(toml: &str) -> (String, TempFiles) {
    let path = std::env::temp_dir().join(format!("drove-test-config-{}.toml", random_hex()));
    if let Err(e) = std::fs::write(&path, toml) {
        panic!("writing {}: {e}", path.display());
    }
    (path.display().to_string(), TempFiles(path))
}

/// POSTs `body` to `path` on `n`'s admin API: the status and the answer
/// (`{"raw": text}` when it is not JSON).
pub async fn post(n: &NodeProc, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = match send_json("POST", &n.http_addr(), path, &body).await {
        Ok(answer) => answer,
        Err(e) => panic!("POST {path} on {}: {e}", n.name),
    };
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, value)
}

/// GETs `path` on `n`'s admin API, if it answers with JSON.
pub async fn get(n: &NodeProc, path: &str) -> Option<(u16, Value)> {
    let (status, text) =
        drove_admin::client::get(&n.http_addr(), path, std::time::Duration::from_secs(30))
            .await
            .ok()?;
    Some((status, serde_json::from_str(&text).ok()?))
}
