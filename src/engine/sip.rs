//! The SIP endpoint task: owns the UDP socket, the TCP listener and the sans-IO
//! [`Endpoint`], and routes call events to call tasks.
//!
//! The loop, one iteration per wake-up:
//! 1. drain [`Endpoint::poll_output`]: send datagrams (UDP directly, TCP through the
//!    connection's write channel), dispatch events (a new call spawns a call task; other
//!    events go to the call's task over its bounded channel);
//! 2. `select!` on a UDP datagram, a TCP accept, a command (from call and connection
//!    tasks), the endpoint's deadline ([`Endpoint::poll_timeout`]), a call task ending,
//!    the shutdown signal and the stats tick;
//! 3. feed the endpoint the matching [`Input`] stamped with [`crate::engine::now`].
//!
//! A call task that panics is caught here (its `JoinSet` entry ends with a panic error):
//! the call gets a `Hangup`, the engine goes on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::{Instant as TokioInstant, sleep_until};

use crate::config::{Cidr, Config};
use crate::engine::call::{self, CallSettings, CallStart};
use crate::engine::flows::Flows;
use crate::engine::media::{MediaConfig, MediaWorkers};
use crate::engine::records::Records;
use crate::engine::tcp::{self, ConnLimits};
use crate::engine::{EngineError, Hooks, Snapshot, now};
use crate::ids::CallKey;
use crate::media::ports::{DEFAULT_QUARANTINE, PortPool};
use crate::media::prompts::PromptStore;
use crate::sip::endpoint::{
    CallCommand, ConnId, Endpoint, EndpointConfig, Event, Input, Output, Peer, Timers, Transport,
};
use crate::sip::registrar::{Registrar, RegistrarConfig, UserCredential};

/// Capacity of the channel into the SIP task (commands from calls and TCP connections).
const COMMAND_CAPACITY: usize = 1024;
/// Capacity of each call's event channel (a call sees a handful of events).
const CALL_EVENT_CAPACITY: usize = 32;
/// Capacity of each TCP connection's write channel.
const CONN_WRITE_CAPACITY: usize = 64;
/// Kernel receive buffer asked for the SIP UDP socket: about 8,000 queued messages, a few
/// seconds of 1,000 new calls/s. Forced past `net.core.rmem_max` when the engine may
/// (CAP_NET_ADMIN), else capped there.
const SIP_UDP_RECV_BUFFER: usize = 8 << 20;
/// How long connection tasks get to flush their last writes at shutdown.
const CONN_FLUSH: Duration = Duration::from_millis(500);

