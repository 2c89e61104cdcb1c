//! `type: zuora_revenue`: usage to Zuora Revenue (RevPro) through the "RevPro Usage Upload"
//! template, as CSV files for File Upload > Consumption (`mode: file`) or through the Revenue
//! upload API (`mode: api`).
//!
//! Laid out like the other sinks: [`config`] (pure validation), [`template`] (the columns, the
//! date format and the field rules), [`request`] (the CSV file and its name), [`service`]
//! (HTTP: tokens, upload, status, mapping), [`journal`] and [`upload`] (exactly once without
//! help from Revenue), and the writer.
//!
//! Revenue has no duplicate detection and no undo (docs/zuora.md): an upload is recorded before it
//! is sent, never repeated once it may have reached Revenue, and a replay of a stopped run
//! asks the journal (and Revenue's status endpoint) before sending anything.

pub mod config;
pub mod journal;
pub mod request;
pub mod service;
pub mod template;
pub mod upload;
mod writer;

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

pub use config::{RevenueAuth, RevenueMode, ZuoraRevenueConfig};

use crate::destination::{
    Destination, DestinationWriter, FieldRoles, FieldSpec, OutputLocation, SchemaProblem, WriteContext,
};
use crate::error::{ConnectorError, Result};
use crate::rules::Rejection;
use journal::Journal;
use service::{RevenueCall, RevenueService, TemplateMapping, template_mapping, upload_slots};
use template::{DateFormat, MANDATORY, PreparedRows, Rules};
use upload::Uploader;
use writer::{RevenueWriter, Sink};

/// A configured `zuora_revenue` destination.
pub struct ZuoraRevenueDestination {
    name: String,
    config: ZuoraRevenueConfig,
    rules: Rules,
    fields: Vec<FieldSpec>,
    output: Option<OutputLocation>,
    service: Option<Arc<RevenueService>>,
    mapping: RwLock<Option<TemplateMapping>>,
}

impl fmt::Debug for ZuoraRevenueDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZuoraRevenueDestination")
            .field("name", &self.name)
            .field("mode", &self.config.mode)
            .field("template", &self.config.template)
            .finish()
    }
}

impl ZuoraRevenueDestination {
    /// Builds the destination; `output` is where `config.path` points (file mode), resolved
    /// by the caller. Fails on the first config problem.
    pub fn new(name: impl Into<String>, config: ZuoraRevenueConfig, output: Option<OutputLocation>) -> Result<Self> {
        let name = name.into();
        let invalid = |message: String| ConnectorError::InvalidConfig {
            destination: name.clone(),
            message,
        };
        if let Some((key, message)) = config.validate().into_iter().next() {
            return Err(invalid(format!("{key} {message}")));
        }
        let date_format = DateFormat::parse(&config.date_format).map_err(|m| invalid(format!("date_format {m}")))?;
        let service = match config.mode {
            RevenueMode::File => {
                if output.is_none() {
                    return Err(invalid("path: no output location was resolved".into()));
                }
                None
            }
            RevenueMode::Api => Some(Arc::new(RevenueService::new(&name, &config)?)),
        };
        Ok(ZuoraRevenueDestination {
            rules: Rules {
                date_format,
                quantity_non_negative: config.quantity_non_negative,
                amount_tolerance: config.amount_tolerance,
            },
            fields: MANDATORY.iter().map(|(label, _)| template::spec(label, None)).collect(),
            name,
            config,
            output,
            service,
            mapping: RwLock::new(None),
        })
    }

    fn mapping(&self) -> Option<TemplateMapping> {
        self.mapping
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// The columns of a usage line that carry the sales order line, product, amount and date.
const ROLES: FieldRoles = FieldRoles {
    account: "SO Line ID",
    unit: "Sub Product",
    quantity: "Usage Amount",
    start: "TRX_DATE",
};

impl crate::destination::DestinationSpec for ZuoraRevenueConfig {
    const LOCATIONS: &'static [&'static str] = &["path"];
    const LEDGER: crate::destination::Ledger = crate::destination::Ledger::Revenue;
    const ROLES: &'static [FieldRoles] = &[ROLES];

    fn validate(&self) -> Vec<(&'static str, String)> {
        ZuoraRevenueConfig::validate(self)
    }

    /// The folder is opened only for `mode: file`; the API mode writes nowhere.
    fn build(&self, name: &str, open: &crate::destination::OpenLocation<'_>) -> Result<Arc<dyn Destination>> {
        let output = match &self.path {
            Some(path) if self.mode == RevenueMode::File => {
                Some(open(path).map_err(|message| ConnectorError::InvalidConfig {
                    destination: name.to_string(),
                    message,
                })?)
            }
            _ => None,
        };
        Ok(Arc::new(ZuoraRevenueDestination::new(name, self.clone(), output)?))
    }
}

#[async_trait]
impl Destination for ZuoraRevenueDestination {
    fn correcting(&self) -> crate::destination::Correcting {
        crate::destination::Correcting::Not(
            "Zuora Revenue corrects usage only through its edit-usage operation, by usage record id and revenue contract id \
             (https://developer.zuora.com/other-api/revenue-api-3/usage), which a usage upload does not return, and an upload \
             cannot be undone; use `on_change: hold` (or `ignore`) and correct Revenue there",
        )
    }

