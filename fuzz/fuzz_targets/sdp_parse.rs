//! Any bytes as an SDP offer: parse, then answer with a fixed local media.
#![no_main]

use guichet::sdp::{self, LocalMedia};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let local = LocalMedia {
        addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)),
        port: 40_000,
        session_id: 1,
        version: 1,
    };
    let _ = sdp::parse(data);
    let _ = sdp::answer(data, &local);
});
