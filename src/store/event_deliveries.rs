//! `onEvent` deliveries, tracked apart from the ledger: the package's own
//! work for an event and the app's callback for it succeed or fail
//! separately, and a retry calls the callback again without re-applying.

use sqlx::Row;

use super::{DbPool, Store};
use crate::error::BillingResult;

/// What a delivery may do with an event's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// This delivery calls `onEvent` now.
    Claimed,
    /// Called before, successfully: never again.
    Delivered,
    /// Another delivery holds a live lease on the call.
    InProgress,
}

impl Store {
    pub async fn claim_event_delivery(
        &self,
        event_id: &str,
        now: i64,
        lease_secs: i64,
    ) -> BillingResult<DeliveryClaim> {
        let inserted = dispatch!(self, pool => {
            sqlx::query(self.sql.claim_event_delivery)
                .bind(event_id)
                .bind(now + lease_secs)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if inserted > 0 {
            return Ok(DeliveryClaim::Claimed);
        }
        let row: Option<(String, i64)> = dispatch!(self, pool => {
            sqlx::query(self.sql.read_event_delivery)
                .bind(event_id)
                .fetch_optional(pool)
                .await?
                .map(|row| -> Result<_, sqlx::Error> { Ok((row.try_get(0)?, row.try_get(1)?)) })
                .transpose()?
        });
        match row {
            None => Ok(DeliveryClaim::InProgress),
            Some((state, _)) if state == "done" => Ok(DeliveryClaim::Delivered),
            Some((_, lease_until)) if lease_until >= now => Ok(DeliveryClaim::InProgress),
            Some(_) => {
                // A delivery that died mid-call: take its lease over.
                let taken = dispatch!(self, pool => {
                    sqlx::query(self.sql.take_over_event_delivery)
                        .bind(now + lease_secs)
                        .bind(event_id)
                        .bind(now)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
                Ok(if taken > 0 {
                    DeliveryClaim::Claimed
                } else {
                    DeliveryClaim::InProgress
                })
            }
        }
    }

    pub async fn finish_event_delivery(&self, event_id: &str, now: i64) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.finish_event_delivery).bind(now).bind(event_id).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn release_event_delivery(&self, event_id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.release_event_delivery).bind(event_id).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn prune_event_deliveries(&self, before: i64) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.prune_event_deliveries).bind(before).execute(pool).await?;
        });
        Ok(())
    }
}
