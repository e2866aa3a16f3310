//! SIP registrar (RFC 3261 section 10) with digest authentication (RFC 3261 section 22,
//! RFC 2617, RFC 7616/8760 for SHA-256), sans-IO.
//!
//! Owns: the location service (address-of-record -> contact bindings), the digest
//! challenge/verification of REGISTER requests, nonce issue and nonce-count replay
//! protection, and per-source failure counting with lockout.
//!
//! Contract: [`Registrar::handle_register`] takes one REGISTER (already read by
//! `sip::message`), the time `now` and the packet's source address, and returns a
//! [`RegisterOutcome`]: the [`Response`] to send on the server transaction and the binding
//! changes it made. [`Registrar::lookup`] returns the live bindings of an AOR (to route an
//! INVITE to an agent's phone), [`Registrar::expire`] drops stale bindings and
//! [`Registrar::poll_timeout`] gives the next binding expiry. No IO, no clock reads: every
//! time is an input. Memory is bounded by `max_aors x max_bindings_per_aor` bindings, a
//! nonce table of `max_nonces` and a failure table of `max_tracked_sources`.
//!
//! Passwords are never stored: users carry HA1 = H(user:realm:password) for MD5 and
//! SHA-256. Nonces are stateless (issue time, a random salt from the seeded generator and
//! an HMAC-SHA-256 tag keyed by a secret drawn from that generator); only nonces that
//! authenticated a request enter the (bounded) nonce-count table.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::sip::registrar::{Registrar, RegistrarConfig, UserCredential};
//! let mut config = RegistrarConfig::new("guichet.example", vec![
//!     UserCredential::from_password("agent1", "guichet.example", "s3cret"),
//! ]);
//! config.seed = 42;
//! let mut registrar = Registrar::new(config).expect("valid config");
//! let now = Instant::now(); // in the engine; tests use a fixed start plus durations
//! // let outcome = registrar.handle_register(now, &request, source);
//! // send outcome.response; then later:
//! registrar.expire(now + Duration::from_secs(3600));
//! assert!(registrar.lookup("sip:agent1@guichet.example", now).is_empty());
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::digest::{self, Algorithm, Credentials};
use super::message::{Header, Method, Request, Response, build_response};

/// Errors of the registrar: configuration problems, and why a REGISTER was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    /// The realm is empty.
    #[error("registrar realm is empty")]
    EmptyRealm,
    /// `min_expires <= default_expires <= max_expires` does not hold, or max is 0.
    #[error("expires bounds inconsistent: min {min}, default {default}, max {max}")]
    ExpiresBounds { min: u32, default: u32, max: u32 },
    /// Two credentials for the same user.
    #[error("user {0:?} configured twice")]
    DuplicateUser(String),
    /// A capacity setting is zero.
    #[error("capacity {0} must be at least 1")]
    ZeroCapacity(&'static str),
    /// The request is not a REGISTER.
    #[error("method is not REGISTER")]
    NotRegister,
    /// A mandatory header is missing or unreadable.
    #[error("header {0} missing or malformed")]
    BadHeader(&'static str),
    /// A Contact header value cannot be read.
    #[error("malformed Contact: {0}")]
    BadContact(String),
    /// `Contact: *` with other contacts or without `Expires: 0`.
    #[error("wildcard Contact needs Expires: 0 and no other contact")]
    BadWildcard,
    /// Too many contacts in one request.
    #[error("{0} contacts in one REGISTER")]
    TooManyContacts(usize),
    /// The Authorization `uri` does not match the Request-URI.
    #[error("digest uri {0:?} does not match the Request-URI")]
    DigestUriMismatch(String),
    /// The AOR's domain is not one this registrar serves.
    #[error("AOR {0:?} is not in a served domain")]
    UnknownDomain(String),
    /// Authenticated user not allowed to register this AOR.
    #[error("user {user:?} may not register {aor:?}")]
    Forbidden { user: String, aor: String },
    /// Requested interval below `min_expires` (423).
    #[error("expiry {requested}s below minimum {min}s")]
    IntervalTooBrief { requested: u32, min: u32 },
    /// Same Call-ID with a CSeq not above the stored one (RFC 3261 10.3 step 7).
    #[error("CSeq {cseq} not above stored {stored} for Call-ID {call_id:?}")]
    OutOfOrder {
        call_id: String,
        cseq: u32,
        stored: u32,
    },
    /// The location table is full.
    #[error("location table full ({0} AORs)")]
    TableFull(usize),
    /// The source is locked out after repeated authentication failures.
    #[error("source {0} locked out")]
    LockedOut(IpAddr),
}

/// One user's stored secret: HA1 = H(user ":" realm ":" password), lower-case hex, for
/// both algorithms we challenge with. The password itself is never kept.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredential {
    pub user: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl UserCredential {
    /// Hash a password for `user` in `realm` (config tooling, tests).
    pub fn from_password(user: &str, realm: &str, password: &str) -> UserCredential {
        UserCredential {
            user: user.to_string(),
            ha1_md5: digest::ha1(Algorithm::Md5, user, realm, password),
            ha1_sha256: digest::ha1(Algorithm::Sha256, user, realm, password),
        }
    }

    fn ha1(&self, algorithm: Algorithm) -> &str {
        match algorithm {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

impl std::fmt::Debug for UserCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredential")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Registrar settings. Build with [`RegistrarConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Digest realm (also the HA1 realm of every user).
    pub realm: String,
    pub users: Vec<UserCredential>,
    /// When false (test realms only) REGISTER is processed without a challenge.
    pub require_auth: bool,
    /// Domains whose AORs this registrar holds (host part of the To URI, compared without
    /// case). Empty: any domain. Others get 404 (RFC 3261 10.3 steps 1 and 5).
    pub domains: Vec<String>,
    /// Shortest accepted non-zero expiry; shorter requests get 423 (default 60 s).
    pub min_expires: u32,
    /// Longer requests are shortened to this (default 3600 s).
    pub max_expires: u32,
    /// Expiry when neither the contact nor the request gives one (default 3600 s).
    pub default_expires: u32,
    /// Bindings per AOR; beyond it the binding expiring first is evicted (default 5).
    pub max_bindings_per_aor: usize,
    /// Distinct AORs in the location table; beyond it new AORs get 503 (default 1000).
    pub max_aors: usize,
    /// How long a nonce stays usable (default 300 s); older ones get `stale=true`.
    pub nonce_lifetime: Duration,
    /// Nonces remembered for nonce-count checks (default 4096).
    pub max_nonces: usize,
    /// Authentication failures from one IP address that trigger a lockout (default 10).
    pub lockout_threshold: u32,
    /// Window counting those failures, and lockout duration (default 60 s).
    pub lockout_window: Duration,
    /// Source addresses tracked for failures (default 4096).
    pub max_tracked_sources: usize,
    /// Seed of the generator for nonce salts, tags and the server secret. The engine must
    /// pass a seed from the OS random source; tests pass a constant.
    pub seed: u64,
}

impl RegistrarConfig {
    /// Defaults for `realm` with `users`: authentication required.
    pub fn new(realm: &str, users: Vec<UserCredential>) -> RegistrarConfig {
        RegistrarConfig {
            realm: realm.to_string(),
            users,
            require_auth: true,
            domains: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_bindings_per_aor: 5,
            max_aors: 1000,
            nonce_lifetime: Duration::from_secs(300),
            max_nonces: 4096,
            lockout_threshold: 10,
            lockout_window: Duration::from_secs(60),
            max_tracked_sources: 4096,
            seed: 0,
        }
    }
}

/// One contact bound to an AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI exactly as registered (URI parameters and escaped headers kept).
    pub contact: String,
    /// Contact header parameters other than `expires`, as `;name[=value]` text.
    pub params: String,
    pub expires_at: Instant,
    /// Where the REGISTER came from (for NAT traversal: send requests there).
    pub source: SocketAddr,
    /// The `q` parameter in thousandths (`q=0.5` -> 500), if given.
    pub q: Option<u16>,
    pub call_id: String,
    pub cseq: u32,
}

/// What a REGISTER (or an expiry) changed in the location table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    Added {
        aor: String,
        contact: String,
    },
    Refreshed {
        aor: String,
        contact: String,
    },
    Removed {
        aor: String,
        contact: String,
    },
    /// Dropped because the AOR had `max_bindings_per_aor` bindings.
    Evicted {
        aor: String,
        contact: String,
    },
    Expired {
        aor: String,
        contact: String,
    },
}

/// The answer to one REGISTER.
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    /// The final response to send on the server transaction, built with
    /// [`build_response`] from the request, `to_tag` and `headers`.
    pub response: Response,
    /// The To tag used in `response` (fresh for each answer).
    pub to_tag: String,
    /// The headers the registrar adds to the copied Via/From/To/Call-ID/CSeq (Contact list,
    /// WWW-Authenticate challenges, Min-Expires): for a caller that builds its own response
    /// bytes (Via `received`/`rport`, Server) with the same code and To tag.
    pub headers: Vec<Header>,
    /// Binding changes (empty unless the response is 200).
    pub changes: Vec<BindingChange>,
    /// Why the request was refused, for logs (None for 200 and for plain challenges).
    pub error: Option<RegistrarError>,
}

