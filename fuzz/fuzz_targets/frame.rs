//! A frame body from a peer, into every decoder the server and the client
//! run on it.
#![no_main]

use hvs_runtime::protocol as p;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = p::decode_head(data);
    let _ = p::decode::<p::ServerFrame>(data);
    let _ = p::args_of::<p::Hello>(data);
    let _ = p::args_of::<p::WireOutgoing>(data);
    let _ = p::args_of::<p::SendBatch>(data);
    let _ = p::args_of::<p::WireBroadcast>(data);
    let _ = p::args_of::<p::Search>(data);
    let _ = p::args_of::<p::StoreVector>(data);
    let _ = p::args_of::<p::CreateNamespace>(data);
    let _ = p::args_of::<p::Contribute>(data);
    let _ = p::args_of::<p::ConsensusArgs>(data);
    let _ = p::args_of::<p::StoreBlock>(data);
    let _ = p::args_of::<p::Ids>(data);
});
