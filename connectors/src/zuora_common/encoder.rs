//! Encodes usage rows into CSV files that respect Zuora's limits: a size bound per file,
//! names of at most 50 characters, and optionally one CSV per ZIP.

use crate::ids::RunId;
use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

pub use crate::error::EncodeError;

/// The most a file's buffer reserves up front; larger files grow as they fill.
const MAX_RESERVE: usize = 64 * 1024 * 1024;

/// Zuora refuses usage file names longer than this, extension included.
pub const MAX_FILE_NAME_CHARS: usize = 50;

/// A finished file, ready to be stored under `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFile {
    /// File name (≤ 50 characters, `.csv` or `.zip`).
    pub name: String,
    /// File contents.
    pub bytes: Vec<u8>,
    /// Usage rows in the file (the header excluded).
    pub rows: usize,
}

/// Builds usage files one row at a time, starting a new file whenever the next row would
/// push the current one past the size bound.
#[derive(Debug)]
pub struct UsageFileEncoder {
    header: Vec<u8>,
    max_bytes: u64,
    zip: bool,
    stem: String,
    run_id: String,
    next_sequence: u32,
    current: Vec<u8>,
    current_rows: usize,
    /// The row being encoded by [`UsageFileEncoder::push`], reused across rows.
    row: Vec<u8>,
}

impl UsageFileEncoder {
    /// `stem` names the files (usually the model), shortened as needed to fit the run id and
    /// sequence number within Zuora's 50 characters.
    pub fn new(headers: &[&str], max_bytes: u64, zip: bool, stem: &str, run_id: &RunId) -> Result<Self, EncodeError> {
        let mut header = Vec::new();
        write_csv_record(&mut header, headers.iter().copied());
        Ok(UsageFileEncoder {
            header,
            max_bytes,
            zip,
            stem: sanitize(stem),
            run_id: sanitize(run_id),
            next_sequence: 1,
            current: Vec::new(),
            current_rows: 0,
            row: Vec::new(),
        })
    }

    /// The name the file with `sequence` gets.
    pub fn file_name(&self, sequence: u32) -> String {
        file_name(&self.stem, &self.run_id, sequence, if self.zip { "zip" } else { "csv" })
    }

    /// The sequence number of the file the next row goes into, were it to fit.
    pub fn open_sequence(&self) -> u32 {
        self.next_sequence
    }

    /// Adds a row. When it does not fit in the open file, that file is finished first and
    /// returned, and the row starts the next one. Returns the sequence number of the file
    /// that holds the row.
    pub fn push<'a>(
        &mut self,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<(u32, Option<EncodedFile>), EncodeError> {
        let mut row = std::mem::take(&mut self.row);
        row.clear();
        write_csv_record(&mut row, fields);
        let pushed = self.push_encoded(&row);
        self.row = row;
        pushed
    }

    /// [`UsageFileEncoder::push`] for a row already encoded as one CSV record (terminator
    /// included), e.g. by [`write_csv_field`] on another thread.
    pub fn push_encoded(&mut self, row: &[u8]) -> Result<(u32, Option<EncodedFile>), EncodeError> {
        let row_bytes = row.len();
        if (self.header.len() + row_bytes) as u64 > self.max_bytes {
            return Err(EncodeError::RowTooLarge {
                row_bytes,
                max_bytes: self.max_bytes,
            });
        }
        let mut finished = None;
        if self.current_rows > 0 && (self.current.len() + row_bytes) as u64 > self.max_bytes {
            finished = self.finish_file()?;
        }
        if self.current_rows == 0 {
            // Room for the whole file at once: grown by doubling, a 4 MB file was copied
            // eleven times over (memmove was the largest item of a first run's profile).
            self.current
                .reserve(usize::try_from(self.max_bytes).unwrap_or(0).min(MAX_RESERVE));
            self.current.extend_from_slice(&self.header);
        }
        self.current.extend_from_slice(row);
        self.current_rows += 1;
        Ok((self.next_sequence, finished))
    }

    /// [`UsageFileEncoder::push_encoded`] for consecutive records at once: the records are
    /// `bytes[start..ends[0]]`, then `bytes[ends[0]..ends[1]]`, and so on. Takes as many leading
    /// records as the open file has room for (finishing it first when not even the first
    /// fits) and copies them in one piece. Returns how many it took, the sequence of the file
    /// holding them, and the file it finished, if any.
    pub fn push_encoded_many(
        &mut self,
        bytes: &[u8],
        start: usize,
        ends: &[usize],
    ) -> Result<(usize, u32, Option<EncodedFile>), EncodeError> {
        let Some(&first_end) = ends.first() else {
            return Ok((0, self.next_sequence, None));
        };
        let (sequence, finished) = self.push_encoded(&bytes[start..first_end])?;
        let room = usize::try_from(self.max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.current.len());
        // Records after the first that still fit: their bytes beyond the first's end.
        let more = ends[1..].partition_point(|&end| end - first_end <= room);
        if more > 0 {
            self.current.extend_from_slice(&bytes[first_end..ends[more]]);
            self.current_rows += more;
        }
        Ok((1 + more, sequence, finished))
    }

