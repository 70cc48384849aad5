#![doc = include_str!("../docs.md")]

mod backend;
mod config;
mod devices;
mod domains;
mod error;
mod mapping;
mod offline_queue;
mod payments;
mod replication;
mod schema;

pub use backend::SqliteStores;
pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_POOL_SIZE, Execution, IN_MEMORY_PATH, SqliteConfig, SqliteStoreFactory,
};
pub use schema::SCHEMA_VERSION;
