//! The destination registry: every `type:` a destination in `dinmo.yml` can have, each with its
//! config type and how it is built, in one list ([`DestinationConfig`]). A connector plugs in
//! by implementing [`DestinationSpec`] for its config type and adding one line to the list;
//! the engine reads configs, substitutes `${VAR}`s, resolves locations, checks and builds
//! destinations only through this module.
//!
//! Adding a destination: a connector module with a config type implementing
//! [`DestinationSpec`], and its line below.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::destination::{Destination, DestinationSpec, FieldRoles, Ledger, OpenLocation};
use crate::error::Result;

macro_rules! registry {
    ($($(#[$doc:meta])* $kind:literal => $variant:ident($config:ty),)*) => {
        /// A destination's config, by its `type:`.
        #[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "type", deny_unknown_fields)]
        pub enum DestinationConfig {
            $($(#[$doc])* #[serde(rename = $kind)] $variant($config),)*
        }

        /// Every `type:`, in the registry's order.
        pub const DESTINATION_TYPES: &[&str] = &[$($kind),*];

        /// The field roles of each layout a destination of type `kind` can have; none for a
        /// type the registry does not know.
        pub fn roles_of_type(kind: &str) -> &'static [FieldRoles] {
            match kind {
                $($kind => <$config as DestinationSpec>::ROLES,)*
                _ => &[],
            }
        }

        impl DestinationConfig {
            /// The `type:` value.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(DestinationConfig::$variant(_) => $kind,)*
                }
            }

            /// The config keys that hold a location.
            pub fn locations(&self) -> &'static [&'static str] {
                match self {
                    $(DestinationConfig::$variant(_) => <$config as DestinationSpec>::LOCATIONS,)*
                }
            }

            /// The ledger the destination feeds.
            pub fn ledger(&self) -> Ledger {
                match self {
                    $(DestinationConfig::$variant(_) => <$config as DestinationSpec>::LEDGER,)*
                }
            }

            /// Every problem with the values, as `(key, message)`.
            pub fn validate(&self) -> Vec<(&'static str, String)> {
                match self {
                    $(DestinationConfig::$variant(config) => config.validate(),)*
                }
            }

            /// Settles what the config leaves to its syncs' mapped fields; warnings, as
            /// `(key, message)`.
            pub fn settle(&mut self, mapped: &[&str]) -> Vec<(&'static str, String)> {
                match self {
                    $(DestinationConfig::$variant(config) => config.settle(mapped),)*
                }
            }

            /// Builds the destination named `name`.
            pub fn build(&self, name: &str, open: &OpenLocation<'_>) -> Result<Arc<dyn Destination>> {
                match self {
                    $(DestinationConfig::$variant(config) => config.build(name, open),)*
                }
            }
        }
    };
}

registry! {
    /// Zuora usage import files.
    "zuora_file" => ZuoraFile(crate::zuora_file::ZuoraFileConfig),
    /// Zuora Billing's REST API.
    "zuora" => Zuora(crate::zuora::ZuoraConfig),
    /// Zuora Revenue's usage upload, by file or API.
    "zuora_revenue" => ZuoraRevenue(crate::zuora_revenue::ZuoraRevenueConfig),
}

/// The roles of rows a destination of type `kind` was sent, told from the fields they hold
/// (`columns`): the layout of the type most of whose role fields are there (the first of
/// equals). `None` for a type the registry does not know or rows holding none of them; a
/// role whose field the rows lack (an account mapped by id) is the caller's to leave empty.
pub fn stored_roles(kind: &str, columns: &[&str]) -> Option<FieldRoles> {
    let held = |roles: &FieldRoles| {
        [roles.account, roles.unit, roles.quantity, roles.start]
            .iter()
            .filter(|field| columns.contains(field))
            .count()
    };
    roles_of_type(kind)
        .iter()
        .filter(|roles| held(roles) > 0)
        .rev()
        .max_by_key(|roles| held(roles))
        .copied()
}

