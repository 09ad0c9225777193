//! Every request the server understands, as one enum, read from a frame in
//! one pass: the operation's name picks the type its arguments are read
//! as, while they are read.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    BatchSearch, BatchStoreVectors, BridgeSearch, BridgeSpec, CheckAccess, Contribute, Count,
    CreateNamespace, DeleteByFilter, Empty, GetState, GrantArgs, Hello, IdArg, Ids, Join,
    ListBlocks, MAX_DEPTH, NameArg, QueryBlocks, QueryShared, RangeSearch, Receive, RegisterState,
    RetrieveVector, RetrieveVectors, Scroll, Search, SendBatch, SimilarStates, StoreBlock,
    StoreVector, SyncConflicts, SyncSpec, UpdateBlock, UpdateState, UpdateVector, WireBroadcast,
    WireError, WireOutgoing, codes, decode_head,
};
use super::{ConsensusArgs, from_slice_to};

/// Declares [`Request`] with one variant per operation, and the code that
/// reads and writes each one's arguments. Every operation has arguments,
/// `Empty` for those that take none.
macro_rules! requests {
    ($( $(#[$doc:meta])* $op:literal => $variant:ident($args:ty), )*) => {
        /// One request: an operation with its arguments. (Exhaustive on
        /// purpose: a new operation is a change the server must serve.)
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[$doc])* $variant($args), )*
        }

        impl Request {
            /// Every operation's name.
            pub const OPS: &'static [&'static str] = &[$($op),*];

            /// The operation's name on the wire.
            pub fn op(&self) -> &'static str {
                match self {
                    $( Request::$variant(_) => $op, )*
                }
            }

            /// Reads the arguments of `op` from `d`; absent or nil
            /// arguments read as an empty map.
            fn read_args<'de, D: Deserializer<'de>>(op: &str, d: D) -> Result<Self, D::Error> {
                match op {
                    $( $op => Ok(Request::$variant(Args::<$args>::deserialize(d)?.0)), )*
                    other => Err(de::Error::custom(format!("unknown operation {other:?}"))),
                }
            }

            fn write_args<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self {
                    $( Request::$variant(a) => map.serialize_entry("args", a), )*
                }
            }
        }
    };
}

