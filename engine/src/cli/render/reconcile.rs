//! `dinmo reconcile`'s report: text for a terminal, markdown for a month-end review or a
//! pull-request comment (totals by account and unit of measure, then the differences), JSON.

use serde::Serialize;

use crate::error::{DinmoError, Result};
use crate::ops::{Class, ClassCount, Compared, HeldSource, ReconcileReport, SyncReconciliation};

/// How each class reads in a report.
fn title(class: Class) -> &'static str {
    match class {
        Class::Equal => "equal",
        Class::Missing => "missing in Zuora",
        Class::Different => "different in Zuora",
        Class::Extra => "extra in Zuora",
        Class::Changed => "changed in the model",
        Class::Gone => "gone from the model",
        Class::New => "new (not sent yet)",
        Class::Unverified => "delivered, not verifiable",
    }
}

/// What each class asks of a person.
fn advice(class: Class) -> &'static str {
    match class {
        Class::Equal | Class::Unverified => "",
        Class::Missing => {
            "delivered, not in Zuora (deleted, or a usage file never uploaded); `--repair missing` offers them again on the next run"
        }
        Class::Different => {
            "Zuora holds other values than were delivered (edited by hand); correct them in Zuora or in the model"
        }
        Class::Extra => {
            "records dinmo did not send for these accounts, units and dates (another pipeline, a manual upload); never touched"
        }
        Class::Changed => "the model's values changed since they were sent; the next run acts as `on_change` says",
        Class::Gone => "the model no longer has them; Zuora still holds them; the next run acts as `on_delete` says",
        Class::New => "the next run sends them",
    }
}

fn held_words(held: &HeldSource) -> String {
    match held {
        HeldSource::Api {
            records_read,
            unique_keys,
            ..
        } => format!(
            "read from Zuora's API: {records_read} record(s){}",
            if *unique_keys {
                ""
            } else {
                " (this tenant has no UniqueKey on usage: imported rows matched by their values)"
            }
        ),
        HeldSource::Export {
            file,
            records_read,
            unique_keys,
        } => format!(
            "read from the export {file}: {records_read} record(s){}",
            if *unique_keys {
                ""
            } else {
                " (no Unique Key column: rows matched by their values)"
            }
        ),
        HeldSource::Unreadable { reason } => format!("not read back: {reason}"),
    }
}

fn dates(sync: &SyncReconciliation) -> String {
    let mut words = match (&sync.from, &sync.to) {
        (Some(from), Some(to)) => format!("usage dates {from} to {to}"),
        (Some(from), None) => format!("usage dates from {from}"),
        (None, Some(to)) => format!("usage dates to {to}"),
        (None, None) => "nothing delivered".to_string(),
    };
    if let (Some(first), Some(last)) = (sync.runs.first(), sync.runs.last()) {
        words.push_str(&format!(", rows of runs {first} to {last}"));
    }
    words
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// The report's last word: how many rows differ, and, when nothing does, whether that covers
/// every row or only those the destinations could be asked about.
fn verdict(report: &ReconcileReport) -> String {
    match (report.differences(), report.unverified()) {
        (0, 0) => "Everything reconciled matches.".to_string(),
        (0, unverified) => format!(
            "Nothing differs among the rows that could be checked; {unverified} delivered row(s) could not be checked against the destination (see above)."
        ),
        (n, _) => format!("{n} row(s) differ."),
    }
}

/// The records found in Zuora by status (`Pending 3, Processed 6`), when any were.
fn statuses(found: &SyncReconciliation) -> Option<String> {
    let words: Vec<String> = found.statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
    (!words.is_empty()).then(|| words.join(", "))
}

/// The sample rows of `count`'s class, and how many more rows it has.
fn samples<'a>(found: &'a SyncReconciliation, count: &ClassCount) -> (Vec<&'a Compared>, u64) {
    let rows: Vec<&Compared> = found.samples.iter().filter(|r| r.class == count.class).collect();
    let more = count.rows.saturating_sub(rows.len() as u64);
    (rows, more)
}

