//! `dinmo runs` and `dinmo show`.

use serde::Serialize;

use super::status::Status;
use crate::cli::{GlobalArgs, OutputFormat, RowsFormat, RunsArgs, ShowArgs};
use crate::error::{DinmoError, Result};
use crate::project::{find_project_root, load_project};
use crate::state::{LocalPartWriter, PartInfo, RunManifest, StateStore};

async fn all_manifests(global: &GlobalArgs) -> Result<(StateStore, Vec<RunManifest>)> {
    let root = find_project_root(global.project.as_deref())?;
    let project = load_project(&root)?;
    let state = StateStore::open(&project.state)?;
    let mut manifests = Vec::new();
    for sync in state.sync_ids().await? {
        manifests.extend(state.manifests(&sync).await?);
    }
    manifests.sort_by(|a, b| b.run_id.cmp(&a.run_id).then_with(|| a.sync_id.cmp(&b.sync_id)));
    Ok((state, manifests))
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("cannot encode JSON: {e}"),
    }
}

pub async fn runs(global: &GlobalArgs, args: &RunsArgs) -> Result<Status> {
    let (state, manifests) = all_manifests(global).await?;
    let mut run_ids: Vec<&str> = manifests.iter().map(|m| m.run_id.as_str()).collect();
    run_ids.dedup();
    run_ids.truncate(args.limit);
    let shown: Vec<&RunManifest> = manifests
        .iter()
        .filter(|m| run_ids.contains(&m.run_id.as_str()))
        .collect();
    match args.format {
        OutputFormat::Json => print_json(&shown),
        OutputFormat::Text => {
            if shown.is_empty() {
                println!("no runs yet in {}", state.display());
            } else {
                println!(
                    "{:<22}  {:<40}  {:<18}  {:>8}  {:>8}  {:>8}  {:>8}",
                    "RUN", "SYNC", "OUTCOME", "NEW", "ACCEPTED", "REJECTED", "PENDING"
                );
            }
            for m in shown {
                println!(
                    "{:<22}  {:<40}  {:<18}  {:>8}  {:>8}  {:>8}  {:>8}",
                    m.run_id,
                    m.sync_id,
                    m.outcome.as_str(),
                    m.counts.new_rows,
                    m.counts.accepted,
                    m.counts.rejected,
                    m.counts.pending
                );
            }
        }
    }
    Ok(Status::Success)
}

pub async fn show(global: &GlobalArgs, args: &ShowArgs) -> Result<Status> {
    let (state, manifests) = all_manifests(global).await?;
    let run: Vec<&RunManifest> = manifests.iter().filter(|m| m.run_id == args.run).collect();
    if run.is_empty() {
        return Err(DinmoError::RunNotFound {
            run: args.run.clone(),
            state: state.display().to_string(),
        });
    }
    if let Some(dir) = &args.rows {
        for manifest in &run {
            export_rows(&state, manifest, dir, args.rows_format).await?;
        }
    }
    match args.format {
        OutputFormat::Json => print_json(&run),
        OutputFormat::Text => {
            for m in run {
                println!(
                    "run {} · sync {} → {} ({})",
                    m.run_id, m.sync_id, m.destination, m.destination_type
                );
                println!(
                    "  started {}  finished {}  outcome {}",
                    m.started_at,
                    m.finished_at,
                    m.outcome.as_str()
                );
                if let Some(commit) = &m.git_commit {
                    println!("  git commit {commit}");
                }
                println!(
                    "  model rows {}  new {}  accepted {}  rejected {}  pending {}",
                    m.counts.model_rows, m.counts.new_rows, m.counts.accepted, m.counts.rejected, m.counts.pending
                );
                for part in m.pending_part.iter().chain(&m.snapshot_parts).chain(&m.rejected_parts) {
                    println!(
                        "  {} ({} rows, {} bytes, xxh3 {})",
                        state.url_of(&part.path),
                        part.rows,
                        part.bytes,
                        part.xxh3
                    );
                }
                for id in &m.destination_ids {
                    println!("  delivered {id}");
                }
                if let Some(error) = &m.error {
                    println!("  error: {error}");
                }
            }
        }
    }
    Ok(Status::Success)
}

/// Writes a run's sent, rejected and pending rows of one sync to `dir`.
async fn export_rows(
    state: &StateStore,
    manifest: &RunManifest,
    dir: &std::path::Path,
    format: RowsFormat,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(DinmoError::io(dir))?;
    let kinds: [(&str, Vec<&PartInfo>); 3] = [
        ("sent", manifest.snapshot_parts.iter().collect()),
        ("rejected", manifest.rejected_parts.iter().collect()),
        ("pending", manifest.pending_part.iter().collect()),
    ];
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
            state.verify_part(&manifest.sync_id, part).await?;
            for batch in state.read_part(part).await? {
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
        println!(
            "wrote {rows} {kind} row(s) of {} to {}",
            manifest.sync_id,
            path.display()
        );
    }
    Ok(())
}
