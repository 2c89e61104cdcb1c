//! Planning: the sources registered as DataFusion tables ([`sources`]), the destinations built
//! from their configs ([`destinations`]), every selected model's SQL planned and checked
//! against its syncs' mappings ([`models`]), which syncs changed since the state's last run
//! ([`modified`]), and what a plan saves ([`saved`]) and summarises ([`summary`]).

pub mod destinations;
pub mod models;
pub mod modified;
pub mod saved;
pub mod sources;
pub mod summary;
