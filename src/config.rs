//! Typed configuration: embedded defaults, one YAML file, environment and flag overrides.
//!
//! Owns: the [`Config`] tree and how it is assembled. Precedence, lowest first:
//! built-in defaults < the YAML file (`guichet.yaml`, or `--config PATH`) < environment
//! variables `GUICHET_<PATH>` < command-line flags (`--sip-listen`, `--http-listen`,
//! `--rtp-ports`).
//!
//! Input: the file's text (with its name, for error messages), an iterator of environment
//! variables, and [`Overrides`] from flags. Output: a validated [`Config`] or a
//! [`ConfigError`] naming the file, line and column (or the environment variable / flag) and
//! what was expected. Every key has a default, so no file at all is a valid setup.
//!
//! Environment variable names are the key path joined with `_`, upper-cased, under
//! `GUICHET_`: `sip.listen` is `GUICHET_SIP_LISTEN`, `limits.max_calls` is
//! `GUICHET_LIMITS_MAX_CALLS`. Lists take comma-separated values
//! (`GUICHET_SECURITY_TRUSTED_SOURCES=127.0.0.0/8,10.1.0.0/16`).
//!
//! ```
//! use guichet::config::{Config, Overrides};
//! let yaml = "limits:\n  max_calls: 50\n";
//! let env = [("GUICHET_SIP_LISTEN".to_string(), "127.0.0.1:5070".to_string())];
//! let config = Config::assemble(Some(("guichet.yaml", yaml)), env, &Overrides::default()).unwrap();
//! assert_eq!(config.limits.max_calls, 50);
//! assert_eq!(config.sip.listen.to_string(), "127.0.0.1:5070");
//! assert_eq!(config.rtp.ports.first(), 20000);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Prefix of every environment variable that overrides a key.
pub const ENV_PREFIX: &str = "GUICHET_";

/// Environment variables under [`ENV_PREFIX`] that are not config keys: read by the CLI
/// (`GUICHET_CONFIG`) or by docker-compose (`GUICHET_UID`, `GUICHET_GID`). Any other
/// `GUICHET_*` variable must name a key; extend this list when a CLI flag gets an env name.
pub const ENV_NOT_KEYS: &[&str] = &["GUICHET_CONFIG", "GUICHET_UID", "GUICHET_GID"];

/// The file read when `--config` is not given (it may be absent).
pub const DEFAULT_FILE: &str = "guichet.yaml";

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML did not match the schema (unknown key, bad value, syntax error).
    #[error("{file}:{line}:{column}: {message}")]
    File {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// An environment variable held a value the key does not accept.
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: String,
        value: String,
        message: String,
    },
    /// A `GUICHET_*` variable that names no key (likely a typo).
    #[error("environment variable {var} names no configuration key (known: {known})")]
    UnknownEnv { var: String, known: String },
    /// A flag held a bad value.
    #[error("flag {flag}: {message}")]
    Flag { flag: &'static str, message: String },
    /// The values parse but contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub http: HttpConfig,
    pub paths: PathsConfig,
    pub flows: FlowsConfig,
    pub limits: LimitsConfig,
    pub security: SecurityConfig,
    pub registrar: RegistrarSection,
    pub log: LogConfig,
}

/// SIP listening and protocol settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for both UDP and TCP. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Serve SIP over UDP.
    pub udp: bool,
    /// Serve SIP over TCP (same address as UDP).
    pub tcp: bool,
    /// Address written in Via/Contact when `listen` is a wildcard (0.0.0.0) or behind NAT.
    pub advertised_address: Option<IpAddr>,
    /// `Server`/`User-Agent` header.
    pub user_agent: String,
    /// Time between 180 Ringing and the answer (0s answers at once; under 3m).
    pub answer_delay: DurationValue,
    /// RFC 3261 T1 (retransmission base; 64*T1 is the transaction timeout).
    pub t1: DurationValue,
    /// RFC 3261 T2 (retransmission cap).
    pub t2: DurationValue,
    /// RFC 3261 T4 (how long responses and ACKs are absorbed).
    pub t4: DurationValue,
    /// Retry-After seconds on 503 (over capacity).
    pub retry_after_secs: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            udp: true,
            tcp: true,
            advertised_address: None,
            user_agent: format!("Guichet/{}", env!("CARGO_PKG_VERSION")),
            answer_delay: DurationValue(Duration::ZERO),
            t1: DurationValue(Duration::from_millis(500)),
            t2: DurationValue(Duration::from_secs(4)),
            t4: DurationValue(Duration::from_secs(5)),
            retry_after_secs: 30,
        }
    }
}

