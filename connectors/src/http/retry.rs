//! One retry policy for every request a connector sends, in the style of Vector's
//! `RetryLogic`: [`classify`] looks at one attempt and says what to do — done, retry after a
//! kind of delay, re-authenticate, or give up — and [`Retrying`] turns that into a wait, with
//! backon supplying the exponential delays. Nothing else in the connectors decides when to
//! retry.
//!
//! The rules follow Zuora's documentation (`docs/zuora.md`, "Rate and concurrency
//! limits"):
//! - `RateLimit-Limit`, `-Remaining` and `-Reset` come on every response; `RateLimit-Reset`
//!   is a retry hint only for a 429 whose `RateLimit-Remaining` is 0 (the window is spent);
//! - a 429 from the concurrency limiter (`Concurrency-Limit-Remaining: 0`) frees up in well
//!   under a second: a brief jittered wait, or `Retry-After` when sent;
//! - 5xx, 409 (same Idempotency-Key in flight), transport errors and lost answers: exponential
//!   backoff with full jitter, never `RateLimit-Reset`;
//! - `Retry-After` is delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
//!
//! Only idempotent requests are retried once they may have reached the server: a POST with an
//! Idempotency-Key, a read, a GET, a DELETE (a 404 after a lost answer means deleted, which the
//! caller decides). A 429 or a connection that was never made is safe for any request.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::header::HeaderMap;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<'a> {
    /// The server answered (the whole body was read).
    Answered {
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: &'a HeaderMap,
        /// What the API's own error body says is temporary (for Zuora: codes in the 50, 61
        /// and 70 categories), when it says so.
        temporary: Option<String>,
    },
    /// Nothing reached the server (connection refused, DNS): safe to retry any request.
    NotSent(String),
    /// The request went out but its answer never arrived whole (timeout, reset, dropped
    /// connection): the server may have acted on it.
    Lost(String),
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A final answer: 2xx, or a refusal the caller maps to rows.
    Done,
    /// Try again after `delay`.
    Retry {
        /// Which kind of wait.
        delay: Delay,
        /// Why, for logs and the error when attempts run out.
        why: RetryReason,
    },
    /// The credentials were refused: get a new token, then try again (once).
    Reauthenticate,
    /// Retrying could do harm (the request is not idempotent and may have been acted on).
    GiveUp(RetryReason),
}

/// Why an attempt did not end a request: kept as the last reason when attempts run out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryReason {
    /// The request never left (connection refused, cannot build it).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request left but its answer never arrived whole.
    #[error("answer lost: {0}")]
    Lost(String),
    /// The answer was lost and the request may not be repeated.
    #[error("the answer was lost ({0}) and the request is not idempotent, so it is not sent again")]
    LostNotIdempotent(String),
    /// HTTP 429 with `RateLimit-Remaining: 0`.
    #[error("HTTP 429: the rate-limit window is spent (RateLimit-Remaining: 0)")]
    RateLimitSpent,
    /// HTTP 429 with `Concurrency-Limit-Remaining: 0`.
    #[error("HTTP 429: too many requests in flight (Concurrency-Limit-Remaining: 0)")]
    ConcurrencyLimit,
    /// HTTP 429 without a limit header.
    #[error("HTTP 429")]
    TooManyRequests,
    /// HTTP 409: the same Idempotency-Key is in flight.
    #[error("HTTP 409: a request with the same Idempotency-Key is in flight")]
    KeyInFlight,
    /// A 5xx answer.
    #[error("HTTP {0}")]
    ServerError(u16),
    /// A 409 or 5xx to a request that may not be repeated.
    #[error("HTTP {0}, and the request is not idempotent, so it is not sent again")]
    NotIdempotent(u16),
    /// An answer whose body says the failure is temporary.
    #[error("{0}")]
    Temporary(String),
    /// A temporary failure of a request that may not be repeated.
    #[error("{0}, and the request is not idempotent, so it is not sent again")]
    TemporaryNotIdempotent(String),
}

