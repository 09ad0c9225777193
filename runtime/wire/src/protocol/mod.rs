//! The wire protocol: frames, requests, answers and pushes, as the server
//! and the Rust client see them. `docs/PROTOCOL.md` is the same thing for
//! someone writing a client in another language.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! msgpack. Every value is a msgpack map with named fields (rmp-serde's
//! `to_vec_named`), ids are UUID strings, vectors arrays of floats,
//! payloads `bin`.
//!
//! A request is one [`Request`] (an operation and its typed arguments) with
//! an id, read in one pass by [`decode_request`]; each operation has one
//! answer type, shared by the server (which encodes it once, straight into
//! the frame with [`ok_frame`]) and the client (which decodes it once).
//!
//! # Layout
//! - `request.rs`: [`Request`], [`RequestFrame`], [`decode_request`].
//! - `session.rs`: the handshake, `ping`, `stats`.
//! - `messages.rs`: sending, receiving, acks, the mailbox.
//! - `vectors.rs`: namespaces, vectors, search.
//! - `spaces.rs`: shared spaces, consensus, model state.
//! - `blocks.rs`: blocks of shared knowledge.
//! - `sync.rs`: sync jobs and the change feed.

mod blocks;
mod bridge;
mod json;
mod messages;
mod request;
mod session;
mod spaces;
mod sync;
mod vectors;

pub use blocks::*;
pub use bridge::*;
pub use messages::*;
pub use request::{Request, RequestFrame, decode_request};
pub use session::*;
pub use spaces::*;
pub use sync::*;
pub use vectors::*;

pub(crate) use json::{finite_json, finite_metadata, finite_metadata_opt};

use serde::{Deserialize, Serialize};

/// The protocol versions this build speaks; the handshake picks the highest
/// one both sides list.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];

/// Default largest frame either side accepts (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// A request with untyped arguments: any operation name and any msgpack
/// value as its arguments (for tests and tools that send what the typed
/// [`Request`] cannot express).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawRequest {
    /// Echoed in the answer.
    pub id: u64,
    /// The operation's name.
    pub op: String,
    /// Its arguments.
    #[serde(default = "nil")]
    pub args: rmpv::Value,
}

fn nil() -> rmpv::Value {
    rmpv::Value::Nil
}

/// What the server sends: an answer (with the request's id) or a push.
/// Variants are tried in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerFrame {
    /// A refusal or failure of request `id` (`None`: a frame that could not
    /// be read far enough to find its id).
    Error {
        /// The request's id, when known.
        id: Option<u64>,
        /// What went wrong.
        error: WireError,
    },
    /// Something the server sends unasked.
    Push(Push),
    /// The answer to request `id`. (Last: an untagged `ok` of any value
    /// would also read an error frame.)
    Ok {
        /// The request's id.
        id: u64,
        /// The operation's result.
        ok: rmpv::Value,
    },
}

/// A server push.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "push", rename_all = "snake_case")]
pub enum Push {
    /// A message for this model (after `subscribe`).
    Delivery {
        /// The message.
        delivery: WireDelivery,
    },
    /// The server is about to close the connection.
    Closing {
        /// A stable code (`shutting_down`, `heartbeat_timeout`, `replaced`, …).
        code: String,
        /// Why, for people.
        reason: String,
    },
}

/// An error on the wire: a stable code, a message, and what the code
/// needs (when to retry, the current version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable, machine-readable (`permission_denied`, `rate_limited`, …).
    pub code: String,
    /// For people.
    pub message: String,
    /// Milliseconds until a retry can succeed (`limit_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The version the vector has now (`version_conflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// Where the group's primary takes writes (`not_primary`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

impl WireError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
            current_version: None,
            primary: None,
        }
    }

    /// Malformed arguments.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Codes of errors the protocol layer itself answers with.
pub mod codes {
    /// A frame that is not a msgpack request.
    pub const BAD_FRAME: &str = "bad_frame";
    /// A frame longer than the limit (the connection is closed).
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// An operation the server does not know.
    pub const UNKNOWN_OP: &str = "unknown_op";
    /// Arguments that do not fit the operation.
    pub const BAD_REQUEST: &str = "bad_request";
    /// A request before `hello`.
    pub const HANDSHAKE_REQUIRED: &str = "handshake_required";
    /// A second `hello`.
    pub const ALREADY_GREETED: &str = "already_greeted";
    /// No protocol version in common.
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// A contract the server cannot read.
    pub const INVALID_CONTRACT: &str = "invalid_contract";
    /// The server's connection limit is reached.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// The server is shutting down.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// Nothing heard from the client within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: &str = "heartbeat_timeout";
    /// Another connection claimed the same model.
    pub const REPLACED: &str = "replaced";
    /// This server is a mirror of its failover group, or lost the lease:
    /// writes go to the primary (`primary` in the error, if known).
    pub const NOT_PRIMARY: &str = "not_primary";
    /// The server failed (a bug or a fault, not the request).
    pub const INTERNAL: &str = "internal";
}

