//! Run manifests: `<sync>/runs/<run>.json`.

use dinmo_connectors::{RunId, SyncId, Timestamp};
use serde::{Deserialize, Serialize};

/// Version of the manifest layout; bumped on incompatible change. 3: a part says how it
/// stores its row keys ([`PartInfo::row_keys`]); snapshot parts hold them as 16 bytes.
pub const MANIFEST_FORMAT_VERSION: u32 = 3;

/// What one run did for one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// The run's id (shared by every sync of one `dinmo run`).
    pub run_id: RunId,
    /// `<model>.<destination>`.
    pub sync_id: SyncId,
    /// Model name.
    pub model: String,
    /// Destination name.
    pub destination: String,
    /// Destination type.
    pub destination_type: String,
    /// RFC 3339 start time.
    pub started_at: Timestamp,
    /// RFC 3339 end time.
    #[serde(with = "dinmo_connectors::ids::optional_timestamp")]
    pub finished_at: Option<Timestamp>,
    /// `git rev-parse HEAD` of the project, when it is in a repository.
    pub git_commit: Option<String>,
    /// xxh3-64 of the model's SQL text.
    pub model_sql_hash: String,
    /// xxh3-64 of the sync's mapping and primary key.
    pub mapping_hash: String,
    /// Version of the row-key encoding.
    pub row_key_version: u32,
    /// The version of each versioned (Delta Lake) source the model read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_versions: Vec<SourceVersion>,
    /// Whether the snapshot was ignored (`--full-refresh`).
    pub full_refresh: bool,
    /// Row counts.
    pub counts: Counts,
    /// The rows this run is sending (`pending/<run>.parquet`) while it is in progress; `None`
    /// once every row of it is settled.
    #[serde(default)]
    pub pending_part: Option<PartInfo>,
    /// Snapshot parts this run added, one per committed batch of acknowledged rows.
    #[serde(default)]
    pub snapshot_parts: Vec<PartInfo>,
    /// Rejected-row parts of this run.
    #[serde(default)]
    pub rejected_parts: Vec<PartInfo>,
    /// Rows synced earlier whose values differ now, held by this run (nothing sent for them),
    /// with their values before and after (`held/<run>.parquet`). A later run that still finds
    /// them changed holds them again, from the same first run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_part: Option<PartInfo>,
    /// The run that finished this run's pending rows after it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_by: Option<RunId>,
    /// Destination-side ids (files written, import ids).
    pub destination_ids: Vec<String>,
    /// How the run ended.
    pub outcome: Outcome,
    /// The error that stopped the run, if one did (never holds a secret).
    pub error: Option<String>,
    /// Set by `dinmo rollback`: what was deleted from the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Set by `dinmo reconcile --repair missing`: rows of this run returned to "new" because
    /// the destination no longer held them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<Repair>,
}

/// The version of a versioned source (a Delta Lake table) that a model read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceVersion {
    /// The source's name.
    pub source: String,
    /// The Delta table version read.
    pub delta_version: u64,
}

impl std::fmt::Display for SourceVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at Delta version {}", self.source, self.delta_version)
    }
}

/// What `dinmo rollback` did to a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// RFC 3339.
    pub at: Timestamp,
    /// Rows deleted in the destination and returned to "new".
    pub deleted_rows: u64,
    /// Destination ids the destination would not delete, with its reason.
    pub not_deleted: Vec<String>,
}

/// What `dinmo reconcile --repair missing` did to a run's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// RFC 3339.
    pub at: Timestamp,
    /// Rows returned to "new".
    pub rows: u64,
    /// Why, in words (what reconcile found).
    pub reason: String,
    /// The snapshot parts the repair stored again without those rows: removed once this
    /// manifest names their replacements; a repair that stopped before removing them is
    /// finished by the next one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
}

/// Row counts of one sync in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Rows the model produced.
    pub model_rows: u64,
    /// Rows not in the snapshot.
    pub new_rows: u64,
    /// Rows sent besides the new ones to correct rows whose values changed after they were
    /// sent (`on_change: correct`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub corrections: u64,
    /// Rows sent earlier whose key the model no longer produced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gone: u64,
    /// Rows the destination acknowledged.
    pub accepted: u64,
    /// Rows refused (by a field rule or the destination).
    pub rejected: u64,
    /// Rows neither acknowledged nor refused when the run stopped.
    pub pending: u64,
}