/// Where RTP is received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// Address RTP sockets bind to and that goes in SDP `c=`.
    pub address: IpAddr,
    /// Address put in SDP `c=` instead of `address` (when binding a wildcard or behind NAT).
    pub advertised_address: Option<IpAddr>,
    /// Port range for RTP (even ports used, RTCP on +1).
    pub ports: PortRange,
    /// Run the media worker threads with real-time scheduling (`SCHED_FIFO`), as
    /// Asterisk's `-p` and FreeSWITCH's `-rp` do, so a busy host does not delay the 20 ms
    /// packets. Needs root or CAP_SYS_NICE; without it a warning is logged and the workers
    /// run normally. Off by default.
    pub realtime: bool,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertised_address: None,
            ports: PortRange {
                first: 20000,
                last: 29999,
            },
            realtime: false,
        }
    }
}

/// The HTTP API and dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        }
    }
}

/// Directories the engine reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Voice-menu flows (YAML).
    pub flows: PathBuf,
    /// Prompt audio files.
    pub audio: PathBuf,
    /// Call records, recordings, state.
    pub data: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            flows: PathBuf::from("./flows"),
            audio: PathBuf::from("./audio"),
            data: PathBuf::from("./data"),
        }
    }
}

/// How calls enter the voice menus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Where every call starts: a flow id (its `entry` node) or `flow.node`.
    pub entry: String,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            entry: "main".to_owned(),
        }
    }
}

/// Every limit, with a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Concurrent calls; past it INVITEs get 503.
    pub max_calls: usize,
    /// New requests per second per source address (token bucket rate).
    pub rate_per_source: f64,
    /// Token bucket size per source.
    pub rate_burst: u32,
    /// Largest SIP message accepted, in bytes (UDP datagram or TCP message).
    pub max_message_size: usize,
    /// A call is ended with BYE after this long.
    pub max_call_duration: DurationValue,
    /// A call with no RTP received for this long (not on hold) is ended.
    pub no_rtp_timeout: DurationValue,
    /// Concurrent SIP TCP connections; more are refused.
    pub tcp_max_connections: usize,
    /// A TCP connection idle this long is closed.
    pub tcp_idle_timeout: DurationValue,
    /// On shutdown, how long to wait for calls to end after BYE.
    pub shutdown_grace: DurationValue,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 1000,
            rate_per_source: 20.0,
            rate_burst: 40,
            max_message_size: 64 * 1024,
            max_call_duration: DurationValue(Duration::from_secs(2 * 3600)),
            no_rtp_timeout: DurationValue(Duration::from_secs(30)),
            tcp_max_connections: 256,
            tcp_idle_timeout: DurationValue(Duration::from_secs(300)),
            shutdown_grace: DurationValue(Duration::from_secs(5)),
        }
    }
}

/// Who may call, and which numbers are answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Networks allowed to send SIP requests; others are dropped silently.
    pub trusted_sources: Vec<Cidr>,
    /// Request-URI users answered; empty means any.
    pub accepted_numbers: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            trusted_sources: vec![
                Cidr {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            accepted_numbers: Vec::new(),
        }
    }
}

/// The SIP registrar for agents' phones (REGISTER with digest authentication).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarSection {
    /// When false, REGISTER gets 405.
    pub enabled: bool,
    /// Digest realm.
    pub realm: String,
    /// Domains whose addresses of record are held; empty means any.
    pub domains: Vec<String>,
    /// Shortest accepted registration (shorter get 423).
    pub min_expires_secs: u32,
    /// Longest registration granted.
    pub max_expires_secs: u32,
    /// Agents allowed to register (file only: a list does not fit an environment variable).
    /// With none, every REGISTER is challenged and none succeeds.
    pub users: Vec<RegistrarUser>,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        RegistrarSection {
            enabled: true,
            realm: "guichet".to_string(),
            domains: Vec::new(),
            min_expires_secs: 60,
            max_expires_secs: 3600,
            users: Vec::new(),
        }
    }
}

