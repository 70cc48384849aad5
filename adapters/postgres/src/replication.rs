//! Replication outbox, inbox and checkpoints. A stream is stored as its four parts (channel, store,
//! dataset, direction).
//!
//! - `outbox_append` runs in one transaction: it records the batch's change ids in `replication_outbox_ids`
//!   (`ON CONFLICT DO NOTHING ... RETURNING` tells which are new), then inserts the new changes with
//!   `ON CONFLICT (stream, sequence) DO NOTHING`; a new change whose sequence another change holds rolls the
//!   whole batch back (`InvalidRequest`). Change ids stay recorded after an ack, so a re-sent change is
//!   ignored rather than appended again.
//! - `inbox_commit` runs in one transaction: a compare-and-set of the checkpoint (an upsert from 0, or
//!   `UPDATE ... WHERE checkpoint = $expected`), which also serializes concurrent commits of a stream, then
//!   the change ids into `replication_inbox_ids`, returning the ones that were new.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::replication::{Change, Stream};
use commerce_ports::stores::ReplicationStore;
use commerce_ports::{DatasetId, ErrorKind, StoreError};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::client::{Db, SqlParam, execute, query, query_opt};
use crate::error::{Ctx, Phase};
use crate::mapping::{RowReader, name_of, to_bigint};

/// A stream's key columns ($1..$4 of every statement here).
struct StreamKey<'a> {
    channel: &'a str,
    store: &'a str,
    dataset: &'a str,
    direction: String,
}

impl<'a> StreamKey<'a> {
    fn new(op: &'static str, stream: &'a Stream) -> Result<StreamKey<'a>, StoreError> {
        Ok(StreamKey {
            channel: stream.channel.as_str(),
            store: stream.store.as_str(),
            dataset: stream.dataset.as_str(),
            direction: name_of(op, &stream.direction)?,
        })
    }

    fn params(&self) -> [SqlParam<'_>; 4] {
        [&self.channel, &self.store, &self.dataset, &self.direction]
    }

    /// The key followed by `more`.
    fn with<'b>(&'b self, more: &[SqlParam<'b>]) -> Vec<SqlParam<'b>> {
        let mut params = self.params().to_vec();
        params.extend_from_slice(more);
        params
    }
}

fn subject(stream: &Stream, what: &str) -> String {
    format!(
        "{what} of stream (channel `{}`, store `{}`, dataset `{}`, direction {:?})",
        stream.channel, stream.store, stream.dataset, stream.direction
    )
}

fn change_from_row(op: &'static str, row: &Row) -> Result<Change, StoreError> {
    let r = RowReader::new(op, row, "replication_outbox", &["store", "change_id"]);
    let at: OffsetDateTime = r.get("at")?;
    Ok(Change::new(
        r.id("change_dataset", DatasetId::new)?,
        r.u64("sequence")?,
        r.get::<String>("change_id")?,
        r.get::<String>("key")?,
        r.get("payload")?,
        at,
    ))
}

/// The changes whose ids are in `fresh`, in batch order, each id once.
fn first_of_each(changes: Vec<Change>, fresh: &HashSet<String>) -> Vec<Change> {
    let mut seen = HashSet::new();
    changes.into_iter().filter(|c| fresh.contains(&c.change_id) && seen.insert(c.change_id.clone())).collect()
}

