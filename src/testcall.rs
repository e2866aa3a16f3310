//! A scriptable SIP test caller (UAC) over real loopback sockets, for integration tests and
//! `guichet call`.
//!
//! Owns: one SIP socket (UDP, or a TCP connection) and one RTP socket. It sends INVITE with
//! an SDP offer (PCMU, PCMA, telephone-event by default), handles 100/180/200, sends ACK
//! (or drops it on purpose), sends silence RTP and counts the RTP it receives, and can send
//! re-INVITE (hold with `sendonly`, resume with `sendrecv`), CANCEL, BYE, OPTIONS and any
//! out-of-dialog request. It answers the engine's BYE with 200 and re-ACKs retransmitted
//! 2xx. Every message sent and received is recorded as a [`CallerEvent`].
//!
//! This is test tooling: it is async (tokio) and lives outside the sans-IO layers, like
//! `engine`. It deliberately uses its own tiny text parser so that it tests the engine's SIP
//! stack rather than sharing its bugs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), guichet::testcall::CallerError> {
//! use guichet::testcall::{CallerConfig, TestCaller};
//! let config = CallerConfig::new("sip:1000@127.0.0.1:5060".parse().unwrap(), "127.0.0.1:5060".parse().unwrap());
//! let mut caller = TestCaller::new(config).await?;
//! assert_eq!(caller.invite().await?, 200);
//! tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//! assert!(caller.rtp_received() > 0);
//! assert_eq!(caller.bye().await?, 200);
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use crate::sip::endpoint::Transport;
use crate::sip::message::StreamFramer;

/// Why a test call step failed (protocol outcomes such as 486 are codes, not errors).
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("the engine closed the TCP connection")]
    Closed,
    #[error("no dialog: {0}")]
    NoDialog(&'static str),
    #[error("bad SIP URI {0:?}: expected sip:user@host[:port]")]
    BadUri(String),
}

/// A `sip:user@host[:port]` URI (the only shape the caller needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub user: String,
    pub host: String,
    pub port: Option<u16>,
}

impl FromStr for SipUri {
    type Err = CallerError;

    fn from_str(s: &str) -> Result<Self, CallerError> {
        let bad = || CallerError::BadUri(s.to_string());
        let rest = s.strip_prefix("sip:").ok_or_else(bad)?;
        let rest = rest.split(';').next().unwrap_or(rest);
        let (user, hostport) = rest.split_once('@').ok_or_else(bad)?;
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, tail) = h.split_once(']').ok_or_else(bad)?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p.parse().map_err(|_| bad())?),
                None => None,
            };
            (format!("[{h}]"), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse().map_err(|_| bad())?)),
                None => (hostport.to_string(), None),
            }
        };
        if user.is_empty() || host.is_empty() {
            return Err(bad());
        }
        Ok(SipUri {
            user: user.to_string(),
            host,
            port,
        })
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sip:{}@{}", self.user, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// The SDP offer the INVITE carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// PCMU (0), PCMA (8), telephone-event (101), ptime 20.
    G711,
    /// Only these `(payload type, rtpmap name)`: e.g. `[(18, "G729/8000")]` for a 488 test.
    Only(Vec<(u8, String)>),
    /// An INVITE without SDP (the engine offers in its 200; we answer in the ACK).
    None,
}

/// What to do when a 2xx to INVITE arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    Send,
    /// Never ACK (lost-ACK tests): the engine retransmits its 2xx, then gives up with BYE.
    Drop,
}

/// Settings of one test caller.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// The Request-URI.
    pub uri: SipUri,
    /// Where to send (the engine's SIP address).
    pub target: SocketAddr,
    pub transport: Transport,
    /// Our address (SIP and RTP sockets bind it).
    pub local_ip: IpAddr,
    /// Our user (From).
    pub from_user: String,
    pub offer: Offer,
    pub ack: AckMode,
    /// Send silence RTP once the call is up.
    pub send_rtp: bool,
    /// How long to wait for a final response.
    pub response_timeout: Duration,
}

