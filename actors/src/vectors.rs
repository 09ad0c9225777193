//! The vector database as a model sees it: every operation goes to the
//! actor of the namespace it touches, which checks the caller's access and
//! takes its rate tokens before the storage work runs (off the actor's
//! thread). Operations by id find the namespace from the stored record.

use std::collections::BTreeSet;
use std::time::Instant;

use actix::prelude::*;
use hvs_storage::{
    Filter, NewVector, SearchHit, SearchQuery, StorageError, Store, VectorRecord, VectorUpdate,
};
use uuid::Uuid;

use crate::admission::Admission;
use crate::error::{ActorError, Result};
use crate::hub::ModelRef;
use crate::namespace::{AccessKind, Caller, Check, Info, NamespaceActor, NamespaceInfo, blocking};

/// What a namespace operation costs the caller against its contract.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cost {
    /// One query (`max_queries_per_second`).
    Query,
    /// `n` vectors written (`max_vectors_per_second`) of `bytes` in all
    /// (the storage quota).
    Vectors { n: u64, bytes: u64 },
}

type Work<T> = Box<dyn FnOnce(&Store, &str) -> Result<T> + Send>;

/// Runs storage work in the namespace once the caller may `kind` it and has
/// paid `cost`.
pub(crate) struct InNamespace<T> {
    pub(crate) caller: Caller,
    /// `None`: work that restricts itself to what the caller holds anyway
    /// (its own messages).
    pub(crate) kind: Option<AccessKind>,
    pub(crate) cost: Cost,
    pub(crate) work: Work<T>,
}

impl<T: Send + 'static> Message for InNamespace<T> {
    type Result = Result<T>;
}

impl<T: Send + 'static> Handler<InNamespace<T>> for NamespaceActor {
    type Result = ResponseFuture<Result<T>>;

    fn handle(&mut self, msg: InNamespace<T>, _: &mut Self::Context) -> Self::Result {
        let checked = match msg.kind {
            Some(kind) => self.check(&msg.caller, kind),
            None => Ok(()),
        };
        let ready = checked.and_then(|()| pay(&msg.caller, msg.cost));
        let (store, name) = (self.store.clone(), self.info.name.clone());
        let work = msg.work;
        Box::pin(async move {
            let admission = ready?;
            let done = blocking(move || work(&store, &name)).await?;
            // Written: what it cost is spent (dropped on failure, it is
            // given back).
            if let Some(a) = admission {
                a.commit();
            }
            Ok(done)
        })
    }
}

/// Takes what `cost` asks of a model's limits, held until the work commits.
pub(crate) fn pay(caller: &Caller, cost: Cost) -> Result<Option<Admission>> {
    let Caller::Model(p) = caller else {
        return Ok(None);
    };
    match cost {
        Cost::Query => {
            p.limiter.acquire_queries(1, Instant::now())?;
            Ok(None)
        }
        Cost::Vectors { n, bytes } => {
            let mut admission = Admission::new(p.clone());
            admission.take_vectors(n)?;
            admission.charge(bytes)?;
            Ok(Some(admission))
        }
    }
}

/// A search's hits with their records (hits whose record went meanwhile
/// are left out).
pub type RecordHits = Vec<(SearchHit, VectorRecord)>;

/// The records of a search's hits. A message's vector is indexed in its
/// namespace too: its hit carries what the index sees of it (its metadata
/// with `hvs_kind: "message"`, `from` and `to`).
pub(crate) fn with_records(store: &Store, hits: Vec<SearchHit>) -> Result<RecordHits> {
    let ids: Vec<Uuid> = hits.iter().map(|h| h.id).collect();
    let records = store.batch_retrieve_vectors(&ids)?;
    let mut out = Vec::with_capacity(hits.len());
    for (h, r) in hits.into_iter().zip(records) {
        let record = match r {
            Some(r) => r,
            None => match store.get_message(h.id)? {
                Some(m) => VectorRecord {
                    id: m.id,
                    namespace: m.namespace.clone(),
                    data: m.vector.clone(),
                    region: None,
                    metadata: m.index_metadata(),
                    version: 1,
                    timestamp_ms: m.sent_ms,
                    hlc: 0,
                    clock: Default::default(),
                },
                // Gone since the search.
                None => continue,
            },
        };
        out.push((h, record));
    }
    Ok(out)
}

