//! Blocks as a model sees them: stored with an owner (the model) and
//! read/write lists, read, changed and deleted by name. Storage enforces
//! the lists and audits every refusal. Everything goes through the model's
//! actor; reads pay a query token.

use hvs_storage::{Block, BlockClass, BlockContent, BlockOptions, BlockPermissions, StorageError};

use crate::error::Result;
use crate::hub::ModelRef;
use crate::vectors::Cost;

/// How a block is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSettings {
    /// Kept as shared knowledge; when false, a cache block that expires.
    pub persist: bool,
    /// Every later update and delete is refused.
    pub readonly: bool,
    /// Who may read and who besides the owner may write.
    pub permissions: BlockPermissions,
}

impl Default for BlockSettings {
    /// Persistent, writable, readable by anyone, written by its owner only.
    fn default() -> Self {
        Self {
            persist: true,
            readonly: false,
            permissions: BlockPermissions {
                read: vec!["*".into()],
                write: Vec::new(),
            },
        }
    }
}

impl ModelRef {
    /// Stores a block owned by this model.
    pub async fn store_block(
        &self,
        name: &str,
        content: BlockContent,
        settings: BlockSettings,
    ) -> Result<Block> {
        let store = self.hub.inner.store.clone();
        let (actor, name) = (self.id().to_string(), name.to_string());
        let ttl = self.hub.inner.cache_ttl_ms;
        self.as_model(None, move || {
            let (class, ttl_ms) = if settings.persist {
                (BlockClass::SharedKnowledge, None)
            } else {
                (BlockClass::Cache, Some(ttl))
            };
            let options = BlockOptions {
                ttl_ms,
                readonly: settings.readonly,
                permissions: settings.permissions,
                ..BlockOptions::default()
            };
            Ok(store.create_block(&actor, &name, class, content, options)?)
        })
        .await
    }

    /// The block named `name`, if it exists and this model may read it.
    pub async fn get_block(&self, name: &str) -> Result<Option<Block>> {
        let store = self.hub.inner.store.clone();
        let (actor, name) = (self.id().to_string(), name.to_string());
        self.as_model(Some(Cost::Query), move || {
            Ok(store.get_block_by_name(&actor, &name)?)
        })
        .await
    }

    /// Replaces a block's content (one version on) and, when given, its
    /// permissions (its owner only).
    pub async fn update_block(
        &self,
        name: &str,
        content: Option<BlockContent>,
        permissions: Option<BlockPermissions>,
    ) -> Result<Block> {
        let store = self.hub.inner.store.clone();
        let (actor, name) = (self.id().to_string(), name.to_string());
        self.as_model(None, move || {
            let mut block = match store.get_block_by_name(&actor, &name)? {
                Some(b) => b,
                None => return Err(StorageError::BlockNotFound(name).into()),
            };
            if let Some(p) = permissions {
                block = store.set_block_permissions(&actor, block.id, p)?;
            }
            if let Some(c) = content {
                block = store.update_block(&actor, block.id, c)?;
            }
            Ok(block)
        })
        .await
    }

    /// Deletes a block this model may write; `false` when there is none.
    pub async fn delete_block(&self, name: &str) -> Result<bool> {
        let store = self.hub.inner.store.clone();
        let (actor, name) = (self.id().to_string(), name.to_string());
        self.as_model(None, move || {
            match store.get_block_by_name(&actor, &name)? {
                Some(b) => Ok(store.delete_block(&actor, b.id)?),
                None => Ok(false),
            }
        })
        .await
    }

    /// The blocks this model may read (of one class, when given), by name.
    pub async fn list_blocks(&self, class: Option<BlockClass>) -> Result<Vec<Block>> {
        let store = self.hub.inner.store.clone();
        let actor = self.id().to_string();
        self.as_model(Some(Cost::Query), move || {
            Ok(store.list_blocks(&actor, class.as_ref())?)
        })
        .await
    }
}
