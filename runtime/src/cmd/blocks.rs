//! Blocks of shared knowledge.

use hvs_actors::BlockSettings;
use hvs_storage::{Block, BlockClass, BlockPermissions};

use super::Refusal;
use crate::ModelHandle;
use crate::protocol as p;

fn class_name(class: &BlockClass) -> String {
    match serde_json::to_value(class) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn wire_block(b: Block) -> p::WireBlock {
    p::WireBlock {
        id: b.id.to_string(),
        class: class_name(&b.class),
        name: b.name,
        content: b.content,
        owner: b.owner,
        read: b.permissions.read,
        write: b.permissions.write,
        readonly: b.readonly,
        version: b.version,
        created_ms: b.created_ms,
        updated_ms: b.updated_ms,
        expires_ms: b.expires_ms,
    }
}

pub(super) async fn store_block(m: ModelHandle, a: p::StoreBlock) -> Result<p::WireBlock, Refusal> {
    let defaults = BlockSettings::default();
    let settings = BlockSettings {
        persist: a.persist,
        readonly: a.readonly,
        permissions: BlockPermissions {
            read: a.read.unwrap_or(defaults.permissions.read),
            write: a.write.unwrap_or(defaults.permissions.write),
        },
    };
    Ok(wire_block(
        m.store_block(&a.name, a.content, settings).await?,
    ))
}

pub(super) async fn query_blocks(
    m: ModelHandle,
    a: p::QueryBlocks,
) -> Result<p::BlockHits, Refusal> {
    let hits = m
        .query(&a.text, a.k)
        .await?
        .into_iter()
        .map(|h| p::WireBlockHit {
            block_id: h.block_id.to_string(),
            name: h.name,
            section: h.section,
            text: h.text,
            distance: h.distance,
            score: h.score,
            rank: h.rank,
        })
        .collect();
    Ok(p::BlockHits { hits })
}

pub(super) async fn get_block(
    m: ModelHandle,
    a: p::NameArg,
) -> Result<Option<p::WireBlock>, Refusal> {
    Ok(m.get_block(&a.name).await?.map(wire_block))
}

pub(super) async fn update_block(
    m: ModelHandle,
    a: p::UpdateBlock,
) -> Result<p::WireBlock, Refusal> {
    let permissions = match (a.read, a.write) {
        (None, None) => None,
        (read, write) => {
            let current = m
                .get_block(&a.name)
                .await?
                .map(|b| b.permissions)
                .unwrap_or_default();
            Some(BlockPermissions {
                read: read.unwrap_or(current.read),
                write: write.unwrap_or(current.write),
            })
        }
    };
    if a.content.is_none() && permissions.is_none() {
        return Err(Refusal::bad_request(
            "update_block needs content, read or write",
        ));
    }
    let b = m.update_block(&a.name, a.content, permissions).await?;
    Ok(wire_block(b))
}

pub(super) async fn delete_block(m: ModelHandle, a: p::NameArg) -> Result<p::Deleted, Refusal> {
    Ok(p::Deleted {
        deleted: m.delete_block(&a.name).await?,
    })
}

pub(super) async fn list_blocks(m: ModelHandle, a: p::ListBlocks) -> Result<p::BlockList, Refusal> {
    let class = match a.class {
        Some(c) => Some(
            serde_json::from_value::<BlockClass>(serde_json::Value::String(c.clone()))
                .map_err(|_| Refusal::bad_request(format!("block class {c:?} is not known")))?,
        ),
        None => None,
    };
    let blocks = m
        .list_blocks(class)
        .await?
        .into_iter()
        .map(wire_block)
        .collect();
    Ok(p::BlockList { blocks })
}
