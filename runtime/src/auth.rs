//! Operator tokens: who may connect, and which contracts and namespaces
//! they may claim.
//!
//! At the handshake a model presents its contract and a token. The operator
//! makes tokens (`hvs token create`) and keeps them in a tokens file,
//! `<data dir>/tokens.json` ([`TOKENS_FILE`]); each entry says which model
//! ids and which namespaces the token's holder may claim. The file holds
//! only the SHA-256 of each token, never the token: [`TokenStore::create`]
//! shows the token once, to the operator who made it.
//!
//! Two checks admit a model ([`TokenStore::admit`] does both):
//! - [`TokenStore::verify`] finds the entry of a presented token. It hashes
//!   the token and compares the hash with *every* entry's in constant time,
//!   so neither the comparison nor where the match is in the file shows in
//!   how long it takes.
//! - [`TokenEntry::authorize`] checks the contract against the entry: a
//!   contract cannot grant itself more than its token allows. Its model id
//!   must match one of the token's `models` globs; its own namespace and
//!   every `read_namespaces` / `write_namespaces` pattern must be covered
//!   by one of the token's `namespaces` globs (see [`covers`]). A refusal
//!   lists every claim the token does not allow.
//!
//! The file is a pretty-printed JSON array of [`TokenEntry`]s. Changes
//! ([`TokenStore::create`], [`TokenStore::revoke`]) replace it whole: a
//! temporary file in the same folder, synced, then renamed over it, so a
//! reader sees the old list or the new one, never half of one. On unix the
//! file is readable by its owner only (mode 0600). Two processes changing
//! the file at the same moment can lose one change: the operator's tool is
//! meant to be run by hand, one command at a time.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hvs_contracts::{Contract, glob_match};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The tokens file's name in the data directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// What every token starts with, so that one found in a log or a paste is
/// recognisable.
pub const TOKEN_PREFIX: &str = "hvs_";

/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// Random bytes in an entry's public id.
const ID_BYTES: usize = 6;

/// What can go wrong with tokens: the operator's file, the presented token,
/// or the contract's claims.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The tokens file does not exist.
    #[error("no tokens file at {} (create a token with `hvs token create`)", path.display())]
    FileMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The tokens file is not a valid list of entries.
    #[error("tokens file {} is malformed: {reason}", path.display())]
    FileMalformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with a line and column where JSON says so.
        reason: String,
    },
    /// Reading or writing the tokens file failed.
    #[error("tokens file {}: {source}", path.display())]
    Io {
        /// The file (or the temporary file beside it).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    /// A new token's grant is unusable (no globs, or an empty one).
    #[error("invalid token grant: {0}")]
    InvalidGrant(String),
    /// No entry has this id.
    #[error("no token with id {id:?}")]
    UnknownToken {
        /// The id asked for.
        id: String,
    },
    /// The presented token is not in the tokens file.
    #[error("unknown or revoked token")]
    Unauthorized,
    /// The contract claims what its token does not allow.
    #[error("token {token_id} does not allow: {}", list(claims))]
    ForbiddenClaims {
        /// The token's public id.
        token_id: String,
        /// Every claim refused, in contract order.
        claims: Vec<ForbiddenClaim>,
    },
}

fn list(claims: &[ForbiddenClaim]) -> String {
    let parts: Vec<String> = claims.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl AuthError {
    /// A stable snake_case name of the error, for the wire and for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::FileMissing { .. } => "tokens_file_missing",
            AuthError::FileMalformed { .. } => "tokens_file_malformed",
            AuthError::Io { .. } => "io",
            AuthError::Rng(_) => "rng_failed",
            AuthError::InvalidGrant(_) => "invalid_grant",
            AuthError::UnknownToken { .. } => "unknown_token",
            AuthError::Unauthorized => "unauthorized",
            AuthError::ForbiddenClaims { .. } => "forbidden_claim",
        }
    }

    /// Whether the error is the client's (a bad token or contract) rather
    /// than the server's or the operator's.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            AuthError::Unauthorized | AuthError::ForbiddenClaims { .. }
        )
    }
}

