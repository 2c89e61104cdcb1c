//! `dinmo query`: SQL over the state's history tables ([`super::tables`]), written as a table,
//! CSV, JSON or Parquet. Reads only: no lock is taken, and only queries are accepted (no
//! `CREATE`, `INSERT`, `COPY` or `SET`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext};
use futures::StreamExt;

use super::tables::{HistoryTables, register_history};
use crate::error::{DinmoError, Result};
use crate::ops::project::query_context;
use crate::plan::sources::register_store;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::StateStore;

/// How `dinmo query` writes its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// An aligned text table (every row read before the first is written).
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON array of objects.
    Json,
    /// Parquet (to a file only).
    Parquet,
}

impl ResultFormat {
    /// The format a file's extension names: `.csv`, `.json`, `.parquet`, `.txt`.
    pub fn of_path(path: &Path) -> Option<ResultFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(ResultFormat::Csv),
            "json" => Some(ResultFormat::Json),
            "parquet" => Some(ResultFormat::Parquet),
            "txt" => Some(ResultFormat::Table),
            _ => None,
        }
    }
}

/// Runs SQL over the history tables of a project's state.
#[derive(Debug)]
pub struct QueryOp<'p> {
    project: &'p Project,
    settings: Settings,
    sql: String,
}

/// A query ready to stream its rows.
#[derive(Debug)]
pub struct QueryResults {
    frame: DataFrame,
    /// What the tables were read from.
    pub tables: HistoryTables,
    /// The state location, for messages.
    pub state: String,
}

impl<'p> QueryOp<'p> {
    /// A query of `project`'s state.
    pub fn new(project: &'p Project, sql: impl Into<String>) -> Self {
        QueryOp {
            project,
            settings: Settings::default(),
            sql: sql.into(),
        }
    }

    async fn execute(self) -> Result<QueryResults> {
        let (ctx, state, tables) = history_session(self.project, &self.settings).await?;
        let frame = read_only(&ctx, &state, &self.sql).await?;
        Ok(QueryResults {
            frame,
            tables,
            state: state.display().to_string(),
        })
    }
}

awaitable!(QueryOp => QueryResults);
options!(QueryOp { settings });

/// A session whose history tables are `project`'s state, read now.
pub(crate) async fn history_session(
    project: &Project,
    settings: &Settings,
) -> Result<(SessionContext, StateStore, HistoryTables)> {
    let ctx = query_context(project, settings)?;
    register_store(&ctx, &project.state)?;
    let state = StateStore::open(&project.state)?;
    let tables = register_history(&ctx, &state).await?;
    Ok((ctx, state, tables))
}

/// `sql` planned in `ctx` if it only reads.
pub(crate) async fn read_only(ctx: &SessionContext, state: &StateStore, sql: &str) -> Result<DataFrame> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options)
        .await
        .map_err(|source| DinmoError::HistoryQuery {
            state: state.display().to_string(),
            source: Box::new(source),
        })
}

impl QueryResults {
    /// The columns the query returns.
    pub fn schema(&self) -> Arc<Schema> {
        Arc::new(self.frame.schema().as_arrow().clone())
    }

    /// Writes every row to `out` as `format` (not [`ResultFormat::Parquet`]: see
    /// [`QueryResults::write_file`]); returns the rows written.
    pub async fn write(self, format: ResultFormat, out: &mut dyn Write) -> Result<u64> {
        self.write_to(format, out, Path::new("standard output")).await
    }

