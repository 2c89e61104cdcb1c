//! One attempt of a request, as read off the wire: an answer, a request that never left, or
//! one whose answer was lost. [`Exchange::attempt`] hands it to the retry policy.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::retry::Attempt;

/// One attempt's result.
#[derive(Debug)]
pub enum Exchange {
    /// The server answered; a body that is not JSON (a proxy's HTML page) reads as `Null`.
    Answered {
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: HeaderMap,
        /// The body as JSON.
        body: Value,
    },
    /// Nothing reached the server.
    NotSent(String),
    /// The request went out; its answer never arrived whole.
    Lost(String),
}

impl Exchange {
    /// The attempt as the retry policy sees it; `temporary` reads the API's own word on
    /// whether an error body is temporary.
    pub fn attempt(&self, temporary: impl Fn(&Value) -> Option<String>) -> Attempt<'_> {
        match self {
            Exchange::Answered { status, headers, body } => Attempt::Answered {
                status: *status,
                headers,
                temporary: temporary(body),
            },
            Exchange::NotSent(why) => Attempt::NotSent(why.clone()),
            Exchange::Lost(why) => Attempt::Lost(why.clone()),
        }
    }
}

/// A body of newline-delimited JSON (Revenue's rejected rows) as an array of its lines; any
/// other body that is not JSON (a proxy's HTML page) as `Null`.
fn json_lines(bytes: &[u8]) -> Value {
    let lines: std::result::Result<Vec<Value>, _> = bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(serde_json::from_slice)
        .collect();
    match lines {
        Ok(lines) if !lines.is_empty() => Value::Array(lines),
        _ => Value::Null,
    }
}

/// Sends `builder` and reads the whole answer. `crash_point` names the point reached once an
/// answer's head arrived (for the exactly-once tests).
pub async fn exchange(builder: reqwest::RequestBuilder, crash_point: &str) -> Exchange {
    let response = match builder.send().await {
        Ok(response) => response,
        // A connection never made carried nothing; anything later may have reached the server.
        Err(error) if error.is_connect() => return Exchange::NotSent(error.to_string()),
        Err(error) if error.is_builder() => return Exchange::NotSent(format!("cannot build the request: {error}")),
        Err(error) => return Exchange::Lost(error.to_string()),
    };
    crate::failpoint::crash_point(crash_point);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    match response.bytes().await {
        Ok(bytes) => Exchange::Answered {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or_else(|_| json_lines(&bytes)),
        },
        // The connection dropped after the server may have acted on the request.
        Err(error) => Exchange::Lost(format!("reading the answer: {error}")),
    }
}
