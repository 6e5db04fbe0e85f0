//! How runners are booted: the [`Backend`] trait and its two OS-level
//! implementations, [`ProcessBackend`] (a child process of this
//! executable) and [`ExecBackend`] (a shell command template that can
//! boot a runner anywhere). The local backend boots nothing: its calls run
//! in this process (see the pool).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::parent::{ParentFile, ParentInfo, PARENT_VAR};

/// A booted runner's process, as far as this node can see it.
#[derive(Debug)]
pub struct RunnerProcess {
    /// Its OS process id, when it is a child of this process.
    pub pid: Option<u32>,
    /// Resolves with the exit status when the process exits.
    pub exited: oneshot::Receiver<String>,
    /// Kills the process when sent (or dropped: a parent that forgets a
    /// runner ends it).
    pub kill: oneshot::Sender<()>,
    /// Whether the process ending means the runner is gone. An exec
    /// command may only launch the runner elsewhere and return.
    pub exit_is_death: bool,
}

/// Boots runners. Implement it to boot them somewhere new (a cloud API);
/// the runner is this same application started with [`PARENT_VAR`]
/// naming a [`ParentFile`] written from `info`.
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and the admin API.
    fn kind(&self) -> &'static str;

    /// Whether a runner's stdin is a pipe from this process.
    fn pipes_stdin(&self) -> bool {
        false
    }

    /// Starts booting a runner described by `info`. Success means the
    /// boot started; the runner is up when its hello reaches the pool.
    fn boot(&self, info: &ParentInfo) -> Result<RunnerProcess, String>;
}

/// Child processes of this executable, with this process's arguments and
/// `DROVE_PARENT_FILE` naming its parent file; the child's stdin is a pipe
/// whose end tells it this process is gone, even after a kill -9.
#[derive(Debug, Default, Clone)]
pub struct ProcessBackend;

impl Backend for ProcessBackend {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn pipes_stdin(&self) -> bool {
        true
    }

    fn boot(&self, info: &ParentInfo) -> Result<RunnerProcess, String> {
        // /proc/self/exe is the running file even after a deploy replaced
        // it on disk, so the runner is this very build.
        let proc_exe = std::path::Path::new("/proc/self/exe");
        let exe = if proc_exe.exists() {
            proc_exe.to_path_buf()
        } else {
            std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?
        };
        let file = ParentFile::write(info).map_err(|e| format!("writing the parent file: {e}"))?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args(std::env::args_os().skip(1))
            .env(PARENT_VAR, file.path());
        spawn(command, true, file, None)
    }
}

/// A shell command (`sh -c TEMPLATE`) that boots a runner: `{env}` becomes
/// `DROVE_PARENT_FILE=<path>`, `{parent}` the path alone, `{name}` the
/// runner's node name, `{exe}` this executable and `{args}` this process's
/// arguments, shell-quoted. The path names a 0600 file holding the runner's
/// credentials, so nothing secret is on the command line; a template that
/// boots the runner elsewhere copies the file there (it is removed once
/// the boot timeout passes). For example `exec env {env} {exe} {args}`
/// locally.
#[derive(Debug, Clone)]
pub struct ExecBackend {
    template: String,
}

impl ExecBackend {
    /// A backend running `template`.
    pub fn new(template: impl Into<String>) -> Self {
        ExecBackend {
            template: template.into(),
        }
    }

    /// The command line for `info`, whose parent file is `file`.
    pub fn command_line(&self, info: &ParentInfo, file: &Path) -> Result<String, String> {
        let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
        let args: Vec<String> = std::env::args_os().skip(1).map(|a| quote(&a)).collect();
        let path = quote(file.as_os_str());
        Ok(self
            .template
            .replace("{env}", &format!("{PARENT_VAR}={path}"))
            .replace("{parent}", &path)
            .replace("{name}", &info.name)
            .replace("{exe}", &quote(exe.as_os_str()))
            .replace("{args}", &args.join(" ")))
    }
}

impl Backend for ExecBackend {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn boot(&self, info: &ParentInfo) -> Result<RunnerProcess, String> {
        let file = ParentFile::write(info).map_err(|e| format!("writing the parent file: {e}"))?;
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(self.command_line(info, file.path())?);
        // The command may only launch the runner elsewhere and return: the
        // file stays until the runner had its time to boot.
        let keep = Duration::from_millis(info.boot_timeout_ms);
        spawn(command, false, file, Some(keep))
    }
}

/// `text` in single quotes for `sh`.
fn quote(text: &std::ffi::OsStr) -> String {
    let text = text.to_string_lossy();
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Spawns `command`; `file` is removed when it exits, or after `keep`
/// when given, whichever is later.
fn spawn(
    mut command: tokio::process::Command,
    exit_is_death: bool,
    file: ParentFile,
    keep: Option<Duration>,
) -> Result<RunnerProcess, String> {
    command.stdin(Stdio::piped()).kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting the runner: {e}"))?;
    let pid = child.id();
    // Held open for the child's life: its end of file is "the parent is
    // gone", whether this process left cleanly or was killed.
    let stdin = child.stdin.take();
    let (exit_tx, exited) = oneshot::channel();
    let (kill, kill_rx) = oneshot::channel::<()>();
    let keep_until = keep.map(|k| tokio::time::Instant::now() + k);
    tokio::spawn(async move {
        let _stdin = stdin;
        let status = tokio::select! {
            status = child.wait() => status,
            _ = kill_rx => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let text = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        let _ = exit_tx.send(text);
        if let Some(at) = keep_until {
            tokio::time::sleep_until(at).await;
        }
        drop(file);
    });
    Ok(RunnerProcess {
        pid,
        exited,
        kill,
        exit_is_death,
    })
}