/// One agent's credentials. The password is hashed (HA1) at startup and never printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarUser {
    pub user: String,
    pub password: Secret,
}

/// A secret string: `Debug` and `guichet config` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter (`info`, `guichet=debug`, ...).
    pub level: String,
    /// Phone numbers appear in logs only when this is true.
    pub show_numbers: bool,
    /// How often SIP counters are logged.
    pub stats_interval: DurationValue,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
            show_numbers: false,
            stats_interval: DurationValue(Duration::from_secs(60)),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A duration written `500ms`, `30s`, `5m`, `2h` or combined (`1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationValue(pub Duration);

impl DurationValue {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for DurationValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected a duration like 500ms, 30s, 5m, 2h or 1h30m, got {s:?}");
        let s = s.trim();
        if s.is_empty() {
            return Err(bad());
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(bad)?),
                "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(bad)?),
                _ => return Err(bad()),
            };
            total = total.checked_add(part).ok_or_else(bad)?;
        }
        Ok(DurationValue(total))
    }
}

impl fmt::Display for DurationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let ms = d.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut secs = d.as_secs();
        let hours = secs / 3600;
        secs %= 3600;
        let minutes = secs / 60;
        secs %= 60;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if secs > 0 {
            write!(f, "{secs}s")?;
        }
        Ok(())
    }
}

/// An inclusive UDP port range written `20000-29999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// A range; `None` when `first > last` or `first` is 0.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first > 0 && first <= last).then_some(PortRange { first, last })
    }
    pub fn first(self) -> u16 {
        self.first
    }
    pub fn last(self) -> u16 {
        self.last
    }
    /// Number of ports in the range.
    pub fn len(self) -> usize {
        usize::from(self.last - self.first) + 1
    }
    /// Never true (a range holds at least one port); for clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected a port range like 20000-29999, got {s:?}");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if last.saturating_sub(first) < 1 {
            return Err(format!(
                "port range {s:?} must hold at least two ports, first below last (RTP and RTCP)"
            ));
        }
        PortRange::new(first, last).ok_or_else(bad)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// A network written `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected a network like 10.0.0.0/8 or ::1/128, got {s:?}");
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                (addr, Some(p.parse::<u8>().map_err(|_| bad())?))
            }
            None => (s.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!(
                "prefix /{prefix} is longer than {max} bits in {s:?}"
            ));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(DurationValue);
serde_via_str!(PortRange);
serde_via_str!(Cidr);

/// Values from command-line flags (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sip_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub rtp_ports: Option<PortRange>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

impl Config {
    /// Load: read `path` (or `guichet.yaml` when present, when `path` is None), then the
    /// process environment, then `flags`.
    pub fn load(path: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let (name, text) = match path {
            Some(p) => (p.display().to_string(), Some(read_file(p)?)),
            None => {
                let p = Path::new(DEFAULT_FILE);
                if p.exists() {
                    (DEFAULT_FILE.to_string(), Some(read_file(p)?))
                } else {
                    (DEFAULT_FILE.to_string(), None)
                }
            }
        };
        let file = text.as_deref().map(|t| (name.as_str(), t));
        Config::assemble(file, std::env::vars(), flags)
    }

