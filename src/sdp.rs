//! SDP offer/answer (RFC 3264 / RFC 4566) for G.711 audio with telephone-event.
//!
//! Input: the remote offer (or answer) as bytes and our local media address.
//! Output: our answer (or offer) as bytes and the negotiated [`Session`] parameters.
//! Parsing is webrtc-sdp's; the negotiation rules are ours. No IO.
//!
//! API CONTRACT (other modules code against these signatures; keep them, extend freely).
//!
//! # Negotiation rules ([`answer`])
//! - Every offered m-line gets an answer m-line, in the same order. We accept one audio
//!   stream (`m=audio`, `RTP/AVP`, port not 0): the first that offers PCMU or PCMA. Every
//!   other m-line (video, image/T.38, SRTP audio, a second audio stream, a port-0 stream)
//!   is answered with port 0.
//! - The codec is the first offered payload type that is PCMU or PCMA, recognised by its
//!   `a=rtpmap` name (`PCMU/8000`, `PCMA/8000`, any case) or, without rtpmap, by the static
//!   numbers 0 and 8. The offerer's payload numbers are kept. telephone-event/8000 is
//!   accepted with the offerer's number; its `a=fmtp` is `0-16` when the offer says `0-16`,
//!   else `0-15`. The answer lists only these, in the offerer's order.
//! - `a=ptime` is the offer's (media level, else session level) when it is 10..=60 in steps
//!   of 10, else 20.
//! - Direction per RFC 3264 section 6.1 (sendonly -> recvonly, recvonly -> sendonly,
//!   inactive -> inactive, sendrecv -> sendrecv). An RFC 2543 hold (`c=` 0.0.0.0 or `::`)
//!   gives `Session::remote == None` and drops our sending half (sendrecv -> recvonly).
//!
//! # Tolerance
//! webrtc-sdp is written for WebRTC and rejects some SDP that SIP trunks send. [`parse`]
//! runs a pre-pass before it: any line ending (CRLF, LF, CR); lines before `v=` ignored;
//! `e= p= u= z= r= k=` dropped (webrtc-sdp refuses them; we do not need them); an `a=`
//! or `b=` line webrtc-sdp cannot parse, or that is not allowed at its level, is dropped
//! (a session-level `a=ptime` is kept aside and used as the default ptime); a second `c=`
//! or `i=` in one media section is dropped; an `o=` line it cannot parse (session id above
//! 2^64, odd address) is replaced by a neutral one; a missing `t=` is added; an `m=` line
//! it cannot parse (e.g. `m=image 0 udptl t38`, whose protocol it does not know and would
//! silently drop, shifting the media order) is replaced by a placeholder so the media order
//! is kept and the line is answered with port 0 from its original text.
//!
//! # Example
//! ```
//! use guichet::sdp::{answer, Codec, Direction, LocalMedia};
//! let local = LocalMedia { addr: "192.0.2.10".parse().unwrap(), port: 20000,
//!                          session_id: 42, version: 1 };
//! let offer = b"v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
//!               t=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
//!               a=fmtp:101 0-16\r\n";
//! let ans = answer(offer, &local).unwrap();
//! assert_eq!(ans.session.codec, Codec::Pcma);
//! assert_eq!(ans.session.telephone_event, Some(101));
//! assert_eq!(ans.session.local_direction, Direction::SendRecv);
//! assert_eq!(ans.session.remote, Some("198.51.100.7:4000".parse().unwrap()));
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use webrtc_sdp::address::ExplicitlyTypedAddress;
use webrtc_sdp::attribute_type::{SdpAttribute, SdpAttributeRtpmap};
use webrtc_sdp::error::SdpParserError;
use webrtc_sdp::media_type::{SdpFormatList, SdpMedia, SdpMediaValue, SdpProtocolValue};
use webrtc_sdp::{SdpSession, SdpType};

/// The audio codecs Guichet speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 mu-law (static payload type 0).
    Pcmu,
    /// G.711 A-law (static payload type 8).
    Pcma,
}

impl Codec {
    /// The rtpmap encoding name (`PCMU`, `PCMA`).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The static RTP payload type (RFC 3551): 0 or 8.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
}