/// The batch's change ids, sorted and unique (a stable lock order for concurrent appends).
fn sorted_ids(changes: &[Change]) -> Vec<&str> {
    let mut ids: Vec<&str> = changes.iter().map(|c| c.change_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn ids_from_rows(op: &'static str, table: &'static str, rows: &[Row]) -> Result<HashSet<String>, StoreError> {
    rows.iter().map(|row| RowReader::new(op, row, table, &["change_id"]).get::<String>("change_id")).collect()
}

/// [`ReplicationStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgReplicationStore {
    db: Arc<Db>,
}

impl PgReplicationStore {
    pub(crate) fn new(db: Arc<Db>) -> PgReplicationStore {
        PgReplicationStore { db }
    }
}

#[async_trait]
impl ReplicationStore for PgReplicationStore {
    async fn outbox_append(&self, stream: &Stream, changes: Vec<Change>) -> Result<(), StoreError> {
        let ctx = Ctx::new("outbox_append", subject(stream, "outbox"));
        if changes.is_empty() {
            return Ok(());
        }
        let key = StreamKey::new(ctx.op, stream)?;
        let record_ids = self.db.sql(
            "INSERT INTO {s}.replication_outbox_ids (channel, store, dataset, direction, change_id)
             SELECT $1, $2, $3, $4, u.change_id FROM unnest($5::text[]) AS u(change_id)
             ON CONFLICT DO NOTHING
             RETURNING change_id",
        );
        let insert = self.db.sql(
            "INSERT INTO {s}.replication_outbox
                 (channel, store, dataset, direction, sequence, change_id, change_dataset, key, payload, at)
             SELECT $1, $2, $3, $4, u.sequence, u.change_id, u.change_dataset, u.key, u.payload, u.at
             FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::timestamptz[])
                 AS u(sequence, change_id, change_dataset, key, payload, at)
             ON CONFLICT (channel, store, dataset, direction, sequence) DO NOTHING
             RETURNING sequence",
        );
        let holder = self.db.sql(
            "SELECT change_id FROM {s}.replication_outbox
             WHERE channel = $1 AND store = $2 AND dataset = $3 AND direction = $4 AND sequence = $5",
        );
        let ids = sorted_ids(&changes);
        let mut client = self.db.client(&ctx).await?;
        let tx = self.db.begin(&ctx, &mut client).await?;
        self.db
            .timed(&ctx, Phase::Uncommitted, async {
                let rows = query(
                    &ctx,
                    &tx,
                    Phase::Uncommitted,
                    "recording change ids in replication_outbox_ids",
                    &record_ids,
                    &key.with(&[&ids]),
                )
                .await?;
                let fresh = ids_from_rows(ctx.op, "replication_outbox_ids", &rows)?;
                // Within the batch, two new changes may not want one sequence.
                let mut taken: BTreeMap<u64, &str> = BTreeMap::new();
                for change in changes.iter().filter(|c| fresh.contains(&c.change_id)) {
                    match taken.get(&change.sequence) {
                        Some(holder) if *holder != change.change_id => {
                            return Err(ctx.err(
                                ErrorKind::InvalidRequest,
                                format!(
                                    "change `{}` wants sequence {}, which change `{holder}` of the same batch wants; \
                                     nothing was appended",
                                    change.change_id, change.sequence
                                ),
                            ));
                        }
                        _ => {
                            taken.insert(change.sequence, &change.change_id);
                        }
                    }
                }
                let mut seen = HashSet::new();
                let mut new: Vec<&Change> = changes
                    .iter()
                    .filter(|c| fresh.contains(&c.change_id) && seen.insert(c.change_id.as_str()))
                    .collect();
                new.sort_by_key(|c| c.sequence);
                let sequences =
                    new.iter().map(|c| to_bigint(ctx.op, "sequence", c.sequence)).collect::<Result<Vec<i64>, _>>()?;
                let change_ids: Vec<&str> = new.iter().map(|c| c.change_id.as_str()).collect();
                let datasets: Vec<&str> = new.iter().map(|c| c.dataset.as_str()).collect();
                let keys: Vec<&str> = new.iter().map(|c| c.key.as_str()).collect();
                let payloads: Vec<Option<&[u8]>> = new.iter().map(|c| c.payload.as_deref()).collect();
                let ats: Vec<OffsetDateTime> = new.iter().map(|c| c.at).collect();
                let inserted = query(
                    &ctx,
                    &tx,
                    Phase::Uncommitted,
                    "inserting into replication_outbox",
                    &insert,
                    &key.with(&[&sequences, &change_ids, &datasets, &keys, &payloads, &ats]),
                )
                .await?;
                if inserted.len() == new.len() {
                    return Ok(());
                }
                let stored = inserted
                    .iter()
                    .map(|row| RowReader::new(ctx.op, row, "replication_outbox", &[]).get::<i64>("sequence"))
                    .collect::<Result<HashSet<i64>, _>>()?;
                let Some((sequence, change)) = sequences.iter().zip(&new).find(|(s, _)| !stored.contains(s)) else {
                    return Err(ctx.err(ErrorKind::Unexpected, "fewer changes were inserted than were new"));
                };
                let found = query_opt(
                    &ctx,
                    &tx,
                    Phase::Uncommitted,
                    "reading replication_outbox",
                    &holder,
                    &key.with(&[sequence]),
                )
                .await?;
                let holder = match &found {
                    Some(row) => RowReader::new(ctx.op, row, "replication_outbox", &[]).get::<String>("change_id")?,
                    None => "?".to_owned(),
                };
                Err(ctx.err(
                    ErrorKind::InvalidRequest,
                    format!(
                        "change `{}` wants sequence {}, which change `{holder}` holds; nothing was appended",
                        change.change_id, change.sequence
                    ),
                ))
            })
            .await?;
        self.db.commit(&ctx, tx).await
    }

    async fn outbox_pending(&self, stream: &Stream, limit: u32) -> Result<Vec<Change>, StoreError> {
        let ctx = Ctx::new("outbox_pending", subject(stream, "outbox"));
        let key = StreamKey::new(ctx.op, stream)?;
        let sql = self.db.sql(
            "SELECT store, sequence, change_id, change_dataset, key, payload, at FROM {s}.replication_outbox
             WHERE channel = $1 AND store = $2 AND dataset = $3 AND direction = $4
             ORDER BY sequence LIMIT $5",
        );
        let limit = i64::from(limit);
        let rows = self.db.rows(&ctx, Phase::Read, "reading replication_outbox", &sql, &key.with(&[&limit])).await?;
        rows.iter().map(|row| change_from_row(ctx.op, row)).collect()
    }

    async fn outbox_ack(&self, stream: &Stream, sequence: u64) -> Result<(), StoreError> {
        let ctx = Ctx::new("outbox_ack", subject(stream, "outbox"));
        let key = StreamKey::new(ctx.op, stream)?;
        let sql = self.db.sql(
            "DELETE FROM {s}.replication_outbox
             WHERE channel = $1 AND store = $2 AND dataset = $3 AND direction = $4 AND sequence <= $5",
        );
        // Every stored sequence fits a BIGINT, so acknowledging beyond it acknowledges everything.
        let up_to = i64::try_from(sequence).unwrap_or(i64::MAX);
        self.db
            .affected(&ctx, Phase::Autocommit, "deleting from replication_outbox", &sql, &key.with(&[&up_to]))
            .await
            .map(drop)
    }

    async fn checkpoint(&self, stream: &Stream) -> Result<u64, StoreError> {
        let ctx = Ctx::new("checkpoint", subject(stream, "checkpoint"));
        let key = StreamKey::new(ctx.op, stream)?;
        let sql = self.db.sql(
            "SELECT store, checkpoint FROM {s}.replication_checkpoints
             WHERE channel = $1 AND store = $2 AND dataset = $3 AND direction = $4",
        );
        let row = self.db.row_opt(&ctx, Phase::Read, "reading replication_checkpoints", &sql, &key.params()).await?;
        match row {
            Some(row) => RowReader::new(ctx.op, &row, "replication_checkpoints", &["store"]).u64("checkpoint"),
            None => Ok(0),
        }
    }

    async fn inbox_commit(
        &self,
        stream: &Stream,
        expected_checkpoint: u64,
        new_checkpoint: u64,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>, StoreError> {
        let ctx = Ctx::new("inbox_commit", subject(stream, "inbox"));
        if new_checkpoint < expected_checkpoint {
            return Err(ctx.err(
                ErrorKind::InvalidRequest,
                format!("new checkpoint {new_checkpoint} is behind the expected {expected_checkpoint}"),
            ));
        }
        let key = StreamKey::new(ctx.op, stream)?;
        let expected = to_bigint(ctx.op, "expected_checkpoint", expected_checkpoint)?;
        let new = to_bigint(ctx.op, "new_checkpoint", new_checkpoint)?;
        let advance = if expected_checkpoint == 0 {
            self.db.sql(
                "INSERT INTO {s}.replication_checkpoints AS c (channel, store, dataset, direction, checkpoint)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (channel, store, dataset, direction) DO UPDATE SET checkpoint = EXCLUDED.checkpoint
                 WHERE c.checkpoint = $6",
            )
        } else {
            self.db.sql(
                "UPDATE {s}.replication_checkpoints SET checkpoint = $5
                 WHERE channel = $1 AND store = $2 AND dataset = $3 AND direction = $4 AND checkpoint = $6",
            )
        };
        let current = self.db.sql(
            "SELECT store, checkpoint FROM {s}.replication_checkpoints
             WHERE channel = $1 AND store = $2 AND dataset = $3 AND direction = $4",
        );
        let record_ids = self.db.sql(
            "INSERT INTO {s}.replication_inbox_ids (channel, store, dataset, direction, change_id)
             SELECT $1, $2, $3, $4, u.change_id FROM unnest($5::text[]) AS u(change_id)
             ON CONFLICT DO NOTHING
             RETURNING change_id",
        );
        let ids = sorted_ids(&changes);
        let mut client = self.db.client(&ctx).await?;
        let tx = self.db.begin(&ctx, &mut client).await?;
        let fresh = self
            .db
            .timed(&ctx, Phase::Uncommitted, async {
                let n = execute(
                    &ctx,
                    &tx,
                    Phase::Uncommitted,
                    "advancing replication_checkpoints",
                    &advance,
                    &key.with(&[&new, &expected]),
                )
                .await?;
                if n == 0 {
                    let found = query_opt(
                        &ctx,
                        &tx,
                        Phase::Uncommitted,
                        "reading replication_checkpoints",
                        &current,
                        &key.params(),
                    )
                    .await?;
                    let at = match found {
                        Some(row) => {
                            RowReader::new(ctx.op, &row, "replication_checkpoints", &["store"]).u64("checkpoint")?
                        }
                        None => 0,
                    };
                    return Err(ctx.err(ErrorKind::Conflict, format!("checkpoint is {at}, not {expected_checkpoint}")));
                }
                if ids.is_empty() {
                    return Ok(HashSet::new());
                }
                let rows = query(
                    &ctx,
                    &tx,
                    Phase::Uncommitted,
                    "recording change ids in replication_inbox_ids",
                    &record_ids,
                    &key.with(&[&ids]),
                )
                .await?;
                ids_from_rows(ctx.op, "replication_inbox_ids", &rows)
            })
            .await?;
        self.db.commit(&ctx, tx).await?;
        Ok(first_of_each(changes, &fresh))
    }
}
