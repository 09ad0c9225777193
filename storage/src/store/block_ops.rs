//! Blocks (the NVM part of the specification): the store's block API and
//! the index of their sections.

use super::*;

/// Blocks (the NVM part of the specification). Every call names the actor
/// (a model id, an operator) that permissions are checked against and the
/// audit log records.
impl Store {
    /// Removes expired blocks from the file now and returns how many. The
    /// writer does this by itself within a second of the earliest expiry
    /// (each removal is in the audit log as [`AuditAction::Expire`] by
    /// `"hvs"`); expired blocks are invisible to every read before that.
    pub fn purge_expired_blocks(&self) -> Result<usize> {
        match self.submit(Op::PurgeExpired)? {
            Reply::Purged { count, .. } => Ok(count),
            _ => Err(StorageError::Io("unexpected reply to a purge".into())),
        }
    }

    /// Creates a block. Names are unique; a cache block needs a TTL.
    pub fn create_block(
        &self,
        actor: &str,
        name: &str,
        class: BlockClass,
        content: BlockContent,
        options: BlockOptions,
    ) -> Result<Block> {
        if name.is_empty() || name.len() > 256 {
            return Err(StorageError::InvalidBlock(format!(
                "name {name:?} must be 1 to 256 bytes"
            )));
        }
        if class == BlockClass::Cache && options.ttl_ms.is_none() {
            return Err(StorageError::InvalidBlock(
                "a cache block needs a ttl".into(),
            ));
        }
        if let BlockContent::Json(v) = &content {
            let mut m = crate::record::Metadata::new();
            m.insert("content".into(), v.clone());
            check_metadata(&m).map_err(|e| StorageError::InvalidBlock(e.to_string()))?;
        }
        let now = now_ms();
        let block = Block {
            id: Uuid::now_v7(),
            name: name.to_string(),
            owner: actor.to_string(),
            class,
            content,
            readonly: options.readonly,
            permissions: options.permissions,
            version: 1,
            created_ms: now,
            updated_ms: now,
            expires_ms: options.ttl_ms.map(|t| now.saturating_add(t)),
            history_limit: options.history,
            history: Vec::new(),
        };
        match self.submit(Op::CreateBlock {
            actor: actor.to_string(),
            block,
        })? {
            Reply::Block(b) => Ok(*b),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    fn read_block(&self, actor: &str, b: Option<Block>) -> Result<Option<Block>> {
        let Some(b) = b.filter(|b| !b.expired(now_ms())) else {
            return Ok(None);
        };
        if b.readable_by(actor) {
            return Ok(Some(b));
        }
        let e = StorageError::PermissionDenied {
            actor: actor.to_string(),
            action: "read",
            block: b.name.clone(),
        };
        self.submit(Op::Audit {
            actor: actor.to_string(),
            action: AuditAction::ReadBlock,
            block: Some(b.id),
            name: Some(b.name),
            outcome: format!("refused: {e}"),
        })?;
        Err(e)
    }

    fn load_block(&self, id: Uuid) -> Result<Option<Block>> {
        contain("reading a block", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(BLOCKS)?;
            let b = t.get(id.as_u128())?;
            b.map(|b| decode(b.value(), "block")).transpose()
        })
    }

    /// Records a refused attempt in the audit log (`action` is
    /// [`AuditAction::Connect`] or [`AuditAction::Request`]; `what` names it
    /// and `reason` says why it was refused). Answered once committed.
    pub fn audit_refusal(
        &self,
        actor: &str,
        action: AuditAction,
        what: &str,
        reason: &str,
    ) -> Result<()> {
        self.submit(Op::Audit {
            actor: actor.to_string(),
            action,
            block: None,
            name: Some(what.to_string()),
            outcome: format!("refused: {reason}"),
        })
        .map(|_| ())
    }

    /// The block `id` (`None` if absent or expired).
    pub fn get_block(&self, actor: &str, id: Uuid) -> Result<Option<Block>> {
        let b = self.load_block(id)?;
        self.read_block(actor, b)
    }

    /// The block named `name` (`None` if absent or expired).
    pub fn get_block_by_name(&self, actor: &str, name: &str) -> Result<Option<Block>> {
        let id = contain("reading a block", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(BLOCK_NAMES)?;
            Ok(t.get(name)?.map(|v| v.value()))
        })?;
        match id {
            Some(id) => self.get_block(actor, Uuid::from_u128(id)),
            None => Ok(None),
        }
    }

