//! Command line: `guichet serve`, `guichet config`, `guichet call`, and (later) the
//! operator tools.
//!
//! Owns: argument parsing (clap derive), logging setup, and dispatch to the engine or a
//! tool. Input: `std::env::args` and the environment. Output: an exit code; errors are
//! printed once, on stderr, as operator-facing text (file:line:column for config errors).
//!
//! ```text
//! guichet serve [--config guichet.yaml] [--sip-listen 0.0.0.0:5060] [--rtp-ports 30000-30999]
//! guichet config                      # print the effective configuration
//! guichet call sip:1000@127.0.0.1:5060 --duration 5s --transport tcp
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, DurationValue, LogFormat, Overrides, PortRange};
use crate::sip::endpoint::Transport;
use crate::testcall::{CallerConfig, SipUri};

/// Guichet: a phone reception engine for public services.
#[derive(Debug, Parser)]
#[command(name = "guichet", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (YAML). Default: ./guichet.yaml when it exists, else built-in
    /// defaults. Every key can also be set with GUICHET_<PATH> (e.g. GUICHET_SIP_LISTEN).
    #[arg(long, global = true, env = "GUICHET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log line format (overrides `log.format`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `guichet=debug` (overrides `log.level`).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine: SIP (UDP+TCP), RTP, HTTP. Stops gracefully on SIGINT/SIGTERM.
    Serve(ListenArgs),
    /// Print the effective configuration (defaults < file < environment < flags) as YAML.
    Config(ListenArgs),
    /// Place a test call (a real SIP UAC over UDP or TCP) and report what happened.
    Call(CallArgs),
    // TODO(integrator): `Check` (flow checker, file:line:column), `Simulate` (flow
    // simulator), `Test` (flow test runner), `Graph` (flow graph output), `Schema`
    // (config/flow JSON schema), `Prompts { Render }` (prompt rendering) are provided by
    // the flow and media engineers: add their variants here and their arms in `run`.
}

/// Listen-address overrides (highest precedence).
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// SIP address for UDP and TCP (overrides `sip.listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub sip_listen: Option<SocketAddr>,
    /// HTTP address (overrides `http.listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<SocketAddr>,
    /// RTP port range (overrides `rtp.ports`), e.g. 30000-30999.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_port_range)]
    pub rtp_ports: Option<PortRange>,
}

/// `guichet call` options.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// The number to call, e.g. sip:1000@127.0.0.1:5060 (host:port is where to send).
    pub uri: String,
    /// How long to stay on the line before hanging up.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: DurationValue,
    /// SIP transport.
    #[arg(long, value_enum, default_value_t = CallTransport::Udp)]
    pub transport: CallTransport,
    /// Send to this address instead of the URI's host:port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub target: Option<SocketAddr>,
}

/// Transport for `guichet call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallTransport {
    Udp,
    Tcp,
}

fn parse_port_range(s: &str) -> Result<PortRange, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<DurationValue, String> {
    s.parse()
}

impl ListenArgs {
    fn overrides(&self, cli: &Cli) -> Overrides {
        Overrides {
            sip_listen: self.sip_listen,
            http_listen: self.http_listen,
            rtp_ports: self.rtp_ports,
            log_format: cli.log_format,
            log_level: cli.log_level.clone(),
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("guichet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve(listen) => {
            let config = Config::load(cli.config.as_deref(), &listen.overrides(&cli))?;
            init_logging(config.log.format, &config.log.level)?;
            runtime()?.block_on(crate::engine::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(listen) => {
            let config = Config::load(cli.config.as_deref(), &listen.overrides(&cli))?;
            print!("{}", config.to_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Call(args) => {
            let format = cli.log_format.unwrap_or(LogFormat::Text);
            init_logging(format, cli.log_level.as_deref().unwrap_or("warn"))?;
            runtime()?.block_on(call(args))
        } // TODO(integrator): arms for Check, Simulate, Test, Graph, Schema, Prompts here.
          // Operator tools are synchronous: load the config with `Config::load` when they need
          // paths, print file:line:column errors, return ExitCode::FAILURE on findings.
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn call(args: &CallArgs) -> anyhow::Result<ExitCode> {
    let uri: SipUri = args.uri.parse()?;
    let target = match args.target {
        Some(t) => t,
        None => {
            let host = uri.host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port.unwrap_or(5060);
            let mut addrs = tokio::net::lookup_host((host, port)).await?;
            addrs
                .next()
                .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", uri.host))?
        }
    };
    let mut config = CallerConfig::new(uri, target);
    config.local_ip = local_ip_towards(target)?;
    config.transport = match args.transport {
        CallTransport::Udp => Transport::Udp,
        CallTransport::Tcp => Transport::Tcp,
    };
    println!("calling {} via {target} ({:?})", args.uri, args.transport);
    let report = crate::testcall::place_call(config, args.duration.get()).await?;
    for e in &report.events {
        println!("  {e:?}");
    }
    println!("INVITE -> {}", report.invite_code);
    match (report.bye_code, report.bye_from_engine) {
        (_, true) => println!("the engine hung up"),
        (Some(c), false) => println!("BYE -> {c}"),
        (None, false) => {}
    }
    println!(
        "RTP: {} packets received, {} sent",
        report.rtp_received, report.rtp_sent
    );
    let ok = (200..300).contains(&report.invite_code)
        && (report.bye_from_engine || report.bye_code.is_some_and(|c| (200..300).contains(&c)));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The local address the system would use to reach `target` (written in Via, Contact and
/// SDP). A connected UDP socket sends nothing; it only resolves the route.
fn local_ip_towards(target: SocketAddr) -> anyhow::Result<std::net::IpAddr> {
    if target.ip().is_loopback() {
        return Ok(target.ip());
    }
    let any: std::net::IpAddr = if target.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let probe = std::net::UdpSocket::bind((any, 0))?;
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

/// Install the global tracing subscriber (text or JSON lines on stderr).
pub fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("bad log level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_every_subcommand() {
        let help = Cli::command().render_help().to_string();
        for sub in ["serve", "config", "call"] {
            assert!(help.contains(sub), "{sub} missing from:\n{help}");
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "guichet",
            "--log-format",
            "json",
            "serve",
            "--sip-listen",
            "127.0.0.1:5070",
            "--rtp-ports",
            "30000-30999",
        ])
        .unwrap();
        assert_eq!(cli.log_format, Some(LogFormat::Json));
        let Command::Serve(listen) = &cli.command else {
            panic!("expected serve");
        };
        let o = listen.overrides(&cli);
        assert_eq!(o.sip_listen, Some("127.0.0.1:5070".parse().unwrap()));
        assert_eq!(o.rtp_ports.map(|r| r.first()), Some(30000));
        assert!(Cli::try_parse_from(["guichet", "serve", "--rtp-ports", "3-"]).is_err());

        let cli = Cli::try_parse_from([
            "guichet",
            "call",
            "sip:1000@127.0.0.1:5060",
            "--duration",
            "2s",
            "--transport",
            "tcp",
        ])
        .unwrap();
        let Command::Call(args) = cli.command else {
            panic!("expected call");
        };
        assert_eq!(args.duration.get(), std::time::Duration::from_secs(2));
        assert_eq!(args.transport, CallTransport::Tcp);
    }
}
