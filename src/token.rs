//! `hvs token create|list|revoke`: the operator's tokens.
//!
//! A token lets a model connect with a contract that claims no more than
//! the token allows (model ids and namespaces, by glob). The tokens file
//! (`<data dir>/tokens.json` unless `--tokens` names another) holds only
//! the tokens' hashes; `create` prints the token this once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hvs::runtime::auth::{AuthError, TokenEntry, TokenStore};

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token and print it (once: only its hash is stored).
    Create {
        /// Globs of the model ids it may connect, comma-separated
        /// (`chat-*,planner`).
        #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
        models: Vec<String>,
        /// Globs of the namespaces its contracts may name, read and write,
        /// comma-separated (`chat*,shared`).
        #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
        namespaces: Vec<String>,
        /// A note on whom the token is for.
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        file: TokensFile,
    },
    /// List the tokens: id, label, what they allow, when made.
    List {
        #[command(flatten)]
        file: TokensFile,
    },
    /// Remove a token by its id; it no longer admits anyone.
    Revoke {
        /// The token's id (from `hvs token list`).
        id: String,
        #[command(flatten)]
        file: TokensFile,
    },
}

/// Where the tokens file is.
#[derive(Args)]
pub(crate) struct TokensFile {
    /// The tokens file (default: `DATA/tokens.json`).
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// The data directory (created if missing).
    #[arg(long, value_name = "DIR", default_value = "./hvs-data")]
    data: PathBuf,
}

impl TokensFile {
    fn path(&self) -> PathBuf {
        self.tokens
            .clone()
            .unwrap_or_else(|| TokenStore::default_path(&self.data))
    }
}

/// Runs a `hvs token` command: exit 0, 2 for the operator's mistakes (an
/// unknown id, a missing or malformed file, an empty grant), 1 for
/// failures of the machine (I/O, the random number generator).
pub(crate) fn run(cmd: TokenCommand) -> ExitCode {
    let done = match cmd {
        TokenCommand::Create {
            models,
            namespaces,
            label,
            file,
        } => create(&file.path(), &label, models, namespaces),
        TokenCommand::List { file } => list(&file.path()),
        TokenCommand::Revoke { id, file } => revoke(&file.path(), &id),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error[{}]: {e}", e.code());
            match e {
                AuthError::Io { .. } | AuthError::Rng(_) => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            }
        }
    }
}

/// The token goes alone to stdout (so `TOKEN=$(hvs token create …)`
/// works); what it is and where its hash went, to stderr.
fn create(
    path: &Path,
    label: &str,
    models: Vec<String>,
    namespaces: Vec<String>,
) -> Result<(), AuthError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|source| AuthError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let (entry, token) = TokenStore::create(path, label, models, namespaces)?;
    eprintln!(
        "created token {} ({}): models {}, namespaces {}",
        entry.id,
        describe_label(&entry),
        entry.models.join(","),
        entry.namespaces.join(","),
    );
    println!("{token}");
    eprintln!(
        "This token is shown once and cannot be shown again: only its SHA-256 hash \
         was stored, in {}. Keep it secret; revoke it with `hvs token revoke {}`.",
        path.display(),
        entry.id,
    );
    Ok(())
}

fn list(path: &Path) -> Result<(), AuthError> {
    let store = TokenStore::load(path)?;
    if store.list().is_empty() {
        eprintln!("no tokens in {}", path.display());
        return Ok(());
    }
    let rows: Vec<[String; 5]> = store
        .list()
        .iter()
        .map(|e| {
            [
                e.id.clone(),
                e.label.clone(),
                e.models.join(","),
                e.namespaces.join(","),
                format_utc(e.created_ms),
            ]
        })
        .collect();
    let header = ["ID", "LABEL", "MODELS", "NAMESPACES", "CREATED (UTC)"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}

fn revoke(path: &Path, id: &str) -> Result<(), AuthError> {
    let entry = TokenStore::revoke(path, id)?;
    println!("revoked token {} ({})", entry.id, describe_label(&entry));
    Ok(())
}

fn describe_label(entry: &TokenEntry) -> String {
    if entry.label.is_empty() {
        "no label".to_owned()
    } else {
        format!("{:?}", entry.label)
    }
}

/// The data directory holds the tokens' hashes (and, with the server, the
/// database): readable by its owner only when this makes it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC of milliseconds since the Unix epoch.
fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn dates_in_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_767_225_599_999), "2025-12-31 23:59:59");
    }
}
