//! Blocks: CRUD and history, read-only and permissions with the audit log,
//! cache TTL, documentation sections found by meaning, reopening.

use std::time::{Duration, Instant};

use hvs_storage::{
    AuditAction, BlockClass, BlockContent, BlockOptions, BlockPermissions, Durability,
    StorageError, Store, StoreConfig,
};
use serde_json::json;

fn text(s: &str) -> BlockContent {
    BlockContent::Text(s.into())
}

#[test]
fn create_read_update_delete_with_history() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let opts = BlockOptions {
        history: 2,
        ..BlockOptions::default()
    };
    let b = s
        .create_block(
            "alice",
            "state",
            BlockClass::ProgramState,
            BlockContent::Json(json!({"n": 0})),
            opts,
        )
        .unwrap();
    assert_eq!(b.version, 1);
    assert_eq!(s.get_block("alice", b.id).unwrap().unwrap(), b);
    assert_eq!(
        s.get_block_by_name("bob", "state").unwrap().unwrap().id,
        b.id
    );
    for n in 1..=3 {
        let u = s
            .update_block("alice", b.id, BlockContent::Json(json!({ "n": n })))
            .unwrap();
        assert_eq!(u.version, n + 1);
    }
    let now = s.get_block("alice", b.id).unwrap().unwrap();
    assert_eq!(now.content, BlockContent::Json(json!({"n": 3})));
    // History keeps the 2 newest earlier versions, newest first.
    let versions: Vec<u64> = now.history.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![3, 2]);
    assert_eq!(now.history[0].content, BlockContent::Json(json!({"n": 2})));
    assert!(matches!(
        s.create_block(
            "bob",
            "state",
            BlockClass::ProgramState,
            text("x"),
            BlockOptions::default()
        ),
        Err(StorageError::BlockNameTaken(_))
    ));
    assert!(s.delete_block("alice", b.id).unwrap());
    assert!(!s.delete_block("alice", b.id).unwrap());
    assert_eq!(s.get_block_by_name("alice", "state").unwrap(), None);
    // The name is free again.
    s.create_block(
        "bob",
        "state",
        BlockClass::ProgramState,
        BlockContent::Bytes(vec![1, 2, 3]),
        BlockOptions::default(),
    )
    .unwrap();
}

#[test]
fn read_only_blocks_refuse_changes_and_stay_unchanged_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.redb");
    let id;
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Sync)).unwrap();
        let opts = BlockOptions {
            readonly: true,
            ..BlockOptions::default()
        };
        let b = s
            .create_block(
                "ops",
                "private",
                BlockClass::Documentation,
                text("# Rules\nnone"),
                opts,
            )
            .unwrap();
        id = b.id;
        assert!(matches!(
            s.update_block("mallory", id, text("new content")),
            Err(StorageError::ReadOnlyBlock(_))
        ));
        assert!(matches!(
            s.delete_block("mallory", id),
            Err(StorageError::ReadOnlyBlock(_))
        ));
    }
    let s = Store::open(StoreConfig::file(&path, Durability::Sync)).unwrap();
    let b = s.get_block("ops", id).unwrap().unwrap();
    assert_eq!((b.version, b.content.clone()), (1, text("# Rules\nnone")));
    let log = s.audit_log(0, 100).unwrap();
    let rows: Vec<(String, AuditAction, bool)> = log
        .iter()
        .map(|e| (e.actor.clone(), e.action, e.outcome == "ok"))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("ops".into(), AuditAction::CreateBlock, true),
            ("mallory".into(), AuditAction::UpdateBlock, false),
            ("mallory".into(), AuditAction::DeleteBlock, false),
        ]
    );
    assert!(log[1].outcome.contains("read-only"), "{}", log[1].outcome);
    assert_eq!(log[1].block, Some(id));
    assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn permissions_are_enforced_and_refusals_audited() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let perms = BlockPermissions {
        read: vec!["alice".into(), "bob".into()],
        write: vec!["alice".into()],
    };
    let b = s
        .create_block(
            "alice",
            "plan",
            BlockClass::SharedKnowledge,
            text("the plan"),
            BlockOptions {
                permissions: perms,
                ..BlockOptions::default()
            },
        )
        .unwrap();
    assert!(s.get_block("bob", b.id).unwrap().is_some());
    assert!(matches!(
        s.get_block("eve", b.id),
        Err(StorageError::PermissionDenied { action: "read", .. })
    ));
    assert!(matches!(
        s.update_block("bob", b.id, text("bob's plan")),
        Err(StorageError::PermissionDenied {
            action: "write",
            ..
        })
    ));
    assert!(s.update_block("alice", b.id, text("the new plan")).is_ok());
    // eve does not see it in lists or searches either.
    assert!(s.list_blocks("eve", None).unwrap().is_empty());
    assert_eq!(
        s.list_blocks("bob", Some(&BlockClass::SharedKnowledge))
            .unwrap()
            .len(),
        1
    );
    s.flush_index().unwrap();
    assert!(s.semantic_query("eve", "plan", 5, None).unwrap().is_empty());
    assert_eq!(
        s.semantic_query("bob", "plan", 5, None).unwrap()[0].block_id,
        b.id
    );
    let refused: Vec<(String, AuditAction)> = s
        .audit_log(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.outcome.starts_with("refused"))
        .map(|e| (e.actor, e.action))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("eve".into(), AuditAction::ReadBlock),
            ("bob".into(), AuditAction::UpdateBlock)
        ]
    );
}

