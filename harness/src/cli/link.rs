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
    #[arg(required_unless_present_any = ["cut", "reset", "heal", "bandwidth"], value_parser = links::parse_override)]
    delays: Vec<(String, links::Delay)>,
    /// Cut these links: every byte either way is held until `--heal`.
    #[arg(long, value_name = "LINK")]
    cut: Vec<String>,
    /// Drop every connection on these links at its next byte (a new one with a
    /// TCP RST, an open one with a FIN) until `--heal`.
    #[arg(long, value_name = "LINK")]
    reset: Vec<String>,
    /// Heal these links of a cut or resets: what was held goes through, new
    /// connections live. Applied before `--cut` and `--reset`.
    #[arg(long, value_name = "LINK")]
    heal: Vec<String>,
    /// `<link>=<rate>`: limit a link to `<rate>` KB/s each way (`0`:
    /// unlimited again), repeatable: `gateway->order=100KB/s`.
    #[arg(long, value_name = "LINK=RATE", value_parser = parse_bandwidth_setting)]
    bandwidth: Vec<(String, Option<u32>)>,
}

/// `<link>=<rate>`, with `0` (any unit) for no limit.
fn parse_bandwidth_setting(raw: &str) -> Result<(String, Option<u32>), String> {
    let (selector, rate) = links::split_setting(raw, "<rate>")?;
    let zero = rate.trim().trim_end_matches("KB/s").trim_end_matches("MB/s").trim().parse::<f64>() == Ok(0.0);
    let rate = if zero { None } else { Some(links::parse_bandwidth(rate)?) };
    Ok((selector, rate))
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
    for (selector, rate) in &args.bandwidth {
        for name in picked(selector)? {
            api.set_bandwidth(&name, *rate).await?;
        }
    }
    for selector in &args.heal {
        for name in picked(selector)? {
            // The reset goes first: the bytes a cut held are passed on to
            // the next toxic when it goes, and a reset still there would
            // drop them with their connections.
            api.set_reset(&name, false).await?;
            api.set_cut(&name, false).await?;
        }
    }
    for (selectors, cut) in [(&args.cut, true), (&args.reset, false)] {
        for selector in selectors {
            for name in picked(selector)? {
                if cut {
                    api.set_cut(&name, true).await?;
                } else {
                    api.set_reset(&name, true).await?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bandwidth_setting_names_a_link_and_a_rate_or_none() {
        assert_eq!(parse_bandwidth_setting("gateway->order=100KB/s"), Ok(("gateway->order".into(), Some(100))));
        assert_eq!(parse_bandwidth_setting("gateway->order=0"), Ok(("gateway->order".into(), None)));
        assert_eq!(parse_bandwidth_setting("gateway->order=0KB/s"), Ok(("gateway->order".into(), None)));
        assert!(parse_bandwidth_setting("gateway=100").is_err());
        assert!(parse_bandwidth_setting("gateway->order").is_err());
        assert!(parse_bandwidth_setting("gateway->order=fast").is_err());
    }
}
