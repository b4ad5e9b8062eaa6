//! `stack.json`: what a running stack looks like from outside.
//!
//! The supervisor rewrites it whenever something changes (ready, a restart);
//! `harness status` prints it and `harness down` uses it to find the supervisor.
//! It is written to a temporary file and renamed, so readers never see half of it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::process::alive;

/// One process of the stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComponentState {
    /// Name (`postgres-order`, `kafka#0`, `redis`, `gateway`, `order#0`, ...).
    pub name: String,
    /// Where it answers.
    pub url: String,
    /// Current OS process id.
    pub pid: u32,
    /// The executable, to recognise the process if the supervisor died.
    pub program: String,
    /// How often the supervisor restarted it after it died.
    pub restarts: u32,
    /// Its log file.
    pub log: String,
}

/// The stack as a whole.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackState {
    /// `starting`, `ready` or `stopping`.
    pub phase: String,
    /// Protocol of the order service.
    pub protocol: String,
    /// Pid of the `harness up` process supervising the stack.
    pub supervisor_pid: u32,
    /// Unix time (seconds) the stack was started.
    pub started_at: u64,
    /// The run directory.
    pub run_dir: String,
    /// The gateway's base URL (absent with `--infra-only`).
    pub gateway: Option<String>,
    /// Database URL per service (`order`, `stock`, `payment`).
    pub databases: BTreeMap<String, String>,
    /// Kafka bootstrap servers.
    pub kafka_bootstrap: String,
    /// Redis URL.
    pub redis_url: String,
    /// Toxiproxy's API, when the stack's links run through it
    /// (`harness status` lists the links from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links_api: Option<String>,
    /// Every process, infrastructure first.
    pub components: Vec<ComponentState>,
}

impl StackState {
    /// Writes the state atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    }

    /// Reads the state file, if there is one.
    pub fn read(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Whether the supervisor of this state is still running.
    pub fn supervisor_alive(&self) -> bool {
        alive(self.supervisor_pid)
    }

    /// Shell `export` lines for the endpoints, for scripts (`eval "$(harness status --env)"`).
    pub fn env_lines(&self) -> String {
        let mut out = String::new();
        let mut put = |k: &str, v: &str| out.push_str(&format!("export {k}='{v}'\n"));
        if let Some(gateway) = &self.gateway {
            put("SAGA2PC_GATEWAY", gateway);
        }
        for (role, url) in &self.databases {
            put(&format!("SAGA2PC_{}_DATABASE_URL", role.to_uppercase()), url);
        }
        put("SAGA2PC_KAFKA_BOOTSTRAP", &self.kafka_bootstrap);
        put("SAGA2PC_REDIS_URL", &self.redis_url);
        out
    }
}
