//! The upload journal: what dinmo told Revenue, recorded before and after each upload, so a
//! run that stopped half way never uploads a file twice. Revenue has no duplicate detection
//! and no undo (docs/zuora.md, "Zuora Revenue"), so this record is the only protection.
//!
//! One JSON object per upload, `<journal>/<run>/<file name>.json`, in the state store beside
//! the sync's snapshot. Its `stage` moves `intent` (written before the request) → `received`
//! (Revenue's answer named a request id) → `staged`, `partial` (an asynchronous upload whose
//! rejected rows are listed), `failed` (the status call said so) or `undecided` (which of its
//! rows Revenue took cannot be told: a person answers for it).
//! Each write is one atomic put.

use crate::ids::RunId;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::destination::OutputLocation;
use crate::error::{ConnectorError, Result};

/// How far an upload got, as far as dinmo knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stage")]
pub enum Stage {
    /// About to be sent; whether Revenue received it is unknown until a later stage is
    /// recorded.
    Intent,
    /// Revenue received it under this request id.
    Received { request_id: String },
    /// Revenue staged it.
    Staged { request_id: String },
    /// A person found it in Revenue's Uploaded Files list (`dinmo state resolve-pending
    /// --sent`).
    SentByHand,
    /// Revenue refused or failed it whole, with its message.
    Failed {
        request_id: Option<String>,
        message: String,
    },
    /// An asynchronous upload Revenue took in part: every row but `rejected` (data lines,
    /// counted from 0, each with Revenue's `error_message`) is in the staging tables.
    Partial {
        request_id: String,
        rejected: Vec<(u64, String)>,
    },
    /// Revenue received an asynchronous upload, but which of its rows it took cannot be told
    /// (counts that do not add up to the file, rejected rows that match no line). It is neither uploaded nor asked about again:
    /// a person answers for it, as for [`Stage::Intent`] (`dinmo state resolve-pending
    /// --file … --sent|--not-sent`).
    Undecided { request_id: String, reason: String },
}

impl Stage {
    /// Whether a person must say what became of the upload: dinmo cannot learn it.
    pub fn undecided(&self) -> bool {
        matches!(self, Stage::Intent | Stage::Undecided { .. })
    }
}

/// One upload's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The file's name, as Revenue lists it under Uploaded Files.
    pub file: String,
    /// The template it was uploaded through.
    pub template: String,
    /// Data lines in the file.
    pub rows: u64,
    /// xxh3 of the row keys in file order: the same name must carry the same rows.
    pub keys_hash: String,
    /// Sent with `async=true`: its status and rejected rows are read from the asynchronous
    /// endpoints. Absent in records written before asynchronous uploads: synchronous.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asynchronous: bool,
    /// How far it got.
    #[serde(flatten)]
    pub stage: Stage,
}

/// The journal of one sync, in the location the engine gave the writer.
#[derive(Debug, Clone)]
pub struct Journal {
    location: OutputLocation,
    destination: String,
}

impl Journal {
    /// The journal kept in `location`.
    pub fn new(destination: &str, location: OutputLocation) -> Self {
        Journal {
            location,
            destination: destination.to_string(),
        }
    }

    fn path(&self, run: &RunId, file: &str) -> Path {
        self.location
            .prefix
            .clone()
            .join(run.as_str())
            .join(format!("{file}.json"))
    }

    /// Where the record of `file` is kept, for messages.
    pub fn display(&self, run: &RunId, file: &str) -> String {
        format!("{}/{run}/{file}.json", self.location.display.trim_end_matches('/'))
    }

    /// The record of `file` in run `run`, if one was written.
    pub async fn read(&self, run: &RunId, file: &str) -> Result<Option<UploadRecord>> {
        let path = self.path(run, file);
        let bytes = match self.location.store.get(&path).await {
            Ok(found) => found.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(other) => Err(other),
        }
        .map_err(|source| ConnectorError::JournalRead {
            destination: self.destination.clone(),
            path: self.display(run, file),
            source,
        })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ConnectorError::JournalFormat {
                destination: self.destination.clone(),
                path: self.display(run, file),
                source,
            })
    }

    /// Records `record` (replacing the earlier stage).
    pub async fn write(&self, run: &RunId, record: &UploadRecord) -> Result<()> {
        let path = self.path(run, &record.file);
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| ConnectorError::JournalFormat {
            destination: self.destination.clone(),
            path: self.display(run, &record.file),
            source,
        })?;
        self.location
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|source| ConnectorError::Write {
                destination: self.destination.clone(),
                path,
                source,
            })?;
        Ok(())
    }
}

impl Journal {
    /// Removes the record of `file`: the upload certainly never reached Revenue (the
    /// connection was never made, or Revenue turned it away before reading it), so it may be
    /// sent again.
    pub async fn forget(&self, run: &RunId, file: &str) -> Result<()> {
        let path = self.path(run, file);
        match self.location.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(ConnectorError::Write {
                destination: self.destination.clone(),
                path,
                source,
            }),
        }
    }
}

pub use crate::destination::Resolution;