    /// Assemble from an optional `(file name, YAML text)`, environment variables and flags.
    /// Pure: the caller supplies the environment (tests pass their own).
    pub fn assemble(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some((name, text)) => Config::from_yaml(name, text)?,
            None => Config::default(),
        };
        config = config.apply_env(env)?;
        config.apply_flags(flags);
        config.validate()?;
        Ok(config)
    }

    /// Parse YAML text (an empty file is all defaults). Errors name `file:line:column`.
    pub fn from_yaml(file: &str, text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str::<Config>(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError::File {
                file: file.to_string(),
                line,
                column,
                message: clean_message(&e.to_string()),
            }
        })
    }

    /// Every environment variable name that overrides a key, with its current value.
    pub fn env_keys(&self) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        if let Ok(tree) = serde_json::to_value(self) {
            collect_leaves(&tree, ENV_PREFIX.trim_end_matches('_'), &mut out);
        }
        out
    }

    /// Apply `GUICHET_*` variables. A variable naming no key is an error (likely a typo).
    pub fn apply_env(
        self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_KEYS.contains(&k.as_str()))
            .collect();
        if vars.is_empty() {
            return Ok(self);
        }
        vars.sort();
        let keys = self.env_keys();
        let mut tree =
            serde_json::to_value(&self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (var, value) in vars {
            let Some((_, current)) = keys.iter().find(|(k, _)| *k == var) else {
                return Err(ConfigError::UnknownEnv {
                    var,
                    known: keys
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let env_err = |message: String| ConfigError::Env {
                var: var.clone(),
                value: value.clone(),
                message,
            };
            let new_value = scalar_like(current, &value).map_err(env_err)?;
            let path = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            set_leaf(&mut tree, &path, new_value);
            // Check after each variable so an error names the variable that caused it.
            serde_json::from_value::<Config>(tree.clone()).map_err(|e| env_err(e.to_string()))?;
        }
        serde_json::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Apply flag values (highest precedence).
    pub fn apply_flags(&mut self, flags: &Overrides) {
        if let Some(a) = flags.sip_listen {
            self.sip.listen = a;
        }
        if let Some(a) = flags.http_listen {
            self.http.listen = a;
        }
        if let Some(r) = flags.rtp_ports {
            self.rtp.ports = r;
        }
        if let Some(f) = flags.log_format {
            self.log.format = f;
        }
        if let Some(l) = &flags.log_level {
            self.log.level = l.clone();
        }
    }

    /// Cross-field checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !self.sip.udp && !self.sip.tcp {
            return invalid("sip.udp and sip.tcp are both false: enable at least one transport");
        }
        if self.limits.max_calls == 0 {
            return invalid("limits.max_calls must be at least 1");
        }
        if !(self.limits.rate_per_source > 0.0 && self.limits.rate_per_source.is_finite()) {
            return invalid("limits.rate_per_source must be a positive number");
        }
        if self.limits.rate_burst == 0 {
            return invalid("limits.rate_burst must be at least 1");
        }
        if self.limits.max_message_size < 1024 {
            return invalid("limits.max_message_size must be at least 1024 bytes");
        }
        if self.sip.t1.get().is_zero() {
            return invalid("sip.t1 must be above 0s");
        }
        if self.sip.t2 < self.sip.t1 {
            return invalid("sip.t2 must be at least sip.t1");
        }
        if self.sip.listen.ip().is_unspecified() && self.sip.advertised_address.is_none() {
            return invalid(
                "sip.listen is a wildcard address: set sip.advertised_address to the address \
                 callers reach (it goes in Via and Contact)",
            );
        }
        if self.rtp.address.is_unspecified() && self.rtp.advertised_address.is_none() {
            return invalid(
                "rtp.address is a wildcard address: set rtp.advertised_address to the address \
                 callers send RTP to (it goes in SDP c=)",
            );
        }
        if self.registrar.enabled && self.registrar.realm.trim().is_empty() {
            return invalid("registrar.realm is empty: set a realm or registrar.enabled: false");
        }
        if self.registrar.min_expires_secs > self.registrar.max_expires_secs
            || self.registrar.max_expires_secs == 0
        {
            return invalid(
                "registrar.min_expires_secs must be at most registrar.max_expires_secs (above 0)",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for u in &self.registrar.users {
            if !seen.insert(u.user.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "registrar.users: {:?} is listed twice",
                    u.user
                )));
            }
        }
        if self.sip.answer_delay.get() >= crate::sip::endpoint::EARLY_CALL_TIMEOUT {
            return invalid(
                "sip.answer_delay must be under 3m: the endpoint answers 480 to INVITEs left \
                 unanswered that long",
            );
        }
        if self.limits.max_call_duration.get().is_zero() {
            return invalid("limits.max_call_duration must be above 0s");
        }
        if self.log.stats_interval.get().is_zero() {
            return invalid("log.stats_interval must be above 0s");
        }
        Ok(())
    }

    /// The effective configuration as YAML (`guichet config`), secrets (registrar
    /// passwords) replaced by `<redacted>`.
    pub fn to_yaml(&self) -> String {
        let mut shown = self.clone();
        for u in &mut shown.registrar.users {
            u.password = Secret("<redacted>".to_string());
        }
        let mut text =
            serde_saphyr::to_string(&shown).unwrap_or_else(|e| format!("# cannot print: {e}"));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

fn read_file(p: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
        path: p.to_path_buf(),
        source,
    })
}

