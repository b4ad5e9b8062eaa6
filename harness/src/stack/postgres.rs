//! The three PostgreSQL clusters: `initdb` on first use, the server as a child
//! process, and the service database inside it.
//!
//! Settings that matter for the comparison are explicit: durability stays on
//! (`fsync`, `synchronous_commit`, `full_page_writes`), and
//! `max_prepared_transactions` equals `max_connections`, so 2PC can never be
//! refused for lack of prepared-transaction slots while a connection is free.
//! PostgreSQL refuses to run as root; when the harness is root, the clusters run
//! as the `postgres` system user that the Debian package creates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use sqlx::{Connection, Executor, PgConnection};

use super::config::{Role, StackConfig};
use super::process::Spec;
use crate::wait::{self, Probe};

/// Finds the server binaries: the newest `/usr/lib/postgresql/<v>/bin`, else the
/// directory of `initdb` on `PATH`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .or_else(|| super::process::find_program("initdb", &[]).and_then(|p| p.parent().map(Path::to_path_buf)))
}

/// The (uid, gid) to run PostgreSQL as: `postgres` when the harness is root.
pub fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")?
        .context("running as root needs a `postgres` system user (run harness/scripts/setup.sh)")?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

fn data_dir(config: &StackConfig, role: Role) -> PathBuf {
    config.run_dir.join("postgres").join(role.name())
}

/// Creates the cluster of `role` with `initdb` unless it already exists.
pub fn init_cluster(config: &StackConfig, role: Role) -> anyhow::Result<()> {
    let dir = data_dir(config, role);
    if dir.join("PG_VERSION").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    let user = server_user()?;
    if let Some((uid, gid)) = user {
        nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()))
            .with_context(|| format!("giving {} to the postgres user", dir.display()))?;
    }
    let mut cmd = Command::new(config.pg_bin.join("initdb"));
    cmd.arg("-D")
        .arg(&dir)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"])
        // initdb's own fsyncs only protect the template files; the server keeps
        // full durability once it runs.
        .arg("--no-sync");
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().with_context(|| format!("running initdb for {}", role.name()))?;
    if !out.status.success() {
        bail!(
            "initdb for {} failed: {}{}",
            role.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The server settings every cluster runs with (also shown in reports).
pub fn server_settings(config: &StackConfig) -> Vec<(&'static str, String)> {
    let max = config.pg_max_connections.to_string();
    [
        ("listen_addresses", "127.0.0.1"),
        ("unix_socket_directories", ""),
        ("max_connections", max.as_str()),
        ("max_prepared_transactions", max.as_str()),
        ("shared_buffers", "128MB"),
        ("fsync", "on"),
        ("synchronous_commit", "on"),
        ("full_page_writes", "on"),
        ("log_min_messages", "warning"),
        ("log_line_prefix", "%m [%p] "),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// How to run the server of `role`.
pub fn spec(config: &StackConfig, role: Role) -> anyhow::Result<Spec> {
    let settings = server_settings(config);
    let mut args = vec!["-D".to_owned(), data_dir(config, role).display().to_string()];
    args.extend(["-p".to_owned(), config.pg_port(role).to_string()]);
    for (key, value) in settings {
        args.extend(["-c".to_owned(), format!("{key}={value}")]);
    }
    Ok(Spec {
        name: format!("postgres-{}", role.name()),
        program: config.pg_bin.join("postgres"),
        args,
        env: Vec::new(),
        cwd: None,
        user: server_user()?,
        log: config.run_dir.join("logs").join(format!("postgres-{}.log", role.name())),
        // SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
        stop_signal: Signal::SIGINT,
        stop_timeout: Duration::from_secs(30),
        listener: None,
    })
}

/// Whether the cluster of `role` accepts connections to its service database
/// (not while it is down or in crash recovery).
pub async fn serves(config: &StackConfig, role: Role) -> bool {
    let attempt = async {
        let mut conn = PgConnection::connect(&config.database_url(role)).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Ok(())))
}

/// Waits until the cluster accepts connections, then creates the service
/// database if it does not exist.
pub async fn wait_and_create_database(config: &StackConfig, role: Role, timeout: Duration) -> anyhow::Result<()> {
    let admin = config.pg_admin_url(role);
    let what = format!("postgres-{}", role.name());
    let mut conn = wait::until(&what, timeout, || async { Ok(Probe::of(PgConnection::connect(&admin).await)) }).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(role.database())
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        conn.execute(format!(r#"CREATE DATABASE "{}""#, role.database()).as_str()).await?;
    }
    conn.close().await?;
    Ok(())
}
