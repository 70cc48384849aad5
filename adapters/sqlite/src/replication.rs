//! Replication outbox, inbox and checkpoints. A stream is identified by four columns (channel, store,
//! dataset, direction) in every table.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::replication::{Change, Stream};
use commerce_ports::stores::ReplicationStore;
use commerce_ports::{DatasetId, ErrorKind, StoreError};
use rusqlite::{OptionalExtension, Row, params};

use crate::backend::{Database, immediate};
use crate::error::SqlContext;
use crate::mapping::{RowSource, enum_to_sql, limit_to_sql, time_to_sql, u64_to_sql};

/// [`ReplicationStore`] on tables `replication_outbox`, `replication_outbox_ids`, `replication_inbox_ids`
/// and `replication_checkpoints`.
#[derive(Debug, Clone)]
pub(crate) struct SqliteReplicationStore {
    db: Arc<Database>,
}

impl SqliteReplicationStore {
    pub(crate) fn new(db: Arc<Database>) -> SqliteReplicationStore {
        SqliteReplicationStore { db }
    }
}

/// A stream's key columns.
#[derive(Debug, Clone)]
struct StreamKey {
    channel: String,
    store: String,
    dataset: String,
    direction: String,
}

impl StreamKey {
    fn new(op: &'static str, stream: &Stream) -> Result<StreamKey, StoreError> {
        Ok(StreamKey {
            channel: stream.channel.to_string(),
            store: stream.store.to_string(),
            dataset: stream.dataset.to_string(),
            direction: enum_to_sql(op, "stream.direction", &stream.direction)?,
        })
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream {}/{}/{}/{}", self.channel, self.store, self.dataset, self.direction)
    }
}

/// A change as column values.
#[derive(Debug)]
struct ChangeValues {
    sequence: i64,
    change_id: String,
    dataset: String,
    key: String,
    payload: Option<Vec<u8>>,
    at: i64,
}

impl ChangeValues {
    fn new(op: &'static str, change: Change) -> Result<ChangeValues, StoreError> {
        Ok(ChangeValues {
            sequence: u64_to_sql(op, "change.sequence", change.sequence)?,
            at: time_to_sql(op, "change.at", change.at)?,
            change_id: change.change_id,
            dataset: change.dataset.to_string(),
            key: change.key,
            payload: change.payload,
        })
    }

    fn read(row: &Row<'_>) -> rusqlite::Result<ChangeValues> {
        Ok(ChangeValues {
            sequence: row.get(0)?,
            change_id: row.get(1)?,
            dataset: row.get(2)?,
            key: row.get(3)?,
            payload: row.get(4)?,
            at: row.get(5)?,
        })
    }

    fn into_change(self, op: &'static str, stream: &StreamKey) -> Result<Change, StoreError> {
        let row_key = format!("({stream}, sequence {})", self.sequence);
        let source = RowSource { operation: op, table: "replication_outbox", key: &row_key };
        Ok(Change::new(
            source.parse("change_dataset", self.dataset, DatasetId::new)?,
            source.unsigned("sequence", self.sequence)?,
            self.change_id,
            self.key,
            self.payload,
            source.time("at", self.at)?,
        ))
    }
}

