//! `type: zuora_file`: Zuora usage import files written to a folder or object store.
//!
//! Rows are checked against the layout's field rules first; a refused row never reaches a
//! file. Accepted rows are encoded into CSV files split at `max_file_bytes`, each stored
//! atomically (an object-store `put`: a reader never sees half a file under its final name).
//! A row counts as delivered once the file that carries it is stored.

mod config;
mod request;
mod writer;

use std::fmt;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

pub use crate::zuora_common::{
    CUSTOM_FIELD_PREFIX, ColumnDefault, ColumnSet, CustomFields, EncodeError, EncodedFile, Layout, LayoutColumn,
    MAX_FILE_NAME_CHARS, QUANTITY_LIMITS, UsageFileEncoder, file_name,
};
pub use config::{DEFAULT_MAX_FILE_BYTES, ZuoraFileConfig};

use crate::destination::{Destination, DestinationWriter, FieldSpec, OutputLocation, WriteContext};
use crate::error::{ConnectorError, Result};
use crate::rules::Rejection;

/// A configured `zuora_file` destination.
pub struct ZuoraFileDestination {
    name: String,
    config: ZuoraFileConfig,
    fields: Vec<FieldSpec>,
    output: OutputLocation,
}

impl fmt::Debug for ZuoraFileDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZuoraFileDestination")
            .field("name", &self.name)
            .field("layout", &self.config.layout())
            .field("output", &self.output.display)
            .finish()
    }
}

impl ZuoraFileDestination {
    /// Builds the destination; `output` is where `config.path` points, resolved by the caller.
    pub fn new(name: impl Into<String>, config: ZuoraFileConfig, output: OutputLocation) -> Result<Self> {
        let name = name.into();
        if let Some((key, message)) = config.validate().into_iter().next() {
            return Err(ConnectorError::InvalidConfig {
                destination: name,
                message: format!("{key} {message}"),
            });
        }
        let fields = config.layout().columns().iter().map(|c| c.spec.clone()).collect();
        Ok(ZuoraFileDestination {
            name,
            config,
            fields,
            output,
        })
    }
}

/// The columns of an Active Rating usage file that carry the account, unit, quantity and start.
const ACTIVE_RATING_ROLES: crate::destination::FieldRoles = crate::destination::FieldRoles {
    account: "AccountNumber",
    unit: "UnitOfMeasure",
    quantity: "Quantity",
    start: "StartDateTime",
};

/// The columns of a standard usage import file that carry the account, unit, quantity and start.
const STANDARD_ROLES: crate::destination::FieldRoles = crate::destination::FieldRoles {
    account: "ACCOUNT_ID",
    unit: "UOM",
    quantity: "QTY",
    start: "STARTDATE",
};

impl crate::destination::DestinationSpec for ZuoraFileConfig {
    const LOCATIONS: &'static [&'static str] = &["path"];
    const LEDGER: crate::destination::Ledger = crate::destination::Ledger::Billing;
    const ROLES: &'static [crate::destination::FieldRoles] = &[ACTIVE_RATING_ROLES, STANDARD_ROLES];

    fn validate(&self) -> Vec<(&'static str, String)> {
        ZuoraFileConfig::validate(self)
    }

    fn settle(&mut self, mapped: &[&str]) -> Vec<(&'static str, String)> {
        self.settle_layout(mapped)
    }

    fn build(
        &self,
        name: &str,
        open: &crate::destination::OpenLocation<'_>,
    ) -> Result<std::sync::Arc<dyn Destination>> {
        let output = open(&self.path).map_err(|message| ConnectorError::InvalidConfig {
            destination: name.to_string(),
            message,
        })?;
        Ok(std::sync::Arc::new(ZuoraFileDestination::new(
            name,
            self.clone(),
            output,
        )?))
    }
}

#[async_trait]
impl Destination for ZuoraFileDestination {
    fn correcting(&self) -> crate::destination::Correcting {
        // A file cannot change what an earlier file delivered: only a row for the difference.
        crate::destination::Correcting::Differences
    }

    fn kind(&self) -> &'static str {
        "zuora_file"
    }

    /// Files are written, not sent: what Zuora holds is learnt from a usage export a person
    /// downloads (`dinmo reconcile --zuora-export`), read by the engine.
    async fn holdings(
        &self,
        _query: &crate::destination::HoldingsQuery,
        _sink: &mut crate::destination::HoldingsSink<'_>,
    ) -> Result<crate::destination::Holdings> {
        Ok(crate::destination::Holdings::Unreadable(
            "a `zuora_file` destination writes files and cannot read Zuora; give a usage export downloaded from Zuora with --zuora-export FILE".into(),
        ))
    }

    fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    fn roles(&self) -> crate::destination::FieldRoles {
        match self.config.layout() {
            Layout::ActiveRating => ACTIVE_RATING_ROLES,
            Layout::Standard => STANDARD_ROLES,
        }
    }

    fn field(&self, name: &str) -> Option<FieldSpec> {
        self.config.layout().column(name).map(|c| c.spec)
    }

    fn defaults_field(&self, field: &str) -> bool {
        self.config
            .layout()
            .column(field)
            .is_some_and(|c| c.default == ColumnDefault::AccountTag)
    }

    fn check_batch(&self, batch: &RecordBatch) -> Result<Vec<Option<Rejection>>> {
        Ok(
            crate::zuora_common::prepare::PreparedBatch::new(&self.name, &self.config.layout().column_set(), batch)?
                .rejections,
        )
    }

    async fn open(&self, context: WriteContext) -> Result<Box<dyn DestinationWriter>> {
        Ok(Box::new(writer::ZuoraFileWriter::new(
            &self.name,
            &self.config,
            &self.output,
            context,
        )?))
    }
}
