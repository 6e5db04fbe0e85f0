//! [`SqliteStore`]: the embedded job store for one machine. The file is
//! in WAL mode and every write is an immediate transaction, so several
//! node processes on one machine can share it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::job::{
    Attempt, AttemptError, Enqueued, Failure, Job, JobId, JobState, NewJob, UniqueHold,
};
use crate::store::{
    around_node, error_entry, expiry_message, rescue_message, FetchRequest, Fetched, JobStore,
    QueueInfo, RescueReason, StoreError,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    worker TEXT NOT NULL,
    args TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL,
    errors TEXT NOT NULL DEFAULT '[]',
    node TEXT,
    enqueued_at INTEGER NOT NULL,
    scheduled_at INTEGER NOT NULL,
    attempted_at INTEGER,
    completed_at INTEGER,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(queue, state, priority, scheduled_at, id);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(queue, state, scheduled_at);
CREATE INDEX IF NOT EXISTS jobs_held ON jobs(state, node);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs(state, lease_until);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(state, completed_at);
CREATE INDEX IF NOT EXISTS jobs_listed ON jobs(queue, state, id);
CREATE TABLE IF NOT EXISTS uniques (
    key TEXT PRIMARY KEY,
    id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS uniques_by_job ON uniques(id);
CREATE TABLE IF NOT EXISTS queues (
    queue TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS node_pauses (
    queue TEXT NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY (queue, node)
);
CREATE TABLE IF NOT EXISTS rate (key TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rate_key ON rate(key, at);
";

const COLUMNS: &str = "id, queue, worker, args, priority, state, attempt, max_retries, errors, \
     node, enqueued_at, scheduled_at, attempted_at, completed_at";

/// The fence every answer about a held job passes.
const HELD: &str = "state = 'executing' AND id = ?1 AND node = ?2 AND attempt = ?3";

/// A job store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// A second connection for reads: in WAL mode they neither wait for
    /// the writer nor hold it up.
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A job whose key is held only while live (`release = 1`) lets it go when
/// it is cancelled or dead, so whoever enqueues first and cancels cannot
/// keep everyone else's job out for the period.
const RELEASE_TRIGGER: &str = "
CREATE TRIGGER IF NOT EXISTS unique_released AFTER UPDATE OF state ON jobs
    WHEN NEW.state IN ('cancelled', 'dead')
    BEGIN DELETE FROM uniques WHERE id = NEW.id AND release = 1; END;
";

/// Files made before unique holds were chosen per job get the column (their
/// keys keep being held, as they were).
fn add_release_column(conn: &Connection) -> rusqlite::Result<()> {
    let has = |conn: &Connection| {
        conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('uniques') WHERE name = 'release'",
            [],
            |r| r.get::<_, i64>(0),
        )
    };
    if has(conn)? > 0 {
        return Ok(());
    }
    match conn.execute_batch("ALTER TABLE uniques ADD COLUMN release INTEGER NOT NULL DEFAULT 0") {
        Ok(()) => Ok(()),
        // Another node sharing the file added it first.
        Err(_) if has(conn)? > 0 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs one step of opening the store again while another process holds
/// the file's lock: when two nodes open one new file together, SQLite
/// answers a journal-mode change or a schema transaction that must upgrade
/// its lock with "busy" at once, without its busy handler (which could
/// deadlock there). Bounded: about 5 s.
fn retry_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut tries = 0;
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 100 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`; `:memory:` gives a
    /// private store that lives as long as this value.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let bad = |e: rusqlite::Error| StoreError::BadUrl {
            url: format!("sqlite:{}", path.display()),
            reason: e.to_string(),
        };
        let conn = Connection::open(&path).map_err(bad)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(bad)?;
        retry_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)))
            .map_err(bad)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(bad)?;
        retry_busy(|| conn.execute_batch(SCHEMA)).map_err(bad)?;
        retry_busy(|| add_release_column(&conn)).map_err(bad)?;
        retry_busy(|| conn.execute_batch(RELEASE_TRIGGER)).map_err(bad)?;
        // A private in-memory store has no file a second connection could
        // open: it reads through the writer.
        let reader = if path == Path::new(":memory:") {
            None
        } else {
            let reader = Connection::open(&path).map_err(bad)?;
            reader.busy_timeout(Duration::from_secs(10)).map_err(bad)?;
            Some(reader)
        };
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            reader: reader.map_or_else(|| conn.clone(), |r| Arc::new(Mutex::new(r))),
            conn,
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an immediate transaction on a blocking thread.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        Self::run(self.conn.clone(), TransactionBehavior::Immediate, f).await
    }

    /// Runs `f`, which only reads, in a snapshot on the read connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        Self::run(self.reader.clone(), TransactionBehavior::Deferred, f).await
    }

    async fn run<T, F>(
        conn: Arc<Mutex<Connection>>,
        behavior: TransactionBehavior,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction_with_behavior(behavior)
                .map_err(unavailable)?;
            let out = f(&tx).map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite worker thread: {e}")))?
    }
}

fn job_of(row: &Row<'_>) -> Result<Result<Job, StoreError>, rusqlite::Error> {
    let id: i64 = row.get(0)?;
    let state: String = row.get(5)?;
    let errors: String = row.get(8)?;
    let corrupt = |what: String| Ok(Err(StoreError::Corrupt(format!("job {id}: {what}"))));
    let state = match state.parse::<JobState>() {
        Ok(state) => state,
        Err(e) => return corrupt(e),
    };
    let errors = match serde_json::from_str::<Vec<AttemptError>>(&errors) {
        Ok(errors) => errors,
        Err(e) => return corrupt(format!("errors: {e}")),
    };
    Ok(Ok(Job {
        id: JobId(uint(id)),
        queue: row.get(1)?,
        worker: row.get(2)?,
        args: row.get(3)?,
        priority: u8::try_from(row.get::<_, i64>(4)?).unwrap_or(u8::MAX),
        state,
        attempt: u32::try_from(row.get::<_, i64>(6)?).unwrap_or(u32::MAX),
        max_retries: u32::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
        errors,
        node: row.get(9)?,
        enqueued_at_ms: uint(row.get(10)?),
        scheduled_at_ms: uint(row.get(11)?),
        attempted_at_ms: row.get::<_, Option<i64>>(12)?.map(uint),
        completed_at_ms: row.get::<_, Option<i64>>(13)?.map(uint),
    }))
}

/// The state of job `id`, if there is one.
fn state_of(tx: &Transaction<'_>, id: JobId) -> Result<Option<JobState>, rusqlite::Error> {
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM jobs WHERE id = ?1",
            params![int(id.0)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(state.and_then(|s| s.parse::<JobState>().ok()))
}

/// Hands back the executing jobs `filter` selects (`?1` is now, `?2`
/// the error text before the node name, `?3` after it).
fn hand_back(
    tx: &Transaction<'_>,
    filter: &str,
    now_ms: u64,
    message: (&str, &str),
    extra: Option<&str>,
) -> Result<u64, rusqlite::Error> {
    let sql = format!(
        "UPDATE jobs SET
            state = CASE WHEN attempt > max_retries THEN 'dead' ELSE 'available' END,
            completed_at = CASE WHEN attempt > max_retries THEN ?1 ELSE NULL END,
            errors = json_insert(errors, '$[#]', json_object(
                'attempt', attempt, 'at_ms', ?1, 'node', node,
                'error', ?2 || node || ?3)),
            lease_until = NULL
         WHERE state = 'executing' AND {filter}"
    );
    let n = match extra {
        Some(extra) => tx.execute(&sql, params![int(now_ms), message.0, message.1, extra])?,
        None => tx.execute(&sql, params![int(now_ms), message.0, message.1])?,
    };
    Ok(n as u64)
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(&self, jobs: &[NewJob], now_ms: u64) -> Result<Vec<Enqueued>, StoreError> {
        let jobs = jobs.to_vec();
        self.write(move |tx| {
            let mut out = Vec::with_capacity(jobs.len());
            for job in &jobs {
                if let Some(unique) = &job.unique {
                    let held: Option<i64> = tx
                        .query_row(
                            "SELECT id FROM uniques WHERE key = ?1 AND expires_at > ?2",
                            params![unique.key, int(now_ms)],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(id) = held {
                        out.push(Enqueued {
                            id: JobId(uint(id)),
                            duplicate: true,
                        });
                        continue;
                    }
                }
                let state = if job.run_at_ms > now_ms {
                    JobState::Scheduled
                } else {
                    JobState::Available
                };
                tx.execute(
                    "INSERT OR IGNORE INTO queues(queue) VALUES (?1)",
                    params![job.queue],
                )?;
                tx.execute(
                    "INSERT INTO jobs(queue, worker, args, priority, state, max_retries,
                        enqueued_at, scheduled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        job.queue,
                        job.worker,
                        job.args,
                        job.priority,
                        state.as_str(),
                        job.max_retries,
                        int(now_ms),
                        int(job.run_at_ms)
                    ],
                )?;
                let id = tx.last_insert_rowid();
                if let Some(unique) = &job.unique {
                    tx.execute(
                        "INSERT OR REPLACE INTO uniques(key, id, expires_at, release)
                            VALUES (?1, ?2, ?3, ?4)",
                        params![
                            unique.key,
                            id,
                            int(now_ms.saturating_add(unique.period_ms)),
                            unique.hold == UniqueHold::Live
                        ],
                    )?;
                }
                out.push(Enqueued {
                    id: JobId(uint(id)),
                    duplicate: false,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched, StoreError> {
        let queue = request.queue.to_owned();
        let consumer = request.consumer.to_owned();
        let rate = request.rate.cloned();
        let (limit, now, lease) = (
            request.limit,
            int(request.now_ms),
            int(request.lease_until_ms),
        );
        let fetched = self
            .write(move |tx| {
                let paused: Option<i64> = tx
                    .query_row(
                        "SELECT paused FROM queues WHERE queue = ?1",
                        params![queue],
                        |r| r.get(0),
                    )
                    .optional()?;
                if paused == Some(1) {
                    return Ok(Ok(Fetched::Paused));
                }
                tx.execute(
                    "UPDATE jobs SET state = 'available' WHERE queue = ?1
                        AND state IN ('scheduled', 'retryable') AND scheduled_at <= ?2",
                    params![queue, now],
                )?;
                let mut limit = i64::from(limit);
                if let Some(rate) = &rate {
                    let since = now.saturating_sub(int(rate.scale_ms));
                    tx.execute(
                        "DELETE FROM rate WHERE key = ?1 AND at <= ?2",
                        params![rate.key, since],
                    )?;
                    let (used, oldest): (i64, Option<i64>) = tx.query_row(
                        "SELECT count(*), min(at) FROM rate WHERE key = ?1",
                        params![rate.key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    limit = limit.min(i64::from(rate.count) - used);
                    if limit <= 0 {
                        let free_at = oldest.unwrap_or(now) + int(rate.scale_ms);
                        return Ok(Ok(Fetched::RateLimited(uint(free_at - now).max(1))));
                    }
                }
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE jobs SET state = 'executing', attempt = attempt + 1, node = ?2,
                        attempted_at = ?3, lease_until = ?4
                     WHERE id IN (SELECT id FROM jobs WHERE queue = ?1 AND state = 'available'
                        ORDER BY priority, scheduled_at, id LIMIT ?5)
                     RETURNING {COLUMNS}"
                ))?;
                let rows = stmt.query_map(params![queue, consumer, now, lease, limit], job_of)?;
                let mut jobs = Vec::new();
                for row in rows {
                    match row? {
                        Ok(job) => jobs.push(job),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                if let Some(rate) = &rate {
                    for _ in &jobs {
                        tx.execute(
                            "INSERT INTO rate(key, at) VALUES (?1, ?2)",
                            params![rate.key, now],
                        )?;
                    }
                }
                jobs.sort_by_key(|j| (j.priority, j.scheduled_at_ms, j.id));
                Ok(Ok(Fetched::Jobs(jobs)))
            })
            .await?;
        fetched
    }

    async fn complete(
        &self,
        consumer: &str,
        done: &[Attempt],
        now_ms: u64,
    ) -> Result<Vec<JobId>, StoreError> {
        let consumer = consumer.to_owned();
        let done = done.to_vec();
        self.write(move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE jobs SET state = 'completed', completed_at = ?4, lease_until = NULL
                 WHERE {HELD}"
            ))?;
            let mut refused = Vec::new();
            for a in &done {
                let n = stmt.execute(params![int(a.id.0), consumer, a.attempt, int(now_ms)])?;
                if n == 0 {
                    refused.push(a.id);
                }
            }
            Ok(refused)
        })
        .await
    }

    async fn fail(
        &self,
        consumer: &str,
        failures: &[Failure],
        now_ms: u64,
    ) -> Result<Vec<JobId>, StoreError> {
        let consumer = consumer.to_owned();
        let failures = failures.to_vec();
        self.write(move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE jobs SET
                    state = CASE WHEN ?4 IS NULL THEN 'dead'
                                 WHEN ?7 THEN 'scheduled' ELSE 'retryable' END,
                    scheduled_at = coalesce(?4, scheduled_at),
                    completed_at = CASE WHEN ?4 IS NULL THEN ?5 ELSE NULL END,
                    errors = CASE WHEN ?7 THEN errors
                                  ELSE json_insert(errors, '$[#]', json(?6)) END,
                    max_retries = max_retries + ?7,
                    lease_until = NULL
                 WHERE {HELD}"
            ))?;
            let mut refused = Vec::new();
            for f in &failures {
                let entry = error_entry(f.attempt.attempt, now_ms, &consumer, &f.error);
                let n = stmt.execute(params![
                    int(f.attempt.id.0),
                    consumer,
                    f.attempt.attempt,
                    f.retry_at_ms.map(int),
                    int(now_ms),
                    entry,
                    f.snooze && f.retry_at_ms.is_some()
                ])?;
                if n == 0 {
                    refused.push(f.attempt.id);
                }
            }
            Ok(refused)
        })
        .await
    }

    async fn renew(
        &self,
        consumer: &str,
        held: &[Attempt],
        lease_until_ms: u64,
    ) -> Result<Vec<JobId>, StoreError> {
        let consumer = consumer.to_owned();
        let held = held.to_vec();
        self.write(move |tx| {
            let mut stmt =
                tx.prepare_cached(&format!("UPDATE jobs SET lease_until = ?4 WHERE {HELD}"))?;
            let mut lost = Vec::new();
            for a in &held {
                let n = stmt.execute(params![
                    int(a.id.0),
                    consumer,
                    a.attempt,
                    int(lease_until_ms)
                ])?;
                if n == 0 {
                    lost.push(a.id);
                }
            }
            Ok(lost)
        })
        .await
    }

    async fn rescue(
        &self,
        consumer: &str,
        reason: RescueReason,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let consumer = consumer.to_owned();
        let message = around_node(|node| rescue_message(node, reason));
        self.write(move |tx| {
            hand_back(
                tx,
                "node = ?4",
                now_ms,
                (&message.0, &message.1),
                Some(&consumer),
            )
        })
        .await
    }

    async fn rescue_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        let message = around_node(expiry_message);
        self.write(move |tx| {
            hand_back(
                tx,
                "lease_until < ?1",
                now_ms,
                (&message.0, &message.1),
                None,
            )
        })
        .await
    }

    async fn consumers(&self) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT DISTINCT node FROM jobs WHERE state = 'executing' AND node IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    async fn cancel(&self, id: JobId, now_ms: u64) -> Result<Option<JobState>, StoreError> {
        self.write(move |tx| {
            let Some(state) = state_of(tx, id)? else {
                return Ok(None);
            };
            if !state.is_final() {
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', completed_at = ?2, lease_until = NULL
                     WHERE id = ?1",
                    params![int(id.0), int(now_ms)],
                )?;
            }
            Ok(Some(state))
        })
        .await
    }

    async fn retry(&self, id: JobId, now_ms: u64) -> Result<Option<JobState>, StoreError> {
        self.write(move |tx| {
            let Some(state) = state_of(tx, id)? else {
                return Ok(None);
            };
            if matches!(
                state,
                JobState::Retryable | JobState::Dead | JobState::Cancelled
            ) {
                tx.execute(
                    "UPDATE jobs SET state = 'available', scheduled_at = ?2, completed_at = NULL,
                        max_retries = max(max_retries, attempt)
                     WHERE id = ?1",
                    params![int(id.0), int(now_ms)],
                )?;
            }
            Ok(Some(state))
        })
        .await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let job = self
            .read(move |tx| {
                tx.query_row(
                    &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                    params![int(id.0)],
                    job_of,
                )
                .optional()
            })
            .await?;
        job.transpose()
    }

    async fn list(
        &self,
        queue: &str,
        state: JobState,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        // The same orders as Redis where an index gives them cheaply.
        let order = match state {
            JobState::Available => "priority, scheduled_at, id",
            JobState::Scheduled | JobState::Retryable => "scheduled_at, id",
            JobState::Executing => "id",
            JobState::Completed | JobState::Dead | JobState::Cancelled => "id DESC",
        };
        let (queue, state) = (queue.to_owned(), state.to_string());
        let jobs = self
            .read(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM jobs WHERE queue = ?1 AND state = ?2 \
                     ORDER BY {order} LIMIT ?3 OFFSET ?4"
                ))?;
                let rows = stmt.query_map(params![queue, state, limit, offset], job_of)?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await?;
        jobs.into_iter().collect()
    }

    async fn unique_holder(&self, key: &str, now_ms: u64) -> Result<Option<JobId>, StoreError> {
        let key = key.to_owned();
        let id = self
            .read(move |tx| {
                tx.query_row(
                    "SELECT id FROM uniques WHERE key = ?1 AND expires_at > ?2",
                    params![key, int(now_ms)],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            })
            .await?;
        Ok(id.map(|id| JobId(u64::try_from(id).unwrap_or(0))))
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        let rows = self
            .read(|tx| {
                let mut infos = std::collections::BTreeMap::<String, QueueInfo>::new();
                let mut stmt = tx.prepare_cached("SELECT queue, paused FROM queues")?;
                for row in
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                {
                    let (queue, paused) = row?;
                    infos.insert(
                        queue.clone(),
                        QueueInfo {
                            queue,
                            paused: paused == 1,
                            paused_nodes: Vec::new(),
                            counts: Default::default(),
                        },
                    );
                }
                let mut stmt = tx.prepare_cached(
                    "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for row in rows {
                    let (queue, state, n) = row?;
                    let Ok(state) = state.parse::<JobState>() else {
                        continue;
                    };
                    let info = infos
                        .entry(queue.clone())
                        .or_insert_with(|| QueueInfo::new(queue));
                    info.counts.insert(state, uint(n));
                }
                let mut stmt =
                    tx.prepare_cached("SELECT queue, node FROM node_pauses ORDER BY node")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                for row in rows {
                    let (queue, node) = row?;
                    infos
                        .entry(queue.clone())
                        .or_insert_with(|| QueueInfo::new(queue))
                        .paused_nodes
                        .push(node);
                }
                Ok(infos.into_values().collect::<Vec<_>>())
            })
            .await?;
        Ok(rows)
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        let queue = queue.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO queues(queue, paused) VALUES (?1, ?2)
                 ON CONFLICT(queue) DO UPDATE SET paused = excluded.paused",
                params![queue, i64::from(paused)],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_node_paused(
        &self,
        queue: &str,
        node: &str,
        paused: bool,
    ) -> Result<(), StoreError> {
        let (queue, node) = (queue.to_owned(), node.to_owned());
        self.write(move |tx| {
            if paused {
                tx.execute(
                    "INSERT OR IGNORE INTO node_pauses(queue, node) VALUES (?1, ?2)",
                    params![queue, node],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM node_pauses WHERE queue = ?1 AND node = ?2",
                    params![queue, node],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn prune(
        &self,
        finished_before_ms: u64,
        dead_before_ms: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        self.write(move |tx| {
            let finished = tx.execute(
                "DELETE FROM jobs WHERE state IN ('completed', 'cancelled') AND completed_at < ?1",
                params![int(finished_before_ms)],
            )?;
            let dead = tx.execute(
                "DELETE FROM jobs WHERE state = 'dead' AND completed_at < ?1",
                params![int(dead_before_ms)],
            )?;
            tx.execute(
                "DELETE FROM uniques WHERE expires_at <= ?1",
                params![int(now_ms)],
            )?;
            Ok((finished + dead) as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn nodes_that_open_one_new_file_together_all_open_it() {
        for _ in 0..10 {
            let path = std::env::temp_dir()
                .join(format!("drove-jobs-race-{}.sqlite3", rand::random::<u64>()));
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || SqliteStore::open(&path).map(|_| ()))
                })
                .collect();
            for open in opens {
                let opened = open.join().expect("thread");
                assert!(opened.is_ok(), "{opened:?}");
            }
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
        }
    }

    use super::*;
    use crate::job::Unique;

    fn unique_job(key: &str) -> NewJob {
        NewJob {
            queue: "q".into(),
            worker: "w".into(),
            args: "{}".into(),
            priority: 0,
            max_retries: 1,
            run_at_ms: 0,
            unique: Some(Unique {
                key: key.into(),
                period_ms: 60_000,
                hold: UniqueHold::Live,
            }),
        }
    }

    /// A file made before holds were chosen per job opens, keeps its old
    /// keys held, and releases new live ones on cancel.
    #[tokio::test]
    async fn an_old_file_gets_the_release_column() {
        let path =
            std::env::temp_dir().join(format!("drove-jobs-old-{}.sqlite3", rand::random::<u64>()));
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE uniques (key TEXT PRIMARY KEY, id INTEGER NOT NULL,
                     expires_at INTEGER NOT NULL);
                 INSERT INTO uniques VALUES ('old', 1, 9000000000000);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let again = SqliteStore::open(&path).unwrap();
        let new = store.enqueue(&[unique_job("new")], 1).await.unwrap()[0];
        assert_eq!(store.unique_holder("old", 1).await.unwrap(), Some(JobId(1)));
        store.cancel(new.id, 2).await.unwrap();
        assert_eq!(again.unique_holder("new", 2).await.unwrap(), None);
        drop((store, again));
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}
