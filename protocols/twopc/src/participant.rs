//! The participant side: prepare, commit and roll back a branch in the
//! participant's own PostgreSQL, and resolve branches left in doubt.
//!
//! Prepare is one local transaction: record the branch, run the business update
//! ([`Resource::apply`]), then `PREPARE TRANSACTION '<gid>'`. The branch record
//! (`outcome = 'committed'`) is part of the prepared transaction, so it becomes
//! visible only if the branch commits; that makes commit idempotent (a repeated
//! `COMMIT PREPARED` that finds nothing checks the record). Rollback leaves a
//! tombstone (`outcome = 'aborted'`), so a prepare that arrives after its
//! rollback finds the gid taken and is refused.
//!
//! Required schema (`sql/participant.sql`, installed by [`crate::schema`]):
//!
//! ```sql
//! CREATE TABLE twopc_branches (
//!     gid         TEXT PRIMARY KEY,
//!     outcome     TEXT NOT NULL CHECK (outcome IN ('committed', 'aborted')),
//!     recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
//! );
//! ```
//!
//! Every operation runs in a spawned task: an HTTP client that gives up must
//! not cancel a prepare halfway and hand a connection still inside a
//! transaction back to the pool.
//!
//! Phase two (commit, rollback, tombstone) and recovery run on their own
//! connections ([`Pools::phase_two`]). A prepare holds its connection while it
//! queues on a row lock, and the lock it waits for is released only by the
//! phase two of the branch holding it: sharing one pool, enough queued
//! prepares would take every connection and leave that phase two waiting for
//! one until the lock budget ran out.
//!
//! A prepare waits for a row lock at most the lock budget the coordinator
//! sent (capped by [`ParticipantSettings::lock_timeout`]); when it runs out
//! the vote is no, [`RejectReason::Busy`]: nothing was prepared, so the
//! checkout answers at once instead of failing after a long wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol_core::spans::{Phase, Tiles};
use protocol_core::{RejectReason, Resource, crashpoint};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::client::PeerClient;
use crate::gid::{self, Gid, ParticipantId};
use crate::machine::Decision;
use crate::messages::{PrepareRequest, RESOLVE_PATH, ResolveReply, VoteReply, Work};
use crate::metrics::{Metrics, Snapshot};

/// The participant's two connection pools to its database.
#[derive(Debug, Clone)]
pub struct Pools {
    /// Prepares (which may queue on row locks while holding a connection).
    pub prepare: PgPool,
    /// Phase two, tombstones, recovery and metrics: never behind a prepare.
    pub phase_two: PgPool,
}

/// Timing settings of a participant.
#[derive(Debug, Clone)]
pub struct ParticipantSettings {
    /// Longest wait for a row lock during prepare, whatever the coordinator
    /// asks; then the vote is no ([`RejectReason::Busy`]).
    pub lock_timeout: Duration,
    /// A prepared branch older than this is resolved by asking the coordinator.
    pub in_doubt_timeout: Duration,
    /// How often recovery looks for such branches.
    pub recovery_interval: Duration,
}

/// What a participant's branch record says about its branch
/// (`twopc_branches.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchOutcome {
    /// Written inside the prepared transaction: visible only once the branch
    /// committed.
    Committed,
    /// The tombstone of a rolled-back branch; a later prepare of the gid is
    /// refused.
    Aborted,
}

impl BranchOutcome {
    /// The name in the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            BranchOutcome::Committed => "committed",
            BranchOutcome::Aborted => "aborted",
        }
    }
}

impl std::str::FromStr for BranchOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "committed" => Ok(BranchOutcome::Committed),
            "aborted" => Ok(BranchOutcome::Aborted),
            other => Err(format!("unknown 2PC branch outcome {other:?}")),
        }
    }
}

