//! The destination registry: every destination `type:` and how to build it, in one table.
//! The engine builds destinations only through [`build_destination`]; a new sink adds its
//! config variant (`project_file.rs`) and one row here.

use std::sync::Arc;

use dinmo_connectors::zuora::ZuoraDestination;
use dinmo_connectors::zuora_file::ZuoraFileDestination;
use dinmo_connectors::zuora_revenue::{RevenueMode, ZuoraRevenueDestination};
use dinmo_connectors::{Destination, OutputLocation};

use crate::error::{DinmoError, Result};
use crate::project::{DestinationConfig, DestinationDef};
use crate::storage::open_location;

/// A built destination, or why it could not be built; `None`: the definition is of another type.
type Built = Option<Result<Arc<dyn Destination>>>;

/// How to build one destination type from its definition.
struct Registration {
    /// The `type:` in `dinmo.yml`.
    kind: &'static str,
    /// Builds it; `None` when the definition is of another type.
    build: fn(&DestinationDef) -> Built,
}

/// Every destination type dinmo can send to.
const REGISTRY: &[Registration] = &[
    Registration {
        kind: "zuora_file",
        build: zuora_file,
    },
    Registration {
        kind: "zuora",
        build: zuora,
    },
    Registration {
        kind: "zuora_revenue",
        build: zuora_revenue,
    },
];

/// Builds the destination `def` describes, through the registry row of its `type:`.
pub fn build_destination(def: &DestinationDef) -> Result<Arc<dyn Destination>> {
    let kind = def.config.kind();
    REGISTRY
        .iter()
        .filter(|registration| registration.kind == kind)
        .find_map(|registration| (registration.build)(def))
        .unwrap_or_else(|| {
            Err(DinmoError::UnknownDestinationType {
                destination: def.name.clone(),
                kind: kind.to_string(),
            })
        })
}

fn zuora_file(def: &DestinationDef) -> Built {
    let DestinationConfig::ZuoraFile(config) = &def.config else {
        return None;
    };
    Some((|| {
        let location = open_location(&config.path)?;
        let output = OutputLocation {
            store: location.store,
            prefix: location.prefix,
            display: location.display,
        };
        let destination = ZuoraFileDestination::new(def.name.clone(), config.clone(), output)
            .map_err(DinmoError::destination_named(&def.name))?;
        Ok(Arc::new(destination) as Arc<dyn Destination>)
    })())
}

fn zuora(def: &DestinationDef) -> Built {
    let DestinationConfig::Zuora(config) = &def.config else {
        return None;
    };
    Some(
        ZuoraDestination::new(def.name.clone(), config.clone())
            .map(|destination| Arc::new(destination) as Arc<dyn Destination>)
            .map_err(DinmoError::destination_named(&def.name)),
    )
}

fn zuora_revenue(def: &DestinationDef) -> Built {
    let DestinationConfig::ZuoraRevenue(config) = &def.config else {
        return None;
    };
    Some((|| {
        let output = match &config.path {
            Some(path) if config.mode == RevenueMode::File => {
                let location = open_location(path)?;
                Some(OutputLocation {
                    store: location.store,
                    prefix: location.prefix,
                    display: location.display,
                })
            }
            _ => None,
        };
        let destination = ZuoraRevenueDestination::new(def.name.clone(), config.clone(), output)
            .map_err(DinmoError::destination_named(&def.name))?;
        Ok(Arc::new(destination) as Arc<dyn Destination>)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_type_has_one_registry_row() {
        let types: Vec<&str> = REGISTRY.iter().map(|r| r.kind).collect();
        assert_eq!(types, ["zuora_file", "zuora", "zuora_revenue"]);
        let schema = serde_json::to_string(&schemars::schema_for!(DestinationConfig)).unwrap();
        for kind in types {
            assert!(
                schema.contains(&format!("\"{kind}\"")),
                "{kind} is a `type:` of the config"
            );
        }
    }
}
