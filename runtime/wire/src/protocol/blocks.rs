//! Blocks of shared knowledge.

use serde::{Deserialize, Serialize};

use hvs_types::BlockContent;

/// `store_block`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreBlock {
    /// A unique name.
    pub name: String,
    /// `{"text": "..."}`, `{"json": any}` or `{"bytes": bin}`.
    pub content: BlockContent,
    /// Kept as shared knowledge (default) or, when false, a cache block
    /// that expires.
    #[serde(default = "default_true")]
    pub persist: bool,
    /// Refuse every later update and delete.
    #[serde(default)]
    pub readonly: bool,
    /// Who may read it: model ids or `"*"` (default `["*"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<String>>,
    /// Who besides its owner may change it (default: nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Vec<String>>,
}

fn default_true() -> bool {
    true
}

/// `update_block`'s arguments: new content, new permissions, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateBlock {
    /// The block's name.
    pub name: String,
    /// The new content (one version on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<BlockContent>,
    /// New readers (owner only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<String>>,
    /// New writers (owner only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Vec<String>>,
}

/// `query_blocks`' arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryBlocks {
    /// What to look for, in words.
    pub text: String,
    /// How many (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
}

fn default_k() -> usize {
    10
}

/// `list_blocks`' arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListBlocks {
    /// Only this class (`shared_knowledge`, `cache`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// A block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireBlock {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its class (`shared_knowledge`, `cache`, …).
    pub class: String,
    /// Its content.
    pub content: BlockContent,
    /// The model that stored it.
    #[serde(default)]
    pub owner: String,
    /// Who may read it.
    #[serde(default)]
    pub read: Vec<String>,
    /// Who besides the owner may change it.
    #[serde(default)]
    pub write: Vec<String>,
    /// Updates and deletes are refused.
    pub readonly: bool,
    /// 1, +1 per update.
    pub version: u64,
    /// Created, ms since the epoch.
    pub created_ms: u64,
    /// Last updated.
    pub updated_ms: u64,
    /// When it expires, if it does.
    pub expires_ms: Option<u64>,
}

/// `list_blocks`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockList {
    /// The blocks, by name.
    pub blocks: Vec<WireBlock>,
}

/// A section of a block found by `query_blocks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireBlockHit {
    /// The block's id.
    pub block_id: String,
    /// Its name.
    pub name: String,
    /// The section's heading, if any.
    pub section: Option<String>,
    /// The section's text.
    pub text: String,
    /// Distance.
    pub distance: f64,
    /// `1 / (1 + distance)`.
    pub score: f64,
    /// Position from 0.
    pub rank: usize,
}

/// `query_blocks`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockHits {
    /// Nearest first.
    pub hits: Vec<WireBlockHit>,
}
