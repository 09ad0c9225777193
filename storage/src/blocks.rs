//! Blocks: the NVM part of the specification — named, classed, versioned
//! pieces of content with permissions, an audit log, and section-level
//! semantic search.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a block holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlockClass {
    /// Markdown documentation: split into sections by heading, each searchable.
    Documentation,
    /// A program's state.
    ProgramState,
    /// A knowledge graph.
    KnowledgeGraph,
    /// Knowledge shared between models.
    SharedKnowledge,
    /// A cache entry: needs a TTL, after which the block is gone.
    Cache,
    /// Anything else, by name.
    Custom(String),
}

impl BlockClass {
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Documentation => "documentation".into(),
            Self::ProgramState => "program_state".into(),
            Self::KnowledgeGraph => "knowledge_graph".into(),
            Self::SharedKnowledge => "shared_knowledge".into(),
            Self::Cache => "cache".into(),
            Self::Custom(s) => format!("custom:{s}"),
        }
    }
}

pub use hvs_types::BlockContent;

/// Who may read and who may write a block: actor names, or `"*"` for anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPermissions {
    /// Readers.
    pub read: Vec<String>,
    /// Writers.
    pub write: Vec<String>,
}

impl Default for BlockPermissions {
    fn default() -> Self {
        Self {
            read: vec!["*".into()],
            write: vec!["*".into()],
        }
    }
}

fn allows(list: &[String], actor: &str) -> bool {
    list.iter().any(|a| a == "*" || a == actor)
}

impl BlockPermissions {
    /// Whether `actor` may read.
    pub fn can_read(&self, actor: &str) -> bool {
        allows(&self.read, actor)
    }

    /// Whether `actor` may write.
    pub fn can_write(&self, actor: &str) -> bool {
        allows(&self.write, actor)
    }
}

/// How to create a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockOptions {
    /// Refuse every update and delete ([`crate::StorageError::ReadOnlyBlock`]).
    pub readonly: bool,
    /// Readers and writers.
    pub permissions: BlockPermissions,
    /// Milliseconds after creation when the block is gone (required for
    /// [`BlockClass::Cache`]).
    pub ttl_ms: Option<u64>,
    /// Earlier versions kept in the block's history. Default 8.
    pub history: usize,
}

impl Default for BlockOptions {
    fn default() -> Self {
        Self {
            readonly: false,
            permissions: BlockPermissions::default(),
            ttl_ms: None,
            history: 8,
        }
    }
}

/// An earlier version of a block's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockVersion {
    /// Its version number.
    pub version: u64,
    /// Its content.
    pub content: BlockContent,
    /// When it was written (ms since the epoch).
    pub updated_ms: u64,
}

/// A stored block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// UUID v7.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// The actor that created it: it may always read, update, delete and
    /// change the permissions of the block, whatever the lists say. Empty
    /// for blocks written before owners existed: for them the lists alone
    /// decide.
    #[serde(default)]
    pub owner: String,
    /// Class.
    pub class: BlockClass,
    /// Current content.
    pub content: BlockContent,
    /// Updates and deletes are refused.
    pub readonly: bool,
    /// Readers and writers.
    pub permissions: BlockPermissions,
    /// 1 at creation, +1 per update.
    pub version: u64,
    /// Creation time (ms since the epoch).
    pub created_ms: u64,
    /// Last update (ms since the epoch).
    pub updated_ms: u64,
    /// When the block is gone, if it expires.
    pub expires_ms: Option<u64>,
    /// How many earlier versions are kept.
    pub history_limit: usize,
    /// Earlier versions, newest first.
    pub history: Vec<BlockVersion>,
}