requests! {
    /// The handshake (first request only).
    "hello" => Hello(Hello),
    /// A round trip.
    "ping" => Ping(Empty),
    /// Server, storage and mailbox figures.
    "stats" => Stats(Empty),
    /// Disconnect and close.
    "bye" => Bye(Empty),
    /// Push each message as it arrives.
    "subscribe" => Subscribe(Empty),
    /// Stop pushing.
    "unsubscribe" => Unsubscribe(Empty),
    /// Send one message.
    "send" => Send(WireOutgoing),
    /// Send many messages, all or none.
    "send_batch" => SendBatch(SendBatch),
    /// Send one message to many models.
    "broadcast" => Broadcast(WireBroadcast),
    /// Take waiting messages.
    "receive" => Receive(Receive),
    /// Acknowledge received messages.
    "ack" => Ack(Ids),
    /// Give received messages back for redelivery.
    "release" => Release(Ids),
    /// The mailbox's counts and dead letters.
    "mailbox" => Mailbox(Empty),
    /// A stored message.
    "get_message" => GetMessage(IdArg),
    /// Create a namespace.
    "create_namespace" => CreateNamespace(CreateNamespace),
    /// A namespace's access list.
    "namespace_info" => NamespaceInfo(NameArg),
    /// The namespaces the caller may read.
    "list_namespaces" => ListNamespaces(Empty),
    /// Delete a namespace the caller owns.
    "delete_namespace" => DeleteNamespace(NameArg),
    /// Grant another model access.
    "grant_access" => GrantAccess(GrantArgs),
    /// Whether the caller may read or write.
    "check_access" => CheckAccess(CheckAccess),
    /// Store a vector.
    "store_vector" => StoreVector(StoreVector),
    /// Store many vectors, all or none.
    "batch_store_vectors" => BatchStoreVectors(BatchStoreVectors),
    /// Read a vector back.
    "retrieve_vector" => RetrieveVector(RetrieveVector),
    /// Read many vectors back.
    "retrieve_vectors" => RetrieveVectors(RetrieveVectors),
    /// Change a vector (compare-and-set with `if_version`).
    "update_vector" => UpdateVector(UpdateVector),
    /// Delete a vector.
    "delete_vector" => DeleteVector(IdArg),
    /// Delete many vectors.
    "delete_vectors" => DeleteVectors(Ids),
    /// Delete the vectors a filter matches.
    "delete_by_filter" => DeleteByFilter(DeleteByFilter),
    /// The k nearest vectors.
    "search" => Search(Search),
    /// Every vector within a radius.
    "range_search" => RangeSearch(RangeSearch),
    /// Many searches in one request.
    "batch_search" => BatchSearch(BatchSearch),
    /// How many vectors (a filter matches).
    "count" => Count(Count),
    /// A namespace's vectors, page by page, in id order.
    "scroll" => Scroll(Scroll),
    /// Join a shared space.
    "join" => Join(Join),
    /// Contribute to a shared space.
    "contribute" => Contribute(Contribute),
    /// The contributions nearest a point.
    "query_shared" => QueryShared(QueryShared),
    /// The weighted Fréchet mean of a shared space.
    "consensus" => Consensus(ConsensusArgs),
    /// Register the schema of the caller's state.
    "register_state" => RegisterState(RegisterState),
    /// Replace the caller's state.
    "update_state" => UpdateState(UpdateState),
    /// A model's state.
    "get_state" => GetState(GetState),
    /// The models whose states are most alike.
    "find_similar_states" => FindSimilarStates(SimilarStates),
    /// Store a block.
    "store_block" => StoreBlock(StoreBlock),
    /// Blocks nearest in meaning to a text.
    "query_blocks" => QueryBlocks(QueryBlocks),
    /// A block by name.
    "get_block" => GetBlock(NameArg),
    /// Change a block's content or permissions.
    "update_block" => UpdateBlock(UpdateBlock),
    /// Delete a block.
    "delete_block" => DeleteBlock(NameArg),
    /// The blocks the caller may read.
    "list_blocks" => ListBlocks(ListBlocks),
    /// Create and start a sync job (operators only).
    "sync_create" => SyncCreate(SyncSpec),
    /// Every sync job's status (operators only).
    "sync_list" => SyncList(Empty),
    /// One sync job's status (operators only).
    "sync_status" => SyncStatus(NameArg),
    /// Pause a sync job (operators only).
    "sync_pause" => SyncPause(NameArg),
    /// Resume a paused sync job (operators only).
    "sync_resume" => SyncResume(NameArg),
    /// Stop and forget a sync job (operators only).
    "sync_delete" => SyncDelete(NameArg),
    /// The conflicts a sync job met (operators only).
    "sync_conflicts" => SyncConflicts(SyncConflicts),
    /// The change feed's publishing (operators only).
    "cluster_status" => ClusterStatus(Empty),
    /// Create and start a bridge (operators only).
    "bridge_create" => BridgeCreate(BridgeSpec),
    /// Every bridge's status (operators only).
    "bridge_list" => BridgeList(Empty),
    /// One bridge's status (operators only).
    "bridge_status" => BridgeStatus(NameArg),
    /// Stop and forget a bridge (operators only).
    "bridge_delete" => BridgeDelete(NameArg),
    /// Search through a federated or cross-manifold bridge.
    "bridge_search" => BridgeSearch(BridgeSearch),
}

/// Arguments of type `T`, read from a map, or from nil / nothing as an
/// empty map (so operations whose arguments all have defaults need none).
struct Args<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Args<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<T>::deserialize(d)? {
            Some(t) => Ok(Args(t)),
            // 0x80: an empty msgpack map.
            None => from_slice_to(&[0x80], MAX_DEPTH)
                .map(Args)
                .map_err(de::Error::custom),
        }
    }
}

/// A request with its id, as it travels.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFrame {
    /// The client's id for it, echoed in the answer.
    pub id: u64,
    /// The operation and its arguments.
    pub request: Request,
}

impl Serialize for RequestFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("op", self.request.op())?;
        self.request.write_args(&mut map)?;
        map.end()
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    Id,
    Op,
    Args,
    #[serde(other)]
    Other,
}

/// Reads `args` as the operation named before them.
struct ArgsOf<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for ArgsOf<'_> {
    type Value = Request;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Request, D::Error> {
        Request::read_args(self.0, d)
    }
}

struct FrameVisitor;

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = RequestFrame;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a request map {id, op, args}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RequestFrame, A::Error> {
        let (mut id, mut op) = (None, None::<String>);
        let (mut request, mut early) = (None, None::<rmpv::Value>);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => id = Some(map.next_value::<u64>()?),
                Key::Op => op = Some(map.next_value()?),
                // Arguments after the operation (as every client writes
                // them) are read straight as their type; before it, they
                // are kept as a value until the name is known.
                Key::Args => match &op {
                    Some(op) => request = Some(map.next_value_seed(ArgsOf(op))?),
                    None => early = Some(map.next_value()?),
                },
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let op = op.ok_or_else(|| de::Error::missing_field("op"))?;
        let request = match request {
            Some(r) => r,
            None => {
                let args = early.unwrap_or(rmpv::Value::Nil);
                Request::read_args(&op, args).map_err(de::Error::custom)?
            }
        };
        Ok(RequestFrame { id, request })
    }
}

