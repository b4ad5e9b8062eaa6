//! `harness link`: change the links of a running stack (`up --links`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::stack_args::{RunDirArg, absolute};
use crate::stack::{self, links};

#[derive(Debug, Args)]
pub(super) struct LinkArgs {
    #[command(flatten)]
    dir: RunDirArg,
    /// `<link>=<delay>` (a link as `harness status` names it; without
    /// `#replica`, every replica's), repeatable: `gateway->order=2ms`,
    /// `stock->postgres-stock=5ms±1ms`, `order->kafka#0=0`.
    #[arg(required_unless_present_any = ["cut", "heal"], value_parser = links::parse_override)]
    delays: Vec<(String, links::Delay)>,
    /// Cut these links: every byte either way is held until `--heal`.
    #[arg(long, value_name = "LINK")]
    cut: Vec<String>,
    /// Heal these cut links: what was held goes through.
    #[arg(long, value_name = "LINK")]
    heal: Vec<String>,
}

/// Applies the settings to every link each selector picks.
pub(super) async fn link(args: LinkArgs) -> anyhow::Result<ExitCode> {
    let run_dir = absolute(&args.dir.run_dir)?;
    let state = stack::status(&run_dir)?.with_context(|| format!("no stack running in {}", run_dir.display()))?;
    let base = state.links_api.as_deref().context("the stack runs without links (start it with `up --links`)")?;
    let api = links::Api::new(base)?;
    let names: Vec<links::Link> =
        api.links().await?.into_iter().map(|l| links::Link { name: l.name, listen: 0, upstream: 0 }).collect();
    let picked = |selector: &str| -> anyhow::Result<Vec<String>> {
        links::check_selector(selector, &names)?;
        Ok(names.iter().filter(|l| links::selects(selector, &l.name)).map(|l| l.name.clone()).collect())
    };
    for (selector, delay) in &args.delays {
        for name in picked(selector)? {
            api.set_delay(&name, *delay).await?;
        }
    }
    for (selectors, cut) in [(&args.cut, true), (&args.heal, false)] {
        for selector in selectors {
            for name in picked(selector)? {
                api.set_cut(&name, cut).await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
