//! `runs` and `show`: the manifests of every sync, newest run first, and a run's rows written
//! out.

pub mod query;
pub mod report;
pub mod tables;

use std::path::{Path, PathBuf};

use dinmo_connectors::RunId;

use crate::error::{DinmoError, Result};
use crate::project::Project;
use crate::state::{LocalPartWriter, PartInfo, RunManifest, StateStore};

/// The runs recorded in a project's state.
#[derive(Debug)]
pub struct RunHistory {
    state: StateStore,
    /// Every manifest, newest run first, then by sync.
    pub manifests: Vec<RunManifest>,
}

/// How `show --rows` writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsFormat {
    /// CSV with a header.
    Csv,
    /// Parquet.
    Parquet,
}

/// One file of rows `show --rows` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedRows {
    /// `sent`, `rejected` or `pending`.
    pub kind: &'static str,
    /// Rows written.
    pub rows: usize,
    /// Where.
    pub path: PathBuf,
}

impl RunHistory {
    /// Reads every manifest of `project`'s state.
    pub async fn open(project: &Project) -> Result<RunHistory> {
        let state = StateStore::open(&project.state)?;
        let mut manifests = state.every_manifest().await?;
        manifests.sort_by(|a, b| b.run_id.cmp(&a.run_id).then_with(|| a.sync_id.cmp(&b.sync_id)));
        Ok(RunHistory { state, manifests })
    }

    /// The state location, for messages.
    pub fn location(&self) -> &str {
        self.state.display()
    }

    /// The manifests of the newest `limit` runs.
    pub fn newest(&self, limit: usize) -> Vec<&RunManifest> {
        let mut runs: Vec<&RunId> = self.manifests.iter().map(|m| &m.run_id).collect();
        runs.dedup();
        runs.truncate(limit);
        self.manifests.iter().filter(|m| runs.contains(&&m.run_id)).collect()
    }

    /// The manifests of `run`, one per sync it touched.
    pub fn run(&self, run: &RunId) -> Result<Vec<&RunManifest>> {
        let found: Vec<&RunManifest> = self.manifests.iter().filter(|m| m.run_id == *run).collect();
        if found.is_empty() {
            return Err(DinmoError::RunNotFound {
                run: run.clone(),
                state: self.state.display().to_string(),
            });
        }
        Ok(found)
    }

    /// The URL of a part, for messages.
    pub fn url_of(&self, part: &PartInfo) -> String {
        self.state.url_of(&part.path)
    }

    /// Writes a run's sent, rejected and pending rows of one sync to `dir`, each part verified
    /// first.
    pub async fn export_rows(
        &self,
        manifest: &RunManifest,
        dir: &Path,
        format: RowsFormat,
    ) -> Result<Vec<ExportedRows>> {
        std::fs::create_dir_all(dir).map_err(DinmoError::io(dir))?;
        let kinds: [(&'static str, Vec<&PartInfo>); 4] = [
            ("sent", manifest.snapshot_parts.iter().collect()),
            ("rejected", manifest.rejected_parts.iter().collect()),
            ("pending", manifest.pending_part.iter().collect()),
            ("held", manifest.held_part.iter().collect()),
        ];
        let mut written = Vec::new();
        for (kind, parts) in kinds {
            if parts.is_empty() {
                continue;
            }
            let extension = match format {
                RowsFormat::Csv => "csv",
                RowsFormat::Parquet => "parquet",
            };
            let path = dir.join(format!("{}.{kind}.{extension}", manifest.sync_id));
            let mut csv: Option<arrow::csv::Writer<std::fs::File>> = None;
            let mut parquet: Option<LocalPartWriter> = None;
            let mut rows = 0;
            for part in parts {
                self.state.verify_part(&manifest.sync_id, part).await?;
                for batch in self.state.read_part(part).await? {
                    rows += batch.num_rows();
                    match format {
                        RowsFormat::Csv => {
                            if csv.is_none() {
                                let file = std::fs::File::create(&path).map_err(DinmoError::io(&path))?;
                                csv = Some(arrow::csv::WriterBuilder::new().with_header(true).build(file));
                            }
                            if let Some(writer) = csv.as_mut() {
                                writer
                                    .write(&batch)
                                    .map_err(DinmoError::arrow(path.display().to_string()))?;
                            }
                        }
                        RowsFormat::Parquet => {
                            if parquet.is_none() {
                                parquet = Some(LocalPartWriter::create(&path, batch.schema()).await?);
                            }
                            if let Some(writer) = parquet.as_mut() {
                                writer.write(&batch).await?;
                            }
                        }
                    }
                }
            }
            if let Some(writer) = parquet {
                writer.finish().await?;
            }
            written.push(ExportedRows { kind, rows, path });
        }
        Ok(written)
    }
}