/// One differing row in words.
fn row_words(row: &Compared) -> String {
    let mut words = format!(
        "{} {} {}",
        or_dash(&row.account),
        or_dash(&row.unit),
        or_dash(&row.start_date)
    );
    match row.class {
        Class::Missing => words.push_str(&format!(" delivered {}", or_dash(&row.delivered_quantity))),
        Class::Different => {
            words.push_str(&format!(
                " delivered {}, Zuora holds {}",
                or_dash(&row.delivered_quantity),
                or_dash(&row.zuora_quantity)
            ));
            for (what, sent, held) in [
                ("account", &row.account, &row.zuora_account),
                ("unit", &row.unit, &row.zuora_unit),
                ("date", &row.start_date, &row.zuora_start_date),
            ] {
                let differs = match what {
                    "unit" => {
                        sent.as_deref().map(str::to_ascii_uppercase) != held.as_deref().map(str::to_ascii_uppercase)
                    }
                    _ => sent != held,
                };
                if differs {
                    words.push_str(&format!(" ({what} {})", or_dash(held)));
                }
            }
        }
        Class::Extra => words.push_str(&format!(" Zuora holds {}", or_dash(&row.zuora_quantity))),
        Class::Changed => words.push_str(&format!(
            " delivered {}, the model now says {}",
            or_dash(&row.delivered_quantity),
            or_dash(&row.model_quantity)
        )),
        Class::Gone => words.push_str(&format!(" delivered {}", or_dash(&row.delivered_quantity))),
        Class::New => words.push_str(&format!(" quantity {}", or_dash(&row.model_quantity))),
        Class::Equal | Class::Unverified => {}
    }
    if let Some(status) = &row.zuora_status {
        words.push_str(&format!(" [{status}]"));
    }
    if let Some(id) = &row.record_id {
        words.push_str(&format!(" record {id}"));
    } else if let Some(carrier) = &row.destination_id {
        words.push_str(&format!(" in {carrier}"));
    }
    if let Some(key) = &row.row_key {
        words.push_str(&format!(" key {key}"));
    }
    words
}

/// The text report.
pub fn text(report: &ReconcileReport) -> String {
    let mut out = String::from("dinmo reconcile\n");
    for sync in &report.syncs {
        out.push_str(&format!("\n  {}\n", sync.sync_id));
        let found = match &sync.result {
            Ok(found) => found,
            Err(error) => {
                out.push_str(&format!("    error: {error}\n"));
                continue;
            }
        };
        out.push_str(&format!(
            "    → {} ({}): {}; {}\n",
            found.destination,
            found.destination_type,
            dates(found),
            held_words(&found.held)
        ));
        for note in &found.notes {
            out.push_str(&format!("    note: {note}\n"));
        }
        let counts: Vec<String> = found
            .classes
            .iter()
            .filter(|c| {
                c.rows > 0 || matches!(c.class, Class::Equal | Class::Missing | Class::Different | Class::Extra)
            })
            .map(|c| format!("{} {}", c.class.as_str(), c.rows))
            .collect();
        out.push_str(&format!("    {}\n", counts.join(" · ")));
        if let Some(statuses) = statuses(found) {
            out.push_str(&format!("    found in Zuora: {statuses}\n"));
        }
        for count in found.classes.iter().filter(|c| c.class.is_difference() && c.rows > 0) {
            out.push_str(&format!(
                "    {} ({} row(s)): {}\n",
                title(count.class),
                count.rows,
                advice(count.class)
            ));
            let (rows, more) = samples(found, count);
            for row in &rows {
                out.push_str(&format!("      {}\n", row_words(row)));
            }
            if more > 0 {
                out.push_str(&format!("      … and {more} more (--out FILE lists every row)\n"));
            }
        }
        push_repair_text(&mut out, sync.repaired, found);
    }
    out.push_str(&format!("\n{}\n", verdict(report)));
    if let Some((path, rows)) = &report.out {
        out.push_str(&format!("{rows} differing row(s) written to {}\n", path.display()));
    }
    out
}

fn push_repair_text(out: &mut String, repaired: u64, found: &SyncReconciliation) {
    if repaired > 0 {
        out.push_str(&format!(
            "    repaired: {repaired} missing row(s) returned to new; the next run sends them again\n"
        ));
    } else if !found.repairable.is_empty() {
        out.push_str(&format!(
            "    `--repair missing` would return {} row(s) to new\n",
            found.repairable.len()
        ));
    }
    if found.not_repairable > 0 {
        out.push_str(&format!(
            "    {} missing row(s) are held in part (a correction of them is in Zuora); left as they are\n",
            found.not_repairable
        ));
    }
}

