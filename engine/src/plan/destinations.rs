//! Builds connector instances from the project's destination configs.

use std::sync::Arc;

use dinmo_connectors::zuora::ZuoraDestination;
use dinmo_connectors::zuora_file::ZuoraFileDestination;
use dinmo_connectors::{Destination, OutputLocation};

use crate::error::{DinmoError, Result};
use crate::project::{DestinationConfig, DestinationDef};
use crate::storage::open_location;

/// Builds the destination `def` describes.
pub fn build_destination(def: &DestinationDef) -> Result<Arc<dyn Destination>> {
    match &def.config {
        DestinationConfig::ZuoraFile(config) => {
            let location = open_location(&config.path)?;
            let output = OutputLocation {
                store: location.store,
                prefix: location.prefix,
                display: location.display,
            };
            let destination = ZuoraFileDestination::new(def.name.clone(), config.clone(), output)
                .map_err(DinmoError::destination(def.name.clone()))?;
            Ok(Arc::new(destination))
        }
        DestinationConfig::Zuora(config) => {
            let destination = ZuoraDestination::new(def.name.clone(), config.clone())
                .map_err(DinmoError::destination(def.name.clone()))?;
            Ok(Arc::new(destination))
        }
    }
}
