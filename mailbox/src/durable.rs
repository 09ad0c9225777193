//! The durable side: stored messages become letters again after a restart.
//!
//! Messages are stored by `hvs-storage` one row each, with their
//! recipients; an ack or a dead letter is a settlement row per recipient.
//! What a recipient has not settled is what its mailbox holds again.

use std::collections::HashMap;
use std::sync::Arc;

use hvs_storage::{MessageRecord, StorageError, Store};

use crate::queue::Letter;

/// A letter whose body is a stored message.
pub type StoredLetter = Letter<Arc<MessageRecord>>;

/// A stored message as a letter of one of its recipients' mailboxes.
pub fn letter_of(message: &Arc<MessageRecord>) -> StoredLetter {
    Letter {
        id: message.id,
        from: message.from.as_str().into(),
        sent_ms: message.sent_ms,
        expires_ms: message.expires_ms,
        body: message.clone(),
    }
}

/// Every recipient's unsettled letters, oldest first: what to
/// [`restore`](crate::Mailbox::restore) into the mailboxes after a restart.
/// Empty at `Memory` durability, which keeps nothing across a restart.
/// Right after an open that kept them, the store hands over the messages
/// its open read ([`Store::take_unsettled_messages`]) instead of reading
/// them again.
pub fn recover_letters(store: &Store) -> Result<HashMap<String, Vec<StoredLetter>>, StorageError> {
    let mut out: HashMap<String, Vec<StoredLetter>> = HashMap::new();
    for u in store.take_unsettled_messages()? {
        for r in u.recipients {
            out.entry(r).or_default().push(letter_of(&u.message));
        }
    }
    Ok(out)
}
