//! The replication transport port: move change batches between the cloud and stores.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ReplicationError;
use crate::forward::forward_port;
use crate::ids::{ChannelId, DatasetId, StoreId};

/// Direction of a dataset's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// Cloud to store (catalog, prices, configuration): an ordered change log.
    Down,
    /// Store to cloud (orders, payments, shifts): append-only with idempotency ids.
    Up,
    /// Both ways, for the few documents written on both sides (CRDTs).
    Both,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// The dataset.
    pub dataset: DatasetId,
    /// Position in the dataset's log for this channel (strictly increasing, no gaps on downsync).
    pub sequence: u64,
    /// A globally unique id (deduplication on upsync, `Nats-Msg-Id` on JetStream).
    pub change_id: String,
    /// The row's key.
    pub key: String,
    /// The new row, or `None` for a removal (including a row leaving the channel's scope).
    pub payload: Option<Vec<u8>>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Where a batch goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stream {
    /// The channel whose scope the data belongs to.
    pub channel: ChannelId,
    /// The store.
    pub store: StoreId,
    /// The dataset.
    pub dataset: DatasetId,
    /// The direction.
    pub direction: Direction,
}

impl Stream {
    /// A stream.
    pub fn new(channel: ChannelId, store: StoreId, dataset: DatasetId, direction: Direction) -> Stream {
        Stream { channel, store, dataset, direction }
    }
}

/// Receipt for a published batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PublishReceipt {
    /// The highest sequence durably stored by the other side.
    pub durable_up_to: u64,
    /// How many changes were duplicates (already stored).
    pub duplicates: u32,
}

impl PublishReceipt {
    /// A receipt.
    pub fn new(durable_up_to: u64, duplicates: u32) -> PublishReceipt {
        PublishReceipt { durable_up_to, duplicates }
    }
}

impl Change {
    /// A change.
    pub fn new(
        dataset: DatasetId,
        sequence: u64,
        change_id: impl Into<String>,
        key: impl Into<String>,
        payload: Option<Vec<u8>>,
        at: OffsetDateTime,
    ) -> Change {
        Change { dataset, sequence, change_id: change_id.into(), key: key.into(), payload, at }
    }
}

/// Carries change batches.
///
/// # Contract
/// - `publish` returns only after the receiving side stored the batch durably; duplicates (same
///   `change_id`) are ignored and counted, never applied twice.
/// - `fetch` returns changes after `after` in sequence order; it never skips one.
/// - An unknown outcome of `publish` is `OutcomeUnknown`; republishing the same batch is always safe.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ReplicationTransport: Send + Sync + Debug + 'static {
    /// Sends a batch.
    ///
    /// # Errors
    /// `Unavailable` (link down: keep it in the outbox), `OutcomeUnknown`, `InvalidRequest`.
    async fn publish(&self, stream: Stream, changes: Vec<Change>) -> Result<PublishReceipt, ReplicationError>;

    /// Receives up to `limit` changes after sequence `after`.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn fetch(&self, stream: Stream, after: u64, limit: u32) -> Result<Vec<Change>, ReplicationError>;
}

forward_port!(ReplicationTransport {
    async fn publish(&self, stream: Stream, changes: Vec<Change>) -> Result<PublishReceipt, ReplicationError>;
    async fn fetch(&self, stream: Stream, after: u64, limit: u32) -> Result<Vec<Change>, ReplicationError>;
});