impl RegisterOutcome {
    /// The response status code.
    pub fn status(&self) -> u16 {
        u16::from(self.response.status_code.clone())
    }
}

/// Counters for supervision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// 401 challenges sent (all causes).
    pub challenges: u64,
    /// Credentials that did not verify (wrong password, unknown user, bad parameters).
    pub auth_failures: u64,
    /// Correct digests on an expired or unknown nonce (answered with `stale=true`).
    pub stale_nonces: u64,
    /// Reused nonce-counts.
    pub replays: u64,
    /// Requests refused with 403 because their source was locked out.
    pub locked_out_requests: u64,
    /// Lockouts started.
    pub lockouts: u64,
    /// 200 responses.
    pub accepted: u64,
}

#[derive(Debug)]
struct NonceUse {
    issued_ms: u64,
    last_nc: u32,
}

#[derive(Debug)]
struct FailureWindow {
    start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

enum NonceCheck {
    Fresh { issued_ms: u64 },
    Unusable,
}

enum AuthResult {
    Authenticated(String),
    Challenge { stale: bool },
    Refuse(u16, RegistrarError),
}

enum ContactSpec {
    Wildcard,
    Contact {
        uri: String,
        params: String,
        expires: Option<u32>,
        q: Option<u16>,
    },
}

/// Most contacts accepted in one REGISTER (bounds the work per request).
const MAX_CONTACTS_PER_REQUEST: usize = 16;
/// Length of a nonce: 16 hex issue time, 16 hex salt, 32 hex tag.
const NONCE_LEN: usize = 64;

/// The registrar and location service. See the module docs.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    users: HashMap<String, UserCredential>,
    aors: HashMap<String, Vec<Binding>>,
    nonces: HashMap<String, NonceUse>,
    /// Nonces issued at or before this (ms since epoch) and absent from `nonces` may have
    /// been evicted: they are treated as stale so their nonce-counts cannot be replayed.
    nonce_floor_ms: Option<u64>,
    failures: HashMap<IpAddr, FailureWindow>,
    epoch: Option<Instant>,
    rng: StdRng,
    secret: [u8; 32],
    opaque: String,
    stats: Stats,
}

impl Registrar {
    /// A registrar with an empty location table.
    pub fn new(config: RegistrarConfig) -> Result<Registrar, RegistrarError> {
        if config.realm.is_empty() {
            return Err(RegistrarError::EmptyRealm);
        }
        if config.max_expires == 0
            || config.min_expires > config.max_expires
            || config.default_expires < config.min_expires
            || config.default_expires > config.max_expires
        {
            return Err(RegistrarError::ExpiresBounds {
                min: config.min_expires,
                default: config.default_expires,
                max: config.max_expires,
            });
        }
        for (value, name) in [
            (config.max_bindings_per_aor, "max_bindings_per_aor"),
            (config.max_aors, "max_aors"),
            (config.max_nonces, "max_nonces"),
            (config.max_tracked_sources, "max_tracked_sources"),
        ] {
            if value == 0 {
                return Err(RegistrarError::ZeroCapacity(name));
            }
        }
        let mut users = HashMap::new();
        for user in &config.users {
            if users.insert(user.user.clone(), user.clone()).is_some() {
                return Err(RegistrarError::DuplicateUser(user.user.clone()));
            }
        }
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let opaque = digest::to_hex(&digest::hmac_sha256(&secret, b"opaque")[..16]);
        Ok(Registrar {
            config,
            users,
            aors: HashMap::new(),
            nonces: HashMap::new(),
            nonce_floor_ms: None,
            failures: HashMap::new(),
            epoch: None,
            rng,
            secret,
            opaque,
            stats: Stats::default(),
        })
    }