impl CallerConfig {
    /// UDP, from 127.0.0.1, G.711 offer, ACK sent, RTP sent, 5 s response timeout.
    pub fn new(uri: SipUri, target: SocketAddr) -> Self {
        CallerConfig {
            uri,
            target,
            transport: Transport::Udp,
            local_ip: target.ip(),
            from_user: "0612345678".to_string(),
            offer: Offer::G711,
            ack: AckMode::Send,
            send_rtp: true,
            response_timeout: Duration::from_secs(5),
        }
    }
}

/// One thing the caller saw or did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerEvent {
    /// We sent a request.
    Sent { method: String },
    /// A response to one of our requests.
    Response { method: String, code: u16 },
    /// A request from the engine (BYE...), already answered.
    Request { method: String, answered: u16 },
}

/// A parsed SIP message (deliberately simple; enough for tests).
#[derive(Debug, Clone)]
pub struct Msg {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Msg {
    /// Parse one message; `None` if it is not a SIP message at all.
    pub fn parse(bytes: &[u8]) -> Option<Msg> {
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(bytes.get(..head_end)?).ok()?;
        let body = bytes.get(head_end + 4..).unwrap_or_default().to_vec();
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((expand(name.trim()), value.trim().to_string()));
        }
        Some(Msg {
            start,
            headers,
            body,
        })
    }

    /// Status code, for a response.
    pub fn code(&self) -> Option<u16> {
        let rest = self.start.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// Method, for a request.
    pub fn method(&self) -> Option<&str> {
        if self.start.starts_with("SIP/2.0") {
            return None;
        }
        self.start.split(' ').next()
    }

    /// The first value of a header (compact forms are expanded).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let (n, m) = v.split_once(' ')?;
        Some((n.trim().parse().ok()?, m.trim().to_string()))
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

fn expand(name: &str) -> String {
    let full = match name {
        "i" | "I" => "Call-ID",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        other => other,
    };
    full.to_string()
}

fn tag_of(header: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("tag").then(|| v.trim().to_string())
    })
}

/// The URI inside `<...>` of a Contact/From/To value (or the whole value).
fn uri_of(header: &str) -> String {
    match (header.find('<'), header.find('>')) {
        (Some(a), Some(b)) if a < b => header[a + 1..b].to_string(),
        _ => header
            .split(';')
            .next()
            .unwrap_or(header)
            .trim()
            .to_string(),
    }
}

/// What we learnt from an SDP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSummary {
    pub addr: Option<SocketAddr>,
    pub payload_types: Vec<u8>,
    pub direction: String,
}

/// A very small SDP reader for answers (c=, m=audio, direction attribute).
pub fn summarize_sdp(body: &[u8]) -> Option<SdpSummary> {
    let text = std::str::from_utf8(body).ok()?;
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut pts = Vec::new();
    let mut direction = "sendrecv".to_string();
    for line in text.lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("c=") {
            ip = c.split_whitespace().nth(2).and_then(|a| a.parse().ok());
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            let mut parts = m.split_whitespace();
            port = parts.next().and_then(|p| p.parse().ok());
            pts = parts.skip(1).filter_map(|p| p.parse().ok()).collect();
        } else if let Some(a) = line.strip_prefix("a=")
            && matches!(a, "sendrecv" | "sendonly" | "recvonly" | "inactive")
        {
            direction = a.to_string();
        }
    }
    let addr = match (ip, port) {
        (Some(ip), Some(p)) if p != 0 && !ip.is_unspecified() => Some(SocketAddr::new(ip, p)),
        _ => None,
    };
    port?;
    Some(SdpSummary {
        addr,
        payload_types: pts,
        direction,
    })
}

enum Link {
    Udp(UdpSocket),
    Tcp {
        reader: OwnedReadHalf,
        writer: OwnedWriteHalf,
        framer: StreamFramer,
    },
}

/// Where RTP goes and with which payload type (shared with the RTP task).
type RtpTarget = Option<(SocketAddr, u8)>;

/// The confirmed (or early) dialog, from our side.
#[derive(Debug, Clone)]
struct Dialog {
    remote_tag: String,
    remote_target: String,
    route: Vec<String>,
}

/// The INVITE in progress (for CANCEL and ACK of non-2xx).
#[derive(Debug, Clone)]
struct PendingInvite {
    branch: String,
    cseq: u32,
}

