//! What every HTTP destination shares: the retry policy that classifies each answer.

pub mod retry;

pub use retry::{Action, Attempt, Delay, RetryPolicy, RetryReason, Retrying, classify};
