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
//! guichet check | test | graph [--dot] | schema   # flows in paths.flows (or --flows DIR)
//! guichet simulate main --keys "1 +3s 0"
//! guichet prompts render --voice fr               # espeak-ng -> paths.audio
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Check the voice-menu flows: every problem with file:line:column, then the
    /// time-to-person report. Exit status 1 on errors.
    Check(DirArgs),
    /// Simulate a call through the flows, with scripted keys or interactively.
    Simulate(SimulateArgs),
    /// Run the flow tests (YAML scripts with expectations) over the simulator.
    Test(DirArgs),
    /// Print the flows as a graph (Mermaid by default, or dot).
    Graph(GraphArgs),
    /// Print the JSON schema of the flow files (for editors).
    Schema,
    /// Prompt audio tools.
    #[command(subcommand)]
    Prompts(PromptsCommand),
    /// Load generator for the capacity benchmark (see bench/README.md): places many
    /// two-way calls and measures pacing, loss, setup time and the engine's CPU and memory.
    Load(crate::loadgen::LoadArgs),
}

/// Where the flows and prompts are (defaults: `paths.flows`, `paths.audio`).
#[derive(Debug, Clone, Args)]
pub struct FlowArgs {
    /// Flow directory (overrides `paths.flows`).
    #[arg(long, value_name = "DIR")]
    pub flows: Option<PathBuf>,
    /// Prompt audio directory (overrides `paths.audio`).
    #[arg(long, value_name = "DIR")]
    pub audio: Option<PathBuf>,
}

/// `guichet check [DIR]` / `guichet test [DIR]`: the flow directory as an argument too.
#[derive(Debug, Clone, Args)]
pub struct DirArgs {
    /// Flow directory (same as `--flows`; default `paths.flows`, i.e. `./flows`).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub paths: FlowArgs,
}

impl DirArgs {
    fn resolve(&self, cli: &Cli) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (flows, audio) = self.paths.resolve(cli)?;
        Ok((self.dir.clone().unwrap_or(flows), audio))
    }
}

/// `guichet simulate` options.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Flow (or `flow.node`) to start in.
    #[arg(default_value = "main")]
    pub entry: String,
    /// Keys to press, e.g. "1 +3s 0" (`+3s` waits); without it, interactive.
    #[arg(long)]
    pub keys: Option<String>,
    /// Call time (Europe/Paris), e.g. 2026-12-07T10:00. Default: a Monday at 10:00.
    #[arg(long)]
    pub at: Option<String>,
    /// Caller number.
    #[arg(long)]
    pub caller: Option<String>,
    #[command(flatten)]
    pub paths: FlowArgs,
}

/// `guichet graph` options.
#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    /// Draw only this flow (its nodes, and the nodes of other flows it leads to);
    /// default: every flow.
    #[arg(value_name = "FLOW")]
    pub flow: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "mermaid")]
    pub format: GraphFormatArg,
    /// Same as `--format dot`.
    #[arg(long)]
    pub dot: bool,
    #[command(flatten)]
    pub paths: FlowArgs,
}

/// Graph formats of `guichet graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormatArg {
    Mermaid,
    Dot,
}

/// `guichet prompts ...`
#[derive(Debug, Clone, Subcommand)]
pub enum PromptsCommand {
    /// Render every prompt text of the flows (and the `say` fragments) to 8 kHz WAV with
    /// espeak-ng, skipping prompts whose text, voice and rate did not change.
    Render(RenderArgs),
}

/// `guichet prompts render` options.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// espeak-ng voice.
    #[arg(long, default_value = "fr")]
    pub voice: String,
    /// Speaking rate, words per minute.
    #[arg(long, default_value_t = 140)]
    pub rate: u32,
    #[command(flatten)]
    pub paths: FlowArgs,
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

impl FlowArgs {
    /// The flow and audio directories: flags, else the configuration's `paths`.
    fn resolve(&self, cli: &Cli) -> anyhow::Result<(PathBuf, PathBuf)> {
        let config = Config::load(cli.config.as_deref(), &Overrides::default())?;
        Ok((
            self.flows.clone().unwrap_or(config.paths.flows),
            self.audio.clone().unwrap_or(config.paths.audio),
        ))
    }
}

/// `guichet prompts render`: every catalogue prompt of the flows plus the `say` fragments.
fn render_prompts(flows: &Path, audio: &Path, args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let set = match crate::flow::ir::FlowSet::load(flows) {
        Ok(set) => set,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!("{} error(s); no prompt rendered", diagnostics.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut entries: Vec<(String, String)> = set
        .prompts()
        .iter()
        .map(|p| (p.id.0.clone(), p.text.clone()))
        .collect();
    // Fragment prompt ids are `<lang>/<fragment>`; the shipped fragments are French.
    entries.extend(
        crate::flow::say::fragments()
            .into_iter()
            .map(|(id, text)| (format!("fr/{id}"), text)),
    );
    // The engine's own messages (`audio/fr/system/`).
    entries.extend(
        crate::engine::call::SYSTEM_PROMPTS
            .iter()
            .map(|(id, text)| ((*id).to_owned(), (*text).to_owned())),
    );
    let options = crate::media::render::RenderOptions {
        voice: args.voice.clone(),
        words_per_minute: args.rate,
        ..crate::media::render::RenderOptions::default()
    };
    let report = crate::media::render::render_catalogue_with(&entries, audio, &options)?;
    println!(
        "{} prompt(s) rendered, {} unchanged, in {}",
        report.rendered,
        report.skipped,
        audio.display()
    );
    Ok(ExitCode::SUCCESS)
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
        }
        // Operator tools: synchronous, results on stdout, problems on stderr.
        Command::Check(paths) => {
            let (flows, audio) = paths.resolve(&cli)?;
            Ok(crate::flow::cli::cli_check(&flows, Some(&audio)))
        }
        Command::Test(paths) => {
            let (flows, audio) = paths.resolve(&cli)?;
            Ok(crate::flow::cli::cli_test(
                &flows,
                Some(&audio),
                std::time::Instant::now(),
            ))
        }
        Command::Simulate(args) => {
            let (flows, audio) = args.paths.resolve(&cli)?;
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut output = std::io::stdout();
            Ok(crate::flow::cli::cli_simulate(
                &flows,
                &args.entry,
                args.keys.as_deref(),
                args.at.as_deref(),
                args.caller.as_deref(),
                Some(&audio),
                // The simulator's virtual clock starts here (the flow layer reads no clock).
                std::time::Instant::now(),
                &mut input,
                &mut output,
            ))
        }
        Command::Graph(args) => {
            let (flows, _) = args.paths.resolve(&cli)?;
            let format = if args.dot || args.format == GraphFormatArg::Dot {
                crate::flow::cli::GraphFormat::Dot
            } else {
                crate::flow::cli::GraphFormat::Mermaid
            };
            Ok(crate::flow::cli::cli_graph(
                &flows,
                args.flow.as_deref(),
                format,
            ))
        }
        Command::Schema => Ok(crate::flow::cli::cli_schema()),
        Command::Load(args) => Ok(crate::loadgen::cli_load(args.clone())),
        Command::Prompts(PromptsCommand::Render(args)) => {
            let (flows, audio) = args.paths.resolve(&cli)?;
            render_prompts(&flows, &audio, args)
        }
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
        for sub in [
            "serve", "config", "call", "check", "simulate", "test", "graph", "schema", "prompts",
        ] {
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
