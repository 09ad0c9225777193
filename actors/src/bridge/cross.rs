//! Cross-manifold bridges: the vectors of namespace `from` carried into
//! namespace `to` (another geometry of the same intrinsic dimension)
//! through `hvs_geometry::transform` — the exact isometry between the
//! Poincaré ball and the hyperboloid of one curvature, the tangent space
//! at the origin otherwise — and queries in `from`'s coordinates run in
//! `to`, their hits carried back.
//!
//! A carried vector is a new vector of `to` (its own id) whose metadata is
//! the source's plus `hvs.bridge` (the bridge's name) and `hvs.source`
//! (the source vector's id); its region is the source's. The bridge copies
//! `from` once, then follows this instance's change feed: a source vector
//! stored, updated or deleted is carried again (its earlier copy deleted
//! first), so applying a change twice ends the same. Vectors that carry
//! `hvs.bridge` themselves are never carried on (no echo between two
//! bridges in opposite directions).

use std::collections::BTreeSet;
use std::sync::Arc;

use hvs_geometry::{AnyManifold, Manifold, transform};
use hvs_storage::{ChangeKind, NewVector, SearchQuery, Store, VectorRecord};
use hvs_types::{BridgeHit, BridgeHits, BridgeQuery, Filter};
use uuid::Uuid;

use super::{check_point, manifold, rank};
use crate::error::{ActorError, Result};

/// Metadata key naming the bridge that carried a vector.
pub(crate) const BRIDGE_KEY: &str = "hvs.bridge";
/// Metadata key naming the source vector's id.
pub(crate) const SOURCE_KEY: &str = "hvs.source";

/// Changes read from the feed per step.
const STEP: usize = 512;
/// Vectors carried per commit of the first copy.
const COPY_BATCH: usize = 1024;

/// Refuses a bridge between namespaces that do not exist, are the same,
/// or have different intrinsic dimensions.
pub(super) fn check(store: &Store, from: &str, to: &str) -> Result<()> {
    if from == to {
        return Err(ActorError::InvalidRequest(format!(
            "a cross-manifold bridge joins two namespaces; {from:?} is both"
        )));
    }
    let (a, b) = manifolds(store, from, to)?;
    if a.dim() != b.dim() {
        return Err(ActorError::Geometry(
            hvs_geometry::GeometryError::IncompatibleManifolds {
                from: a.name(),
                to: b.name(),
                reason: format!("intrinsic dimensions differ: {} vs {}", a.dim(), b.dim()),
            },
        ));
    }
    Ok(())
}

fn manifolds(store: &Store, from: &str, to: &str) -> Result<(AnyManifold, AnyManifold)> {
    let of = |name: &str| -> Result<AnyManifold> {
        let config = store.namespace(name).map_err(|e| match e {
            hvs_storage::StorageError::NamespaceNotFound(_) => {
                ActorError::UnknownNamespace(name.to_string())
            }
            e => e.into(),
        })?;
        manifold(&config.geometry)
    };
    Ok((of(from)?, of(to)?))
}

/// What one step carried.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// The feed position after the step.
    pub(super) position: u64,
    pub(super) carried: u64,
    pub(super) refused: u64,
    /// The latest refusal of this step.
    pub(super) last_error: Option<String>,
}

/// One cross-manifold bridge's carrying.
pub(super) struct Carrier {
    pub(super) bridge: String,
    pub(super) from: String,
    pub(super) to: String,
}

impl Carrier {
    fn carried_by_me(&self) -> Filter {
        Filter::Eq(BRIDGE_KEY.into(), self.bridge.clone().into())
    }

    /// Carries every vector of `from` (after removing what this bridge
    /// carried before, if a first copy was cut short); the position is
    /// the feed's end before the copy began, so changes made meanwhile are
    /// carried again by [`follow`](Self::follow).
    pub(super) fn copy_all(&self, store: &Arc<Store>) -> Result<Report> {
        let position = store.last_change();
        let (a, b) = manifolds(store, &self.from, &self.to)?;
        store.delete_by_filter(&self.to, &self.carried_by_me())?;
        let mut report = Report {
            position,
            ..Report::default()
        };
        let records = store.iter_namespace(&self.from)?;
        for chunk in records.chunks(COPY_BATCH) {
            self.carry(store, &a, &b, chunk.iter(), &mut report)?;
        }
        Ok(report)
    }

