//! The report of a plan or run, on stdout as text or JSON; [`reconcile`]'s report.

pub mod reconcile;
pub mod report;

use crate::cli::{OutputFormat, PlanFormat};
use crate::ops::{RunReport, SyncReport};

/// Prints the report on stdout.
pub fn print_report(report: &RunReport, format: OutputFormat, is_plan: bool) {
    match format {
        OutputFormat::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("cannot encode the report as JSON: {e}"),
        },
        OutputFormat::Text => print!("{}", render_text(report, is_plan)),
    }
}

/// The text form of a report.
pub fn render_text(report: &RunReport, is_plan: bool) -> String {
    let mut out = String::new();
    let verb = if is_plan { "plan" } else { "run" };
    out.push_str(&format!(
        "dinmo {verb} {} (project {})\n",
        report.run_id, report.project
    ));
    if report.full_refresh {
        out.push_str("  full refresh: snapshots ignored, every model row counts as new\n");
    }
    for sync in &report.syncs {
        out.push_str(&format!(
            "\n  {} → {} ({})\n",
            sync.sync_id, sync.destination, sync.destination_type
        ));
        let history = if sync.first_run {
            "first run".to_string()
        } else {
            format!("{} rows already synced", sync.snapshot_rows)
        };
        out.push_str(&format!(
            "    model rows: {}  new rows: {}  changed: {}  ({history})\n",
            sync.counts.model_rows, sync.counts.new_rows, sync.changed_rows
        ));
        if !sync.source_versions.is_empty() {
            out.push_str(&format!("    reads: {}\n", versions(&sync.source_versions)));
        }
        for change in &sync.changed_since_last_run {
            out.push_str(&format!("    warning: {change}\n"));
        }
        push_changes_text(&mut out, sync, is_plan);
        push_gone_text(&mut out, sync, is_plan);
        if is_plan {
            if sync.counts.rejected > 0 {
                out.push_str(&format!("    field rules would refuse: {}\n", sync.counts.rejected));
            }
        } else if sync.outcome.is_some() {
            out.push_str(&format!(
                "    accepted: {}  rejected: {}  pending: {}\n",
                sync.counts.accepted, sync.counts.rejected, sync.counts.pending
            ));
        }
        for fallback in &sync.fallbacks {
            out.push_str(&format!(
                "    warning: {} row(s) of {} went through {} instead: {}\n",
                fallback.rows, fallback.tried, fallback.instead, fallback.reason
            ));
        }
        for rejection in &sync.rejections {
            out.push_str(&format!(
                "      {} × {}{}: {}\n",
                rejection.rows,
                rejection.code,
                rejection.field.as_ref().map_or_else(String::new, |f| format!(" ({f})")),
                rejection.example
            ));
        }
        for id in &sync.destination_ids {
            out.push_str(&format!("    wrote {id}\n"));
        }
        if let Some(outcome) = sync.outcome {
            out.push_str(&format!("    outcome: {}\n", outcome.as_str()));
        }
        if let Some(error) = &sync.error {
            out.push_str(&format!("    error: {error}\n"));
        }
    }
    for error in &report.model_errors {
        out.push_str(&format!("\n  error: {error}\n"));
    }
    let new: u64 = report.syncs.iter().map(|s| s.counts.new_rows).sum();
    let corrections: u64 = report.syncs.iter().map(|s| s.counts.corrections).sum();
    let held: u64 = report.syncs.iter().map(|s| s.held_rows).sum();
    if is_plan {
        let corrections = match corrections {
            0 => String::new(),
            n => format!(" and {n} correction(s)"),
        };
        let held = match held {
            0 => String::new(),
            n => format!("; {n} changed or gone row(s) would be held"),
        };
        out.push_str(&format!(
            "\n{new} new row(s){corrections} to send across {} sync(s){held}; nothing was sent\n",
            report.syncs.len()
        ));
    } else {
        let accepted: u64 = report.syncs.iter().map(|s| s.counts.accepted).sum();
        let rejected: u64 = report.syncs.iter().map(|s| s.counts.rejected).sum();
        let held = match held {
            0 => String::new(),
            n => format!("; {n} changed or gone row(s) held"),
        };
        out.push_str(&format!(
            "\nsent {accepted} row(s), {rejected} rejected, across {} sync(s){held}\n",
            report.syncs.len()
        ));
    }
    out
}

