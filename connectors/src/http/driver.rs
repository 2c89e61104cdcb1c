//! The one retry loop every HTTP destination sends through: each attempt's outcome is
//! classified by [`classify`] (the documented rules, `retry.rs`) and retried, given up on, or
//! handed back ([`with_retries`]); a refused bearer token is renewed once ([`with_token`]). A
//! service supplies only what is its own ([`Service`], [`Authenticated`]): pacing before each
//! attempt, counters, what in a refusal's body marks it temporary, and how it fetches a token.

use reqwest::header::HeaderMap;
use serde_json::Value;
use tracing::warn;

use super::exchange::Exchange;
use super::retry::{Action, RetryPolicy, RetryReason, classify};
use super::token::{Token, TokenCache};

/// What a service adds to the loop.
pub trait Service {
    /// The destination's name, for errors and logs.
    fn destination(&self) -> &str;

    /// The policy the service's requests retry under.
    fn policy(&self) -> &RetryPolicy;

    /// Waits until the service's own pace allows another request (none by default).
    fn pace(&self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }

    /// Counts what happened (nothing by default).
    fn observe(&self, _event: Event) {}

    /// Why a refusal's body says it is temporary, when it does (never, by default).
    fn temporary(&self, _body: &Value) -> Option<String> {
        None
    }
}

/// What the loop tells a service, for its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A request went out.
    Sent,
    /// A 429 answer is being retried.
    Throttled,
    /// A wait before the next attempt began.
    Retrying,
}

/// A final answer: 2xx, or a refusal the caller reads.
#[derive(Debug, Clone)]
pub struct Answered {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

/// A request that ended without a final answer.
#[derive(Debug)]
pub enum Ended {
    /// The credentials were refused (HTTP 401), with the answer's body for its message.
    Unauthorized(Value),
    /// Retries ran out, or retrying could do harm
    /// ([`ConnectorError::exhausted`](crate::ConnectorError::exhausted) says so).
    Failed(Exhausted),
}

/// A request the loop gave up on.
#[derive(Debug)]
pub struct Exhausted {
    /// `GET`, `POST`, …
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Attempts made.
    pub attempts: usize,
    /// Why the last one failed.
    pub last: RetryReason,
}

/// One request: what it is, for errors and logs, and whether repeating it can have no second
/// effect.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// A GET, a DELETE, or a POST under an idempotency key.
    pub idempotent: bool,
}

impl<'a> Request<'a> {
    /// A token request to `url`: asking for another token has no second effect, so it may be
    /// repeated.
    pub fn token(url: &'a str) -> Self {
        Request {
            method: "POST",
            url,
            idempotent: true,
        }
    }
}

/// A service that sends a bearer token, fetched by itself and kept in a [`TokenCache`].
pub trait Authenticated: Service {
    /// Why no token could be had.
    type Error;

    /// Where the service keeps its token.
    fn tokens(&self) -> &TokenCache;

    /// Fetches a new token.
    fn fetch_token(&self) -> impl std::future::Future<Output = Result<Token, Self::Error>> + Send;
}

/// How an authenticated request ended without a final answer.
#[derive(Debug)]
pub enum Refused<E> {
    /// No token could be had.
    Token(E),
    /// The request ended without an answer; `Unauthorized` once a renewed token was refused
    /// too.
    Ended(Ended),
}

/// [`with_retries`] with the service's token, which `send` is given: a refused token is
/// forgotten and the request sent once more with a new one.
pub async fn with_token<S, F, Fut>(
    service: &S,
    request: Request<'_>,
    mut send: F,
) -> Result<Answered, Refused<S::Error>>
where
    S: Authenticated + ?Sized,
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Exchange>,
{
    let mut renewed = false;
    loop {
        let token = service
            .tokens()
            .get(|| service.fetch_token())
            .await
            .map_err(Refused::Token)?;
        match with_retries(service, request, || send(token.clone())).await {
            Err(Ended::Unauthorized(body)) => {
                service.tokens().forget(&token).await;
                if renewed {
                    return Err(Refused::Ended(Ended::Unauthorized(body)));
                }
                renewed = true;
                tracing::debug!(destination = %service.destination(), "token refused; fetching a new one");
            }
            done => return done.map_err(Refused::Ended),
        }
    }
}

/// Sends with `send` until the policy calls the answer final.
pub async fn with_retries<S, F, Fut>(service: &S, request: Request<'_>, mut send: F) -> Result<Answered, Ended>
where
    S: Service + ?Sized,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Exchange>,
{
    let Request {
        method,
        url,
        idempotent,
    } = request;
    let mut retrying = service.policy().start();
    loop {
        service.pace().await;
        service.observe(Event::Sent);
        let exchange = send().await;
        let why = match classify(&exchange.attempt(|body| service.temporary(body)), idempotent) {
            Action::Done => match exchange {
                Exchange::Answered { status, headers, body } => return Ok(Answered { status, headers, body }),
                // `classify` never calls a missing answer final; were it to, nothing was read.
                Exchange::NotSent(why) => RetryReason::NotSent(why),
                Exchange::Lost(why) => RetryReason::Lost(why),
            },
            Action::Reauthenticate => {
                let body = match exchange {
                    Exchange::Answered { body, .. } => body,
                    _ => Value::Null,
                };
                return Err(Ended::Unauthorized(body));
            }
            Action::GiveUp(why) => why,
            Action::Retry { delay, why } => {
                if let Exchange::Answered { status: 429, .. } = exchange {
                    service.observe(Event::Throttled);
                }
                match retrying.next_wait(delay) {
                    Some(wait) => {
                        service.observe(Event::Retrying);
                        warn!(destination = %service.destination(), %method, %url, attempt = retrying.attempts() - 1, wait_ms = wait.as_millis() as u64, reason = %why, "retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => why,
                }
            }
        };
        return Err(Ended::Failed(Exhausted {
            method: method.to_string(),
            url: url.to_string(),
            attempts: retrying.attempts(),
            last: why,
        }));
    }
}