    /// Carries the changes of `from` after `position` (at most a step's).
    pub(super) fn follow(&self, store: &Arc<Store>, position: u64) -> Result<Report> {
        let changes = store.changes_since(position, STEP)?;
        let mut report = Report {
            position: changes.last().map_or(position, |c| c.seq),
            ..Report::default()
        };
        let ids: BTreeSet<Uuid> = changes
            .iter()
            .filter(|c| c.namespace == self.from)
            .filter(|c| {
                matches!(
                    c.kind,
                    ChangeKind::Insert | ChangeKind::Update | ChangeKind::Delete
                )
            })
            .filter_map(|c| c.id)
            .collect();
        if ids.is_empty() {
            return Ok(report);
        }
        let (a, b) = match manifolds(store, &self.from, &self.to) {
            Ok(m) => m,
            Err(e) => {
                // A namespace of the bridge is gone: nothing to carry.
                report.last_error = Some(format!("{}: {e}", e.code()));
                return Ok(report);
            }
        };
        let ids: Vec<Uuid> = ids.into_iter().collect();
        let sources: Vec<serde_json::Value> = ids.iter().map(|id| id.to_string().into()).collect();
        let earlier = Filter::And(vec![
            self.carried_by_me(),
            Filter::In(SOURCE_KEY.into(), sources),
        ]);
        store.delete_by_filter(&self.to, &earlier)?;
        let now = store.batch_retrieve_vectors(&ids)?;
        let live = now.iter().flatten().filter(|r| r.namespace == self.from);
        self.carry(store, &a, &b, live, &mut report)?;
        Ok(report)
    }

    /// Transforms and stores `records` in one commit; those the transform
    /// refuses are counted.
    fn carry<'a>(
        &self,
        store: &Store,
        a: &AnyManifold,
        b: &AnyManifold,
        records: impl Iterator<Item = &'a VectorRecord>,
        report: &mut Report,
    ) -> Result<()> {
        let mut out = Vec::new();
        for r in records {
            if r.metadata.contains_key(BRIDGE_KEY) {
                continue;
            }
            match transform(&r.data, a, b) {
                Ok(data) => {
                    let mut metadata = r.metadata.clone();
                    metadata.insert(BRIDGE_KEY.into(), self.bridge.clone().into());
                    metadata.insert(SOURCE_KEY.into(), r.id.to_string().into());
                    out.push(NewVector {
                        namespace: self.to.clone(),
                        data,
                        region: r.region.clone(),
                        metadata,
                    });
                }
                Err(e) => {
                    report.refused += 1;
                    report.last_error = Some(format!("vector {}: {}: {e}", r.id, e.code()));
                }
            }
        }
        if !out.is_empty() {
            report.carried += store.batch_store_vectors(out)?.len() as u64;
        }
        Ok(())
    }
}

/// A query in `from`'s coordinates run in `to`: the query carried into
/// `to`, its `k` nearest there carried back, ranked by their distance to
/// the query on `from`'s manifold (hits that cannot be carried back are
/// left out).
pub(super) fn search(
    store: &Store,
    from: &str,
    to: &str,
    query: &BridgeQuery,
    instance: &str,
) -> Result<BridgeHits> {
    let (a, b) = manifolds(store, from, to)?;
    check_point(&a, &query.vector)?;
    let mut q = SearchQuery::new(to, transform(&query.vector, &a, &b)?, query.k);
    q.filter = query.filter.clone();
    let found = store.semantic_search(&q)?;
    let ids: Vec<Uuid> = found.iter().map(|h| h.id).collect();
    let mut hits = Vec::with_capacity(ids.len());
    for r in store.batch_retrieve_vectors(&ids)?.into_iter().flatten() {
        let Ok(back) = transform(&r.data, &b, &a) else {
            continue;
        };
        hits.push(BridgeHit {
            id: r.id.to_string(),
            instance: instance.to_string(),
            namespace: to.to_string(),
            distance: a.distance(&query.vector, &back)?,
            vector: back,
            metadata: r.metadata.clone(),
        });
    }
    rank(&mut hits, query.k);
    let answered = if instance.is_empty() {
        Vec::new()
    } else {
        vec![instance.to_string()]
    };
    Ok(BridgeHits {
        hits,
        answered,
        ..BridgeHits::default()
    })
}
