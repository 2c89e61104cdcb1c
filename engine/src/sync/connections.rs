//! The destinations' connections (`Destination::connect`: a token, and what the field rules
//! need, such as the tenant's units of measure), made once per run on a task of their own
//! while the first model runs, and awaited where first needed: before a recovery replays rows
//! to a destination, and before a sync sends.

use std::sync::{Arc, Mutex, PoisonError};

use dinmo_connectors::Destination;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tracing::{Instrument, error};

use crate::error::{DinmoError, Result};
use crate::plan::models::connect_destinations;

type Connected = Vec<(String, Result<Vec<String>>)>;

/// The run's connections to its destinations.
#[derive(Debug, Default)]
pub struct Connections {
    /// The connecting task, until it is awaited.
    task: Mutex<Option<JoinHandle<Connected>>>,
    /// Each destination that could not be reached, and why.
    failures: OnceCell<Vec<(String, String)>>,
}

impl Connections {
    /// Starts connecting to `destinations`, all at once, on a task of its own.
    pub fn start(destinations: Vec<(String, Arc<dyn Destination>)>) -> Self {
        let task = tokio::spawn(connect_destinations(destinations).in_current_span());
        Connections {
            task: Mutex::new(Some(task)),
            failures: OnceCell::new(),
        }
    }

    /// No connections: a plan sends nothing and reaches no destination.
    pub fn none() -> Self {
        Connections::default()
    }

    /// Waits for the connections (the first caller does; later ones find them made) and says
    /// why `destination` cannot be reached, when it cannot: a destination that cannot be
    /// reached fails only its own syncs.
    pub async fn failure(&self, destination: &str) -> Result<Option<String>> {
        let failures = self
            .failures
            .get_or_try_init(|| async {
                let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
                let Some(task) = task else {
                    return Ok(Vec::new());
                };
                let connected = task.await.map_err(|source| DinmoError::Interrupted {
                    task: "connecting the destinations".into(),
                    source,
                })?;
                let mut failures = Vec::new();
                for (destination, found) in connected {
                    if let Err(failure) = found {
                        error!(destination = %destination, error = %failure, "destination unreachable");
                        failures.push((destination, failure.to_string()));
                    }
                }
                Ok::<_, DinmoError>(failures)
            })
            .await?;
        Ok(failures
            .iter()
            .find(|(name, _)| name == destination)
            .map(|(_, failure)| failure.clone()))
    }
}
