//! `harness diff <a> <b>`: two runs side by side. For every performance case
//! both ran, and every pair of contenders both had, the paired ratio of each
//! run with its interval ([`super::stats`]) and whether the call changed. A
//! named winner that becomes "no clear winner" is a change; one that becomes
//! the other contender's win is a reversal, which a framework whose verdicts
//! are statistical claims must not produce between two runs of one commit.

use std::fmt::Write as _;

use super::markdown::{Recorded, compares_first, standings};
use super::stats::Call;
use super::verdict::{Standing, p99_call, throughput_call};
use crate::compare::Comparison;

/// How a call moved from run `a` to run `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The same call (the same winner, or no clear winner in both).
    Same,
    /// A named winner in one run, none in the other (or too few samples).
    Weakened,
    /// The winner of one run is the loser of the other.
    Reversed,
}

impl Change {
    /// How `a`'s call became `b`'s.
    pub fn between(a: Option<Call>, b: Option<Call>) -> Change {
        match (a, b) {
            (Some(Call::Leads(_)), Some(Call::Trails(_))) | (Some(Call::Trails(_)), Some(Call::Leads(_))) => {
                Change::Reversed
            }
            (Some(Call::Leads(_)), Some(Call::Leads(_))) | (Some(Call::Trails(_)), Some(Call::Trails(_))) => {
                Change::Same
            }
            (a, b) if a.is_some_and(|c| c.is_clear()) || b.is_some_and(|c| c.is_clear()) => Change::Weakened,
            _ => Change::Same,
        }
    }
}

/// One line of the diff: a figure of a pair in a case, in both runs.
#[derive(Debug, Clone)]
pub struct Line {
    /// The case.
    pub case: String,
    /// `throughput` or `p99`.
    pub figure: &'static str,
    /// The pair, `a / b` (for p99, `b`'s p99 over `a`'s: more is better).
    pub pair: (String, String),
    /// The call in each run.
    pub calls: [Option<Call>; 2],
    /// How it changed.
    pub change: Change,
}

/// The diff of `a` against `b`.
#[derive(Debug, Default)]
pub struct Diff {
    /// Every comparison both runs made.
    pub lines: Vec<Line>,
    /// What one run has and the other does not (a case, or a contender in
    /// a case), in words: said, never skipped silently.
    pub unpaired: Vec<String>,
}

/// The diff of `a` against `b`.
pub fn lines(a: &Comparison, b: &Comparison) -> Diff {
    let mut out = Diff::default();
    let performance = |c: &Comparison| -> Vec<String> {
        c.plan.cases.iter().filter(|c| c.group.is_performance()).map(|c| c.id.clone()).collect()
    };
    let (in_a, in_b) = (performance(a), performance(b));
    for id in in_a.iter().filter(|id| !in_b.contains(id)) {
        out.unpaired.push(format!("{id}: only in the first run"));
    }
    for id in in_b.iter().filter(|id| !in_a.contains(id)) {
        out.unpaired.push(format!("{id}: only in the second run"));
    }
    for case in a.plan.cases.iter().filter(|c| c.group.is_performance()) {
        let Some(other) = b.plan.cases.iter().find(|c| c.id == case.id) else { continue };
        let sa = standings(a, case, compares_first(case));
        let sb = standings(b, other, compares_first(other));
        let find = |s: &'_ [Standing], name: &str| s.iter().find(|x| x.contender == name).cloned();
        for x in sa.iter().filter(|x| find(&sb, &x.contender).is_none()) {
            out.unpaired.push(format!("{}: {} only in the first run", case.id, x.contender));
        }
        for x in sb.iter().filter(|x| find(&sa, &x.contender).is_none()) {
            out.unpaired.push(format!("{}: {} only in the second run", case.id, x.contender));
        }
        for (i, x) in sa.iter().enumerate() {
            for y in &sa[i + 1..] {
                let (Some(bx), Some(by)) = (find(&sb, &x.contender), find(&sb, &y.contender)) else { continue };
                for (figure, call) in
                    [("throughput", throughput_call as fn(&Standing, &Standing) -> Option<Call>), ("p99", p99_call)]
                {
                    let calls = [call(x, y), call(&bx, &by)];
                    out.lines.push(Line {
                        case: case.id.clone(),
                        figure,
                        pair: (x.contender.clone(), y.contender.clone()),
                        change: Change::between(calls[0], calls[1]),
                        calls,
                    });
                }
            }
        }
    }
    out
}