#[async_trait]
impl ReplicationStore for SqliteReplicationStore {
    async fn outbox_append(&self, stream: &Stream, changes: Vec<Change>) -> Result<(), StoreError> {
        const OP: &str = "outbox_append";
        let s = StreamKey::new(OP, stream)?;
        let changes = changes.into_iter().map(|c| ChangeValues::new(OP, c)).collect::<Result<Vec<_>, _>>()?;
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                for c in &changes {
                    // Ids are remembered after acknowledgement too: a change is appended once, ever.
                    let new_id = tx
                        .prepare_cached(
                            "INSERT INTO replication_outbox_ids (channel, store, dataset, direction, change_id)
                             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                        )
                        .and_then(|mut st| st.execute(params![s.channel, s.store, s.dataset, s.direction, c.change_id]))
                        .context(OP, || format!("recording change `{}` of {s}", c.change_id))?;
                    if new_id == 0 {
                        continue;
                    }
                    let appended = tx
                        .prepare_cached(
                            "INSERT INTO replication_outbox (channel, store, dataset, direction, sequence, change_id,
                                 change_dataset, row_key, payload, at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                        )
                        .and_then(|mut st| {
                            st.execute(params![
                                s.channel,
                                s.store,
                                s.dataset,
                                s.direction,
                                c.sequence,
                                c.change_id,
                                c.dataset,
                                c.key,
                                c.payload,
                                c.at
                            ])
                        })
                        .context(OP, || format!("appending change `{}` to {s}", c.change_id))?;
                    if appended == 0 {
                        // Dropping the transaction rolls the whole batch back.
                        let holder: Option<String> = tx
                            .prepare_cached(
                                "SELECT change_id FROM replication_outbox
                                 WHERE channel = ?1 AND store = ?2 AND dataset = ?3 AND direction = ?4 AND sequence = ?5",
                            )
                            .and_then(|mut st| {
                                st.query_row(params![s.channel, s.store, s.dataset, s.direction, c.sequence], |r| {
                                    r.get(0)
                                })
                                .optional()
                            })
                            .context(OP, || format!("reading sequence {} of {s}", c.sequence))?;
                        return Err(StoreError::invalid(
                            OP,
                            format!(
                                "change `{}` wants sequence {}, which change `{}` holds; nothing was appended",
                                c.change_id,
                                c.sequence,
                                holder.unwrap_or_default()
                            ),
                        ));
                    }
                }
                tx.commit().context(OP, || format!("committing the append to {s}"))
            })
            .await
    }

    async fn outbox_pending(&self, stream: &Stream, limit: u32) -> Result<Vec<Change>, StoreError> {
        const OP: &str = "outbox_pending";
        let s = StreamKey::new(OP, stream)?;
        let limit = limit_to_sql(limit);
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached(
                    "SELECT sequence, change_id, change_dataset, row_key, payload, at FROM replication_outbox
                     WHERE channel = ?1 AND store = ?2 AND dataset = ?3 AND direction = ?4
                     ORDER BY sequence LIMIT ?5",
                )
                .and_then(|mut st| {
                    st.query_map(params![s.channel, s.store, s.dataset, s.direction, limit], ChangeValues::read)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .context(OP, || format!("reading the outbox of {s}"))?
                .into_iter()
                .map(|c| c.into_change(OP, &s))
                .collect()
            })
            .await
    }

    async fn outbox_ack(&self, stream: &Stream, sequence: u64) -> Result<(), StoreError> {
        const OP: &str = "outbox_ack";
        let s = StreamKey::new(OP, stream)?;
        // Every stored sequence fits an i64, so acknowledging beyond that drops everything.
        let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached(
                    "DELETE FROM replication_outbox
                     WHERE channel = ?1 AND store = ?2 AND dataset = ?3 AND direction = ?4 AND sequence <= ?5",
                )
                .and_then(|mut st| st.execute(params![s.channel, s.store, s.dataset, s.direction, sequence]))
                .map(drop)
                .context(OP, || format!("acknowledging {s} up to {sequence}"))
            })
            .await
    }

    async fn checkpoint(&self, stream: &Stream) -> Result<u64, StoreError> {
        const OP: &str = "checkpoint";
        let s = StreamKey::new(OP, stream)?;
        self.db.run(OP, move |conn| read_checkpoint(conn, OP, &s)).await
    }

    async fn inbox_commit(
        &self,
        stream: &Stream,
        expected_checkpoint: u64,
        new_checkpoint: u64,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>, StoreError> {
        const OP: &str = "inbox_commit";
        if new_checkpoint < expected_checkpoint {
            return Err(StoreError::invalid(
                OP,
                format!("new checkpoint {new_checkpoint} is behind the expected {expected_checkpoint}"),
            ));
        }
        let s = StreamKey::new(OP, stream)?;
        let expected = u64_to_sql(OP, "expected_checkpoint", expected_checkpoint)?;
        let new = u64_to_sql(OP, "new_checkpoint", new_checkpoint)?;
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                // A missing row is checkpoint 0: make it explicit, then advance only from the expected value.
                // On a conflict the transaction is dropped, which rolls the placeholder row back too.
                tx.prepare_cached(
                    "INSERT INTO replication_checkpoints (channel, store, dataset, direction, checkpoint)
                     VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![s.channel, s.store, s.dataset, s.direction]))
                .context(OP, || format!("creating the checkpoint of {s}"))?;
                let advanced = tx
                    .prepare_cached(
                        "UPDATE replication_checkpoints SET checkpoint = ?6
                         WHERE channel = ?1 AND store = ?2 AND dataset = ?3 AND direction = ?4 AND checkpoint = ?5",
                    )
                    .and_then(|mut st| st.execute(params![s.channel, s.store, s.dataset, s.direction, expected, new]))
                    .context(OP, || format!("advancing the checkpoint of {s}"))?;
                if advanced == 0 {
                    let current = read_checkpoint(&tx, OP, &s)?;
                    return Err(StoreError::new(
                        ErrorKind::Conflict,
                        OP,
                        format!("checkpoint of {s} is {current}, not {expected_checkpoint}"),
                    ));
                }
                let mut fresh = Vec::new();
                for change in changes {
                    let inserted = tx
                        .prepare_cached(
                            "INSERT INTO replication_inbox_ids (channel, store, dataset, direction, change_id)
                             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                        )
                        .and_then(|mut st| {
                            st.execute(params![s.channel, s.store, s.dataset, s.direction, change.change_id])
                        })
                        .context(OP, || format!("recording received change `{}` of {s}", change.change_id))?;
                    if inserted == 1 {
                        fresh.push(change);
                    }
                }
                tx.commit().context(OP, || format!("committing the inbox of {s}"))?;
                Ok(fresh)
            })
            .await
    }
}

fn read_checkpoint(conn: &rusqlite::Connection, op: &'static str, s: &StreamKey) -> Result<u64, StoreError> {
    let stored: Option<i64> = conn
        .prepare_cached(
            "SELECT checkpoint FROM replication_checkpoints
             WHERE channel = ?1 AND store = ?2 AND dataset = ?3 AND direction = ?4",
        )
        .and_then(|mut st| st.query_row(params![s.channel, s.store, s.dataset, s.direction], |r| r.get(0)).optional())
        .context(op, || format!("reading the checkpoint of {s}"))?;
    let row_key = format!("({s})");
    let source = RowSource { operation: op, table: "replication_checkpoints", key: &row_key };
    stored.map(|c| source.unsigned("checkpoint", c)).transpose().map(Option::unwrap_or_default)
}