/// A Parquet object in the state store, with what is needed to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Path relative to the state location.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// xxh3-64 of the file's bytes, hex.
    pub xxh3: String,
    /// How the part stores its row keys (`_dinmo_key`). Absent in manifests written before
    /// version 3, whose parts all hold them as hex text.
    #[serde(default, skip_serializing_if = "KeyEncoding::is_hex")]
    pub row_keys: KeyEncoding,
    /// The version of the value hashes the part holds
    /// ([`VALUE_COLUMN`](super::values::VALUE_COLUMN), [`VALUE_VERSION`](super::values::VALUE_VERSION));
    /// 0 for parts stored by earlier releases, which hold none. A part whose version is not
    /// today's has its values hashed from the fields it holds, as if it had none.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub value_version: u32,
    /// Rows of the part that record a correction of another row rather than a row of the
    /// model ([`CORRECTS_COLUMN`](super::values::CORRECTS_COLUMN)).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub corrections: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

impl PartInfo {
    /// A file just stored at `path`: `bytes` long, whose bytes hash to `xxh3`; its keys hex,
    /// no values and no corrections until the caller says otherwise.
    pub fn stored(path: &str, rows: u64, bytes: u64, xxh3: u64) -> Self {
        PartInfo {
            path: path.to_string(),
            rows,
            bytes,
            xxh3: format!("{xxh3:016x}"),
            row_keys: KeyEncoding::Hex,
            value_version: 0,
            corrections: 0,
        }
    }

    /// Whether the part holds value hashes of today's version.
    pub fn holds_values(&self) -> bool {
        self.value_version == super::values::VALUE_VERSION
    }

    /// Rows of the part that are rows of the model (not corrections).
    pub fn model_rows(&self) -> u64 {
        self.rows.saturating_sub(self.corrections)
    }
}

/// How a part stores its row keys. The key is the same either way (the row's xxh3-128
/// digest, [`super::row_key::ROW_KEY_VERSION`]); only its spelling differs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEncoding {
    /// 32 lower-case hex digits, as text: the pending and rejected parts (what destinations
    /// are handed), and every part stored before manifest version 3.
    #[default]
    Hex,
    /// The digest's 16 bytes, big-endian (`FixedSizeBinary(16)`): snapshot parts and
    /// checkpoint key parts from manifest version 3 on. Half the size of the hex, stored
    /// uncompressed (random bytes do not compress), and read without parsing.
    Binary,
}

impl KeyEncoding {
    /// Whether this is [`KeyEncoding::Hex`] (left out of the JSON, as before version 3).
    pub fn is_hex(&self) -> bool {
        *self == KeyEncoding::Hex
    }
}

/// How a sync's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sending; a manifest still in this state after its run ended marks a stopped run whose
    /// pending rows the next run reconciles.
    Running,
    /// Every new row was acknowledged.
    Succeeded,
    /// Nothing new to send.
    NothingToSend,
    /// Some rows were refused; they are offered again next run.
    PartiallyRejected,
    /// The run stopped on an error; what was acknowledged before it is committed.
    Failed,
}

/// When and how a run started, as each of its manifests records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStamp {
    /// The run's id.
    pub run_id: RunId,
    /// RFC 3339.
    pub started_at: Timestamp,
    /// The project's git commit, when it is in a repository.
    pub git_commit: Option<String>,
    /// Whether the snapshot was ignored (`--full-refresh`).
    pub full_refresh: bool,
}

impl RunManifest {
    /// The manifest of a sync whose run is starting: nothing committed yet, the outcome
    /// [`Outcome::NothingToSend`] until the run says otherwise.
    pub fn start(identity: &SyncIdentity, destination_type: &str, run: &RunStamp, counts: Counts) -> Self {
        RunManifest {
            format_version: MANIFEST_FORMAT_VERSION,
            run_id: run.run_id.clone(),
            sync_id: identity.sync_id.clone(),
            model: identity.model.clone(),
            destination: identity.destination.clone(),
            destination_type: destination_type.to_string(),
            started_at: run.started_at,
            finished_at: None,
            git_commit: run.git_commit.clone(),
            model_sql_hash: identity.sql_hash.clone(),
            mapping_hash: identity.mapping_hash.clone(),
            row_key_version: super::row_key::ROW_KEY_VERSION,
            source_versions: identity.source_versions.clone(),
            full_refresh: run.full_refresh,
            counts,
            pending_part: None,
            snapshot_parts: Vec::new(),
            rejected_parts: Vec::new(),
            held_part: None,
            recovered_by: None,
            destination_ids: Vec::new(),
            outcome: Outcome::NothingToSend,
            error: None,
            rollback: None,
            repairs: Vec::new(),
        }
    }

