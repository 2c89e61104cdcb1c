//! `dinmo report` opened in a real headless Chromium: the page's charts and tables read from
//! its DOM and checked against `dinmo query` over the same state, a bar hovered for its
//! numbers, a screenshot taken (kept under the target folder as an artifact), and nothing
//! fetched from anywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use zuora_sim::SimConfig;

use crate::browser::Browser;
use crate::history::{decimal, query, with_two_refused};
use crate::support::*;
use crate::zuora::{Sim, export, run_against, usage_rows, zuora_project};

/// What a test reads from a report page.
const READ_PAGE: &str = r#"
const box = e => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
return {
  title: document.title,
  charts: [...document.querySelectorAll('svg[data-chart]')].map(s => ({id: s.dataset.chart, size: box(s)})),
  bars: [...document.querySelectorAll('svg[data-chart] rect.bar')].map(r => ({
    chart: r.closest('svg').dataset.chart, x: r.dataset.x, series: r.dataset.series,
    value: Number(r.dataset.value), title: r.querySelector('title').textContent, size: box(r)})),
  empty: [...document.querySelectorAll('.empty')].map(e => e.dataset.chart || e.dataset.table || 'page'),
  summary: Object.fromEntries([...document.querySelectorAll('[data-summary]')]
    .map(e => [e.dataset.summary, e.querySelector('b').textContent])),
  refusals: [...document.querySelectorAll('table[data-table=refusals] tr[data-code]')]
    .map(tr => ({code: tr.dataset.code, field: tr.dataset.field, rows: Number(tr.querySelector('[data-rows]').dataset.rows)})),
  latest: [...document.querySelectorAll('table[data-table=latest] tr[data-sync]')]
    .map(tr => ({run: tr.dataset.run, sync: tr.dataset.sync, accepted: Number(tr.querySelector('[data-accepted]').dataset.accepted)})),
  sections: [...document.querySelectorAll('section[data-section]')].map(s => s.dataset.section),
  fetched: performance.getEntriesByType('resource').map(e => e.name),
  external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')),
};
"#;

/// Writes `project`'s report, opens it in Chromium, photographs it (`<name>.png` under the
/// test target folder); the page as [`READ_PAGE`] reads it.
fn open_report(project: &TestProject, browser: &Browser, name: &str) -> Value {
    let page = project.path().join("report.html");
    let wrote = project.dinmo(&["report", "--out", page.to_str().unwrap_or_default()]);
    exits(&wrote, 0);
    let html = std::fs::read_to_string(&page).expect("the report");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.200}");
    browser.open(&page);
    let read = browser.eval(READ_PAGE);
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}.png"));
    let (width, height) = browser.screenshot(&shot);
    assert!(width == 1280 && height > 1000, "{}: {width} × {height}", shot.display());
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "{} is too small to show a page",
        shot.display()
    );
    assert_eq!(read["title"], "dinmo sync history");
    assert_eq!(read["fetched"], Value::Array(vec![]), "the page fetched something");
    assert_eq!(read["external"], Value::Array(vec![]), "the page links something");
    read
}

