//! What every HTTP destination shares: the retry policy that classifies each answer, the one
//! loop that sends through it ([`driver`]), credentials that never print, and the token cache.

pub mod credentials;
pub mod driver;
pub mod exchange;
pub mod retry;
pub mod token;

pub use credentials::{Secret, check_base_url};
pub use retry::{Action, Attempt, Delay, RetryPolicy, RetryReason, Retrying, classify};
pub use token::{Token, TokenCache};