/// Why phase two was refused.
#[derive(Debug, thiserror::Error)]
pub enum PhaseTwoError {
    /// The request contradicts what the branch did (commit of a branch that
    /// never prepared, rollback of a committed one).
    #[error("{0}")]
    Conflict(String),
    /// The request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed; the coordinator retries.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One participant service's 2PC engine.
pub struct ParticipantRunner {
    me: ParticipantId,
    pool: PgPool,
    phase_two_pool: PgPool,
    resource: Arc<dyn Resource>,
    settings: ParticipantSettings,
    metrics: Metrics,
}

impl std::fmt::Debug for ParticipantRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticipantRunner").field("me", &self.me).field("settings", &self.settings).finish()
    }
}

const UNDEFINED_OBJECT: &str = "42704";
const LOCK_NOT_AVAILABLE: &str = "55P03";
const DEADLOCK_DETECTED: &str = "40P01";

/// Runs `op` in its own task, so that the HTTP request that asked for it being
/// dropped cannot cancel it halfway (see the module docs).
async fn detached<T: Send + 'static>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, PhaseTwoError>> + Send + 'static,
) -> Result<T, PhaseTwoError> {
    tokio::spawn(op)
        .await
        .map_err(|e| PhaseTwoError::Database(sqlx::Error::Protocol(format!("{what} task failed: {e}"))))?
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

impl ParticipantRunner {
    /// A participant `me` over `pools`, doing `resource`'s business step. Only
    /// its recovery talks to the coordinator ([`Self::run_recovery`]).
    pub fn new(
        me: ParticipantId,
        pools: Pools,
        resource: Arc<dyn Resource>,
        settings: ParticipantSettings,
    ) -> Arc<Self> {
        Arc::new(ParticipantRunner {
            me,
            pool: pools.prepare,
            phase_two_pool: pools.phase_two,
            resource,
            settings,
            metrics: Metrics::default(),
        })
    }

    fn parse_gid(&self, raw: &str) -> Result<Gid, PhaseTwoError> {
        let gid: Gid = raw.parse().map_err(|e: crate::gid::InvalidGid| PhaseTwoError::BadRequest(e.to_string()))?;
        if gid.participant != self.me {
            return Err(PhaseTwoError::BadRequest(format!("gid {gid} is not for {}", self.me.as_str())));
        }
        Ok(gid)
    }

    /// Prepares a branch and returns the vote.
    pub async fn prepare(self: &Arc<Self>, request: PrepareRequest) -> Result<VoteReply, PhaseTwoError> {
        let gid = self.parse_gid(&request.gid)?;
        let this = Arc::clone(self);
        let lock_wait = match request.lock_wait_ms {
            Some(ms) => Duration::from_millis(ms).min(self.settings.lock_timeout),
            None => self.settings.lock_timeout,
        };
        detached("prepare", async move { this.prepare_inner(gid, request.work, lock_wait).await }).await
    }

    async fn prepare_inner(&self, gid: Gid, work: Work, lock_wait: Duration) -> Result<VoteReply, PhaseTwoError> {
        // Waiting for a connection is waiting behind other prepares too: the
        // same budget bounds it.
        let started = Instant::now();
        let key = gid.txn.to_string();
        let mut tiles = Tiles::start(&key);
        let mut conn = match tokio::time::timeout(lock_wait, self.pool.acquire()).await {
            Ok(conn) => conn?,
            Err(_) => return Ok(self.busy(started)),
        };
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        tiles.mark(Phase::Pool);
        let vote = self.prepare_in_transaction(&mut conn, &gid, &work, lock_wait, &mut tiles).await;
        match vote {
            Ok(VoteReply::Yes) => {
                Metrics::incr(&self.metrics.prepared);
                crashpoint::hit(crashpoint::TWOPC_AFTER_PREPARE);
                Ok(VoteReply::Yes)
            }
            other => {
                // Refused or failed: nothing may stay prepared or open.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    // A connection in an unknown transaction state must not be reused.
                    conn.close_on_drop();
                }
                if matches!(other, Ok(VoteReply::No { .. })) {
                    Metrics::incr(&self.metrics.refused);
                }
                tiles.mark(Phase::Sql);
                other
            }
        }
    }

    async fn prepare_in_transaction(
        &self,
        conn: &mut PoolConnection<Postgres>,
        gid: &Gid,
        work: &Work,
        lock_wait: Duration,
        tiles: &mut Tiles<'_>,
    ) -> Result<VoteReply, PhaseTwoError> {
        // 0 would mean "wait forever" to PostgreSQL.
        let lock_ms = lock_wait.as_millis().max(1);
        sqlx::query(&format!("SET LOCAL lock_timeout = {lock_ms}")).execute(&mut **conn).await?;
        let fresh: Option<i32> = sqlx::query_scalar(
            "INSERT INTO twopc_branches (gid, outcome) VALUES ($1, $2) ON CONFLICT (gid) DO NOTHING RETURNING 1",
        )
        .bind(gid.to_string())
        .bind(BranchOutcome::Committed.as_str())
        .fetch_optional(&mut **conn)
        .await?;
        if fresh.is_none() {
            return Ok(VoteReply::Refused { detail: format!("branch {gid} was already resolved") });
        }
        tiles.mark(Phase::Sql);
        let started = Instant::now();
        let applied = self.resource.apply(conn, work).await.map(|r| r.map(drop));
        tiles.mark(Phase::RowLock);
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics.lock_wait_us.fetch_add(waited, std::sync::atomic::Ordering::Relaxed);
        let applied = match applied {
            Ok(applied) => applied,
            // The lock budget ran out (or, were rows ever locked out of
            // order, PostgreSQL broke a deadlock): a definite no.
            Err(err) if matches!(sqlstate(&err).as_deref(), Some(LOCK_NOT_AVAILABLE | DEADLOCK_DETECTED)) => {
                return Ok(self.busy(started));
            }
            Err(err) => return Err(err.into()),
        };
        if let Err(reason) = applied {
            return Ok(VoteReply::No { reason });
        }
        sqlx::query(&format!("PREPARE TRANSACTION {}", gid.sql_literal())).execute(&mut **conn).await?;
        tiles.mark(Phase::Flush);
        Ok(VoteReply::Yes)
    }

    /// The vote of a prepare that ran out of lock budget after waiting since
    /// `since`.
    fn busy(&self, since: Instant) -> VoteReply {
        Metrics::incr(&self.metrics.busy);
        let waited_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        VoteReply::No { reason: RejectReason::Busy { what: self.me.as_str().to_owned(), waited_ms } }
    }

    /// Commits a prepared branch; repeating it is harmless.
    pub async fn commit(self: &Arc<Self>, raw_gid: &str) -> Result<(), PhaseTwoError> {
        let gid = self.parse_gid(raw_gid)?;
        let this = Arc::clone(self);
        detached("commit", async move { this.commit_inner(&gid).await }).await
    }

    async fn commit_inner(&self, gid: &Gid) -> Result<(), PhaseTwoError> {
        let key = gid.txn.to_string();
        let mut tiles = Tiles::start(&key);
        let mut conn = self.phase_two_pool.acquire().await?;
        tiles.mark(Phase::Pool);
        let committed = sqlx::query(&format!("COMMIT PREPARED {}", gid.sql_literal())).execute(&mut *conn).await;
        tiles.mark(Phase::Flush);
        drop(conn);
        match committed {
            Ok(_) => {
                Metrics::incr(&self.metrics.committed);
                Ok(())
            }
            Err(err) if sqlstate(&err).as_deref() == Some(UNDEFINED_OBJECT) => match self.outcome(gid).await? {
                Some(BranchOutcome::Committed) => Ok(()),
                Some(BranchOutcome::Aborted) => Err(PhaseTwoError::Conflict(format!("branch {gid} was rolled back"))),
                None => Err(PhaseTwoError::Conflict(format!("branch {gid} was never prepared"))),
            },
            Err(err) => Err(err.into()),
        }
    }

    /// Rolls back a branch, prepared or not, leaving a tombstone so that a late
    /// prepare is refused; repeating it is harmless.
    pub async fn rollback(self: &Arc<Self>, raw_gid: &str) -> Result<(), PhaseTwoError> {
        let gid = self.parse_gid(raw_gid)?;
        let this = Arc::clone(self);
        detached("rollback", async move { this.rollback_inner(&gid).await }).await
    }

    async fn rollback_inner(&self, gid: &Gid) -> Result<(), PhaseTwoError> {
        // A prepare of this gid may be running: its uncommitted branch record
        // blocks the tombstone. Wait briefly and retry; by then it has either
        // prepared (and ROLLBACK PREPARED finds it) or given up.
        for _ in 0..500 {
            match sqlx::query(&format!("ROLLBACK PREPARED {}", gid.sql_literal())).execute(&self.phase_two_pool).await {
                Ok(_) => {
                    Metrics::incr(&self.metrics.aborted);
                    self.tombstone(gid).await?;
                    return Ok(());
                }
                Err(err) if sqlstate(&err).as_deref() == Some(UNDEFINED_OBJECT) => {}
                Err(err) => return Err(err.into()),
            }
            match self.tombstone(gid).await {
                Ok(()) => {
                    return match self.outcome(gid).await? {
                        Some(BranchOutcome::Committed) => {
                            Err(PhaseTwoError::Conflict(format!("branch {gid} was committed")))
                        }
                        _ => Ok(()),
                    };
                }
                Err(err) if sqlstate(&err).as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(PhaseTwoError::Database(sqlx::Error::PoolTimedOut))
    }

    async fn tombstone(&self, gid: &Gid) -> sqlx::Result<()> {
        // A prepare of this gid still running holds the row: give up at once
        // and let the caller sleep with the connection back in the pool, so
        // waiting rollbacks never take the phase-two connections from commits.
        let mut tx = self.phase_two_pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = 5").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO twopc_branches (gid, outcome) VALUES ($1, $2) ON CONFLICT (gid) DO NOTHING")
            .bind(gid.to_string())
            .bind(BranchOutcome::Aborted.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    async fn outcome(&self, gid: &Gid) -> Result<Option<BranchOutcome>, PhaseTwoError> {
        let outcome: Option<String> = sqlx::query_scalar("SELECT outcome FROM twopc_branches WHERE gid = $1")
            .bind(gid.to_string())
            .fetch_optional(&self.phase_two_pool)
            .await?;
        // The column's CHECK admits only the two names; anything else is a
        // schema this release does not know, not an outcome to guess at.
        outcome.map(|name| name.parse().map_err(|err: String| sqlx::Error::Decode(err.into()).into())).transpose()
    }

    /// Resolves this participant's prepared branches older than the in-doubt
    /// timeout by asking `coordinator`. Returns how many were resolved.
    pub async fn recover_once(&self, coordinator: &PeerClient) -> anyhow::Result<usize> {
        let gids: Vec<String> = sqlx::query_scalar(
            "SELECT gid FROM pg_prepared_xacts
             WHERE database = current_database() AND starts_with(gid, $2)
               AND prepared < now() - make_interval(secs => $1)",
        )
        .bind(self.settings.in_doubt_timeout.as_secs_f64())
        .bind(gid::PREFIX)
        .fetch_all(&self.phase_two_pool)
        .await?;
        let mut resolved = 0;
        for raw in gids {
            let Ok(gid) = raw.parse::<Gid>() else { continue };
            if gid.participant != self.me {
                continue;
            }
            // One branch that cannot be resolved now (its coordinator away, a
            // failed rollback) does not hold back the others.
            match self.resolve_one(coordinator, &gid).await {
                Ok(decision) => {
                    tracing::info!(%gid, decision = decision.as_str(), "resolved an in-doubt branch");
                    Metrics::incr(&self.metrics.recovered);
                    resolved += 1;
                }
                Err(err) => tracing::warn!(%gid, error = format!("{err:#}"), "could not resolve an in-doubt branch"),
            }
        }
        Ok(resolved)
    }

    /// Asks `coordinator` about `gid` and carries out its decision.
    async fn resolve_one(&self, coordinator: &PeerClient, gid: &Gid) -> anyhow::Result<Decision> {
        let reply = coordinator.post::<()>(&format!("{RESOLVE_PATH}/{gid}"), None).await?;
        anyhow::ensure!(reply.status == 200, "coordinator answered {} resolving {gid}", reply.status);
        let ResolveReply { decision } = serde_json::from_slice(&reply.body)?;
        match decision {
            Decision::Commit => self.commit_inner(gid).await?,
            Decision::Abort => self.rollback_inner(gid).await?,
        }
        Ok(decision)
    }

    /// Runs [`Self::recover_once`] with `coordinator` every recovery interval,
    /// and [`forget_old_branches`] every minute, until `shutdown` fires.
    pub async fn run_recovery(
        self: Arc<Self>,
        coordinator: PeerClient,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last_retention = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(self.settings.recovery_interval) => {}
            }
            if let Err(err) = self.recover_once(&coordinator).await {
                tracing::warn!(error = %err, "2PC participant recovery pass failed");
            }
            if last_retention.elapsed() > RETENTION_EVERY {
                last_retention = Instant::now();
                if let Err(err) = forget_old_branches(&self.phase_two_pool, BRANCH_RETENTION).await {
                    tracing::warn!(error = %err, "2PC branch retention failed");
                }
            }
        }
    }

    /// Counters plus the number of our prepared branches right now.
    pub async fn metrics(&self) -> sqlx::Result<Snapshot> {
        let in_doubt = count_prepared(&self.phase_two_pool).await?;
        Ok(self.metrics.snapshot(u64::try_from(in_doubt).unwrap_or(0)))
    }
}

/// The table of a participant's branch outcomes ([`crate::schema`]
/// installs it: see the module docs).
pub const BRANCHES_TABLE: &str = "twopc_branches";

/// Rolls back every branch of this protocol prepared in `pool`'s database,
/// whatever its coordinator decided; returns how many. Only for a database
/// nobody depends on (the harness's scratch copy): a prepared branch keeps its
/// row locks across sessions, so its tables cannot be emptied or dropped
/// while one is left.
pub async fn discard_prepared(pool: &PgPool) -> sqlx::Result<u64> {
    let gids: Vec<String> = sqlx::query_scalar(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)",
    )
    .bind(gid::PREFIX)
    .fetch_all(pool)
    .await?;
    let mut discarded = 0;
    for raw in gids {
        // The gid was written by this protocol; `Gid` quotes it for SQL.
        let Ok(gid) = raw.parse::<Gid>() else { continue };
        sqlx::query(&format!("ROLLBACK PREPARED {}", gid.sql_literal())).execute(pool).await?;
        discarded += 1;
    }
    Ok(discarded)
}

