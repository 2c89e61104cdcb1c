//! Building a destination from its definition: the connectors' registry
//! ([`dinmo_connectors::registry`]) knows every `type:`; the engine lends it the way to open a
//! location (a path or object-store URL), since it knows the stores' settings.

use std::sync::Arc;

use dinmo_connectors::{Destination, OutputLocation};

use crate::error::{DinmoError, Result};
use crate::project::DestinationDef;
use crate::storage::open_location;

/// Builds the destination `def` describes.
pub fn build_destination(def: &DestinationDef) -> Result<Arc<dyn Destination>> {
    let open = |location: &str| {
        open_location(location)
            .map(|location| OutputLocation {
                store: location.store,
                prefix: location.prefix,
                display: location.display,
            })
            .map_err(|error| error.to_string())
    };
    def.config
        .build(&def.name, &open)
        .map_err(DinmoError::destination_named(&def.name))
}