/// One claim of a contract that its token does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenClaim {
    /// Where in the contract: `model.id`, `hvs_binding.namespace`,
    /// `permissions.write_namespaces[1]`, …
    pub field: String,
    /// The model id, namespace or namespace pattern claimed.
    pub claim: String,
    /// What the token allows there: its `models` or its `namespaces`.
    pub allowed: Vec<String>,
}

impl fmt::Display for ForbiddenClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.field == "model.id" {
            "models"
        } else {
            "namespaces"
        };
        write!(
            f,
            "{}: {:?} is not covered by the token's {kind} {:?}",
            self.field, self.claim, self.allowed
        )
    }
}

/// One token in the tokens file: what its holder may claim. The token
/// itself is not here, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// A short public id, for listing and revoking (not a secret).
    pub id: String,
    /// The operator's note on whom the token is for.
    #[serde(default)]
    pub label: String,
    /// Lower-case hex of the SHA-256 of the token.
    pub sha256: String,
    /// Globs of the model ids the token may connect.
    pub models: Vec<String>,
    /// Globs of the namespaces its contracts may name or read and write.
    pub namespaces: Vec<String>,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl TokenEntry {
    /// Checks that `contract` claims nothing this token does not allow: its
    /// `model.id` matches one of `models`, and its `hvs_binding.namespace`
    /// and every pattern of `permissions.read_namespaces` and
    /// `write_namespaces` is [covered](covers) by one of `namespaces`. The
    /// error lists every claim refused.
    pub fn authorize(&self, contract: &Contract) -> Result<(), AuthError> {
        let mut refused = Vec::new();
        let id = &contract.model.id;
        if !self.models.iter().any(|g| glob_match(g, id)) {
            refused.push(ForbiddenClaim {
                field: "model.id".into(),
                claim: id.clone(),
                allowed: self.models.clone(),
            });
        }
        let perms = &contract.permissions;
        let claims = std::iter::once((
            "hvs_binding.namespace".to_owned(),
            &contract.hvs_binding.namespace,
        ))
        .chain(
            perms
                .read_namespaces
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("permissions.read_namespaces[{i}]"), p)),
        )
        .chain(
            perms
                .write_namespaces
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("permissions.write_namespaces[{i}]"), p)),
        );
        for (field, claim) in claims {
            if !self.namespaces.iter().any(|g| covers(g, claim)) {
                refused.push(ForbiddenClaim {
                    field,
                    claim: claim.clone(),
                    allowed: self.namespaces.clone(),
                });
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(AuthError::ForbiddenClaims {
                token_id: self.id.clone(),
                claims: refused,
            })
        }
    }
}

/// Whether every namespace that pattern `inner` matches is matched by glob
/// `outer` (both in the syntax of [`glob_match`]: `*` any run, `?` one
/// character).
///
/// `outer` is matched against `inner` read as a plain string, with the
/// contracts' own matcher, so for a concrete name this *is*
/// [`glob_match`]. For patterns that is sound as long as `outer` has no
/// `?`: `outer`'s literal characters then meet only the same literal
/// characters of `inner`, and its `*` may swallow `inner`'s wildcards
/// along with anything else. A `?` in `outer` could stand for a `*` of
/// `inner` (`a?` would cover `a*`), so a glob with `?` covers only concrete
/// names and the identical pattern. That may refuse a pattern that is in
/// fact covered (`?*` and `*?` match the same names); it never accepts one
/// that is not.
pub fn covers(outer: &str, inner: &str) -> bool {
    if outer == inner {
        return true;
    }
    let inner_is_pattern = inner.contains(['*', '?']);
    if outer.contains('?') && inner_is_pattern {
        return false;
    }
    glob_match(outer, inner)
}