/// Branches of this protocol prepared in `pool`'s database and not yet
/// resolved. Other databases of the same cluster are not counted: the
/// harness's ceiling replays 2PC in a scratch database next to the service's.
pub async fn count_prepared(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)",
    )
    .bind(gid::PREFIX)
    .fetch_one(pool)
    .await
}

/// How long a branch's outcome (`twopc_branches`: the commit record, the
/// rollback tombstone) is kept. The guarantees it bounds: a prepare that
/// arrives after its rollback is refused, and a repeated `COMMIT` is answered
/// from the record, for this long after the outcome. Both are needed only
/// while the coordinator can still send them: a prepare during its checkout
/// (seconds), phase two until the decision is finished, which takes as long as
/// the other participant is unreachable. A week covers any outage the stack is
/// meant to survive; a decision left unfinished longer needs an operator.
pub const BRANCH_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often retention runs.
pub(crate) const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Deletes branch outcomes recorded more than `keep` ago; returns how many.
pub async fn forget_old_branches(pool: &PgPool, keep: Duration) -> sqlx::Result<u64> {
    crate::decision_log::delete_in_chunks(
        pool,
        "DELETE FROM twopc_branches WHERE gid IN
         (SELECT gid FROM twopc_branches WHERE recorded_at < now() - make_interval(secs => $1) LIMIT $2)",
        keep,
    )
    .await
}