fn md(value: &str) -> String {
    value.replace('|', "\\|")
}

/// The markdown report: per sync, the classes, totals by account and unit, the differences.
pub fn markdown(report: &ReconcileReport) -> String {
    let mut out = String::from("## dinmo reconcile\n");
    out.push_str(&match report.differences() {
        0 => format!("\n{}\n", verdict(report)),
        _ => format!("\n**{}**\n", verdict(report)),
    });
    for sync in &report.syncs {
        out.push_str(&format!("\n### `{}`\n\n", sync.sync_id));
        let found = match &sync.result {
            Ok(found) => found,
            Err(error) => {
                out.push_str(&format!("Error: {}\n", md(error)));
                continue;
            }
        };
        out.push_str(&format!(
            "To `{}` ({}): {}; {}.\n\n",
            found.destination,
            found.destination_type,
            dates(found),
            md(&held_words(&found.held))
        ));
        for note in &found.notes {
            out.push_str(&format!("Note: {}.\n\n", md(note)));
        }
        out.push_str("| class | rows | delivered quantity | quantity in Zuora |\n| --- | ---: | ---: | ---: |\n");
        for count in found.classes.iter().filter(|c| c.rows > 0 || c.class == Class::Equal) {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                title(count.class),
                count.rows,
                or_dash(&count.delivered_quantity),
                or_dash(&count.zuora_quantity)
            ));
        }
        if let Some(statuses) = statuses(found) {
            out.push_str(&format!("\nFound in Zuora: {statuses}.\n"));
        }
        if !found.totals.is_empty() {
            out.push_str("\n| account | unit | delivered | in Zuora | in the warehouse | rows differing |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
            for total in &found.totals {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    md(or_dash(&total.account)),
                    md(or_dash(&total.unit)),
                    or_dash(&total.delivered),
                    or_dash(&total.in_zuora),
                    or_dash(&total.in_warehouse),
                    total.differing_rows
                ));
            }
        }
        for count in found.classes.iter().filter(|c| c.class.is_difference() && c.rows > 0) {
            out.push_str(&format!(
                "\n#### {} — {} row(s)\n\n{}.\n\n",
                title(count.class),
                count.rows,
                advice(count.class)
            ));
            out.push_str("| account | unit | date | delivered | in Zuora | model now | status | record | row key |\n| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |\n");
            let (rows, more) = samples(found, count);
            for row in &rows {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | `{}` |\n",
                    md(or_dash(&row.account)),
                    md(or_dash(&row.unit)),
                    or_dash(&row.start_date),
                    or_dash(&row.delivered_quantity),
                    or_dash(&row.zuora_quantity),
                    or_dash(&row.model_quantity),
                    or_dash(&row.zuora_status),
                    md(row
                        .record_id
                        .as_deref()
                        .or(row.destination_id.as_deref())
                        .unwrap_or("-")),
                    or_dash(&row.row_key)
                ));
            }
            if more > 0 {
                out.push_str(&format!("\n… and {more} more (`--out FILE` lists every row).\n"));
            }
        }
        let mut repair = String::new();
        push_repair_text(&mut repair, sync.repaired, found);
        if !repair.is_empty() {
            out.push('\n');
            out.push_str(repair.trim_start());
        }
    }
    out
}

/// The JSON report (`format_version` 1; layout in docs/cli-reference.md).
pub fn json(report: &ReconcileReport) -> Result<String> {
    #[derive(Serialize)]
    struct Sync<'a> {
        sync_id: String,
        #[serde(flatten)]
        found: Option<&'a SyncReconciliation>,
        repaired: u64,
        error: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Report<'a> {
        format_version: u32,
        differences: u64,
        syncs: Vec<Sync<'a>>,
        out: Option<(String, u64)>,
    }
    let value = Report {
        format_version: 1,
        differences: report.differences(),
        syncs: report
            .syncs
            .iter()
            .map(|s| Sync {
                sync_id: s.sync_id.to_string(),
                found: s.result.as_ref().ok(),
                repaired: s.repaired,
                error: s.result.as_ref().err().map(String::as_str),
            })
            .collect(),
        out: report.out.as_ref().map(|(p, n)| (p.display().to_string(), *n)),
    };
    serde_json::to_string_pretty(&value)
        .map(|text| text + "\n")
        .map_err(|source| DinmoError::Json {
            what: "the reconcile report".into(),
            source,
        })
}