#[test]
fn cache_blocks_are_gone_after_their_ttl() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    assert!(matches!(
        s.create_block(
            "a",
            "c",
            BlockClass::Cache,
            text("x"),
            BlockOptions::default()
        ),
        Err(StorageError::InvalidBlock(_))
    ));
    let opts = BlockOptions {
        ttl_ms: Some(100),
        ..BlockOptions::default()
    };
    let b = s
        .create_block("a", "c", BlockClass::Cache, text("cached answer"), opts)
        .unwrap();
    assert!(b.expires_ms.is_some());
    // Polled with a deadline: gone once the TTL has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get_block("a", b.id).unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the cache block outlived its TTL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        s.list_blocks("a", Some(&BlockClass::Cache))
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.update_block("a", b.id, text("late")),
        Err(StorageError::BlockNotFound(_))
    ));
    // Its name can be taken again.
    s.create_block(
        "a",
        "c",
        BlockClass::Cache,
        text("fresh"),
        BlockOptions {
            ttl_ms: Some(60_000),
            ..BlockOptions::default()
        },
    )
    .unwrap();
}

const DOC: &str = "# HVS\nHVS lets models talk in vectors.\n\n\
## Installation\nInstall the Rust toolchain, then run cargo build to compile the server.\n\n\
## Consensus\nThe Fréchet mean of the contributions is the consensus point of a shared space.\n\n\
## Hyperbolic geometry\nHierarchies embed with low distortion in the Poincaré ball and the hyperboloid.\n";

#[test]
fn documentation_is_found_by_section_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.redb");
    let id;
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let opts = BlockOptions {
            readonly: true,
            ..BlockOptions::default()
        };
        id = s
            .create_block(
                "ops",
                "hvs_docs",
                BlockClass::Documentation,
                text(DOC),
                opts,
            )
            .unwrap()
            .id;
        s.create_block(
            "ops",
            "notes",
            BlockClass::Custom("notes".into()),
            text("shopping list: milk, eggs"),
            BlockOptions::default(),
        )
        .unwrap();
        let hits = s
            .semantic_query("anyone", "how do I install and build it", 3, None)
            .unwrap();
        assert_eq!(hits[0].block_id, id);
        assert_eq!(hits[0].section.as_deref(), Some("Installation"));
        assert!(hits[0].text.contains("cargo build"));
    }
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let hits = s
        .semantic_query(
            "anyone",
            "consensus of a shared space",
            2,
            Some(&BlockClass::Documentation),
        )
        .unwrap();
    assert_eq!(hits[0].section.as_deref(), Some("Consensus"));
    assert!(hits.iter().all(|h| h.name == "hvs_docs"));
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let hits = s
        .semantic_query("anyone", "milk and eggs", 1, None)
        .unwrap();
    assert_eq!(hits[0].name, "notes");
    assert!(matches!(
        s.semantic_query("a", "x", 1_000_000, None),
        Err(StorageError::InvalidQuery(_))
    ));
}