/// A call as a table cell: the ratio with its interval, and who it names.
fn cell(call: Option<Call>, pair: &(String, String)) -> String {
    match call {
        None => "not measured".to_owned(),
        Some(c @ Call::Leads(_)) => format!("{}: **{}**", c.ratio(), pair.0),
        Some(c @ Call::Trails(_)) => format!("{}: **{}**", c.ratio(), pair.1),
        Some(c @ Call::NoClearWinner(_)) => format!("{}: no clear winner", c.ratio()),
        Some(c @ Call::TooFewSamples(_)) => format!("{}: too few samples", c.ratio()),
    }
}

/// The diff as markdown: a summary line, what could not be paired, then one
/// row per line.
pub fn render(a: &Recorded, b: &Recorded, diff: &Diff) -> String {
    let lines = &diff.lines;
    let mut out = format!(
        "# `{}` against `{}`\n\nCommits `{}` and `{}`; started {} and {}. Each ratio is the first contender's \
         figure over the second's within one run (p99: the second's over the first's, so above 1 is a lead for \
         the first either way), with its 95% interval.\n\n",
        a.run_id,
        b.run_id,
        a.context.commit.get(..12).unwrap_or(&a.context.commit),
        b.context.commit.get(..12).unwrap_or(&b.context.commit),
        a.context.started_at,
        b.context.started_at,
    );
    let count = |c: Change| lines.iter().filter(|l| l.change == c).count();
    let _ = writeln!(
        out,
        "{} comparisons: {} reversed, {} with a winner in one run only, {} the same.\n",
        lines.len(),
        count(Change::Reversed),
        count(Change::Weakened),
        count(Change::Same)
    );
    if !diff.unpaired.is_empty() {
        let _ = writeln!(out, "Not compared: {}.\n", diff.unpaired.join("; "));
    }
    out.push_str("| case | figure | pair | first run | second run | change |\n|---|---|---|---|---|---|\n");
    for l in lines {
        let change = match l.change {
            Change::Same => "same",
            Change::Weakened => "winner in one run only",
            Change::Reversed => "**REVERSED**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {} | {change} |",
            l.case,
            l.figure,
            l.pair.0,
            l.pair.1,
            cell(l.calls[0], &l.pair),
            cell(l.calls[1], &l.pair)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::stats::Ratio;

    fn ratio(estimate: f64, lo: f64, hi: f64) -> Ratio {
        Ratio { estimate, interval: Some((lo, hi)), pairs: 3, dropped: 0 }
    }

    #[test]
    fn a_reversal_is_a_winner_turned_loser_and_nothing_else() {
        let leads = Some(Call::Leads(ratio(1.3, 1.1, 1.5)));
        let trails = Some(Call::Trails(ratio(0.7, 0.6, 0.9)));
        let tie = Some(Call::NoClearWinner(ratio(1.02, 0.9, 1.1)));
        let few = Some(Call::TooFewSamples(Ratio { estimate: 1.4, interval: None, pairs: 1, dropped: 0 }));
        assert_eq!(Change::between(leads, trails), Change::Reversed);
        assert_eq!(Change::between(trails, leads), Change::Reversed);
        assert_eq!(Change::between(leads, leads), Change::Same);
        assert_eq!(Change::between(leads, tie), Change::Weakened);
        assert_eq!(Change::between(few, trails), Change::Weakened);
        assert_eq!(Change::between(tie, few), Change::Same);
        assert_eq!(Change::between(None, None), Change::Same);
    }
}
