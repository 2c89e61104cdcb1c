//! Every command as a library operation: a builder that names what to do, awaited for a report
//! (`RunOp::new(&project).select(..).dry_run(true).await`). The CLI parses arguments into
//! these and renders what they return; everything that reads or changes state, takes locks
//! or reaches a destination happens here or below.
//!
//! - `plan`, `run` and `run --dry-run` are a [`RunOp`], which can save the plan;
//! - `apply`, sending a saved plan's rows, is an [`ApplyOp`];
//! - `rollback` is a [`RollbackOp`];
//! - `reconcile` is a [`ReconcileOp`];
//! - `state verify | resolve-pending | resolve-held | rebuild | compact | unlock` are a
//!   [`VerifyOp`], [`ResolvePendingOp`], [`ResolveHeldOp`], [`RebuildOp`], [`CompactOp`] and
//!   [`UnlockOp`];
//! - `validate` is a [`ValidateOp`];
//! - `runs` and `show` read a [`RunHistory`]; `query` is a [`QueryOp`] over the history tables.

/// Makes an operation awaitable: `Op::new(..).option(..).await` runs its `execute`.
macro_rules! awaitable {
    ($op:ident => $output:ty) => {
        impl<'p> std::future::IntoFuture for $op<'p> {
            type Output = $crate::error::Result<$output>;
            type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + 'p>>;

            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.execute())
            }
        }
    };
}

/// The options most operations share, each a builder method setting the field of that name.
macro_rules! options {
    ($op:ident { $($field:ident),* }) => {
        impl $op<'_> {
            $(options!(@one $field);)*
        }
    };
    (@one select) => {
        /// Only the models and syncs `selector` selects.
        pub fn select(mut self, selector: $crate::ops::Selector) -> Self {
            self.selector = selector;
            self
        }
    };
    (@one wait) => {
        /// Wait up to `wait` for another run's locks rather than failing at once (`--wait`).
        pub fn wait(mut self, wait: Option<std::time::Duration>) -> Self {
            self.wait = wait;
            self
        }
    };
    (@one show_progress) => {
        /// Draw progress bars on stderr.
        pub fn show_progress(mut self, show: bool) -> Self {
            self.show_progress = show;
            self
        }
    };
    (@one settings) => {
        /// The settings to run with (`Settings::from_env` in the CLI; the defaults otherwise).
        pub fn settings(mut self, settings: $crate::settings::Settings) -> Self {
            self.settings = settings;
            self
        }
    };
}

mod apply;
mod held;
mod history;
mod project;
mod reconcile;
mod rollback;
mod run;
mod state;
mod validate;

pub use apply::ApplyOp;
pub use held::{HeldDecision, ResolveHeldOp, ResolvedHeld};
pub use history::query::{QueryOp, QueryResults, ResultFormat};
pub use history::report::{HeldRows, HistoryReport, Point, Refusal, ReportOp, RunRow, Summary};
pub use history::tables::{HistoryTables, TABLES};
pub use history::{ExportedRows, RowsFormat, RunHistory};
pub use project::{Selector, artifact_dir, config_schema, open_project, open_project_to_read_state, parse_byte_size};
pub use reconcile::{
    AccountTotal, Class, ClassCount, Compared, HeldSource, ReconcileOp, ReconcileReport, ReconciledSync, RepairScope,
};
pub use rollback::{RollbackOp, RollbackReport, RolledBack};
pub use run::RunOp;
pub use state::{
    CompactOp, Compacted, Finding, RebuildOp, Rebuilt, ResolvePendingOp, Resolved, UnlockOp, UnlockedLock, VerifyOp,
    VerifyReport,
};
pub use validate::{ValidateOp, Validated};

pub use crate::plan::summary::{PlanSummary, SummaryOptions, Total};
pub use crate::project::Project;
pub use crate::settings::Settings;
pub use crate::state::SourceVersion;
pub use crate::state::{Compaction, Counts, LockStatus, Outcome, PartInfo, RunManifest, Unlocked};
pub use crate::sync::changes::{ChangeSample, ChangeSummary};
pub use crate::sync::gone::GoneSummary;
pub use crate::sync::reconcile::{Period, SyncReconciliation};
pub use crate::sync::report::{RejectionSummary, RunReport, SyncReport};
pub use dinmo_connectors::ids::optional_timestamp;
pub use dinmo_connectors::{RunId, SyncId, Timestamp};