/// `(chart's x, series) → value` of every bar of `chart`.
fn bars(page: &Value, chart: &str) -> BTreeMap<(String, String), f64> {
    page["bars"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["chart"] == chart)
        .map(|b| {
            let size = b["size"].as_array().cloned().unwrap_or_default();
            assert!(size[0].as_f64() > Some(0.0), "a bar of {chart} has no width: {b}");
            (
                (
                    b["x"].as_str().unwrap_or_default().to_string(),
                    b["series"].as_str().unwrap_or_default().to_string(),
                ),
                b["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

#[test]
fn the_report_shows_in_a_browser_what_the_history_tables_hold() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-11-18", &with_two_refused(usage_rows(20)));
    exits(&run_against(&project, &sim, &["run"]), 3);
    export(&project, "2026-11-19", &usage_rows(9));
    exits(&run_against(&project, &sim, &["run"]), 3);
    let before = project.state_digest();

    let browser = Browser::start(1280, 2000);
    let page = open_report(&project, &browser, "refusals");
    for chart in [
        "sent-rows-by-sync",
        "sent-quantity-by-sync",
        "sent-quantity-by-unit",
        "refused-rows-by-code",
        "run-durations",
    ] {
        let drawn = page["charts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"] == chart);
        let size = drawn.map(|c| c["size"].clone()).unwrap_or_default();
        assert!(
            decimal(&size[0]) > 600.0 && decimal(&size[1]) > 100.0,
            "{chart} not drawn: {page:#}"
        );
    }

    // Every bar is a number `dinmo query` gives for the same state.
    let expected = |sql: &str| -> BTreeMap<(String, String), f64> {
        query(&project, sql)
            .iter()
            .map(|r| {
                (
                    (
                        r["x"].as_str().unwrap_or_default().to_string(),
                        r["s"].as_str().unwrap_or_default().to_string(),
                    ),
                    decimal(&r["v"]),
                )
            })
            .collect()
    };
    let per_day = |value: &str, series: &str, table: &str| {
        format!(
            "SELECT CAST(CAST(r.started_at AS DATE) AS VARCHAR) AS x, {series} AS s, {value} AS v \
             FROM {table} t JOIN runs r USING (sync_id, run_id) GROUP BY 1, 2"
        )
    };
    let rows_by_sync = expected(&per_day("count(*)", "t.sync_id", "sent"));
    assert_eq!(rows_by_sync.values().sum::<f64>(), 29.0, "{rows_by_sync:?}");
    assert_eq!(bars(&page, "sent-rows-by-sync"), rows_by_sync);
    assert_eq!(
        bars(&page, "sent-quantity-by-sync"),
        expected(&per_day("CAST(sum(quantity) AS DOUBLE)", "t.sync_id", "sent"))
    );
    let by_unit = expected(&per_day("CAST(sum(quantity) AS DOUBLE)", "t.unit", "sent"));
    assert_eq!(
        by_unit
            .keys()
            .map(|(_, unit)| unit.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2
    );
    assert_eq!(bars(&page, "sent-quantity-by-unit"), by_unit);
    assert_eq!(
        bars(&page, "refused-rows-by-code"),
        expected(&per_day("count(*)", "t.code", "rejected"))
    );
    let refusals: Vec<(String, String, f64)> = query(
        &project,
        "SELECT code, coalesce(field, '') AS field, count(*) AS n FROM rejected GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
    )
    .iter()
    .map(|r| {
        (
            r["code"].as_str().unwrap_or_default().into(),
            r["field"].as_str().unwrap_or_default().into(),
            decimal(&r["n"]),
        )
    })
    .collect();
    assert_eq!(
        refusals.iter().map(|r| r.2).sum::<f64>(),
        4.0,
        "two refused by each run: {refusals:?}"
    );
    let shown: Vec<(String, String, f64)> = page["refusals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["code"].as_str().unwrap_or_default().into(),
                r["field"].as_str().unwrap_or_default().into(),
                decimal(&r["rows"]),
            )
        })
        .collect();
    assert_eq!(shown, refusals);
    let runs = query(
        &project,
        "SELECT count(DISTINCT run_id) AS n, count(*) AS parts FROM runs",
    );
    assert_eq!(bars(&page, "run-durations").len() as f64, decimal(&runs[0]["n"]));
    let latest: Vec<(String, f64)> = query(
        &project,
        "SELECT sync_id, accepted FROM runs WHERE run_id = (SELECT max(run_id) FROM runs) ORDER BY 1",
    )
    .iter()
    .map(|r| {
        (
            r["sync_id"].as_str().unwrap_or_default().into(),
            decimal(&r["accepted"]),
        )
    })
    .collect();
    let shown: Vec<(String, f64)> = page["latest"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["sync"].as_str().unwrap_or_default().into(), decimal(&r["accepted"])))
        .collect();
    assert_eq!(shown, latest);
    assert_eq!(latest, [("usage.zuora".to_string(), 9.0)]);
    let sent = query(&project, "SELECT count(*) AS n FROM sent");
    assert_eq!(
        page["summary"]["sent_rows"].as_str().map(str::to_string),
        Some(decimal(&sent[0]["n"]).to_string())
    );
    assert_eq!(page["summary"]["rejected_rows"], "4");
    assert_eq!(page["summary"]["runs"], "2");
    assert!(
        page["empty"]
            .as_array()
            .is_some_and(|e| e.contains(&Value::from("held"))),
        "no rows held, and the page says so: {page:#}"
    );

    // Hovering a bar shows its numbers.
    browser.hover(r#"svg[data-chart="sent-rows-by-sync"] rect.bar"#);
    let tip = browser.eval("const t = document.getElementById('tip'); return {hidden: t.hidden, text: t.textContent};");
    assert_eq!(tip["hidden"], false, "{tip}");
    let first = page["bars"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["chart"] == "sent-rows-by-sync")
        .cloned()
        .unwrap_or_default();
    let text = tip["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(first["x"].as_str().unwrap_or("?")) && text.contains(&format!("{} row(s)", first["value"])),
        "{tip} for {first}"
    );
    assert_eq!(
        first["title"].as_str(),
        Some(text),
        "the same numbers where scripts do not run"
    );
    assert_eq!(project.state_digest(), before, "writing the report changed the state");
}

#[test]
fn the_report_of_an_empty_state_says_there_is_nothing_yet() {
    let project = TestProject::standard();
    let browser = Browser::start(1280, 2000);
    let page = open_report(&project, &browser, "empty");
    assert_eq!(page["charts"], Value::Array(vec![]), "{page:#}");
    assert_eq!(page["sections"], serde_json::json!(["summary", "empty"]));
    assert_eq!(page["summary"]["runs"], "0");
    assert_eq!(page["summary"]["sent_rows"], "0");
}
