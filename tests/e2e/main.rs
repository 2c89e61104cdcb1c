//! End-to-end tests: the real `dinmo` binary on temp projects.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

mod airflow;
mod browser;
mod compaction;
mod contract;
mod corrections;
mod delta;
mod differential;
mod drift;
mod exactly_once;
mod exit_codes;
mod exports;
mod hardening;
mod history;
mod incremental;
mod integrity;
mod layouts;
mod object_store_s3;
mod reconcile;
mod report;
mod revenue;
mod review;
mod third_party_parquet;
mod zuora;
mod zuora_documented;