impl<'de> Deserialize<'de> for RequestFrame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FrameVisitor)
    }
}

/// Reads a request frame in one pass. When it cannot be read, the error
/// says why and carries the request's id when that much could be read:
/// `bad_frame` (not a request), `unknown_op`, or `bad_request` (arguments
/// that do not fit the operation).
pub fn decode_request(bytes: &[u8]) -> Result<RequestFrame, (Option<u64>, WireError)> {
    let e = match from_slice_to::<RequestFrame>(bytes, MAX_DEPTH) {
        Ok(f) => return Ok(f),
        Err(e) => e,
    };
    // Only on failure: read the head again to say which.
    match decode_head(bytes) {
        Err(head) => Err((None, head)),
        Ok(h) if !Request::OPS.contains(&h.op.as_str()) => Err((
            Some(h.id),
            WireError::new(codes::UNKNOWN_OP, format!("unknown operation {:?}", h.op)),
        )),
        Ok(h) => Err((Some(h.id), WireError::bad_request(format!("{}: {e}", h.op)))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RawRequest, encode};
    use super::*;

    fn raw(op: &str, args: rmpv::Value) -> Vec<u8> {
        encode(&RawRequest {
            id: 7,
            op: op.into(),
            args,
        })
        .unwrap()
    }

    #[test]
    fn a_request_round_trips_and_absent_args_read_as_defaults() {
        let f = RequestFrame {
            id: 3,
            request: Request::Receive(Receive { max: 5 }),
        };
        assert_eq!(decode_request(&encode(&f).unwrap()).unwrap(), f);
        let back = decode_request(&raw("receive", rmpv::Value::Nil)).unwrap();
        assert_eq!(back.request, Request::Receive(Receive { max: 100 }));
        #[derive(Serialize)]
        struct NoArgs {
            id: u64,
            op: &'static str,
        }
        let bytes = encode(&NoArgs { id: 9, op: "ping" }).unwrap();
        assert_eq!(
            decode_request(&bytes).unwrap().request,
            Request::Ping(Empty {})
        );
    }

    #[test]
    fn arguments_before_the_operation_are_read_too() {
        let args = rmpv::Value::Map(vec![("max".into(), 3.into())]);
        let v = rmpv::Value::Map(vec![
            ("args".into(), args),
            ("id".into(), 1.into()),
            ("op".into(), "receive".into()),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &v).unwrap();
        let f = decode_request(&bytes).unwrap();
        assert_eq!((f.id, f.request), (1, Request::Receive(Receive { max: 3 })));
    }

    /// PROTOCOL.md promises both: a `str` payload is read as its UTF-8
    /// bytes, and integers are accepted where floats are expected.
    #[test]
    fn a_text_payload_and_integer_coordinates_are_accepted() {
        let args = rmpv::Value::Map(vec![
            ("to".into(), "b".into()),
            ("payload".into(), "héllo".into()),
            (
                "vector".into(),
                rmpv::Value::Array(vec![1.into(), 0.into(), 0.5.into()]),
            ),
        ]);
        let Request::Send(m) = decode_request(&raw("send", args)).unwrap().request else {
            panic!("not a send");
        };
        assert_eq!(m.payload, "héllo".as_bytes());
        assert_eq!(m.vector, Some(vec![1.0, 0.0, 0.5]));
    }

    #[test]
    fn wrong_arguments_and_unknown_operations_say_which_with_the_id() {
        let args = rmpv::Value::Map(vec![("max".into(), "many".into())]);
        let (id, e) = decode_request(&raw("receive", args)).unwrap_err();
        assert_eq!((id, e.code.as_str()), (Some(7), codes::BAD_REQUEST));
        let (id, e) = decode_request(&raw("fly", rmpv::Value::Nil)).unwrap_err();
        assert_eq!((id, e.code.as_str()), (Some(7), codes::UNKNOWN_OP));
        let (id, e) = decode_request(b"\xc1").unwrap_err();
        assert_eq!((id, e.code.as_str()), (None, codes::BAD_FRAME));
    }

    #[test]
    fn every_operation_is_named_once() {
        let mut ops = Request::OPS.to_vec();
        ops.sort_unstable();
        ops.dedup();
        assert_eq!(ops.len(), Request::OPS.len());
    }
}
