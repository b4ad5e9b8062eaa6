//! The broker's class-data-sharing archive: the Kafka classes loaded and
//! verified once, mapped by every later start of the JVM. A broker restarted
//! after a crash serves about 0.6 s sooner with it (1.15 s against 1.77 s from
//! exec to "Kafka Server started" on the 2-core machine), and every saga waits
//! for that restart.
//!
//! The archive is made once per machine, Kafka version and JDK, before the
//! first stack starts: a training broker on scratch storage, stopped cleanly
//! as soon as it serves, dumps it (`-XX:ArchiveClassesAtExit`, about 5 s). So
//! every stack, the first one included, starts its broker the same way, and
//! no contender's fault case gets a faster restart than another's. A JVM that
//! cannot use an archive (another build) ignores it; without one, the broker
//! starts as it would anyway.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use super::config::StackConfig;
use super::kafka;
use crate::wait::{self, Probe};

/// Where the archive of this Kafka version and JDK lives: next to the jars,
/// named after the JDK, so an updated JDK trains a new one.
fn path(config: &StackConfig) -> Option<PathBuf> {
    Some(config.kafka_libs.with_file_name(format!("classes-{:016x}.jsa", jdk_key()?)))
}

/// A hash of the JDK (its path and `java -version`), asked once per process:
/// every stack start wants it twice (to make the archive, to map it).
fn jdk_key() -> Option<u64> {
    static KEY: OnceLock<Option<u64>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let java = kafka::java().ok()?;
        let version = Command::new(&java).arg("-version").output().ok()?;
        let mut hasher = DefaultHasher::new();
        (java, version.stderr).hash(&mut hasher);
        Some(hasher.finish())
    })
}

/// The JVM option mapping the archive, if there is one.
pub fn use_option(config: &StackConfig) -> Option<String> {
    let archive = path(config).filter(|p| p.is_file())?;
    Some(format!("-XX:SharedArchiveFile={}", archive.display()))
}

/// Makes the archive if there is none. A failure is logged and costs only
/// the faster start.
pub fn ensure(config: &StackConfig) {
    let Some(archive) = path(config) else { return };
    if archive.is_file() {
        return;
    }
    let started = Instant::now();
    match train(config, &archive) {
        Ok(()) => tracing::info!(
            archive = %archive.display(), seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "made the broker's class archive"
        ),
        Err(err) => tracing::warn!(error = format!("{err:#}"), "could not make the broker's class archive"),
    }
}

/// Runs a training broker on the stack's own (still free) ports and scratch
/// storage until it serves, stops it cleanly, and moves its dump into place.
fn train(config: &StackConfig, archive: &std::path::Path) -> anyhow::Result<()> {
    let dir = kafka::kafka_dir(config).join("training");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    kafka::write_config(config, kafka::Node::alone(), &dir)?;
    kafka::format_storage(config, &dir, &kafka::random_cluster_id())?;
    // Dumped beside the archive and renamed: a reader never sees half a file,
    // and two stacks training at once do not write one file.
    let dump = archive.with_extension(format!("jsa.{}.tmp", std::process::id()));
    let log = dir.join("training.log");
    let mut args = kafka::jvm_args(config, &dir, Some(format!("-XX:ArchiveClassesAtExit={}", dump.display())));
    args.retain(|a| a != "-Xlog:cds*=off");
    let mut child = Command::new(kafka::java()?)
        .args(&args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(Stdio::null())
        .spawn()
        .context("starting the training broker")?;
    let outcome = serve_then_stop(&mut child, &log);
    let _ = child.kill();
    let _ = child.wait();
    outcome.with_context(|| format!("training log: {}", log.display()))?;
    if !std::fs::metadata(&dump).is_ok_and(|m| m.len() > 0) {
        bail!("the training broker left no archive (training log: {})", log.display());
    }
    std::fs::rename(&dump, archive).with_context(|| format!("moving {} into place", dump.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn serve_then_stop(child: &mut std::process::Child, log: &std::path::Path) -> anyhow::Result<()> {
    let every = Duration::from_millis(50);
    let what = format!("the training broker serving (within {} s)", crate::timeouts::CLASS_ARCHIVE_TRAINING.as_secs());
    wait::until_blocking(&what, Instant::now() + crate::timeouts::CLASS_ARCHIVE_TRAINING, every, || {
        if std::fs::read_to_string(log).unwrap_or_default().contains("Kafka Server started") {
            return Ok(Probe::Ready(()));
        }
        if child.try_wait()?.is_some() {
            bail!("the training broker exited before serving (see its log)");
        }
        Ok(Probe::NotYet("no \"Kafka Server started\" in its log".into()))
    })?;
    super::process::signal_pid(child.id(), Signal::SIGTERM)?;
    // The JVM writes the archive on its way out, whatever its exit status.
    let what = format!("the training broker stopping (within {} s)", crate::timeouts::CLASS_ARCHIVE_TRAINING.as_secs());
    wait::until_blocking(&what, Instant::now() + crate::timeouts::CLASS_ARCHIVE_TRAINING, every, || {
        Ok(if child.try_wait()?.is_some() { Probe::Ready(()) } else { Probe::NotYet("still running".into()) })
    })
}