/// An answer that carries nothing: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Encodes a value as msgpack with named fields (a map per struct).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    rmp_serde::to_vec_named(value).map_err(|e| WireError::new(codes::INTERNAL, e.to_string()))
}

/// The body of an answer frame, `{id, ok}`, around `ok` already encoded:
/// the answer is encoded once, straight into its frame.
pub fn ok_frame(id: u64, ok: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ok.len() + 16);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(&mut out, 2);
    let _ = rmp::encode::write_str(&mut out, "id");
    let _ = rmp::encode::write_uint(&mut out, id);
    let _ = rmp::encode::write_str(&mut out, "ok");
    out.extend_from_slice(ok);
    out
}

/// What a server frame is, read from its first keys without decoding the
/// rest: an answer's id (its `ok` then read by whoever waits for it), a
/// failure, or a push. `None`: the keys are not in the order this server
/// writes them (`id` first); decode the frame as a [`ServerFrame`] instead.
pub fn peek_frame(frame: &[u8]) -> Option<FrameKind> {
    let mut rd = frame;
    let n = rmp::decode::read_map_len(&mut rd).ok()?;
    let mut key = [0u8; 8];
    let first = rmp::decode::read_str(&mut rd, &mut key).ok()?;
    match (n, first) {
        (2, "id") => {
            let id: Option<u64> = match rd.first() {
                Some(0xc0) => {
                    rd = &rd[1..];
                    None
                }
                _ => Some(rmp::decode::read_int(&mut rd).ok()?),
            };
            let mut key = [0u8; 8];
            match (rmp::decode::read_str(&mut rd, &mut key).ok()?, id) {
                ("ok", Some(id)) => Some(FrameKind::Ok(id)),
                ("error", id) => Some(FrameKind::Error(id)),
                _ => None,
            }
        }
        (_, "push") => Some(FrameKind::Push),
        _ => None,
    }
}

/// What [`peek_frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The answer to request `id`.
    Ok(u64),
    /// A failure of request `id` (`None`: unreadable request).
    Error(Option<u64>),
    /// A push.
    Push,
}

/// The deepest nesting a frame may have. rmp-serde's own default (1024)
/// overflows a 2 MiB thread stack when every level is a JSON value in
/// metadata; no request needs more than a few levels.
pub const MAX_DEPTH: usize = 64;

fn from_slice_to<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    depth: usize,
) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(depth);
    T::deserialize(&mut de)
}

/// Reads a request's id and operation; everything else in the frame is
/// skipped by a loop, not recursion, so a request whose arguments nest too
/// deep still has its id read, and its refusal reaches the caller. Only used
/// to say why a request could not be read.
pub fn decode_head(bytes: &[u8]) -> Result<RequestHead, WireError> {
    read_head(bytes)
        .ok_or_else(|| WireError::new(codes::BAD_FRAME, "not a request map {id, op, …}"))
}

fn read_head(bytes: &[u8]) -> Option<RequestHead> {
    let mut rd = bytes;
    let n = rmp::decode::read_map_len(&mut rd).ok()?;
    let (mut id, mut op) = (None, None);
    for _ in 0..n {
        let mut key = [0u8; 8];
        let k = rmp::decode::read_str(&mut rd, &mut key).map(str::to_owned);
        match k.as_deref() {
            Ok("id") => id = Some(rmp::decode::read_int(&mut rd).ok()?),
            Ok("op") => {
                let len = rmp::decode::read_str_len(&mut rd).ok()? as usize;
                let raw = rd.get(..len)?;
                op = Some(std::str::from_utf8(raw).ok()?.to_string());
                rd = &rd[len..];
            }
            Ok(_) => skip_value(&mut rd)?,
            Err(_) => return None,
        }
    }
    Some(RequestHead { id: id?, op: op? })
}

/// Skips one msgpack value, however deep, without recursion.
fn skip_value(rd: &mut &[u8]) -> Option<()> {
    use rmp::Marker as M;
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        match rmp::decode::read_marker(rd).ok()? {
            M::FixPos(_) | M::FixNeg(_) | M::Null | M::True | M::False => {}
            M::U8 | M::I8 => skip(rd, 1)?,
            M::U16 | M::I16 => skip(rd, 2)?,
            M::U32 | M::I32 | M::F32 => skip(rd, 4)?,
            M::U64 | M::I64 | M::F64 => skip(rd, 8)?,
            M::FixStr(n) => skip(rd, n as usize)?,
            M::Str8 | M::Bin8 => skip_blob(rd, 1, 0)?,
            M::Str16 | M::Bin16 => skip_blob(rd, 2, 0)?,
            M::Str32 | M::Bin32 => skip_blob(rd, 4, 0)?,
            // An ext's type byte follows its length.
            M::Ext8 => skip_blob(rd, 1, 1)?,
            M::Ext16 => skip_blob(rd, 2, 1)?,
            M::Ext32 => skip_blob(rd, 4, 1)?,
            M::FixExt1 => skip(rd, 2)?,
            M::FixExt2 => skip(rd, 3)?,
            M::FixExt4 => skip(rd, 5)?,
            M::FixExt8 => skip(rd, 9)?,
            M::FixExt16 => skip(rd, 17)?,
            M::FixArray(n) => pending += u64::from(n),
            M::Array16 => pending += read_len(rd, 2)?,
            M::Array32 => pending += read_len(rd, 4)?,
            M::FixMap(n) => pending += 2 * u64::from(n),
            M::Map16 => pending += 2 * read_len(rd, 2)?,
            M::Map32 => pending += 2 * read_len(rd, 4)?,
            M::Reserved => return None,
        }
        // Every value takes at least one byte: more pending than bytes left
        // cannot be a well-formed frame.
        if pending > rd.len() as u64 {
            return None;
        }
    }
    Some(())
}