/// `query` narrowed to the messages `model` sent or received.
fn own_messages(model: &str, query: &SearchQuery) -> SearchQuery {
    let mine = Filter::And(vec![
        Filter::Eq("hvs_kind".into(), serde_json::json!("message")),
        Filter::Or(vec![
            Filter::Eq("from".into(), serde_json::json!(model)),
            Filter::Contains("to".into(), serde_json::json!(model)),
        ]),
    ]);
    let mut q = query.clone();
    q.filter = Some(match query.filter.clone() {
        Some(f) => Filter::And(vec![mine, f]),
        None => mine,
    });
    q
}

fn vector_bytes(vectors: &[NewVector]) -> u64 {
    vectors.iter().map(|v| 8 * v.data.len() as u64).sum()
}

impl ModelRef {
    async fn in_namespace<T: Send + 'static>(
        &self,
        namespace: &str,
        kind: AccessKind,
        cost: Cost,
        work: impl FnOnce(&Store, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.live()?;
        let msg = InNamespace {
            caller: self.me(),
            kind: Some(kind),
            cost,
            work: Box::new(work),
        };
        self.hub.ns(namespace)?.send(msg).await?
    }

    /// Stores many vectors in one namespace, all or none, in order.
    pub async fn batch_store_vectors(
        &self,
        namespace: &str,
        mut vectors: Vec<NewVector>,
    ) -> Result<Vec<VectorRecord>> {
        let cost = Cost::Vectors {
            n: vectors.len() as u64,
            bytes: vector_bytes(&vectors),
        };
        self.in_namespace(namespace, AccessKind::Write, cost, move |store, ns| {
            for v in &mut vectors {
                v.namespace = ns.to_string();
            }
            Ok(store.batch_store_vectors(vectors)?)
        })
        .await
    }

    /// Records by id, `None` for those not stored. Each namespace they are
    /// in must be readable by this model.
    pub async fn retrieve_vectors(&self, ids: &[Uuid]) -> Result<Vec<Option<VectorRecord>>> {
        self.live()?;
        let limiter = &self.entry.profile.limiter;
        limiter.acquire_queries(1, Instant::now())?;
        let store = self.hub.inner.store.clone();
        let ids = ids.to_vec();
        let records = blocking(move || Ok(store.batch_retrieve_vectors(&ids)?)).await?;
        let spaces: BTreeSet<&str> = records
            .iter()
            .flatten()
            .map(|r| r.namespace.as_str())
            .collect();
        for ns in spaces {
            self.check_access(ns, AccessKind::Read).await?;
        }
        Ok(records)
    }

    /// The namespace a stored vector lives in.
    async fn namespace_of(&self, id: Uuid) -> Result<String> {
        let store = self.hub.inner.store.clone();
        blocking(move || match store.retrieve_vector(id)? {
            Some(r) => Ok(r.namespace),
            None => Err(StorageError::VectorNotFound(id).into()),
        })
        .await
    }

    /// Changes a vector (coordinates, region, metadata; only if its version
    /// is `update.if_version` when that is set): version + 1.
    pub async fn update_vector(&self, id: Uuid, update: VectorUpdate) -> Result<VectorRecord> {
        let ns = self.namespace_of(id).await?;
        let bytes = update.data.as_ref().map_or(0, |d| 8 * d.len() as u64);
        let cost = Cost::Vectors { n: 1, bytes };
        self.in_namespace(&ns, AccessKind::Write, cost, move |store, _| {
            Ok(store.update_vector(id, update)?)
        })
        .await
    }

    /// Deletes vectors by id; `false` for those not stored. Each namespace
    /// they are in must be writable by this model.
    pub async fn delete_vectors(&self, ids: &[Uuid]) -> Result<Vec<bool>> {
        let found = {
            let store = self.hub.inner.store.clone();
            let ids = ids.to_vec();
            blocking(move || Ok(store.batch_retrieve_vectors(&ids)?)).await?
        };
        let spaces: BTreeSet<&str> = found
            .iter()
            .flatten()
            .map(|r| r.namespace.as_str())
            .collect();
        for ns in spaces {
            self.check_access(ns, AccessKind::Write).await?;
        }
        self.live()?;
        let store = self.hub.inner.store.clone();
        let ids = ids.to_vec();
        blocking(move || Ok(store.delete_vectors(&ids)?)).await
    }

