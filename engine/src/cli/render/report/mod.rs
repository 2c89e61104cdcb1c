//! The sync history page (`dinmo report`): one HTML file with its style, charts (inline SVG,
//! [`chart`]) and a few lines of script inline, reaching for nothing outside itself, so it
//! opens on an air-gapped laptop and as a CI artifact. Every chart has its numbers on hover
//! and in a table beside it; every element a reader or a test looks for has a `data-` name.

mod chart;
mod escape;

use std::fmt::Write;

use chart::{Bar, series_of, stacked};
use escape::esc;

use crate::ops::{HistoryReport, Point, RunRow};

/// An exact decimal without trailing zeros (`12.500000000` → `12.5`); empty stays empty.
fn exact(text: &str) -> String {
    if !text.contains('.') {
        return text.to_string();
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A whole number with thousands separators.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c8cdd8}
main{padding:8px 28px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e3e6ec;border-radius:6px;margin:18px 0;padding:14px 18px}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:14px 0 6px;color:#3b4456}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:0;padding:0;list-style:none}
.cards li{background:#f6f7f9;border:1px solid #e3e6ec;border-radius:6px;padding:8px 12px;min-width:120px}
.cards b{display:block;font-size:18px}
svg.chart{width:100%;height:auto;display:block}
svg .tick{font-size:11px;fill:#5b6475}
svg .axis{font-size:11px;fill:#5b6475}
svg rect.bar:hover,svg rect.bar:focus{opacity:.75;outline:none}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:12px;padding:0;margin:4px 0 0 70px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border-bottom:1px solid #e3e6ec;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
details summary{cursor:pointer;color:#3b4456;margin-top:6px}
.empty{color:#5b6475;font-style:italic}
.wide{overflow-x:auto}
.bad{color:#b3261e}
#tip{position:absolute;pointer-events:none;background:#1d2330;color:#fff;padding:4px 8px;border-radius:4px;font-size:12px;white-space:nowrap}
"#;

/// Shows a bar's numbers beside the pointer (or the keyboard focus); the `<title>` of each bar
/// says the same where scripts do not run.
const SCRIPT: &str = r#"
(function(){
  var tip=document.getElementById('tip');
  function show(bar,x,y){tip.textContent=bar.dataset.x+' \u00b7 '+bar.dataset.series+': '+bar.dataset.text;tip.hidden=false;tip.style.left=(x+14)+'px';tip.style.top=(y+14)+'px';}
  document.addEventListener('mousemove',function(e){var bar=e.target.closest&&e.target.closest('rect.bar');if(bar){show(bar,e.pageX,e.pageY);}else{tip.hidden=true;}});
  document.addEventListener('focusin',function(e){var bar=e.target.closest&&e.target.closest('rect.bar');if(bar){var r=bar.getBoundingClientRect();show(bar,r.right+window.scrollX,r.top+window.scrollY);}});
  document.addEventListener('focusout',function(){tip.hidden=true;});
})();
"#;

/// The whole page.
pub fn html(report: &HistoryReport) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>dinmo sync history</title><style>{STYLE}</style></head><body><header><h1>dinmo sync history</h1><p>State <code>{state}</code> · read {at}{since}</p></header><main>"#,
        state = esc(&report.state),
        at = esc(&report.generated_at.to_string()),
        since = match &report.since {
            Some(day) => format!(" · runs since {}", esc(day)),
            None => String::new(),
        }
    );
    summary(&mut page, report);
    if report.summary.runs == 0 {
        page.push_str(
            r#"<section data-section="empty"><p class="empty">No runs yet: this state holds no run manifests. Run <code>dinmo run</code>, then write the report again.</p></section>"#,
        );
    } else {
        sent(&mut page, report);
        refusals(&mut page, report);
        runs(&mut page, report);
        held(&mut page, report);
        latest(&mut page, report);
    }
    let _ = write!(
        page,
        r#"</main><div id="tip" hidden></div><script>{SCRIPT}</script></body></html>"#
    );
    page
}

fn summary(page: &mut String, report: &HistoryReport) {
    let s = &report.summary;
    let cards: [(&str, &str, String); 8] = [
        ("runs", "Runs", count(s.runs)),
        ("syncs", "Syncs", count(s.syncs)),
        ("sent_rows", "Rows sent", count(s.sent_rows)),
        ("sent_quantity", "Quantity sent", exact(&s.sent_quantity)),
        ("rejected_rows", "Rows refused", count(s.rejected_rows)),
        ("pending_rows", "Rows pending", count(s.pending_rows)),
        ("held_rows", "Rows held", count(s.held_rows)),
        ("correction_rows", "Corrections sent", count(s.correction_rows)),
    ];
    page.push_str(r#"<section data-section="summary"><h2>Summary</h2><ul class="cards">"#);
    for (key, label, value) in cards {
        let _ = write!(
            page,
            r#"<li data-summary="{key}">{label}<b>{value}</b></li>"#,
            value = esc(&value)
        );
    }
    page.push_str("</ul>");
    if !s.first_run.is_empty() {
        let _ = write!(page, "<p>From {} to {}.</p>", esc(&s.first_run), esc(&s.last_run));
    }
    page.push_str("</section>");
}

/// A chart of `points` by rows (`by_quantity`: by quantity), then its numbers in a table.
fn chart(page: &mut String, id: &str, title: &str, points: &[Point], by_quantity: bool, empty: &str) {
    let _ = write!(page, r#"<h3>{}</h3>"#, esc(title));
    if points.is_empty() {
        let _ = write!(page, r#"<p class="empty" data-chart="{}">{}</p>"#, esc(id), esc(empty));
        return;
    }
    let bars: Vec<Bar> = points
        .iter()
        .map(|p| {
            let (value, text) = match by_quantity {
                true => (p.quantity.parse().unwrap_or(0.0), exact(&p.quantity)),
                false => (p.rows as f64, format!("{} row(s)", count(p.rows))),
            };
            Bar {
                x: p.x.clone(),
                series: p.series.clone(),
                value,
                text,
            }
        })
        .collect();
    let unit = if by_quantity { "quantity" } else { "rows" };
    page.push_str(&stacked(id, title, unit, &bars, &series_of(&bars)));
    let _ = write!(
        page,
        r#"<details><summary>Numbers</summary><table data-table="{}"><tr><th>Day</th><th>Series</th><th class="n">Rows</th><th class="n">Quantity</th></tr>"#,
        esc(id)
    );
    for p in points {
        let _ = write!(
            page,
            r#"<tr data-x="{x}" data-series="{s}"><td>{x}</td><td>{s}</td><td class="n" data-rows="{rows}">{rows_text}</td><td class="n" data-quantity="{q}">{q_text}</td></tr>"#,
            x = esc(&p.x),
            s = esc(&p.series),
            rows = p.rows,
            rows_text = count(p.rows),
            q = esc(&p.quantity),
            q_text = esc(&exact(&p.quantity)),
        );
    }
    page.push_str("</table></details>");
}

fn sent(page: &mut String, report: &HistoryReport) {
    page.push_str(r#"<section data-section="sent"><h2>Sent</h2><p>Per day of the run that sent them.</p>"#);
    let none = "Nothing was sent in this period.";
    chart(
        page,
        "sent-rows-by-sync",
        "Rows sent per day, by sync",
        &report.sent_by_sync,
        false,
        none,
    );
    chart(
        page,
        "sent-quantity-by-sync",
        "Quantity sent per day, by sync",
        &report.sent_by_sync,
        true,
        none,
    );
    chart(
        page,
        "sent-quantity-by-unit",
        "Quantity sent per day, by unit of measure",
        &report.sent_by_unit,
        true,
        none,
    );
    page.push_str("</section>");
}

fn refusals(page: &mut String, report: &HistoryReport) {
    page.push_str(r#"<section data-section="refusals"><h2>Refusals</h2>"#);
    chart(
        page,
        "refused-rows-by-code",
        "Rows refused per day, by code",
        &report.refused_by_code,
        false,
        "No row was refused in this period.",
    );
    if !report.refusals.is_empty() {
        page.push_str(
            r#"<h3>By code and field</h3><div class="wide"><table data-table="refusals"><tr><th>Code</th><th>Field</th><th class="n">Rows</th><th>Syncs</th><th>First run</th><th>Last run</th><th>Message (one of them)</th></tr>"#,
        );
        for r in &report.refusals {
            let _ = write!(
                page,
                r#"<tr data-code="{code}" data-field="{field}"><td>{code}</td><td>{field}</td><td class="n" data-rows="{rows}">{rows_text}</td><td>{syncs}</td><td>{first}</td><td>{last}</td><td>{message}</td></tr>"#,
                code = esc(&r.code),
                field = esc(&r.field),
                rows = r.rows,
                rows_text = count(r.rows),
                syncs = esc(&r.syncs),
                first = esc(&r.first_run),
                last = esc(&r.last_run),
                message = esc(&r.message),
            );
        }
        page.push_str("</table></div>");
    }
    page.push_str("</section>");
}

/// A run's outcome over its syncs: the worst of them.
fn worst(outcomes: &[&str]) -> String {
    const ORDER: [&str; 5] = [
        "failed",
        "running",
        "partially_rejected",
        "succeeded",
        "nothing_to_send",
    ];
    ORDER
        .iter()
        .find(|o| outcomes.contains(o))
        .map(|o| (*o).to_string())
        .or_else(|| outcomes.first().map(|o| (*o).to_string()))
        .unwrap_or_default()
}

fn runs(page: &mut String, report: &HistoryReport) {
    page.push_str(r#"<section data-section="runs"><h2>Runs</h2>"#);
    let mut run_ids: Vec<&str> = report.runs.iter().map(|r| r.run_id.as_str()).collect();
    run_ids.dedup();
    let bars: Vec<Bar> = run_ids
        .iter()
        .map(|id| {
            let parts: Vec<&RunRow> = report.runs.iter().filter(|r| r.run_id == *id).collect();
            let seconds = parts.iter().filter_map(|r| r.duration_seconds).fold(0.0, f64::max);
            let outcomes: Vec<&str> = parts.iter().map(|r| r.outcome.as_str()).collect();
            Bar {
                x: (*id).to_string(),
                series: worst(&outcomes),
                value: seconds,
                text: format!("{seconds:.1} s"),
            }
        })
        .collect();
    page.push_str("<h3>Duration of each run, by outcome</h3>");
    page.push_str(&stacked(
        "run-durations",
        "Duration of each run, by outcome",
        "seconds",
        &bars,
        &series_of(&bars),
    ));
    page.push_str(
        r#"<h3>Outcomes by sync</h3><table data-table="outcomes"><tr><th>Sync</th><th>Outcome</th><th class="n">Runs</th></tr>"#,
    );
    for p in &report.outcomes {
        let _ = write!(
            page,
            r#"<tr data-x="{x}" data-series="{s}"><td>{x}</td><td>{s}</td><td class="n" data-rows="{n}">{n}</td></tr>"#,
            x = esc(&p.x),
            s = esc(&p.series),
            n = p.rows
        );
    }
    page.push_str("</table>");
    page.push_str(r#"<details><summary>Every run</summary>"#);
    run_table(page, "runs", &report.runs);
    page.push_str("</details></section>");
}

fn run_table(page: &mut String, id: &str, rows: &[RunRow]) {
    let _ = write!(
        page,
        r#"<div class="wide"><table data-table="{id}"><tr><th>Run</th><th>Sync</th><th>Started</th><th class="n">Seconds</th><th>Outcome</th><th class="n">Model rows</th><th class="n">New</th><th class="n">Corrections</th><th class="n">Gone</th><th class="n">Accepted</th><th class="n">Refused</th><th class="n">Pending</th><th class="n">Held</th><th>Commit</th></tr>"#
    );
    for r in rows {
        let class = if r.outcome == "failed" { " class=\"bad\"" } else { "" };
        let _ = write!(
            page,
            r#"<tr data-run="{run}" data-sync="{sync}"><td>{run}</td><td>{sync}</td><td>{started}</td><td class="n">{seconds}</td><td{class}>{outcome}</td><td class="n" data-model-rows="{model}">{model}</td><td class="n" data-new-rows="{new}">{new}</td><td class="n">{corrections}</td><td class="n">{gone}</td><td class="n" data-accepted="{accepted}">{accepted}</td><td class="n" data-rejected="{rejected}">{rejected}</td><td class="n">{pending}</td><td class="n">{held}</td><td><code>{commit}</code></td></tr>"#,
            run = esc(&r.run_id),
            sync = esc(&r.sync_id),
            started = esc(&r.started_at),
            seconds = r.duration_seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
            outcome = esc(&r.outcome),
            model = r.model_rows,
            new = r.new_rows,
            corrections = r.corrections,
            gone = r.gone,
            accepted = r.accepted,
            rejected = r.rejected,
            pending = r.pending,
            held = r.held,
            commit = esc(r.git_commit.get(..12).unwrap_or(&r.git_commit)),
        );
        if !r.error.is_empty() {
            let _ = write!(
                page,
                r#"<tr><td></td><td colspan="13" class="bad">{}</td></tr>"#,
                esc(&r.error)
            );
        }
    }
    page.push_str("</table></div>");
}

fn held(page: &mut String, report: &HistoryReport) {
    page.push_str(r#"<section data-section="held"><h2>Held and corrected usage</h2>"#);
    if report.held.is_empty() {
        page.push_str(
            r#"<p class="empty" data-table="held">No run held a row whose values changed after it was sent.</p>"#,
        );
    } else {
        page.push_str(
            r#"<h3>Rows held (their values changed after they were sent; nothing was sent for them)</h3><table data-table="held"><tr><th>Run</th><th>Sync</th><th class="n">Rows</th><th class="n">Quantity sent</th><th class="n">Quantity now</th><th>Reason (one of them)</th></tr>"#,
        );
        for h in &report.held {
            let _ = write!(
                page,
                r#"<tr data-run="{run}" data-sync="{sync}"><td>{run}</td><td>{sync}</td><td class="n" data-rows="{rows}">{rows}</td><td class="n">{before}</td><td class="n">{now}</td><td>{reason}</td></tr>"#,
                run = esc(&h.run_id),
                sync = esc(&h.sync_id),
                rows = h.rows,
                before = esc(&exact(&h.quantity_before)),
                now = esc(&exact(&h.quantity_now)),
                reason = esc(&h.reason),
            );
        }
        page.push_str("</table>");
    }
    chart(
        page,
        "corrections-by-kind",
        "Corrections sent per day, by kind",
        &report.corrections_by_kind,
        false,
        "No correction was sent in this period.",
    );
    page.push_str("</section>");
}

fn latest(page: &mut String, report: &HistoryReport) {
    let run = report.latest.first().map(|r| r.run_id.as_str()).unwrap_or_default();
    let _ = write!(
        page,
        r#"<section data-section="latest"><h2>Latest run: <code>{}</code></h2><p>What it planned for each sync (rows of the model, new, corrections, gone, held) and how it ended.</p>"#,
        esc(run)
    );
    run_table(page, "latest", &report.latest);
    page.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(exact("12.500000000"), "12.5");
        assert_eq!(exact("12.000000000"), "12");
        assert_eq!(exact("120"), "120");
        assert_eq!(exact(""), "");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(worst(&["succeeded", "failed"]), "failed");
        assert_eq!(worst(&["nothing_to_send", "succeeded"]), "succeeded");
    }
}
