//! Temp projects and the real `dinmo` binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use assert_cmd::Command;
use parquet::arrow::ArrowWriter;

pub const PROJECT: &str = "name: e2e
sources:
  events:
    location: data/events/
destinations:
  files:
    type: zuora_file
    path: out
";

/// One usage row per event: account, day, quantity.
pub const MODEL: &str = "model: usage
sql: SELECT account, 'API_CALL' AS uom, CAST(day AS TIMESTAMP) AS usage_day, qty FROM events
primary_key: [account, usage_day]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
";

/// A project in a temp folder.
pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    pub fn new(project: &str, models: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let this = TestProject { dir };
        this.write("dinmo.yml", project);
        for (name, text) in models {
            this.write(&format!("models/{name}"), text);
        }
        this
    }

    /// The default project with the default model.
    pub fn standard() -> Self {
        Self::new(PROJECT, &[("usage.yml", MODEL)])
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Writes `data/events/day=<day>/part.parquet` with (account, qty) rows.
    pub fn export_day(&self, day: &str, rows: &[(&str, i64)]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, false),
        ]));
        let accounts: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
        let qty: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
        let batch = RecordBatch::try_new(schema.clone(), vec![accounts, qty]).expect("batch");
        write_parquet(&self.path().join(format!("data/events/day={day}/part.parquet")), &batch);
    }

    /// Runs `dinmo ARGS` in the project folder.
    pub fn dinmo(&self, args: &[&str]) -> Output {
        dinmo_in(self.path(), args, &[])
    }

    /// The usage files written for `sync`, sorted by name.
    pub fn output_files(&self, sync: &str) -> Vec<PathBuf> {
        files_in(&self.path().join("out").join(sync))
    }

    /// Every data row of every usage file of `sync` (header lines dropped).
    pub fn output_rows(&self, sync: &str) -> Vec<String> {
        let mut rows = Vec::new();
        for file in self.output_files(sync) {
            let text = std::fs::read_to_string(&file).expect("read csv");
            rows.extend(text.lines().skip(1).map(str::to_string));
        }
        rows
    }

    pub fn state(&self, relative: &str) -> PathBuf {
        self.path().join(".dinmo/state").join(relative)
    }

    /// Every file of the state folder and the destination output (`out/`), path and bytes:
    /// equal before and after a command that failed means it changed nothing.
    pub fn state_digest(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        for root in [self.path().join(".dinmo/state"), self.path().join("out")] {
            collect_files(&root, &mut files);
        }
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).expect("read");
                (path.strip_prefix(self.path()).expect("inside").to_path_buf(), bytes)
            })
            .collect()
    }

    /// Files under a state folder of a sync (`snapshot`, `runs`, `rejected`, `pending`).
    pub fn state_files(&self, sync: &str, folder: &str) -> Vec<PathBuf> {
        files_in(&self.state(&format!("{sync}/{folder}")))
    }

    /// The `columns` of every row in the Parquet files of `sync`'s state folder `folder`, as
    /// text, file after file.
    pub fn state_rows(&self, sync: &str, folder: &str, columns: &[&str]) -> Vec<Vec<String>> {
        use arrow::array::AsArray;
        let mut rows = Vec::new();
        for file in self.state_files(sync, folder) {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
                std::fs::File::open(&file).unwrap(),
                1024,
            )
            .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let texts: Vec<StringArray> = columns
                    .iter()
                    .map(|name| {
                        let column = batch
                            .column_by_name(name)
                            .unwrap_or_else(|| panic!("{} has no column {name}", file.display()));
                        arrow::compute::cast(column, &DataType::Utf8)
                            .unwrap()
                            .as_string::<i32>()
                            .clone()
                    })
                    .collect();
                for i in 0..batch.num_rows() {
                    rows.push(texts.iter().map(|t| t.value(i).to_string()).collect());
                }
            }
        }
        rows
    }
}

pub fn dinmo_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dinmo"));
    command
        .current_dir(dir)
        .args(args)
        .env("DINMO_LOG", "warn")
        // A commit after every batch, so tests see each one (the default waits 1 s between
        // commits; `exactly_once.rs` covers a crash between commits at a longer interval).
        .env("DINMO_COMMIT_INTERVAL_MS", "0")
        .env_remove("RUST_LOG")
        .timeout(std::time::Duration::from_secs(120));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run dinmo")
}

