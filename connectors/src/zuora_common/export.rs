//! A usage export downloaded from Zuora (Reporting > Data Sources > Usage, or the usage list's
//! export), read as the records Zuora holds, for `dinmo reconcile --zuora-export`.
//!
//! Zuora documents the Usage data source's fields by label (docs/zuora.md, "Reading usage
//! back"): `Account Number`, `ID`, `Import ID`, `Quantity`, `RBS Status`, `Start Date`,
//! `Unit of Measure`, `Unique Key` (Prepaid with Drawdown only), among others. A data source
//! export names each column `<Object>: <Label>` (`Usage: Quantity`, `Account: Account
//! Number`); how a given tenant spells them is not documented exactly, so a header is matched
//! without its object prefix, case, spaces or underscores, and the API names (`AccountNumber`,
//! `UOM`, `StartDateTime`, `RbeStatus`, `UniqueKey`, `ImportId`) are taken too. A column
//! prefixed by another object than `Usage` (`Account: ID`) is never taken for a usage field.
//!
//! Dates must be ISO 8601 (`2026-01-31`, `2026-01-31T00:00:00`); a locale's `01/31/2026` is
//! refused rather than guessed, since `01/02/2026` reads two ways.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;

use crate::destination::{HOLDING_COLUMNS, HoldingsSink, holdings_schema};
use crate::error::{ConnectorError, Result};

/// Rows handed on at a time.
const BATCH_ROWS: usize = 8_192;

/// The names (normalised: lower case, no spaces or underscores) each holding column is
/// found under, in [`HOLDING_COLUMNS`] order, and whether the export must have it.
const NAMES: [(&[&str], bool); 8] = [
    (&["id"], false),
    (&["accountnumber"], true),
    (&["unitofmeasure", "uom"], true),
    (&["startdate", "startdatetime"], true),
    (&["quantity", "qty"], true),
    (&["rbsstatus", "rbestatus", "status"], false),
    (&["uniquekey"], false),
    (&["importid"], false),
];

/// A header's object prefix (`usage`, `account`, or none) and its normalised name.
fn split_header(header: &str) -> (Option<String>, String) {
    let header = header.trim().trim_start_matches('\u{feff}');
    let (object, name) = match header.split_once(':').or_else(|| header.split_once('.')) {
        Some((object, name)) => (Some(object.trim().to_ascii_lowercase()), name),
        None => (None, header),
    };
    let name = name
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    (object, name)
}

/// Which column of `headers` holds each holding column (`None`: the export lacks it).
fn locate(headers: &[String]) -> [Option<usize>; 8] {
    let split: Vec<(Option<String>, String)> = headers.iter().map(|h| split_header(h)).collect();
    let mut found = [None; 8];
    for (slot, (names, _)) in found.iter_mut().zip(NAMES) {
        // A Usage-prefixed or unprefixed column, first; `Account: Account Number` is the
        // account's number and is taken for the account too.
        *slot = split
            .iter()
            .position(|(object, name)| names.contains(&name.as_str()) && object.as_deref().is_none_or(|o| o == "usage"))
            .or_else(|| {
                names.contains(&"accountnumber").then(|| {
                    split
                        .iter()
                        .position(|(object, name)| object.as_deref() == Some("account") && name == "accountnumber")
                })?
            });
    }
    found
}

/// Whether `text` starts with an ISO date (`YYYY-MM-DD`).
fn iso_date(text: &str) -> bool {
    text.get(..10)
        .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
}

