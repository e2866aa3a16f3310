//! Dialog state of a UAS (RFC 3261 section 12): the dialog ID (Call-ID, local and remote
//! tags), the remote target (Contact), the route set (Record-Route), both CSeq spaces, and
//! building in-dialog requests we send (BYE) with the right Request-URI, Route and
//! destination.
//!
//! Input: the INVITE that created the dialog, then each in-dialog request (CSeq check,
//! target refresh). Output: request bytes and where to send them. No IO, no clock.
//!
//! ```
//! use guichet::sip::dialog::Dialog;
//! use guichet::sip::endpoint::{Peer, Transport};
//! use guichet::sip::message::{parse, SipMessage};
//! let invite = "INVITE sip:0100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!     From: <sip:a@192.0.2.1>;tag=r1\r\nTo: <sip:0100@192.0.2.10>\r\nCall-ID: c1\r\n\
//!     CSeq: 7 INVITE\r\nContact: <sip:a@192.0.2.1:5070>\r\nContent-Length: 0\r\n\r\n";
//! let Ok(SipMessage::Request(req)) = parse(invite.as_bytes()) else { panic!() };
//! let peer = Peer { transport: Transport::Udp, addr: "192.0.2.1:5060".parse().unwrap(), conn: None };
//! let mut dialog = Dialog::uas(&req, "l1", peer).unwrap();
//! let bye = dialog.request("BYE", "z9hG4bKb1", "192.0.2.10:5060".parse().unwrap(), "guichet");
//! assert_eq!(bye.to.addr, "192.0.2.1:5070".parse().unwrap()); // the remote target
//! assert!(String::from_utf8_lossy(&bye.bytes).contains("CSeq: 8 BYE"));
//! ```

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use crate::ids::CallId;
use crate::sip::endpoint::{Peer, Transport};
use crate::sip::headers;
use crate::sip::message::{Header, Request};

/// Why a request cannot create or continue a dialog.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogError {
    /// A header the dialog needs is missing or unreadable.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    /// The remote CSeq went backwards (section 12.2.2: answer 500).
    #[error("CSeq {got} lower than the dialog's remote CSeq {remote}")]
    CSeqOutOfOrder { got: u32, remote: u32 },
}

/// The dialog ID (section 12): Call-ID and both tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: CallId,
    pub local_tag: String,
    pub remote_tag: String,
}

/// A request built inside the dialog, and where it goes.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub to: Peer,
    pub bytes: Bytes,
    pub cseq: u32,
}

/// One UAS dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    /// Our party: the INVITE's To value (without tag).
    local_party: String,
    /// The caller: the INVITE's From value (with its tag).
    remote_party: String,
    remote_target: String,
    route_set: Vec<String>,
    remote_cseq: u32,
    local_cseq: u32,
    /// Where the INVITE came from: fallback destination, and the TCP connection to reuse.
    peer: Peer,
}

impl Dialog {
    /// The UAS side of a dialog created by `invite`, with our `local_tag`.
    pub fn uas(invite: &Request, local_tag: &str, peer: Peer) -> Result<Dialog, DialogError> {
        let hs = &invite.headers;
        let from = headers::first(hs, "From").ok_or(DialogError::MissingHeader("From"))?;
        let to = headers::first(hs, "To").ok_or(DialogError::MissingHeader("To"))?;
        let call_id = headers::call_id(hs).ok_or(DialogError::MissingHeader("Call-ID"))?;
        let (cseq, _) = headers::cseq(hs).ok_or(DialogError::MissingHeader("CSeq"))?;
        let remote_target = headers::first(hs, "Contact")
            .map(|c| headers::uri_of(c).to_owned())
            .unwrap_or_else(|| headers::uri_of(from).to_owned());
        Ok(Dialog {
            id: DialogId {
                call_id: CallId(call_id.to_owned()),
                local_tag: local_tag.to_owned(),
                remote_tag: headers::tag_param(from).unwrap_or("").to_owned(),
            },
            local_party: to.trim().to_owned(),
            remote_party: from.trim().to_owned(),
            remote_target,
            route_set: headers::all(hs, "Record-Route"),
            remote_cseq: cseq,
            // Our CSeq space is independent of the caller's; start after theirs.
            local_cseq: cseq,
            peer,
        })
    }

    /// The ID of this dialog.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// The ID an incoming request names (Call-ID, To tag = ours, From tag = theirs).
    pub fn id_of_request(req: &Request) -> Option<DialogId> {
        let hs = &req.headers;
        Some(DialogId {
            call_id: CallId(headers::call_id(hs)?.to_owned()),
            local_tag: headers::tag_param(headers::first(hs, "To")?)?.to_owned(),
            remote_tag: headers::tag_param(headers::first(hs, "From")?)
                .unwrap_or("")
                .to_owned(),
        })
    }

    /// Check and record the CSeq of an in-dialog request (not ACK/CANCEL).
    pub fn check_remote_cseq(&mut self, cseq: u32) -> Result<(), DialogError> {
        if cseq < self.remote_cseq {
            return Err(DialogError::CSeqOutOfOrder {
                got: cseq,
                remote: self.remote_cseq,
            });
        }
        self.remote_cseq = cseq;
        Ok(())
    }