    fn kind(&self) -> &'static str {
        "zuora_revenue"
    }

    /// Revenue's integration API uploads files and answers for each upload (its status and
    /// the rows it refused, which every run records); it documents no read of what it staged
    /// or turned into transaction lines, so nothing can be compared there (docs/zuora.md,
    /// "Zuora Revenue").
    async fn holdings(
        &self,
        _query: &crate::destination::HoldingsQuery,
        _sink: &mut crate::destination::HoldingsSink<'_>,
    ) -> Result<crate::destination::Holdings> {
        Ok(crate::destination::Holdings::Unreadable(
            "Zuora Revenue's API documents no read of the lines it staged (only each upload's status and refused rows, which every run records); check staged lines in Revenue's own reports".into(),
        ))
    }

    /// Each upload is journalled before it is sent; one whose answer never came is settled by
    /// hand through its journal record.
    async fn resolve_undecided(
        &self,
        journal: crate::destination::OutputLocation,
        run: &crate::ids::RunId,
        file: Option<&str>,
        sent: bool,
    ) -> Result<crate::destination::Resolution> {
        journal::resolve_intents(journal, run, file, sent).await
    }

    fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// Any label is a column of some tenant's template; the mandatory ones have kinds.
    fn field(&self, name: &str) -> Option<FieldSpec> {
        Some(template::spec(name, None))
    }

    fn roles(&self) -> FieldRoles {
        ROLES
    }

    fn validate_schema(&self, schema: &Schema) -> Vec<SchemaProblem> {
        template::schema_problems(schema)
    }

    fn check_field(&self, field: &str) -> Option<String> {
        let mapping = self.mapping().filter(|m| !m.labels.is_empty())?;
        (!mapping.labels.iter().any(|label| label == field)).then(|| {
            format!(
                "`{field}` is not a column of template `{}` in this tenant; its columns: {}",
                self.config.template,
                mapping.labels.join(", ")
            )
        })
    }

    fn check_batch(&self, batch: &RecordBatch) -> Result<Vec<Option<Rejection>>> {
        Ok(PreparedRows::new(&self.name, &self.rules, batch)?.rejections)
    }

    async fn connect(&self) -> Result<Vec<String>> {
        let Some(service) = &self.service else {
            return Ok(Vec::new());
        };
        service.token().await?;
        let mut found = vec![format!("authenticated at {}", service.base_url())];
        let call = RevenueCall::Mapping {
            template: self.config.template.clone(),
        };
        let answer = service.call(&call).await?;
        if !(200..300).contains(&answer.status) {
            return Err(service.api_error(&call, &answer));
        }
        let mapping = template_mapping(&answer.body);
        if mapping.labels.is_empty() {
            return Err(ConnectorError::InvalidConfig {
                destination: self.name.clone(),
                message: format!(
                    "template `{}` has no columns in this tenant ({})",
                    self.config.template,
                    answer.message()
                ),
            });
        }
        if let Some(tenant) = &mapping.date_format
            && !self.rules.date_format.same_as(tenant)
        {
            return Err(ConnectorError::InvalidConfig {
                destination: self.name.clone(),
                message: format!(
                    "date_format is `{}` but template `{}` in this tenant expects `{tenant}`; set date_format: {tenant}",
                    self.rules.date_format.as_str(),
                    self.config.template
                ),
            });
        }
        found.push(format!(
            "template `{}`: {} column(s), date format {}",
            self.config.template,
            mapping.labels.len(),
            mapping.date_format.as_deref().unwrap_or("not given")
        ));
        match self.mapping.write() {
            Ok(mut slot) => *slot = Some(mapping),
            Err(poisoned) => *poisoned.into_inner() = Some(mapping),
        }
        Ok(found)
    }

    async fn open(&self, context: WriteContext) -> Result<Box<dyn DestinationWriter>> {
        let sink = match (&self.service, &self.output) {
            (Some(service), _) => {
                let journal = context.journal.clone().ok_or_else(|| ConnectorError::InvalidConfig {
                    destination: self.name.clone(),
                    message: "mode: api needs a place to record its uploads, and none was given".into(),
                })?;
                Sink::Api(Arc::new(Uploader {
                    destination: self.name.clone(),
                    template: self.config.template.clone(),
                    run: context.run_id.clone(),
                    service: Arc::clone(service),
                    journal: Journal::new(&self.name, journal),
                    slots: upload_slots(service.base_url()),
                    status_timeout: Duration::from_secs(self.config.status_timeout_secs),
                    asynchronous: self.config.asynchronous(),
                }))
            }
            (None, Some(output)) => Sink::Folder(output.clone()),
            (None, None) => {
                return Err(ConnectorError::InvalidConfig {
                    destination: self.name.clone(),
                    message: "path: no output location was resolved".into(),
                });
            }
        };
        Ok(Box::new(RevenueWriter::new(
            &self.name,
            self.rules.clone(),
            self.config.max_lines(),
            context,
            sink,
        )))
    }

    /// A replay rewrites the same files (file mode) or consults the upload journal before
    /// sending anything (api mode), so it is safe at any age.
    fn replay_window(&self) -> Option<Duration> {
        None
    }
}