/// A SIP user agent client for tests.
pub struct TestCaller {
    config: CallerConfig,
    link: Link,
    local_sip: SocketAddr,
    call_id: String,
    from_tag: String,
    cseq: u32,
    sdp_version: u64,
    dialog: Option<Dialog>,
    invite: Option<PendingInvite>,
    last_ack: Option<Vec<u8>>,
    events: Vec<CallerEvent>,
    bye_received: bool,
    ok_retransmissions: u32,
    remote_sdp: Option<SdpSummary>,
    rtp_port: u16,
    rtp_received: Arc<AtomicU64>,
    rtp_sent: Arc<AtomicU64>,
    rtp_target: watch::Sender<RtpTarget>,
    rtp_task: JoinHandle<()>,
    buf: Vec<u8>,
    counter: u64,
}

impl Drop for TestCaller {
    fn drop(&mut self) {
        self.rtp_task.abort();
    }
}

impl TestCaller {
    /// Bind the sockets (or connect over TCP) and start the RTP task.
    pub async fn new(config: CallerConfig) -> Result<TestCaller, CallerError> {
        let (link, local_sip) = match config.transport {
            Transport::Udp => {
                let s = UdpSocket::bind(SocketAddr::new(config.local_ip, 0)).await?;
                let local = s.local_addr()?;
                (Link::Udp(s), local)
            }
            Transport::Tcp => {
                let s = TcpStream::connect(config.target).await?;
                s.set_nodelay(true)?;
                let local = s.local_addr()?;
                let (reader, writer) = s.into_split();
                (
                    Link::Tcp {
                        reader,
                        writer,
                        framer: StreamFramer::new(64 * 1024),
                    },
                    local,
                )
            }
        };
        let rtp = Arc::new(UdpSocket::bind(SocketAddr::new(config.local_ip, 0)).await?);
        let rtp_port = rtp.local_addr()?.port();
        let rtp_received = Arc::new(AtomicU64::new(0));
        let rtp_sent = Arc::new(AtomicU64::new(0));
        let (rtp_target, target_rx) = watch::channel(None);
        let rtp_task = tokio::spawn(rtp_loop(
            rtp,
            Arc::clone(&rtp_received),
            Arc::clone(&rtp_sent),
            target_rx,
        ));
        let unique: u64 = rand::random();
        Ok(TestCaller {
            call_id: format!("{unique:016x}@guichet-testcall"),
            from_tag: format!("{:08x}", rand::random::<u32>()),
            config,
            link,
            local_sip,
            cseq: 0,
            sdp_version: 1,
            dialog: None,
            invite: None,
            last_ack: None,
            events: Vec::new(),
            bye_received: false,
            ok_retransmissions: 0,
            remote_sdp: None,
            rtp_port,
            rtp_received,
            rtp_sent,
            rtp_target,
            rtp_task,
            buf: vec![0u8; 65536],
            counter: 0,
        })
    }