    /// A target refresh (re-INVITE, UPDATE): a new Contact becomes the remote target.
    pub fn refresh_target(&mut self, req: &Request) {
        if let Some(c) = headers::first(&req.headers, "Contact") {
            let uri = headers::uri_of(c);
            if !uri.is_empty() {
                self.remote_target = uri.to_owned();
            }
        }
    }

    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// Build the next in-dialog request (section 12.2.1.1): Request-URI and Route from the
    /// remote target and route set (strict routing when the first route lacks `lr`),
    /// CSeq one past our last, sent to the first route or the remote target.
    pub fn request(
        &mut self,
        method: &str,
        branch: &str,
        local: SocketAddr,
        user_agent: &str,
    ) -> OutgoingRequest {
        self.local_cseq = self.local_cseq.saturating_add(1);
        let strict = self
            .route_set
            .first()
            .is_some_and(|r| !headers::uri_of(r).contains(";lr"));
        let (request_uri, routes): (String, Vec<String>) = if strict {
            let mut rest: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
            rest.push(format!("<{}>", self.remote_target));
            let first = self
                .route_set
                .first()
                .map(|r| headers::uri_of(r).to_owned())
                .unwrap_or_default();
            (first, rest)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let next_hop = if strict {
            request_uri.clone()
        } else {
            self.route_set
                .first()
                .map(|r| headers::uri_of(r).to_owned())
                .unwrap_or_else(|| self.remote_target.clone())
        };
        let transport = match self.peer.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        let mut text = format!(
            "{method} {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n",
            fmt_addr(local)
        );
        for r in &routes {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        text.push_str(&format!(
            "From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n\
             User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n",
            strip_tag(&self.local_party),
            self.id.local_tag,
            self.remote_party,
            self.id.call_id,
            self.local_cseq,
        ));
        OutgoingRequest {
            to: self.destination(&next_hop),
            bytes: Bytes::from(text),
            cseq: self.local_cseq,
        }
    }

    /// Where a request to `uri` goes: over TCP the caller's connection; over UDP the URI's
    /// IP and port when it names an IP literal, else where the INVITE came from (we do no
    /// DNS here).
    fn destination(&self, uri: &str) -> Peer {
        if self.peer.transport == Transport::Tcp {
            return self.peer;
        }
        let addr = headers::uri_host_port(uri).and_then(|(host, port)| {
            let ip: IpAddr = host.parse().ok()?;
            Some(SocketAddr::new(ip, port.unwrap_or(5060)))
        });
        Peer {
            transport: Transport::Udp,
            addr: addr.unwrap_or(self.peer.addr),
            conn: None,
        }
    }
}

/// `ip:port` with IPv6 in brackets.
pub(crate) fn fmt_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// A From/To value without its tag parameter.
fn strip_tag(value: &str) -> String {
    let (head, params) = match value.rfind('>') {
        Some(i) => value.split_at(i + 1),
        None => match value.find(';') {
            Some(i) => value.split_at(i),
            None => (value, ""),
        },
    };
    let kept: Vec<&str> = params
        .split(';')
        .filter(|p| !p.trim().is_empty() && !p.trim().to_ascii_lowercase().starts_with("tag="))
        .collect();
    let mut s = head.to_owned();
    for p in kept {
        s.push(';');
        s.push_str(p.trim());
    }
    s
}

/// Headers a dialog-creating response copies from the request (Record-Route, 12.1.1).
pub(crate) fn record_route_headers(req: &Request) -> Vec<Header> {
    req.headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("Record-Route"))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse};

    fn req(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("bad test request: {other:?}"),
        }
    }

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "192.0.2.1:5060".parse().unwrap(),
            conn: None,
        }
    }

    const INVITE: &str = "INVITE sip:0100@192.0.2.10 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
        Record-Route: <sip:192.0.2.50:5080;lr>, <sip:192.0.2.51;lr>\r\n\
        From: \"Ann\" <sip:a@192.0.2.1>;tag=r1\r\n\
        To: <sip:0100@192.0.2.10>;x=1\r\n\
        Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:a@192.0.2.1:5070>\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn bye_follows_route_set_and_remote_target() {
        let mut d = Dialog::uas(&req(INVITE), "l1", peer()).unwrap();
        let bye = d.request("BYE", "z9hG4bKx", "192.0.2.10:5060".parse().unwrap(), "ua");
        let text = String::from_utf8_lossy(&bye.bytes).to_string();
        assert!(
            text.starts_with("BYE sip:a@192.0.2.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Route: <sip:192.0.2.50:5080;lr>\r\nRoute: <sip:192.0.2.51;lr>"));
        assert!(
            text.contains("From: <sip:0100@192.0.2.10>;x=1;tag=l1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Ann\" <sip:a@192.0.2.1>;tag=r1\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 8 BYE"));
        assert_eq!(bye.to.addr, "192.0.2.50:5080".parse().unwrap());
        // The request parses back.
        let _ = req(&text);
    }

    #[test]
    fn remote_cseq_must_not_go_backwards() {
        let mut d = Dialog::uas(&req(INVITE), "l1", peer()).unwrap();
        assert_eq!(
            d.check_remote_cseq(6),
            Err(DialogError::CSeqOutOfOrder { got: 6, remote: 7 })
        );
        assert!(d.check_remote_cseq(8).is_ok());
        assert!(d.check_remote_cseq(7).is_err());
    }

    #[test]
    fn strict_route_puts_the_first_route_in_the_request_uri() {
        let text = INVITE.replace(
            "<sip:192.0.2.50:5080;lr>, <sip:192.0.2.51;lr>",
            "<sip:192.0.2.60>",
        );
        let mut d = Dialog::uas(&req(&text), "l1", peer()).unwrap();
        let bye = d.request("BYE", "z9hG4bKx", "192.0.2.10:5060".parse().unwrap(), "ua");
        let text = String::from_utf8_lossy(&bye.bytes).to_string();
        assert!(text.starts_with("BYE sip:192.0.2.60 SIP/2.0"), "{text}");
        assert!(text.contains("Route: <sip:a@192.0.2.1:5070>"), "{text}");
        assert_eq!(bye.to.addr, "192.0.2.60:5060".parse().unwrap());
    }
}
