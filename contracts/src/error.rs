//! The one error type of the contracts crate, and [`Problem`], one finding of
//! validation.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hvs_geometry::GeometryError;

/// One thing wrong (or, as a warning, odd) in a contract, located by its JSON
/// path: `hvs_binding.geometry`, `permissions.read_namespaces[2]`, or `$`
/// for the document itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: dotted keys and `[index]`es from the document's root.
    pub path: String,
    /// What, in words.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Which resource limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// `resource_limits.max_vectors_per_second`.
    VectorsPerSecond,
    /// `resource_limits.max_queries_per_second`.
    QueriesPerSecond,
    /// `resource_limits.max_storage_mb` (MiB).
    StorageMb,
    /// `communication_protocol.max_message_size_bytes`.
    MessageSizeBytes,
}

impl Limit {
    /// The contract field that sets this limit.
    pub fn field(self) -> &'static str {
        match self {
            Self::VectorsPerSecond => "resource_limits.max_vectors_per_second",
            Self::QueriesPerSecond => "resource_limits.max_queries_per_second",
            Self::StorageMb => "resource_limits.max_storage_mb",
            Self::MessageSizeBytes => "communication_protocol.max_message_size_bytes",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// Everything the contracts crate can refuse.
///
/// All variants but [`Io`](ContractError::Io) are problems with the caller's
/// input (a contract, a weights file, a message) or a limit it ran into;
/// [`ContractError::code`] gives a stable code that can travel on the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The text is not JSON at all.
    #[error("contract is not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The contract (or a file it names) breaks the rules: every problem
    /// found, each with its JSON path.
    #[error("invalid contract ({} problem{}): {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, list(.0))]
    Invalid(Vec<Problem>),
    /// A contract file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A resource limit of the contract refuses the request.
    #[error("{limit} = {value} exceeded; {}", retry_text(*.retry_after))]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// Its value in the contract (per second, MiB or bytes).
        value: u64,
        /// When the same request will be accepted, assuming nothing else
        /// uses the budget meanwhile; `None` when retrying cannot help (the
        /// request is larger than the whole budget, or the limit is a
        /// quota or size rather than a rate).
        retry_after: Option<Duration>,
    },
    /// An input to an encoder has the wrong number of coordinates.
    #[error("{what} has {got} coordinates, expected {expected}")]
    DimensionMismatch {
        /// What was given (`"embedding"`, …).
        what: &'static str,
        /// Coordinates expected.
        expected: usize,
        /// Coordinates given.
        got: usize,
    },
    /// An input to an encoder (or its result) is NaN or infinite.
    #[error("{what} coordinate {index} is not finite")]
    NonFinite {
        /// What was given (`"embedding"`, `"encoder output"`).
        what: &'static str,
        /// Index of the first offending coordinate.
        index: usize,
    },
    /// The contract's encoder cannot run, so an embedding cannot become a
    /// point: an `mlp` encoder whose contract names no weights file. The
    /// model can still send a point of its space (`vector`) or text.
    #[error(
        "the {encoder} encoder cannot encode an embedding: {reason}; send a point of the space (`vector`) or text instead"
    )]
    EncoderUnavailable {
        /// Which encoder (`"mlp"`).
        encoder: &'static str,
        /// Why it cannot run.
        reason: &'static str,
    },
    /// The geometry refused a point (off the manifold, wrong length, …).
    #[error(transparent)]
    Geometry(#[from] GeometryError),
}

impl ContractError {
    /// A stable, machine-readable code for the error kind; geometry errors
    /// keep the geometry crate's codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Json { .. } => "contract_json",
            Self::Invalid(_) => "invalid_contract",
            Self::Io { .. } => "io",
            Self::LimitExceeded { .. } => "limit_exceeded",
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::NonFinite { .. } => "non_finite",
            Self::EncoderUnavailable { .. } => "encoder_unavailable",
            Self::Geometry(e) => e.code(),
        }
    }

    /// The problems of an [`Invalid`](ContractError::Invalid) contract; empty
    /// for every other kind.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(p) => p,
            _ => &[],
        }
    }
}

impl From<serde_json::Error> for ContractError {
    fn from(e: serde_json::Error) -> Self {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let text = e.to_string();
        Self::Json {
            line: e.line(),
            column: e.column(),
            message: text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn retry_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("retry after {d:?}"),
        None => "retrying the same request cannot succeed".into(),
    }
}