/// Reads the export at `path` into `sink`, a batch of
/// [`holdings_schema`](crate::destination::holdings_schema) at a time. Returns whether it
/// carries `Unique Key`.
pub fn read_usage_export(path: &Path, sink: &mut HoldingsSink<'_>) -> Result<bool> {
    let file = path.display().to_string();
    let fail = |message: String| ConnectorError::UsageExport {
        file: file.clone(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| fail(format!("cannot open it: {e}")))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| fail(format!("cannot read its header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let columns = locate(&headers);
    let missing: Vec<&str> = NAMES
        .iter()
        .zip(columns)
        .zip(HOLDING_COLUMNS)
        .filter(|(((_, required), found), _)| *required && found.is_none())
        .map(|(((names, _), _), _)| names[0])
        .collect();
    if !missing.is_empty() {
        return Err(fail(format!(
            "it has no column for {} (its columns: {}); export the Usage data source with Account Number, Unit of Measure, Start Date and Quantity",
            missing.join(", "),
            headers.join(", ")
        )));
    }
    let mut rows: Vec<[Option<String>; 8]> = Vec::with_capacity(BATCH_ROWS);
    for (line, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = line + 2;
        let record = record.map_err(|e| fail(format!("line {line}: {e}")))?;
        let mut row: [Option<String>; 8] = Default::default();
        for (value, column) in row.iter_mut().zip(columns) {
            *value = column
                .and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string);
        }
        let header = |slot: usize| columns[slot].map_or("?", |c| headers[c].as_str());
        // A record without its account or unit could be matched to nothing and counted nowhere.
        for slot in [1, 2] {
            if row[slot].is_none() {
                return Err(fail(format!("line {line}: `{}` is empty", header(slot))));
            }
        }
        match &row[3] {
            Some(start) if iso_date(start) => {}
            other => {
                return Err(fail(format!(
                    "line {line}: `{}` is {:?}, not an ISO date (YYYY-MM-DD); export dates in ISO 8601",
                    header(3),
                    other.as_deref().unwrap_or("empty")
                )));
            }
        }
        match &row[4] {
            Some(quantity) if quantity.replace(',', "").parse::<f64>().is_ok() => {
                // Thousands separators are the export's formatting, not the number.
                row[4] = Some(quantity.replace(',', ""));
            }
            other => {
                return Err(fail(format!(
                    "line {line}: `{}` is {:?}, not a number",
                    header(4),
                    other.as_deref().unwrap_or("empty")
                )));
            }
        }
        rows.push(row);
        if rows.len() == BATCH_ROWS {
            sink(batch(&rows, &file)?)?;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        sink(batch(&rows, &file)?)?;
    }
    Ok(columns[6].is_some())
}

fn batch(rows: &[[Option<String>; 8]], file: &str) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = (0..HOLDING_COLUMNS.len())
        .map(|c| Arc::new(StringArray::from_iter(rows.iter().map(|r| r[c].clone()))) as ArrayRef)
        .collect();
    RecordBatch::try_new(holdings_schema(), columns).map_err(|source| ConnectorError::Convert {
        destination: file.to_string(),
        column: "usage export".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<(Vec<RecordBatch>, bool)> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("usage.csv");
        std::fs::write(&path, text).expect("written");
        let mut batches = Vec::new();
        let keys = read_usage_export(&path, &mut |b| {
            batches.push(b);
            Ok(())
        })?;
        Ok((batches, keys))
    }

    fn column(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        use arrow::array::AsArray;
        batch
            .column_by_name(name)
            .expect("a holdings column")
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn data_source_labels_with_object_prefixes_are_read() {
        let (batches, keys) = read(
            "Account: ID,Account: Account Number,Usage: ID,Usage: Unit of Measure,Usage: Start Date,Usage: Quantity,Usage: RBS Status\n\
             2c9,A-1,8a1,API_CALL,2026-01-05,\"1,200.5\",Pending\n",
        )
        .expect("read");
        assert!(!keys);
        let batch = &batches[0];
        assert_eq!(
            column(batch, "id"),
            vec![Some("8a1".to_string())],
            "the usage's id, not the account's"
        );
        assert_eq!(column(batch, "account"), vec![Some("A-1".to_string())]);
        assert_eq!(column(batch, "quantity"), vec![Some("1200.5".to_string())]);
        assert_eq!(column(batch, "status"), vec![Some("Pending".to_string())]);
    }

    #[test]
    fn api_names_are_read_too() {
        let (batches, keys) =
            read("AccountNumber,UOM,StartDateTime,Quantity,UniqueKey\nA-1,GB,2026-01-05T00:00:00,3,k1\n")
                .expect("read");
        assert!(keys);
        assert_eq!(column(&batches[0], "unique_key"), vec![Some("k1".to_string())]);
    }

    #[test]
    fn a_missing_column_or_a_locale_date_is_refused_by_name() {
        let missing = read("Account Number,Quantity\nA-1,3\n").unwrap_err().to_string();
        assert!(
            missing.contains("unitofmeasure") && missing.contains("Account Number, Quantity"),
            "{missing}"
        );
        let date = read("Account Number,Unit of Measure,Start Date,Quantity\nA-1,GB,01/02/2026,3\n")
            .unwrap_err()
            .to_string();
        assert!(
            date.contains("line 2") && date.contains("01/02/2026") && date.contains("ISO"),
            "{date}"
        );
        let empty = read("Account Number,Unit of Measure,Start Date,Quantity\nA-1,,2026-01-02,3\n")
            .unwrap_err()
            .to_string();
        assert!(empty.contains("line 2: `Unit of Measure` is empty"), "{empty}");
        let number = read("Account Number,Unit of Measure,Start Date,Quantity\nA-1,GB,2026-01-02,three\n")
            .unwrap_err()
            .to_string();
        assert!(number.contains("not a number"), "{number}");
    }
}