    /// The Call-ID of this caller's call.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
    /// Everything sent and received so far.
    pub fn events(&self) -> &[CallerEvent] {
        &self.events
    }
    /// RTP packets received from the engine.
    pub fn rtp_received(&self) -> u64 {
        self.rtp_received.load(Ordering::Relaxed)
    }
    /// RTP packets we sent.
    pub fn rtp_sent(&self) -> u64 {
        self.rtp_sent.load(Ordering::Relaxed)
    }
    /// Whether the engine sent us BYE.
    pub fn bye_received(&self) -> bool {
        self.bye_received
    }
    /// How many retransmitted 2xx to INVITE arrived.
    pub fn ok_retransmissions(&self) -> u32 {
        self.ok_retransmissions
    }
    /// The engine's last SDP (answer, or offer when we sent none).
    pub fn remote_sdp(&self) -> Option<&SdpSummary> {
        self.remote_sdp.as_ref()
    }
    /// Final response codes received for `method`, in order.
    pub fn final_codes(&self, method: &str) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallerEvent::Response { method: m, code } if m == method && *code >= 200 => {
                    Some(*code)
                }
                _ => None,
            })
            .collect()
    }
    /// Provisional response codes received for INVITE, in order.
    pub fn provisional_codes(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallerEvent::Response { method, code } if method == "INVITE" && *code < 200 => {
                    Some(*code)
                }
                _ => None,
            })
            .collect()
    }

    /// Send INVITE and wait for its final response (ACKing it). Returns the final code.
    pub async fn invite(&mut self) -> Result<u16, CallerError> {
        self.start_invite().await?;
        self.finish_invite().await
    }

    /// Send the INVITE only (then [`TestCaller::wait_provisional`], `cancel`, or
    /// [`TestCaller::finish_invite`]).
    pub async fn start_invite(&mut self) -> Result<(), CallerError> {
        self.cseq += 1;
        let branch = self.branch();
        let body = self.offer_body("sendrecv");
        let msg = self.request(
            "INVITE",
            &self.config.uri.to_string(),
            &branch,
            self.cseq,
            &[],
            body,
        );
        self.invite = Some(PendingInvite {
            branch,
            cseq: self.cseq,
        });
        self.send(msg, "INVITE").await
    }

    /// Wait for the first provisional response above 100 (180/183). Returns its code, or
    /// the final code if the INVITE completed first.
    pub async fn wait_provisional(&mut self) -> Result<u16, CallerError> {
        let cseq = self
            .invite
            .as_ref()
            .ok_or(CallerError::NoDialog("no INVITE sent"))?
            .cseq;
        let deadline = TokioInstant::now() + self.config.response_timeout;
        loop {
            let msg = self.wait_response(cseq, "INVITE", deadline).await?;
            let code = msg.code().unwrap_or(0);
            if code > 100 {
                if code >= 200 {
                    self.on_invite_final(&msg).await?;
                }
                return Ok(code);
            }
        }
    }

    /// Wait for the INVITE's final response and ACK it. Returns the code.
    pub async fn finish_invite(&mut self) -> Result<u16, CallerError> {
        let cseq = self
            .invite
            .as_ref()
            .ok_or(CallerError::NoDialog("no INVITE sent"))?
            .cseq;
        let deadline = TokioInstant::now() + self.config.response_timeout;
        loop {
            let msg = self.wait_response(cseq, "INVITE", deadline).await?;
            let code = msg.code().unwrap_or(0);
            if code >= 200 {
                self.on_invite_final(&msg).await?;
                return Ok(code);
            }
        }
    }

    /// CANCEL the pending INVITE. Returns (CANCEL's code, INVITE's final code).
    pub async fn cancel(&mut self) -> Result<(u16, u16), CallerError> {
        let pending = self
            .invite
            .clone()
            .ok_or(CallerError::NoDialog("no INVITE to cancel"))?;
        let msg = self.request(
            "CANCEL",
            &self.config.uri.to_string(),
            &pending.branch,
            pending.cseq,
            &[],
            None,
        );
        self.send(msg, "CANCEL").await?;
        let deadline = TokioInstant::now() + self.config.response_timeout;
        let cancel_code = self
            .wait_response(pending.cseq, "CANCEL", deadline)
            .await?
            .code()
            .unwrap_or(0);
        let invite_code = self.finish_invite().await?;
        Ok((cancel_code, invite_code))
    }

    /// Send a re-INVITE with our offer in `direction` (`sendonly` to hold, `sendrecv` to
    /// resume). Returns the final code; the engine's answer is in [`TestCaller::remote_sdp`].
    pub async fn reinvite(&mut self, direction: &str) -> Result<u16, CallerError> {
        let dialog = self
            .dialog
            .clone()
            .ok_or(CallerError::NoDialog("re-INVITE"))?;
        self.cseq += 1;
        self.sdp_version += 1;
        let branch = self.branch();
        let body = self.offer_body(direction);
        let route = route_headers(&dialog);
        let msg = self.request(
            "INVITE",
            &dialog.remote_target,
            &branch,
            self.cseq,
            &route,
            body,
        );
        self.invite = Some(PendingInvite {
            branch,
            cseq: self.cseq,
        });
        self.send(msg, "INVITE").await?;
        self.finish_invite().await
    }

    /// Send BYE in the dialog. Returns the code.
    pub async fn bye(&mut self) -> Result<u16, CallerError> {
        let dialog = self.dialog.clone().ok_or(CallerError::NoDialog("BYE"))?;
        self.cseq += 1;
        let branch = self.branch();
        let route = route_headers(&dialog);
        let msg = self.request(
            "BYE",
            &dialog.remote_target,
            &branch,
            self.cseq,
            &route,
            None,
        );
        self.send(msg, "BYE").await?;
        let deadline = TokioInstant::now() + self.config.response_timeout;
        let code = self
            .wait_response(self.cseq, "BYE", deadline)
            .await?
            .code()
            .unwrap_or(0);
        let _ = self.rtp_target.send(None);
        Ok(code)
    }

    /// Send OPTIONS out of dialog (its own Call-ID). Returns the code.
    pub async fn options(&mut self) -> Result<u16, CallerError> {
        self.out_of_dialog("OPTIONS").await
    }

    /// Send `method` out of any dialog, with a fresh Call-ID and no To tag (for 481, 405
    /// and OPTIONS tests). Returns the final code.
    pub async fn out_of_dialog(&mut self, method: &str) -> Result<u16, CallerError> {
        let saved = (self.call_id.clone(), self.dialog.take());
        self.call_id = format!("{:016x}@guichet-testcall", rand::random::<u64>());
        self.cseq += 1;
        let branch = self.branch();
        let msg = self.request(
            method,
            &self.config.uri.to_string(),
            &branch,
            self.cseq,
            &[],
            None,
        );
        let result = async {
            self.send(msg, method).await?;
            let deadline = TokioInstant::now() + self.config.response_timeout;
            loop {
                let m = self.wait_response(self.cseq, method, deadline).await?;
                let code = m.code().unwrap_or(0);
                if code >= 200 {
                    return Ok(code);
                }
            }
        }
        .await;
        self.call_id = saved.0;
        self.dialog = saved.1;
        result
    }

    /// Wait up to `timeout` for the engine's BYE (answered 200). True if it came.
    pub async fn wait_for_bye(&mut self, timeout: Duration) -> Result<bool, CallerError> {
        let deadline = TokioInstant::now() + timeout;
        while !self.bye_received {
            match self.recv_until(deadline).await? {
                Some(msg) => self.handle_unsolicited(msg).await?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Keep handling incoming messages (BYE, 2xx retransmissions) for `duration`.
    pub async fn idle(&mut self, duration: Duration) -> Result<(), CallerError> {
        let deadline = TokioInstant::now() + duration;
        while let Some(msg) = self.recv_until(deadline).await? {
            self.handle_unsolicited(msg).await?;
        }
        Ok(())
    }

    // ---- internals ----

    fn branch(&mut self) -> String {
        self.counter += 1;
        format!("z9hG4bK{:x}{:04x}", rand::random::<u32>(), self.counter)
    }

    fn transport_name(&self) -> &'static str {
        match self.config.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    fn contact(&self) -> String {
        let transport = match self.config.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{}@{}{}>",
            self.config.from_user, self.local_sip, transport
        )
    }

    fn offer_body(&self, direction: &str) -> Option<(String, Vec<u8>)> {
        let formats: Vec<(u8, String)> = match &self.config.offer {
            Offer::None => return None,
            Offer::G711 => vec![
                (0, "PCMU/8000".to_string()),
                (8, "PCMA/8000".to_string()),
                (101, "telephone-event/8000".to_string()),
            ],
            Offer::Only(list) => list.clone(),
        };
        let ip = self.config.local_ip;
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let pts: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
        let mut sdp = format!(
            "v=0\r\no=testcall 4242 {} IN {family} {ip}\r\ns=guichet testcall\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
            self.sdp_version,
            self.rtp_port,
            pts.join(" ")
        );
        for (pt, name) in &formats {
            sdp.push_str(&format!("a=rtpmap:{pt} {name}\r\n"));
            if name.starts_with("telephone-event") {
                sdp.push_str(&format!("a=fmtp:{pt} 0-16\r\n"));
            }
        }
        sdp.push_str(&format!("a=ptime:20\r\na={direction}\r\n"));
        Some(("application/sdp".to_string(), sdp.into_bytes()))
    }

    fn request(
        &self,
        method: &str,
        ruri: &str,
        branch: &str,
        cseq: u32,
        extra: &[String],
        body: Option<(String, Vec<u8>)>,
    ) -> Vec<u8> {
        // CANCEL must match the initial INVITE's headers: no To tag.
        let to_tag = match &self.dialog {
            Some(d) if method != "CANCEL" => format!(";tag={}", d.remote_tag),
            _ => String::new(),
        };
        let mut m = format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{}@{}>;tag={}\r\n\
             To: <{}>{to_tag}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: {}\r\n\
             User-Agent: guichet-testcall\r\n",
            self.transport_name(),
            self.local_sip,
            self.config.from_user,
            self.local_sip.ip(),
            self.from_tag,
            self.config.uri,
            self.call_id,
            self.contact(),
        );
        for h in extra {
            m.push_str(h);
            m.push_str("\r\n");
        }
        let body = match body {
            Some((ctype, bytes)) => {
                m.push_str(&format!("Content-Type: {ctype}\r\n"));
                bytes
            }
            None => Vec::new(),
        };
        m.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = m.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }

    async fn send(&mut self, bytes: Vec<u8>, method: &str) -> Result<(), CallerError> {
        self.write(&bytes).await?;
        self.events.push(CallerEvent::Sent {
            method: method.to_string(),
        });
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), CallerError> {
        match &mut self.link {
            Link::Udp(s) => {
                s.send_to(bytes, self.config.target).await?;
            }
            Link::Tcp { writer, .. } => writer.write_all(bytes).await?,
        }
        Ok(())
    }

    /// The next message, or `None` at the deadline.
    async fn recv_until(&mut self, deadline: TokioInstant) -> Result<Option<Msg>, CallerError> {
        loop {
            let bytes = match &mut self.link {
                Link::Udp(s) => {
                    match tokio::time::timeout_at(deadline, s.recv_from(&mut self.buf)).await {
                        Err(_) => return Ok(None),
                        Ok(r) => {
                            let (n, _) = r?;
                            self.buf.get(..n).unwrap_or_default().to_vec()
                        }
                    }
                }
                Link::Tcp { reader, framer, .. } => match framer.next_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        match tokio::time::timeout_at(deadline, reader.read(&mut self.buf)).await {
                            Err(_) => return Ok(None),
                            Ok(Ok(0)) => return Err(CallerError::Closed),
                            Ok(Ok(n)) => {
                                framer.push(self.buf.get(..n).unwrap_or_default());
                                continue;
                            }
                            Ok(Err(e)) => return Err(e.into()),
                        }
                    }
                    Err(_) => return Err(CallerError::Closed),
                },
            };
            if let Some(msg) = Msg::parse(&bytes) {
                return Ok(Some(msg));
            }
        }
    }

    /// Wait for a response to (cseq, method), handling anything else that arrives.
    async fn wait_response(
        &mut self,
        cseq: u32,
        method: &str,
        deadline: TokioInstant,
    ) -> Result<Msg, CallerError> {
        loop {
            let Some(msg) = self.recv_until(deadline).await? else {
                return Err(CallerError::Timeout(format!("a response to {method}")));
            };
            let matches = msg.code().is_some()
                && msg.header("Call-ID") == Some(self.call_id.as_str())
                && msg.cseq() == Some((cseq, method.to_string()));
            if matches {
                let code = msg.code().unwrap_or(0);
                self.events.push(CallerEvent::Response {
                    method: method.to_string(),
                    code,
                });
                return Ok(msg);
            }
            self.handle_unsolicited(msg).await?;
        }
    }

    /// A final response to our INVITE: learn the dialog, ACK.
    async fn on_invite_final(&mut self, msg: &Msg) -> Result<(), CallerError> {
        let code = msg.code().unwrap_or(0);
        let Some(pending) = self.invite.take() else {
            return Ok(());
        };
        if (200..300).contains(&code) {
            let remote_tag = msg.header("To").and_then(tag_of).unwrap_or_default();
            let remote_target = msg
                .header("Contact")
                .map(uri_of)
                .unwrap_or_else(|| self.config.uri.to_string());
            let mut route: Vec<String> = msg
                .headers("Record-Route")
                .iter()
                .flat_map(|v| v.split(','))
                .map(|s| s.trim().to_string())
                .collect();
            route.reverse();
            self.dialog = Some(Dialog {
                remote_tag,
                remote_target,
                route,
            });
            let sdp = summarize_sdp(msg.body());
            // When we sent no offer, the 2xx carries the engine's offer: answer in the ACK.
            let ack_body = if sdp.is_some() && self.config.offer == Offer::None {
                self.answer_body(sdp.as_ref())
            } else {
                None
            };
            if let Some(s) = sdp {
                self.apply_remote_sdp(s);
            }
            let ack = self.build_ack(pending.cseq, ack_body);
            self.last_ack = Some(ack.clone());
            if self.config.ack == AckMode::Send {
                self.send(ack, "ACK").await?;
            }
        } else {
            // ACK for a non-2xx final response: same branch, To tag of the response.
            let to = msg.header("To").unwrap_or_default().to_string();
            let ack = format!(
                "ACK {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{}@{}>;tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
                self.config.uri,
                self.transport_name(),
                self.local_sip,
                pending.branch,
                self.config.from_user,
                self.local_sip.ip(),
                self.from_tag,
                self.call_id,
                pending.cseq
            );
            self.send(ack.into_bytes(), "ACK").await?;
        }
        Ok(())
    }

    fn answer_body(&self, offer: Option<&SdpSummary>) -> Option<(String, Vec<u8>)> {
        let pt =
            offer.and_then(|o| o.payload_types.iter().copied().find(|p| *p == 0 || *p == 8))?;
        let name = if pt == 0 { "PCMU/8000" } else { "PCMA/8000" };
        let ip = self.config.local_ip;
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let sdp = format!(
            "v=0\r\no=testcall 4242 {} IN {family} {ip}\r\ns=guichet testcall\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}\r\na=ptime:20\r\na=sendrecv\r\n",
            self.sdp_version, self.rtp_port
        );
        Some(("application/sdp".to_string(), sdp.into_bytes()))
    }

    fn apply_remote_sdp(&mut self, sdp: SdpSummary) {
        let pt = sdp
            .payload_types
            .iter()
            .copied()
            .find(|p| *p == 0 || *p == 8)
            .unwrap_or(0);
        let target = match (self.config.send_rtp, sdp.addr) {
            (true, Some(addr)) => Some((addr, pt)),
            _ => None,
        };
        let _ = self.rtp_target.send(target);
        self.remote_sdp = Some(sdp);
    }

    fn build_ack(&mut self, cseq: u32, body: Option<(String, Vec<u8>)>) -> Vec<u8> {
        let branch = self.branch();
        let (target, route) = match &self.dialog {
            Some(d) => (d.remote_target.clone(), route_headers(d)),
            None => (self.config.uri.to_string(), Vec::new()),
        };
        self.request("ACK", &target, &branch, cseq, &route, body)
    }

    /// A message that is not the response we wait for.
    async fn handle_unsolicited(&mut self, msg: Msg) -> Result<(), CallerError> {
        if let Some(method) = msg.method().map(str::to_string) {
            let code = match method.as_str() {
                "BYE" => {
                    self.bye_received = true;
                    let _ = self.rtp_target.send(None);
                    200
                }
                "OPTIONS" | "INFO" | "UPDATE" => 200,
                "ACK" => return Ok(()),
                _ => 501,
            };
            let response = response_to(&msg, code);
            self.write(&response).await?;
            self.events.push(CallerEvent::Request {
                method,
                answered: code,
            });
            return Ok(());
        }
        // A retransmitted 2xx to INVITE: ACK again (unless we drop ACKs).
        if let (Some(code), Some((_, m))) = (msg.code(), msg.cseq())
            && (200..300).contains(&code)
            && m == "INVITE"
            && msg.header("Call-ID") == Some(self.call_id.as_str())
        {
            self.ok_retransmissions += 1;
            if self.config.ack == AckMode::Send
                && let Some(ack) = self.last_ack.clone()
            {
                self.write(&ack).await?;
            }
        }
        Ok(())
    }
}