    /// Recounts accepted, rejected and pending rows from the parts.
    pub fn recount(&mut self) {
        self.counts.accepted = self.snapshot_parts.iter().map(|p| p.rows).sum();
        self.counts.rejected = self.rejected_parts.iter().map(|p| p.rows).sum();
        self.counts.pending = (self.counts.new_rows + self.counts.corrections)
            .saturating_sub(self.counts.accepted + self.counts.rejected);
    }

    /// The final outcome from the counts.
    pub fn settled_outcome(&self) -> Outcome {
        match (self.counts.new_rows + self.counts.corrections, self.counts.rejected) {
            (0, _) => Outcome::NothingToSend,
            (_, 0) => Outcome::Succeeded,
            _ => Outcome::PartiallyRejected,
        }
    }
}

impl Outcome {
    /// The text used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::NothingToSend => "nothing_to_send",
            Outcome::PartiallyRejected => "partially_rejected",
            Outcome::Failed => "failed",
        }
    }
}

/// Who a sync is, for its manifest.
#[derive(Debug, Clone)]
pub struct SyncIdentity {
    /// `<model>.<destination>`.
    pub sync_id: SyncId,
    /// Model name.
    pub model: String,
    /// Destination name.
    pub destination: String,
    /// xxh3 of the model SQL the rows came from.
    pub sql_hash: String,
    /// xxh3 of the mapping the rows were projected with.
    pub mapping_hash: String,
    /// The versions of the versioned sources the rows were read from.
    pub source_versions: Vec<SourceVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_says_how_it_stores_its_keys_and_older_parts_read_as_hex() {
        // A part entry as manifest version 2 wrote it.
        let old: PartInfo =
            serde_json::from_str(r#"{"path":"s/snapshot/r-00000.parquet","rows":3,"bytes":10,"xxh3":"00"}"#).unwrap();
        assert_eq!(old.row_keys, KeyEncoding::Hex);
        assert!(
            !serde_json::to_string(&old).unwrap().contains("row_keys"),
            "hex is left out, as before"
        );
        let new = PartInfo {
            row_keys: KeyEncoding::Binary,
            ..old
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""row_keys":"binary""#), "{text}");
        assert_eq!(serde_json::from_str::<PartInfo>(&text).unwrap(), new);
    }

    /// Manifests exactly as the last release writes them (times as text, `""` for a run not
    /// finished, ids as text) read into the typed fields and write back byte for byte.
    #[test]
    fn manifests_of_the_last_release_read_and_write_back_unchanged() {
        let running = r#"{"format_version":3,"run_id":"20261121T150600123Z-9f3a","sync_id":"usage.files","model":"usage","destination":"files","destination_type":"zuora_file","started_at":"2026-11-21T15:06:00Z","finished_at":"","git_commit":null,"model_sql_hash":"a1","mapping_hash":"b2","row_key_version":1,"full_refresh":false,"counts":{"model_rows":24,"new_rows":24,"accepted":0,"rejected":0,"pending":24},"pending_part":{"path":"usage.files/pending/20261121T150600123Z-9f3a.parquet","rows":24,"bytes":900,"xxh3":"00ff"},"snapshot_parts":[],"rejected_parts":[],"destination_ids":[],"outcome":"running","error":null}"#;
        let manifest: RunManifest = serde_json::from_str(running).unwrap();
        assert_eq!(manifest.finished_at, None);
        assert_eq!(manifest.run_id, "20261121T150600123Z-9f3a");
        assert_eq!(serde_json::to_string(&manifest).unwrap(), running);

        let rolled_back = r#"{"format_version":3,"run_id":"20261121T150600123Z-9f3a","sync_id":"usage.files","model":"usage","destination":"files","destination_type":"zuora_file","started_at":"2026-11-21T15:06:00Z","finished_at":"2026-11-21T15:06:02Z","git_commit":"abc","model_sql_hash":"a1","mapping_hash":"b2","row_key_version":1,"full_refresh":true,"counts":{"model_rows":24,"new_rows":24,"accepted":24,"rejected":0,"pending":0},"pending_part":null,"snapshot_parts":[],"rejected_parts":[],"recovered_by":"20261121T160000000Z-0001","destination_ids":["out/usage.files/a.csv"],"outcome":"succeeded","error":null,"rollback":{"at":"2026-11-22T09:00:00Z","deleted_rows":24,"not_deleted":[]}}"#;
        let manifest: RunManifest = serde_json::from_str(rolled_back).unwrap();
        assert_eq!(
            manifest.recovered_by.as_ref().map(|r| r.as_str()),
            Some("20261121T160000000Z-0001")
        );
        assert_eq!(serde_json::to_string(&manifest).unwrap(), rolled_back);
    }
}