impl DestinationConfig {
    /// The config with every string value passed through `substitute` (`${VAR}`s), which is
    /// told the value's key; and every location key's value through `locate` after that.
    /// The config's own types read the result back, so no string is left out.
    pub fn map_strings(
        &self,
        mut substitute: impl FnMut(&str, &str) -> String,
        mut locate: impl FnMut(&str) -> String,
    ) -> std::result::Result<DestinationConfig, String> {
        let mut value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let locations = self.locations();
        if let serde_json::Value::Object(fields) = &mut value {
            for (key, field) in fields.iter_mut().filter(|(key, _)| key.as_str() != "type") {
                map_value(key, field, &mut substitute);
                if locations.contains(&key.as_str())
                    && let serde_json::Value::String(text) = field
                {
                    *text = locate(text);
                }
            }
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// Passes every string in `value` through `substitute`, with the key path it sits at.
fn map_value(key: &str, value: &mut serde_json::Value, substitute: &mut impl FnMut(&str, &str) -> String) {
    match value {
        serde_json::Value::String(text) => *text = substitute(key, text),
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                map_value(&format!("{key}[{index}]"), item, substitute);
            }
        }
        serde_json::Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                map_value(&format!("{key}.{name}"), field, substitute);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_substituted_and_locations_resolved() {
        let config: DestinationConfig = serde_json::from_value(serde_json::json!({
            "type": "zuora_revenue",
            "mode": "api",
            "path": "${OUT}/rev",
            "base_url": "http://127.0.0.1:${PORT}",
            "username": "${USER}",
            "password": "${PASSWORD}",
            "role": "r",
            "clientname": "c",
        }))
        .unwrap();
        let mut seen = Vec::new();
        let mapped = config
            .map_strings(
                |key, text| {
                    seen.push(key.to_string());
                    text.replace("${OUT}", "out")
                        .replace("${PORT}", "8080")
                        .replace("${USER}", "u")
                        .replace("${PASSWORD}", "p")
                },
                |path| format!("/project/{path}"),
            )
            .unwrap();
        let DestinationConfig::ZuoraRevenue(config) = mapped else {
            panic!("the type is kept");
        };
        assert_eq!(config.path.as_deref(), Some("/project/out/rev"));
        assert_eq!(config.base_url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(config.username.as_deref(), Some("u"));
        assert_eq!(config.password.as_ref().map(|p| p.expose()), Some("p"));
        for key in ["path", "base_url", "username", "password"] {
            assert!(seen.iter().any(|k| k == key), "{key} was substituted: {seen:?}");
        }
        assert!(!seen.iter().any(|k| k == "type"));
    }

    #[test]
    fn the_ledgers_are_the_connectors_own() {
        let billing: DestinationConfig =
            serde_json::from_value(serde_json::json!({"type": "zuora_file", "path": "out"})).unwrap();
        assert_eq!(billing.ledger(), Ledger::Billing);
        assert_eq!(billing.locations(), ["path"]);
        assert_eq!(DESTINATION_TYPES, ["zuora_file", "zuora", "zuora_revenue"]);
    }

    #[test]
    fn stored_rows_tell_their_roles_by_the_fields_they_hold() {
        let standard = stored_roles("zuora_file", &["ACCOUNT_ID", "UOM", "QTY", "STARTDATE"]);
        assert_eq!(standard.map(|r| r.quantity), Some("QTY"));
        let active = stored_roles("zuora_file", &["AccountNumber", "UnitOfMeasure", "Quantity"]);
        assert_eq!(active.map(|r| r.unit), Some("UnitOfMeasure"));
        assert_eq!(
            stored_roles("zuora", &["AccountNumber", "Quantity"]).map(|r| r.unit),
            Some("UOM")
        );
        assert_eq!(
            stored_roles("zuora_revenue", &["SO Line ID", "Usage Amount"]).map(|r| r.start),
            Some("TRX_DATE")
        );
        assert_eq!(
            stored_roles("zuora", &["AccountId", "Quantity"]).map(|r| r.account),
            Some("AccountNumber")
        );
        assert_eq!(stored_roles("zuora", &["AccountId"]), None);
        assert_eq!(stored_roles("salesforce", &["AccountNumber", "Quantity"]), None);
    }
}
