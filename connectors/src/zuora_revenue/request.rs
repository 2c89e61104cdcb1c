//! Building an upload: the "RevPro Usage Upload" CSV (UTF-8, a header line of template labels,
//! then one line per row) and its name, both deterministic for a sync, run and part, so a
//! replay produces the very same file and the journal can tell it is the same.

use crate::ids::{RunId, SyncId};
use xxhash_rust::xxh3::Xxh3;

use crate::zuora_common::encoder::write_csv_record;

/// The name of part `sequence` of a run: `<sync>-<run>-<NNNN>.csv`. Revenue lists uploads by
/// file name under Uploaded Files, so a person can find any file dinmo sent.
pub fn file_name(sync_id: &SyncId, run_id: &RunId, sequence: u32) -> String {
    format!("{sync_id}-{run_id}-{sequence:04}.csv")
}

/// A CSV being filled, up to `max_lines` data lines.
pub struct OpenFile {
    /// Its part number in the run, from 1.
    pub sequence: u32,
    bytes: Vec<u8>,
    keys: Xxh3,
    /// The rows it carries: (batch number in the run, row in the batch).
    pub members: Vec<(u64, u32)>,
}

/// A finished file.
#[derive(Debug, Clone)]
pub struct ReadyFile {
    /// Its part number in the run.
    pub sequence: u32,
    /// Its name.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// xxh3 of its row keys, in order (hex).
    pub keys_hash: String,
    /// The rows it carries.
    pub members: Vec<(u64, u32)>,
}

impl ReadyFile {
    /// Data lines.
    pub fn rows(&self) -> u64 {
        self.members.len() as u64
    }
}

impl std::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFile")
            .field("sequence", &self.sequence)
            .field("lines", &self.members.len())
            .finish()
    }
}

impl OpenFile {
    /// A file whose first line is `headers` (CSV as the usage files write it).
    pub fn new<'a>(sequence: u32, headers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut bytes = Vec::with_capacity(1 << 20);
        write_csv_record(&mut bytes, headers);
        OpenFile {
            sequence,
            bytes,
            keys: Xxh3::new(),
            members: Vec::new(),
        }
    }

    /// Appends one row (`key` is its row key).
    pub fn push<'a>(&mut self, member: (u64, u32), key: &str, cells: impl IntoIterator<Item = &'a str>) {
        write_csv_record(&mut self.bytes, cells);
        self.keys.update(key.as_bytes());
        self.keys.update(b"\n");
        self.members.push(member);
    }

    /// Data lines so far.
    pub fn lines(&self) -> usize {
        self.members.len()
    }

    /// Closes the file under its name.
    pub fn finish(self, name: String) -> ReadyFile {
        ReadyFile {
            sequence: self.sequence,
            name,
            bytes: self.bytes,
            keys_hash: format!("{:032x}", self.keys.digest128()),
            members: self.members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_rows_make_the_same_file() {
        let build = || {
            let mut file = OpenFile::new(1, ["SO Line ID", "Sub Product"]);
            file.push((0, 0), "k1", ["SO-1", "API, premium"]);
            file.push((0, 1), "k2", ["SO-2", "Storage"]);
            file.finish(file_name(
                &"usage.revenue".into(),
                &"20261122T000000000Z-ab12".into(),
                1,
            ))
        };
        let (a, b) = (build(), build());
        assert_eq!((a.bytes.clone(), a.keys_hash.clone()), (b.bytes, b.keys_hash));
        assert_eq!(a.name, "usage.revenue-20261122T000000000Z-ab12-0001.csv");
        assert_eq!(
            String::from_utf8(a.bytes.clone()).unwrap(),
            "SO Line ID,Sub Product\r\nSO-1,\"API, premium\"\r\nSO-2,Storage\r\n"
        );
        assert_eq!(a.rows(), 2);
    }
}
