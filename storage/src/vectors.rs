//! Operations over many vectors of a namespace at once: deleting by id or
//! by filter, counting, scrolling in id order, and deleting the namespace.
//!
//! Reads (`count`, `scroll`) walk the namespace's ids in memory
//! (`Space::vectors`, ordered, as of the last commit answered) instead of
//! the `vectors` table, which is keyed by id across all namespaces. Deletes
//! run in the writer, inside one commit, over the rows as that commit sees
//! them (see `Tables::vectors_of`).

use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::record::{VectorRecord, decode};
use crate::store::{MAX_RESULTS, Space, Store, VECTORS, contain};
use crate::writer::{Op, Reply};
use hvs_types::Filter;

/// Ids read from memory at a time while a scroll fills its page.
const SCROLL_CHUNK: usize = 1024;

/// Refuses a filter nested deeper than a search accepts.
pub(crate) fn check_filter(filter: Option<&Filter>) -> Result<()> {
    match filter {
        Some(f) if f.depth() > 32 => Err(StorageError::InvalidQuery(
            "filter nested deeper than 32".into(),
        )),
        _ => Ok(()),
    }
}

fn unexpected() -> StorageError {
    StorageError::Io("unexpected writer reply".into())
}

impl Store {
    /// Deletes many vectors in one commit; one answer per id, in order:
    /// `false` if it was not stored (or was asked for earlier in `ids`).
    pub fn delete_vectors(&self, ids: &[Uuid]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.submit(Op::DeleteMany(ids.to_vec()))? {
            Reply::DeletedEach(each) => Ok(each),
            _ => Err(unexpected()),
        }
    }

    /// Deletes every vector of `namespace` whose metadata matches `filter`,
    /// in one commit (whatever matches when it commits); answers how many.
    /// Messages in the namespace are not touched.
    pub fn delete_by_filter(&self, namespace: &str, filter: &Filter) -> Result<usize> {
        self.space(namespace)?;
        check_filter(Some(filter))?;
        let op = Op::DeleteByFilter {
            namespace: namespace.to_string(),
            filter: filter.clone(),
        };
        match self.submit(op)? {
            Reply::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    /// How many vectors (not messages) `namespace` holds, of those matching
    /// `filter` if given, as of the last write answered.
    pub fn count(&self, namespace: &str, filter: Option<&Filter>) -> Result<usize> {
        let space = self.space(namespace)?;
        check_filter(filter)?;
        let Some(f) = filter else {
            return Ok(space.read_vectors().len());
        };
        let ids = space.read_vectors();
        Ok(space.index.count_matching(ids.iter(), f))
    }

    /// One page of `namespace`'s vectors (not messages) in id order (UUID
    /// v7: oldest first): at most `limit` of those with an id strictly
    /// after `after` (from the first if `None`) that match `filter`, and
    /// the `after` of the next page (`None` once there is none).
    ///
    /// A vector stored before the first page and not deleted before the
    /// last is returned exactly once: ids never change, and each page
    /// starts after the last id of the one before. Vectors stored during
    /// the scroll are returned if their id falls after the cursor.
    /// `limit` must be 1 to [`MAX_RESULTS`] ([`StorageError::InvalidQuery`]
    /// otherwise).
    pub fn scroll(
        &self,
        namespace: &str,
        after: Option<Uuid>,
        limit: usize,
        filter: Option<&Filter>,
    ) -> Result<(Vec<VectorRecord>, Option<Uuid>)> {
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(StorageError::InvalidQuery(format!(
                "limit {limit} is not 1 to {MAX_RESULTS}"
            )));
        }
        check_filter(filter)?;
        let space = self.space(namespace)?;
        contain("scrolling a namespace", || {
            self.scroll_inner(&space, after, limit, filter)
        })
    }

    /// Reads ids in chunks from memory and their rows from one read
    /// transaction, until `limit + 1` match (the extra one says whether
    /// there is a next page) or the ids run out.
    fn scroll_inner(
        &self,
        space: &Space,
        after: Option<Uuid>,
        limit: usize,
        filter: Option<&Filter>,
    ) -> Result<(Vec<VectorRecord>, Option<Uuid>)> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(VECTORS)?;
        let mut page = Vec::new();
        let mut from = after;
        loop {
            let ids = space.vector_ids_after(from, SCROLL_CHUNK);
            let Some(last) = ids.last().copied() else {
                return Ok((page, None));
            };
            for id in ids {
                // Absent: deleted since the ids were read.
                let Some(bytes) = table.get(id.as_u128())? else {
                    continue;
                };
                let r: VectorRecord = decode(bytes.value(), "vector record")?;
                if r.namespace != space.config.name
                    || filter.is_some_and(|f| !f.matches(&r.metadata))
                {
                    continue;
                }
                if page.len() == limit {
                    let next = page.last().map(|r: &VectorRecord| r.id);
                    return Ok((page, next));
                }
                page.push(r);
            }
            from = Some(last);
        }
    }

    /// Deletes a namespace in one commit: its configuration and every
    /// vector of it (a change-feed `Delete` each, then `DeleteNamespace`),
    /// then its index and graph dump. `false` if there was none. A
    /// namespace that stored messages still have their vectors in is
    /// refused with [`StorageError::NamespaceInUse`].
    pub fn delete_namespace(&self, name: &str) -> Result<bool> {
        match self.submit(Op::DeleteSpace(name.to_string()))? {
            Reply::Deleted(d) => Ok(d),
            _ => Err(unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{GeometrySpec, NewVector, SpaceConfig, Store, StoreConfig};

    /// The ordered ids behind `count` and `scroll` are checked, and
    /// repaired, by `verify_consistency` and `repair_index` like the index.
    #[test]
    fn the_ids_in_memory_are_verified_and_repaired_from_the_rows() {
        let s = Store::open(StoreConfig::memory()).unwrap();
        let geometry = GeometrySpec::Euclidean { dim: 2 };
        s.create_namespace(SpaceConfig::new("a", geometry)).unwrap();
        let a = s.store_vector(NewVector::new("a", vec![0.0, 1.0])).unwrap();
        s.store_vector(NewVector::new("a", vec![1.0, 0.0])).unwrap();
        let space = s.space("a").unwrap();
        space.write_vectors().remove(&a.id);
        space.write_vectors().insert(uuid::Uuid::now_v7());
        let report = s.verify_consistency().unwrap();
        assert_eq!(
            (report.consistent, report.missing, report.orphaned),
            (false, 1, 1)
        );
        assert!(s.repair_index().unwrap().consistent);
        assert_eq!(s.count("a", None).unwrap(), 2);
        assert_eq!(s.scroll("a", None, 10, None).unwrap().0[0].id, a.id);
    }
}