    /// [`QueryResults::write`] to `out`, which is `named` in messages.
    async fn write_to(self, format: ResultFormat, out: &mut dyn Write, named: &Path) -> Result<u64> {
        let failed = |source| DinmoError::Io {
            path: named.to_path_buf(),
            source,
        };
        let schema = self.schema();
        let state = self.state.clone();
        let mut stream = self.stream().await?;
        let mut rows = 0u64;
        match format {
            ResultFormat::Table => {
                let mut batches = Vec::new();
                while let Some(batch) = next(&mut stream, &state).await? {
                    rows += batch.num_rows() as u64;
                    batches.push(batch);
                }
                let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)
                    .map_err(DinmoError::arrow("formatting the results"))?;
                writeln!(out, "{table}").map_err(failed)?;
                writeln!(out, "{rows} row(s)").map_err(failed)?;
            }
            ResultFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
                let mut wrote_any = false;
                while let Some(batch) = next(&mut stream, &state).await? {
                    rows += batch.num_rows() as u64;
                    writer
                        .write(&flat(&batch)?)
                        .map_err(DinmoError::arrow("writing the results as CSV"))?;
                    wrote_any = true;
                }
                drop(writer);
                if !wrote_any {
                    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    writeln!(out, "{}", names.join(",")).map_err(failed)?;
                }
            }
            ResultFormat::Json => {
                // Nulls are written, so every object has every column.
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(&mut *out);
                while let Some(batch) = next(&mut stream, &state).await? {
                    rows += batch.num_rows() as u64;
                    writer
                        .write(&batch)
                        .map_err(DinmoError::arrow("writing the results as JSON"))?;
                }
                writer
                    .finish()
                    .map_err(DinmoError::arrow("writing the results as JSON"))?;
                writeln!(out).map_err(failed)?;
            }
            ResultFormat::Parquet => {
                return Err(DinmoError::Argument {
                    flag: "--format",
                    value: "parquet".into(),
                    expected: "an output file for Parquet (`--out FILE.parquet`): it is not written to a terminal",
                });
            }
        }
        out.flush().map_err(failed)?;
        Ok(rows)
    }

    /// Writes every row to the file `path` as `format`; returns the rows written. The file
    /// appears whole: rows go to a file beside it, renamed into place once complete, and
    /// removed if writing fails.
    pub async fn write_file(self, format: ResultFormat, path: &Path) -> Result<u64> {
        let partial = path.with_extension(format!(
            "{}.partial",
            path.extension().and_then(|e| e.to_str()).unwrap_or("out")
        ));
        match self.write_partial(format, path, &partial).await {
            Ok(rows) => {
                std::fs::rename(&partial, path).map_err(DinmoError::io(path))?;
                Ok(rows)
            }
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                Err(error)
            }
        }
    }

    async fn write_partial(self, format: ResultFormat, path: &Path, partial: &Path) -> Result<u64> {
        let file = std::fs::File::create(partial).map_err(DinmoError::io(partial))?;
        if format != ResultFormat::Parquet {
            let mut buffered = std::io::BufWriter::new(file);
            let rows = self.write_to(format, &mut buffered, partial).await?;
            buffered
                .into_inner()
                .map_err(|e| DinmoError::io(partial)(e.into_error()))?
                .sync_all()
                .map_err(DinmoError::io(partial))?;
            return Ok(rows);
        }
        let schema = self.schema();
        let state = self.state.clone();
        let mut stream = self.stream().await?;
        let context = format!("writing {}", path.display());
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(DinmoError::parquet(context.clone()))?;
        let mut rows = 0u64;
        while let Some(batch) = next(&mut stream, &state).await? {
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(DinmoError::parquet(context.clone()))?;
        }
        writer.close().map_err(DinmoError::parquet(context))?;
        Ok(rows)
    }

    async fn stream(self) -> Result<SendableRecordBatchStream> {
        let state = self.state;
        self.frame
            .execute_stream()
            .await
            .map_err(|source| DinmoError::HistoryQuery {
                state,
                source: Box::new(source),
            })
    }
}

async fn next(stream: &mut SendableRecordBatchStream, state: &str) -> Result<Option<RecordBatch>> {
    stream
        .next()
        .await
        .transpose()
        .map_err(|source| DinmoError::HistoryQuery {
            state: state.to_string(),
            source: Box::new(source),
        })
}

/// `batch` with each nested column (lists, structs, maps) as its display text, which CSV
/// cannot hold otherwise.
fn flat(batch: &RecordBatch) -> Result<RecordBatch> {
    let nested = |t: &DataType| t.is_nested();
    if !batch.schema().fields().iter().any(|f| nested(f.data_type())) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !nested(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)
            .map_err(DinmoError::arrow("writing the results as CSV"))?;
        let text: arrow::array::StringArray = (0..column.len())
            .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(DinmoError::arrow("writing the results as CSV"))
}