/// The first line of a serde-saphyr message without its own `error: line N column M: `
/// prefix (we print `file:line:column:` ourselves).
fn clean_message(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    if line.starts_with("line ")
        && let Some((head, rest)) = line.split_once(": ")
        && head.contains(" column ")
    {
        return rest.to_string();
    }
    line.to_string()
}

fn collect_leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                collect_leaves(child, &format!("{prefix}_{}", k.to_ascii_uppercase()), out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// Set the leaf at `path` (env form, lower-case with `_`), matching object keys greedily:
/// `limits_max_calls` walks `limits` then `max_calls`.
fn set_leaf(tree: &mut serde_json::Value, path: &str, value: serde_json::Value) -> bool {
    let serde_json::Value::Object(map) = tree else {
        return false;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if path == key {
            map.insert(key, value);
            return true;
        }
        if let Some(rest) = path.strip_prefix(&format!("{key}_"))
            && let Some(child) = map.get_mut(&key)
            && set_leaf(child, rest, value.clone())
        {
            return true;
        }
    }
    false
}

/// Turn an environment string into a JSON value shaped like the key's current value.
fn scalar_like(current: &serde_json::Value, raw: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    match current {
        Value::Bool(_) => match raw.trim() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Value::Number(n) => {
            let t = raw.trim();
            if n.is_f64() {
                let f: f64 = t
                    .parse()
                    .map_err(|_| format!("expected a number, got {raw:?}"))?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("expected a finite number, got {raw:?}"))
            } else {
                let u: u64 = t
                    .parse()
                    .map_err(|_| format!("expected a whole number, got {raw:?}"))?;
                Ok(Value::Number(u.into()))
            }
        }
        Value::Null if raw.trim().is_empty() => Ok(Value::Null),
        Value::Array(_) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        _ => Ok(Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::assemble(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
        assert!(c.sip.udp && c.sip.tcp);
        assert_eq!(c.rtp.address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((c.rtp.ports.first(), c.rtp.ports.last()), (20000, 29999));
        assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.paths.flows, PathBuf::from("./flows"));
        assert_eq!(c.paths.audio, PathBuf::from("./audio"));
        assert_eq!(c.paths.data, PathBuf::from("./data"));
        assert_eq!(c.limits.max_calls, 1000);
        assert_eq!(c.limits.rate_per_source, 20.0);
        assert_eq!(c.limits.rate_burst, 40);
        assert_eq!(c.limits.max_message_size, 65536);
        assert_eq!(c.limits.max_call_duration.get(), Duration::from_secs(7200));
        assert_eq!(c.limits.no_rtp_timeout.get(), Duration::from_secs(30));
        assert!(c.security.accepted_numbers.is_empty());
        let trusted: Vec<String> = c
            .security
            .trusted_sources
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(trusted, vec!["127.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn file_overrides_defaults() {
        let yaml = "sip:\n  listen: 0.0.0.0:5080\nlimits:\n  max_calls: 5\n  max_call_duration: 1h30m\nsecurity:\n  accepted_numbers: ['3939']\n";
        let c = Config::from_yaml("g.yaml", yaml).unwrap();
        assert_eq!(c.sip.listen, "0.0.0.0:5080".parse().unwrap());
        assert_eq!(c.limits.max_calls, 5);
        assert_eq!(c.limits.max_call_duration.get(), Duration::from_secs(5400));
        assert_eq!(
            c.limits.rate_burst, 40,
            "keys not in the file keep their default"
        );
        assert_eq!(c.security.accepted_numbers, vec!["3939"]);
    }

    #[test]
    fn unknown_key_names_file_line_column() {
        let yaml = "sip:\n  listen: 127.0.0.1:5060\n  lisen: 1\n";
        let err = Config::from_yaml("conf/guichet.yaml", yaml).unwrap_err();
        let ConfigError::File {
            file,
            line,
            column,
            message,
        } = &err
        else {
            panic!("expected a file error, got {err:?}");
        };
        assert_eq!(file, "conf/guichet.yaml");
        assert_eq!((*line, *column), (3, 3));
        assert!(message.contains("lisen"), "{message}");
        assert!(
            err.to_string().starts_with("conf/guichet.yaml:3:3: "),
            "{err}"
        );
    }

    #[test]
    fn bad_value_names_line_and_expectation() {
        let yaml = "limits:\n  max_calls: 10\n  max_call_duration: forever\n";
        let err = Config::from_yaml("g.yaml", yaml).unwrap_err();
        let ConfigError::File { line, message, .. } = &err else {
            panic!("expected a file error, got {err:?}");
        };
        assert_eq!(*line, 3);
        assert!(message.contains("duration"), "{message}");

        let err = Config::from_yaml("g.yaml", "rtp:\n  ports: 3000\n").unwrap_err();
        assert!(matches!(err, ConfigError::File { line: 2, .. }), "{err}");
        let err = Config::from_yaml("g.yaml", "limits:\n  max_calls: many\n").unwrap_err();
        assert!(matches!(err, ConfigError::File { line: 2, .. }), "{err}");
    }

    #[test]
    fn the_flow_entry_is_a_setting() {
        let c = Config::assemble(
            Some(("g.yaml", "flows:\n  entry: impots.menu\n")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.flows.entry, "impots.menu");
        let c = Config::assemble(
            None,
            env(&[("GUICHET_FLOWS_ENTRY", "caf")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.flows.entry, "caf");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let yaml = "sip:\n  listen: 127.0.0.1:5061\nlimits:\n  max_calls: 7\n";
        let vars = env(&[
            ("GUICHET_SIP_LISTEN", "127.0.0.1:5062"),
            ("GUICHET_LIMITS_MAX_CALLS", "9"),
            ("GUICHET_LIMITS_RATE_PER_SOURCE", "2.5"),
            (
                "GUICHET_SECURITY_TRUSTED_SOURCES",
                "10.0.0.0/8, 192.168.1.7",
            ),
            ("GUICHET_SIP_TCP", "false"),
            ("GUICHET_CONFIG", "ignored.yaml"),
            ("PATH", "/bin"),
        ]);
        let flags = Overrides {
            sip_listen: Some("127.0.0.1:5063".parse().unwrap()),
            rtp_ports: Some("30000-30999".parse().unwrap()),
            ..Overrides::default()
        };
        let c =
            Config::assemble(Some(("g.yaml", yaml)), vars.clone(), &Overrides::default()).unwrap();
        assert_eq!(c.flows.entry, "main");
        assert_eq!(c.sip.listen.port(), 5062);
        assert_eq!(c.limits.max_calls, 9);
        assert_eq!(c.limits.rate_per_source, 2.5);
        assert!(!c.sip.tcp);
        assert_eq!(c.security.trusted_sources.len(), 2);
        assert!(c.security.trusted_sources[1].contains("192.168.1.7".parse().unwrap()));
        let c = Config::assemble(Some(("g.yaml", yaml)), vars, &flags).unwrap();
        assert_eq!(c.sip.listen.port(), 5063);
        assert_eq!(c.rtp.ports.to_string(), "30000-30999");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err = Config::assemble(
            None,
            env(&[("GUICHET_LIMITS_MAX_CALLS", "lots")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("GUICHET_LIMITS_MAX_CALLS"),
            "{err}"
        );
        let err = Config::assemble(
            None,
            env(&[("GUICHET_SIP_LISTEN", "nowhere")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GUICHET_SIP_LISTEN"), "{err}");
        let err = Config::assemble(
            None,
            env(&[("GUICHET_SIP_LISTN", "127.0.0.1:1")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownEnv { .. }), "{err}");
        assert!(
            err.to_string().contains("GUICHET_SIP_LISTEN"),
            "lists known names: {err}"
        );
    }

    #[test]
    fn every_key_has_an_env_name() {
        let keys = Config::default().env_keys();
        for name in [
            "GUICHET_SIP_LISTEN",
            "GUICHET_HTTP_LISTEN",
            "GUICHET_RTP_PORTS",
            "GUICHET_LIMITS_MAX_CALLS",
            "GUICHET_LIMITS_TCP_IDLE_TIMEOUT",
            "GUICHET_SECURITY_ACCEPTED_NUMBERS",
            "GUICHET_LOG_FORMAT",
            "GUICHET_PATHS_DATA",
        ] {
            assert!(keys.iter().any(|(k, _)| k == name), "{name} missing");
        }
    }

    #[test]
    fn printed_config_reads_back_identically() {
        let mut c = Config::default();
        c.limits.max_calls = 3;
        c.sip.t1 = DurationValue(Duration::from_millis(50));
        let yaml = c.to_yaml();
        assert_eq!(Config::from_yaml("printed", &yaml).unwrap(), c, "{yaml}");
    }

    #[test]
    fn registrar_users_come_from_the_file_and_passwords_are_never_printed() {
        let yaml = "registrar:\n  realm: mairie.example\n  users:\n    - user: agent1\n      password: s3cret\n";
        let c = Config::from_yaml("g.yaml", yaml).unwrap();
        assert_eq!(c.registrar.users.len(), 1);
        assert_eq!(c.registrar.users[0].password.0, "s3cret");
        let printed = c.to_yaml();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!format!("{c:?}").contains("s3cret"));
        // Env overrides keep the real password (they round-trip the tree).
        let c = c
            .apply_env(env(&[("GUICHET_REGISTRAR_REALM", "autre.example")]))
            .unwrap();
        assert_eq!(c.registrar.users[0].password.0, "s3cret");
        assert_eq!(c.registrar.realm, "autre.example");
        let twice =
            "registrar:\n  users:\n    - {user: a, password: x}\n    - {user: a, password: y}\n";
        let err =
            Config::assemble(Some(("g.yaml", twice)), env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn durations_parse_and_print() {
        for (s, d) in [
            ("500ms", 500u64),
            ("30s", 30_000),
            ("2h", 7_200_000),
            ("1h30m", 5_400_000),
            ("0s", 0),
        ] {
            let v: DurationValue = s.parse().unwrap();
            assert_eq!(v.get(), Duration::from_millis(d));
            assert_eq!(v.to_string(), s);
        }
        for bad in ["", "5", "s", "1d", "-1s", "1.5s"] {
            assert!(bad.parse::<DurationValue>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_matching() {
        let net: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(net.contains("127.1.2.3".parse().unwrap()));
        assert!(!net.contains("128.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "::1".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn validation_refuses_contradictions() {
        let err = Config::assemble(
            Some(("g.yaml", "sip:\n  udp: false\n  tcp: false\n")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sip.udp"), "{err}");
        let wildcard = env(&[("GUICHET_RTP_ADDRESS", "0.0.0.0")]);
        let err = Config::assemble(None, wildcard, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("rtp.advertised_address"), "{err}");
        let fixed = env(&[
            ("GUICHET_RTP_ADDRESS", "0.0.0.0"),
            ("GUICHET_RTP_ADVERTISED_ADDRESS", "192.0.2.10"),
            ("GUICHET_SIP_LISTEN", "0.0.0.0:5060"),
            ("GUICHET_SIP_ADVERTISED_ADDRESS", "192.0.2.10"),
        ]);
        let c = Config::assemble(None, fixed, &Overrides::default()).unwrap();
        assert_eq!(
            c.rtp.advertised_address,
            Some("192.0.2.10".parse().unwrap())
        );
    }

    proptest::proptest! {
        #[test]
        fn duration_strings_round_trip(ms in 0u64..100_000_000) {
            let v = DurationValue(Duration::from_millis(ms));
            proptest::prop_assert_eq!(v.to_string().parse::<DurationValue>().unwrap(), v);
        }
    }
}