/// A kind of wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// Exponential backoff with full jitter (transient server or network trouble).
    Backoff,
    /// A short jittered wait: a concurrency slot frees up in well under a second.
    Brief,
    /// The server said how long (`Retry-After`, or `RateLimit-Reset` on a spent window).
    Exactly(Duration),
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// A numeric header: `0`, `12`, `1.5`, or the leading number of `100;w=60`.
fn number(headers: &HeaderMap, name: &str) -> Option<f64> {
    let raw = header(headers, name)?;
    let leading = raw.split([';', ',']).next()?.trim();
    leading.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = header(headers, "retry-after")?;
    if let Ok(seconds) = raw.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `RateLimit-Reset`: seconds until the current rate-limit window resets.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    number(headers, "ratelimit-reset").map(Duration::from_secs_f64)
}

/// Classifies one attempt. `idempotent`: the request may be repeated without a second effect.
pub fn classify(attempt: &Attempt<'_>, idempotent: bool) -> Action {
    classify_at(attempt, idempotent, SystemTime::now())
}

fn classify_at(attempt: &Attempt<'_>, idempotent: bool, now: SystemTime) -> Action {
    let (status, headers, temporary) = match attempt {
        Attempt::NotSent(why) => {
            return Action::Retry {
                delay: Delay::Backoff,
                why: RetryReason::NotSent(why.clone()),
            };
        }
        Attempt::Lost(why) if idempotent => {
            return Action::Retry {
                delay: Delay::Backoff,
                why: RetryReason::Lost(why.clone()),
            };
        }
        Attempt::Lost(why) => {
            return Action::GiveUp(RetryReason::LostNotIdempotent(why.clone()));
        }
        Attempt::Answered {
            status,
            headers,
            temporary,
        } => (*status, *headers, temporary),
    };
    let hinted = |fallback: Delay| retry_after(headers, now).map_or(fallback, Delay::Exactly);
    match status {
        401 => Action::Reauthenticate,
        // A 429 was refused before any work was done: safe to retry whatever the request.
        429 if number(headers, "ratelimit-remaining") == Some(0.0) => Action::Retry {
            delay: retry_after(headers, now)
                .or_else(|| rate_limit_reset(headers))
                .map_or(Delay::Backoff, Delay::Exactly),
            why: RetryReason::RateLimitSpent,
        },
        429 if number(headers, "concurrency-limit-remaining") == Some(0.0) => Action::Retry {
            delay: hinted(Delay::Brief),
            why: RetryReason::ConcurrencyLimit,
        },
        429 => Action::Retry {
            delay: hinted(Delay::Brief),
            why: RetryReason::TooManyRequests,
        },
        409 | 500..=599 if !idempotent => Action::GiveUp(RetryReason::NotIdempotent(status)),
        409 => Action::Retry {
            delay: hinted(Delay::Backoff),
            why: RetryReason::KeyInFlight,
        },
        500..=599 => Action::Retry {
            delay: hinted(Delay::Backoff),
            why: RetryReason::ServerError(status),
        },
        _ => match temporary {
            None => Action::Done,
            Some(what) if idempotent => Action::Retry {
                delay: hinted(Delay::Backoff),
                why: RetryReason::Temporary(what.clone()),
            },
            Some(what) => Action::GiveUp(RetryReason::TemporaryNotIdempotent(what.clone())),
        },
    }
}

/// How many attempts, and how long the waits between them may be.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    /// The first backoff delay (before jitter).
    pub base: Duration,
    /// The largest backoff delay (before jitter).
    pub cap: Duration,
    /// The longest brief wait (concurrency limit).
    pub brief: Duration,
    /// The longest wait a server hint may ask for.
    pub max_hint: Duration,
}