    /// Deletes every vector of `namespace` whose metadata matches; answers
    /// how many.
    pub async fn delete_by_filter(&self, namespace: &str, filter: Filter) -> Result<usize> {
        let cost = Cost::Vectors { n: 1, bytes: 0 };
        self.in_namespace(namespace, AccessKind::Write, cost, move |store, ns| {
            Ok(store.delete_by_filter(ns, &filter)?)
        })
        .await
    }

    /// How many vectors `namespace` holds (that `filter` matches).
    pub async fn count(&self, namespace: &str, filter: Option<Filter>) -> Result<usize> {
        self.in_namespace(
            namespace,
            AccessKind::Read,
            Cost::Query,
            move |store, ns| Ok(store.count(ns, filter.as_ref())?),
        )
        .await
    }

    /// A page of `namespace` in id order after `after`, and the cursor of
    /// the next page (`None` at the end).
    pub async fn scroll(
        &self,
        namespace: &str,
        after: Option<Uuid>,
        limit: usize,
        filter: Option<Filter>,
    ) -> Result<(Vec<VectorRecord>, Option<Uuid>)> {
        self.in_namespace(
            namespace,
            AccessKind::Read,
            Cost::Query,
            move |store, ns| Ok(store.scroll(ns, after, limit, filter.as_ref())?),
        )
        .await
    }

    /// A search whose hits come with their records (metadata, region,
    /// coordinates). In a namespace this model may not read, the search
    /// still finds the messages it sent or received there (it holds them
    /// already), and nothing else; when it finds none of those, the
    /// refusal stands.
    pub async fn search_records(&self, query: SearchQuery) -> Result<RecordHits> {
        let ns = query.namespace.clone();
        let own = own_messages(self.id(), &query);
        let work = |q: SearchQuery| {
            move |store: &Store, ns: &str| {
                let mut q = q;
                q.namespace = ns.to_string();
                with_records(store, store.semantic_search(&q)?)
            }
        };
        match self
            .in_namespace(&ns, AccessKind::Read, Cost::Query, work(query))
            .await
        {
            Err(denied @ ActorError::PermissionDenied { .. }) => {
                let msg = InNamespace {
                    caller: self.me(),
                    kind: None,
                    cost: Cost::Query,
                    work: Box::new(work(own)),
                };
                // None of its own: the refusal stands.
                match self.hub.ns(&ns)?.send(msg).await?? {
                    hits if hits.is_empty() => Err(denied),
                    hits => Ok(hits),
                }
            }
            r => r,
        }
    }

    /// Every vector within `radius` of the query point, nearest first, at
    /// most `query.k`, with their records.
    pub async fn range_search(&self, query: SearchQuery, radius: f64) -> Result<RecordHits> {
        let ns = query.namespace.clone();
        self.in_namespace(&ns, AccessKind::Read, Cost::Query, move |store, ns| {
            let mut q = query;
            q.namespace = ns.to_string();
            with_records(store, store.range_search(&q, radius)?)
        })
        .await
    }

    /// Many searches, run at once; any refusal fails the whole batch.
    pub async fn batch_search(&self, queries: Vec<SearchQuery>) -> Result<Vec<RecordHits>> {
        let searches = queries.into_iter().map(|q| self.search_records(q));
        futures_util::future::try_join_all(searches).await
    }

    /// The namespaces this model may read, with how many vectors each
    /// holds, by name.
    pub async fn list_namespaces(&self) -> Result<Vec<(NamespaceInfo, usize)>> {
        self.live()?;
        let names = self.hub.inner.registry.namespace_names();
        let mut out = Vec::new();
        for name in names {
            let Ok(ns) = self.hub.ns(&name) else { continue };
            if ns.send(Check(self.me(), AccessKind::Read)).await?.is_err() {
                continue;
            }
            out.push(ns.send(Info).await?);
        }
        let store = self.hub.inner.store.clone();
        blocking(move || {
            let stats = store.get_stats()?;
            Ok(out
                .into_iter()
                .map(|info| {
                    let n = stats.namespaces.get(&info.name).map_or(0, |s| s.vectors);
                    (info, n)
                })
                .collect())
        })
        .await
    }

    /// Deletes a namespace this model owns, with every vector in it; a
    /// model's home namespace cannot be deleted.
    pub async fn delete_namespace(&self, name: &str) -> Result<bool> {
        self.live()?;
        if self.hub.ns(name).is_err() {
            return Ok(false);
        }
        self.hub.delete_namespace(name, self.id()).await
    }
}