#[test]
fn updating_a_document_reindexes_its_sections() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let b = s
        .create_block(
            "a",
            "doc",
            BlockClass::Documentation,
            text("# Old\nzebra giraffe"),
            BlockOptions::default(),
        )
        .unwrap();
    s.update_block("a", b.id, text("# New\nquantum lattice"))
        .unwrap();
    let hits = s.semantic_query("a", "quantum lattice", 5, None).unwrap();
    assert_eq!(hits.len(), 1, "the old section is gone from the index");
    assert_eq!(hits[0].section.as_deref(), Some("New"));
    s.delete_block("a", b.id).unwrap();
    assert!(
        s.semantic_query("a", "quantum lattice", 5, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn expired_cache_blocks_are_purged_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let opts = |ttl| BlockOptions {
        ttl_ms: Some(ttl),
        ..BlockOptions::default()
    };
    for i in 0..20 {
        let body = format!("cached inference result number {i} about hyperbolic geometry");
        s.create_block(
            "a",
            &format!("c{i}"),
            BlockClass::Cache,
            text(&body),
            opts(50),
        )
        .unwrap();
    }
    let keep = s
        .create_block("a", "long", BlockClass::Cache, text("kept"), opts(600_000))
        .unwrap();
    // The writer purges by itself once the TTL has passed: polled with a
    // deadline, every expiry shows in the audit log under "hvs".
    let deadline = Instant::now() + Duration::from_secs(10);
    let expired = |s: &Store| {
        s.audit_log(0, 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == AuditAction::Expire && e.actor == "hvs")
            .count()
    };
    while expired(&s) < 20 {
        assert!(Instant::now() < deadline, "expired blocks were not purged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.purge_expired_blocks().unwrap(), 0);
    assert!(
        s.semantic_query("a", "cached inference hyperbolic", 5, None)
            .unwrap()
            .iter()
            .all(|h| h.block_id == keep.id)
    );
    drop(s);
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let left = s.list_blocks("a", None).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, keep.id);
    assert_eq!(expired(&s), 20);
}

#[test]
fn the_owner_may_always_read_write_and_set_permissions() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    // The lists leave alice, who creates it, out.
    let only_bob = BlockPermissions {
        read: vec!["bob".into()],
        write: vec!["bob".into()],
    };
    let options = BlockOptions {
        permissions: only_bob,
        ..BlockOptions::default()
    };
    let b = s
        .create_block(
            "alice",
            "plan",
            BlockClass::ProgramState,
            text("v1"),
            options,
        )
        .unwrap();
    assert_eq!(b.owner, "alice");
    assert_eq!(s.get_block("alice", b.id).unwrap().unwrap().owner, "alice");
    assert_eq!(s.list_blocks("alice", None).unwrap().len(), 1);
    assert!(s.list_blocks("carol", None).unwrap().is_empty());
    s.update_block("alice", b.id, text("v2")).unwrap();
    s.update_block("bob", b.id, text("v3")).unwrap();
    // Only the owner changes permissions; a writer may not.
    let to_carol = BlockPermissions {
        read: vec!["carol".into()],
        write: vec![],
    };
    let e = s
        .set_block_permissions("bob", b.id, to_carol.clone())
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::PermissionDenied { actor, block, .. } if actor == "bob" && block == "plan"),
        "{e:?}"
    );
    assert_eq!(e.code(), "permission_denied");
    let changed = s.set_block_permissions("alice", b.id, to_carol).unwrap();
    assert_eq!(changed.permissions.read, vec!["carol".to_string()]);
    assert_eq!(changed.version, 3, "the content's version does not move");
    assert!(s.get_block("carol", b.id).unwrap().is_some());
    assert_eq!(s.list_blocks("carol", None).unwrap().len(), 1);
    assert!(matches!(
        s.get_block("bob", b.id),
        Err(StorageError::PermissionDenied { action: "read", .. })
    ));
    assert!(s.update_block("bob", b.id, text("v4")).is_err());
    let e = s
        .set_block_permissions("alice", uuid::Uuid::now_v7(), BlockPermissions::default())
        .unwrap_err();
    assert_eq!(e.code(), "block_not_found");
    let rows: Vec<(String, AuditAction, bool)> = s
        .audit_log(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::SetPermissions)
        .map(|e| (e.actor, e.action, e.outcome == "ok"))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("bob".into(), AuditAction::SetPermissions, false),
            ("alice".into(), AuditAction::SetPermissions, true),
            ("alice".into(), AuditAction::SetPermissions, false),
        ]
    );
    assert!(s.delete_block("alice", b.id).unwrap());
}

