//! End-to-end tests: the real `dinmo` binary on temp projects.

mod support;

mod exit_codes;
mod incremental;
mod integrity;
mod object_store_s3;
mod third_party_parquet;
