//! What the two Zuora usage sinks share: the documented usage layouts and their field rules
//! ([`layout`]), a mapped batch converted to per-row cells and verdicts ([`prepare`]), and the
//! usage import file encoding ([`encoder`]), which `zuora_file` writes to a folder and `zuora`
//! uploads to the usage import API; and the acknowledgement queue of the file writers
//! ([`ack`]); a usage export downloaded from Zuora, read back for reconcile ([`export`]).

pub mod ack;
pub mod encoder;
pub mod export;
pub mod layout;
pub(crate) mod prepare;

pub use encoder::{EncodeError, EncodedFile, MAX_FILE_NAME_CHARS, UsageFileEncoder, file_name};
pub(crate) use layout::column as layout_column;
pub use layout::{
    CUSTOM_FIELD_PREFIX, ColumnDefault, ColumnSet, CustomFields, Layout, LayoutColumn, LayoutName, QUANTITY_LIMITS,
};