#[test]
fn the_owner_of_a_read_only_block_sets_its_permissions_but_not_its_content() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let options = BlockOptions {
        readonly: true,
        ..BlockOptions::default()
    };
    let b = s
        .create_block(
            "ops",
            "rules",
            BlockClass::Documentation,
            text("# R"),
            options,
        )
        .unwrap();
    assert!(matches!(
        s.update_block("ops", b.id, text("new")),
        Err(StorageError::ReadOnlyBlock(_))
    ));
    let mine = BlockPermissions {
        read: vec![],
        write: vec![],
    };
    let b = s.set_block_permissions("ops", b.id, mine).unwrap();
    assert!(b.readonly && b.permissions.read.is_empty());
    assert!(s.get_block("ops", b.id).unwrap().is_some());
    assert!(s.get_block("anyone", b.id).is_err());
}

/// A block row written before blocks had owners reads back without one,
/// and its lists alone decide, including who may change its permissions.
#[test]
fn blocks_written_before_owners_keep_the_write_list_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.redb");
    let perms = BlockPermissions {
        read: vec!["bob".into()],
        write: vec!["bob".into()],
    };
    let id = {
        let s = Store::open(StoreConfig::file(&path, Durability::Sync)).unwrap();
        let options = BlockOptions {
            permissions: perms,
            ..BlockOptions::default()
        };
        s.create_block("alice", "old", BlockClass::ProgramState, text("x"), options)
            .unwrap()
            .id
    };
    strip_owner(&path, id);
    let s = Store::open(StoreConfig::file(&path, Durability::Sync)).unwrap();
    let b = s.get_block("bob", id).unwrap().unwrap();
    assert_eq!(b.owner, "");
    assert!(s.get_block("alice", id).is_err(), "no longer the owner");
    assert!(s.update_block("alice", id, text("y")).is_err());
    assert!(
        s.set_block_permissions("alice", id, BlockPermissions::default())
            .is_err()
    );
    let b = s
        .set_block_permissions("bob", id, BlockPermissions::default())
        .unwrap();
    assert_eq!(b.permissions, BlockPermissions::default());
    assert!(s.get_block("alice", id).unwrap().is_some());
}

/// Rewrites a block row without its `owner` field, as rows were written
/// before it existed.
fn strip_owner(path: &std::path::Path, id: uuid::Uuid) {
    use redb::ReadableTable;
    /// `Block` as it was stored before owners.
    #[derive(serde::Serialize)]
    struct Legacy {
        id: uuid::Uuid,
        name: String,
        class: BlockClass,
        content: BlockContent,
        readonly: bool,
        permissions: BlockPermissions,
        version: u64,
        created_ms: u64,
        updated_ms: u64,
        expires_ms: Option<u64>,
        history_limit: usize,
        history: Vec<hvs_storage::BlockVersion>,
    }
    const BLOCKS: redb::TableDefinition<'_, u128, &[u8]> = redb::TableDefinition::new("blocks");
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(BLOCKS).unwrap();
        let row = t.get(id.as_u128()).unwrap().unwrap().value().to_vec();
        let b: hvs_storage::Block = rmp_serde::from_slice(&row).unwrap();
        let legacy = Legacy {
            id: b.id,
            name: b.name,
            class: b.class,
            content: b.content,
            readonly: b.readonly,
            permissions: b.permissions,
            version: b.version,
            created_ms: b.created_ms,
            updated_ms: b.updated_ms,
            expires_ms: b.expires_ms,
            history_limit: b.history_limit,
            history: b.history,
        };
        let bytes = rmp_serde::to_vec_named(&legacy).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("owner"));
        t.insert(id.as_u128(), bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}
