//! The workspace's wait-until loop: a probe tried every [`POLL`] (or as
//! often as the caller says) until it says ready or the deadline passes,
//! failing with what was awaited and the probe's last word on why it was not
//! ready. A probe's own error (`Err`) ends the wait at once: it is for what
//! no waiting can fix (the process being waited for exited). The harness's
//! waits for something outside its control to become ready (a server to
//! listen, a process or a stack to stop, Kafka's nodes and topics) go
//! through it, and so do the tests' polls (the harness's
//! `support::eventually`, the saga relay's tests).
//!
//! Not waits of this kind: the harness verifier's settling, which reports
//! what is still in flight when its time runs out instead of failing, and
//! its re-reads until two reads agree. Retries with a growing pause (a
//! restarted process, a saga message, a 2PC phase-two call) use
//! [`crate::Backoff`].

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

/// How often a probe is tried unless the caller says otherwise.
pub const POLL: Duration = Duration::from_millis(100);

/// What a probe saw.
#[derive(Debug)]
pub enum Probe<T> {
    /// Ready, with what the wait returns.
    Ready(T),
    /// Not yet, and why (kept for the timeout's message).
    NotYet(String),
}

impl<T> Probe<T> {
    /// `Ready(value)` for `Ok`, `NotYet` with the error's text for `Err`: a
    /// call that fails until its server is up.
    pub fn of<E: std::fmt::Display>(attempt: Result<T, E>) -> Probe<T> {
        match attempt {
            Ok(value) => Probe::Ready(value),
            Err(err) => Probe::NotYet(err.to_string()),
        }
    }
}

/// Tries `probe` every [`POLL`] for at most `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Probe<T>>>,
{
    let what = format!("{what} (waited {} s)", timeout.as_secs_f64());
    until_deadline(&what, Instant::now() + timeout, POLL, probe).await
}

/// Tries `probe` every `every` until `deadline` (a deadline shared by
/// several waits).
pub async fn until_deadline<T, F, Fut>(
    what: &str,
    deadline: Instant,
    every: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Probe<T>>>,
{
    loop {
        let why = match probe().await? {
            Probe::Ready(value) => return Ok(value),
            Probe::NotYet(why) => why,
        };
        if Instant::now() >= deadline {
            bail!("{what}: not ready in time ({why})");
        }
        tracing::trace!(%why, "{what}: not ready yet");
        tokio::time::sleep(every).await;
    }
}

/// [`until_deadline`] for a probe that blocks (a synchronous client, on a
/// blocking thread).
pub fn until_blocking<T>(
    what: &str,
    deadline: Instant,
    every: Duration,
    mut probe: impl FnMut() -> anyhow::Result<Probe<T>>,
) -> anyhow::Result<T> {
    loop {
        let why = match probe()? {
            Probe::Ready(value) => return Ok(value),
            Probe::NotYet(why) => why,
        };
        if Instant::now() >= deadline {
            bail!("{what}: not ready in time ({why})");
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_probe_is_ready() {
        let tries = AtomicU32::new(0);
        let got = until("the third try", Duration::from_secs(5), || async {
            let n = tries.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(if n == 3 { Probe::Ready(n) } else { Probe::NotYet(format!("try {n}")) })
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
        let err = until("never", Duration::ZERO, || async { Ok(Probe::<()>::NotYet("no".into())) }).await.unwrap_err();
        assert_eq!(err.to_string(), "never (waited 0 s): not ready in time (no)");
    }

    #[tokio::test]
    async fn fails_at_the_deadline_with_the_last_reason() {
        let err = until_deadline("a server", Instant::now(), Duration::ZERO, || async {
            Ok(Probe::<()>::of(Err::<(), _>("connection refused")))
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "a server: not ready in time (connection refused)");
    }

    #[tokio::test]
    async fn a_probe_error_ends_the_wait_at_once() {
        let tries = AtomicU32::new(0);
        let err = until("a process", Duration::from_secs(60), || async {
            tries.fetch_add(1, Ordering::Relaxed);
            anyhow::Result::<Probe<()>>::Err(anyhow::anyhow!("it exited"))
        })
        .await
        .unwrap_err();
        assert_eq!((err.to_string().as_str(), tries.load(Ordering::Relaxed)), ("it exited", 1));
    }

    #[test]
    fn the_blocking_wait_reads_the_same() {
        let mut n = 0;
        let got = until_blocking("count", Instant::now() + Duration::from_secs(5), Duration::ZERO, || {
            n += 1;
            Ok(if n == 2 { Probe::Ready(n) } else { Probe::NotYet("one".into()) })
        });
        assert_eq!(got.unwrap(), 2);
    }
}
