//! The identifiers a run passes down to its destinations, and the time a state records:
//! [`SyncId`], [`RunId`] and [`Timestamp`]. They live here, below every destination, so the
//! engine and the connectors share one spelling of each.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(id: &str) -> Result<Self, Self::Err> {
                Ok($name(id.to_string()))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                String::schema_name()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    };
}

string_id!(
    /// A sync's id (`<model>-<destination>` unless the model names it): the name of its folder
    /// in the state store and of its lock.
    SyncId
);

string_id!(
    /// A run's id, `YYYYMMDDTHHMMSSmmmZ-xxxx`: a sync's runs sort by it (see [`RunId::new`]).
    /// Names manifests, parts, journal records and the records' `run_id` field.
    RunId
);

impl RunId {
    /// A new run id from a UUID v7: its millisecond timestamp, and 16 of its random bits as
    /// the suffix that keeps runs started in the same millisecond apart.
    ///
    /// Not the bare UUID: the state orders a sync's runs by id, and every existing state
    /// holds ids of this form (`2026…`), which a UUID (`01…`) would sort before, so the
    /// newest run would look like the oldest.
    pub fn new() -> RunId {
        let id = uuid::Uuid::now_v7();
        let (secs, nanos) = id.get_timestamp().map_or((0, 0), |t| t.to_unix());
        let time = chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or_default(), nanos).unwrap_or_default();
        let bytes = id.as_bytes();
        RunId(format!(
            "{}-{:02x}{:02x}",
            time.format("%Y%m%dT%H%M%S%3fZ"),
            bytes[14],
            bytes[15]
        ))
    }
}

/// A moment, written as RFC 3339 in UTC to the second (`2026-11-21T15:06:00Z`), the form every
/// manifest, report and plan holds. An unfinished time is `Option<Timestamp>`, written as
/// `""` (the form older manifests hold) by [`optional_timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(chrono::DateTime<chrono::Utc>);

impl Timestamp {
    /// Now, to the second.
    pub fn now() -> Timestamp {
        Timestamp(chrono::Utc::now())
    }

    /// The moment.
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

impl From<chrono::DateTime<chrono::Utc>> for Timestamp {
    fn from(time: chrono::DateTime<chrono::Utc>) -> Self {
        Timestamp(time)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = chrono::ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        chrono::DateTime::parse_from_rfc3339(text).map(|t| Timestamp(t.with_timezone(&chrono::Utc)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// Serde for an `Option<Timestamp>` written as `""` when absent: a run not finished yet.
pub mod optional_timestamp {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `""` for none.
    pub fn serialize<S: Serializer>(time: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.collect_str(time),
            None => serializer.serialize_str(""),
        }
    }

    /// `""` (or a missing field, with `#[serde(default)]`) is none.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_fit_file_names() {
        let id = RunId::new();
        assert_eq!(id.len(), "20261121T150600123Z-9f3a".len(), "{id}");
        assert!(id.as_bytes()[8] == b'T' && id.as_bytes()[18] == b'Z');
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = RunId::new();
        assert!(later > id, "{later} sorts after {id}");
    }

    #[test]
    fn timestamps_keep_the_written_form() {
        let written = "\"2026-11-21T15:06:00Z\"";
        let time: Timestamp = serde_json::from_str(written).unwrap();
        assert_eq!(serde_json::to_string(&time).unwrap(), written);
        #[derive(Serialize, Deserialize)]
        struct Run {
            #[serde(with = "optional_timestamp", default)]
            finished_at: Option<Timestamp>,
        }
        let unfinished: Run = serde_json::from_str(r#"{"finished_at": ""}"#).unwrap();
        assert!(unfinished.finished_at.is_none());
        assert_eq!(serde_json::to_string(&unfinished).unwrap(), r#"{"finished_at":""}"#);
        assert!(serde_json::from_str::<Run>(r#"{"finished_at": "yesterday"}"#).is_err());
    }
}