/// What became of a sync's changed rows, in the text report.
fn push_changes_text(out: &mut String, sync: &SyncReport, is_plan: bool) {
    if sync.changed_rows == 0 {
        return;
    }
    let what = match sync.on_change.as_str() {
        "ignore" => "left as they are (on_change: ignore)".to_string(),
        "correct" => format!(
            "{} {} of them (on_change: correct){}",
            if is_plan { "would correct" } else { "corrected" },
            sync.corrected_rows,
            if sync.held_changed_rows() > 0 {
                format!(
                    "; {} {} ({} newly), settle them with `dinmo state resolve-held {}`",
                    if is_plan { "would hold" } else { "held" },
                    sync.held_changed_rows(),
                    sync.newly_held_rows,
                    sync.sync_id
                )
            } else {
                String::new()
            }
        ),
        _ if sync.held_changed_rows() > 0 => format!(
            "{} {} of them, nothing sent ({} newly; on_change: {}). Settle them with `dinmo state resolve-held {}`",
            if is_plan { "would hold" } else { "held" },
            sync.held_changed_rows(),
            sync.newly_held_rows,
            sync.on_change,
            sync.sync_id
        ),
        _ => String::new(),
    };
    out.push_str(&format!(
        "    changed: {} row(s) synced earlier have other values now; {what}\n",
        sync.changed_rows
    ));
    let Some(changes) = &sync.changes else { return };
    let [_, _, quantity, _] = &changes.fields;
    out.push_str(&format!(
        "      {quantity} difference (now − sent): {}\n",
        signed(&changes.quantity_difference)
    ));
    for (reason, rows) in &changes.reasons {
        out.push_str(&format!("      {rows} × {reason}\n"));
    }
    for sample in &changes.sample {
        out.push_str(&format!(
            "      {} {} {}: {}\n",
            sample.row.account.as_deref().unwrap_or(""),
            sample.row.unit.as_deref().unwrap_or(""),
            sample.row.start.as_deref().unwrap_or(""),
            before_after(sample, " ", ", ")
        ));
    }
    if sync.changed_rows as usize > changes.sample.len() {
        out.push_str(&format!(
            "      … and {} more\n",
            sync.changed_rows as usize - changes.sample.len()
        ));
    }
}

/// What became of a sync's gone rows: one sentence.
fn gone_sentence(sync: &SyncReport, is_plan: bool) -> Option<String> {
    if sync.gone_rows == 0 {
        return None;
    }
    let Some(gone) = &sync.gone else {
        return Some(format!(
            "{} row(s) synced earlier are no longer in the model; nothing is sent for them",
            sync.gone_rows
        ));
    };
    let fate = if gone.on_delete == "rollback_pending" {
        let kept: Vec<String> = gone.kept.iter().map(|(why, n)| format!("{n} kept: {why}")).collect();
        format!(
            "{} {} Pending record(s){}",
            if is_plan { "would delete" } else { "deleted" },
            gone.deleted,
            if kept.is_empty() {
                String::new()
            } else {
                format!(" ({})", kept.join(", "))
            }
        )
    } else {
        format!(
            "nothing is sent for them and the destination still holds {}",
            gone.quantity
        )
    };
    Some(format!(
        "{} row(s) synced earlier are no longer in the model (on_delete: {}); {fate}",
        sync.gone_rows, gone.on_delete
    ))
}

/// A sync's gone rows in the text report.
fn push_gone_text(out: &mut String, sync: &SyncReport, is_plan: bool) {
    let Some(sentence) = gone_sentence(sync, is_plan) else {
        return;
    };
    out.push_str(&format!("    gone: {sentence}\n"));
    let Some(gone) = &sync.gone else { return };
    for row in &gone.sample {
        out.push_str(&format!(
            "      {} {} {}: {} ({})\n",
            row.row.account.as_deref().unwrap_or(""),
            row.row.unit.as_deref().unwrap_or(""),
            row.row.start.as_deref().unwrap_or(""),
            row.quantity.as_deref().unwrap_or("?"),
            row.fate
        ));
    }
    if sync.gone_rows as usize > gone.sample.len() {
        out.push_str(&format!(
            "      … and {} more\n",
            sync.gone_rows as usize - gone.sample.len()
        ));
    }
}

/// A sync's gone rows in the markdown plan.
fn push_gone_markdown(out: &mut String, sync: &SyncReport) {
    let Some(sentence) = gone_sentence(sync, true) else {
        return;
    };
    out.push_str(&format!("- gone: {sentence}\n"));
    let Some(gone) = &sync.gone else { return };
    if gone.sample.is_empty() {
        return;
    }
    out.push_str(&format!(
        "\n<details><summary>{} gone row(s)</summary>\n\n| account | unit | start | quantity sent | what becomes of it |\n|---|---|---|---:|---|\n",
        gone.sample.len()
    ));
    for row in &gone.sample {
        out.push_str(&format!(
            "| {} | {} | {} | {} | `{}` |\n",
            md(row.row.account.as_deref().unwrap_or("")),
            md(row.row.unit.as_deref().unwrap_or("")),
            md(row.row.start.as_deref().unwrap_or("")),
            row.quantity.as_deref().unwrap_or("?"),
            row.fate
        ));
    }
    out.push_str("\n</details>\n\n");
}

