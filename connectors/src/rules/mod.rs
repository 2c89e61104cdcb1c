//! Field rules, shared by every destination: the field vocabulary ([`fields`]), how an Arrow
//! value becomes a cell ([`cells`]), and the per-row checks a cell must pass before anything
//! is written ([`check`]). Rules know nothing of destinations.

pub mod cells;
pub mod check;
pub mod fields;

pub use cells::{Cell, CellColumn, convert_column};
pub use check::{NumberLimits, RejectCode, Rejection, check_cell};
pub use fields::{FieldKind, FieldRoles, FieldSpec};
