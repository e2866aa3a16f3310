//! SIP (RFC 3261 and friends), sans-IO.
//!
//! - [`message`]: parse/print façade over rsipstack's message types, validation of what a
//!   UAS must refuse (400/416/420/415/505...), response building, TCP stream framing.
//! - `transaction`: RFC 3261 section 17 (with RFC 6026) server and client transactions,
//!   driven by inputs stamped with `now` and exposing their next deadline.
//! - `dialog`: dialog state (tags, route set, remote target, CSeq).
//! - `headers`: small header accessors (top Via, tags, CSeq, URIs) over the façade types.
//! - `ratelimit`: per-source token buckets in a bounded table.
//! - [`endpoint`]: the UAS core that owns transactions and dialogs for one SIP endpoint
//!   (its request handling lives in the private `uas` module):
//!   datagrams in, datagrams and call events out.
//!
//! Nothing here touches a socket, tokio or the clock.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod headers;
pub mod message;
pub mod ratelimit;
pub mod registrar;
pub mod transaction;
mod uas;
