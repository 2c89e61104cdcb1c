//! The problems an error reports in a list: configuration problems, collected across every
//! project file, and why a source's files do not make one table.

use std::fmt;

use arrow::datatypes::DataType;
use std::path::PathBuf;

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl Position {
    /// From a serde-saphyr location; `None` when the location is unknown.
    pub fn from_location(location: serde_saphyr::Location) -> Option<Self> {
        (location.line() > 0).then(|| Position {
            line: location.line(),
            column: location.column(),
        })
    }
}

/// One problem in the project's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file, relative to the project root when it is inside it.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// What is wrong.
    pub message: String,
    /// A source excerpt pointing at the problem, for YAML syntax errors.
    pub snippet: Option<String>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file.display(), p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigReport {
    problems: Vec<ConfigProblem>,
}

impl ConfigReport {
    /// Records a problem.
    pub fn push(&mut self, file: impl Into<PathBuf>, position: Option<Position>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            file: file.into(),
            position,
            message: message.into(),
            snippet: None,
        });
    }

    /// Records a problem that carries its own snippet.
    pub fn push_problem(&mut self, problem: ConfigProblem) {
        self.problems.push(problem);
    }

    /// Appends another report's problems.
    pub fn extend(&mut self, other: ConfigReport) {
        self.problems.extend(other.problems);
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems, sorted by file and position.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// `Ok(())` when empty, the sorted report otherwise.
    pub fn into_result(mut self) -> Result<(), ConfigReport> {
        if self.problems.is_empty() {
            return Ok(());
        }
        self.problems
            .sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
        self.problems.dedup();
        Err(self)
    }
}

impl fmt::Display for ConfigReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        writeln!(
            f,
            "{count} problem{} in the project configuration:",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
            if let Some(snippet) = &problem.snippet {
                for line in snippet.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// Why a source's files do not make one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaProblem {
    /// Two files hold a column in types that have no lossless common type.
    Conflict {
        column: String,
        first: (DataType, String),
        second: (DataType, String),
        why: String,
    },
    /// A file's column does not fit the pinned type.
    NotPinnedType {
        column: String,
        pinned: DataType,
        found: DataType,
        file: String,
    },
    /// A file lacks a pinned column.
    PinnedMissing { column: String, file: String },
    /// No file has a pinned column.
    PinnedUnknown { column: String, columns: String },
    /// One column is named in two cases in different files.
    CaseDiffers {
        first: (String, String),
        second: (String, String),
    },
    /// Two CSV files have different headers.
    CsvHeader {
        first: (Vec<String>, String),
        second: (Vec<String>, String),
    },
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaProblem::Conflict {
                column,
                first,
                second,
                why,
            } => write!(
                f,
                "column `{column}` is {} in {} but {} in {}: {why}",
                first.0, first.1, second.0, second.1
            ),
            SchemaProblem::NotPinnedType {
                column,
                pinned,
                found,
                file,
            } => write!(
                f,
                "column `{column}` is {found} in {file}, which does not fit the type the source's `schema:` pins ({pinned}) without loss"
            ),
            SchemaProblem::PinnedMissing { column, file } => {
                write!(
                    f,
                    "column `{column}`, pinned in the source's `schema:`, is missing from {file}"
                )
            }
            SchemaProblem::PinnedUnknown { column, columns } => write!(
                f,
                "column `{column}` is pinned in the source's `schema:` but no file has it (columns: {columns})"
            ),
            SchemaProblem::CaseDiffers { first, second } => write!(
                f,
                "column `{}` in {} is `{}` in {}: column names are case-sensitive, so they would be two columns, \
                 each null in the other's files; fix the export's column name",
                first.0, first.1, second.0, second.1
            ),
            SchemaProblem::CsvHeader { first, second } => write!(
                f,
                "CSV files are read by column position, so every file needs the same header: {} has [{}] but {} has [{}]",
                first.1,
                first.0.join(", "),
                second.1,
                second.0.join(", ")
            ),
        }
    }
}
