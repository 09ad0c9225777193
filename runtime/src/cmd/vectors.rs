//! Namespaces, vectors and search.

use hvs_actors::{AccessKind, Grant, NamespaceOptions, RecordHits, Visibility};
use hvs_storage::{NewVector, SearchQuery, VectorRecord, VectorUpdate};

use super::Refusal;
use super::{ids, uuid, uuids};
use crate::protocol as p;
use crate::{ModelHandle, NamespaceInfo};

fn visibility(s: &str) -> Result<Visibility, Refusal> {
    match s {
        "private" => Ok(Visibility::Private),
        "shared" => Ok(Visibility::Shared),
        "public" => Ok(Visibility::Public),
        other => Err(Refusal::bad_request(format!(
            "visibility {other:?} is not one of private, shared, public"
        ))),
    }
}

fn visibility_name(v: Visibility) -> &'static str {
    match v {
        Visibility::Private => "private",
        Visibility::Shared => "shared",
        Visibility::Public => "public",
    }
}

fn wire_namespace(n: NamespaceInfo) -> p::WireNamespace {
    let grant = |g: Grant| p::WireGrant {
        read: g.read,
        write: g.write,
    };
    let datatype = n.datatype();
    p::WireNamespace {
        name: n.name,
        owner: n.owner,
        visibility: visibility_name(n.visibility).into(),
        network: n.network,
        geometry: n.geometry,
        grants: n.grants.into_iter().map(|(m, g)| (m, grant(g))).collect(),
        members: n.members,
        retention: n.retention,
        datatype,
        graph: n.graph,
    }
}

/// A stored vector as the wire shows it, with or without its coordinates.
fn wire_vector(r: VectorRecord, with_vector: bool) -> p::WireVector {
    p::WireVector {
        id: r.id.to_string(),
        namespace: r.namespace,
        vector: with_vector.then_some(r.data),
        region: r.region,
        metadata: r.metadata,
        version: r.version,
        timestamp_ms: r.timestamp_ms,
    }
}

fn wire_hits(hits: RecordHits, with_vector: bool) -> Vec<p::WireHit> {
    hits.into_iter()
        .map(|(h, r)| p::WireHit {
            id: h.id.to_string(),
            distance: h.distance,
            score: h.score,
            rank: h.rank,
            region: r.region,
            metadata: r.metadata,
            vector: with_vector.then_some(r.data),
        })
        .collect()
}

fn query(s: p::Search) -> (SearchQuery, bool) {
    let q = SearchQuery {
        namespace: s.namespace,
        vector: s.vector,
        k: s.k,
        offset: s.offset,
        filter: s.filter,
        region: s.region,
        exact: s.exact,
        ef: s.ef,
    };
    (q, s.with_vector)
}

pub(super) async fn create_namespace(
    m: ModelHandle,
    a: p::CreateNamespace,
) -> Result<p::WireNamespace, Refusal> {
    let vis = visibility(&a.visibility)?;
    let options = NamespaceOptions {
        retention: a.retention,
        datatype: a.datatype,
        graph: a.graph,
    };
    Ok(wire_namespace(
        m.create_namespace_with(&a.name, vis, a.geometry, options)
            .await?,
    ))
}

pub(super) async fn namespace_info(
    m: ModelHandle,
    a: p::NameArg,
) -> Result<p::WireNamespace, Refusal> {
    Ok(wire_namespace(m.namespace_info(&a.name).await?))
}

pub(super) async fn list_namespaces(m: ModelHandle) -> Result<p::NamespaceList, Refusal> {
    let namespaces = m
        .list_namespaces()
        .await?
        .into_iter()
        .map(|(n, vectors)| p::WireNamespaceSummary {
            datatype: n.datatype(),
            name: n.name,
            owner: n.owner,
            visibility: visibility_name(n.visibility).into(),
            geometry: n.geometry,
            vectors: vectors as u64,
        })
        .collect();
    Ok(p::NamespaceList { namespaces })
}

pub(super) async fn delete_namespace(m: ModelHandle, a: p::NameArg) -> Result<p::Deleted, Refusal> {
    Ok(p::Deleted {
        deleted: m.delete_namespace(&a.name).await?,
    })
}

pub(super) async fn grant_access(m: ModelHandle, a: p::GrantArgs) -> Result<p::Empty, Refusal> {
    let grant = Grant {
        read: a.read,
        write: a.write,
    };
    m.grant_access(&a.namespace, &a.model, grant).await?;
    Ok(p::Empty {})
}

pub(super) async fn check_access(
    m: ModelHandle,
    a: p::CheckAccess,
) -> Result<p::AccessAnswer, Refusal> {
    let kind = match a.kind.as_str() {
        "read" => AccessKind::Read,
        "write" => AccessKind::Write,
        other => {
            return Err(Refusal::bad_request(format!(
                "kind {other:?} is not read or write"
            )));
        }
    };
    Ok(match m.check_access(&a.namespace, kind).await {
        Ok(()) => p::AccessAnswer {
            allowed: true,
            code: None,
            reason: None,
        },
        Err(e) if e.is_validation() => p::AccessAnswer {
            allowed: false,
            code: Some(e.code().into()),
            reason: Some(e.to_string()),
        },
        Err(e) => return Err(e.into()),
    })
}