/// An SDP direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...), as written after `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The same stream seen from the other side (RFC 3264 section 6.1):
    /// sendonly <-> recvonly, sendrecv and inactive unchanged.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether this side may send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side expects to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// This direction without its sending half (sendrecv -> recvonly, sendonly -> inactive).
    pub fn without_send(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::RecvOnly => Direction::RecvOnly,
            Direction::SendOnly | Direction::Inactive => Direction::Inactive,
        }
    }

    /// The direction we offer to put the remote on hold (RFC 3264 section 8.4): `sendonly`
    /// if we were sending and receiving, `inactive` if we were only receiving.
    pub fn hold(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
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
    /// Not valid SDP, even after the tolerant pre-pass (webrtc-sdp's error, with the
    /// offending line and its number where it has them).
    #[error("SDP does not parse: {0}")]
    Parse(#[from] SdpParserError),
    /// No `m=audio` line we could use.
    #[error("no audio stream in the SDP")]
    NoAudio,
    /// The offer has audio but none of PCMU/PCMA (answer with 488 and a Warning).
    #[error("no common codec: offered payload types {0:?}, we accept PCMU (0) and PCMA (8)")]
    NoCommonCodec(Vec<u8>),
    /// The audio stream's `c=` names a host, not an IP address; we do not resolve names.
    #[error("media connection address is a host name ({0}), not an IP address")]
    HostnameAddress(String),
}

/// Default and fallback packetisation time.
pub const DEFAULT_PTIME_MS: u16 = 20;
/// The telephone-event payload type of our own offers.
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;

/// Parse bytes as SDP (exposed for fuzzing). Never panics.
///
/// Runs the tolerant pre-pass described in the module docs, then webrtc-sdp.
pub fn parse(bytes: &[u8]) -> Result<SdpSession, SdpError> {
    Ok(prepare(bytes)?.session)
}

/// Answer a remote offer (RFC 3264 section 6).
pub fn answer(offer: &[u8], local: &LocalMedia) -> Result<Answer, SdpError> {
    let parsed = prepare(offer)?;
    let session_direction = session_direction(&parsed.session);

    // Find the stream we take: the first usable audio stream with a common codec.
    let mut chosen: Option<(usize, Choice, Option<SocketAddr>)> = None;
    let mut first_offered_pts: Option<Vec<u8>> = None;
    for (index, media) in parsed.session.media.iter().enumerate() {
        if !is_usable_audio(media) {
            continue;
        }
        let remote = remote_addr(&parsed.session, media)?;
        match choose(media) {
            Some(choice) => {
                chosen = Some((index, choice, remote));
                break;
            }
            None => {
                if first_offered_pts.is_none() {
                    first_offered_pts = Some(payload_types(media));
                }
            }
        }
    }
    let Some((chosen_index, choice, remote)) = chosen else {
        return Err(match first_offered_pts {
            Some(pts) => SdpError::NoCommonCodec(pts),
            None => SdpError::NoAudio,
        });
    };

    let media = parsed
        .session
        .media
        .get(chosen_index)
        .ok_or(SdpError::NoAudio)?;
    let offered_direction = media_direction(media).unwrap_or(session_direction);
    let mut local_direction = offered_direction.reversed();
    if remote.is_none() {
        local_direction = local_direction.without_send();
    }
    let ptime_ms = media_ptime(media)
        .or(parsed.session_ptime)
        .map_or(DEFAULT_PTIME_MS, valid_ptime);

    let session = Session {
        remote,
        codec: choice.codec,
        payload_type: choice.payload_type,
        telephone_event: choice.telephone_event.map(|(pt, _)| pt),
        ptime_ms,
        local_direction,
    };

    let mut sdp = session_header(local);
    for index in 0..parsed.session.media.len() {
        if index == chosen_index {
            write_accepted_audio(&mut sdp, local.port, &choice, ptime_ms, local_direction);
        } else {
            write_rejected(&mut sdp, parsed.raw_media.get(index));
        }
    }
    Ok(Answer {
        sdp: sdp.into_bytes(),
        session,
    })
}

/// Our own offer, for an INVITE that came without SDP (answered in the ACK) and for
/// INVITEs Guichet sends: PCMU, PCMA, telephone-event 101, ptime 20, sendrecv.
pub fn offer(local: &LocalMedia) -> Vec<u8> {
    offer_with_direction(local, Direction::SendRecv)
}

/// Like [`offer`] with another direction, e.g. [`Direction::hold`] for a re-INVITE that
/// puts the remote on hold (RFC 3264 section 8.4).
pub fn offer_with_direction(local: &LocalMedia, direction: Direction) -> Vec<u8> {
    let te = OFFER_TELEPHONE_EVENT_PT;
    let mut sdp = session_header(local);
    // Writing to a String cannot fail.
    let _ = write!(
        sdp,
        "m=audio {port} RTP/AVP 0 8 {te}\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{te} telephone-event/8000\r\n\
         a=fmtp:{te} 0-16\r\n\
         a=ptime:{ptime}\r\n\
         a={dir}\r\n",
        port = local.port,
        ptime = DEFAULT_PTIME_MS,
        dir = direction.as_str(),
    );
    sdp.into_bytes()
}

/// Take the remote answer to an offer we made with [`offer`].
///
/// The first audio m-line with a non-zero port must carry PCMU or PCMA (the first one
/// listed is taken); telephone-event is taken with the answer's number. The answer's
/// direction is reversed for ours (answer `recvonly` -> we are `sendonly`).
pub fn accept_answer(answer: &[u8]) -> Result<Session, SdpError> {
    let parsed = prepare(answer)?;
    let session_direction = session_direction(&parsed.session);
    let media = parsed
        .session
        .media
        .iter()
        .find(|m| is_usable_audio(m))
        .ok_or(SdpError::NoAudio)?;
    let remote = remote_addr(&parsed.session, media)?;
    let choice = choose(media).ok_or_else(|| SdpError::NoCommonCodec(payload_types(media)))?;
    let answered_direction = media_direction(media).unwrap_or(session_direction);
    let mut local_direction = answered_direction.reversed();
    if remote.is_none() {
        local_direction = local_direction.without_send();
    }
    let ptime_ms = media_ptime(media)
        .or(parsed.session_ptime)
        .map_or(DEFAULT_PTIME_MS, valid_ptime);
    Ok(Session {
        remote,
        codec: choice.codec,
        payload_type: choice.payload_type,
        telephone_event: choice.telephone_event.map(|(pt, _)| pt),
        ptime_ms,
        local_direction,
    })
}

// ---------------------------------------------------------------------------------------
// Pre-pass and parse

/// The original text of one m-line, to answer it with port 0.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawMedia {
    media: String,
    proto: String,
    formats: String,
}

struct Prepared {
    session: SdpSession,
    /// One per m-line of the input, in order.
    raw_media: Vec<RawMedia>,
    /// A session-level `a=ptime` (webrtc-sdp refuses it there).
    session_ptime: Option<u64>,
}

/// An m-line webrtc-sdp cannot parse is replaced by this, to keep the media order.
const PLACEHOLDER_MEDIA: &str = "m=x-guichet-unsupported 0 RTP/AVP 0";
/// Added at session level when some media section has no `c=` and the session has none.
const NULL_CONNECTION: &str = "c=IN IP4 0.0.0.0";
/// An o-line webrtc-sdp cannot parse is replaced by this (we never use the remote origin).
const PLACEHOLDER_ORIGIN: &str = "o=- 0 0 IN IP4 0.0.0.0";

