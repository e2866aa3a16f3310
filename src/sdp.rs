//! SDP offer/answer (RFC 3264 / RFC 4566) for G.711 audio with telephone-event.
//!
//! Input: the remote offer (or answer) as bytes and our local media address.
//! Output: our answer (or offer) as bytes and the negotiated [`Session`] parameters.
//! Parsing is webrtc-sdp's; the negotiation rules are ours. No IO.
//!
//! API CONTRACT (other modules code against these signatures; keep them, extend freely).

use std::net::{IpAddr, SocketAddr};

/// The audio codecs Guichet speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 mu-law (static payload type 0).
    Pcmu,
    /// G.711 A-law (static payload type 8).
    Pcma,
}

/// An SDP direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// Where our RTP is, and the SDP origin counters of our side of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address we receive RTP on (put in `c=`), IPv4 or IPv6.
    pub addr: IpAddr,
    /// Our even RTP port (RTCP is +1).
    pub port: u16,
    /// `o=` session id, constant for the call.
    pub session_id: u64,
    /// `o=` version; the caller of [`answer`]/[`offer`] increments it when the SDP changes.
    pub version: u64,
}

/// The negotiated audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Where to send RTP; `None` when the remote put a null address / port 0 (on hold).
    pub remote: Option<SocketAddr>,
    /// The codec chosen (the first of the offerer's list we support).
    pub codec: Codec,
    /// Payload type of that codec, as numbered by the offerer.
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Packetisation time in milliseconds (offer's `a=ptime`, default 20).
    pub ptime_ms: u16,
    /// What we may do: `SendRecv`, or `RecvOnly`/`Inactive` when the remote holds the call.
    pub local_direction: Direction,
}

/// Our answer to an offer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The SDP body to send.
    pub sdp: Vec<u8>,
    /// What was agreed.
    pub session: Session,
}

/// Why an SDP could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SdpError {
    /// Not valid SDP.
    #[error("SDP does not parse: {0}")]
    Parse(String),
    /// No `m=audio` line we could use.
    #[error("no audio stream in the SDP")]
    NoAudio,
    /// The offer has audio but none of PCMU/PCMA (answer with 488 and a Warning).
    #[error("no common codec: offered payload types {0:?}, we accept PCMU (0) and PCMA (8)")]
    NoCommonCodec(Vec<u8>),
}

/// Parse bytes as SDP (exposed for fuzzing). Never panics.
pub fn parse(bytes: &[u8]) -> Result<webrtc_sdp::SdpSession, SdpError> {
    let _ = bytes;
    Err(SdpError::NoAudio)
}

/// Answer a remote offer (RFC 3264 section 6).
pub fn answer(offer: &[u8], local: &LocalMedia) -> Result<Answer, SdpError> {
    let _ = (offer, local);
    Err(SdpError::NoAudio)
}

/// Our own offer, for an INVITE that came without SDP (answered in the ACK) and for
/// INVITEs Guichet sends: PCMU, PCMA, telephone-event 101, ptime 20, sendrecv.
pub fn offer(local: &LocalMedia) -> Vec<u8> {
    let _ = local;
    Vec::new()
}

/// Take the remote answer to an offer we made with [`offer`].
pub fn accept_answer(answer: &[u8]) -> Result<Session, SdpError> {
    let _ = answer;
    Err(SdpError::NoAudio)
}
