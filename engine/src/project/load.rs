//! Finding and loading a project, collecting every static problem before failing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dinmo_connectors::{Ledger, SyncId};
use serde_saphyr::{MessageFormatter, Spanned};

use super::byte_size::parse_byte_size;
use super::env::{from_process, interpolate};
use super::loaded::{DestinationDef, Execution, MappedField, Model, Project, Source, Sync};
use super::model_file::ModelFile;
use super::project_file::{DestinationConfig, ExecutionConfig, ProjectFile, SourceConfig, SourceFormat};
use crate::error::{ConfigProblem, ConfigReport, Position};
use crate::error::{DinmoError, Result};
use crate::storage::resolve_location;

const PROJECT_FILE: &str = "dinmo.yml";

/// The folder holding `dinmo.yml`: `explicit` if given, else the working directory or the
/// nearest parent that has one.
pub fn find_project_root(explicit: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(DinmoError::io("."))?;
    if let Some(dir) = explicit {
        let dir = cwd.join(dir);
        if dir.join(PROJECT_FILE).is_file() {
            return Ok(dir);
        }
        return Err(DinmoError::ProjectNotFound { searched: dir });
    }
    cwd.ancestors()
        .find(|dir| dir.join(PROJECT_FILE).is_file())
        .map(Path::to_path_buf)
        .ok_or(DinmoError::ProjectNotFound { searched: cwd })
}

/// Loads the project at `root` with the process environment.
pub fn load_project(root: &Path) -> Result<Project> {
    load_project_with(root, &from_process)
}

/// Loads the project at `root` to read its state's history (`runs`, `show`, `query`,
/// `report`): as [`load_project`], but a destination's settings are not checked, so that a
/// person without the destinations' credentials can read what was sent. Nothing loaded so
/// may reach a destination.
pub fn load_project_to_read_state(root: &Path) -> Result<Project> {
    load(root, &from_process, Purpose::ReadState)
}

/// Loads the project at `root`, reading `${VAR}` through `lookup`.
pub fn load_project_with(root: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Project> {
    load(root, lookup, Purpose::Everything)
}

/// What a project is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Anything: every setting is checked.
    Everything,
    /// Reading the state: destinations' settings are not checked.
    ReadState,
}

fn load(root: &Path, lookup: &dyn Fn(&str) -> Option<String>, purpose: Purpose) -> Result<Project> {
    let mut report = ConfigReport::default();
    let project_path = root.join(PROJECT_FILE);
    let text = std::fs::read_to_string(&project_path).map_err(DinmoError::io(&project_path))?;
    let Some(file) = parse_yaml::<ProjectFile>(&text, Path::new(PROJECT_FILE), &mut report) else {
        // The model files' own problems too (in the default `models/` folder, as the project
        // file could not say otherwise), so one round of fixes clears all it can.
        let (files, _) = model_files(&root.join("models"));
        for path in files {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    parse_yaml::<ModelFile>(&text, &relative, &mut report);
                }
                Err(error) => report.push(&relative, None, format!("cannot read: {error}")),
            }
        }
        return Err(DinmoError::Config(report.into_result().err().unwrap_or_default()));
    };
    let mut loader = Loader {
        root,
        lookup,
        report,
        purpose,
    };
    let project = loader.project(file);
    loader.report.into_result().map_err(DinmoError::Config)?;
    Ok(project)
}

struct Loader<'a> {
    root: &'a Path,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    report: ConfigReport,
    purpose: Purpose,
}

fn position<T>(spanned: &Spanned<T>) -> Option<Position> {
    Position::from_location(spanned.referenced)
}

