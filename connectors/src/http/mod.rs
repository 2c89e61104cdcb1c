//! What every HTTP destination shares: the retry policy that classifies each answer, and
//! credentials that never print.

pub mod credentials;
pub mod exchange;
pub mod retry;

pub use credentials::{Secret, check_base_url};
pub use retry::{Action, Attempt, Delay, RetryPolicy, RetryReason, Retrying, classify};