fn prepare(bytes: &[u8]) -> Result<Prepared, SdpError> {
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<String> = Vec::new();
    let mut raw_media = Vec::new();
    let mut session_ptime = None;
    let mut seen_version = false;
    let mut seen_timing = false;
    let mut in_media = false;
    let mut media_has_connection = false;
    let mut media_has_information = false;
    let mut session_has_connection = false;
    let mut every_media_has_connection = true;
    let mut first_media_line: Option<usize> = None;

    for line in text.split(['\r', '\n']) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim()),
            None => {
                // Not an SDP line: let webrtc-sdp report it (unless before v=).
                if seen_version {
                    out.push(line.to_owned());
                }
                continue;
            }
        };
        if !seen_version {
            if kind == "v" {
                seen_version = true;
            } else {
                continue;
            }
        }
        match kind.as_str() {
            "e" | "p" | "u" | "z" | "r" | "k" => {}
            "o" => {
                let normalized = format!("o={}", join_ws(value));
                if webrtc_sdp::parse_sdp_line(&normalized, 0).is_ok() {
                    out.push(normalized);
                } else {
                    out.push(PLACEHOLDER_ORIGIN.to_owned());
                }
            }
            "t" => {
                if !in_media && !seen_timing {
                    seen_timing = true;
                    out.push(format!("t={}", join_ws(value)));
                }
            }
            "m" => {
                if !seen_timing {
                    seen_timing = true;
                    out.push("t=0 0".to_owned());
                }
                if in_media && !media_has_connection {
                    every_media_has_connection = false;
                }
                if first_media_line.is_none() {
                    first_media_line = Some(out.len());
                }
                in_media = true;
                media_has_connection = false;
                media_has_information = false;
                let tokens: Vec<&str> = value.split_whitespace().collect();
                raw_media.push(RawMedia {
                    media: tokens.first().copied().unwrap_or("audio").to_owned(),
                    proto: tokens.get(2).copied().unwrap_or("RTP/AVP").to_owned(),
                    formats: tokens.get(3..).map(|f| f.join(" ")).unwrap_or_default(),
                });
                let normalized = format!("m={}", tokens.join(" "));
                match webrtc_sdp::parse_sdp_line(&normalized, 0) {
                    Ok(_) => out.push(normalized),
                    Err(_) => out.push(PLACEHOLDER_MEDIA.to_owned()),
                }
            }
            "c" => {
                if in_media {
                    if media_has_connection {
                        continue;
                    }
                    media_has_connection = true;
                } else {
                    session_has_connection = true;
                }
                out.push(format!("c={}", join_ws(value)));
            }
            "i" => {
                if in_media {
                    if media_has_information {
                        continue;
                    }
                    media_has_information = true;
                }
                out.push(line.to_owned());
            }
            "b" => {
                if webrtc_sdp::parse_sdp_line(line, 0).is_ok() {
                    out.push(line.to_owned());
                }
            }
            "a" => {
                let Ok(parsed) = webrtc_sdp::parse_sdp_line(line, 0) else {
                    continue;
                };
                let SdpType::Attribute(attribute) = parsed.sdp_type else {
                    continue;
                };
                if in_media {
                    if attribute.allowed_at_media_level() {
                        out.push(line.to_owned());
                    }
                } else if attribute.allowed_at_session_level() {
                    out.push(line.to_owned());
                } else if let SdpAttribute::Ptime(ptime) = attribute {
                    session_ptime = Some(ptime);
                }
            }
            _ => out.push(line.to_owned()),
        }
    }
    if !seen_timing && seen_version {
        out.push("t=0 0".to_owned());
    }
    if in_media && !media_has_connection {
        every_media_has_connection = false;
    }
    // webrtc-sdp refuses a media section without c= when there is no session-level c=;
    // trunks do that for rejected (port 0) streams. A null session address makes such a
    // section unusable (on hold) without touching the others.
    if !session_has_connection
        && !every_media_has_connection
        && let Some(at) = first_media_line
    {
        out.insert(at, NULL_CONNECTION.to_owned());
    }
    let mut joined = out.join("\r\n");
    joined.push_str("\r\n");
    let session = webrtc_sdp::parse_sdp(&joined, false)?;
    Ok(Prepared {
        session,
        raw_media,
        session_ptime,
    })
}

