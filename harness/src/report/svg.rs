//! Minimal, dependency-free SVG charts for the reports: line charts (latency
//! CDFs, throughput over time with fault markers, throughput against a swept
//! parameter) and grouped bar charts (abort reasons). Plain SVG 1.1 that
//! GitHub renders inline in markdown.

use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Colour-blind-safe palette (Okabe-Ito).
const COLOURS: [&str; 12] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#882255", "#44AA99", "#332288",
    "#999999", "#000000",
];

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic x axis (for latency CDFs).
    pub x_log: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical markers `(x, label)`, e.g. faults on a timeline.
    pub markers: Vec<(f64, String)>,
}

/// A grouped bar chart: one group per category, one bar per series.
#[derive(Debug, Clone, Default)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Category names along the x axis.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`.
    pub groups: Vec<(String, Vec<f64>)>,
}

/// A stacked bar chart: one bar per category, one segment per series.
#[derive(Debug, Clone, Default)]
pub struct StackedBarChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the y axis.
    pub y_label: String,
    /// One bar each, along the x axis.
    pub categories: Vec<String>,
    /// `(segment name, one value per category)`, stacked bottom up.
    pub segments: Vec<(String, Vec<f64>)>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(raw);
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_owned()
    }
}

fn frame(out: &mut String, title: &str, y_label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ =
        write!(out, r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#, WIDTH / 2.0, escape(title));
    let _ = write!(
        out,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        escape(y_label)
    );
}

/// Horizontal grid lines and their labels for a y axis from 0 to `y_hi`.
fn y_grid(out: &mut String, y_hi: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    for t in ticks(0.0, y_hi) {
        let y = TOP + plot_h - t / y_hi * plot_h;
        let _ = write!(out, r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/>"##, LEFT + plot_w);
        let _ = write!(out, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, label(t));
    }
}

fn legend(out: &mut String, names: impl Iterator<Item = String>) {
    for (i, name) in names.enumerate() {
        let y = TOP + 10.0 + i as f64 * 18.0;
        let x = WIDTH - RIGHT + 15.0;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(out, r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/>"#, y - 10.0);
        let _ = write!(out, r#"<text x="{}" y="{y}">{}</text>"#, x + 18.0, escape(&name));
    }
}

/// The name of bar slot `c` (each `slot` wide) under the plot.
fn category_label(out: &mut String, c: usize, slot: f64, category: &str) {
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + c as f64 * slot + slot / 2.0,
        HEIGHT - BOTTOM + 16.0,
        escape(category)
    );
}

/// The plot's border, the legend of `names`, and the end of the document.
fn finish(out: &mut String, names: impl Iterator<Item = String>) {
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let _ =
        write!(out, r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##);
    legend(out, names);
    out.push_str("</svg>\n");
}

impl LineChart {
    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter().copied());
        let xs = points.clone().map(|p| p.0).chain(self.markers.iter().map(|m| m.0));
        let tx = |x: f64| if self.x_log { x.max(1e-9).log10() } else { x };
        let (mut x_lo, mut x_hi) =
            xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(tx(x)), hi.max(tx(x))));
        let y_hi = points.map(|p| p.1).fold(0.0f64, f64::max);
        if !x_lo.is_finite() {
            (x_lo, x_hi) = (0.0, 1.0);
        }
        if x_hi <= x_lo {
            x_hi = x_lo + 1.0;
        }
        let y_hi = if y_hi > 0.0 { y_hi * 1.05 } else { 1.0 };
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| LEFT + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w;
        let py = |y: f64| TOP + plot_h - y / y_hi * plot_h;
        let mut out = String::new();
        frame(&mut out, &self.title, &self.y_label);
        y_grid(&mut out, y_hi);
        let x_ticks: Vec<f64> = if self.x_log {
            (x_lo.floor() as i32..=x_hi.ceil() as i32)
                .map(|e| 10f64.powi(e))
                .filter(|v| tx(*v) >= x_lo - 1e-9 && tx(*v) <= x_hi + 1e-9)
                .collect()
        } else {
            ticks(x_lo, x_hi)
        };
        for t in x_ticks {
            let x = px(t);
            let _ = write!(out, r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eee"/>"##, TOP + plot_h);
            let _ =
                write!(out, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, TOP + plot_h + 16.0, label(t));
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 12.0,
            escape(&self.x_label)
        );
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
        );
        for (x, text) in &self.markers {
            let x = px(*x);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#c00" stroke-dasharray="4 3"/>"##,
                TOP + plot_h
            );
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{}" fill="#c00" font-size="10">{}</text>"##,
                x + 3.0,
                TOP + 12.0,
                escape(text)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let path: Vec<String> = s.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                COLOURS[i % COLOURS.len()],
                path.join(" ")
            );
        }
        legend(&mut out, self.series.iter().map(|s| s.name.clone()));
        out.push_str("</svg>\n");
        out
    }
}