    /// Replaces a block's content (version + 1, the old content into its
    /// history). Read-only blocks answer [`StorageError::ReadOnlyBlock`] and
    /// stay unchanged; every refusal is audited.
    pub fn update_block(&self, actor: &str, id: Uuid, content: BlockContent) -> Result<Block> {
        match self.submit(Op::UpdateBlock {
            actor: actor.to_string(),
            id,
            content,
        })? {
            Reply::Block(b) => Ok(*b),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Deletes a block; `false` if there was none.
    pub fn delete_block(&self, actor: &str, id: Uuid) -> Result<bool> {
        match self.submit(Op::DeleteBlock {
            actor: actor.to_string(),
            id,
        })? {
            Reply::Deleted(d) => Ok(d),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Replaces the permissions of a block: only its owner may (for a
    /// block written before owners existed, its writers), whatever the
    /// lists say, read-only or not; anyone else is refused with
    /// [`StorageError::PermissionDenied`], audited. Version and history
    /// (the content's) stay as they are.
    pub fn set_block_permissions(
        &self,
        actor: &str,
        id: Uuid,
        permissions: crate::blocks::BlockPermissions,
    ) -> Result<Block> {
        let op = Op::SetBlockPermissions {
            actor: actor.to_string(),
            id,
            permissions,
        };
        match self.submit(op)? {
            Reply::Block(b) => Ok(*b),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// The live blocks `actor` may read (its own and those the read lists
    /// name it in), of one class or all, by name.
    pub fn list_blocks(&self, actor: &str, class: Option<&BlockClass>) -> Result<Vec<Block>> {
        contain("listing blocks", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(BLOCKS)?;
            let now = now_ms();
            let mut out = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                let b: Block = decode(v.value(), "block")?;
                if !b.expired(now) && b.readable_by(actor) && class.is_none_or(|c| *c == b.class) {
                    out.push(b);
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// Audit entries with `seq > after`, at most `limit`.
    pub fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read_log(AUDIT, after, limit, "audit entry")
    }

    /// The block sections nearest in meaning to `text` (the built-in text
    /// encoder on both sides) that `actor` may read, best first. A
    /// documentation block is found by its section, not only as a whole.
    pub fn semantic_query(
        &self,
        actor: &str,
        text: &str,
        k: usize,
        class: Option<&BlockClass>,
    ) -> Result<Vec<BlockHit>> {
        if k > MAX_RESULTS {
            return Err(StorageError::InvalidQuery(format!(
                "k = {k} exceeds {MAX_RESULTS}"
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let q = self.shared.encoder.encode(text);
        let filter = class.map(|c| Filter::Eq("class".into(), serde_json::json!(c.label())));
        let mut want = k.saturating_mul(4).max(16);
        loop {
            let hits = self.shared.blocks_index.search(&Query {
                vector: &q,
                want,
                filter: filter.as_ref(),
                region: None,
                exact: false,
                ef: None,
            })?;
            let exhausted = hits.len() < want;
            let mut out = Vec::new();
            let mut blocks: HashMap<Uuid, Option<Block>> = HashMap::new();
            let now = now_ms();
            for h in hits {
                let Some(meta) = self.shared.blocks_index.metadata_of(h.id) else {
                    continue;
                };
                let Some(bid) = meta
                    .get("block")
                    .and_then(|v| v.as_str())
                    .and_then(|s| Uuid::parse_str(s).ok())
                else {
                    continue;
                };
                let b = match blocks.entry(bid) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(self.load_block(bid)?),
                };
                let Some(b) = b else {
                    continue;
                };
                if b.expired(now) || !b.readable_by(actor) {
                    continue;
                }
                out.push(BlockHit {
                    block_id: bid,
                    name: b.name.clone(),
                    section: meta
                        .get("heading")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    text: meta
                        .get("text")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    distance: h.distance,
                    score: 1.0 / (1.0 + h.distance),
                    rank: out.len(),
                });
                if out.len() == k {
                    return Ok(out);
                }
            }
            if exhausted || want >= MAX_RESULTS {
                return Ok(out);
            }
            want = want.saturating_mul(4).min(MAX_RESULTS);
        }
    }
}

impl Shared {
    /// Index entries for a block's sections (remembered for unindexing).
    pub(super) fn section_entries(&self, b: &Block) -> Vec<Entry> {
        let mut out = Vec::new();
        for (i, sec) in sections(b).into_iter().enumerate() {
            let mut metadata = crate::record::Metadata::new();
            metadata.insert("block".into(), serde_json::json!(b.id.to_string()));
            metadata.insert("section".into(), serde_json::json!(i));
            metadata.insert("heading".into(), serde_json::json!(sec.heading));
            metadata.insert("class".into(), serde_json::json!(b.class.label()));
            metadata.insert("text".into(), serde_json::json!(sec.text));
            out.push(Entry::new(
                Uuid::now_v7(),
                self.encoder.encode(&sec.text),
                None,
                Arc::new(metadata.into()),
            ));
        }
        lock(&self.block_sections).insert(b.id, out.iter().map(|e| e.id).collect());
        out
    }

    pub(super) fn unindex_block(&self, id: Uuid) {
        if let Some(ids) = lock(&self.block_sections).remove(&id) {
            for s in ids {
                self.blocks_index.remove(s);
            }
        }
    }
}
