//! Cookie files, as `~/.erlang.cookie`: a node given no cookie reads one
//! from `~/.drove.cookie`, made with a random value and mode 0600 the first
//! time. A cookie file others can read is refused.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a cookie file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CookieFileError {
    /// No cookie, no cookie file, and no home directory for the default.
    #[error("no cookie given and $HOME is not set for the default cookie file")]
    NoHome,
    /// The file could not be read or made.
    #[error("cookie file {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Others may read the file.
    #[error("cookie file {path} has mode {mode:o}: others may read it (chmod 600 it)")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no cookie.
    #[error("cookie file {0} is empty")]
    Empty(String),
}

/// `$HOME/.drove.cookie`.
pub fn default_path() -> Result<PathBuf, CookieFileError> {
    let home = std::env::var_os("HOME").ok_or(CookieFileError::NoHome)?;
    Ok(Path::new(&home).join(".drove.cookie"))
}

/// The cookie in `path`, which must be readable by its owner only.
pub fn read(path: &Path) -> Result<String, CookieFileError> {
    let shown = path.display().to_string();
    let io = |source| CookieFileError::Io {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CookieFileError::Exposed { path: shown, mode });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let cookie = text.trim();
    if cookie.is_empty() {
        return Err(CookieFileError::Empty(shown));
    }
    Ok(cookie.to_string())
}

/// The cookie in `path`, made first with a random cookie if there is no
/// such file. Several nodes starting at once agree on one cookie: the file
/// appears complete or not at all (written aside, then linked in place).
pub fn read_or_create(path: &Path) -> Result<String, CookieFileError> {
    if !path.exists() {
        create(path)?;
    }
    read(path)
}

fn create(path: &Path) -> Result<(), CookieFileError> {
    let io = |source| CookieFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let aside = path.with_extension(format!(
        "new.{}",
        &drove_runtime::cookie::random_cookie()[..16]
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)
        .map_err(io)?;
    let written =
        writeln!(file, "{}", drove_runtime::cookie::random_cookie()).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| match std::fs::hard_link(&aside, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&aside);
    linked.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("drove-cookie-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(".drove.cookie")
    }

    #[test]
    fn a_missing_file_is_made_private_and_random_then_reused() {
        let path = temp("made");
        let first = read_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_or_create(&path).unwrap(), first);
        let other = temp("other");
        assert_ne!(read_or_create(&other).unwrap(), first);
    }

    #[test]
    fn racing_creators_agree() {
        let path = temp("race");
        let cookies: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| read_or_create(&path).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(cookies.iter().all(|c| *c == cookies[0]));
    }

    #[test]
    fn exposed_or_empty_files_are_refused() {
        let path = temp("exposed");
        std::fs::write(&path, "some-cookie\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read(&path),
            Err(CookieFileError::Exposed { mode: 0o644, .. })
        ));
        std::fs::write(&path, "  \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read(&path), Err(CookieFileError::Empty(_))));
        assert!(matches!(
            read(&path.with_extension("none")),
            Err(CookieFileError::Io { .. })
        ));
    }
}
