//! The event ledger: which Stripe events were handled, so a redelivery changes
//! nothing. A claim is a row in state `processing` with a lease; a delivery
//! that crashed mid-way leaves a lease that expires, and a retry takes over.

use sqlx::Row;

use super::{DbPool, Store};
use crate::error::BillingResult;

/// A ledger row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// Applied; its notification (if any) was delivered.
    Done,
    /// Recorded as ignored (no user, foreign product, gone at Stripe).
    Ignored,
    /// Applied; `onSubscriptionChange` still has to be called.
    Notify,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Ignored => "ignored",
            Self::Notify => "notify",
        }
    }
}

/// What a delivery may do with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This delivery owns the event now.
    Claimed,
    /// Fully handled before: nothing to do.
    Finished,
    /// Applied before, but the notification is still owed to this user.
    Notify { user_id: String },
    /// Another delivery holds a live lease on it.
    InProgress,
}

impl Store {
    pub async fn claim_event(
        &self,
        id: &str,
        event_type: &str,
        created: i64,
        now: i64,
        lease_secs: i64,
    ) -> BillingResult<Claim> {
        let inserted = dispatch!(self, pool => {
            sqlx::query(self.sql.claim_event)
                .bind(id)
                .bind(event_type)
                .bind(created)
                .bind(now + lease_secs)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if inserted > 0 {
            return Ok(Claim::Claimed);
        }
        // No row: released between our insert and read; the caller tries again.
        Ok(self
            .take_over_claim(id, now, lease_secs)
            .await?
            .unwrap_or(Claim::InProgress))
    }

    /// What a delivery may do with the existing ledger row `id` (`None`
    /// when there is none): a `processing` or `notify` row whose lease
    /// expired is taken over with a new lease.
    pub(super) async fn take_over_claim(
        &self,
        id: &str,
        now: i64,
        lease_secs: i64,
    ) -> BillingResult<Option<Claim>> {
        let row: Option<(String, i64, Option<String>)> = dispatch!(self, pool => {
            sqlx::query(self.sql.read_event)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| -> Result<_, sqlx::Error> { Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)) })
                .transpose()?
        });
        let Some((state, lease_until, notify_user)) = row else {
            return Ok(None);
        };
        // `processing` and `notify` rows carry a lease held by the delivery
        // working on them; only an expired lease may be taken over, so a
        // concurrent duplicate neither applies nor notifies a second time.
        let claim = match (state.as_str(), notify_user) {
            ("processing", _) => Claim::Claimed,
            ("notify", Some(user_id)) => Claim::Notify { user_id },
            _ => return Ok(Some(Claim::Finished)),
        };
        if lease_until >= now {
            return Ok(Some(Claim::InProgress));
        }
        let taken = dispatch!(self, pool => {
            sqlx::query(self.sql.take_over_event)
                .bind(now + lease_secs)
                .bind(id)
                .bind(state.as_str())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(Some(if taken > 0 { claim } else { Claim::InProgress }))
    }

    /// Records the outcome of a claimed event handled outside a subscription
    /// transaction.
    pub async fn finish_event(
        &self,
        id: &str,
        state: EventState,
        detail: Option<&str>,
    ) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.finish_event)
                .bind(state.as_str())
                .bind(detail)
                .bind(None::<String>)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records the event as applied with a notification owed to `user_id`.
    pub async fn finish_event_owing(&self, id: &str, user_id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.finish_event)
                .bind(EventState::Notify.as_str())
                .bind(None::<String>)
                .bind(user_id)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Gives a claim back after a failure, so Stripe's retry handles the event.
    pub async fn release_event(&self, id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.release_event).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// After a failed notification: let the next delivery retry it at once.
    pub async fn release_notification(&self, id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.release_notification).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes handled event ids received before `before` (Unix seconds).
    /// Ordering lives on the subscriptions, so this never affects it.
    pub async fn prune_events(&self, before: i64) -> BillingResult<u64> {
        let deleted = dispatch!(self, pool => {
            sqlx::query(self.sql.prune_events).bind(before).execute(pool).await?.rows_affected()
        });
        Ok(deleted)
    }

    pub async fn mark_notified(&self, id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.mark_notified).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// A ledger row whose notification to `user_id` is still owed and not
    /// being delivered (its lease expired).
    pub async fn owed_notification(
        &self,
        user_id: &str,
        now: i64,
    ) -> BillingResult<Option<String>> {
        let id = dispatch!(self, pool => {
            sqlx::query(self.sql.owed_notification)
                .bind(user_id)
                .bind(now)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get::<String, _>(0))
                .transpose()?
        });
        Ok(id)
    }

    /// The ledger rows owing `user_id` a notification, whatever their lease.
    pub async fn owed_notification_ids(&self, user_id: &str) -> BillingResult<Vec<String>> {
        let ids = dispatch!(self, pool => {
            sqlx::query(self.sql.owed_notification_ids)
                .bind(user_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(ids)
    }

    pub async fn checkout_session_user(&self, session_id: &str) -> BillingResult<Option<String>> {
        let user = dispatch!(self, pool => {
            sqlx::query(self.sql.checkout_session_user)
                .bind(session_id)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get::<String, _>(0))
                .transpose()?
        });
        Ok(user)
    }

    pub async fn user_by_customer(&self, customer_id: &str) -> BillingResult<Option<String>> {
        let user = dispatch!(self, pool => {
            sqlx::query(self.sql.user_by_customer)
                .bind(customer_id)
                .fetch_optional(pool)
                .await?
                .map(|row| -> Result<(String, String), sqlx::Error> { Ok((row.try_get(0)?, row.try_get(1)?)) })
                .transpose()?
        });
        // Stripe ids are case-sensitive; the host's column may not be (MySQL's
        // default collation): only the exact customer counts.
        Ok(user
            .filter(|(_, linked)| linked == customer_id)
            .map(|(id, _)| id))
    }

    /// `customer.deleted`: the customer no longer belongs to anyone.
    pub async fn unlink_customer(&self, customer_id: &str) -> BillingResult<()> {
        let Some(user_id) = self.user_by_customer(customer_id).await? else {
            return Ok(());
        };
        dispatch!(self, pool => {
            sqlx::query(self.sql.unlink_customer)
                .bind(&user_id)
                .bind(customer_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
