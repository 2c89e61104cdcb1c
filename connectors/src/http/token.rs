//! A token shared by the requests of one destination: fetched once, reused until shortly
//! before it expires, and forgotten when the server refuses it (so the next request fetches a
//! new one). How a token is fetched is each API's own business; keeping it is not.

use std::future::Future;
use std::time::Instant;

use tokio::sync::Mutex;

/// A fetched token and when to stop using it.
pub struct Token {
    /// The token itself; never printed.
    pub value: String,
    /// After this instant a new one is fetched.
    pub renew_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"***")
            .field("renew_at", &self.renew_at)
            .finish()
    }
}

/// The token of one destination.
#[derive(Debug, Default)]
pub struct TokenCache {
    slot: Mutex<Option<Token>>,
}

impl TokenCache {
    /// The cached token while it is fresh; otherwise one from `fetch`, kept for later calls.
    /// Callers wait for each other, so one expiry causes one fetch.
    pub async fn get<F, Fut, E>(&self, fetch: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.as_ref()
            && token.renew_at > Instant::now()
        {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// Forgets `stale` (a token the server refused), unless another caller already replaced it.
    pub async fn forget(&self, stale: &str) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale) {
            *slot = None;
        }
    }
}