fn route_headers(dialog: &Dialog) -> Vec<String> {
    dialog.route.iter().map(|r| format!("Route: {r}")).collect()
}

/// A response to a request from the engine: Via, From, To, Call-ID, CSeq copied.
fn response_to(req: &Msg, code: u16) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        501 => "Not Implemented",
        _ => "Whatever",
    };
    let mut m = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers("Via") {
        m.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.header(name) {
            m.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m.into_bytes()
}

async fn rtp_loop(
    socket: Arc<UdpSocket>,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    target: watch::Receiver<RtpTarget>,
) {
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let ssrc: u32 = rand::random();
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, _)) = r
                    && n >= 12
                    && buf.first().is_some_and(|b| b >> 6 == 2)
                {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = tick.tick() => {
                let current = *target.borrow();
                if let Some((addr, pt)) = current {
                    let silence = if pt == 8 { 0xD5 } else { 0xFF };
                    let mut p = vec![0x80, pt & 0x7F];
                    p.extend_from_slice(&seq.to_be_bytes());
                    p.extend_from_slice(&ts.to_be_bytes());
                    p.extend_from_slice(&ssrc.to_be_bytes());
                    p.resize(12 + 160, silence);
                    if socket.send_to(&p, addr).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                }
            }
        }
    }
}

