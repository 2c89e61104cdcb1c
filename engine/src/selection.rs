//! `--select` / `--exclude`: model names, `tag:<tag>`, `sync:<model>.<destination>`.

use crate::error::{DinmoError, Result};
use crate::project::{Model, Project, Sync};

/// One selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Model(String),
    Tag(String),
    Sync(String),
}

impl Selector {
    fn parse(raw: &str) -> Result<Self> {
        let error = |message: &str| DinmoError::Selector {
            selector: raw.to_string(),
            message: message.to_string(),
        };
        let selector = match raw.split_once(':') {
            None => Selector::Model(raw.to_string()),
            Some(("tag", tag)) => Selector::Tag(tag.to_string()),
            Some(("sync", sync)) if sync.contains('.') => Selector::Sync(sync.to_string()),
            Some(("sync", _)) => return Err(error("write sync:<model>.<destination>")),
            Some((method, _)) => {
                return Err(error(&format!(
                    "unknown method `{method}`; use a model name, tag:<tag> or sync:<model>.<destination>"
                )));
            }
        };
        match &selector {
            Selector::Model(v) | Selector::Tag(v) | Selector::Sync(v) if v.is_empty() => Err(error("is empty")),
            _ => Ok(selector),
        }
    }

    fn matches(&self, model: &Model, sync: Option<&Sync>) -> bool {
        match self {
            Selector::Model(name) => &model.name == name,
            Selector::Tag(tag) => model.tags.contains(tag),
            Selector::Sync(id) => match sync {
                Some(sync) => &sync.id == id,
                None => model.syncs.iter().any(|s| &s.id == id),
            },
        }
    }
}

/// Which models and syncs a command acts on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    select: Vec<Selector>,
    exclude: Vec<Selector>,
}

impl Selection {
    /// Parses the selectors and checks each `--select` one matches something in `project`.
    pub fn new(project: &Project, select: &[String], exclude: &[String]) -> Result<Self> {
        let parse_all = |raw: &[String]| -> Result<Vec<Selector>> {
            raw.iter()
                .flat_map(|s| s.split_whitespace())
                .map(Selector::parse)
                .collect()
        };
        let selection = Selection {
            select: parse_all(select)?,
            exclude: parse_all(exclude)?,
        };
        for (raw, selector) in select.iter().flat_map(|s| s.split_whitespace()).zip(&selection.select) {
            if !project.models.iter().any(|m| selector.matches(m, None)) {
                return Err(DinmoError::Selector {
                    selector: raw.to_string(),
                    message: "matches no model or sync".to_string(),
                });
            }
        }
        Ok(selection)
    }

    /// Whether any of the model's syncs is selected.
    pub fn includes_model(&self, model: &Model) -> bool {
        model.syncs.iter().any(|s| self.includes_sync(model, s))
    }

    /// Whether `sync` of `model` is selected.
    pub fn includes_sync(&self, model: &Model, sync: &Sync) -> bool {
        let selected = self.select.is_empty() || self.select.iter().any(|s| s.matches(model, Some(sync)));
        selected && !self.exclude.iter().any(|s| s.matches(model, Some(sync)))
    }
}