fn join_ws(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------
// Negotiation helpers

/// What we take from one audio m-line.
#[derive(Debug, Clone, Copy)]
struct Choice {
    codec: Codec,
    payload_type: u8,
    /// telephone-event payload type and whether the offer asked for 0-16 (with flash).
    telephone_event: Option<(u8, bool)>,
    /// Whether telephone-event comes before the codec in the offerer's list.
    telephone_event_first: bool,
}

enum Payload {
    Audio(Codec),
    TelephoneEvent,
    Other,
}

fn is_usable_audio(media: &SdpMedia) -> bool {
    matches!(media.get_type(), SdpMediaValue::Audio)
        && matches!(media.get_proto(), SdpProtocolValue::RtpAvp)
        && media.get_port() != 0
}

fn payload_types(media: &SdpMedia) -> Vec<u8> {
    match media.get_formats() {
        SdpFormatList::Integers(list) => list
            .iter()
            .filter_map(|pt| u8::try_from(*pt).ok())
            .collect(),
        _ => Vec::new(),
    }
}

fn rtpmap_of(media: &SdpMedia, pt: u8) -> Option<&SdpAttributeRtpmap> {
    media.get_attributes().iter().find_map(|a| match a {
        SdpAttribute::Rtpmap(map) if map.payload_type == pt => Some(map),
        _ => None,
    })
}

fn classify(media: &SdpMedia, pt: u8) -> Payload {
    match rtpmap_of(media, pt) {
        Some(map) => {
            let mono = map.channels.is_none_or(|c| c == 1);
            let name = map.codec_name.as_str();
            if map.frequency != 8000 || !mono {
                Payload::Other
            } else if name.eq_ignore_ascii_case("PCMU") {
                Payload::Audio(Codec::Pcmu)
            } else if name.eq_ignore_ascii_case("PCMA") {
                Payload::Audio(Codec::Pcma)
            } else if name.eq_ignore_ascii_case("telephone-event") {
                Payload::TelephoneEvent
            } else {
                Payload::Other
            }
        }
        None => match pt {
            0 => Payload::Audio(Codec::Pcmu),
            8 => Payload::Audio(Codec::Pcma),
            _ => Payload::Other,
        },
    }
}

fn choose(media: &SdpMedia) -> Option<Choice> {
    let mut codec: Option<(Codec, u8)> = None;
    let mut telephone_event: Option<(u8, bool)> = None;
    let mut telephone_event_first = false;
    for pt in payload_types(media) {
        if pt > 127 {
            continue;
        }
        match classify(media, pt) {
            Payload::Audio(c) if codec.is_none() => codec = Some((c, pt)),
            Payload::TelephoneEvent if telephone_event.is_none() => {
                telephone_event_first = codec.is_none();
                telephone_event = Some((pt, offers_flash(media, pt)));
            }
            _ => {}
        }
    }
    let (codec, payload_type) = codec?;
    Some(Choice {
        codec,
        payload_type,
        telephone_event,
        telephone_event_first,
    })
}

/// Whether the fmtp of telephone-event `pt` is `0-16` (digits and flash).
fn offers_flash(media: &SdpMedia, pt: u8) -> bool {
    media.get_attributes().iter().any(|a| match a {
        SdpAttribute::Fmtp(fmtp) if fmtp.payload_type == pt => {
            fmtp.parameters.dtmf_tones.trim() == "0-16"
        }
        _ => false,
    })
}

fn direction_of(attribute: &SdpAttribute) -> Option<Direction> {
    match attribute {
        SdpAttribute::Sendrecv => Some(Direction::SendRecv),
        SdpAttribute::Sendonly => Some(Direction::SendOnly),
        SdpAttribute::Recvonly => Some(Direction::RecvOnly),
        SdpAttribute::Inactive => Some(Direction::Inactive),
        _ => None,
    }
}

fn media_direction(media: &SdpMedia) -> Option<Direction> {
    media.get_attributes().iter().rev().find_map(direction_of)
}

fn session_direction(session: &SdpSession) -> Direction {
    session
        .attribute
        .iter()
        .rev()
        .find_map(direction_of)
        .unwrap_or(Direction::SendRecv)
}

fn media_ptime(media: &SdpMedia) -> Option<u64> {
    media.get_attributes().iter().find_map(|a| match a {
        SdpAttribute::Ptime(p) => Some(*p),
        _ => None,
    })
}

/// 10..=60 in steps of 10, else the default.
fn valid_ptime(ptime: u64) -> u16 {
    match u16::try_from(ptime) {
        Ok(p) if (10..=60).contains(&p) && p % 10 == 0 => p,
        _ => DEFAULT_PTIME_MS,
    }
}

/// The remote RTP address of a media section: media-level `c=` wins over session-level.
/// A null address (0.0.0.0, ::) means hold: `None`.
fn remote_addr(session: &SdpSession, media: &SdpMedia) -> Result<Option<SocketAddr>, SdpError> {
    let connection = media
        .get_connection()
        .as_ref()
        .or(session.get_connection().as_ref());
    let Some(connection) = connection else {
        return Ok(None);
    };
    let ip = match &connection.address {
        ExplicitlyTypedAddress::Ip(ip) => *ip,
        ExplicitlyTypedAddress::Fqdn { domain, .. } => {
            return Err(SdpError::HostnameAddress(domain.clone()));
        }
    };
    let port = u16::try_from(media.get_port()).unwrap_or(0);
    if ip.is_unspecified() || port == 0 {
        return Ok(None);
    }
    Ok(Some(SocketAddr::new(ip, port)))
}

// ---------------------------------------------------------------------------------------
// Writing

fn addr_type(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(local: &LocalMedia) -> String {
    let at = addr_type(local.addr);
    let mut sdp = String::with_capacity(320);
    // Writing to a String cannot fail.
    let _ = write!(
        sdp,
        "v=0\r\n\
         o=guichet {sid} {ver} IN {at} {addr}\r\n\
         s=-\r\n\
         c=IN {at} {addr}\r\n\
         t=0 0\r\n",
        sid = local.session_id,
        ver = local.version,
        addr = local.addr,
    );
    sdp
}

fn write_accepted_audio(
    sdp: &mut String,
    port: u16,
    choice: &Choice,
    ptime_ms: u16,
    direction: Direction,
) {
    let codec_pt = choice.payload_type;
    let mut pts = vec![codec_pt];
    if let Some((te, _)) = choice.telephone_event {
        if choice.telephone_event_first {
            pts.insert(0, te);
        } else {
            pts.push(te);
        }
    }
    let pts: Vec<String> = pts.iter().map(u8::to_string).collect();
    // Writing to a String cannot fail.
    let _ = write!(
        sdp,
        "m=audio {port} RTP/AVP {list}\r\n",
        list = pts.join(" ")
    );
    let codec_line = format!(
        "a=rtpmap:{codec_pt} {}/8000\r\n",
        choice.codec.encoding_name()
    );
    let te_lines = choice.telephone_event.map(|(te, flash)| {
        let events = if flash { "0-16" } else { "0-15" };
        format!("a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} {events}\r\n")
    });
    match te_lines {
        Some(te) if choice.telephone_event_first => {
            sdp.push_str(&te);
            sdp.push_str(&codec_line);
        }
        Some(te) => {
            sdp.push_str(&codec_line);
            sdp.push_str(&te);
        }
        None => sdp.push_str(&codec_line),
    }
    let _ = write!(sdp, "a=ptime:{ptime_ms}\r\na={}\r\n", direction.as_str());
}

fn write_rejected(sdp: &mut String, raw: Option<&RawMedia>) {
    let (media, proto, formats) = match raw {
        Some(raw) => (raw.media.as_str(), raw.proto.as_str(), raw.formats.as_str()),
        None => ("audio", "RTP/AVP", "0"),
    };
    let formats = if formats.is_empty() { "0" } else { formats };
    // Writing to a String cannot fail.
    let _ = write!(sdp, "m={media} 0 {proto} {formats}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn local4() -> LocalMedia {
        LocalMedia {
            addr: "192.0.2.10".parse().unwrap(),
            port: 20000,
            session_id: 4242,
            version: 7,
        }
    }

    fn local6() -> LocalMedia {
        LocalMedia {
            addr: "2001:db8::1".parse().unwrap(),
            port: 20002,
            session_id: 99,
            version: 1,
        }
    }

    /// Turn a fixture written with `\n` into CRLF SDP, as on the wire.
    fn crlf(text: &str) -> Vec<u8> {
        text.trim_start()
            .lines()
            .map(|l| format!("{}\r\n", l.trim()))
            .collect::<String>()
            .into_bytes()
    }

    struct Expect<'a> {
        codec: Codec,
        pt: u8,
        te: Option<u8>,
        ptime: u16,
        direction: Direction,
        remote: Option<&'a str>,
        /// The answer's lines after the session header (`v= o= s= c= t=`).
        media: &'a str,
    }

    fn check(offer: &[u8], local: &LocalMedia, expect: Expect<'_>) -> Answer {
        let answer = answer(offer, local).unwrap();
        let s = &answer.session;
        assert_eq!(s.codec, expect.codec, "codec");
        assert_eq!(s.payload_type, expect.pt, "payload type");
        assert_eq!(s.telephone_event, expect.te, "telephone-event");
        assert_eq!(s.ptime_ms, expect.ptime, "ptime");
        assert_eq!(s.local_direction, expect.direction, "direction");
        assert_eq!(
            s.remote,
            expect.remote.map(|r| r.parse::<SocketAddr>().unwrap()),
            "remote"
        );
        let at = if local.addr.is_ipv4() { "IP4" } else { "IP6" };
        let expected_text = format!(
            "v=0\r\no=guichet {} {} IN {at} {addr}\r\ns=-\r\nc=IN {at} {addr}\r\nt=0 0\r\n{}",
            local.session_id,
            local.version,
            crlf_str(expect.media),
            addr = local.addr,
        );
        let text = String::from_utf8(answer.sdp.clone()).unwrap();
        assert_eq!(text, expected_text);
        // Our answer must itself be valid SDP that we can read back.
        let back = accept_answer(&answer.sdp).unwrap();
        assert_eq!(back.codec, s.codec);
        assert_eq!(back.payload_type, s.payload_type);
        assert_eq!(back.telephone_event, s.telephone_event);
        assert_eq!(back.ptime_ms, s.ptime_ms);
        answer
    }

    fn crlf_str(text: &str) -> String {
        String::from_utf8(crlf(text)).unwrap()
    }

    #[test]
    fn asterisk_offer() {
        let offer = crlf(
            "
            v=0
            o=- 1888420393 1888420393 IN IP4 10.0.0.5
            s=Asterisk
            c=IN IP4 10.0.0.5
            t=0 0
            m=audio 14526 RTP/AVP 0 8 3 111 101
            a=rtpmap:0 PCMU/8000
            a=rtpmap:8 PCMA/8000
            a=rtpmap:3 GSM/8000
            a=rtpmap:111 G726-32/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-16
            a=ptime:20
            a=maxptime:150
            a=sendrecv
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("10.0.0.5:14526"),
                media: "
                m=audio 20000 RTP/AVP 0 101
                a=rtpmap:0 PCMU/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-16
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn freeswitch_offer_prefers_pcma() {
        let offer = crlf(
            "
            v=0
            o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.20
            s=FreeSWITCH
            c=IN IP4 203.0.113.20
            t=0 0
            m=audio 24680 RTP/AVP 8 0 9 101 13
            a=rtpmap:8 PCMA/8000
            a=rtpmap:0 PCMU/8000
            a=rtpmap:9 G722/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-16
            a=ptime:20
            a=rtcp:24681 IN IP4 203.0.113.20
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("203.0.113.20:24680"),
                media: "
                m=audio 20000 RTP/AVP 8 101
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-16
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn cisco_cube_offer_media_level_connection_wins() {
        let offer = crlf(
            "
            v=0
            o=CiscoSystemsSIP-GW-UserAgent 4432 9115 IN IP4 192.0.2.50
            s=SIP Call
            c=IN IP4 192.0.2.50
            t=0 0
            m=audio 17044 RTP/AVP 18 8 0 101 19
            c=IN IP4 192.0.2.51
            a=rtpmap:18 G729/8000
            a=fmtp:18 annexb=no
            a=rtpmap:8 PCMA/8000
            a=rtpmap:0 PCMU/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-15
            a=rtpmap:19 CN/8000
            a=ptime:20
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("192.0.2.51:17044"),
                media: "
                m=audio 20000 RTP/AVP 8 101
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn linphone_offer_picks_8000_hz_telephone_event() {
        let offer = crlf(
            "
            v=0
            o=alice 3203 1303 IN IP4 192.168.1.20
            s=Talk
            c=IN IP4 192.168.1.20
            t=0 0
            a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
            m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
            a=rtpmap:96 opus/48000/2
            a=fmtp:96 useinbandfec=1
            a=rtpmap:97 SILK/16000
            a=rtpmap:98 speex/16000
            a=fmtp:98 vbr=on
            a=rtpmap:101 telephone-event/48000
            a=rtpmap:99 telephone-event/16000
            a=rtpmap:100 telephone-event/8000
            a=fmtp:18 annexb=yes
            a=rtcp-fb:* trr-int 1000
            a=rtcp-fb:* ccm tmmbr
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: Some(100),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("192.168.1.20:7078"),
                media: "
                m=audio 20000 RTP/AVP 0 100
                a=rtpmap:0 PCMU/8000
                a=rtpmap:100 telephone-event/8000
                a=fmtp:100 0-15
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn sipp_uac_pcap_offer() {
        // SIPp's uac_pcap.xml scenario body, with its `0-11,16` event list.
        let offer = crlf(
            "
            v=0
            o=user1 53655765 2353687637 IN IP4 127.0.0.1
            s=-
            c=IN IP4 127.0.0.1
            t=0 0
            m=audio 6000 RTP/AVP 8 101
            a=rtpmap:8 PCMA/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-11,16
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("127.0.0.1:6000"),
                media: "
                m=audio 20000 RTP/AVP 8 101
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn sipp_default_uac_offer_pcmu_only() {
        let offer = crlf(
            "
            v=0
            o=user1 53655765 2353687637 IN IP4 127.0.0.1
            s=-
            c=IN IP4 127.0.0.1
            t=0 0
            m=audio 6000 RTP/AVP 0
            a=rtpmap:0 PCMU/8000
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: None,
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("127.0.0.1:6000"),
                media: "
                m=audio 20000 RTP/AVP 0
                a=rtpmap:0 PCMU/8000
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn trunk_with_only_pcma() {
        let offer = crlf(
            "
            v=0
            o=- 123456 654321 IN IP4 212.27.52.5
            s=-
            c=IN IP4 212.27.52.5
            t=0 0
            m=audio 40000 RTP/AVP 8 101
            a=rtpmap:8 PCMA/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-15
            a=sendrecv
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("212.27.52.5:40000"),
                media: "
                m=audio 20000 RTP/AVP 8 101
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn ipv6_offer_and_ipv6_local() {
        let offer = crlf(
            "
            v=0
            o=- 2890844526 2890842807 IN IP6 2001:db8::10
            s=-
            c=IN IP6 2001:db8::10
            t=0 0
            m=audio 49170 RTP/AVP 0
            ",
        );
        check(
            &offer,
            &local6(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: None,
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("[2001:db8::10]:49170"),
                media: "
                m=audio 20002 RTP/AVP 0
                a=rtpmap:0 PCMU/8000
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn g729_then_pcma_without_rtpmap_for_static_types() {
        let offer = crlf(
            "
            v=0
            o=- 1 1 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 30000 RTP/AVP 18 8
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: None,
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("198.51.100.7:30000"),
                media: "
                m=audio 20000 RTP/AVP 8
                a=rtpmap:8 PCMA/8000
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn telephone_event_at_96_listed_first() {
        let offer = crlf(
            "
            v=0
            o=- 1 1 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 5004 RTP/AVP 96 0
            a=rtpmap:96 telephone-event/8000
            a=fmtp:96 0-16
            a=rtpmap:0 PCMU/8000
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: Some(96),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("198.51.100.7:5004"),
                media: "
                m=audio 20000 RTP/AVP 96 0
                a=rtpmap:96 telephone-event/8000
                a=fmtp:96 0-16
                a=rtpmap:0 PCMU/8000
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn ptime_30_is_kept_and_odd_ptimes_fall_back_to_20() {
        let fixture = |ptime: &str| {
            crlf(&format!(
                "
                v=0
                o=- 1 1 IN IP4 198.51.100.7
                s=-
                c=IN IP4 198.51.100.7
                t=0 0
                m=audio 5004 RTP/AVP 8
                a=ptime:{ptime}
                "
            ))
        };
        check(
            &fixture("30"),
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: None,
                ptime: 30,
                direction: Direction::SendRecv,
                remote: Some("198.51.100.7:5004"),
                media: "
                m=audio 20000 RTP/AVP 8
                a=rtpmap:8 PCMA/8000
                a=ptime:30
                a=sendrecv",
            },
        );
        for (given, used) in [
            ("10", 10),
            ("60", 60),
            ("25", 20),
            ("70", 20),
            ("0", 20),
            ("5", 20),
            ("abc", 20),
            ("99999999999999999999999", 20),
        ] {
            let a = answer(&fixture(given), &local4()).unwrap();
            assert_eq!(a.session.ptime_ms, used, "a=ptime:{given}");
            let text = String::from_utf8(a.sdp).unwrap();
            assert!(text.contains(&format!("a=ptime:{used}\r\n")), "{text}");
        }
    }

    fn hold_fixture(direction_line: &str, connection: &str) -> Vec<u8> {
        crlf(&format!(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 {connection}
            t=0 0
            m=audio 5004 RTP/AVP 0 101
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-15
            {direction_line}
            "
        ))
    }

    #[test]
    fn sendonly_hold_is_answered_recvonly() {
        check(
            &hold_fixture("a=sendonly", "198.51.100.7"),
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: Some(101),
                ptime: 20,
                direction: Direction::RecvOnly,
                remote: Some("198.51.100.7:5004"),
                media: "
                m=audio 20000 RTP/AVP 0 101
                a=rtpmap:0 PCMU/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:20
                a=recvonly",
            },
        );
    }

    #[test]
    fn inactive_and_recvonly_offers() {
        let a = answer(&hold_fixture("a=inactive", "198.51.100.7"), &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::Inactive);
        assert!(
            String::from_utf8(a.sdp)
                .unwrap()
                .ends_with("a=inactive\r\n")
        );
        let a = answer(&hold_fixture("a=recvonly", "198.51.100.7"), &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::SendOnly);
        assert!(
            String::from_utf8(a.sdp)
                .unwrap()
                .ends_with("a=sendonly\r\n")
        );
        let a = answer(&hold_fixture("a=sendrecv", "198.51.100.7"), &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::SendRecv);
        // No direction attribute at all means sendrecv.
        let a = answer(&hold_fixture("", "198.51.100.7"), &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::SendRecv);
    }

    #[test]
    fn rfc2543_hold_with_null_address() {
        check(
            &hold_fixture("a=sendrecv", "0.0.0.0"),
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: Some(101),
                ptime: 20,
                direction: Direction::RecvOnly,
                remote: None,
                media: "
                m=audio 20000 RTP/AVP 0 101
                a=rtpmap:0 PCMU/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:20
                a=recvonly",
            },
        );
        let a = answer(&hold_fixture("a=recvonly", "0.0.0.0"), &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::Inactive);
        assert_eq!(a.session.remote, None);
    }

    #[test]
    fn session_level_direction_applies_unless_media_level_overrides() {
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            a=sendonly
            m=audio 5004 RTP/AVP 0
            ",
        );
        let a = answer(&offer, &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::RecvOnly);
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            a=sendonly
            m=audio 5004 RTP/AVP 0
            a=sendrecv
            ",
        );
        let a = answer(&offer, &local4()).unwrap();
        assert_eq!(a.session.local_direction, Direction::SendRecv);
    }

    #[test]
    fn audio_and_video_offer_rejects_video_in_place() {
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=video 5006 RTP/AVP 34 97
            a=rtpmap:97 H264/90000
            a=fmtp:97 profile-level-id=42801F
            m=audio 5004 RTP/AVP 0 8 101
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-15
            m=video 5008 RTP/AVP 99
            a=rtpmap:99 VP8/90000
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcmu,
                pt: 0,
                te: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("198.51.100.7:5004"),
                media: "
                m=video 0 RTP/AVP 34 97
                m=audio 20000 RTP/AVP 0 101
                a=rtpmap:0 PCMU/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:20
                a=sendrecv
                m=video 0 RTP/AVP 99",
            },
        );
    }

    #[test]
    fn uppercase_and_lowercase_codec_names_and_dynamic_pcma() {
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 5004 RTP/AVP 110 0 127
            a=rtpmap:110 pcma/8000
            a=rtpmap:0 pcmu/8000
            a=rtpmap:127 TELEPHONE-EVENT/8000
            a=fmtp:127 0-16
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 110,
                te: Some(127),
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("198.51.100.7:5004"),
                media: "
                m=audio 20000 RTP/AVP 110 127
                a=rtpmap:110 PCMA/8000
                a=rtpmap:127 telephone-event/8000
                a=fmtp:127 0-16
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn trunk_extras_unknown_attributes_and_t38_line_are_tolerated() {
        // e=/p=/u= lines, a session-level ptime, vendor attributes, a 25-digit session
        // id, b=TIAS, a T.38 image line without c= and a port-0 video line.
        let offer = crlf(
            "
            v=0
            o=sbc 1234567890123456789012345 1 IN IP4 203.0.113.5
            s=Session
            u=http://example.com/call
            e=noc@example.com
            p=+33 1 23 45 67 89
            t=0 0
            a=ptime:30
            a=X-nat:0
            m=audio 16384 RTP/AVP 8 101
            c=IN IP4 203.0.113.6
            b=TIAS:64000
            a=rtpmap:8 PCMA/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-15
            a=X-cisco-media:umoh
            a=silenceSupp:off - - - -
            a=rtcp:notaport
            a=sendrecv
            m=image 0 udptl t38
            a=T38FaxVersion:0
            a=T38MaxBitRate:14400
            m=video 0 RTP/AVP 31
            ",
        );
        // webrtc-sdp alone refuses this offer; the pre-pass makes it usable.
        assert!(webrtc_sdp::parse_sdp(&String::from_utf8_lossy(&offer), false).is_err());
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: Some(101),
                ptime: 30,
                direction: Direction::SendRecv,
                remote: Some("203.0.113.6:16384"),
                media: "
                m=audio 20000 RTP/AVP 8 101
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                a=ptime:30
                a=sendrecv
                m=image 0 udptl t38
                m=video 0 RTP/AVP 31",
            },
        );
    }

    #[test]
    fn bare_lf_and_bare_cr_line_ends() {
        let lf = "v=0\no=- 1 1 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\n\
                  m=audio 5004 RTP/AVP 8 0\na=ptime:20\n";
        let expect = || Expect {
            codec: Codec::Pcma,
            pt: 8,
            te: None,
            ptime: 20,
            direction: Direction::SendRecv,
            remote: Some("198.51.100.7:5004"),
            media: "
            m=audio 20000 RTP/AVP 8
            a=rtpmap:8 PCMA/8000
            a=ptime:20
            a=sendrecv",
        };
        check(lf.as_bytes(), &local4(), expect());
        check(lf.replace('\n', "\r").as_bytes(), &local4(), expect());
        // Trailing whitespace and blank lines in the middle.
        check(
            lf.replace('\n', " \r\n\r\n").as_bytes(),
            &local4(),
            expect(),
        );
    }

    #[test]
    fn port_zero_audio_is_answered_with_port_zero_and_next_audio_used() {
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 0 RTP/AVP 0
            m=audio 5004 RTP/SAVP 0
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
            m=audio 5006 RTP/AVP 8
            ",
        );
        check(
            &offer,
            &local4(),
            Expect {
                codec: Codec::Pcma,
                pt: 8,
                te: None,
                ptime: 20,
                direction: Direction::SendRecv,
                remote: Some("198.51.100.7:5006"),
                media: "
                m=audio 0 RTP/AVP 0
                m=audio 0 RTP/SAVP 0
                m=audio 20000 RTP/AVP 8
                a=rtpmap:8 PCMA/8000
                a=ptime:20
                a=sendrecv",
            },
        );
    }

    #[test]
    fn only_port_zero_or_no_audio_is_no_audio() {
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 0 RTP/AVP 0 8
            ",
        );
        assert!(matches!(answer(&offer, &local4()), Err(SdpError::NoAudio)));
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=video 5000 RTP/AVP 31
            ",
        );
        assert!(matches!(answer(&offer, &local4()), Err(SdpError::NoAudio)));
    }

    #[test]
    fn no_common_codec_lists_offered_payload_types() {
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 5000 RTP/AVP 18 9 96 101
            a=rtpmap:96 opus/48000/2
            a=rtpmap:101 telephone-event/8000
            ",
        );
        match answer(&offer, &local4()) {
            Err(SdpError::NoCommonCodec(pts)) => assert_eq!(pts, vec![18, 9, 96, 101]),
            other => panic!("expected NoCommonCodec, got {other:?}"),
        }
        // A dynamic number named as something else is not G.711, even at 0's place.
        let offer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 5000 RTP/AVP 97
            a=rtpmap:97 PCMU/16000
            ",
        );
        assert!(matches!(
            answer(&offer, &local4()),
            Err(SdpError::NoCommonCodec(_))
        ));
    }

    #[test]
    fn parse_errors_are_typed() {
        assert!(matches!(parse(b""), Err(SdpError::Parse(_))));
        assert!(matches!(
            parse(b"hello, this is not SDP at all, but long enough to be looked at"),
            Err(SdpError::Parse(_))
        ));
        let bad_port = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 99999 RTP/AVP 0
            ",
        );
        // An unparseable m-line is kept as a rejected placeholder: no audio left.
        assert!(matches!(
            answer(&bad_port, &local4()),
            Err(SdpError::NoAudio)
        ));
        let hostname = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 media.example.com
            t=0 0
            m=audio 5000 RTP/AVP 0
            ",
        );
        assert!(matches!(
            answer(&hostname, &local4()),
            Err(SdpError::HostnameAddress(h)) if h == "media.example.com"
        ));
    }

    #[test]
    fn our_offer_is_as_specified() {
        let text = String::from_utf8(offer(&local4())).unwrap();
        assert_eq!(
            text,
            "v=0\r\no=guichet 4242 7 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
             t=0 0\r\nm=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        parse(text.as_bytes()).unwrap();
    }

    #[test]
    fn round_trip_offer_answer_accept() {
        for (ours, theirs) in [(local4(), local6()), (local6(), local4())] {
            let our_offer = offer(&ours);
            let their_answer = answer(&our_offer, &theirs).unwrap();
            // They see our address and the first codec we listed.
            assert_eq!(
                their_answer.session.remote,
                Some(SocketAddr::new(ours.addr, ours.port))
            );
            let agreed = accept_answer(&their_answer.sdp).unwrap();
            assert_eq!(
                agreed,
                Session {
                    remote: Some(SocketAddr::new(theirs.addr, theirs.port)),
                    codec: Codec::Pcmu,
                    payload_type: 0,
                    telephone_event: Some(OFFER_TELEPHONE_EVENT_PT),
                    ptime_ms: 20,
                    local_direction: Direction::SendRecv,
                }
            );
            assert_eq!(agreed.codec, their_answer.session.codec);
        }
    }

    #[test]
    fn hold_round_trip() {
        let ours = local4();
        let hold = offer_with_direction(&ours, Direction::SendRecv.hold());
        let their_answer = answer(&hold, &local6()).unwrap();
        assert_eq!(their_answer.session.local_direction, Direction::RecvOnly);
        let agreed = accept_answer(&their_answer.sdp).unwrap();
        assert_eq!(agreed.local_direction, Direction::SendOnly);
        assert_eq!(Direction::RecvOnly.hold(), Direction::Inactive);
    }

    #[test]
    fn accept_answer_rules() {
        let pcma_answer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 5000 RTP/AVP 8 101
            a=rtpmap:101 telephone-event/8000
            a=ptime:30
            a=recvonly
            ",
        );
        let s = accept_answer(&pcma_answer).unwrap();
        assert_eq!(s.codec, Codec::Pcma);
        assert_eq!(s.payload_type, 8);
        assert_eq!(s.telephone_event, Some(101));
        assert_eq!(s.ptime_ms, 30);
        assert_eq!(s.local_direction, Direction::SendOnly);
        let g729_answer = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 5000 RTP/AVP 18
            ",
        );
        assert!(matches!(
            accept_answer(&g729_answer),
            Err(SdpError::NoCommonCodec(pts)) if pts == vec![18]
        ));
        let rejected = crlf(
            "
            v=0
            o=- 1 2 IN IP4 198.51.100.7
            s=-
            c=IN IP4 198.51.100.7
            t=0 0
            m=audio 0 RTP/AVP 0
            ",
        );
        assert!(matches!(accept_answer(&rejected), Err(SdpError::NoAudio)));
    }

    fn fixtures() -> Vec<Vec<u8>> {
        vec![
            offer(&local4()),
            offer(&local6()),
            hold_fixture("a=sendonly", "0.0.0.0"),
            crlf(
                "
                v=0
                o=sbc 1234567890123456789012345 1 IN IP4 203.0.113.5
                s=Session
                t=0 0
                a=ptime:30
                m=audio 16384 RTP/AVP 8 101
                c=IN IP4 203.0.113.6
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-15
                m=image 0 udptl t38
                m=video 5000 RTP/AVP 31
                c=IN IP6 2001:db8::5
                ",
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
            let _ = answer(&bytes, &local4());
            let _ = accept_answer(&bytes);
        }

        #[test]
        fn mutated_fixtures_never_panic(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12),
        ) {
            let mut bytes = fixtures().swap_remove(which);
            for (index, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = index.index(bytes.len());
                match op {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => { bytes.remove(at); }
                }
            }
            let _ = parse(&bytes);
            if let Ok(a) = answer(&bytes, &local4()) {
                // Whatever we answer must be SDP we can read back.
                prop_assert!(accept_answer(&a.sdp).is_ok());
            }
            let _ = accept_answer(&bytes);
        }

        #[test]
        fn mutated_lines_never_panic(
            which in 0usize..4,
            line in 0usize..20,
            junk in "[ -~]{0,40}",
        ) {
            let text = String::from_utf8_lossy(&fixtures()[which]).into_owned();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let at = line % lines.len().max(1);
            if let Some(l) = lines.get_mut(at) {
                let keep = l.len().min(2);
                *l = format!("{}{}", &l[..keep], junk);
            }
            let bytes = lines.join("\r\n").into_bytes();
            let _ = parse(&bytes);
            if let Ok(a) = answer(&bytes, &local4()) {
                prop_assert!(accept_answer(&a.sdp).is_ok());
            }
        }
    }
}