/// `dinmo state resolve-pending SYNC RUN [--file NAME] --sent|--not-sent` for uploads whose
/// outcome is unknown: the `intent` record of `file` (or the only one of the run) becomes
/// `sent_by_hand` (`sent`) or is removed (not sent, so the next run uploads it).
pub async fn resolve_intents(
    location: OutputLocation,
    run: &RunId,
    file: Option<&str>,
    sent: bool,
) -> Result<Resolution> {
    use futures::TryStreamExt;
    let journal = Journal::new("resolve-pending", location);
    let folder = journal.location.prefix.clone().join(run.as_str());
    let listed: Vec<_> = journal
        .location
        .store
        .list(Some(&folder))
        .try_collect()
        .await
        .map_err(|source| ConnectorError::JournalRead {
            destination: journal.destination.clone(),
            path: format!("{}/{run}/", journal.location.display.trim_end_matches('/')),
            source,
        })?;
    let mut undecided = Vec::new();
    for object in listed {
        let Some(name) = object.location.filename().and_then(|f| f.strip_suffix(".json")) else {
            continue;
        };
        if let Some(record) = journal.read(run, name).await?
            && record.stage.undecided()
        {
            undecided.push(record);
        }
    }
    undecided.sort_by(|a, b| a.file.cmp(&b.file));
    let names = || undecided.iter().map(|r| r.file.clone()).collect::<Vec<_>>();
    let chosen = match file {
        Some(file) => match undecided.iter().find(|r| r.file == file) {
            Some(record) => record.clone(),
            None => {
                return Ok(Resolution::NotUndecided {
                    file: file.to_string(),
                    undecided: names(),
                });
            }
        },
        None if undecided.len() > 1 => return Ok(Resolution::Ambiguous(names())),
        None => match undecided.first() {
            Some(record) => record.clone(),
            None => return Ok(Resolution::Settled(Vec::new())),
        },
    };
    if sent {
        let mut record = chosen.clone();
        record.stage = Stage::SentByHand;
        journal.write(run, &record).await?;
    } else {
        journal.forget(run, &chosen.file).await?;
    }
    Ok(Resolution::Settled(vec![chosen.file]))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn records_round_trip_and_a_missing_one_reads_as_none() {
        let journal = Journal::new(
            "rev",
            OutputLocation {
                store: Arc::new(InMemory::new()),
                prefix: Path::from("state/m.rev/uploads"),
                display: "mem://state/m.rev/uploads".into(),
            },
        );
        assert_eq!(journal.read(&"r1".into(), "f.csv").await.unwrap(), None);
        let record = UploadRecord {
            file: "f.csv".into(),
            template: "RevPro Usage Upload".into(),
            rows: 3,
            keys_hash: "ab".into(),
            asynchronous: true,
            stage: Stage::Received {
                request_id: "42".into(),
            },
        };
        journal.write(&"r1".into(), &record).await.unwrap();
        assert_eq!(journal.read(&"r1".into(), "f.csv").await.unwrap(), Some(record));
        assert_eq!(
            journal.display(&"r1".into(), "f.csv"),
            "mem://state/m.rev/uploads/r1/f.csv.json"
        );
    }

    #[test]
    fn a_record_written_before_asynchronous_uploads_reads_as_synchronous() {
        let old: UploadRecord = serde_json::from_str(
            r#"{"file":"f.csv","template":"t","rows":2,"keys_hash":"h","stage":"received","request_id":"9"}"#,
        )
        .unwrap();
        assert!(!old.asynchronous);
        let partial = UploadRecord {
            asynchronous: true,
            stage: Stage::Partial {
                request_id: "9".into(),
                rejected: vec![(1, "Quantity `x` is not a number".into())],
            },
            ..old
        };
        let text = serde_json::to_string(&partial).unwrap();
        assert_eq!(serde_json::from_str::<UploadRecord>(&text).unwrap(), partial);
    }

    #[tokio::test]
    async fn only_intents_are_resolved_by_hand() {
        let location = OutputLocation {
            store: Arc::new(InMemory::new()),
            prefix: Path::from("uploads"),
            display: "mem://uploads".into(),
        };
        let journal = Journal::new("rev", location.clone());
        let record = |file: &str, stage| UploadRecord {
            file: file.into(),
            template: "t".into(),
            rows: 1,
            keys_hash: "h".into(),
            asynchronous: false,
            stage,
        };
        journal
            .write(&"r1".into(), &record("a.csv", Stage::Intent))
            .await
            .unwrap();
        let staged = Stage::Staged { request_id: "7".into() };
        journal
            .write(&"r1".into(), &record("b.csv", staged.clone()))
            .await
            .unwrap();
        journal
            .write(&"r2".into(), &record("c.csv", Stage::Intent))
            .await
            .unwrap();
        journal
            .write(&"r2".into(), &record("d.csv", Stage::Intent))
            .await
            .unwrap();
        let settled = |files: &[&str]| Resolution::Settled(files.iter().map(|f| f.to_string()).collect());
        let resolve = |run: &'static str, file: Option<&'static str>, sent: bool| {
            let location = location.clone();
            async move { resolve_intents(location, &RunId::from(run), file, sent).await.unwrap() }
        };
        assert_eq!(resolve("r1", None, true).await, settled(&["a.csv"]));
        assert_eq!(
            journal.read(&"r1".into(), "a.csv").await.unwrap().unwrap().stage,
            Stage::SentByHand
        );
        assert_eq!(
            journal.read(&"r1".into(), "b.csv").await.unwrap().unwrap().stage,
            staged
        );
        assert_eq!(
            resolve("r2", None, false).await,
            Resolution::Ambiguous(vec!["c.csv".into(), "d.csv".into()])
        );
        assert!(matches!(
            resolve("r2", Some("b.csv"), false).await,
            Resolution::NotUndecided { .. }
        ));
        assert_eq!(resolve("r2", Some("c.csv"), false).await, settled(&["c.csv"]));
        assert_eq!(journal.read(&"r2".into(), "c.csv").await.unwrap(), None);
        assert_eq!(
            journal.read(&"r2".into(), "d.csv").await.unwrap().unwrap().stage,
            Stage::Intent
        );
        assert_eq!(resolve("r3", None, true).await, settled(&[]));
    }
}
