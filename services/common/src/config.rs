//! Settings every service binary shares, flattened into each binary's own
//! clap `Config` so that flags and environment variables are spelled alike.

use std::net::SocketAddr;

use clap::Args;
use protocol_core::ProtocolKind;

/// Settings common to the order, stock and payment services.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Distributed-transaction protocol of the checkout: `saga` or `2pc`. Every
    /// replica of every service must run the same one.
    #[arg(long, env = "PROTOCOL", value_parser = parse_protocol)]
    pub protocol: ProtocolKind,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// PostgreSQL URL of this service's own database.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Connections in this replica's database pool.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// Connections kept apart from the request pool for the protocol's own
    /// bookkeeping (2PC phase two, the decision log, recovery), so that it
    /// never waits behind requests queued on row locks (0: share the request
    /// pool, to measure what that costs).
    #[arg(long, env = "DB_PROTOCOL_POOL_SIZE", default_value_t = 4)]
    pub db_protocol_pool_size: u32,

    /// Redis URL (price cache and checkout notifications).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Name of this replica in logs (for example `order#1`).
    #[arg(long, env = "INSTANCE_NAME")]
    pub instance: Option<String>,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LOG_JSON", default_value_t = false)]
    pub log_json: bool,

    /// Record where each checkout's time goes, drained by the harness from
    /// `GET /internal/spans` for its breakdown (`harness up` says which):
    /// `--spans`, `--spans=true` or `--spans=false`.
    #[arg(
        long,
        env = "SPANS",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub spans: bool,

    /// Serve `POST /internal/crashpoints/<name>`, which arms a crash at a
    /// protocol step, and allow `--crashpoints`. Off unless given: only the
    /// harness and the tests, which inject faults, start services with it.
    /// Deliberately no environment variable, so an inherited environment
    /// cannot switch it on.
    #[arg(long, default_value_t = false)]
    pub enable_crashpoints: bool,

    /// Crash points armed from the start, comma-separated (for a process
    /// started by hand: a supervisor restarting it with the same flags
    /// would crash it at the point every time; the harness arms points at
    /// run time instead, `POST /internal/crashpoints/<name>`). An unknown
    /// name stops the service; so does a list without `--enable-crashpoints`.
    #[arg(long, env = "CRASHPOINTS", value_delimiter = ',')]
    pub crashpoints: Vec<String>,

    /// 2PC: the secret every service of the stack shares, presented on the
    /// protocol's internal calls (prepare, commit, rollback, resolve) as
    /// `Authorization: Bearer <token>`; a call without it is refused (401)
    /// and changes nothing. Required by `--protocol 2pc`.
    #[arg(long, env = "PEER_TOKEN", hide_env_values = true)]
    pub peer_token: Option<twopc::client::PeerToken>,
}

impl CommonConfig {
    /// The peer token, which `--protocol 2pc` requires ([`require_peer_token`]).
    ///
    /// # Errors
    /// When none is configured.
    pub fn required_peer_token(&self) -> anyhow::Result<&twopc::client::PeerToken> {
        require_peer_token(self.peer_token.as_ref())
    }
}

/// `token`, or the error that stops a 2PC service started without one.
///
/// # Errors
/// When `token` is `None`.
pub fn require_peer_token(token: Option<&twopc::client::PeerToken>) -> anyhow::Result<&twopc::client::PeerToken> {
    token.ok_or_else(|| {
        anyhow::anyhow!(
            "--protocol 2pc needs --peer-token (PEER_TOKEN): the secret the stack's services present on each \
             other's 2PC endpoints"
        )
    })
}

fn parse_protocol(raw: &str) -> Result<ProtocolKind, String> {
    raw.parse().map_err(|err: protocol_core::UnknownProtocol| err.to_string())
}