/// Names used in paths and sync ids: letters, digits, `_` and `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Loader<'_> {
    fn problem(&mut self, file: &Path, at: Option<Position>, message: impl Into<String>) {
        self.report.push(file, at, message);
    }

    /// `${VAR}` substitution; an unset or empty variable is reported by name, never by value,
    /// and so is an unclosed `${` or a malformed name.
    fn interpolated(&mut self, file: &Path, raw: &Spanned<String>, what: &str) -> String {
        match interpolate(&raw.value, self.lookup) {
            Ok(value) => value,
            Err(problems) => {
                for problem in problems {
                    self.problem(file, position(raw), format!("{what}: {problem}"));
                }
                String::new()
            }
        }
    }

    fn project(&mut self, file: ProjectFile) -> Project {
        let project_file = Path::new(PROJECT_FILE);
        let name = file.name.value.clone();
        if name.trim().is_empty() {
            self.problem(project_file, position(&file.name), "name must not be empty");
        }
        let state = match &file.state {
            Some(raw) => {
                let value = self.interpolated(project_file, raw, "state");
                resolve_location(self.root, &value)
            }
            None => resolve_location(self.root, ".dinmo/state"),
        };
        let target_path = self
            .root
            .join(file.target_path.as_ref().map_or("target", |t| t.value.as_str()));

        let execution = self.execution(&file.execution, &target_path);
        let sources = file
            .sources
            .iter()
            .map(|(name, spanned)| self.source(name, spanned))
            .collect();
        let destinations = file
            .destinations
            .into_iter()
            .map(|(name, spanned)| self.destination(name, spanned))
            .collect::<Vec<_>>();

        let model_paths: Vec<(String, Option<Position>)> = match &file.model_paths {
            Some(paths) => paths.iter().map(|p| (p.value.clone(), position(p))).collect(),
            None => vec![("models".to_string(), None)],
        };
        let mut models = Vec::new();
        for (dir, at) in model_paths {
            let full = self.root.join(&dir);
            if !full.is_dir() {
                self.problem(project_file, at, format!("model path `{dir}` is not a folder"));
                continue;
            }
            let (files, unreadable) = model_files(&full);
            for (folder, error) in unreadable {
                let folder = folder.strip_prefix(self.root).unwrap_or(&folder).to_path_buf();
                self.problem(&folder, None, format!("cannot list model folder: {error}"));
            }
            for path in files {
                let relative = path.strip_prefix(self.root).unwrap_or(&path).to_path_buf();
                if let Some(model) = self.model(&path, relative, &destinations) {
                    models.push(model);
                }
            }
        }
        self.check_unique_models(&models);
        let mut destinations = destinations;
        for destination in &mut destinations {
            let mapped: Vec<&str> = models
                .iter()
                .flat_map(|m| &m.syncs)
                .filter(|s| s.destination == destination.name)
                .flat_map(|s| s.mapping.iter().map(|f| f.field.as_str()))
                .collect();
            for (key, warning) in destination.config.settle(&mapped) {
                let at = destination
                    .position
                    .map(|p| format!("{}:{}:{}: ", PROJECT_FILE, p.line, p.column))
                    .unwrap_or_default();
                tracing::warn!("{at}destination `{}`: {key}: {warning}", destination.name);
            }
        }
        Project {
            root: self.root.to_path_buf(),
            name,
            state,
            target_path,
            sources,
            destinations,
            models,
            execution,
        }
    }

    fn execution(&mut self, config: &ExecutionConfig, target_path: &Path) -> Execution {
        let project_file = Path::new(PROJECT_FILE);
        let memory_limit = config.memory_limit.as_ref().and_then(|raw| {
            let value = self.interpolated(project_file, raw, "execution.memory_limit");
            match parse_byte_size(&value) {
                Ok(bytes) => Some(bytes),
                Err(problem) => {
                    self.problem(
                        project_file,
                        position(raw),
                        format!("execution.memory_limit: {problem}"),
                    );
                    None
                }
            }
        });
        let spill_path = match &config.spill_path {
            Some(raw) => self
                .root
                .join(self.interpolated(project_file, raw, "execution.spill_path")),
            None => target_path.join("spill"),
        };
        Execution {
            memory_limit,
            spill_path,
        }
    }

    fn source(&mut self, name: &str, spanned: &Spanned<SourceConfig>) -> Source {
        let file = Path::new(PROJECT_FILE);
        let config = &spanned.value;
        let at = position(spanned);
        let raw_location = self.interpolated(file, &config.location, &format!("source `{name}` location"));
        if config.format != SourceFormat::Csv
            && (config.options.has_header.is_some() || config.options.delimiter.is_some())
        {
            self.problem(
                file,
                at,
                format!("source `{name}`: has_header and delimiter apply to csv sources only"),
            );
        }
        let options = &config.options;
        if config.format == SourceFormat::Delta {
            // A Delta table's log says which files it holds, their partition values and
            // column types: the options about finding and typing files do not apply.
            let file_options = [
                ("file_extension", options.file_extension.is_some()),
                ("partition_columns", options.partition_columns.is_some()),
                ("skip_empty_files", options.skip_empty_files),
                ("naive_timestamp_zone", options.naive_timestamp_zone.is_some()),
                ("ignore_table_log", options.ignore_table_log),
                ("exclude", !options.exclude.is_empty()),
                ("schema", !config.schema.is_empty()),
            ];
            for (option, _) in file_options.iter().filter(|(_, set)| *set) {
                self.problem(
                    file,
                    at,
                    format!(
                        "source `{name}`: `{option}` applies to file sources, not to `format: delta` (the table's log \
                         says which files it holds and their column types); remove it"
                    ),
                );
            }
            if options.version.is_some() && options.timestamp.is_some() {
                self.problem(
                    file,
                    at,
                    format!("source `{name}`: set `version` or `timestamp`, not both"),
                );
            }
            if let Some(at_time) = &options.timestamp
                && let Err(error) = chrono::DateTime::parse_from_rfc3339(at_time)
            {
                self.problem(
                    file,
                    at,
                    format!(
                        "source `{name}`: timestamp `{at_time}` is not an RFC 3339 instant such as \
                         `2026-11-30T23:59:59Z`: {error}"
                    ),
                );
            }
        } else if options.version.is_some() || options.timestamp.is_some() {
            self.problem(
                file,
                at,
                format!("source `{name}`: `version` and `timestamp` apply to `format: delta` sources only"),
            );
        }
        if let Some(zone) = &config.options.naive_timestamp_zone
            && let Err(error) = zone.parse::<arrow::array::timezone::Tz>()
        {
            self.problem(
                file,
                at,
                format!("source `{name}`: naive_timestamp_zone `{zone}` is not a time zone: {error}"),
            );
        }
        Source {
            name: name.to_string(),
            location: resolve_location(self.root, &raw_location),
            format: config.format,
            options: config.options.clone(),
            schema: config
                .schema
                .iter()
                .map(|(column, ty)| (column.clone(), ty.value.clone()))
                .collect(),
            position: at,
        }
    }

    fn destination(&mut self, name: String, spanned: Spanned<DestinationConfig>) -> DestinationDef {
        let file = Path::new(PROJECT_FILE);
        let at = position(&spanned);
        if !valid_name(&name) {
            self.problem(
                file,
                at,
                format!("destination name `{name}` may hold only letters, digits, `_` and `-`"),
            );
        }
        // Every string of the config through `${VAR}` substitution, each problem at the
        // destination's position; then each location resolved against the project.
        let mut problems = Vec::new();
        let root = self.root;
        let lookup = self.lookup;
        let mapped = spanned.value.map_strings(
            |key, text| match interpolate(text, lookup) {
                Ok(value) => value,
                Err(found) => {
                    problems.extend(found.into_iter().map(|p| format!("destination `{name}` {key}: {p}")));
                    String::new()
                }
            },
            |location| resolve_location(root, location),
        );
        if self.purpose == Purpose::ReadState {
            // Credentials and endpoints are not needed to read the state.
            problems.clear();
        }
        for problem in problems {
            self.problem(file, at, problem);
        }
        let config = match mapped {
            Ok(config) => config,
            Err(message) => {
                self.problem(file, at, format!("destination `{name}`: {message}"));
                spanned.value
            }
        };
        if self.purpose == Purpose::Everything {
            for (key, message) in config.validate() {
                self.problem(file, at, format!("destination `{name}`: {key} {message}"));
            }
        }
        DestinationDef {
            name,
            config,
            position: at,
        }
    }

    /// Loads one model file: parse, `${VAR}`s, then each sync checked against the
    /// destinations. Every problem is collected (with its position) before the model is
    /// given up on, so a user sees them all at once.
    fn model(&mut self, path: &Path, relative: PathBuf, destinations: &[DestinationDef]) -> Option<Model> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                self.problem(&relative, None, format!("cannot read: {e}"));
                return None;
            }
        };
        let file: ModelFile = parse_yaml(&text, &relative, &mut self.report)?;
        let name = file.model.value.clone();
        if !valid_name(&name) {
            self.problem(
                &relative,
                position(&file.model),
                format!("model name `{name}` may hold only letters, digits, `_` and `-`"),
            );
        }
        if file.sql.value.trim().is_empty() {
            self.problem(&relative, position(&file.sql), "sql must not be empty");
        }
        let primary_key: Vec<String> = file.primary_key.value.iter().map(|c| c.value.clone()).collect();
        if primary_key.is_empty() {
            self.problem(
                &relative,
                position(&file.primary_key),
                "primary_key must name at least one column",
            );
        }
        let mut syncs: Vec<Sync> = Vec::new();
        for spanned in &file.syncs {
            let sync = &spanned.value;
            let destination = sync.destination.value.clone();
            if destinations.iter().all(|d| d.name != destination) {
                let known = destinations
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                self.problem(
                    &relative,
                    position(&sync.destination),
                    format!("sync names unknown destination `{destination}` (dinmo.yml defines: {known})"),
                );
            }
            if syncs.iter().any(|s| s.destination == destination) {
                self.problem(
                    &relative,
                    position(&sync.destination),
                    format!("model `{name}` syncs to `{destination}` twice"),
                );
            }
            if sync.mapping.value.is_empty() {
                self.problem(
                    &relative,
                    position(&sync.mapping),
                    "mapping must map at least one field",
                );
            }
            let mapping = sync
                .mapping
                .value
                .iter()
                .map(|(field, column)| MappedField {
                    field: field.clone(),
                    column: column.value.clone(),
                    position: position(column),
                })
                .collect();
            syncs.push(Sync {
                allow_billing_and_revenue: sync.allow_billing_and_revenue,
                id: SyncId::from(format!("{name}.{destination}")),
                model: name.clone(),
                destination,
                mapping,
                mapping_position: position(&sync.mapping),
                max_new_rows: sync.max_new_rows.as_ref().map(|m| m.value),
                on_change: sync.on_change.as_ref().map(|m| m.value).unwrap_or_default(),
                on_delete: sync.on_delete.as_ref().map(|m| m.value).unwrap_or_default(),
                position: position(spanned),
            });
        }
        self.check_double_accrual(&relative, &name, &syncs, destinations);
        Some(Model {
            name,
            file: relative,
            description: file.description,
            tags: file.tags.iter().map(|t| t.value.clone()).collect(),
            sql: file.sql.value.clone(),
            sql_position: position(&file.sql),
            primary_key,
            primary_key_position: position(&file.primary_key),
            syncs,
        })
    }

    /// A model synced to Zuora Billing (`zuora`, `zuora_file`) and to Zuora Revenue is
    /// counted twice in Revenue when Billing–Revenue Integration carries Billing's usage over
    /// (docs/zuora.md); refused unless the Revenue sync says `allow_billing_and_revenue: true`.
    fn check_double_accrual(&mut self, file: &Path, model: &str, syncs: &[Sync], destinations: &[DestinationDef]) {
        let ledger = |sync: &Sync| {
            destinations
                .iter()
                .find(|d| d.name == sync.destination)
                .map(|d| d.config.ledger())
        };
        let Some(billing) = syncs.iter().find(|s| ledger(s) == Some(Ledger::Billing)) else {
            return;
        };
        for revenue in syncs
            .iter()
            .filter(|s| ledger(s) == Some(Ledger::Revenue) && !s.allow_billing_and_revenue)
        {
            self.problem(
                file,
                revenue.position,
                format!(
                    "model `{model}` is synced to Zuora Billing (`{}`) and to Zuora Revenue (`{}`): with Billing–Revenue \
                     Integration, Billing already carries its usage to Revenue, so Revenue would accrue it twice. Sync \
                     usage to one of them, or set `allow_billing_and_revenue: true` on the `{}` sync if this tenant \
                     has no Billing–Revenue Integration",
                    billing.destination, revenue.destination, revenue.destination
                ),
            );
        }
    }

    fn check_unique_models(&mut self, models: &[Model]) {
        let mut first_seen: BTreeMap<&str, &Model> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for model in models {
            match first_seen.get(model.name.as_str()) {
                Some(first) => duplicates.push((model.file.clone(), model.name.clone(), first.file.clone())),
                None => {
                    first_seen.insert(&model.name, model);
                }
            }
        }
        for (file, name, first) in duplicates {
            self.problem(
                &file,
                Some(Position { line: 1, column: 1 }),
                format!("model `{name}` is also defined in {}", first.display()),
            );
        }
    }
}