/// The tokens file, loaded: the entries and their hashes, ready to verify
/// presented tokens.
///
/// Reading methods take `&self`; the changes ([`TokenStore::create`],
/// [`TokenStore::revoke`]) take the file's path, read it fresh, change it
/// and write it back, so that they never write over a newer file with a
/// stale copy held in memory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
    entries: Vec<TokenEntry>,
    /// `entries[i]`'s hash, decoded.
    hashes: Vec<[u8; 32]>,
}

impl TokenStore {
    /// The tokens file of a data directory.
    pub fn default_path(data_dir: impl AsRef<Path>) -> PathBuf {
        data_dir.as_ref().join(TOKENS_FILE)
    }

    /// Reads the tokens file. A missing file is [`AuthError::FileMissing`];
    /// one that is not a JSON array of valid entries (hashes of 64 hex
    /// digits, unique ids) is [`AuthError::FileMalformed`].
    pub fn load(path: impl AsRef<Path>) -> Result<TokenStore, AuthError> {
        let path = path.as_ref().to_path_buf();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuthError::FileMissing { path });
            }
            Err(source) => return Err(AuthError::Io { path, source }),
        };
        let malformed = |reason: String| AuthError::FileMalformed {
            path: path.clone(),
            reason,
        };
        let entries: Vec<TokenEntry> =
            serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        let mut hashes = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&e.sha256, &mut hash).map_err(|err| {
                malformed(format!(
                    "entry {i} ({:?}): sha256 is not 64 hex digits: {err}",
                    e.id
                ))
            })?;
            if entries[..i].iter().any(|other| other.id == e.id) {
                return Err(malformed(format!("entry {i}: id {:?} appears twice", e.id)));
            }
            hashes.push(hash);
        }
        Ok(TokenStore {
            path,
            entries,
            hashes,
        })
    }

    /// Reads the tokens file, or an empty list if there is none yet.
    fn load_or_empty(path: &Path) -> Result<TokenStore, AuthError> {
        match TokenStore::load(path) {
            Err(AuthError::FileMissing { path }) => Ok(TokenStore {
                path,
                entries: Vec::new(),
                hashes: Vec::new(),
            }),
            other => other,
        }
    }

    /// Makes a token allowed to claim the model ids matching `models` and
    /// the namespaces covered by `namespaces`, appends its entry to the
    /// tokens file at `path` (creating the file if missing; its folder must
    /// exist), and returns the entry and the token.
    ///
    /// The token is [`TOKEN_PREFIX`] and 64 hex digits: 256 bits from the
    /// operating system's random number generator. It is returned this once
    /// and stored nowhere; lost, it can only be revoked and replaced.
    pub fn create(
        path: impl AsRef<Path>,
        label: &str,
        models: Vec<String>,
        namespaces: Vec<String>,
    ) -> Result<(TokenEntry, String), AuthError> {
        check_globs("models", &models)?;
        check_globs("namespaces", &namespaces)?;
        let mut store = TokenStore::load_or_empty(path.as_ref())?;

        let mut secret = [0u8; TOKEN_BYTES];
        fill_random(&mut secret)?;
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        let hash = sha256(&token);
        let id = loop {
            let mut raw = [0u8; ID_BYTES];
            fill_random(&mut raw)?;
            let id = hex::encode(raw);
            if store.entries.iter().all(|e| e.id != id) {
                break id;
            }
        };
        let entry = TokenEntry {
            id,
            label: label.to_owned(),
            sha256: hex::encode(hash),
            models,
            namespaces,
            created_ms: now_ms(),
        };
        store.entries.push(entry.clone());
        store.hashes.push(hash);
        store.save()?;
        Ok((entry, token))
    }

    /// Removes the entry with `id` from the tokens file at `path` and
    /// returns it. From then on its token verifies no more (in a server
    /// that reloads the file).
    pub fn revoke(path: impl AsRef<Path>, id: &str) -> Result<TokenEntry, AuthError> {
        let mut store = TokenStore::load(path)?;
        let Some(i) = store.entries.iter().position(|e| e.id == id) else {
            return Err(AuthError::UnknownToken { id: id.to_owned() });
        };
        let entry = store.entries.remove(i);
        store.hashes.remove(i);
        store.save()?;
        Ok(entry)
    }

    /// The entries, in the order they were made.
    pub fn list(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// The tokens file this store was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry of `token`, if it is in the file.
    ///
    /// The token's SHA-256 is compared with every entry's hash in constant
    /// time, all of them whatever matches, and the matching index is picked
    /// without a branch: the time taken depends on the number of entries
    /// only.
    pub fn verify(&self, token: &str) -> Option<&TokenEntry> {
        let presented = sha256(token);
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, hash) in self.hashes.iter().enumerate() {
            let hit = hash.ct_eq(&presented);
            index = u64::conditional_select(&index, &(i as u64), hit);
            found |= hit;
        }
        if bool::from(found) {
            self.entries.get(index as usize)
        } else {
            None
        }
    }

    /// Admits a model: the entry of `token` ([`AuthError::Unauthorized`] if
    /// none), once it [authorizes](TokenEntry::authorize) `contract`.
    pub fn admit(&self, token: &str, contract: &Contract) -> Result<&TokenEntry, AuthError> {
        let entry = self.verify(token).ok_or(AuthError::Unauthorized)?;
        entry.authorize(contract)?;
        Ok(entry)
    }

    /// Writes the entries over the file: a temporary file beside it (mode
    /// 0600), synced, renamed over the old one.
    fn save(&self) -> Result<(), AuthError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io { path, source }
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut text = serde_json::to_string_pretty(&self.entries)
            .map_err(|e| io(&self.path)(std::io::Error::other(e)))?;
        text.push('\n');
        // tempfile creates the file with mode 0600 on unix; set it anyway so
        // the guarantee does not rest on a library default.
        let mut tmp = tempfile::Builder::new()
            .prefix(".tokens.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        restrict(tmp.as_file()).map_err(io(tmp.path()))?;
        tmp.write_all(text.as_bytes()).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        tmp.persist(&self.path).map_err(|e| AuthError::Io {
            path: self.path.clone(),
            source: e.error,
        })?;
        // The rename is durable once the folder is synced (not possible on
        // every platform; the file is complete either way).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Makes the file readable and writable by its owner only.
#[cfg(unix)]
fn restrict(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Elsewhere the file keeps the folder's access rules.
#[cfg(not(unix))]
fn restrict(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

fn check_globs(what: &str, globs: &[String]) -> Result<(), AuthError> {
    if globs.is_empty() {
        return Err(AuthError::InvalidGrant(format!(
            "{what}: at least one glob is needed"
        )));
    }
    if globs.iter().any(|g| g.trim().is_empty()) {
        return Err(AuthError::InvalidGrant(format!(
            "{what}: a glob cannot be empty"
        )));
    }
    Ok(())
}

fn fill_random(buf: &mut [u8]) -> Result<(), AuthError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| AuthError::Rng(e.to_string()))
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    fn contract(id: &str, namespace: &str, read: &[&str], write: &[&str]) -> Contract {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/contracts/rust_agent.json"
        );
        let mut c = Contract::load(Path::new(path)).unwrap();
        c.model.id = id.to_owned();
        c.hvs_binding.namespace = namespace.to_owned();
        c.permissions.read_namespaces = strings(read);
        c.permissions.write_namespaces = strings(write);
        c
    }

    fn entry(models: &[&str], namespaces: &[&str]) -> TokenEntry {
        TokenEntry {
            id: "t1".into(),
            label: String::new(),
            sha256: "00".repeat(32),
            models: strings(models),
            namespaces: strings(namespaces),
            created_ms: 0,
        }
    }

    fn new_token(dir: &Path) -> (PathBuf, TokenEntry, String) {
        let path = dir.join(TOKENS_FILE);
        let (e, t) = TokenStore::create(
            &path,
            "chat bots",
            strings(&["chat-*"]),
            strings(&["chat*"]),
        )
        .unwrap();
        (path, e, t)
    }

    #[test]
    fn verify_accepts_the_token_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (path, first, t1) = new_token(dir.path());
        let (second, t2) =
            TokenStore::create(&path, "other", strings(&["*"]), strings(&["*"])).unwrap();
        assert!(t1.starts_with(TOKEN_PREFIX) && t1.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(t1, t2);
        assert_ne!(first.id, second.id);

        let store = TokenStore::load(&path).unwrap();
        assert_eq!(store.list(), &[first.clone(), second.clone()]);
        assert_eq!(store.verify(&t1), Some(&first));
        assert_eq!(store.verify(&t2), Some(&second));
        assert_eq!(store.verify(""), None);
        assert_eq!(store.verify(&t1[..t1.len() - 1]), None);
        let mut wrong = t1.clone();
        wrong.replace_range(10..11, if &t1[10..11] == "0" { "1" } else { "0" });
        assert_eq!(store.verify(&wrong), None);
        assert_eq!(store.verify(&first.sha256), None, "the hash is no token");
    }

    #[test]
    fn only_the_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entry, token) = new_token(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token));
        assert!(!text.contains(&token[TOKEN_PREFIX.len()..]));
        assert!(text.contains(&entry.sha256));
        assert_eq!(entry.sha256, hex::encode(Sha256::digest(token.as_bytes())));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let fields: Vec<&str> = json[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            [
                "created_ms",
                "id",
                "label",
                "models",
                "namespaces",
                "sha256"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = new_token(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Still so after a rewrite, and no temporary file is left behind.
        TokenStore::create(&path, "", strings(&["*"]), strings(&["*"])).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [TOKENS_FILE]);
    }

    #[test]
    fn revoke_removes_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (path, first, t1) = new_token(dir.path());
        let (second, t2) = TokenStore::create(&path, "", strings(&["*"]), strings(&["*"])).unwrap();
        assert_eq!(TokenStore::revoke(&path, &first.id).unwrap(), first);
        let store = TokenStore::load(&path).unwrap();
        assert_eq!(store.list(), std::slice::from_ref(&second));
        assert_eq!(store.verify(&t1), None);
        assert_eq!(store.verify(&t2), Some(&second));
        let err = TokenStore::revoke(&path, &first.id).unwrap_err();
        assert_eq!(err.code(), "unknown_token");
    }

    #[test]
    fn file_errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKENS_FILE);
        let err = TokenStore::load(&path).unwrap_err();
        assert!(matches!(err, AuthError::FileMissing { .. }), "{err}");
        assert_eq!(err.code(), "tokens_file_missing");

        for text in [
            "{not json",
            "{\"id\": \"x\"}",
            "[{\"id\": \"a\", \"sha256\": \"zz\", \"models\": [], \"namespaces\": [], \"created_ms\": 0}]",
        ] {
            std::fs::write(&path, text).unwrap();
            let err = TokenStore::load(&path).unwrap_err();
            match &err {
                AuthError::FileMalformed { path: p, .. } => assert_eq!(p, &path),
                other => panic!("{text}: {other:?}"),
            }
            assert_eq!(err.code(), "tokens_file_malformed");
            assert!(err.to_string().contains(TOKENS_FILE), "{err}");
        }

        let hash = "ab".repeat(32);
        let twice = format!(
            "[{{\"id\": \"a\", \"sha256\": \"{hash}\", \"models\": [], \"namespaces\": [], \"created_ms\": 0}},
              {{\"id\": \"a\", \"sha256\": \"{hash}\", \"models\": [], \"namespaces\": [], \"created_ms\": 0}}]"
        );
        std::fs::write(&path, twice).unwrap();
        assert_eq!(
            TokenStore::load(&path).unwrap_err().code(),
            "tokens_file_malformed"
        );

        std::fs::write(&path, "[]").unwrap();
        assert!(TokenStore::load(&path).unwrap().list().is_empty());
    }

    #[test]
    fn create_refuses_an_empty_grant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKENS_FILE);
        for (models, namespaces) in [(vec![], strings(&["a"])), (strings(&["a"]), strings(&[""]))] {
            let err = TokenStore::create(&path, "", models, namespaces).unwrap_err();
            assert_eq!(err.code(), "invalid_grant");
        }
        assert!(!path.exists());
    }

    #[test]
    fn authorize_accepts_exact_and_covered_claims() {
        let token = entry(&["chat-*", "planner"], &["chat-*", "shared"]);
        for c in [
            contract("chat-1", "chat-1", &["shared"], &["chat-1"]),
            contract("planner", "chat-x", &["chat-*"], &["chat-a*", "chat-?"]),
            contract("chat-", "chat-", &["chat-a*b"], &["chat-**"]),
        ] {
            token.authorize(&c).unwrap();
        }
    }

    #[test]
    fn authorize_refuses_wider_claims_and_lists_them_all() {
        let token = entry(&["chat-*"], &["chat*"]);
        let c = contract("planner", "chat", &["*", "shared"], &["chat-1", "secret*"]);
        let err = token.authorize(&c).unwrap_err();
        assert_eq!(err.code(), "forbidden_claim");
        assert!(err.is_client_error());
        let AuthError::ForbiddenClaims { token_id, claims } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(token_id, "t1");
        let fields: Vec<&str> = claims.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "model.id",
                "permissions.read_namespaces[0]",
                "permissions.read_namespaces[1]",
                "permissions.write_namespaces[1]",
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains(
                r#"permissions.write_namespaces[1]: "secret*" is not covered by the token's namespaces ["chat*"]"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"model.id: "planner""#), "{text}");

        // Narrower token globs do not cover wider contract patterns.
        let narrow = entry(&["*"], &["chat-*"]);
        assert!(
            narrow
                .authorize(&contract("m", "chat-1", &[], &["chat*"]))
                .is_err()
        );
        narrow
            .authorize(&contract("m", "chat-1", &[], &["chat-a*"]))
            .unwrap();
        let err = narrow
            .authorize(&contract("m", "other", &[], &["chat-1"]))
            .unwrap_err();
        let AuthError::ForbiddenClaims { claims, .. } = err else {
            panic!()
        };
        assert_eq!(claims[0].field, "hvs_binding.namespace");
    }

    #[test]
    fn coverage_is_sound_with_question_marks() {
        assert!(covers("*", "*"));
        assert!(covers("chat*", "chat-*"));
        assert!(!covers("chat-*", "chat*"));
        assert!(!covers("a?", "a*"), "a? must not cover a*");
        assert!(covers("a?", "a?"));
        assert!(covers("a?", "ab"));
        assert!(covers("a*", "a?"));
        assert!(!covers("ab", "a?"));
        // For concrete names coverage is the contracts' matcher.
        for (g, n) in [("chat-*", "chat-1"), ("c?at", "chat"), ("c?at", "cat")] {
            assert_eq!(covers(g, n), glob_match(g, n));
        }
    }

    #[test]
    fn admit_checks_token_then_contract() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entry, token) = new_token(dir.path());
        let store = TokenStore::load(&path).unwrap();
        let ok = contract("chat-1", "chat-1", &["chat"], &["chat-1"]);
        assert_eq!(store.admit(&token, &ok).unwrap(), &entry);
        let err = store.admit("hvs_nope", &ok).unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        let wide = contract("chat-1", "chat-1", &["*"], &["chat-1"]);
        assert_eq!(
            store.admit(&token, &wide).unwrap_err().code(),
            "forbidden_claim"
        );
    }
}
