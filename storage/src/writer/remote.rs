//! Applying changes from another instance's feed: idempotent (a version
//! already here, or older than the one here, changes nothing and logs
//! nothing, so two-way jobs do not echo), with conflicts settled by the
//! job's strategy and written to the audit log.

use std::collections::HashMap;

use hvs_geometry::{AnyManifold, Manifold};
use hvs_types::ConflictStrategy;
use redb::ReadableTable;
use uuid::Uuid;

use super::{Applied, Reply, Step, Tables, done};
use crate::blocks::AuditAction;
use crate::error::{Result, StorageError};
use crate::record::now_ms;
use crate::record::{Change, ChangeBody, ChangeKind, SpaceConfig, VectorRecord, decode};
use crate::sync::{Decision, Resolution, Tombstone, Version, decide, next_hlc, resolve};

/// What applying one remote change did.
#[derive(Debug)]
pub enum ApplyOutcome {
    /// Written here (and logged in this instance's feed).
    Applied,
    /// Already here, or older than what is here: nothing written.
    Unchanged,
    /// Both sides had changed it; settled as said (and audited).
    Conflict(Resolution),
    /// Not applicable here (no such namespace, another manifold, a point
    /// off the manifold, a kind sync does not apply); nothing written.
    Refused(StorageError),
}