/// A changed row's fields as `Field before → after`, the field and its values apart by
/// `after_field`, the fields by `between`.
fn before_after(sample: &crate::ops::ChangeSample, after_field: &str, between: &str) -> String {
    sample
        .changes
        .iter()
        .map(|c| {
            format!(
                "{}{after_field}{} → {}",
                c.field,
                c.before.as_deref().unwrap_or("?"),
                c.after.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(between)
}

/// A difference with its sign (`+12`, `-3`, `0`).
fn signed(difference: &str) -> String {
    if difference.starts_with('-') || difference == "0" {
        difference.to_string()
    } else {
        format!("+{difference}")
    }
}

/// Prints a plan on stdout.
pub fn print_plan(report: &RunReport, format: PlanFormat) {
    match format {
        PlanFormat::Text => print_report(report, OutputFormat::Text, true),
        PlanFormat::Json => print_report(report, OutputFormat::Json, true),
        PlanFormat::Markdown => print!("{}", render_markdown(report)),
    }
}

/// Escapes a value for a markdown table cell.
/// `events at Delta version 7, …`.
fn versions(versions: &[crate::ops::SourceVersion]) -> String {
    versions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn md(value: &str) -> String {
    value.replace('|', "\\|").replace('\n', " ")
}

/// One markdown table row per total: key, rows, quantity.
fn push_totals(out: &mut String, totals: &[crate::ops::Total]) {
    for total in totals {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            md(&total.key),
            total.rows,
            total.quantity
        ));
    }
}

/// A sync's changed rows in the markdown plan: counts, the quantity difference by account and
/// unit, and rows before → after.
fn push_changes_markdown(out: &mut String, sync: &SyncReport) {
    if sync.changed_rows == 0 {
        return;
    }
    let fate = match sync.on_change.as_str() {
        "ignore" => "left as they are (`on_change: ignore`)".to_string(),
        "correct" => format!(
            "**{}** would be corrected, **{}** held",
            sync.corrected_rows,
            sync.held_changed_rows()
        ),
        _ => format!(
            "**held**, nothing sent (`on_change: hold`; {} newly)",
            sync.newly_held_rows
        ),
    };
    out.push_str(&format!(
        "- changed: **{}** row(s) synced earlier have other values now; {fate}\n",
        sync.changed_rows
    ));
    let Some(changes) = &sync.changes else { return };
    let [account, unit, quantity, start] = &changes.fields;
    out.push_str(&format!(
        "- {quantity} difference (now − sent): **{}**\n",
        signed(&changes.quantity_difference)
    ));
    if !changes.by_account_unit.is_empty() {
        out.push_str(&format!(
            "\n**Changed {quantity} by {account} and {unit}**\n\n| {account} | {unit} | rows | sent | now | difference |\n|---|---|---:|---:|---:|---:|\n"
        ));
        for total in &changes.by_account_unit {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                md(&total.account),
                md(&total.unit),
                total.rows,
                total.before,
                total.after,
                signed(&total.difference)
            ));
        }
    }
    if !changes.sample.is_empty() {
        out.push_str(&format!(
            "\n<details><summary>{} changed row(s), before → after</summary>\n\n| {account} | {unit} | {start} | change | reason |\n|---|---|---|---|---|\n",
            changes.sample.len()
        ));
        for sample in &changes.sample {
            out.push_str(&format!(
                "| {} | {} | {} | {} | `{}` |\n",
                md(sample.row.account.as_deref().unwrap_or("")),
                md(sample.row.unit.as_deref().unwrap_or("")),
                md(sample.row.start.as_deref().unwrap_or("")),
                md(&before_after(sample, ": ", "; ")),
                sample.reason.as_deref().unwrap_or("")
            ));
        }
        out.push_str("\n</details>\n");
    }
}

