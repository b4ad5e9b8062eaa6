//! The command line: `harness up | down | status | link | run | compare | report | diff | verify`,
//! one file per subcommand; this one parses and dispatches.

mod compare;
mod link;
mod report;
mod run;
mod stack_args;
mod status;
mod up;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use protocol_core::ProtocolKind;

use self::stack_args::RunDirArg;

/// Compare an orchestrated SAGA over Kafka with two-phase commit over PostgreSQL
/// prepared transactions, on the same checkout services.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local stack (PostgreSQL x3, Kafka, Redis, services, nginx gateway)
    /// and supervise it until Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Stop the stack started by `up --detach`.
    Down(RunDirArg),
    /// Print the endpoints and processes of the running stack as JSON.
    Status(status::StatusArgs),
    /// Change the links of a stack started with `--links`: a link's added
    /// round trip or bandwidth limit, a cut (every byte held) or resets
    /// (every connection dropped), and their healing.
    Link(link::LinkArgs),
    /// Run one workload against one protocol (or --target), verify the
    /// invariants and print a summary; exits non-zero if any invariant broke.
    Run(run::RunArgs),
    /// Run both protocols (SAGA in both modes) on the same workloads, seeds and
    /// faults, interleaved and repeated, and write a report under results/;
    /// exits non-zero if any invariant broke in any run.
    Compare(compare::CompareArgs),
    /// Render a compare run's report.md and charts again from its run.json
    /// alone (--check: only compare them, byte for byte).
    Report(report::ReportArgs),
    /// Set two compare runs side by side: per case and pair of contenders,
    /// each run's ratio with its interval and whether the verdict changed;
    /// exits non-zero if a named winner reversed.
    Diff(report::DiffArgs),
    /// Check the invariants of a running system: the local stack of --run-dir
    /// (databases: conservation, nothing in flight, saga effects), or any
    /// implementation of the API with --target (conservation through the API).
    Verify(verify::VerifyArgs),
}

/// A protocol name on the command line.
fn parse_protocol(raw: &str) -> Result<ProtocolKind, String> {
    raw.parse().map_err(|err: protocol_core::UnknownProtocol| err.to_string())
}

/// Installs the harness's log output on stderr.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "harness=info,warn",
        1 => "harness=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the parsed command; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::timeouts::check()?;
    match cli.command {
        Command::Up(args) => up::up(args).await,
        Command::Down(dir) => up::down(dir).await,
        Command::Status(args) => status::status(args).await,
        Command::Link(args) => link::link(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Compare(args) => compare::compare(args).await,
        Command::Report(args) => report::report(args),
        Command::Diff(args) => report::diff(args),
        Command::Verify(args) => verify::verify(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn stack_flags(args: &[&str]) -> Result<stack_args::StackArgs, clap::Error> {
        let mut argv = vec!["harness", "up", "--protocol", "2pc"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Up(up) => Ok(up.stack_args().clone()),
            _ => unreachable!("parsed as up"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Spans default on and can be turned off by value; extra Kafka settings
    /// are checked before any stack starts.
    #[test]
    fn stack_settings_are_flags() {
        assert!(stack_flags(&[]).unwrap().spans);
        assert!(!stack_flags(&["--spans", "false"]).unwrap().spans);
        assert!(!stack_flags(&["--spans=0"]).unwrap().spans);
        let client = stack_flags(&["--kafka-client-properties", "linger.ms=2; fetch.wait.max.ms=5"]).unwrap();
        assert_eq!(client.kafka_client_properties.to_string(), "linger.ms=2;fetch.wait.max.ms=5");
        assert!(stack_flags(&["--kafka-client-properties", "acks=1"]).is_err());
        let broker = stack_flags(&["--kafka-broker-properties", " num.io.threads = 4 ;"]).unwrap();
        assert_eq!(broker.kafka_broker_properties, "num.io.threads=4");
        assert!(stack_flags(&["--kafka-broker-properties", "junk"]).is_err());
    }
}
