//! [`AdminArgs`]: the admin listener's protections, as flags.

use std::path::PathBuf;

use clap::Args;

use drove::cookie_file::{self, CookieFileError};
use drove_admin::Guard;

/// Flags of the admin API's protections (see `drove_admin::guard`).
#[derive(Args, Clone, Debug, Default)]
pub struct AdminArgs {
    /// A file (mode 0600) holding a bearer token every admin request must
    /// carry (`Authorization: Bearer ...`) [default: none].
    #[arg(long, env = "DROVE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Host names the admin API answers to, besides IP addresses and
    /// localhost (against DNS rebinding), comma-separated.
    #[arg(long, env = "DROVE_ADMIN_HOSTS", value_delimiter = ',')]
    pub admin_hosts: Vec<String>,
}

impl AdminArgs {
    /// The guard these flags describe (reads the token file).
    pub fn guard(&self) -> Result<Guard, CookieFileError> {
        let token = match &self.admin_token_file {
            Some(path) => Some(cookie_file::read(path)?),
            None => None,
        };
        Ok(Guard {
            token,
            hosts: self.admin_hosts.clone(),
        })
    }
}