/// The plan as a pull-request comment. Deterministic: no run id, no times, everything sorted,
/// so the same inputs give byte-identical output and two plans diff cleanly.
/// Written top to bottom in the order a reviewer reads it; `push_totals` and `md` format the
/// tables' rows.
pub fn render_markdown(report: &RunReport) -> String {
    let mut out = String::new();
    let new: u64 = report.syncs.iter().map(|s| s.counts.new_rows).sum();
    let refused: u64 = report.syncs.iter().map(|s| s.counts.rejected).sum();
    out.push_str(&format!("## dinmo plan: `{}`\n\n", report.project));
    if report.full_refresh {
        out.push_str("> [!WARNING]\n> **Full refresh**: snapshots are ignored and every model row counts as new.\n\n");
    }
    let corrections: u64 = report.syncs.iter().map(|s| s.counts.corrections).sum();
    let held: u64 = report.syncs.iter().map(|s| s.held_rows).sum();
    out.push_str(&format!(
        "**{new}** new row(s) to send across {} sync(s); {refused} would be refused by field rules.\n\n",
        report.syncs.len()
    ));
    if corrections + held > 0 {
        out.push_str(&format!(
            "**{corrections}** correction(s) of rows whose values changed after they were sent; **{held}** changed row(s) would be held.\n\n"
        ));
    }
    let mut syncs: Vec<&SyncReport> = report.syncs.iter().collect();
    syncs.sort_by(|a, b| a.sync_id.cmp(&b.sync_id));
    out.push_str("| sync | destination | new rows | changed rows | gone rows | refused by rules | already synced | changed since last run |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    for sync in &syncs {
        out.push_str(&format!(
            "| `{}` | `{}` ({}) | {} | {} | {} | {} | {} | {} |\n",
            sync.sync_id,
            sync.destination,
            sync.destination_type,
            sync.counts.new_rows,
            sync.changed_rows,
            sync.gone_rows,
            sync.counts.rejected,
            if sync.first_run {
                "first run".to_string()
            } else {
                sync.snapshot_rows.to_string()
            },
            if sync.changed_since_last_run.is_empty() {
                "no".to_string()
            } else {
                format!("**yes** ({})", sync.changed_since_last_run.len())
            }
        ));
    }
    for sync in &syncs {
        out.push_str(&format!("\n### `{}`\n\n", sync.sync_id));
        for change in &sync.changed_since_last_run {
            out.push_str(&format!("> [!WARNING]\n> {}\n\n", md(change)));
        }
        if let Some(error) = &sync.error {
            out.push_str(&format!("> [!CAUTION]\n> {}\n\n", md(error)));
        }
        out.push_str(&format!(
            "- model rows: {}, new rows: **{}**, to send after field rules: **{}**\n",
            sync.counts.model_rows,
            sync.counts.new_rows,
            sync.counts.new_rows.saturating_sub(sync.counts.rejected)
        ));
        if !sync.source_versions.is_empty() {
            out.push_str(&format!("- reads: {}\n", md(&versions(&sync.source_versions))));
        }
        push_gone_markdown(&mut out, sync);
        push_changes_markdown(&mut out, sync);
        let Some(summary) = &sync.summary else { continue };
        let [account, unit, quantity, start] = &summary.fields;
        if let (Some(first), Some(last)) = (&summary.first_start, &summary.last_start) {
            out.push_str(&format!("- {start}: {first} → {last}\n"));
        }
        if let Some(total) = &summary.total_quantity {
            out.push_str(&format!("- total {quantity}: {total}\n"));
        }
        if !sync.rejections.is_empty() {
            out.push_str("\n**Refused by field rules** (not sent; kept with their reason and offered again next run)\n\n| reason | field | rows | example |\n|---|---|---:|---|\n");
            for rejection in &sync.rejections {
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    rejection.code,
                    rejection.field.as_deref().unwrap_or(""),
                    rejection.rows,
                    md(&rejection.example)
                ));
            }
        }
        if !summary.by_unit.is_empty() {
            out.push_str(&format!(
                "\n**{quantity} by {unit}**\n\n| {unit} | rows | {quantity} |\n|---|---:|---:|\n"
            ));
            push_totals(&mut out, &summary.by_unit);
        }
        if !summary.by_account.is_empty() {
            out.push_str(&format!(
                "\n**{quantity} by {account}** (top {})\n\n| {account} | rows | {quantity} |\n|---|---:|---:|\n",
                summary.by_account.len()
            ));
            push_totals(&mut out, &summary.by_account);
            if let Some(other) = &summary.other_accounts {
                out.push_str(&format!(
                    "| *{} other account(s)* | {} | {} |\n",
                    other.accounts, other.rows, other.quantity
                ));
            }
        }
        if !summary.sample.is_empty() {
            out.push_str(&format!(
                "\n<details><summary>Sample of {} row(s)</summary>\n\n",
                summary.sample.len()
            ));
            out.push_str(&format!(
                "| {} |\n",
                summary
                    .sample_columns
                    .iter()
                    .map(|c| md(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
            out.push_str(&format!("|{}\n", "---|".repeat(summary.sample_columns.len())));
            for row in &summary.sample {
                out.push_str(&format!(
                    "| {} |\n",
                    row.iter().map(|v| md(v)).collect::<Vec<_>>().join(" | ")
                ));
            }
            out.push_str("\n</details>\n");
        }
    }
    for error in &report.model_errors {
        out.push_str(&format!("\n> [!CAUTION]\n> {}\n", md(error)));
    }
    out
}