/// The outcome of [`place_call`] (what `guichet call` prints).
#[derive(Debug, Clone)]
pub struct CallReport {
    pub invite_code: u16,
    pub bye_code: Option<u16>,
    pub bye_from_engine: bool,
    pub rtp_received: u64,
    pub rtp_sent: u64,
    pub events: Vec<CallerEvent>,
}

/// Place one call: INVITE, stay up `duration` (sending silence, counting RTP), then BYE
/// (unless the engine hung up first).
pub async fn place_call(
    config: CallerConfig,
    duration: Duration,
) -> Result<CallReport, CallerError> {
    let mut caller = TestCaller::new(config).await?;
    let invite_code = caller.invite().await?;
    let mut bye_code = None;
    if (200..300).contains(&invite_code) {
        caller.idle_until_bye(duration).await?;
        if !caller.bye_received() {
            bye_code = Some(caller.bye().await?);
        }
    }
    Ok(CallReport {
        invite_code,
        bye_code,
        bye_from_engine: caller.bye_received(),
        rtp_received: caller.rtp_received(),
        rtp_sent: caller.rtp_sent(),
        events: caller.events().to_vec(),
    })
}

impl TestCaller {
    /// Handle incoming messages for `duration`, returning early if the engine sends BYE.
    pub async fn idle_until_bye(&mut self, duration: Duration) -> Result<(), CallerError> {
        self.wait_for_bye(duration).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        let u: SipUri = "sip:1000@127.0.0.1:5060".parse().unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("1000", "127.0.0.1", Some(5060))
        );
        let u: SipUri = "sip:3939@[::1]:5070;transport=tcp".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", Some(5070)));
        assert_eq!(u.to_string(), "sip:3939@[::1]:5070");
        assert!("tel:1000".parse::<SipUri>().is_err());
        assert!("sip:@host".parse::<SipUri>().is_err());
    }

    #[test]
    fn parses_messages_with_compact_headers() {
        let raw = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nt: <sip:a@b>;tag=abc\r\ni: cid\r\nCSeq: 7 INVITE\r\nl: 5\r\n\r\nhello";
        let m = Msg::parse(raw).unwrap();
        assert_eq!(m.code(), Some(200));
        assert_eq!(m.method(), None);
        assert_eq!(m.header("call-id"), Some("cid"));
        assert_eq!(m.header("To").and_then(tag_of).as_deref(), Some("abc"));
        assert_eq!(m.cseq(), Some((7, "INVITE".to_string())));
        assert_eq!(m.body(), b"hello");
        assert!(Msg::parse(b"garbage").is_none());
    }

    #[test]
    fn summarizes_answers() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 8 101\r\na=recvonly\r\n";
        let s = summarize_sdp(sdp).unwrap();
        assert_eq!(s.addr, Some("127.0.0.1:20000".parse().unwrap()));
        assert_eq!(s.payload_types, vec![8, 101]);
        assert_eq!(s.direction, "recvonly");
        let held = b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 20000 RTP/AVP 0\r\n";
        assert_eq!(summarize_sdp(held).unwrap().addr, None);
        assert!(summarize_sdp(b"v=0\r\n").is_none());
    }

    #[test]
    fn responses_copy_dialog_headers() {
        let req = Msg::parse(b"BYE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:g@h>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: c\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n").unwrap();
        let resp = Msg::parse(&response_to(&req, 200)).unwrap();
        assert_eq!(resp.code(), Some(200));
        assert_eq!(resp.headers("Via").len(), 2);
        assert_eq!(resp.cseq(), Some((3, "BYE".to_string())));
        assert_eq!(resp.header("To"), Some("<sip:x@y>;tag=2"));
    }
}
