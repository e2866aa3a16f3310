//! Any bytes through the SIP message façade: one datagram, the plain parser, and the
//! TCP framer (whole, then in small chunks), each framed message read again.
#![no_main]

use guichet::sip::message::{self, Incoming, StreamFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Incoming::Refuse { response, .. } = message::read_datagram(data) {
        // A refusal we build must itself be a well-formed response.
        assert!(response.starts_with(b"SIP/2.0 "));
    }
    let _ = message::parse(data);
    let split = data.first().map_or(1, |b| usize::from(*b % 16) + 1);
    for chunk in [data.len().max(1), split] {
        let mut framer = StreamFramer::new(4096);
        for piece in data.chunks(chunk) {
            framer.push(piece);
            while let Ok(Some(m)) = framer.next_message() {
                let _ = message::read_datagram(&m);
            }
        }
        let _ = framer.take_pings();
    }
});