    /// Finishes the open file, if it holds any row.
    pub fn finish_file(&mut self) -> Result<Option<EncodedFile>, EncodeError> {
        if self.current_rows == 0 {
            return Ok(None);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let csv = std::mem::take(&mut self.current);
        let rows = std::mem::take(&mut self.current_rows);
        let name = self.file_name(sequence);
        let bytes = if self.zip {
            let inner = file_name(&self.stem, &self.run_id, sequence, "csv");
            zip_one(&inner, &csv)?
        } else {
            csv
        };
        Ok(Some(EncodedFile { name, bytes, rows }))
    }
}

/// The record terminator of usage files.
pub const CSV_TERMINATOR: &[u8] = b"\r\n";

/// Appends one CSV record (fields and terminator) to `out`; see [`write_csv_field`].
pub fn write_csv_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a str>) {
    let start = out.len();
    let mut count = 0;
    for field in fields {
        if count > 0 {
            out.push(b',');
        }
        write_csv_field(out, "", field);
        count += 1;
    }
    if count == 1 && out.len() == start {
        // A record of one empty field is written `""`, or it would read as a blank line.
        out.extend_from_slice(b"\"\"");
    }
    out.extend_from_slice(CSV_TERMINATOR);
}

/// Appends `prefix` then `text` to `out` as one CSV field: quoted when it holds a comma, a
/// double quote or a line break, with quotes doubled (RFC 4180, and what the csv crate's
/// `QuoteStyle::Necessary` writes, which a unit test compares this with). Written by hand
/// because the csv crate's writer owns its sink: encoding a row apart from the file it lands
/// in took a shared buffer and a lock per write (7 % of a run in the profile).
pub fn write_csv_field(out: &mut Vec<u8>, prefix: &str, text: &str) {
    let special = |b: &u8| matches!(b, b',' | b'"' | b'\r' | b'\n');
    let quote = prefix.as_bytes().iter().any(special) || text.as_bytes().iter().any(special);
    if !quote {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(text.as_bytes());
        return;
    }
    out.push(b'"');
    for part in [prefix, text] {
        for (i, piece) in part.split('"').enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\"\"");
            }
            out.extend_from_slice(piece.as_bytes());
        }
    }
    out.push(b'"');
}

fn zip_one(inner_name: &str, csv: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    // No clock: the entry carries the format's fixed default time, so output is reproducible.
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file(inner_name, options)?;
    zip.write_all(csv)?;
    let cursor = zip.finish()?;
    Ok(cursor.into_inner())
}

