//! `harness status`: the running stack's endpoints and processes.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use protocol_core::ProtocolKind;

use super::stack_args::{RunDirArg, absolute};
use crate::stack;

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    dir: RunDirArg,
    /// Print shell `export` lines instead of JSON.
    #[arg(long)]
    env: bool,
}

/// SAGA: messages in each service's dead-letter table, read from its
/// replicas' metrics (`None` for a 2PC stack). A service none of whose
/// replicas answers shows `null`.
async fn dead_letters(state: &stack::StackState) -> Option<serde_json::Value> {
    if state.protocol != ProtocolKind::Saga.to_string() {
        return None;
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let mut out = serde_json::Map::new();
    for service in ["order", "stock", "payment"] {
        let mut count: Option<u64> = None;
        for c in state.components.iter().filter(|c| c.name.starts_with(&format!("{service}#"))) {
            let Ok(resp) = http.get(format!("{}{}", c.url, crate::api::path::SAGA_METRICS)).send().await else {
                continue;
            };
            let Ok(values) = resp.json::<serde_json::Value>().await else { continue };
            // A gauge of the service's one database: the same on every replica.
            count = count.max(values["dead_letters"].as_u64());
        }
        out.insert(service.to_owned(), count.map_or(serde_json::Value::Null, Into::into));
    }
    Some(out.into())
}

/// The links and their current settings, read from Toxiproxy (`None`
/// without links; `null` if it does not answer).
async fn links(state: &stack::StackState) -> Option<serde_json::Value> {
    let api = stack::links::Api::new(state.links_api.as_deref()?).ok()?;
    Some(match api.links().await {
        Ok(links) => serde_json::to_value(links).unwrap_or_default(),
        Err(err) => {
            tracing::warn!(error = %err, "Toxiproxy did not list the links");
            serde_json::Value::Null
        }
    })
}

/// Prints the stack's `stack.json` (with the saga's dead letters), or its
/// endpoints as shell `export` lines; fails when no stack runs there.
pub(super) async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let run_dir = absolute(&args.dir.run_dir)?;
    match stack::status(&run_dir)? {
        Some(state) if args.env => print!("{}", state.env_lines()),
        Some(state) => {
            let dead_letters = dead_letters(&state).await;
            let links = links(&state).await;
            let mut doc = serde_json::to_value(&state)?;
            if let (Some(map), Some(dead)) = (doc.as_object_mut(), dead_letters) {
                map.insert("dead_letters".to_owned(), dead);
            }
            if let (Some(map), Some(links)) = (doc.as_object_mut(), links) {
                map.insert("links".to_owned(), links);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        None => {
            eprintln!("no stack running in {}", run_dir.display());
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
