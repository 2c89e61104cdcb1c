//! Stacked bar charts as inline SVG, written here rather than by an inlined charting library:
//! the page then needs no script to draw (it opens with scripts blocked, prints, and stays a
//! fraction of a library's size), every bar is an element carrying its numbers (`data-x`,
//! `data-series`, `data-value`, and a `<title>` the browser shows on hover), and a test can
//! read the bars from the DOM.

use std::fmt::Write;

use super::escape::esc;

/// One bar segment: `value` of `series` at `x`, shown on hover as `text`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The category on the x axis (a day, a run).
    pub x: String,
    /// The stack it belongs to (a sync, a unit, a code, an outcome).
    pub series: String,
    /// Its height.
    pub value: f64,
    /// The value as the page writes it (exact, with its unit).
    pub text: String,
}

/// Colour-blind-safe (Okabe–Ito), then Tableau's; a series past them takes them again.
const PALETTE: [&str; 14] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#4E79A7", "#F28E2B", "#59A14F",
    "#B07AA1", "#9C755F", "#BAB0AC", "#76B7B2",
];

/// The colour of the `index`-th series.
pub fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;

/// The series of `bars` in the order first seen.
pub fn series_of(bars: &[Bar]) -> Vec<String> {
    let mut series: Vec<String> = Vec::new();
    for bar in bars {
        if !series.contains(&bar.series) {
            series.push(bar.series.clone());
        }
    }
    series
}

/// A stacked bar chart of `bars` (x categories in the order first seen, stacked in `series`
/// order) with its legend, labelled `label` for screen readers.
pub fn stacked(id: &str, label: &str, unit: &str, bars: &[Bar], series: &[String]) -> String {
    let mut xs: Vec<&str> = Vec::new();
    for bar in bars {
        if !xs.contains(&bar.x.as_str()) {
            xs.push(&bar.x);
        }
    }
    let totals: Vec<f64> = xs
        .iter()
        .map(|x| bars.iter().filter(|b| b.x == *x).map(|b| b.value.max(0.0)).sum())
        .collect();
    let top = nice_ceiling(totals.iter().copied().fold(0.0, f64::max));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let band = plot_width / xs.len().max(1) as f64;
    let bar_width = (band * 0.8).max(1.0);
    let y = |value: f64| TOP + plot_height - value / top * plot_height;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" data-chart="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg">"#,
        id = esc(id),
        label = esc(label)
    );
    // Grid lines and the y axis's labels.
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let at = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{right}" y1="{at:.1}" y2="{at:.1}" stroke="#ddd"/><text x="{label_x}" y="{text_y:.1}" text-anchor="end" class="tick">{value}</text>"##,
            right = WIDTH - RIGHT,
            label_x = LEFT - 6.0,
            text_y = at + 4.0,
            value = compact(value)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="14" y="{middle:.1}" transform="rotate(-90 14 {middle:.1})" text-anchor="middle" class="axis">{unit}</text>"#,
        middle = TOP + plot_height / 2.0,
        unit = esc(unit)
    );
    // The x axis's labels: as many as fit side by side (about 7 px a character).
    let labels: Vec<String> = xs.iter().map(|x| short(x)).collect();
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let fit = (plot_width / (widest * 7.0 + 16.0)).floor().max(1.0) as usize;
    let every = xs.len().div_ceil(fit).max(1);
    for (i, label) in labels.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            svg,
            r#"<text x="{at:.1}" y="{below:.1}" text-anchor="middle" class="tick">{x}</text>"#,
            at = LEFT + band * (i as f64 + 0.5),
            below = HEIGHT - BOTTOM + 16.0,
            x = esc(label)
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let left = LEFT + band * i as f64 + (band - bar_width) / 2.0;
        let mut base = 0.0;
        for (index, name) in series.iter().enumerate() {
            for bar in bars.iter().filter(|b| b.x == *x && &b.series == name) {
                let value = bar.value.max(0.0);
                let (from, to) = (y(base), y(base + value));
                base += value;
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{left:.2}" y="{to:.2}" width="{bar_width:.2}" height="{height:.2}" fill="{fill}" data-x="{dx}" data-series="{ds}" data-value="{dv}" data-text="{dt}" tabindex="0"><title>{dx} · {ds}: {dt}</title></rect>"#,
                    height = (from - to).max(0.0),
                    fill = colour(index),
                    dx = esc(&bar.x),
                    ds = esc(&bar.series),
                    dv = bar.value,
                    dt = esc(&bar.text),
                );
            }
        }
    }
    svg.push_str("</svg>");
    let mut legend = String::from(r#"<ul class="legend">"#);
    for (index, name) in series.iter().enumerate() {
        let _ = write!(
            legend,
            r#"<li><span class="swatch" style="background:{}"></span>{}</li>"#,
            colour(index),
            esc(name)
        );
    }
    legend.push_str("</ul>");
    svg + &legend
}

/// A run id (`20261121T150600123Z-9f3a`) as its date and time (`2026-11-21 15:06`); anything
/// else as it is.
fn short(x: &str) -> String {
    let digits = |range: std::ops::Range<usize>| x.get(range).filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    match (
        digits(0..4),
        digits(4..6),
        digits(6..8),
        x.get(8..9),
        digits(9..11),
        digits(11..13),
    ) {
        (Some(y), Some(m), Some(d), Some("T"), Some(h), Some(min)) => format!("{y}-{m}-{d} {h}:{min}"),
        _ => x.to_string(),
    }
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at least `value` (1 for nothing).
pub fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * power)
}

/// `value` in a few characters: 950, 1.2k, 3.4M.
pub fn compact(value: f64) -> String {
    let trimmed = |v: f64, suffix: &str| {
        let text = match v.abs() < 10.0 {
            true => format!("{v:.2}"),
            false => format!("{v:.1}"),
        };
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text}{suffix}")
    };
    match value.abs() {
        v if v >= 1e9 => trimmed(value / 1e9, "G"),
        v if v >= 1e6 => trimmed(value / 1e6, "M"),
        v if v >= 1e3 => trimmed(value / 1e3, "k"),
        _ => trimmed(value, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(21.0), 25.0);
        assert_eq!(nice_ceiling(27_397.0), 50_000.0);
        assert_eq!(compact(27_397.0), "27.4k");
        assert_eq!(compact(2_000_000.0), "2M");
        assert_eq!(compact(12.5), "12.5");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(250.0), "250");
        assert_eq!(short("20261121T150600123Z-9f3a"), "2026-11-21 15:06");
        assert_eq!(short("2026-11-21"), "2026-11-21");
    }

    #[test]
    fn every_segment_carries_its_numbers() {
        let bars = vec![
            Bar {
                x: "2026-03-01".into(),
                series: "a<b".into(),
                value: 3.0,
                text: "3 rows".into(),
            },
            Bar {
                x: "2026-03-01".into(),
                series: "c".into(),
                value: 1.0,
                text: "1 row".into(),
            },
        ];
        let svg = stacked("sent", "Rows sent", "rows", &bars, &series_of(&bars));
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(svg.contains(r#"data-series="a&lt;b" data-value="3""#), "{svg}");
        assert!(svg.contains("<title>2026-03-01 · c: 1 row</title>"), "{svg}");
    }
}