impl RetryPolicy {
    /// Zuora's defaults: a 100 ms start doubling to at most 20 s; a window wait of at most a
    /// minute and a half (Zuora's windows are per minute).
    pub fn zuora(max_attempts: usize) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(20),
            brief: Duration::from_millis(250),
            max_hint: Duration::from_secs(90),
        }
    }

    /// The pace of polling a job until it ends (an import): 100 ms doubling up to 5 s, with
    /// no limit on polls (the caller's own deadline ends the wait).
    pub fn polling() -> Self {
        RetryPolicy {
            max_attempts: usize::MAX,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            brief: Duration::from_millis(250),
            max_hint: Duration::from_secs(5),
        }
    }

    /// A fresh count of attempts for one request.
    pub fn start(&self) -> Retrying {
        Retrying {
            policy: *self,
            backoff: ExponentialBuilder::default()
                .with_min_delay(self.base)
                .with_max_delay(self.cap)
                .with_factor(2.0)
                .without_max_times()
                .build(),
            attempts: 1,
        }
    }
}

/// The retries of one request.
#[derive(Debug)]
pub struct Retrying {
    policy: RetryPolicy,
    backoff: ExponentialBackoff,
    attempts: usize,
}

impl Retrying {
    /// Attempts made so far.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// The wait before the next attempt, or `None` when the attempts are used up.
    pub fn next_wait(&mut self, delay: Delay) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        self.attempts += 1;
        // The exponential envelope advances on every retry, whatever the kind of wait, so
        // a mix of faults still backs off.
        let envelope = self.backoff.next().unwrap_or(self.policy.cap);
        Some(match delay {
            // Full jitter: uniform in [0, envelope] ("Exponential Backoff And Jitter", AWS).
            Delay::Backoff => envelope.mul_f64(fastrand::f64()),
            Delay::Brief => self.policy.brief.mul_f64(0.2 + 0.8 * fastrand::f64()),
            // A little jitter after the hint, so clients that waited together do not all
            // return in the same instant.
            Delay::Exactly(hint) => {
                let hint = hint.min(self.policy.max_hint);
                hint + hint.min(Duration::from_secs(1)).mul_f64(0.1 * fastrand::f64())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    fn answer(status: u16, pairs: &[(&'static str, &str)], idempotent: bool) -> Action {
        let headers = headers(pairs);
        classify_at(
            &Attempt::Answered {
                status,
                headers: &headers,
                temporary: None,
            },
            idempotent,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    fn delay(action: Action) -> Delay {
        match action {
            Action::Retry { delay, .. } => delay,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    /// Every response carries RateLimit-* (docs/zuora.md): on a success they mean nothing to retries.
    const WINDOW_OPEN: [(&str, &str); 3] = [
        ("RateLimit-Limit", "1000;w=60"),
        ("RateLimit-Remaining", "998"),
        ("RateLimit-Reset", "42"),
    ];

    #[test]
    fn successes_and_refusals_are_final_whatever_the_rate_headers_say() {
        assert_eq!(answer(200, &WINDOW_OPEN, true), Action::Done);
        assert_eq!(answer(400, &WINDOW_OPEN, true), Action::Done);
        assert_eq!(answer(404, &WINDOW_OPEN, false), Action::Done);
    }

    #[test]
    fn a_spent_window_waits_for_ratelimit_reset() {
        let spent = [
            ("RateLimit-Limit", "1000;w=60"),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "17"),
            ("Concurrency-Limit-Type", "Default"),
            ("Concurrency-Limit-Limit", "40"),
            ("Concurrency-Limit-Remaining", "12"),
        ];
        assert_eq!(
            delay(answer(429, &spent, false)),
            Delay::Exactly(Duration::from_secs(17))
        );
    }

    #[test]
    fn retry_after_wins_over_ratelimit_reset_on_a_spent_window() {
        let spent = [
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "17"),
            ("Retry-After", "3"),
        ];
        assert_eq!(delay(answer(429, &spent, true)), Delay::Exactly(Duration::from_secs(3)));
    }

    #[test]
    fn a_concurrency_429_waits_briefly_not_for_the_window() {
        let busy = [
            ("RateLimit-Limit", "1000;w=60"),
            ("RateLimit-Remaining", "640"),
            ("RateLimit-Reset", "55"),
            ("Concurrency-Limit-Type", "Default"),
            ("Concurrency-Limit-Limit", "40"),
            ("Concurrency-Limit-Remaining", "0"),
        ];
        assert_eq!(delay(answer(429, &busy, false)), Delay::Brief);
        let mut with_hint = busy.to_vec();
        with_hint.push(("Retry-After", "1"));
        assert_eq!(
            delay(answer(429, &with_hint, false)),
            Delay::Exactly(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_bare_429_waits_briefly() {
        assert_eq!(delay(answer(429, &[], true)), Delay::Brief);
    }

    #[test]
    fn server_errors_back_off_and_never_wait_for_ratelimit_reset() {
        for status in [500, 502, 503, 504, 409] {
            assert_eq!(delay(answer(status, &WINDOW_OPEN, true)), Delay::Backoff, "{status}");
            let spent = [("RateLimit-Remaining", "0"), ("RateLimit-Reset", "59")];
            assert_eq!(delay(answer(status, &spent, true)), Delay::Backoff, "{status}");
        }
        let hinted = [("Retry-After", "2"), ("RateLimit-Reset", "59")];
        assert_eq!(
            delay(answer(503, &hinted, true)),
            Delay::Exactly(Duration::from_secs(2))
        );
    }

    #[test]
    fn retry_after_reads_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let map = headers(&[("Retry-After", &later)]);
        assert_eq!(retry_after(&map, now), Some(Duration::from_secs(30)));
        let past = headers(&[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("Retry-After", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("Retry-After", "-1")]), now), None);
    }

    #[test]
    fn only_idempotent_requests_are_retried_once_they_may_have_been_acted_on() {
        assert!(matches!(answer(503, &[], false), Action::GiveUp(_)));
        assert!(matches!(answer(409, &[], false), Action::GiveUp(_)));
        assert!(matches!(
            classify(&Attempt::Lost("reset".into()), false),
            Action::GiveUp(_)
        ));
        assert_eq!(delay(classify(&Attempt::Lost("reset".into()), true)), Delay::Backoff);
        assert_eq!(
            delay(classify(&Attempt::NotSent("refused".into()), false)),
            Delay::Backoff,
            "a request that never left may always be sent"
        );
        assert_eq!(delay(answer(429, &[], false)), Delay::Brief, "a 429 did nothing");
    }

    #[test]
    fn unauthorized_reauthenticates() {
        assert_eq!(answer(401, &WINDOW_OPEN, true), Action::Reauthenticate);
    }

    #[test]
    fn temporary_errors_in_a_body_are_retried_when_idempotent() {
        let map = HeaderMap::new();
        let attempt = Attempt::Answered {
            status: 200,
            headers: &map,
            temporary: Some("Zuora code 50000061".into()),
        };
        assert_eq!(delay(classify(&attempt, true)), Delay::Backoff);
        assert!(matches!(classify(&attempt, false), Action::GiveUp(_)));
    }

    #[test]
    fn waits_stay_within_their_bounds_and_attempts_run_out() {
        let policy = RetryPolicy::zuora(6);
        let mut retrying = policy.start();
        let mut envelope = policy.base;
        for _ in 0..5 {
            let wait = retrying.next_wait(Delay::Backoff).expect("an attempt left");
            assert!(wait <= envelope, "{wait:?} > {envelope:?}");
            envelope = (envelope * 2).min(policy.cap);
        }
        assert_eq!(retrying.attempts(), 6);
        assert_eq!(retrying.next_wait(Delay::Backoff), None);

        let mut retrying = policy.start();
        let brief = retrying.next_wait(Delay::Brief).expect("attempt");
        assert!(brief >= policy.brief / 5 && brief <= policy.brief, "{brief:?}");
        let hinted = retrying
            .next_wait(Delay::Exactly(Duration::from_secs(2)))
            .expect("attempt");
        assert!(
            hinted >= Duration::from_secs(2) && hinted <= Duration::from_millis(2100),
            "{hinted:?}"
        );
        let capped = retrying
            .next_wait(Delay::Exactly(Duration::from_secs(3600)))
            .expect("attempt");
        assert!(capped <= policy.max_hint + Duration::from_millis(100), "{capped:?}");
    }
}