impl BarChart {
    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let y_hi = self.groups.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::max);
        let y_hi = if y_hi > 0.0 { y_hi * 1.1 } else { 1.0 };
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let py = |y: f64| TOP + plot_h - y / y_hi * plot_h;
        let mut out = String::new();
        frame(&mut out, &self.title, &self.y_label);
        y_grid(&mut out, y_hi);
        let slot = plot_w / self.categories.len().max(1) as f64;
        let bar = slot * 0.8 / self.groups.len().max(1) as f64;
        for (c, category) in self.categories.iter().enumerate() {
            let x0 = LEFT + c as f64 * slot + slot * 0.1;
            for (g, (_, values)) in self.groups.iter().enumerate() {
                let v = values.get(c).copied().unwrap_or(0.0);
                let (x, y) = (x0 + g as f64 * bar, py(v));
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                    bar.max(1.0),
                    (TOP + plot_h - y).max(0.0),
                    COLOURS[g % COLOURS.len()],
                    label(v)
                );
            }
            category_label(&mut out, c, slot, category);
        }
        finish(&mut out, self.groups.iter().map(|(n, _)| n.clone()));
        out
    }
}

impl StackedBarChart {
    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let total =
            |c: usize| self.segments.iter().map(|(_, v)| v.get(c).copied().unwrap_or(0.0).max(0.0)).sum::<f64>();
        let y_hi = (0..self.categories.len()).map(total).fold(0.0f64, f64::max);
        let y_hi = if y_hi > 0.0 { y_hi * 1.1 } else { 1.0 };
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let mut out = String::new();
        frame(&mut out, &self.title, &self.y_label);
        y_grid(&mut out, y_hi);
        let slot = plot_w / self.categories.len().max(1) as f64;
        for (c, category) in self.categories.iter().enumerate() {
            let x = LEFT + c as f64 * slot + slot * 0.2;
            let mut base = 0.0;
            for (g, (name, values)) in self.segments.iter().enumerate() {
                let v = values.get(c).copied().unwrap_or(0.0).max(0.0);
                let (top, bottom) = (TOP + plot_h - (base + v) / y_hi * plot_h, TOP + plot_h - base / y_hi * plot_h);
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    slot * 0.6,
                    (bottom - top).max(0.0),
                    COLOURS[g % COLOURS.len()],
                    escape(name),
                    label(v)
                );
                base += v;
            }
            category_label(&mut out, c, slot, category);
        }
        finish(&mut out, self.segments.iter().map(|(n, _)| n.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_bars_draw_every_segment_of_every_bar() {
        let chart = StackedBarChart {
            title: "where the time goes".into(),
            y_label: "ms".into(),
            categories: vec!["saga".into(), "2pc".into()],
            segments: vec![("flush".into(), vec![1.0, 3.0]), ("kafka".into(), vec![20.0, 0.0])],
        };
        let svg = chart.render();
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(svg.contains("kafka: 20") && !svg.contains("NaN"));
        assert!(StackedBarChart::default().render().contains("</svg>"));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.0, 0.37);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() <= 0.37 + 1e-9 && t.len() >= 3);
        assert_eq!(ticks(5.0, 5.0), vec![5.0]);
    }

    #[test]
    fn line_chart_draws_every_series_marker_and_escapes_text() {
        let chart = LineChart {
            title: "latency <CDF> & more".into(),
            x_label: "ms".into(),
            y_label: "percentile".into(),
            x_log: true,
            series: vec![
                Series { name: "saga".into(), points: vec![(1.0, 0.0), (10.0, 50.0), (100.0, 100.0)] },
                Series { name: "2pc".into(), points: vec![(0.5, 0.0), (5.0, 100.0)] },
            ],
            markers: vec![(20.0, "kill kafka".into())],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("kill kafka") && svg.contains("stroke-dasharray"));
        assert!(svg.contains("latency &lt;CDF&gt; &amp; more"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn empty_charts_still_render() {
        let svg = LineChart::default().render();
        assert!(svg.contains("</svg>") && !svg.contains("NaN"));
        let svg = BarChart::default().render();
        assert!(svg.contains("</svg>") && !svg.contains("NaN"));
    }

    #[test]
    fn bar_chart_draws_one_bar_per_series_and_category() {
        let chart = BarChart {
            title: "aborts".into(),
            y_label: "checkouts".into(),
            categories: vec!["out of stock".into(), "credit".into(), "system".into()],
            groups: vec![("saga".into(), vec![5.0, 2.0, 0.0]), ("2pc".into(), vec![4.0, 3.0, 1.0])],
        };
        let svg = chart.render();
        assert_eq!(svg.matches("<title>").count(), 6);
        assert!(svg.contains("out of stock"));
    }
}
