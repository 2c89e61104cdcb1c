//! The destinations' connections (`Destination::connect`: a token, and what the field rules
//! need, such as the tenant's units of measure), made once per run, each on a task of its own
//! while the first model runs, and awaited where first needed: before a recovery replays rows
//! to a destination, and before a sync sends. A sync waits for its own destination only: one
//! that cannot be reached (and is retried for seconds) holds back no other destination's syncs.

use std::sync::{Arc, Mutex, PoisonError};

use dinmo_connectors::Destination;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tracing::{Instrument, error};

use crate::error::{DinmoError, Result};
use crate::plan::models::connect_destination;

/// The run's connections to its destinations.
#[derive(Debug, Default)]
pub struct Connections {
    each: Vec<Connection>,
}

/// One destination's connection.
#[derive(Debug)]
struct Connection {
    destination: String,
    /// The connecting task, until it is awaited.
    task: Mutex<Option<JoinHandle<Result<Vec<String>>>>>,
    /// Why the destination cannot be reached, once known (`None`: it was reached).
    failure: OnceCell<Option<String>>,
}

impl Connections {
    /// Starts connecting to each of `destinations`, all at once, each on a task of its own.
    pub fn start(destinations: Vec<(String, Arc<dyn Destination>)>) -> Self {
        let each = destinations
            .into_iter()
            .map(|(name, destination)| {
                let connecting = {
                    let name = name.clone();
                    async move { connect_destination(&name, destination.as_ref()).await }
                };
                Connection {
                    destination: name,
                    task: Mutex::new(Some(tokio::spawn(connecting.in_current_span()))),
                    failure: OnceCell::new(),
                }
            })
            .collect();
        Connections { each }
    }

    /// No connections: a plan sends nothing and reaches no destination.
    pub fn none() -> Self {
        Connections::default()
    }

    /// Waits for `destination`'s connection (the first caller does; later ones find it made)
    /// and says why it cannot be reached, when it cannot: a destination that cannot be reached
    /// fails only its own syncs.
    pub async fn failure(&self, destination: &str) -> Result<Option<String>> {
        let Some(connection) = self.each.iter().find(|c| c.destination == destination) else {
            return Ok(None);
        };
        let failure = connection
            .failure
            .get_or_try_init(|| async {
                let task = connection.task.lock().unwrap_or_else(PoisonError::into_inner).take();
                let Some(task) = task else {
                    return Ok(None);
                };
                let found = task.await.map_err(|source| DinmoError::Interrupted {
                    task: format!("connecting to destination `{destination}`"),
                    source,
                })?;
                Ok::<_, DinmoError>(found.err().map(|failure| {
                    error!(destination = %destination, error = %failure, "destination unreachable");
                    failure.to_string()
                }))
            })
            .await?;
        Ok(failure.clone())
    }
}
