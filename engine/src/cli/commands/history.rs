//! `dinmo runs`, `show`, `query` and `report`.

use serde::Serialize;

use super::selected::{project_to_read, settings};
use super::status::Status;
use crate::cli::render::report as render_report;
use crate::cli::{GlobalArgs, OutputFormat, QueryArgs, QueryFormat, ReportArgs, RowsFormat, RunsArgs, ShowArgs};
use crate::error::Result;
use crate::ops::{QueryOp, ReportOp, ResultFormat, RunHistory, RunManifest, Settings};

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("cannot encode JSON: {e}"),
    }
}

pub async fn runs(global: &GlobalArgs, args: &RunsArgs) -> Result<Status> {
    let history = RunHistory::open(&project_to_read(global)?).await?;
    let shown: Vec<&RunManifest> = history.newest(args.limit);
    match args.format {
        OutputFormat::Json => print_json(&shown),
        OutputFormat::Text => {
            if shown.is_empty() {
                println!("no runs yet in {}", history.location());
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
    let history = RunHistory::open(&project_to_read(global)?).await?;
    let run = history.run(&args.run)?;
    if let Some(dir) = &args.rows {
        let format = match args.rows_format {
            RowsFormat::Csv => crate::ops::RowsFormat::Csv,
            RowsFormat::Parquet => crate::ops::RowsFormat::Parquet,
        };
        for manifest in &run {
            for written in history.export_rows(manifest, dir, format).await? {
                println!(
                    "wrote {} {} row(s) of {} to {}",
                    written.rows,
                    written.kind,
                    manifest.sync_id,
                    written.path.display()
                );
            }
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
                    m.finished_at.map(|t| t.to_string()).unwrap_or_default(),
                    m.outcome.as_str()
                );
                if let Some(commit) = &m.git_commit {
                    println!("  git commit {commit}");
                }
                println!(
                    "  model rows {}  new {}  accepted {}  rejected {}  pending {}",
                    m.counts.model_rows, m.counts.new_rows, m.counts.accepted, m.counts.rejected, m.counts.pending
                );
                if m.counts.corrections > 0 {
                    println!(
                        "  corrections {} (rows correcting earlier ones, among those accepted; `--rows DIR` lists them)",
                        m.counts.corrections
                    );
                }
                if let Some(held) = &m.held_part {
                    println!(
                        "  held {} row(s) whose values changed after they were sent ({})",
                        held.rows,
                        history.url_of(held)
                    );
                }
                for part in m.pending_part.iter().chain(&m.snapshot_parts).chain(&m.rejected_parts) {
                    println!(
                        "  {} ({} rows, {} bytes, xxh3 {})",
                        history.url_of(part),
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

pub async fn query(global: &GlobalArgs, args: &QueryArgs, defaults: Settings) -> Result<Status> {
    let project = project_to_read(global)?;
    let format = match args.format {
        Some(QueryFormat::Table) => ResultFormat::Table,
        Some(QueryFormat::Csv) => ResultFormat::Csv,
        Some(QueryFormat::Json) => ResultFormat::Json,
        Some(QueryFormat::Parquet) => ResultFormat::Parquet,
        None => args
            .out
            .as_deref()
            .and_then(ResultFormat::of_path)
            .unwrap_or(ResultFormat::Table),
    };
    let results = QueryOp::new(&project, args.sql.clone())
        .settings(settings(global, defaults))
        .await?;
    match &args.out {
        Some(path) => {
            let rows = results.write_file(format, path).await?;
            if !global.quiet {
                eprintln!("wrote {rows} row(s) to {}", path.display());
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            results.write(format, &mut out).await?;
        }
    }
    Ok(Status::Success)
}

pub async fn report(global: &GlobalArgs, args: &ReportArgs, defaults: Settings) -> Result<Status> {
    let project = project_to_read(global)?;
    let report = ReportOp::new(&project)
        .settings(settings(global, defaults))
        .days(args.days)
        .await?;
    let html = render_report::html(&report);
    write_whole(&args.out, html.as_bytes())?;
    if !global.quiet {
        eprintln!(
            "wrote {} ({} run(s) of {} sync(s), {} row(s) sent)",
            args.out.display(),
            report.summary.runs,
            report.summary.syncs,
            report.summary.sent_rows
        );
    }
    Ok(Status::Success)
}

/// Writes `bytes` to `path` through a file beside it, renamed into place: a reader never sees
/// half a page.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use crate::error::DinmoError;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, bytes).map_err(DinmoError::io(&partial))?;
    std::fs::rename(&partial, path).map_err(DinmoError::io(path))
}
