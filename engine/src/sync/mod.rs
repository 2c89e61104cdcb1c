//! One sync of a run ([`run`]): settle what earlier runs left pending ([`recovery`]), diff,
//! then send the new rows through the destination ([`delivery`]) and commit what it
//! acknowledged ([`commit`]), batch by batch. [`context`] holds what the syncs of one run
//! share, [`connections`] their destinations' connections, [`report`] what they did.

pub mod changes;
pub mod commit;
pub mod connections;
pub mod context;
pub mod corrections;
pub mod delivery;
pub mod gone;
pub mod progress;
pub mod reconcile;
pub mod recovery;
pub mod report;
pub mod run;