pub(super) async fn store_vector(
    m: ModelHandle,
    a: p::StoreVector,
) -> Result<p::WireVector, Refusal> {
    let r = m
        .store_vector(NewVector {
            namespace: a.namespace,
            data: a.vector,
            region: a.region,
            metadata: a.metadata,
        })
        .await?;
    Ok(wire_vector(r, true))
}

pub(super) async fn batch_store_vectors(
    m: ModelHandle,
    a: p::BatchStoreVectors,
) -> Result<p::Ids, Refusal> {
    let vectors = a
        .vectors
        .into_iter()
        .map(|v| NewVector {
            namespace: a.namespace.clone(),
            data: v.vector,
            region: v.region,
            metadata: v.metadata,
        })
        .collect();
    let stored = m.batch_store_vectors(&a.namespace, vectors).await?;
    Ok(p::Ids {
        ids: ids(stored.into_iter().map(|r| r.id)),
    })
}

pub(super) async fn retrieve_vector(
    m: ModelHandle,
    a: p::RetrieveVector,
) -> Result<Option<p::WireVector>, Refusal> {
    let found = m.read_vectors(&[uuid(&a.id)?]).await?;
    let record = found.into_iter().next().flatten();
    Ok(record.map(|r| wire_vector(r, a.with_vector)))
}

pub(super) async fn retrieve_vectors(
    m: ModelHandle,
    a: p::RetrieveVectors,
) -> Result<p::VectorsFound, Refusal> {
    let found = m.read_vectors(&uuids(&a.ids)?).await?;
    let (mut vectors, mut missing) = (Vec::new(), Vec::new());
    for (id, r) in a.ids.into_iter().zip(found) {
        match r {
            Some(r) => vectors.push(wire_vector(r, a.with_vector)),
            None => missing.push(id),
        }
    }
    Ok(p::VectorsFound { vectors, missing })
}

pub(super) async fn update_vector(
    m: ModelHandle,
    a: p::UpdateVector,
) -> Result<p::WireVector, Refusal> {
    let region = match (a.region, a.clear_region) {
        (Some(_), true) => {
            return Err(Refusal::bad_request(
                "give a region or clear_region, not both",
            ));
        }
        (Some(r), false) => Some(Some(r)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let update = VectorUpdate {
        data: a.vector,
        region,
        metadata: a.metadata,
        if_version: a.if_version,
    };
    let r = m.update_vector(uuid(&a.id)?, update).await?;
    Ok(wire_vector(r, true))
}

pub(super) async fn delete_vector(m: ModelHandle, a: p::IdArg) -> Result<p::Deleted, Refusal> {
    let deleted = m.delete_vectors(&[uuid(&a.id)?]).await?;
    Ok(p::Deleted {
        deleted: deleted.first().copied().unwrap_or(false),
    })
}

pub(super) async fn delete_vectors(m: ModelHandle, a: p::Ids) -> Result<p::DeletedIds, Refusal> {
    let flags = m.delete_vectors(&uuids(&a.ids)?).await?;
    let (mut deleted, mut missing) = (Vec::new(), Vec::new());
    for (id, gone) in a.ids.into_iter().zip(flags) {
        if gone {
            deleted.push(id);
        } else {
            missing.push(id);
        }
    }
    Ok(p::DeletedIds { deleted, missing })
}

pub(super) async fn delete_by_filter(
    m: ModelHandle,
    a: p::DeleteByFilter,
) -> Result<p::DeletedCount, Refusal> {
    let n = m.delete_by_filter(&a.namespace, a.filter).await?;
    Ok(p::DeletedCount { deleted: n as u64 })
}

pub(super) async fn search(m: ModelHandle, a: p::Search) -> Result<p::Hits, Refusal> {
    let (q, with_vector) = query(a);
    let hits = m.search_records(q).await?;
    Ok(p::Hits {
        hits: wire_hits(hits, with_vector),
    })
}

pub(super) async fn range_search(m: ModelHandle, a: p::RangeSearch) -> Result<p::Hits, Refusal> {
    let q = SearchQuery {
        namespace: a.namespace,
        vector: a.vector,
        k: a.limit,
        offset: 0,
        filter: a.filter,
        region: a.region,
        exact: false,
        ef: None,
    };
    let hits = m.range_search(q, a.radius).await?;
    Ok(p::Hits {
        hits: wire_hits(hits, a.with_vector),
    })
}

pub(super) async fn batch_search(
    m: ModelHandle,
    a: p::BatchSearch,
) -> Result<p::BatchHits, Refusal> {
    let (queries, with): (Vec<_>, Vec<_>) = a.searches.into_iter().map(query).unzip();
    let results = m.batch_search(queries).await?;
    Ok(p::BatchHits {
        results: results
            .into_iter()
            .zip(with)
            .map(|(hits, with_vector)| wire_hits(hits, with_vector))
            .collect(),
    })
}

pub(super) async fn count(m: ModelHandle, a: p::Count) -> Result<p::Counted, Refusal> {
    let n = m.count(&a.namespace, a.filter).await?;
    Ok(p::Counted { count: n as u64 })
}

pub(super) async fn scroll(m: ModelHandle, a: p::Scroll) -> Result<p::ScrollPage, Refusal> {
    let after = a.after.as_deref().map(uuid).transpose()?;
    let (page, next) = m.scroll(&a.namespace, after, a.limit, a.filter).await?;
    Ok(p::ScrollPage {
        vectors: page
            .into_iter()
            .map(|r| wire_vector(r, a.with_vector))
            .collect(),
        next: next.map(|id| id.to_string()),
    })
}