impl Tables<'_> {
    /// Applies each change in order; one change's refusal refuses it alone.
    pub(super) fn apply_remote(
        &mut self,
        job: &str,
        strategy: ConflictStrategy,
        changes: &[Change],
        mirror: bool,
    ) -> Step {
        let mut manifolds = HashMap::new();
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut applied = Vec::new();
        for c in changes {
            // The clock moves past what it hears, but never more than a
            // minute past this machine's: a peer whose clock runs far ahead
            // cannot drag this one along.
            self.hlc = self.hlc.max(c.hlc.min(next_hlc(0, now_ms() + 60_000)));
            let outcome = match (&c.kind, &c.body) {
                (ChangeKind::CreateNamespace, Some(ChangeBody::Namespace(config))) => {
                    self.remote_namespace(config, &mut applied)?
                }
                (ChangeKind::DeleteNamespace, _) => {
                    manifolds.remove(&c.namespace);
                    self.remote_drop_namespace(&c.namespace, &mut applied)?
                }
                (_, Some(ChangeBody::Vector(r))) => {
                    let remote = Version::Live(r.clone());
                    self.remote_vector(job, strategy, remote, &mut manifolds, &mut applied)?
                }
                (_, Some(ChangeBody::Tombstone(t))) => {
                    let remote = Version::Gone(t.clone());
                    self.remote_vector(job, strategy, remote, &mut manifolds, &mut applied)?
                }
                (
                    ChangeKind::CatalogPut,
                    Some(ChangeBody::Catalog {
                        kind,
                        key,
                        value: Some(value),
                    }),
                ) if !c.namespace.is_empty() && !mirror => {
                    self.remote_catalog(&c.namespace, kind, key, value)?
                }
                _ if mirror => self.mirror_other(c, &mut applied)?,
                (kind, _) => ApplyOutcome::Refused(StorageError::InvalidQuery(format!(
                    "a sync job does not apply {kind:?} changes"
                ))),
            };
            outcomes.push(outcome);
        }
        done(Reply::Outcomes(outcomes), applied)
    }

    /// A mirror's change other than namespaces and vectors, applied as the
    /// source left it (each idempotent: applied twice, it changes nothing
    /// the second time).
    fn mirror_other(&mut self, c: &Change, applied: &mut Vec<Applied>) -> Result<ApplyOutcome> {
        let outcome = match (&c.kind, &c.body, c.id) {
            (ChangeKind::PutMessage, Some(ChangeBody::Message(m)), _) => {
                if self.messages.open()?.get(m.id.as_u128())?.is_some() {
                    return Ok(ApplyOutcome::Unchanged);
                }
                self.put_messages(&[std::sync::Arc::new((**m).clone())], false)?
            }
            (ChangeKind::Settle, Some(ChangeBody::Settled(s)), _) => {
                let key = (s.message.as_u128(), s.recipient.as_str());
                if self.settled.open()?.get(key)?.is_some() {
                    return Ok(ApplyOutcome::Unchanged);
                }
                self.settle(std::slice::from_ref(s))?
            }
            (ChangeKind::ExpireMessage, _, Some(id)) => {
                let Some(expires) = self.message_expiry(id)? else {
                    return Ok(ApplyOutcome::Unchanged);
                };
                self.purge_messages(&[(expires, id)])?
            }
            (ChangeKind::PutBlock, Some(ChangeBody::Block(b)), _) => self.mirror_block(b)?,
            (ChangeKind::DeleteBlock, _, Some(id)) => self.mirror_block_deletion(id)?,
            (
                ChangeKind::CatalogPut | ChangeKind::CatalogDelete,
                Some(ChangeBody::Catalog { kind, key, value }),
                _,
            ) if !kind.starts_with('_') => {
                self.mirror_catalog(&c.namespace, kind, key, value.as_ref())?
            }
            (kind, _, _) => {
                return Ok(ApplyOutcome::Refused(StorageError::InvalidQuery(format!(
                    "a mirror does not apply {kind:?} changes without their body"
                ))));
            }
        };
        Ok(match outcome {
            Ok((_, more)) => {
                applied.extend(more);
                ApplyOutcome::Applied
            }
            Err(e) => ApplyOutcome::Refused(e),
        })
    }

    /// When stored message `id` expires (`None`: not stored here).
    fn message_expiry(&mut self, id: Uuid) -> Result<Option<u64>> {
        let Some(row) = self.messages.open()?.get(id.as_u128())? else {
            return Ok(None);
        };
        let m: crate::MessageRecord = decode(row.value(), "message")?;
        Ok(Some(m.expires_ms.unwrap_or(0)))
    }

    fn mirror_block(&mut self, b: &crate::Block) -> Result<super::OpOutcome> {
        let mut applied = Vec::new();
        if let Some(row) = self.blocks.open()?.get(b.id.as_u128())? {
            let old: crate::Block = decode(row.value(), "block")?;
            drop(row);
            if old.version >= b.version && old.name == b.name {
                return Ok(Ok((Reply::Done, vec![])));
            }
            self.names.open()?.remove(old.name.as_str())?;
        }
        if let Some(other) = self.names.open()?.get(b.name.as_str())?.map(|v| v.value())
            && other != b.id.as_u128()
        {
            self.blocks.open()?.remove(other)?;
            applied.push(Applied::UnindexBlock(Uuid::from_u128(other)));
        }
        self.blocks
            .open()?
            .insert(b.id.as_u128(), crate::record::encode(b)?.as_slice())?;
        self.names.open()?.insert(b.name.as_str(), b.id.as_u128())?;
        self.log_block(b)?;
        applied.push(Applied::IndexBlock(b.clone()));
        Ok(Ok((Reply::Done, applied)))
    }

    fn mirror_block_deletion(&mut self, id: Uuid) -> Result<super::OpOutcome> {
        let Some(row) = self.blocks.open()?.get(id.as_u128())? else {
            return Ok(Ok((Reply::Done, vec![])));
        };
        let b: crate::Block = decode(row.value(), "block")?;
        drop(row);
        self.blocks.open()?.remove(id.as_u128())?;
        self.names.open()?.remove(b.name.as_str())?;
        self.log(ChangeKind::DeleteBlock, "", Some(id), b.version, None)?;
        Ok(Ok((Reply::Done, vec![Applied::UnindexBlock(id)])))
    }

    fn mirror_catalog(
        &mut self,
        namespace: &str,
        kind: &str,
        key: &str,
        value: Option<&Vec<u8>>,
    ) -> Result<super::OpOutcome> {
        let here = self
            .catalog
            .open()?
            .get((kind, key))?
            .map(|v| v.value().to_vec());
        if here.as_ref() == value {
            return Ok(Ok((Reply::Done, vec![])));
        }
        match value {
            Some(v) => {
                self.catalog.open()?.insert((kind, key), v.as_slice())?;
            }
            None => {
                self.catalog.open()?.remove((kind, key))?;
            }
        }
        self.log_catalog(namespace, kind, key, value)?;
        Ok(Ok((Reply::Done, vec![])))
    }

    /// Writes a namespace's catalog record (its access list, say) unless
    /// one of that key is here already: the first record wins, so records
    /// that each side changes never echo back and forth.
    fn remote_catalog(
        &mut self,
        namespace: &str,
        kind: &str,
        key: &str,
        value: &[u8],
    ) -> Result<ApplyOutcome> {
        if !self.space_exists(namespace)? {
            return Ok(ApplyOutcome::Refused(StorageError::NamespaceNotFound(
                namespace.to_string(),
            )));
        }
        if kind.starts_with('_') || self.catalog.open()?.get((kind, key))?.is_some() {
            return Ok(ApplyOutcome::Unchanged);
        }
        self.catalog.open()?.insert((kind, key), value)?;
        self.log_catalog(namespace, kind, key, Some(&value.to_vec()))?;
        Ok(ApplyOutcome::Applied)
    }

    /// Creates the namespace unless it exists with the same manifold.
    fn remote_namespace(
        &mut self,
        config: &SpaceConfig,
        applied: &mut Vec<Applied>,
    ) -> Result<ApplyOutcome> {
        if let Some(local) = self.space_config(&config.name)? {
            return Ok(if local.geometry == config.geometry {
                ApplyOutcome::Unchanged
            } else {
                ApplyOutcome::Refused(StorageError::GeometryMismatch {
                    namespace: config.name.clone(),
                    here: spec_text(&local.geometry),
                    there: spec_text(&config.geometry),
                })
            });
        }
        if let Err(e) = config.geometry.build() {
            return Ok(ApplyOutcome::Refused(StorageError::InvalidGeometry(e)));
        }
        Ok(match self.create_space(config)? {
            Ok((_, a)) => {
                applied.extend(a);
                ApplyOutcome::Applied
            }
            Err(e) => ApplyOutcome::Refused(e),
        })
    }

    fn remote_drop_namespace(
        &mut self,
        name: &str,
        applied: &mut Vec<Applied>,
    ) -> Result<ApplyOutcome> {
        Ok(match self.delete_space(name)? {
            Ok((super::Reply::Deleted(true), a)) => {
                applied.extend(a);
                ApplyOutcome::Applied
            }
            Ok(_) => ApplyOutcome::Unchanged,
            Err(e) => ApplyOutcome::Refused(e),
        })
    }

    /// The namespace's configuration in this transaction.
    fn space_config(&mut self, name: &str) -> Result<Option<SpaceConfig>> {
        let bytes = self.spaces.open()?.get(name)?.map(|v| v.value().to_vec());
        bytes
            .map(|b| decode::<SpaceConfig>(&b, "namespace"))
            .transpose()
    }

    /// The manifold of `namespace`, built once per batch.
    fn manifold_of<'m>(
        &mut self,
        namespace: &str,
        manifolds: &'m mut HashMap<String, AnyManifold>,
    ) -> Result<std::result::Result<&'m AnyManifold, StorageError>> {
        if !manifolds.contains_key(namespace) {
            let Some(config) = self.space_config(namespace)? else {
                return Ok(Err(StorageError::NamespaceNotFound(namespace.to_string())));
            };
            match config.geometry.build() {
                Ok(m) => manifolds.insert(namespace.to_string(), m),
                Err(e) => return Ok(Err(StorageError::InvalidGeometry(e))),
            };
        }
        Ok(manifolds
            .get(namespace)
            .ok_or_else(|| StorageError::NamespaceNotFound(namespace.to_string())))
    }

    /// This side's version of vector `id`: its row, else its tombstone.
    fn local_version(&mut self, id: Uuid) -> Result<Option<Version>> {
        if let Some(v) = self.vectors.open()?.get(id.as_u128())? {
            return Ok(Some(Version::Live(decode(v.value(), "vector record")?)));
        }
        if let Some(v) = self.tombstones.open()?.get(id.as_u128())? {
            return Ok(Some(Version::Gone(decode(v.value(), "tombstone")?)));
        }
        Ok(None)
    }

    fn remote_vector(
        &mut self,
        job: &str,
        strategy: ConflictStrategy,
        remote: Version,
        manifolds: &mut HashMap<String, AnyManifold>,
        applied: &mut Vec<Applied>,
    ) -> Result<ApplyOutcome> {
        let (id, namespace) = match &remote {
            Version::Live(r) => (r.id, r.namespace.clone()),
            Version::Gone(t) => (t.id, t.namespace.clone()),
        };
        let manifold = match self.manifold_of(&namespace, manifolds)? {
            Ok(m) => m.clone(),
            Err(e) => return Ok(ApplyOutcome::Refused(e)),
        };
        if let Version::Live(r) = &remote
            && let Err(source) = manifold.check(&r.data)
        {
            return Ok(ApplyOutcome::Refused(StorageError::InvalidVector {
                namespace,
                source,
            }));
        }
        let local = self.local_version(id)?;
        if let Some(l) = &local
            && l.namespace() != namespace
        {
            return Ok(ApplyOutcome::Refused(StorageError::InvalidQuery(format!(
                "vector {id} is in namespace {:?} here, not {namespace:?}",
                l.namespace()
            ))));
        }
        let (outcome, write) = match decide(local.as_ref(), &remote) {
            Decision::Keep => (ApplyOutcome::Unchanged, None),
            Decision::Take => (ApplyOutcome::Applied, Some(remote.clone())),
            Decision::Conflict => {
                let Some(l) = &local else {
                    return Ok(ApplyOutcome::Unchanged);
                };
                let (resolution, write) = resolve(strategy, l, &remote, &manifold);
                self.audit_conflict(job, strategy, l, &remote, resolution)?;
                (ApplyOutcome::Conflict(resolution), write)
            }
        };
        if let Some(v) = write {
            applied.push(self.write_version(local.as_ref(), v)?);
        }
        Ok(outcome)
    }

    /// Writes a version that came from elsewhere (or was made of two).
    fn write_version(&mut self, local: Option<&Version>, v: Version) -> Result<Applied> {
        match v {
            Version::Live(r) => {
                let kind = match local {
                    Some(Version::Live(_)) => ChangeKind::Update,
                    _ => ChangeKind::Insert,
                };
                self.put_vector(kind, &r)?;
                Ok(Applied::Upsert(r))
            }
            Version::Gone(t) => self.put_tombstone(t),
        }
    }

    fn audit_conflict(
        &mut self,
        job: &str,
        strategy: ConflictStrategy,
        local: &Version,
        remote: &Version,
        resolution: Resolution,
    ) -> Result<()> {
        let outcome = format!(
            "conflict on vector {} in {:?}: target {} vs source {}; {} {}",
            local.id(),
            local.namespace(),
            local.describe(),
            remote.describe(),
            strategy.name(),
            resolution.name(),
        );
        self.audit(
            job,
            AuditAction::SyncConflict,
            Some(local.id()),
            Some(local.namespace()),
            outcome,
        )
    }
}

/// A manifold as its JSON, for messages.
fn spec_text(g: &crate::record::GeometrySpec) -> String {
    serde_json::to_string(g).unwrap_or_else(|_| format!("{g:?}"))
}

impl Version {
    fn id(&self) -> Uuid {
        match self {
            Self::Live(r) => r.id,
            Self::Gone(t) => t.id,
        }
    }

    fn namespace(&self) -> &str {
        match self {
            Self::Live(r) => &r.namespace,
            Self::Gone(t) => &t.namespace,
        }
    }

    /// `v3@<hlc>` or `deleted v4@<hlc>`, for the audit log.
    fn describe(&self) -> String {
        match self {
            Self::Live(VectorRecord { version, hlc, .. }) => format!("v{version}@{hlc}"),
            Self::Gone(Tombstone { version, hlc, .. }) => format!("deleted v{version}@{hlc}"),
        }
    }
}