impl Block {
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|t| now_ms >= t)
    }

    /// Whether `actor` owns the block (never for a block without owner).
    pub fn owned_by(&self, actor: &str) -> bool {
        !self.owner.is_empty() && self.owner == actor
    }

    /// Whether `actor` may read it: its owner, or an actor the read list names.
    pub fn readable_by(&self, actor: &str) -> bool {
        self.owned_by(actor) || self.permissions.can_read(actor)
    }

    /// Whether `actor` may update or delete it (read-only aside): its
    /// owner, or an actor the write list names.
    pub fn writable_by(&self, actor: &str) -> bool {
        self.owned_by(actor) || self.permissions.can_write(actor)
    }

    /// Whether `actor` may change its permissions: its owner; for a block
    /// without owner (written before owners existed), the write list.
    pub fn permissions_settable_by(&self, actor: &str) -> bool {
        if self.owner.is_empty() {
            self.permissions.can_write(actor)
        } else {
            self.owned_by(actor)
        }
    }
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// `create_block`.
    CreateBlock,
    /// A read (only refused reads are recorded).
    ReadBlock,
    /// `update_block`.
    UpdateBlock,
    /// `delete_block`.
    DeleteBlock,
    /// `set_block_permissions`.
    SetPermissions,
    /// An expired block removed from the file by the store itself (actor
    /// `"hvs"`).
    Expire,
    /// A model's connection to the server (only refused ones are
    /// recorded, with the reason).
    Connect,
    /// Any other refused request, named in the entry's outcome.
    Request,
    /// A sync job met a conflict (actor: the job; block: the vector; name:
    /// its namespace; outcome: both versions and how it was settled).
    SyncConflict,
}

/// One row of the audit log: every block mutation and every refused attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// The block, when known.
    pub block: Option<Uuid>,
    /// The block's name, when known.
    pub name: Option<String>,
    /// `"ok"`, or `"refused: <reason>"`.
    pub outcome: String,
}

/// One result of [`crate::Store::semantic_query`]: a section of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockHit {
    /// The block.
    pub block_id: Uuid,
    /// Its name.
    pub name: String,
    /// The section's heading (documentation blocks), if any.
    pub section: Option<String>,
    /// The section's text.
    pub text: String,
    /// Distance on the text encoder's sphere.
    pub distance: f64,
    /// `1 / (1 + distance)`.
    pub score: f64,
    /// Position in the results, from 0.
    pub rank: usize,
}

/// A searchable piece of a block.
pub(crate) struct Section {
    pub(crate) heading: Option<String>,
    pub(crate) text: String,
}

/// The sections search indexes: for documentation, one per markdown heading
/// (`#` to `######` followed by a space; text before the first heading is a
/// section without heading); for other searchable content, the whole text.
pub(crate) fn sections(block: &Block) -> Vec<Section> {
    let Some(text) = block.content.searchable_text() else {
        return Vec::new();
    };
    if block.class != BlockClass::Documentation {
        return vec![Section {
            heading: None,
            text,
        }];
    }
    let mut out = Vec::new();
    let mut heading: Option<String> = None;
    let mut body = String::new();
    let flush = |heading: &Option<String>, body: &mut String, out: &mut Vec<Section>| {
        if heading.is_some() || !body.trim().is_empty() {
            let full = match heading {
                Some(h) => format!("{h}\n{}", body.trim()),
                None => body.trim().to_string(),
            };
            out.push(Section {
                heading: heading.clone(),
                text: full,
            });
        }
        body.clear();
    };
    for line in text.lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            flush(&heading, &mut body, &mut out);
            heading = Some(line[hashes..].trim().to_string());
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&heading, &mut body, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Block {
        Block {
            id: Uuid::nil(),
            name: "d".into(),
            owner: String::new(),
            class: BlockClass::Documentation,
            content: BlockContent::Text(text.into()),
            readonly: false,
            permissions: BlockPermissions::default(),
            version: 1,
            created_ms: 0,
            updated_ms: 0,
            expires_ms: None,
            history_limit: 8,
            history: vec![],
        }
    }

    #[test]
    fn markdown_splits_by_heading() {
        let s = sections(&doc(
            "intro line\n# Install\nrun it\n## Usage\nuse it\n#notaheading\n",
        ));
        let heads: Vec<_> = s.iter().map(|x| x.heading.clone()).collect();
        assert_eq!(
            heads,
            vec![None, Some("Install".into()), Some("Usage".into())]
        );
        assert_eq!(s[1].text, "Install\nrun it");
        assert!(s[2].text.contains("#notaheading"));
        assert!(
            sections(&Block {
                content: BlockContent::Bytes(vec![1]),
                ..doc("")
            })
            .is_empty()
        );
    }

    #[test]
    fn bytes_round_trip_compactly() {
        let c = BlockContent::Bytes(vec![7; 100]);
        let enc = rmp_serde::to_vec_named(&c).unwrap();
        assert!(enc.len() < 120, "{} bytes", enc.len());
        let back: BlockContent = rmp_serde::from_slice(&enc).unwrap();
        assert_eq!(back, c);
    }
}
