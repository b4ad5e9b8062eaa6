//! How the coordinator reaches its participants: the three calls of the
//! protocol (prepare, commit, rollback) and what each answer means to it.
//!
//! The services call each other over HTTP ([`Http`]); the harness's raw
//! ceiling runs the same coordinator against [`ParticipantRunner`]s in its own
//! process ([`InProcess`]), so the yardstick is the protocol's own code with
//! only the network taken out. Both map their answers the same way: a
//! participant's refusal of phase two (it contradicts what the branch did) is
//! [`PhaseTwo::Refused`] and ends the retries; anything else that is not an
//! acknowledgement is [`PhaseTwo::NotAcked`] and is retried.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::client::PeerClient;
use crate::gid::{Gid, ParticipantId};
use crate::machine::Decision;
use crate::messages::{COMMIT_PATH, PREPARE_PATH, PrepareRequest, ROLLBACK_PATH, VoteReply};
use crate::participant::{ParticipantRunner, PhaseTwoError};

/// A participant's answer to phase two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseTwo {
    /// Done (or done before: phase two is idempotent).
    Acked,
    /// The participant says the decision contradicts its branch; retrying
    /// cannot help.
    Refused(String),
    /// No acknowledgement (unreachable, failed); the coordinator retries.
    NotAcked(String),
}

/// The coordinator's calls to its participants.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Asks `p` to prepare `request`'s branch: its vote, or why no vote came
    /// (which the coordinator counts as a failed vote).
    fn prepare(&self, p: ParticipantId, request: PrepareRequest) -> BoxFuture<'_, anyhow::Result<VoteReply>>;

    /// Sends `decision` for `gid` to `p` once.
    fn phase_two<'a>(&'a self, p: ParticipantId, gid: &'a Gid, decision: Decision) -> BoxFuture<'a, PhaseTwo>;
}

/// The participants' internal HTTP endpoints, each service's replicas
/// round-robin.
#[derive(Debug, Clone)]
pub struct Http {
    /// The stock service's replicas.
    pub stock: PeerClient,
    /// The payment service's replicas.
    pub payment: PeerClient,
}

impl Http {
    fn peer(&self, p: ParticipantId) -> &PeerClient {
        match p {
            ParticipantId::Stock => &self.stock,
            ParticipantId::Payment => &self.payment,
        }
    }
}

impl Transport for Http {
    fn prepare(&self, p: ParticipantId, request: PrepareRequest) -> BoxFuture<'_, anyhow::Result<VoteReply>> {
        Box::pin(async move {
            let reply = self.peer(p).post(PREPARE_PATH, Some(&request)).await?;
            anyhow::ensure!(reply.status == 200, "prepare answered {}", reply.status);
            serde_json::from_slice::<VoteReply>(&reply.body).map_err(|e| anyhow::anyhow!("undecodable vote: {e}"))
        })
    }

    fn phase_two<'a>(&'a self, p: ParticipantId, gid: &'a Gid, decision: Decision) -> BoxFuture<'a, PhaseTwo> {
        Box::pin(async move {
            let path = match decision {
                Decision::Commit => format!("{COMMIT_PATH}/{gid}"),
                Decision::Abort => format!("{ROLLBACK_PATH}/{gid}"),
            };
            match self.peer(p).post::<()>(&path, None).await {
                Ok(reply) if reply.status == 200 => PhaseTwo::Acked,
                // The participants answer a PhaseTwoError::Conflict with 409.
                Ok(reply) if reply.status == 409 => PhaseTwo::Refused(String::from_utf8_lossy(&reply.body).into()),
                Ok(reply) => PhaseTwo::NotAcked(format!("status {}", reply.status)),
                Err(err) => PhaseTwo::NotAcked(format!("{err:#}")),
            }
        })
    }
}

/// Participants in this process: their runners called directly.
#[derive(Debug, Clone)]
pub struct InProcess {
    /// The stock participant.
    pub stock: Arc<ParticipantRunner>,
    /// The payment participant.
    pub payment: Arc<ParticipantRunner>,
}

impl InProcess {
    fn runner(&self, p: ParticipantId) -> &Arc<ParticipantRunner> {
        match p {
            ParticipantId::Stock => &self.stock,
            ParticipantId::Payment => &self.payment,
        }
    }
}

impl Transport for InProcess {
    fn prepare(&self, p: ParticipantId, request: PrepareRequest) -> BoxFuture<'_, anyhow::Result<VoteReply>> {
        Box::pin(async move { Ok(self.runner(p).prepare(request).await?) })
    }

    fn phase_two<'a>(&'a self, p: ParticipantId, gid: &'a Gid, decision: Decision) -> BoxFuture<'a, PhaseTwo> {
        Box::pin(async move {
            let raw = gid.to_string();
            let done = match decision {
                Decision::Commit => self.runner(p).commit(&raw).await,
                Decision::Abort => self.runner(p).rollback(&raw).await,
            };
            match done {
                Ok(()) => PhaseTwo::Acked,
                Err(PhaseTwoError::Conflict(why)) => PhaseTwo::Refused(why),
                // Over HTTP a bad request is a 400, which is retried like any
                // other answer that is not an acknowledgement.
                Err(err) => PhaseTwo::NotAcked(err.to_string()),
            }
        })
    }
}