/// What other tasks ask of the SIP task.
#[derive(Debug)]
pub enum SipCommand {
    /// A call task's decision for its call.
    Call { call: CallKey, command: CallCommand },
    /// One framed SIP message read on a TCP connection.
    TcpMessage {
        conn: ConnId,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A TCP connection ended.
    TcpClosed { conn: ConnId },
}

/// The bound sockets (bound before the task starts so the caller learns the port).
#[derive(Debug)]
pub struct Sockets {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    local: SocketAddr,
}

impl Sockets {
    /// Bind UDP and/or TCP on `sip.listen`. With port 0, UDP picks a free port and TCP
    /// binds the same one (retrying a few ports if TCP's is taken).
    pub async fn bind(config: &Config) -> Result<Sockets, EngineError> {
        let listen = config.sip.listen;
        let attempts = if listen.port() == 0 { 20 } else { 1 };
        let mut last_err = None;
        for _ in 0..attempts {
            let udp = if config.sip.udp {
                Some(
                    UdpSocket::bind(listen)
                        .await
                        .map_err(|source| EngineError::Bind {
                            what: "SIP UDP",
                            addr: listen,
                            source,
                        })?,
                )
            } else {
                None
            };
            if let Some(s) = &udp {
                // Room for a burst: the SIP task may be busy (or, beside real-time media
                // threads, descheduled) for a moment; a full buffer drops INVITEs, which
                // then come back only after the caller's 0.5 s, 1 s, 2 s... retransmissions.
                if let Err(e) = super::udp::force_recv_buffer(s, SIP_UDP_RECV_BUFFER) {
                    tracing::warn!(error = %e, "cannot size the SIP UDP receive buffer");
                }
            }
            let addr = match &udp {
                Some(s) => s.local_addr().map_err(|source| EngineError::Bind {
                    what: "SIP UDP",
                    addr: listen,
                    source,
                })?,
                None => listen,
            };
            if !config.sip.tcp {
                return Ok(Sockets {
                    udp,
                    tcp: None,
                    local: addr,
                });
            }
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    let local = tcp.local_addr().unwrap_or(addr);
                    return Ok(Sockets {
                        udp,
                        tcp: Some(tcp),
                        local,
                    });
                }
                Err(source) => {
                    last_err = Some(EngineError::Bind {
                        what: "SIP TCP",
                        addr,
                        source,
                    })
                }
            }
        }
        Err(last_err.unwrap_or(EngineError::Bind {
            what: "SIP TCP",
            addr: listen,
            source: std::io::Error::other("no free port"),
        }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// An open TCP connection as the SIP task sees it.
#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    writes: mpsc::Sender<Bytes>,
}

/// What woke the loop.
enum Wake {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    Command(Option<SipCommand>),
    Deadline,
    CallTaskEnded(Result<TaskId, tokio::task::JoinError>),
    ConnTaskEnded,
    Shutdown,
    StatsTick,
    GraceOver,
}

/// The SIP endpoint task's state.
pub struct SipTask {
    endpoint: Endpoint,
    sockets: Sockets,
    commands_tx: mpsc::Sender<SipCommand>,
    commands_rx: mpsc::Receiver<SipCommand>,
    calls: HashMap<CallKey, mpsc::Sender<Event>>,
    call_tasks: JoinSet<()>,
    task_calls: HashMap<TaskId, CallKey>,
    conns: HashMap<ConnId, Conn>,
    conn_tasks: JoinSet<()>,
    next_conn: u64,
    conn_limits: ConnLimits,
    max_conns: usize,
    max_message: usize,
    trusted: Vec<Cidr>,
    call_settings: Arc<CallSettings>,
    shutdown: watch::Receiver<bool>,
    shutting_down: Option<TokioInstant>,
    shutdown_grace: Duration,
    stats_interval: Duration,
    snapshot_tx: watch::Sender<Snapshot>,
    counters: Snapshot,
}

/// What call tasks use besides the config: prompts, flows, the record writer.
#[derive(Debug)]
pub struct CallResources {
    pub prompts: PromptStore,
    pub flows: Flows,
    pub records: Records,
}

impl SipTask {
    /// The call records and events the call tasks write to.
    pub fn records(&self) -> Records {
        self.call_settings.records.clone()
    }

    pub fn new(
        config: Config,
        sockets: Sockets,
        shutdown: watch::Receiver<bool>,
        snapshot_tx: watch::Sender<Snapshot>,
        hooks: Hooks,
        resources: CallResources,
    ) -> Result<Self, EngineError> {
        let CallResources {
            prompts,
            flows,
            records,
        } = resources;
        let local = match config.sip.advertised_address {
            Some(ip) => SocketAddr::new(ip, sockets.local.port()),
            None => sockets.local,
        };
        let endpoint_config = endpoint_config(&config, local);
        if let Some(r) = &endpoint_config.registrar {
            // The endpoint silently disables a registrar whose config does not hold
            // together; report the reason at startup instead.
            Registrar::new(r.clone())?;
        }
        let endpoint = Endpoint::new(endpoint_config);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        // Check the range now: the workers would only report it at the first call.
        PortPool::new(
            config.rtp.ports.first(),
            config.rtp.ports.last(),
            DEFAULT_QUARANTINE,
        )?;
        let call_settings = Arc::new(CallSettings {
            rtp_advertised: config.rtp.advertised_address.unwrap_or(config.rtp.address),
            media: start_media(&config, prompts),
            answer_delay: config.sip.answer_delay.get(),
            show_numbers: config.log.show_numbers,
            panic_on_number: hooks.panic_on_number,
            flows,
            flow_entry: hooks
                .flow_entry
                .unwrap_or_else(|| config.flows.entry.clone()),
            records,
            recent: std::sync::Mutex::new(crate::flow::recent::RecentCalls::default()),
        });
        Ok(SipTask {
            endpoint,
            sockets,
            commands_tx,
            commands_rx,
            calls: HashMap::new(),
            call_tasks: JoinSet::new(),
            task_calls: HashMap::new(),
            conns: HashMap::new(),
            conn_tasks: JoinSet::new(),
            next_conn: 0,
            conn_limits: ConnLimits {
                idle_timeout: config.limits.tcp_idle_timeout.get(),
                max_message: config.limits.max_message_size,
            },
            max_conns: config.limits.tcp_max_connections,
            max_message: config.limits.max_message_size,
            trusted: config.security.trusted_sources.clone(),
            call_settings,
            shutdown,
            shutting_down: None,
            shutdown_grace: config.limits.shutdown_grace.get(),
            stats_interval: config.log.stats_interval.get(),
            snapshot_tx,
            counters: Snapshot::default(),
        })
    }

    /// Run until shutdown completes.
    pub async fn run(mut self) {
        // One byte over the cap tells an oversized datagram from one exactly at the cap.
        let mut buf = vec![0u8; self.max_message.saturating_add(1)];
        let mut stats_tick = tokio::time::interval(self.stats_interval);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        stats_tick.tick().await; // the first tick is immediate
        loop {
            self.drain();
            self.publish();
            if self.shutting_down.is_some() && self.calls.is_empty() && self.call_tasks.is_empty() {
                break;
            }
            let deadline = self.endpoint.poll_timeout().map(TokioInstant::from_std);
            let wake = tokio::select! {
                r = recv_udp(self.sockets.udp.as_ref(), &mut buf) => Wake::Datagram(r),
                r = accept_tcp(self.sockets.tcp.as_ref()), if self.shutting_down.is_none() => Wake::Accepted(r),
                c = self.commands_rx.recv() => Wake::Command(c),
                _ = sleep_until_opt(deadline) => Wake::Deadline,
                Some(r) = self.call_tasks.join_next_with_id(), if !self.call_tasks.is_empty() => {
                    Wake::CallTaskEnded(r.map(|(id, ())| id))
                }
                Some(_) = self.conn_tasks.join_next(), if !self.conn_tasks.is_empty() => Wake::ConnTaskEnded,
                _ = self.shutdown.changed(), if self.shutting_down.is_none() => Wake::Shutdown,
                _ = stats_tick.tick() => Wake::StatsTick,
                _ = sleep_until_opt(self.shutting_down), if self.shutting_down.is_some() => Wake::GraceOver,
            };
            match wake {
                Wake::Datagram(Ok((n, from))) => {
                    if n > self.max_message {
                        self.counters.oversized_datagrams += 1;
                        tracing::debug!(%from, bytes = n, "dropped oversized SIP datagram");
                        continue;
                    }
                    let peer = Peer {
                        transport: Transport::Udp,
                        addr: from,
                        conn: None,
                    };
                    // n <= buf.len(): recv_from never returns more than the buffer holds.
                    self.endpoint.handle_input(Input::Message {
                        now: now(),
                        from: peer,
                        bytes: &buf[..n],
                    });
                }
                Wake::Datagram(Err(e)) => {
                    // ICMP port unreachable and the like surface here on some systems.
                    tracing::debug!(error = %e, "SIP UDP receive error");
                }
                Wake::Accepted(Ok((stream, peer))) => self.accept(stream, peer),
                Wake::Accepted(Err(e)) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    // Avoid a hot loop when out of file descriptors.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Wake::Command(Some(cmd)) => self.command(cmd),
                Wake::Command(None) => {} // unreachable: we hold a sender
                Wake::Deadline => self.endpoint.handle_input(Input::Timeout { now: now() }),
                Wake::CallTaskEnded(r) => self.call_task_ended(r),
                Wake::ConnTaskEnded => {}
                Wake::Shutdown => self.begin_shutdown(),
                Wake::StatsTick => self.log_stats(),
                Wake::GraceOver => {
                    tracing::warn!(
                        calls = self.calls.len(),
                        "shutdown grace period over: abandoning remaining calls"
                    );
                    break;
                }
            }
        }
        self.finish().await;
    }

    /// Drain every output of the endpoint.
    fn drain(&mut self) {
        while let Some(out) = self.endpoint.poll_output() {
            match out {
                Output::Transmit { to, bytes } => self.transmit(to, bytes),
                Output::Event(event) => self.dispatch(event),
            }
        }
    }

    fn transmit(&mut self, to: Peer, bytes: Bytes) {
        match to.transport {
            Transport::Udp => {
                let Some(udp) = &self.sockets.udp else {
                    tracing::warn!(to = %to.addr, "UDP transmit but UDP is disabled");
                    return;
                };
                // A full socket buffer drops the datagram: SIP over UDP retransmits.
                if let Err(e) = udp.try_send_to(&bytes, to.addr) {
                    tracing::debug!(to = %to.addr, error = %e, "SIP UDP send failed");
                }
            }
            Transport::Tcp => {
                let conn_id = to.conn.filter(|c| self.conns.contains_key(c)).or_else(|| {
                    self.conns
                        .iter()
                        .find(|(_, c)| c.peer == to.addr)
                        .map(|(id, _)| *id)
                });
                let conn_id = match conn_id {
                    Some(id) => id,
                    None => self.connect(to.addr),
                };
                if let Some(conn) = self.conns.get(&conn_id)
                    && conn.writes.try_send(bytes).is_err()
                {
                    tracing::warn!(to = %to.addr, "SIP TCP write queue full or closed: message dropped");
                }
            }
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::IncomingCall {
                call,
                call_id,
                from,
                to_user,
                source,
            } => {
                if self.shutting_down.is_some() {
                    self.endpoint.handle_input(Input::Command {
                        now: now(),
                        call,
                        command: CallCommand::Reject { code: 503 },
                    });
                    return;
                }
                let (tx, rx) = mpsc::channel(CALL_EVENT_CAPACITY);
                let start = CallStart {
                    call,
                    call_id,
                    from,
                    to_user,
                    source,
                };
                let fut = call::run(
                    start,
                    rx,
                    self.commands_tx.clone(),
                    Arc::clone(&self.call_settings),
                );
                let handle = self.call_tasks.spawn(fut);
                self.task_calls.insert(handle.id(), call);
                self.calls.insert(call, tx);
                self.counters.calls_started += 1;
            }
            Event::Ended { call, reason } => {
                if let Some(tx) = self.calls.remove(&call) {
                    // If the channel is full the task still ends: its receiver closes.
                    let _ = tx.try_send(Event::Ended { call, reason });
                }
            }
            other => {
                let call = match &other {
                    Event::Answered { call, .. }
                    | Event::Confirmed { call }
                    | Event::MediaUpdated { call, .. }
                    | Event::Info { call, .. } => *call,
                    Event::IncomingCall { call, .. } | Event::Ended { call, .. } => *call,
                };
                if let Some(tx) = self.calls.get(&call)
                    && tx.try_send(other).is_err()
                {
                    tracing::warn!(%call, "call task not keeping up: event dropped");
                }
            }
        }
    }

    fn command(&mut self, cmd: SipCommand) {
        match cmd {
            SipCommand::Call { call, command } => {
                self.endpoint.handle_input(Input::Command {
                    now: now(),
                    call,
                    command,
                });
            }
            SipCommand::TcpMessage { conn, from, bytes } => {
                let peer = Peer {
                    transport: Transport::Tcp,
                    addr: from,
                    conn: Some(conn),
                };
                self.endpoint.handle_input(Input::Message {
                    now: now(),
                    from: peer,
                    bytes: &bytes,
                });
            }
            SipCommand::TcpClosed { conn } => {
                self.conns.remove(&conn);
            }
        }
    }

    fn accept(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.conns.len() >= self.max_conns {
            self.counters.tcp_refused += 1;
            tracing::warn!(%peer, limit = self.max_conns, "SIP TCP connection refused: too many connections");
            drop(stream);
            return;
        }
        if !self.endpoint_trusts(peer.ip()) {
            // The endpoint drops untrusted requests anyway; closing now saves a task.
            tracing::debug!(%peer, "SIP TCP connection from untrusted source closed");
            drop(stream);
            return;
        }
        let (conn, writes) = self.register_conn(peer);
        self.conn_tasks.spawn(tcp::run(
            stream,
            conn,
            peer,
            self.commands_tx.clone(),
            writes,
            self.conn_limits,
        ));
    }

    /// Open an outbound connection; returns its id at once (writes queue until connected).
    fn connect(&mut self, peer: SocketAddr) -> ConnId {
        let (conn, writes) = self.register_conn(peer);
        self.conn_tasks.spawn(tcp::connect_and_run(
            conn,
            peer,
            self.commands_tx.clone(),
            writes,
            self.conn_limits,
        ));
        conn
    }

    fn register_conn(&mut self, peer: SocketAddr) -> (ConnId, mpsc::Receiver<Bytes>) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let (tx, rx) = mpsc::channel(CONN_WRITE_CAPACITY);
        self.conns.insert(conn, Conn { peer, writes: tx });
        (conn, rx)
    }

    fn endpoint_trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    fn call_task_ended(&mut self, result: Result<TaskId, tokio::task::JoinError>) {
        let id = match &result {
            Ok(id) => *id,
            Err(e) => e.id(),
        };
        let Some(call) = self.task_calls.remove(&id) else {
            return;
        };
        if let Err(e) = result {
            if e.is_panic() {
                self.counters.call_panics += 1;
                tracing::error!(%call, "call task panicked: ending this call only");
            }
            // The task is gone; if the call is still up, end it so the caller is not left
            // with a silent line.
            if self.calls.remove(&call).is_some() {
                self.endpoint.handle_input(Input::Command {
                    now: now(),
                    call,
                    command: CallCommand::Hangup,
                });
            }
        } else {
            self.calls.remove(&call);
        }
    }

    fn begin_shutdown(&mut self) {
        tracing::info!(calls = self.calls.len(), "shutting down: hanging up calls");
        self.shutting_down = Some(TokioInstant::now() + self.shutdown_grace);
        let keys: Vec<CallKey> = self.calls.keys().copied().collect();
        for call in keys {
            self.endpoint.handle_input(Input::Command {
                now: now(),
                call,
                command: CallCommand::Hangup,
            });
        }
    }

    fn publish(&mut self) {
        self.counters.sip = self.endpoint.stats().clone();
        self.counters.active_calls = self.endpoint.active_calls();
        self.counters.call_tasks = self.call_tasks.len();
        self.counters.tcp_connections = self.conns.len();
        self.snapshot_tx.send_if_modified(|s| {
            if *s == self.counters {
                false
            } else {
                *s = self.counters.clone();
                true
            }
        });
    }

    fn log_stats(&self) {
        let c = &self.counters;
        tracing::info!(
            active_calls = c.active_calls,
            calls_started = c.calls_started,
            call_panics = c.call_panics,
            tcp_connections = c.tcp_connections,
            tcp_refused = c.tcp_refused,
            oversized = c.oversized_datagrams,
            malformed = c.sip.dropped_malformed,
            refused = c.sip.refused,
            rate_limited = c.sip.rate_limited,
            untrusted = c.sip.untrusted,
            over_capacity = c.sip.over_capacity,
            retransmissions = c.sip.retransmissions_absorbed,
            stray_responses = c.sip.stray_responses,
            "sip stats"
        );
    }

    /// After the loop: abort leftover call tasks, let connections flush, stop.
    async fn finish(mut self) {
        self.drain();
        self.call_tasks.abort_all();
        while self.call_tasks.join_next().await.is_some() {}
        self.publish();
        // Dropping the write senders lets each connection write what is queued and close.
        self.conns.clear();
        let flush = async { while self.conn_tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(CONN_FLUSH, flush).await.is_err() {
            self.conn_tasks.abort_all();
        }
        tracing::info!("SIP endpoint stopped");
    }
}

/// Load the prompts under `paths.audio` (leniently: a bad file is logged, not fatal; a
/// missing directory gives no prompts). Blocking file IO: call from `spawn_blocking`.
pub fn load_prompts(config: &Config) -> PromptStore {
    match PromptStore::load_dir_lenient(&config.paths.audio) {
        Ok((store, errors)) => {
            for e in &errors {
                tracing::warn!(error = %e, "prompt not loaded");
            }
            tracing::info!(prompts = store.len(), dir = %config.paths.audio.display(), "prompts loaded");
            store
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %config.paths.audio.display(), "no prompts loaded");
            PromptStore::default()
        }
    }
}

/// Start the media workers on the configured RTP range.
fn start_media(config: &Config, prompts: PromptStore) -> MediaWorkers {
    let media = MediaConfig {
        rtp_bind: config.rtp.address,
        port_first: config.rtp.ports.first(),
        port_last: config.rtp.ports.last(),
        no_rtp_timeout: config.limits.no_rtp_timeout.get(),
        realtime: config.rtp.realtime,
        seed: rand::random(),
        ..MediaConfig::default()
    };
    MediaWorkers::start(media, Arc::new(prompts))
}

fn endpoint_config(config: &Config, local: SocketAddr) -> EndpointConfig {
    EndpointConfig {
        local,
        user_agent: config.sip.user_agent.clone(),
        numbers: config.security.accepted_numbers.clone(),
        max_calls: config.limits.max_calls,
        retry_after_secs: config.sip.retry_after_secs,
        rate_per_source: config.limits.rate_per_source,
        rate_burst: config.limits.rate_burst,
        trusted: config
            .security
            .trusted_sources
            .iter()
            .map(|c| (c.addr, c.prefix))
            .collect(),
        max_call_duration: config.limits.max_call_duration.get(),
        timers: Timers {
            t1: config.sip.t1.get(),
            t2: config.sip.t2.get(),
            t4: config.sip.t4.get(),
        },
        seed: rand::random(),
        registrar: registrar_config(config),
    }
}

/// The registrar's settings (HA1 computed here; passwords are not kept past startup).
pub fn registrar_config(config: &Config) -> Option<RegistrarConfig> {
    let section = &config.registrar;
    if !section.enabled {
        return None;
    }
    let users = section
        .users
        .iter()
        .map(|u| UserCredential::from_password(&u.user, &section.realm, &u.password.0))
        .collect();
    let mut r = RegistrarConfig::new(&section.realm, users);
    r.domains = section.domains.clone();
    r.min_expires = section.min_expires_secs;
    r.max_expires = section.max_expires_secs;
    r.default_expires = r.default_expires.clamp(r.min_expires, r.max_expires);
    r.seed = rand::random();
    Some(r)
}

async fn recv_udp(udp: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match udp {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept_tcp(tcp: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match tcp {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}
