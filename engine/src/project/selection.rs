//! `--select` / `--exclude`, as dbt users expect: model names, `tag:<tag>`,
//! `sync:<model>.<destination>` and `state:modified`. Selectors separated by spaces (or given
//! several times) are a union; parts joined by commas are an intersection
//! (`tag:billing,state:modified`).

use dinmo_connectors::SyncId;
use std::collections::HashSet;

use crate::error::{DinmoError, Result};
use crate::project::{Model, Project, Sync};

/// One part of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Model(String),
    Tag(String),
    Sync(String),
    /// SQL or mapping differ from the last manifest (or there is none).
    StateModified,
}

impl Atom {
    fn parse(raw: &str, whole: &str) -> Result<Self> {
        let error = |message: &str| DinmoError::Selector {
            selector: whole.to_string(),
            message: message.to_string(),
        };
        let atom = match raw.split_once(':') {
            None => Atom::Model(raw.to_string()),
            Some(("tag", tag)) => Atom::Tag(tag.to_string()),
            Some(("sync", sync)) if sync.contains('.') => Atom::Sync(sync.to_string()),
            Some(("sync", _)) => return Err(error("write sync:<model>.<destination>")),
            Some(("state", "modified")) => Atom::StateModified,
            Some(("state", other)) => {
                return Err(error(&format!("unknown state selector `{other}`; use state:modified")));
            }
            Some((method, _)) => {
                return Err(error(&format!(
                    "unknown method `{method}`; use a model name, tag:<tag>, sync:<model>.<destination> or state:modified"
                )));
            }
        };
        match &atom {
            Atom::Model(v) | Atom::Tag(v) | Atom::Sync(v) if v.is_empty() => Err(error("is empty")),
            _ => Ok(atom),
        }
    }

    fn matches(&self, model: &Model, sync: Option<&Sync>, modified: &HashSet<SyncId>) -> bool {
        let syncs: Vec<&Sync> = match sync {
            Some(sync) => vec![sync],
            None => model.syncs.iter().collect(),
        };
        match self {
            Atom::Model(name) => &model.name == name,
            Atom::Tag(tag) => model.tags.contains(tag),
            Atom::Sync(id) => syncs.iter().any(|s| &s.id == id),
            Atom::StateModified => syncs.iter().any(|s| modified.contains(&s.id)),
        }
    }
}

/// A selector: its atoms must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    text: String,
    atoms: Vec<Atom>,
}

impl Selector {
    fn parse(raw: &str) -> Result<Self> {
        let atoms = raw
            .split(',')
            .map(|atom| Atom::parse(atom, raw))
            .collect::<Result<Vec<_>>>()?;
        Ok(Selector {
            text: raw.to_string(),
            atoms,
        })
    }

    fn matches(&self, model: &Model, sync: Option<&Sync>, modified: &HashSet<SyncId>) -> bool {
        self.atoms.iter().all(|atom| atom.matches(model, sync, modified))
    }

    fn needs_state(&self) -> bool {
        self.atoms.contains(&Atom::StateModified)
    }
}

/// Which models and syncs a command acts on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    select: Vec<Selector>,
    exclude: Vec<Selector>,
    /// Syncs whose SQL or mapping differ from the compared state.
    modified: HashSet<SyncId>,
}

fn parse_all(raw: &[String]) -> Result<Vec<Selector>> {
    raw.iter()
        .flat_map(|s| s.split_whitespace())
        .map(Selector::parse)
        .collect()
}

impl Selection {
    /// Parses `--select` and `--exclude`. `state:modified` matches nothing until
    /// [`Selection::with_modified`] says which syncs changed (see `plan::modified`).
    pub fn parse(select: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Selection {
            select: parse_all(select)?,
            exclude: parse_all(exclude)?,
            modified: HashSet::new(),
        })
    }

    /// Whether a selector uses `state:modified`, which needs the state to resolve.
    pub fn needs_state(&self) -> bool {
        self.select.iter().chain(&self.exclude).any(Selector::needs_state)
    }

    /// The syncs whose SQL or mapping differ from the compared state.
    pub fn with_modified(mut self, modified: HashSet<SyncId>) -> Self {
        self.modified = modified;
        self
    }

    /// Every `--select` must match some model or sync (`state:modified` may rightly match
    /// nothing: an unchanged project).
    pub fn check_matches(&self, project: &Project) -> Result<()> {
        for selector in &self.select {
            if !selector.needs_state() && !project.models.iter().any(|m| selector.matches(m, None, &self.modified)) {
                return Err(DinmoError::Selector {
                    selector: selector.text.clone(),
                    message: "matches no model or sync".to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether any of the model's syncs is selected.
    pub fn includes_model(&self, model: &Model) -> bool {
        model.syncs.iter().any(|s| self.includes_sync(model, s))
    }

    /// Whether `sync` of `model` is selected.
    pub fn includes_sync(&self, model: &Model, sync: &Sync) -> bool {
        let selected =
            self.select.is_empty() || self.select.iter().any(|s| s.matches(model, Some(sync), &self.modified));
        selected
            && !self
                .exclude
                .iter()
                .any(|s| s.matches(model, Some(sync), &self.modified))
    }
}
