//! `guichet load ...`: the command-line face of [`super::run`]. The binary's CLI wires
//! [`LoadArgs`] as a subcommand and calls [`cli_load`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{LoadConfig, parse_keys, run};

/// Arguments of `guichet load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The engine's SIP address (UDP).
    #[arg(long, default_value = "127.0.0.1:5060", env = "GUICHET_LOAD_TARGET")]
    pub target: SocketAddr,
    /// Local address to bind (defaults to the target's if loopback, else 0.0.0.0).
    #[arg(long)]
    pub local_ip: Option<IpAddr>,
    /// User part of the Request-URI.
    #[arg(long, default_value = "1000")]
    pub user: String,
    /// Total calls to place.
    #[arg(long, default_value_t = 100)]
    pub calls: u32,
    /// New calls per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds each call lasts after it is answered.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Keys to press after answer, RFC 4733: e.g. `2s:1,4s:#`.
    #[arg(long, default_value = "")]
    pub keys: String,
    /// RTP tasks (each one socket pair and one pacer).
    #[arg(long, default_value_t = 2)]
    pub rtp_tasks: usize,
    /// The engine's PID: sample its CPU and memory from /proc.
    #[arg(long)]
    pub engine_pid: Option<u32>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print only JSON on stdout.
    #[arg(long)]
    pub json_only: bool,
    /// Worker threads of the load tool's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// Run `guichet load`: 0 when the run meets the quality bar, 1 when it misses it, 2 on a
/// usage or start-up error.
pub fn cli_load(args: LoadArgs) -> ExitCode {
    let keys = match parse_keys(&args.keys) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("guichet load: {e}");
            return ExitCode::from(2);
        }
    };
    if !(args.rate.is_finite() && args.rate > 0.0 && args.hold.is_finite() && args.hold >= 0.0) {
        eprintln!("guichet load: --rate must be > 0 and --hold >= 0");
        return ExitCode::from(2);
    }
    let mut cfg = LoadConfig::new(args.target);
    if let Some(ip) = args.local_ip {
        cfg.local_ip = ip;
    }
    cfg.user = args.user;
    cfg.calls = args.calls;
    cfg.rate = args.rate;
    cfg.hold = Duration::from_secs_f64(args.hold.min(86_400.0));
    cfg.keys = keys;
    cfg.rtp_tasks = args.rtp_tasks.max(1);
    cfg.engine_pid = args.engine_pid;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("guichet load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(run(cfg));
    let json = report.json();
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(path, &json)
    {
        eprintln!("guichet load: cannot write {}: {e}", path.display());
    }
    if args.json_only {
        println!("{json}");
    } else {
        print!("{}", report.table());
        println!("{json}");
    }
    if report.error.is_some() {
        ExitCode::from(2)
    } else if report.meets_bar() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