/// Parses one YAML document, recording a located problem on failure.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, file: &Path, report: &mut ConfigReport) -> Option<T> {
    match serde_saphyr::from_str::<T>(text) {
        Ok(value) => Some(value),
        Err(error) => {
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(&error)
                .into_owned();
            let position = error.location().and_then(Position::from_location);
            let source_name = file.display().to_string();
            let options = serde_saphyr::render_options! { source_name: Some(source_name.as_str()) };
            let rendered = error.render_with_options(options);
            // Keep only the excerpt (the lines after the first), which points at the spot.
            let snippet = rendered
                .split_once('\n')
                .map(|(_, rest)| rest.to_string())
                .filter(|s| !s.trim().is_empty());
            report.push_problem(ConfigProblem {
                file: file.to_path_buf(),
                position,
                message,
                snippet,
            });
            None
        }
    }
}

/// Model files under `dir`, sorted, recursively; folders that cannot be listed are returned
/// with their error.
fn model_files(dir: &Path) -> (Vec<PathBuf>, Vec<(PathBuf, std::io::Error)>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(error) => {
                unreadable.push((current, error));
                continue;
            }
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(error) => {
                    unreadable.push((current.clone(), error));
                    continue;
                }
            };
            if path.is_dir() {
                stack.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                found.push(path);
            }
        }
    }
    found.sort();
    (found, unreadable)
}

#[cfg(test)]
mod tests;