    /// Answer one REGISTER received at `now` from `source`.
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
    ) -> RegisterOutcome {
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }
        if req.method != Method::Register {
            return self.refuse(req, 405, RegistrarError::NotRegister, Vec::new());
        }
        if self.locked_out(source, now) {
            self.stats.locked_out_requests += 1;
            return self.refuse(req, 403, RegistrarError::LockedOut(source.ip()), Vec::new());
        }
        let Some(aor) = header_value(req, |h| matches!(h, Header::To(_))).and_then(aor_of) else {
            return self.refuse(req, 400, RegistrarError::BadHeader("To"), Vec::new());
        };
        if !self.serves(&aor) {
            return self.refuse(req, 404, RegistrarError::UnknownDomain(aor), Vec::new());
        }
        let Some(call_id) = header_value(req, |h| matches!(h, Header::CallId(_)))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            return self.refuse(req, 400, RegistrarError::BadHeader("Call-ID"), Vec::new());
        };
        let Some(cseq) = header_value(req, |h| matches!(h, Header::CSeq(_)))
            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
        else {
            return self.refuse(req, 400, RegistrarError::BadHeader("CSeq"), Vec::new());
        };

        if self.config.require_auth {
            match self.authenticate(now, req, source) {
                AuthResult::Authenticated(user) => {
                    if aor_user(&aor) != Some(user.as_str()) {
                        let error = RegistrarError::Forbidden { user, aor };
                        return self.refuse(req, 403, error, Vec::new());
                    }
                }
                AuthResult::Challenge { stale } => return self.challenge(now, req, stale),
                AuthResult::Refuse(code, error) => {
                    return self.refuse(req, code, error, Vec::new());
                }
            }
        }

        let contacts = match parse_contacts(req) {
            Ok(c) => c,
            Err(e) => return self.refuse(req, 400, e, Vec::new()),
        };
        let header_expires = header_value(req, |h| matches!(h, Header::Expires(_)))
            .and_then(|v| parse_delta_seconds(v.trim()));

        let mut changes = self.expire_aor(&aor, now);
        let result = if contacts.iter().any(|c| matches!(c, ContactSpec::Wildcard)) {
            if contacts.len() != 1 || header_expires != Some(0) {
                Err((400, RegistrarError::BadWildcard, Vec::new()))
            } else {
                self.remove_all(&aor, &call_id, cseq)
            }
        } else {
            self.update(now, &aor, contacts, header_expires, &call_id, cseq, source)
        };
        match result {
            Ok(mut more) => {
                changes.append(&mut more);
                self.stats.accepted += 1;
                let contacts = self.contact_list(now, &aor);
                self.outcome(req, 200, contacts, changes, None)
            }
            Err((code, error, extra)) => self.outcome(req, code, extra, changes, Some(error)),
        }
    }

    /// Live bindings of `aor` (any URI form; parameters are ignored), best `q` first.
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        let Some(key) = aor_of(aor) else {
            return Vec::new();
        };
        let mut found: Vec<Binding> = self
            .aors
            .get(&key)
            .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        found.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
        found
    }

    /// Remove every binding expired at `now`; also forgets old nonces and failure windows.
    pub fn expire(&mut self, now: Instant) -> Vec<BindingChange> {
        let mut changes = Vec::new();
        for (aor, bindings) in self.aors.iter_mut() {
            bindings.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    changes.push(BindingChange::Expired {
                        aor: aor.clone(),
                        contact: b.contact.clone(),
                    });
                }
                live
            });
        }
        self.aors.retain(|_, b| !b.is_empty());
        let now_ms = self.ms_since_epoch(now);
        let lifetime_ms = duration_ms(self.config.nonce_lifetime);
        self.nonces
            .retain(|_, n| now_ms.saturating_sub(n.issued_ms) <= lifetime_ms);
        let window = self.config.lockout_window;
        self.failures.retain(|_, f| {
            f.locked_until.is_some_and(|t| now < t)
                || now.saturating_duration_since(f.start) < window
        });
        changes
    }

    /// The next binding expiry, if any binding exists.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.aors.values().flatten().map(|b| b.expires_at).min()
    }

    /// Whether `source`'s IP address is locked out at `now`.
    pub fn locked_out(&self, source: SocketAddr, now: Instant) -> bool {
        self.failures
            .get(&source.ip())
            .and_then(|f| f.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of bindings in the table (expired ones included until [`Registrar::expire`]).
    pub fn binding_count(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }

    fn serves(&self, aor: &str) -> bool {
        let host = aor
            .rsplit_once('@')
            .map_or_else(|| aor.split_once(':').map_or(aor, |(_, h)| h), |(_, h)| h);
        let host = host.split(':').next().unwrap_or(host);
        self.config.domains.is_empty()
            || self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
    }

    // ----- authentication -----

    fn authenticate(&mut self, now: Instant, req: &Request, source: SocketAddr) -> AuthResult {
        let mut parse_error = None;
        let credentials = req
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::Authorization(a) => Some(a.value()),
                _ => None,
            })
            .filter_map(|v| match Credentials::parse(v) {
                Ok(c) => Some(c),
                Err(digest::DigestError::UnsupportedScheme(_)) => None,
                Err(e) => {
                    parse_error = Some(e);
                    None
                }
            })
            .find(|c| c.realm == self.config.realm);
        let Some(c) = credentials else {
            // No usable credentials for our realm (none, another scheme such as
            // RFC 4475 regaut01, another realm, or an algorithm we don't offer).
            let _ = parse_error;
            return AuthResult::Challenge { stale: false };
        };
        let (Some("auth"), Some(nc_text), Some(cnonce)) =
            (c.qop.as_deref(), c.nc.as_deref(), c.cnonce.as_deref())
        else {
            // We only offer qop=auth; RFC 2069 answers give no replay protection.
            self.record_failure(source, now);
            return AuthResult::Challenge { stale: false };
        };
        let nc = match (nc_text.len(), u32::from_str_radix(nc_text, 16)) {
            (8, Ok(nc)) => nc,
            _ => {
                self.record_failure(source, now);
                return AuthResult::Challenge { stale: false };
            }
        };
        if !same_uri(&c.uri, &req.uri.to_string()) {
            self.record_failure(source, now);
            return AuthResult::Refuse(400, RegistrarError::DigestUriMismatch(c.uri.clone()));
        }
        // Unknown users get the same work and the same answer as a wrong password.
        let dummy;
        let ha1 = match self.users.get(&c.username) {
            Some(user) => user.ha1(c.algorithm),
            None => {
                dummy = c.algorithm.hex(self.secret.as_slice());
                dummy.as_str()
            }
        };
        let expected = digest::request_digest(
            c.algorithm,
            ha1,
            &c.nonce,
            nc_text,
            cnonce,
            "auth",
            "REGISTER",
            &c.uri,
        );
        let correct = self.users.contains_key(&c.username)
            && digest::constant_time_eq(
                expected.as_bytes(),
                c.response.to_ascii_lowercase().as_bytes(),
            );
        if !correct {
            self.record_failure(source, now);
            return AuthResult::Challenge { stale: false };
        }
        let opaque_ok = c.opaque.as_deref().is_none_or(|o| o == self.opaque);
        let issued_ms = match self.check_nonce(&c.nonce, now) {
            NonceCheck::Fresh { issued_ms } if opaque_ok => issued_ms,
            _ => {
                self.stats.stale_nonces += 1;
                return AuthResult::Challenge { stale: true };
            }
        };
        match self.nonces.get_mut(&c.nonce) {
            Some(used) if nc <= used.last_nc => {
                self.stats.replays += 1;
                return AuthResult::Challenge { stale: true };
            }
            Some(used) => used.last_nc = nc,
            None => {
                if self.nonce_floor_ms.is_some_and(|floor| issued_ms <= floor) {
                    // Possibly evicted after use: its nonce-counts are unknown.
                    self.stats.stale_nonces += 1;
                    return AuthResult::Challenge { stale: true };
                }
                self.remember_nonce(now, c.nonce.clone(), issued_ms, nc);
            }
        }
        AuthResult::Authenticated(c.username)
    }

    fn remember_nonce(&mut self, now: Instant, nonce: String, issued_ms: u64, nc: u32) {
        if self.nonces.len() >= self.config.max_nonces {
            let now_ms = self.ms_since_epoch(now);
            let lifetime_ms = duration_ms(self.config.nonce_lifetime);
            self.nonces
                .retain(|_, n| now_ms.saturating_sub(n.issued_ms) <= lifetime_ms);
        }
        while self.nonces.len() >= self.config.max_nonces {
            let Some((oldest, issued)) = self
                .nonces
                .iter()
                .min_by_key(|(_, n)| n.issued_ms)
                .map(|(k, n)| (k.clone(), n.issued_ms))
            else {
                break;
            };
            self.nonces.remove(&oldest);
            self.nonce_floor_ms = Some(self.nonce_floor_ms.map_or(issued, |f| f.max(issued)));
        }
        self.nonces.insert(
            nonce,
            NonceUse {
                issued_ms,
                last_nc: nc,
            },
        );
    }

    fn new_nonce(&mut self, now: Instant) -> String {
        let issued_ms = self.ms_since_epoch(now);
        let salt = self.rng.next_u64();
        let head = format!("{issued_ms:016x}{salt:016x}");
        let tag = digest::hmac_sha256(&self.secret, head.as_bytes());
        format!("{head}{}", digest::to_hex(&tag[..16]))
    }

    fn check_nonce(&self, nonce: &str, now: Instant) -> NonceCheck {
        if nonce.len() != NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return NonceCheck::Unusable;
        }
        // Invariant: 64 ASCII hex digits, so these byte ranges are char boundaries.
        let (head, tag) = nonce.split_at(32);
        let expected = digest::hmac_sha256(&self.secret, head.as_bytes());
        if !digest::constant_time_eq(
            digest::to_hex(&expected[..16]).as_bytes(),
            tag.to_ascii_lowercase().as_bytes(),
        ) {
            return NonceCheck::Unusable;
        }
        let Ok(issued_ms) = u64::from_str_radix(&head[..16], 16) else {
            return NonceCheck::Unusable;
        };
        let now_ms = self.ms_since_epoch(now);
        if issued_ms > now_ms || now_ms - issued_ms > duration_ms(self.config.nonce_lifetime) {
            return NonceCheck::Unusable;
        }
        NonceCheck::Fresh { issued_ms }
    }

    fn record_failure(&mut self, source: SocketAddr, now: Instant) {
        self.stats.auth_failures += 1;
        let ip = source.ip();
        let window = self.config.lockout_window;
        if !self.failures.contains_key(&ip)
            && self.failures.len() >= self.config.max_tracked_sources
        {
            self.failures.retain(|_, f| {
                f.locked_until.is_some_and(|t| now < t)
                    || now.saturating_duration_since(f.start) < window
            });
            if self.failures.len() >= self.config.max_tracked_sources
                && let Some(oldest) = self
                    .failures
                    .iter()
                    .filter(|(_, f)| f.locked_until.is_none())
                    .min_by_key(|(_, f)| f.start)
                    .or_else(|| self.failures.iter().min_by_key(|(_, f)| f.start))
                    .map(|(ip, _)| *ip)
            {
                self.failures.remove(&oldest);
            }
        }
        let entry = self.failures.entry(ip).or_insert(FailureWindow {
            start: now,
            count: 0,
            locked_until: None,
        });
        if now.saturating_duration_since(entry.start) >= window {
            *entry = FailureWindow {
                start: now,
                count: 0,
                locked_until: None,
            };
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count >= self.config.lockout_threshold && entry.locked_until.is_none() {
            entry.locked_until = Some(now + window);
            self.stats.lockouts += 1;
        }
    }

    // ----- bindings -----

    fn expire_aor(&mut self, aor: &str, now: Instant) -> Vec<BindingChange> {
        let mut changes = Vec::new();
        if let Some(bindings) = self.aors.get_mut(aor) {
            bindings.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    changes.push(BindingChange::Expired {
                        aor: aor.to_string(),
                        contact: b.contact.clone(),
                    });
                }
                live
            });
            if bindings.is_empty() {
                self.aors.remove(aor);
            }
        }
        changes
    }

    fn remove_all(
        &mut self,
        aor: &str,
        call_id: &str,
        cseq: u32,
    ) -> Result<Vec<BindingChange>, (u16, RegistrarError, Vec<Header>)> {
        let bindings = self.aors.get(aor).map(Vec::as_slice).unwrap_or_default();
        if let Some(b) = bindings
            .iter()
            .find(|b| b.call_id == call_id && cseq <= b.cseq)
        {
            return Err(out_of_order(call_id, cseq, b.cseq));
        }
        Ok(self
            .aors
            .remove(aor)
            .unwrap_or_default()
            .into_iter()
            .map(|b| BindingChange::Removed {
                aor: aor.to_string(),
                contact: b.contact,
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)] // one REGISTER's worth of fields
    fn update(
        &mut self,
        now: Instant,
        aor: &str,
        contacts: Vec<ContactSpec>,
        header_expires: Option<u32>,
        call_id: &str,
        cseq: u32,
        source: SocketAddr,
    ) -> Result<Vec<BindingChange>, (u16, RegistrarError, Vec<Header>)> {
        // Validate everything first so a refused request changes nothing.
        let mut wanted = Vec::with_capacity(contacts.len());
        for spec in contacts {
            let ContactSpec::Contact {
                uri,
                params,
                expires,
                q,
            } = spec
            else {
                continue;
            };
            let expires = expires
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            if expires > 0 && expires < self.config.min_expires {
                let min = self.config.min_expires;
                let header = Header::MinExpires(min.to_string().into());
                return Err((
                    423,
                    RegistrarError::IntervalTooBrief {
                        requested: expires,
                        min,
                    },
                    vec![header],
                ));
            }
            wanted.push((uri, params, expires.min(self.config.max_expires), q));
        }
        let existing = self.aors.get(aor).map(Vec::as_slice).unwrap_or_default();
        for (uri, ..) in &wanted {
            let key = uri_key(uri);
            if let Some(b) = existing
                .iter()
                .find(|b| uri_key(&b.contact) == key && b.call_id == call_id && cseq <= b.cseq)
            {
                return Err(out_of_order(call_id, cseq, b.cseq));
            }
        }
        let adds = wanted.iter().any(|w| w.2 > 0);
        if adds && !self.aors.contains_key(aor) && self.aors.len() >= self.config.max_aors {
            return Err((
                503,
                RegistrarError::TableFull(self.config.max_aors),
                Vec::new(),
            ));
        }

        let mut changes = Vec::new();
        let bindings = self.aors.entry(aor.to_string()).or_default();
        for (uri, params, expires, q) in wanted {
            let key = uri_key(&uri);
            let position = bindings.iter().position(|b| uri_key(&b.contact) == key);
            if expires == 0 {
                if let Some(i) = position {
                    let removed = bindings.remove(i);
                    changes.push(BindingChange::Removed {
                        aor: aor.to_string(),
                        contact: removed.contact,
                    });
                }
                continue;
            }
            let binding = Binding {
                contact: uri,
                params,
                expires_at: now + Duration::from_secs(u64::from(expires)),
                source,
                q,
                call_id: call_id.to_string(),
                cseq,
            };
            let change = match position.and_then(|i| bindings.get_mut(i)) {
                Some(slot) => {
                    *slot = binding;
                    BindingChange::Refreshed {
                        aor: aor.to_string(),
                        contact: slot.contact.clone(),
                    }
                }
                None => {
                    let contact = binding.contact.clone();
                    bindings.push(binding);
                    BindingChange::Added {
                        aor: aor.to_string(),
                        contact,
                    }
                }
            };
            changes.push(change);
            // Evict the binding expiring first among those this request did not write, so a
            // phone registering now always wins over stale entries (NAT port changes).
            while bindings.len() > self.config.max_bindings_per_aor {
                let Some(i) = bindings
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| (b.call_id == call_id && b.cseq == cseq, b.expires_at))
                    .map(|(i, _)| i)
                else {
                    break;
                };
                let evicted = bindings.remove(i);
                changes.push(BindingChange::Evicted {
                    aor: aor.to_string(),
                    contact: evicted.contact,
                });
            }
        }
        if bindings.is_empty() {
            self.aors.remove(aor);
        }
        Ok(changes)
    }

    // ----- responses -----

    fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.next_u64())
    }

    /// The Contact headers of a 200: every binding of `aor` with its remaining time.
    fn contact_list(&self, now: Instant, aor: &str) -> Vec<Header> {
        self.aors
            .get(aor)
            .map(|bindings| {
                bindings
                    .iter()
                    .map(|b| {
                        let remaining = b.expires_at.saturating_duration_since(now);
                        let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
                        Header::Contact(
                            format!("<{}>{};expires={secs}", b.contact, b.params).into(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn challenge(&mut self, now: Instant, req: &Request, stale: bool) -> RegisterOutcome {
        self.stats.challenges += 1;
        let nonce = self.new_nonce(now);
        let stale = if stale { ", stale=true" } else { "" };
        // RFC 8760: offer SHA-256 first, MD5 for older phones; same nonce for both.
        let headers = [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .map(|algorithm| {
                Header::WwwAuthenticate(
                    format!(
                        "Digest realm={}, nonce=\"{nonce}\", opaque=\"{}\", algorithm={}, qop=\"auth\"{stale}",
                        digest::quote(&self.config.realm),
                        self.opaque,
                        algorithm.token()
                    )
                    .into(),
                )
            })
            .collect();
        self.outcome(req, 401, headers, Vec::new(), None)
    }

    fn refuse(
        &mut self,
        req: &Request,
        code: u16,
        error: RegistrarError,
        extra: Vec<Header>,
    ) -> RegisterOutcome {
        self.outcome(req, code, extra, Vec::new(), Some(error))
    }

    fn outcome(
        &mut self,
        req: &Request,
        code: u16,
        headers: Vec<Header>,
        changes: Vec<BindingChange>,
        error: Option<RegistrarError>,
    ) -> RegisterOutcome {
        let to_tag = self.new_tag();
        RegisterOutcome {
            response: build_response(req, code, Some(&to_tag), headers.clone(), None),
            to_tag,
            headers,
            changes,
            error,
        }
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        self.epoch
            .map_or(0, |epoch| duration_ms(now.saturating_duration_since(epoch)))
    }
}

fn out_of_order(call_id: &str, cseq: u32, stored: u32) -> (u16, RegistrarError, Vec<Header>) {
    (
        500,
        RegistrarError::OutOfOrder {
            call_id: call_id.to_string(),
            cseq,
            stored,
        },
        Vec::new(),
    )
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// First value of a header selected by `pick`.
fn header_value(req: &Request, pick: impl Fn(&Header) -> bool) -> Option<&str> {
    req.headers.iter().find(|h| pick(h)).map(|h| h.value())
}

/// delta-seconds: digits; values past u32 saturate (RFC 3261 section 20.19 allows it).
fn parse_delta_seconds(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}

/// qvalue ("0" to "1" with up to three decimals) in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        // Invariant: at most 3 digits, so the sum stays under 1000.
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Split at `sep` outside double quotes and angle brackets.
fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => depth = depth.saturating_add(1),
            '>' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Index of the first `<` outside a quoted display name.
fn open_bracket(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == '<' {
            return Some(i);
        }
    }
    None
}

/// Split a name-addr / addr-spec header value into (URI, header parameters text).
/// Without angle brackets the URI ends at the first `;` and may not carry `?` headers or
/// `,` (RFC 3261 section 20.10; RFC 4475 3.1.2.18 regbadct is refused with 400).
fn split_name_addr(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    match open_bracket(value) {
        Some(open) => {
            let after = &value[open + 1..];
            let close = after.find('>')?;
            Some((after[..close].trim(), &after[close + 1..]))
        }
        None => {
            let (uri, params) = match value.find(';') {
                Some(i) => (&value[..i], &value[i..]),
                None => (value, ""),
            };
            if uri.contains('?') || uri.contains(char::is_whitespace) {
                return None;
            }
            Some((uri, params))
        }
    }
}

fn valid_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && !uri.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}

fn parse_contacts(req: &Request) -> Result<Vec<ContactSpec>, RegistrarError> {
    let mut out = Vec::new();
    for value in req.headers.iter().filter_map(|h| match h {
        Header::Contact(c) => Some(c.value()),
        _ => None,
    }) {
        for element in split_top_level(value, ',') {
            let element = element.trim();
            if element.is_empty() {
                continue;
            }
            if out.len() >= MAX_CONTACTS_PER_REQUEST {
                return Err(RegistrarError::TooManyContacts(out.len() + 1));
            }
            if element == "*" {
                out.push(ContactSpec::Wildcard);
                continue;
            }
            let bad = || RegistrarError::BadContact(element.chars().take(80).collect());
            let (uri, param_text) = split_name_addr(element).ok_or_else(bad)?;
            if !valid_uri(uri) {
                return Err(bad());
            }
            let mut params = String::new();
            let mut expires = None;
            let mut q = None;
            let mut pieces = split_top_level(param_text, ';').into_iter();
            if pieces
                .next()
                .is_some_and(|before| !before.trim().is_empty())
            {
                return Err(bad()); // text between `>` and the first `;`
            }
            for param in pieces {
                let param = param.trim();
                if param.is_empty() {
                    continue;
                }
                let (name, val) = match param.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim())),
                    None => (param, None),
                };
                if name.eq_ignore_ascii_case("expires") {
                    expires = val.and_then(parse_delta_seconds);
                    continue;
                }
                if name.eq_ignore_ascii_case("q") {
                    q = Some(val.and_then(parse_q).ok_or_else(bad)?);
                }
                params.push(';');
                params.push_str(name);
                if let Some(v) = val {
                    params.push('=');
                    params.push_str(v);
                }
            }
            out.push(ContactSpec::Contact {
                uri: uri.to_string(),
                params,
                expires,
                q,
            });
        }
    }
    Ok(out)
}

/// The canonical AOR of a To header value or a URI (RFC 3261 10.3 step 5).
fn aor_of(to: &str) -> Option<String> {
    let (uri, _) = split_name_addr(to)?;
    canonical_aor(uri)
}

/// `scheme:user@host[:port]`: parameters and headers removed, escapes in the user part
/// decoded, scheme and host lower-cased.
fn canonical_aor(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let (user, host) = match rest.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or(user);
            (Some(percent_decode(user)), host)
        }
        None => (None, rest),
    };
    if host.is_empty() || scheme.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    Some(match user {
        Some(user) => format!("{scheme}:{user}@{host}"),
        None => format!("{scheme}:{host}"),
    })
}

/// The user part of a canonical AOR.
fn aor_user(aor: &str) -> Option<&str> {
    let (_, rest) = aor.split_once(':')?;
    Some(rest.rsplit_once('@')?.0)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                // Invariant: h and l are hex digits (< 16), so h * 16 + l < 256.
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Comparison key of a contact URI: scheme and host part lower-cased, the rest as is.
fn uri_key(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return uri.to_string();
    };
    let (user, hostpart) = match rest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let end = hostpart.find([';', '?']).unwrap_or(hostpart.len());
    let (host, tail) = hostpart.split_at(end);
    let mut key = scheme.to_ascii_lowercase();
    key.push(':');
    if let Some(user) = user {
        key.push_str(user);
        key.push('@');
    }
    key.push_str(&host.to_ascii_lowercase());
    key.push_str(tail);
    key
}

/// Digest `uri` against the Request-URI: equal ignoring case and whitespace.
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    norm(digest_uri) == norm(request_uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    const REALM: &str = "guichet.test";

    fn source() -> SocketAddr {
        "192.0.2.10:5062".parse().expect("literal address")
    }

    fn config() -> RegistrarConfig {
        let mut config = RegistrarConfig::new(
            REALM,
            vec![
                UserCredential::from_password("alice", REALM, "wonderland"),
                UserCredential::from_password("bob", REALM, "builder"),
            ],
        );
        config.seed = 7;
        config
    }

    fn registrar() -> Registrar {
        Registrar::new(config()).expect("valid config")
    }

    /// A REGISTER for `user`'s AOR with the given Contact lines and extra header lines.
    fn register(
        user: &str,
        call_id: &str,
        cseq: u32,
        contacts: &[&str],
        extra: &[&str],
    ) -> Request {
        let mut text = format!(
            "REGISTER sip:{REALM} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK{cseq}x{call_id}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{REALM}>;tag=f{cseq}\r\n\
             To: <sip:{user}@{REALM}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n"
        );
        for c in contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        for e in extra {
            text.push_str(e);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("test request did not parse: {other:?}"),
        }
    }

    fn headers_named<'a>(response: &'a Response, name: &str) -> Vec<&'a str> {
        response
            .headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value())
            .collect()
    }

    /// A quoted or token parameter of a challenge.
    fn challenge_param(challenge: &str, name: &str) -> Option<String> {
        let rest = challenge.strip_prefix("Digest ")?;
        for part in split_top_level(rest, ',') {
            let (n, v) = part.trim().split_once('=')?;
            if n.trim() == name {
                return Some(v.trim().trim_matches('"').to_string());
            }
        }
        None
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The client side, computed from the password (RFC 2617 3.2.2.1), not from stored HA1s.
    #[allow(clippy::too_many_arguments)]
    fn client_response(
        algorithm: &str,
        user: &str,
        realm: &str,
        password: &str,
        nonce: &str,
        nc: &str,
        cnonce: &str,
        method: &str,
        uri: &str,
    ) -> String {
        let h = |s: String| match algorithm {
            "SHA-256" => hex(&Sha256::digest(s.as_bytes())),
            _ => hex(&digest::md5(s.as_bytes())),
        };
        let ha1 = h(format!("{user}:{realm}:{password}"));
        let ha2 = h(format!("{method}:{uri}"));
        h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
    }

    fn authorization(
        algorithm: &str,
        user: &str,
        password: &str,
        challenge: &str,
        nc: u32,
    ) -> String {
        let nonce = challenge_param(challenge, "nonce").expect("nonce in challenge");
        let opaque = challenge_param(challenge, "opaque").expect("opaque in challenge");
        let nc = format!("{nc:08x}");
        let uri = format!("sip:{REALM}");
        let response = client_response(
            algorithm, user, REALM, password, &nonce, &nc, "c0ffee", "REGISTER", &uri,
        );
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc}, \
             cnonce=\"c0ffee\", opaque=\"{opaque}\""
        )
    }

    /// The challenge for `algorithm` in a 401.
    fn challenge_for(outcome: &RegisterOutcome, algorithm: &str) -> String {
        assert_eq!(outcome.status(), 401);
        headers_named(&outcome.response, "WWW-Authenticate")
            .into_iter()
            .find(|c| challenge_param(c, "algorithm").as_deref() == Some(algorithm))
            .expect("challenge for algorithm")
            .to_string()
    }

    /// Challenge then answer; returns the authenticated outcome.
    #[allow(clippy::too_many_arguments)]
    fn register_with_auth(
        r: &mut Registrar,
        now: Instant,
        user: &str,
        password: &str,
        call_id: &str,
        cseq: u32,
        contacts: &[&str],
        extra: &[&str],
    ) -> RegisterOutcome {
        let first = r.handle_register(
            now,
            &register(user, call_id, cseq, contacts, extra),
            source(),
        );
        let challenge = challenge_for(&first, "MD5");
        let auth = authorization("MD5", user, password, &challenge, 1);
        let mut headers: Vec<&str> = extra.to_vec();
        headers.push(&auth);
        r.handle_register(
            now,
            &register(user, call_id, cseq + 1, contacts, &headers),
            source(),
        )
    }

    #[test]
    fn client_helper_matches_rfc2617_example() {
        let response = client_response(
            "MD5",
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn challenge_offers_sha256_then_md5_with_same_nonce() {
        let mut r = registrar();
        let t0 = Instant::now();
        let outcome = r.handle_register(
            t0,
            &register("alice", "c1", 1, &["<sip:alice@192.0.2.10:5062>"], &[]),
            source(),
        );
        assert_eq!(outcome.status(), 401);
        let challenges = headers_named(&outcome.response, "WWW-Authenticate");
        assert_eq!(challenges.len(), 2);
        assert_eq!(
            challenge_param(challenges[0], "algorithm").as_deref(),
            Some("SHA-256")
        );
        assert_eq!(
            challenge_param(challenges[1], "algorithm").as_deref(),
            Some("MD5")
        );
        for c in &challenges {
            assert_eq!(challenge_param(c, "realm").as_deref(), Some(REALM));
            assert_eq!(challenge_param(c, "qop").as_deref(), Some("auth"));
            assert_eq!(challenge_param(c, "stale"), None);
            assert!(challenge_param(c, "opaque").is_some_and(|o| !o.is_empty()));
        }
        assert_eq!(
            challenge_param(challenges[0], "nonce"),
            challenge_param(challenges[1], "nonce")
        );
        let to = headers_named(&outcome.response, "To");
        assert!(to[0].contains(";tag="), "401 carries a To tag: {to:?}");
        assert_eq!(r.binding_count(), 0);
        assert_eq!(r.stats().challenges, 1);
        assert_eq!(r.stats().auth_failures, 0);
    }

    fn full_exchange(algorithm: &str) {
        let mut r = registrar();
        let t0 = Instant::now();
        let contact = "<sip:alice@192.0.2.10:5062;transport=udp>";
        let first = r.handle_register(t0, &register("alice", "c1", 1, &[contact], &[]), source());
        let challenge = challenge_for(&first, algorithm);
        let auth = authorization(algorithm, "alice", "wonderland", &challenge, 1);
        let t1 = t0 + Duration::from_millis(300);
        let outcome = r.handle_register(
            t1,
            &register("alice", "c1", 2, &[contact], &[&auth]),
            source(),
        );
        assert_eq!(outcome.status(), 200, "{:?}", outcome.error);
        assert_eq!(
            outcome.changes,
            vec![BindingChange::Added {
                aor: format!("sip:alice@{REALM}"),
                contact: "sip:alice@192.0.2.10:5062;transport=udp".into()
            }]
        );
        assert_eq!(
            headers_named(&outcome.response, "Contact"),
            vec!["<sip:alice@192.0.2.10:5062;transport=udp>;expires=3600"]
        );
        let bindings = r.lookup(&format!("sip:alice@{}", REALM.to_uppercase()), t1);
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].source, source());
        assert_eq!(bindings[0].expires_at, t1 + Duration::from_secs(3600));
        assert_eq!(r.stats().accepted, 1);
    }

    #[test]
    fn full_digest_exchange_md5() {
        full_exchange("MD5");
    }

    #[test]
    fn full_digest_exchange_sha256() {
        full_exchange("SHA-256");
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@192.0.2.10>"];
        let first = r.handle_register(t0, &register("alice", "c1", 1, &c, &[]), source());
        let challenge = challenge_for(&first, "MD5");
        let wrong = authorization("MD5", "alice", "looking-glass", &challenge, 1);
        let out = r.handle_register(t0, &register("alice", "c1", 2, &c, &[&wrong]), source());
        assert_eq!(out.status(), 401);
        assert_eq!(challenge_param(&challenge_for(&out, "MD5"), "stale"), None);
        let ghost = authorization("MD5", "mallory", "x", &challenge, 1);
        let out2 = r.handle_register(t0, &register("mallory", "c2", 1, &c, &[&ghost]), source());
        assert_eq!(out2.status(), 401);
        assert_eq!(challenge_param(&challenge_for(&out2, "MD5"), "stale"), None);
        assert_eq!(r.stats().auth_failures, 2);
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn expired_nonce_with_correct_digest_is_stale() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@192.0.2.10>"];
        let first = r.handle_register(t0, &register("alice", "c1", 1, &c, &[]), source());
        let challenge = challenge_for(&first, "SHA-256");
        let late = t0 + Duration::from_secs(301);
        let auth = authorization("SHA-256", "alice", "wonderland", &challenge, 1);
        let out = r.handle_register(late, &register("alice", "c1", 2, &c, &[&auth]), source());
        let again = challenge_for(&out, "SHA-256");
        assert_eq!(challenge_param(&again, "stale").as_deref(), Some("true"));
        assert_ne!(
            challenge_param(&again, "nonce"),
            challenge_param(&challenge, "nonce")
        );
        assert_eq!(r.stats().stale_nonces, 1);
        assert_eq!(r.stats().auth_failures, 0);
        // A wrong password on an expired nonce is a failure, not stale.
        let wrong = authorization("SHA-256", "alice", "nope", &challenge, 1);
        let out = r.handle_register(late, &register("alice", "c1", 3, &c, &[&wrong]), source());
        assert_eq!(challenge_param(&challenge_for(&out, "MD5"), "stale"), None);
        assert_eq!(r.stats().auth_failures, 1);
        // The fresh nonce works.
        let auth = authorization("SHA-256", "alice", "wonderland", &again, 1);
        let out = r.handle_register(late, &register("alice", "c1", 4, &c, &[&auth]), source());
        assert_eq!(out.status(), 200);
    }

    #[test]
    fn forged_nonce_is_not_accepted() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@192.0.2.10>"];
        let fake = format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", opaque=\"x\"",
            "0".repeat(64)
        );
        let auth = authorization("MD5", "alice", "wonderland", &fake, 1);
        let out = r.handle_register(t0, &register("alice", "c1", 1, &c, &[&auth]), source());
        assert_eq!(out.status(), 401);
        assert_eq!(
            challenge_param(&challenge_for(&out, "MD5"), "stale").as_deref(),
            Some("true")
        );
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn replayed_nonce_count_is_refused() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@192.0.2.10>"];
        let first = r.handle_register(t0, &register("alice", "c1", 1, &c, &[]), source());
        let challenge = challenge_for(&first, "MD5");
        let auth1 = authorization("MD5", "alice", "wonderland", &challenge, 1);
        let req = register("alice", "c1", 2, &c, &[&auth1]);
        assert_eq!(r.handle_register(t0, &req, source()).status(), 200);
        let replay = r.handle_register(t0 + Duration::from_secs(1), &req, source());
        assert_eq!(replay.status(), 401);
        assert!(replay.changes.is_empty());
        assert_eq!(r.stats().replays, 1);
        // nc=1 again in a new request is still a replay; nc=2 is fine.
        let again = register("alice", "c1", 3, &c, &[&auth1]);
        assert_eq!(r.handle_register(t0, &again, source()).status(), 401);
        let auth2 = authorization("MD5", "alice", "wonderland", &challenge, 2);
        let next = register("alice", "c1", 4, &c, &[&auth2]);
        assert_eq!(r.handle_register(t0, &next, source()).status(), 200);
        assert_eq!(r.stats().replays, 2);
    }

    #[test]
    fn evicted_nonce_cannot_be_replayed() {
        let mut config = config();
        config.max_nonces = 1;
        let mut r = Registrar::new(config).expect("valid config");
        let t0 = Instant::now();
        let c = ["<sip:alice@192.0.2.10>"];
        let ch_a = challenge_for(
            &r.handle_register(t0, &register("alice", "a", 1, &c, &[]), source()),
            "MD5",
        );
        let t1 = t0 + Duration::from_millis(5);
        let ch_b = challenge_for(
            &r.handle_register(
                t1,
                &register("bob", "b", 1, &["<sip:bob@192.0.2.11>"], &[]),
                source(),
            ),
            "MD5",
        );
        let a = register(
            "alice",
            "a",
            2,
            &c,
            &[&authorization("MD5", "alice", "wonderland", &ch_a, 1)],
        );
        assert_eq!(r.handle_register(t1, &a, source()).status(), 200);
        let b = register(
            "bob",
            "b",
            2,
            &["<sip:bob@192.0.2.11>"],
            &[&authorization("MD5", "bob", "builder", &ch_b, 1)],
        );
        assert_eq!(r.handle_register(t1, &b, source()).status(), 200);
        // Alice's nonce was evicted to make room: replaying her request must not pass.
        let replay = r.handle_register(t1, &a, source());
        assert_eq!(replay.status(), 401);
        assert_eq!(
            challenge_param(&challenge_for(&replay, "MD5"), "stale").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn other_users_aor_is_forbidden() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:bob@192.0.2.10>"];
        let first = r.handle_register(t0, &register("bob", "c1", 1, &c, &[]), source());
        let challenge = challenge_for(&first, "MD5");
        let auth = authorization("MD5", "alice", "wonderland", &challenge, 1);
        let out = r.handle_register(t0, &register("bob", "c1", 2, &c, &[&auth]), source());
        assert_eq!(out.status(), 403);
        assert!(matches!(out.error, Some(RegistrarError::Forbidden { .. })));
        assert!(r.lookup("sip:bob@guichet.test", t0).is_empty());
    }

    #[test]
    fn refresh_then_remove() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@192.0.2.10>;expires=600"];
        let out = register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 1, &c, &[]);
        assert_eq!(out.status(), 200);
        assert_eq!(
            r.lookup("sip:alice@guichet.test", t0)[0].expires_at,
            t0 + Duration::from_secs(600)
        );
        let t1 = t0 + Duration::from_secs(500);
        let out = register_with_auth(&mut r, t1, "alice", "wonderland", "c1", 3, &c, &[]);
        assert_eq!(out.status(), 200);
        assert_eq!(
            out.changes,
            vec![BindingChange::Refreshed {
                aor: "sip:alice@guichet.test".into(),
                contact: "sip:alice@192.0.2.10".into()
            }]
        );
        let bindings = r.lookup("sip:alice@guichet.test", t1);
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].expires_at, t1 + Duration::from_secs(600));
        assert_eq!(bindings[0].cseq, 4);
        // Removal with Expires: 0.
        let out = register_with_auth(
            &mut r,
            t1,
            "alice",
            "wonderland",
            "c1",
            5,
            &["<sip:alice@192.0.2.10>"],
            &["Expires: 0"],
        );
        assert_eq!(out.status(), 200);
        assert_eq!(
            out.changes,
            vec![BindingChange::Removed {
                aor: "sip:alice@guichet.test".into(),
                contact: "sip:alice@192.0.2.10".into()
            }]
        );
        assert!(headers_named(&out.response, "Contact").is_empty());
        assert!(r.lookup("sip:alice@guichet.test", t1).is_empty());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn query_without_contact_lists_bindings_and_q_orders_lookup() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = [
            "<sip:alice@desk.example>;q=0.5",
            "<sip:alice@mobile.example>;q=0.9, <sip:alice@soft.example>",
        ];
        let out = register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 1, &c, &[]);
        assert_eq!(out.status(), 200);
        let found: Vec<_> = r
            .lookup("sip:alice@guichet.test", t0)
            .into_iter()
            .map(|b| (b.contact, b.q))
            .collect();
        assert_eq!(
            found,
            vec![
                ("sip:alice@soft.example".to_string(), None),
                ("sip:alice@mobile.example".to_string(), Some(900)),
                ("sip:alice@desk.example".to_string(), Some(500)),
            ]
        );
        let t1 = t0 + Duration::from_secs(100);
        let query = register_with_auth(&mut r, t1, "alice", "wonderland", "c2", 1, &[], &[]);
        assert_eq!(query.status(), 200);
        assert!(query.changes.is_empty());
        let mut listed = headers_named(&query.response, "Contact");
        listed.sort();
        assert_eq!(
            listed,
            vec![
                "<sip:alice@desk.example>;q=0.5;expires=3500",
                "<sip:alice@mobile.example>;q=0.9;expires=3500",
                "<sip:alice@soft.example>;expires=3500",
            ]
        );
    }

    #[test]
    fn wildcard_removes_all_and_needs_expires_zero() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@a.example>", "<sip:alice@b.example>"];
        assert_eq!(
            register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 1, &c, &[]).status(),
            200
        );
        let bad = register_with_auth(&mut r, t0, "alice", "wonderland", "c2", 1, &["*"], &[]);
        assert_eq!(bad.status(), 400);
        assert_eq!(bad.error, Some(RegistrarError::BadWildcard));
        let mixed = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c2",
            3,
            &["*", "<sip:alice@c.example>"],
            &["Expires: 0"],
        );
        assert_eq!(mixed.status(), 400);
        assert_eq!(r.lookup("sip:alice@guichet.test", t0).len(), 2);
        let out = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c2",
            5,
            &["*"],
            &["Expires: 0"],
        );
        assert_eq!(out.status(), 200);
        assert_eq!(out.changes.len(), 2);
        assert!(
            out.changes
                .iter()
                .all(|c| matches!(c, BindingChange::Removed { .. }))
        );
        assert!(r.lookup("sip:alice@guichet.test", t0).is_empty());
    }

    #[test]
    fn too_brief_interval_gets_423_with_min_expires() {
        let mut r = registrar();
        let t0 = Instant::now();
        let out = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c1",
            1,
            &["<sip:alice@a.example>"],
            &["Expires: 30"],
        );
        assert_eq!(out.status(), 423);
        assert_eq!(headers_named(&out.response, "Min-Expires"), vec!["60"]);
        assert_eq!(r.binding_count(), 0);
        // Per-contact expires wins over the header; long ones are shortened to max.
        let out = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c1",
            3,
            &["<sip:alice@a.example>;expires=99999"],
            &["Expires: 30"],
        );
        assert_eq!(out.status(), 200);
        assert_eq!(
            headers_named(&out.response, "Contact"),
            vec!["<sip:alice@a.example>;expires=3600"]
        );
    }

    #[test]
    fn lower_cseq_for_same_call_id_is_refused() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@a.example>"];
        assert_eq!(
            register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 10, &c, &[]).status(),
            200
        );
        let stale = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c1",
            5,
            &c,
            &["Expires: 0"],
        );
        assert_eq!(stale.status(), 500);
        assert!(matches!(
            stale.error,
            Some(RegistrarError::OutOfOrder {
                cseq: 6,
                stored: 11,
                ..
            })
        ));
        assert_eq!(r.lookup("sip:alice@guichet.test", t0).len(), 1);
        // Another Call-ID (phone rebooted) may update with any CSeq.
        let other = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c2",
            1,
            &c,
            &["Expires: 0"],
        );
        assert_eq!(other.status(), 200);
        assert!(r.lookup("sip:alice@guichet.test", t0).is_empty());
    }

    #[test]
    fn bindings_expire_in_virtual_time() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = [
            "<sip:alice@a.example>;expires=120",
            "<sip:alice@b.example>;expires=300",
        ];
        assert_eq!(
            register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 1, &c, &[]).status(),
            200
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
        assert!(r.expire(t0 + Duration::from_secs(119)).is_empty());
        let gone = r.expire(t0 + Duration::from_secs(120));
        assert_eq!(
            gone,
            vec![BindingChange::Expired {
                aor: "sip:alice@guichet.test".into(),
                contact: "sip:alice@a.example".into()
            }]
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        assert_eq!(
            r.lookup("sip:alice@guichet.test", t0 + Duration::from_secs(200))
                .len(),
            1
        );
        // lookup hides an expired binding even before expire() runs.
        assert!(
            r.lookup("sip:alice@guichet.test", t0 + Duration::from_secs(300))
                .is_empty()
        );
        assert_eq!(r.expire(t0 + Duration::from_secs(301)).len(), 1);
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn bindings_per_aor_and_aors_are_bounded() {
        let mut config = config();
        config.max_bindings_per_aor = 2;
        config.max_aors = 1;
        let mut r = Registrar::new(config).expect("valid config");
        let t0 = Instant::now();
        let c = [
            "<sip:alice@a.example>;expires=100",
            "<sip:alice@b.example>;expires=200",
            "<sip:alice@c.example>;expires=300",
        ];
        let out = register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 1, &c, &[]);
        assert_eq!(out.status(), 200);
        assert!(out.changes.contains(&BindingChange::Evicted {
            aor: "sip:alice@guichet.test".into(),
            contact: "sip:alice@a.example".into()
        }));
        assert_eq!(r.binding_count(), 2);
        // A new contact expiring sooner still displaces an older binding, not itself.
        let short = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c3",
            1,
            &["<sip:alice@d.example>;expires=60"],
            &[],
        );
        assert_eq!(short.status(), 200);
        assert!(short.changes.contains(&BindingChange::Evicted {
            aor: "sip:alice@guichet.test".into(),
            contact: "sip:alice@b.example".into()
        }));
        let mut left: Vec<_> = r
            .lookup("sip:alice@guichet.test", t0)
            .into_iter()
            .map(|b| b.contact)
            .collect();
        left.sort();
        assert_eq!(left, vec!["sip:alice@c.example", "sip:alice@d.example"]);
        let bob = register_with_auth(
            &mut r,
            t0,
            "bob",
            "builder",
            "c2",
            1,
            &["<sip:bob@a.example>"],
            &[],
        );
        assert_eq!(bob.status(), 503);
        assert_eq!(r.binding_count(), 2);
    }

    #[test]
    fn repeated_failures_lock_the_source_out() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c = ["<sip:alice@a.example>"];
        let first = r.handle_register(t0, &register("alice", "c1", 1, &c, &[]), source());
        let challenge = challenge_for(&first, "MD5");
        for i in 0..10u32 {
            let wrong = authorization("MD5", "alice", &format!("guess{i}"), &challenge, 1);
            let out = r.handle_register(
                t0 + Duration::from_secs(u64::from(i)),
                &register("alice", "c1", 2 + i, &c, &[&wrong]),
                source(),
            );
            assert_eq!(out.status(), 401);
        }
        let t1 = t0 + Duration::from_secs(10);
        assert!(r.locked_out(source(), t1));
        assert_eq!(r.stats().lockouts, 1);
        // Even the right password gets 403 while locked out; another address is unaffected.
        let right = authorization("MD5", "alice", "wonderland", &challenge, 1);
        let out = r.handle_register(t1, &register("alice", "c1", 20, &c, &[&right]), source());
        assert_eq!(out.status(), 403);
        assert_eq!(r.stats().locked_out_requests, 1);
        let elsewhere: SocketAddr = "198.51.100.1:5060".parse().expect("literal");
        assert!(!r.locked_out(elsewhere, t1));
        assert_eq!(
            r.handle_register(t1, &register("alice", "c1", 21, &c, &[&right]), elsewhere)
                .status(),
            200
        );
        // The lockout ends after the window.
        let t2 = t1 + Duration::from_secs(61);
        assert!(!r.locked_out(source(), t2));
    }

    #[test]
    fn config_is_validated() {
        let mut c = config();
        c.min_expires = 4000;
        assert!(matches!(
            Registrar::new(c),
            Err(RegistrarError::ExpiresBounds { .. })
        ));
        let mut c = config();
        c.users
            .push(UserCredential::from_password("alice", REALM, "again"));
        assert_eq!(
            Registrar::new(c).err(),
            Some(RegistrarError::DuplicateUser("alice".into()))
        );
        let c = RegistrarConfig::new("", Vec::new());
        assert_eq!(Registrar::new(c).err(), Some(RegistrarError::EmptyRealm));
        let debug = format!(
            "{:?}",
            UserCredential::from_password("alice", REALM, "wonderland")
        );
        assert!(
            !debug.contains("wonderland")
                && !debug.contains(&digest::ha1(Algorithm::Md5, "alice", REALM, "wonderland"))
        );
    }

    #[test]
    fn foreign_domains_get_404_when_domains_are_set() {
        let mut config = config();
        config.domains = vec!["GUICHET.test".into()];
        let mut r = Registrar::new(config).expect("valid config");
        let t0 = Instant::now();
        let mut req = register("alice", "c1", 1, &["<sip:alice@a.example>"], &[]);
        assert_eq!(r.handle_register(t0, &req, source()).status(), 401);
        for h in req.headers.iter_mut() {
            if let Header::To(_) = h {
                *h = Header::To("<sip:alice@elsewhere.example:5060>".into());
            }
        }
        let out = r.handle_register(t0, &req, source());
        assert_eq!(out.status(), 404);
        assert!(matches!(out.error, Some(RegistrarError::UnknownDomain(_))));
    }

    #[test]
    fn display_names_with_commas_and_brackets_are_not_split() {
        let mut r = registrar();
        let t0 = Instant::now();
        let c =
            [r#""Desk, 2nd <floor>" <sip:alice@desk.example>;q=0.7, "B" <sip:alice@b.example>"#];
        let out = register_with_auth(&mut r, t0, "alice", "wonderland", "c1", 1, &c, &[]);
        assert_eq!(out.status(), 200, "{:?}", out.error);
        let contacts: Vec<_> = r
            .lookup("sip:alice@guichet.test", t0)
            .into_iter()
            .map(|b| b.contact)
            .collect();
        assert_eq!(
            contacts,
            vec!["sip:alice@b.example", "sip:alice@desk.example"]
        );
        for bad in [
            "<sip:alice@x.example>junk;q=1",
            "<sip:alice@x.example",
            "sip:alice@x.example;q=2",
            "<>",
            "alice",
        ] {
            let out = register_with_auth(&mut r, t0, "alice", "wonderland", "c9", 1, &[bad], &[]);
            assert_eq!(out.status(), 400, "{bad}");
            assert!(
                matches!(out.error, Some(RegistrarError::BadContact(_))),
                "{bad}"
            );
        }
        assert_eq!(r.binding_count(), 2);
    }

    #[test]
    fn responses_survive_the_wire() {
        let mut r = registrar();
        let t0 = Instant::now();
        let challenge = r.handle_register(
            t0,
            &register("alice", "c1", 1, &["<sip:alice@a.example>"], &[]),
            source(),
        );
        let brief = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c1",
            3,
            &["<sip:alice@a.example>"],
            &["Expires: 10"],
        );
        let ok = register_with_auth(
            &mut r,
            t0,
            "alice",
            "wonderland",
            "c1",
            5,
            &["<sip:alice@a.example>;+sip.instance=\"<urn:uuid:1>\""],
            &[],
        );
        for (outcome, code) in [(&challenge, 401), (&brief, 423), (&ok, 200)] {
            let wire = outcome.response.to_string();
            let Ok(SipMessage::Response(back)) = parse(wire.as_bytes()) else {
                panic!("{code} did not re-parse:\n{wire}");
            };
            assert_eq!(u16::from(back.status_code.clone()), code);
            assert!(headers_named(&back, "To")[0].ends_with(&format!(";tag={}", outcome.to_tag)));
            for h in &outcome.headers {
                assert!(
                    back.headers
                        .iter()
                        .any(|b| b.name().eq_ignore_ascii_case(h.name()) && b.value() == h.value()),
                    "{h} in {wire}"
                );
            }
            assert_eq!(
                back.headers.iter().count(),
                outcome.response.headers.iter().count(),
                "{wire}"
            );
        }
        let wire = challenge.response.to_string();
        assert!(
            wire.contains("\r\nWWW-Authenticate: Digest realm=\"guichet.test\", nonce=\""),
            "{wire}"
        );
        assert!(
            brief
                .response
                .to_string()
                .contains("\r\nMin-Expires: 60\r\n")
        );
        assert_eq!(
            headers_named(&ok.response, "Contact"),
            vec!["<sip:alice@a.example>;+sip.instance=\"<urn:uuid:1>\";expires=3600"]
        );
    }

    // ----- RFC 4475 torture messages -----

    fn torture(name: &str) -> Request {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = ["../shared/sip-torture", "../../shared/sip-torture"]
            .iter()
            .map(|dir| root.join(dir).join(format!("{name}.dat")))
            .find(|p| p.exists())
            .expect("sip-torture folder next to the project");
        let bytes = std::fs::read(path).expect("readable torture file");
        match parse(&bytes) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{name} did not parse as a request: {other:?}"),
        }
    }

    fn torture_registrar(require_auth: bool) -> Registrar {
        let realm = "example.com";
        let mut config = RegistrarConfig::new(
            realm,
            vec![
                UserCredential::from_password("watson", realm, "elementary"),
                UserCredential::from_password("user", realm, "password"),
                UserCredential::from_password("j.user", realm, "jpass"),
            ],
        );
        config.require_auth = require_auth;
        config.seed = 4475;
        Registrar::new(config).expect("valid config")
    }

    /// Answer a challenge for a torture request (realm example.com, URI sip:example.com).
    fn authenticate_torture(
        r: &mut Registrar,
        now: Instant,
        req: &Request,
        user: &str,
        password: &str,
    ) -> RegisterOutcome {
        let first = r.handle_register(now, req, source());
        let challenge = challenge_for(&first, "SHA-256");
        let nonce = challenge_param(&challenge, "nonce").expect("nonce");
        let uri = req.uri.to_string();
        assert_eq!(uri, "sip:example.com");
        let response = client_response(
            "SHA-256",
            user,
            "example.com",
            password,
            &nonce,
            "00000001",
            "abc",
            "REGISTER",
            &uri,
        );
        let mut authed = req.clone();
        authed.headers.push(Header::Authorization(
            format!(
                "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", \
                 response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"abc\""
            )
            .into(),
        ));
        r.handle_register(now, &authed, source())
    }

    #[test]
    fn torture_regaut01_gets_our_own_challenge() {
        let mut r = torture_registrar(true);
        let out = r.handle_register(Instant::now(), &torture("regaut01"), source());
        assert_eq!(out.status(), 401);
        let challenges = headers_named(&out.response, "WWW-Authenticate");
        assert_eq!(challenges.len(), 2);
        assert!(challenges.iter().all(|c| c.starts_with("Digest ")
            && challenge_param(c, "realm").as_deref() == Some("example.com")));
        assert_eq!(r.binding_count(), 0);
        assert_eq!(
            r.stats().auth_failures,
            0,
            "an unknown scheme is not a failed guess"
        );
    }

    /// RFC 4475 3.3.12-14: expected binding URI and the Contact the 200 lists.
    fn torture_register_cases() -> [(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ); 3] {
        [
            // cparam01: no angle brackets, so ;unknownparam is a Contact header parameter.
            (
                "cparam01",
                "watson",
                "elementary",
                "sip:+19725552222@gw1.example.net",
                "<sip:+19725552222@gw1.example.net>;unknownparam;expires=3600",
            ),
            // cparam02: inside the brackets, ;unknownparam belongs to the URI.
            (
                "cparam02",
                "watson",
                "elementary",
                "sip:+19725552222@gw1.example.net;unknownparam",
                "<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600",
            ),
            // regescrt: the escaped Route header stays in the stored contact, unescaped nothing.
            (
                "regescrt",
                "user",
                "password",
                "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
                "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600",
            ),
        ]
    }

    #[test]
    fn torture_contact_parameters_kept_without_auth() {
        for (name, user, _, contact, listed) in torture_register_cases() {
            let mut r = torture_registrar(false);
            let t0 = Instant::now();
            let out = r.handle_register(t0, &torture(name), source());
            assert_eq!(out.status(), 200, "{name}: {:?}", out.error);
            assert_eq!(
                headers_named(&out.response, "Contact"),
                vec![listed],
                "{name}"
            );
            let bindings = r.lookup(&format!("sip:{user}@example.com"), t0);
            assert_eq!(bindings.len(), 1, "{name}");
            assert_eq!(bindings[0].contact, contact, "{name}");
        }
        let mut r = torture_registrar(false);
        let out = r.handle_register(Instant::now(), &torture("cparam01"), source());
        let lookup = r.lookup("sip:watson@example.com", Instant::now());
        assert_eq!(out.status(), 200);
        assert_eq!(lookup[0].params, ";unknownparam");
    }

    #[test]
    fn torture_contact_parameters_kept_after_auth() {
        for (name, user, password, contact, listed) in torture_register_cases() {
            let mut r = torture_registrar(true);
            let t0 = Instant::now();
            let out = authenticate_torture(&mut r, t0, &torture(name), user, password);
            assert_eq!(out.status(), 200, "{name}: {:?}", out.error);
            assert_eq!(
                headers_named(&out.response, "Contact"),
                vec![listed],
                "{name}"
            );
            assert_eq!(
                r.lookup(&format!("sip:{user}@example.com"), t0)[0].contact,
                contact
            );
        }
    }

    #[test]
    fn torture_regbadct_is_refused_without_panic() {
        for require_auth in [false, true] {
            let mut r = torture_registrar(require_auth);
            let t0 = Instant::now();
            let req = torture("regbadct");
            let out = if require_auth {
                authenticate_torture(&mut r, t0, &req, "user", "password")
            } else {
                r.handle_register(t0, &req, source())
            };
            assert_eq!(out.status(), 400);
            assert!(matches!(out.error, Some(RegistrarError::BadContact(_))));
            assert_eq!(r.binding_count(), 0);
        }
    }

    proptest! {
        #[test]
        fn location_table_stays_bounded_and_consistent(
            ops in proptest::collection::vec((0u8..4, 0u8..4, 0u32..5000, 0u64..2000, 0u8..3), 1..60)
        ) {
            let mut config = RegistrarConfig::new(REALM, Vec::new());
            config.require_auth = false;
            config.max_aors = 3;
            config.max_bindings_per_aor = 2;
            let mut r = Registrar::new(config).expect("valid config");
            let t0 = Instant::now();
            let mut now = t0;
            for (cseq, (user, host, expires, advance, call)) in ops.into_iter().enumerate() {
                now += Duration::from_secs(advance);
                let cseq = u32::try_from(cseq).expect("small") + 1;
                let contact = format!("<sip:u{user}@h{host}.example>;expires={expires}");
                let out = r.handle_register(
                    now,
                    &register(&format!("u{user}"), &format!("call{call}"), cseq, &[&contact], &[]),
                    source(),
                );
                prop_assert!(matches!(out.status(), 200 | 423 | 503), "{:?}", out.error);
                if out.status() == 200 {
                    let live = r.lookup(&format!("sip:u{user}@{REALM}"), now);
                    let present = live.iter().any(|b| b.contact == format!("sip:u{user}@h{host}.example"));
                    prop_assert_eq!(present, expires > 0);
                    prop_assert!(live.iter().all(|b| b.expires_at > now));
                }
                prop_assert!(r.binding_count() <= 3 * 2);
                if let Some(next) = r.poll_timeout() {
                    r.expire(next);
                    prop_assert!(r.poll_timeout().is_none_or(|t| t > next));
                }
            }
        }

        #[test]
        fn arbitrary_contact_and_expires_never_panic(
            contact in "[ -~]{0,80}",
            expires in "[ -~]{0,12}",
            authz in "[ -~]{0,80}",
        ) {
            let mut r = torture_registrar(false);
            let t0 = Instant::now();
            let mut req = torture("cparam02");
            req.headers.retain(|h| !matches!(h, Header::Contact(_)));
            req.headers.push(Header::Contact(contact.into()));
            req.headers.push(Header::Expires(expires.into()));
            let out = r.handle_register(t0, &req, source());
            prop_assert!(matches!(out.status(), 200 | 400 | 423));
            req.headers.push(Header::Authorization(authz.into()));
            let mut strict = torture_registrar(true);
            let out = strict.handle_register(t0, &req, source());
            prop_assert!(matches!(out.status(), 400 | 401));
            prop_assert_eq!(strict.binding_count(), 0);
        }
    }
}