/// A big-endian length of `bytes` bytes.
fn read_len(rd: &mut &[u8], bytes: usize) -> Option<u64> {
    let head = rd.get(..bytes)?;
    *rd = &rd[bytes..];
    Some(head.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
}

/// Skips a length of `bytes` bytes, `extra` bytes, then that many bytes.
fn skip_blob(rd: &mut &[u8], bytes: usize, extra: usize) -> Option<()> {
    let n = usize::try_from(read_len(rd, bytes)?).ok()?;
    skip(rd, extra.checked_add(n)?)
}

fn skip(rd: &mut &[u8], n: usize) -> Option<()> {
    *rd = rd.get(n..)?;
    Some(())
}

/// Decodes one frame's msgpack. Nesting is limited to [`MAX_DEPTH`], and
/// lengths inside cannot exceed the frame, which is bounded.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, WireError> {
    from_slice_to(bytes, MAX_DEPTH).map_err(|e| WireError::new(codes::BAD_FRAME, e.to_string()))
}

/// A request's id and operation, read without its arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestHead {
    /// The request's id.
    pub id: u64,
    /// The operation.
    pub op: String,
}

/// Turns a value into a generic msgpack value, field names kept.
pub fn value<T: Serialize>(v: &T) -> Result<rmpv::Value, WireError> {
    // rmpv's own serializer writes structs as arrays; go through bytes to
    // keep the field names.
    let bytes = encode(v)?;
    rmpv::decode::read_value(&mut bytes.as_slice())
        .map_err(|e| WireError::new(codes::INTERNAL, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_and_pushes_are_told_apart() {
        let frames = [
            ServerFrame::Ok {
                id: 1,
                ok: rmpv::Value::Nil,
            },
            ServerFrame::Error {
                id: Some(2),
                error: WireError::new("x", "y"),
            },
            ServerFrame::Push(Push::Closing {
                code: "shutting_down".into(),
                reason: "bye".into(),
            }),
        ];
        let kinds = [FrameKind::Ok(1), FrameKind::Error(Some(2)), FrameKind::Push];
        for (f, kind) in frames.into_iter().zip(kinds) {
            let bytes = encode(&f).unwrap();
            assert_eq!(peek_frame(&bytes), Some(kind), "{f:?}");
            let back: ServerFrame = decode(&bytes).unwrap();
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&f),
                "{f:?}"
            );
        }
    }

    #[test]
    fn the_head_of_a_request_is_read_past_any_depth() {
        let mut frame = b"\x83\xa4args\x81\xa1k".to_vec();
        frame.extend(std::iter::repeat_n(0x91u8, 1_000_000));
        frame.push(0xc0);
        frame.extend(b"\xa2id\x07\xa2op\xa4send");
        let head = decode_head(&frame).unwrap();
        assert_eq!((head.id, head.op.as_str()), (7, "send"));
        assert!(decode_head(&frame[..frame.len() - 3]).is_err());
        let mut s = b"\xa2xy".to_vec();
        assert!(skip_value(&mut s.as_slice()).is_some());
        s.pop();
        assert!(skip_value(&mut s.as_slice()).is_none());
    }

    #[test]
    fn an_answer_written_around_its_encoded_value_reads_as_a_frame() {
        let ok = encode(&Pong { now_ms: 5 }).unwrap();
        let bytes = ok_frame(u64::MAX - 1, &ok);
        assert_eq!(peek_frame(&bytes), Some(FrameKind::Ok(u64::MAX - 1)));
        #[derive(Deserialize)]
        struct F {
            id: u64,
            ok: Pong,
        }
        let f: F = decode(&bytes).unwrap();
        assert_eq!((f.id, f.ok.now_ms), (u64::MAX - 1, 5));
        let nil_id = encode(&ServerFrame::Error {
            id: None,
            error: WireError::new("bad_frame", "?"),
        })
        .unwrap();
        assert_eq!(peek_frame(&nil_id), Some(FrameKind::Error(None)));
    }
}
