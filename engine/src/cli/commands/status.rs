//! How a command ends: a [`Status`] for each documented exit code.

use std::process::ExitCode;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0: done, nothing left undelivered.
    Success,
    /// Exit 2: `plan --detailed-exitcode` found rows to send.
    RowsToSend,
    /// Exit 3: the run finished but some rows were not delivered: the destination refused
    /// them, or they changed after they were sent and are held.
    Undelivered,
    /// Exit 4: `reconcile` found differences between the warehouse, the state and Zuora.
    Differences,
}

impl Status {
    /// The documented exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::RowsToSend => 2,
            Status::Undelivered => 3,
            Status::Differences => 4,
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// Exit code for an error.
pub const ERROR_EXIT: u8 = 1;

/// Exit code for a command line dinmo cannot parse (unknown command or flag, bad flag value):
/// 64, `EX_USAGE` from sysexits.h, apart from 2 (`plan --detailed-exitcode`: rows to send).
pub const USAGE_EXIT: u8 = 64;
