//! Credentials and endpoints every HTTP destination shares: a secret that never prints, and
//! the rule that credentials travel only over `https://` (or to a loopback simulator).

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use url::Url;

/// A secret string: never printed, never in `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Writes the value itself: only for the config's round trip through `${VAR}` substitution
/// ([`crate::registry::DestinationConfig::map_strings`]). Nothing else serialises a config.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `https://` anywhere; `http://` only to a loopback address (a simulator or a proxy).
pub fn check_base_url(raw: &str) -> Result<(), String> {
    let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "`{raw}` uses http:// to a non-loopback host; credentials and billing data need https://"
                ))
            }
        }
        other => Err(format!("`{raw}` has scheme `{other}`; use https://")),
    }
}