/// Copies a folder tree, leaving out what runs write (`.dinmo`, `out`, `target`).
pub fn copy_project(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if [".dinmo", "out", "target"].iter().any(|skip| name == *skip) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_project(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Every file under `dir`, recursively (unsorted).
pub fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(path);
        }
    }
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write batch");
    writer.close().expect("close");
}

/// Edits a fixture (a model file, `dinmo.yml`) and fails when the text to replace is not in
/// it: a pattern that drifted would otherwise test the unchanged fixture.
pub trait Edit {
    /// The text with every `from` replaced by `to`; panics when there is no `from`.
    fn edit(&self, from: &str, to: &str) -> String;
}

impl Edit for str {
    #[track_caller]
    fn edit(&self, from: &str, to: &str) -> String {
        assert!(self.contains(from), "the fixture has no {from:?} to replace:\n{self}");
        self.replace(from, to)
    }
}

/// Asserts `output` ended with exit `expected`, printing the whole output when it did not.
#[track_caller]
pub fn exits(output: &Output, expected: i32) {
    assert_eq!(code(output), expected, "{}", describe(output));
}

/// Asserts `output` ended with exit `expected` (a failure's code, or 0) and its stderr holds
/// every one of `needles`; returns the stderr.
#[track_caller]
pub fn exits_with(output: &Output, expected: i32, needles: &[&str]) -> String {
    exits(output, expected);
    let err = stderr(output);
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{}", describe(output));
    }
    err
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The sync ids of a `plan --format json` (or `run --format json`) report.
pub fn sync_ids(project: &TestProject, args: &[&str]) -> Vec<String> {
    let output = project.dinmo(args);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    report["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .map(|s| s["sync_id"].as_str().expect("sync_id").to_string())
        .collect()
}

/// The repository's root folder.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A Python with pyarrow, DuckDB, deltalake, Polars and pyspark (`DINMO_PYTHON`, default
/// `python3`), for tests whose data must come from other writers than dinmo's own Arrow.
/// `.ci/run` installs them from PyPI (and Java, which pyspark runs on).
pub fn python() -> String {
    let python = std::env::var("DINMO_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let check = std::process::Command::new(&python)
        .args(["-c", "import pyarrow, duckdb, deltalake, polars, pyspark"])
        .output();
    match check {
        Ok(output) if output.status.success() => python,
        Ok(output) => panic!(
            "{python} lacks pyarrow, duckdb, deltalake, polars or pyspark: run .ci/run (it installs them) or \
             `pip install pyarrow duckdb deltalake polars pyspark`, or set DINMO_PYTHON\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => {
            panic!(
                "cannot run {python}: {error}; set DINMO_PYTHON to a Python with pyarrow, duckdb, deltalake, polars and pyspark"
            )
        }
    }
}

/// The example project in `dir` as users of the last release configured it
/// (`tests/fixtures/example-0.1.0/`), the configuration the `state-0.1.0-*` fixtures were
/// written with: the example's data and models, its config files as they were then.
pub fn example_as_the_last_release_had_it(dir: &Path) {
    copy_project(&repository_root().join("models"), dir);
    let old = repository_root().join("tests/fixtures/example-0.1.0");
    copy_project(&old, dir);
    std::fs::remove_file(dir.join("README.md")).ok();
}

/// Runs [`python()`] with `args`; the lines it printed, or a failure with what it said.
pub fn python_output<I, S>(args: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let output = std::process::Command::new(python())
        .args(&args)
        .output()
        .expect("runs python");
    assert!(output.status.success(), "python {args:?}: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `tests/fixtures/<script>` with `args` under [`python()`]; the lines it printed.
pub fn fixture(script: &str, args: &[&std::ffi::OsStr]) -> Vec<String> {
    let path = repository_root().join("tests/fixtures").join(script);
    python_output(std::iter::once(path.as_os_str()).chain(args.iter().copied()))
}

/// Runs `tests/fixtures/drift_exports.py SCENARIO DIR`.
pub fn write_drift_exports(scenario: &str, dir: &Path) {
    fixture("drift_exports.py", &[scenario.as_ref(), dir.as_os_str()]);
}

/// Runs `args` and asserts exit 1, that stderr contains every one of `needles`, and that
/// nothing under the state folder or the output changed.
pub fn refused(project: &TestProject, args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let before = project.state_digest();
    let output = dinmo_in(project.path(), args, env);
    assert_eq!(code(&output), 1, "{args:?}: {}", describe(&output));
    let err = stderr(&output);
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: missing {needle:?} in:\n{err}");
    }
    assert_eq!(
        project.state_digest(),
        before,
        "{args:?} changed the state or the output"
    );
    err
}