/// Keeps letters, digits, `-` and `_`; everything else becomes `_`.
fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// `<stem>_<run>_<sequence>.<ext>`, the stem shortened so the name has at most 50 characters.
/// The run id is never shortened: it is what makes names unique across runs.
pub fn file_name(stem: &str, run_id: &str, sequence: u32, extension: &str) -> String {
    let tail = format!("_{run_id}_{sequence:04}.{extension}");
    let room = MAX_FILE_NAME_CHARS.saturating_sub(tail.len());
    let stem: String = stem.chars().take(room).collect();
    let name = if stem.is_empty() {
        tail.trim_start_matches('_').to_string()
    } else {
        format!("{stem}{tail}")
    };
    name.chars().take(MAX_FILE_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    const RUN: &str = "20261121T150600Z-9f3a";

    fn row(i: usize) -> Vec<String> {
        vec![
            format!("A{i:05}"),
            "API_CALL".into(),
            "2026-11-21T00:00:00".into(),
            format!("{i}"),
        ]
    }

    #[test]
    fn names_never_exceed_fifty_characters() {
        let long = "a_model_with_a_really_quite_remarkably_long_name_indeed";
        let name = file_name(long, RUN, 1, "csv");
        assert_eq!(name.len(), MAX_FILE_NAME_CHARS);
        assert_eq!(name, "a_model_with_a_real_20261121T150600Z-9f3a_0001.csv");
        assert_eq!(
            file_name("calls", RUN, 12345, "zip"),
            "calls_20261121T150600Z-9f3a_12345.zip"
        );
        assert!(file_name(long, RUN, u32::MAX, "zip").len() <= MAX_FILE_NAME_CHARS);
    }

    #[test]
    fn splits_before_a_file_would_exceed_the_bound() {
        let headers = ["AccountNumber", "UnitOfMeasure", "StartDateTime", "Quantity"];
        let mut encoder = UsageFileEncoder::new(&headers, 200, false, "calls", &RunId::from(RUN)).unwrap();
        let mut files = Vec::new();
        for i in 0..20 {
            let fields = row(i);
            let (_, finished) = encoder.push(fields.iter().map(String::as_str)).unwrap();
            files.extend(finished);
        }
        files.extend(encoder.finish_file().unwrap());
        assert!(files.len() > 1, "expected a split, got {} file(s)", files.len());
        assert_eq!(files.iter().map(|f| f.rows).sum::<usize>(), 20);
        for (i, file) in files.iter().enumerate() {
            assert!(file.bytes.len() <= 200, "{} has {} bytes", file.name, file.bytes.len());
            let text = String::from_utf8(file.bytes.clone()).unwrap();
            assert!(text.starts_with("AccountNumber,UnitOfMeasure,StartDateTime,Quantity\r\n"));
            assert_eq!(file.name, file_name("calls", RUN, i as u32 + 1, "csv"));
        }
    }

    #[test]
    fn records_placed_many_at_a_time_make_the_same_files_as_one_at_a_time() {
        let headers = ["AccountNumber", "UnitOfMeasure", "StartDateTime", "Quantity"];
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for i in 0..50 {
            let fields = row(i * 7919);
            write_csv_record(&mut bytes, fields.iter().map(String::as_str));
            ends.push(bytes.len());
        }
        let mut one = UsageFileEncoder::new(&headers, 300, false, "calls", &RunId::from(RUN)).unwrap();
        let mut one_files = Vec::new();
        let mut start = 0;
        for &end in &ends {
            one_files.extend(one.push_encoded(&bytes[start..end]).unwrap().1);
            start = end;
        }
        one_files.extend(one.finish_file().unwrap());

        let mut many = UsageFileEncoder::new(&headers, 300, false, "calls", &RunId::from(RUN)).unwrap();
        let mut many_files = Vec::new();
        let (mut taken, mut start, mut calls) = (0, 0, 0);
        while taken < ends.len() {
            let (count, sequence, finished) = many.push_encoded_many(&bytes, start, &ends[taken..]).unwrap();
            assert!(count > 0);
            assert_eq!(sequence, many.open_sequence(), "the records are in the open file");
            many_files.extend(finished);
            taken += count;
            start = ends[taken - 1];
            calls += 1;
        }
        many_files.extend(many.finish_file().unwrap());
        assert!(one_files.len() > 2, "{} file(s)", one_files.len());
        assert_eq!(many_files, one_files);
        assert_eq!(calls, many_files.len(), "one call per file");

        let mut small = UsageFileEncoder::new(&headers, 60, false, "calls", &RunId::from(RUN)).unwrap();
        assert!(
            matches!(
                small.push_encoded_many(&bytes, 0, &ends),
                Err(EncodeError::RowTooLarge { .. })
            ),
            "a record larger than a file is refused, as one at a time"
        );
    }

    #[test]
    fn quotes_fields_that_need_it() {
        let mut encoder = UsageFileEncoder::new(&["Description"], 1000, false, "m", &RunId::from(RUN)).unwrap();
        encoder.push(["says \"hi\", twice\nthen stops"]).unwrap();
        let file = encoder.finish_file().unwrap().unwrap();
        assert_eq!(
            String::from_utf8(file.bytes).unwrap(),
            "Description\r\n\"says \"\"hi\"\", twice\nthen stops\"\r\n"
        );
    }

    #[test]
    fn fields_are_written_as_the_csv_crate_writes_them() {
        let tricky = [
            "",
            "plain",
            "a,b",
            "say \"hi\"",
            "\"",
            "line\nbreak",
            "cr\rhere",
            "crlf\r\n",
            " spaced ",
            "é,ü",
            "'single'",
            "#hash",
            "tab\there",
        ];
        let records: Vec<Vec<&str>> = tricky
            .iter()
            .map(|&t| vec![t])
            .chain(tricky.windows(3).map(|w| w.to_vec()))
            .chain([vec!["", ""], vec!["", "x"]])
            .collect();
        for record in records {
            let mut ours = Vec::new();
            write_csv_record(&mut ours, record.iter().copied());
            let mut theirs = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new());
            theirs.write_record(&record).unwrap();
            let theirs = theirs.into_inner().unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "{record:?}"
            );
        }
        let mut prefixed = Vec::new();
        write_csv_field(&mut prefixed, "AccountNumber:", "A,1");
        assert_eq!(prefixed, b"\"AccountNumber:A,1\"");
    }

    #[test]
    fn refuses_a_row_that_cannot_fit_anywhere() {
        let mut encoder = UsageFileEncoder::new(&["Description"], 20, false, "m", &RunId::from(RUN)).unwrap();
        let err = encoder.push(["x".repeat(40).as_str()]).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::RowTooLarge {
                row_bytes: 42,
                max_bytes: 20
            }
        ));
    }

    #[test]
    fn zips_one_csv_per_archive() {
        let mut encoder = UsageFileEncoder::new(&["AccountNumber"], 1000, true, "calls", &RunId::from(RUN)).unwrap();
        encoder.push(["A1"]).unwrap();
        let file = encoder.finish_file().unwrap().unwrap();
        assert!(file.name.ends_with(".zip"));
        let mut archive = zip::ZipArchive::new(Cursor::new(file.bytes)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "calls_20261121T150600Z-9f3a_0001.csv");
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        assert_eq!(text, "AccountNumber\r\nA1\r\n");
    }
}
