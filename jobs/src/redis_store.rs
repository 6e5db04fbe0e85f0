//! [`RedisStore`]: the cluster-wide job store, as in Flume. Every move
//! between states is one Lua script (the scripts and the key layout are
//! in `redis_store/`), so two nodes never take one job. The store has
//! connections of its own and sends no blocking command: pipelines poll.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script, Value};
use tokio::sync::Mutex;

use crate::job::{
    Attempt, AttemptError, Enqueued, Failure, Job, JobId, JobState, NewJob, UniqueHold,
};
use crate::store::{
    around_node, error_entry, expiry_message, rescue_message, FetchRequest, Fetched, JobStore,
    QueueInfo, RescueReason, StoreError,
};

const PRELUDE: &str = include_str!("redis_store/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("redis_store/enqueue.lua")));
static FETCH: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/fetch.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/settle.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/renew.lua")));
static RESCUE: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/rescue.lua")));
static CONTROL: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("redis_store/control.lua")));
static PRUNE: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/prune.lua")));
static QUEUES: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/queues.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_store/list.lua")));

/// How long a command may take before the store counts as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A job store on one Redis server (or database of it).
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    ns: String,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.client.get_connection_info().addr)
            .field("ns", &self.ns)
            .finish()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// A store at `url` (`redis://HOST:PORT/DB`) under key prefix `ns`.
    /// Connects lazily, so a node starts while Redis is down; every
    /// command after a failure reconnects.
    pub fn open(url: &str, ns: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(RedisStore {
            client,
            ns: ns.to_owned(),
            conn: Arc::new(Mutex::new(None)),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unavailable)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `script` with `args` after the namespace; drops the
    /// connection when it failed, so the next call reconnects.
    async fn run(&self, script: &Script, args: Vec<String>) -> Result<Value, StoreError> {
        let mut conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.ns);
        for arg in &args {
            invocation.arg(arg);
        }
        match invocation.invoke_async::<Value>(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    *self.conn.lock().await = None;
                }
                Err(unavailable(e))
            }
        }
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn array(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

fn ids(value: Value) -> Result<Vec<JobId>, StoreError> {
    array(value)?
        .iter()
        .map(|v| {
            int(v)
                .and_then(|n| u64::try_from(n).ok())
                .map(JobId)
                .ok_or_else(|| corrupt(format!("bad job id {v:?}")))
        })
        .collect()
}

/// A job from its hash's fields (`HGETALL`, flat).
fn job_of(fields: Value) -> Result<Job, StoreError> {
    let items = array(fields)?;
    let mut map = HashMap::new();
    for pair in items.chunks(2) {
        if let [k, v] = pair {
            if let (Some(k), Some(v)) = (text(k), text(v)) {
                map.insert(k, v);
            }
        }
    }
    job_from_map(&map)
}

fn job_from_map(map: &HashMap<String, String>) -> Result<Job, StoreError> {
    let id = map.get("id").cloned().unwrap_or_default();
    let field = |name: &str| {
        map.get(name)
            .ok_or_else(|| corrupt(format!("job {id}: no field {name}")))
    };
    let number = |name: &str| -> Result<u64, StoreError> {
        field(name)?
            .parse::<u64>()
            .map_err(|e| corrupt(format!("job {id}: field {name}: {e}")))
    };
    let optional = |name: &str| map.get(name).and_then(|v| v.parse::<u64>().ok());
    let errors = field("errors")?
        .lines()
        .filter(|line| !line.is_empty())
        .map(serde_json::from_str::<AttemptError>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(format!("job {id}: errors: {e}")))?;
    Ok(Job {
        id: JobId(number("id")?),
        queue: field("queue")?.clone(),
        worker: field("worker")?.clone(),
        args: field("args")?.clone(),
        priority: u8::try_from(number("priority")?).unwrap_or(u8::MAX),
        state: field("state")?.parse::<JobState>().map_err(corrupt)?,
        attempt: u32::try_from(number("attempt")?).unwrap_or(u32::MAX),
        max_retries: u32::try_from(number("max")?).unwrap_or(0),
        errors,
        node: map.get("node").cloned(),
        enqueued_at_ms: number("enq")?,
        scheduled_at_ms: number("sched")?,
        attempted_at_ms: optional("att"),
        completed_at_ms: optional("done"),
    })
}

#[async_trait]
impl JobStore for RedisStore {
    async fn enqueue(&self, jobs: &[NewJob], now_ms: u64) -> Result<Vec<Enqueued>, StoreError> {
        let mut args = vec![now_ms.to_string()];
        for job in jobs {
            let (key, period, release) = match &job.unique {
                Some(u) => (
                    u.key.clone(),
                    u.period_ms.max(1).to_string(),
                    if u.hold == UniqueHold::Live { "1" } else { "0" },
                ),
                None => (String::new(), "0".to_owned(), "0"),
            };
            args.extend([
                job.queue.clone(),
                job.worker.clone(),
                job.args.clone(),
                job.priority.to_string(),
                job.max_retries.to_string(),
                job.run_at_ms.to_string(),
                key,
                period,
                release.to_owned(),
            ]);
        }
        let out = array(self.run(&ENQUEUE, args).await?)?;
        out.chunks(2)
            .map(|pair| match pair {
                [id, dup] => Ok(Enqueued {
                    id: JobId(
                        int(id)
                            .and_then(|n| u64::try_from(n).ok())
                            .ok_or_else(|| corrupt("bad enqueued id"))?,
                    ),
                    duplicate: int(dup) == Some(1),
                }),
                _ => Err(corrupt("odd enqueue answer")),
            })
            .collect()
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched, StoreError> {
        let (key, count, scale) = match request.rate {
            Some(rate) => (
                rate.key.clone(),
                rate.count.to_string(),
                rate.scale_ms.to_string(),
            ),
            None => (String::new(), "0".to_owned(), "0".to_owned()),
        };
        let args = vec![
            request.queue.to_owned(),
            request.consumer.to_owned(),
            request.limit.to_string(),
            request.now_ms.to_string(),
            request.lease_until_ms.to_string(),
            key,
            count,
            scale,
        ];
        let mut out = array(self.run(&FETCH, args).await?)?.into_iter();
        match out.next().as_ref().and_then(int) {
            Some(-1) => Ok(Fetched::Paused),
            Some(-2) => {
                let wait = out.next().as_ref().and_then(int).unwrap_or(1);
                Ok(Fetched::RateLimited(
                    u64::try_from(wait).unwrap_or(1).max(1),
                ))
            }
            Some(0) => {
                let jobs = out.map(job_of).collect::<Result<Vec<_>, _>>()?;
                Ok(Fetched::Jobs(jobs))
            }
            other => Err(corrupt(format!("fetch answered {other:?}"))),
        }
    }

    async fn complete(
        &self,
        consumer: &str,
        done: &[Attempt],
        now_ms: u64,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut args = vec![consumer.to_owned(), now_ms.to_string()];
        for a in done {
            args.extend([
                a.id.to_string(),
                a.attempt.to_string(),
                "done".to_owned(),
                String::new(),
            ]);
        }
        ids(self.run(&SETTLE, args).await?)
    }

    async fn fail(
        &self,
        consumer: &str,
        failures: &[Failure],
        now_ms: u64,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut args = vec![consumer.to_owned(), now_ms.to_string()];
        for f in failures {
            let entry = || error_entry(f.attempt.attempt, now_ms, consumer, &f.error);
            let (outcome, entry) = match (f.retry_at_ms, f.snooze) {
                (Some(at), true) => (format!("z{at}"), String::new()),
                (Some(at), false) => (at.to_string(), entry()),
                (None, _) => ("dead".to_owned(), entry()),
            };
            args.extend([
                f.attempt.id.to_string(),
                f.attempt.attempt.to_string(),
                outcome,
                entry,
            ]);
        }
        ids(self.run(&SETTLE, args).await?)
    }

    async fn renew(
        &self,
        consumer: &str,
        held: &[Attempt],
        lease_until_ms: u64,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut args = vec![consumer.to_owned(), lease_until_ms.to_string()];
        for a in held {
            args.extend([a.id.to_string(), a.attempt.to_string()]);
        }
        ids(self.run(&RENEW, args).await?)
    }

    async fn rescue(
        &self,
        consumer: &str,
        reason: RescueReason,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let (before, after) = around_node(|node| rescue_message(node, reason));
        let args = vec![
            now_ms.to_string(),
            before,
            after,
            "consumer".to_owned(),
            consumer.to_owned(),
        ];
        let n = int(&self.run(&RESCUE, args).await?).unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn rescue_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        let (before, after) = around_node(expiry_message);
        let args = vec![now_ms.to_string(), before, after, "expired".to_owned()];
        let n = int(&self.run(&RESCUE, args).await?).unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn consumers(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.connection().await?;
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}:consumers", self.ns))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(members)
    }

    async fn cancel(&self, id: JobId, now_ms: u64) -> Result<Option<JobState>, StoreError> {
        let args = vec![now_ms.to_string(), "cancel".to_owned(), id.to_string()];
        state_answer(self.run(&CONTROL, args).await?)
    }

    async fn retry(&self, id: JobId, now_ms: u64) -> Result<Option<JobState>, StoreError> {
        let args = vec![now_ms.to_string(), "retry".to_owned(), id.to_string()];
        state_answer(self.run(&CONTROL, args).await?)
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut conn = self.connection().await?;
        let fields: Value = redis::cmd("HGETALL")
            .arg(format!("{}:job:{id}", self.ns))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let items = array(fields)?;
        if items.is_empty() {
            return Ok(None);
        }
        job_of(Value::Array(items)).map(Some)
    }

    async fn list(
        &self,
        queue: &str,
        state: JobState,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let args = vec![
            queue.to_string(),
            state.to_string(),
            offset.to_string(),
            limit.to_string(),
        ];
        array(self.run(&LIST, args).await?)?
            .into_iter()
            .filter(|fields| !matches!(fields, Value::Array(items) if items.is_empty()))
            .map(job_of)
            .collect()
    }

    async fn unique_holder(&self, key: &str, _now_ms: u64) -> Result<Option<JobId>, StoreError> {
        // Redis lets the key lapse by itself (PX).
        let mut conn = self.connection().await?;
        let held: Option<String> = redis::cmd("GET")
            .arg(format!("{}:uniq:{key}", self.ns))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        held.map(|id| {
            id.parse()
                .map(JobId)
                .map_err(|_| corrupt(format!("unique key {key:?} holds {id:?}")))
        })
        .transpose()
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        let out = array(self.run(&QUEUES, Vec::new()).await?)?;
        let mut infos = Vec::new();
        for entry in out {
            let mut parts = array(entry)?.into_iter();
            let (Some(queue), Some(paused), Some(counts), Some(nodes)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("short queue entry"));
            };
            let mut paused_nodes: Vec<String> = array(nodes)?.iter().filter_map(text).collect();
            paused_nodes.sort();
            let mut by_state = BTreeMap::new();
            for pair in array(counts)?.chunks(2) {
                if let [state, n] = pair {
                    let state = text(state).and_then(|s| s.parse::<JobState>().ok());
                    let n = int(n).and_then(|n| u64::try_from(n).ok());
                    if let (Some(state), Some(n)) = (state, n) {
                        by_state.insert(state, n);
                    }
                }
            }
            infos.push(QueueInfo {
                queue: text(&queue).ok_or_else(|| corrupt("queue name"))?,
                paused: int(&paused) == Some(1),
                paused_nodes,
                counts: by_state,
            });
        }
        infos.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(infos)
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let set = format!("{}:paused", self.ns);
        let command = if paused { "SADD" } else { "SREM" };
        redis::cmd(command)
            .arg(set)
            .arg(queue)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn set_node_paused(
        &self,
        queue: &str,
        node: &str,
        paused: bool,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let command = if paused { "SADD" } else { "SREM" };
        redis::pipe()
            .cmd(command)
            .arg(format!("{}:npaused:{queue}", self.ns))
            .arg(node)
            .ignore()
            .cmd("SADD")
            .arg(format!("{}:queues", self.ns))
            .arg(queue)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn prune(
        &self,
        finished_before_ms: u64,
        dead_before_ms: u64,
        _now_ms: u64,
    ) -> Result<u64, StoreError> {
        let args = vec![finished_before_ms.to_string(), dead_before_ms.to_string()];
        let n = int(&self.run(&PRUNE, args).await?).unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn state_answer(value: Value) -> Result<Option<JobState>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::Int(0) => Ok(None),
        other => text(&other)
            .ok_or_else(|| corrupt("state answer"))?
            .parse::<JobState>()
            .map(Some)
            .map_err(corrupt),
    }
}
