//! Applying a subscription change and re-projecting its user, in one
//! transaction: the user row is locked first, then the subscription row, so
//! concurrent events for one user (from any number of app instances) apply one
//! at a time and the projection is computed from committed state.

use sqlx::Row;

use super::{BeginWrite, DbPool, Store, UserRecord};
use crate::error::{BillingError, BillingResult};
use crate::events::{
    decide, project, Ordering, Projection, StoredSubscription, SubscriptionItem,
    SubscriptionSnapshot,
};
use crate::store::EventState;

/// What an event does to a subscription.
#[derive(Debug, Clone)]
pub enum SubscriptionChange {
    /// The subscription as the event (or a fetch from Stripe) shows it.
    Snapshot {
        snapshot: SubscriptionSnapshot,
        /// Set when Stripe returned the snapshot just now (a fetch, or the
        /// answer to the app's own change): the truth, whatever its event's age.
        fetched: Option<Fetched>,
    },
    /// `invoice.payment_failed`: `active` and `trialing` become `past_due`.
    PaymentFailed { subscription_id: String },
}

/// When Stripe answered with a snapshot: its `Date` header in Unix seconds
/// (Stripe's clock; `None` if it sent none). An event created in an earlier
/// second never overwrites that snapshot; one in the same second is a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub as_of: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SubscriptionWrite<'a> {
    pub event_id: &'a str,
    pub event_created: i64,
    /// The user the subscription belongs to, when known.
    pub user_id: Option<&'a str>,
    pub change: SubscriptionChange,
    /// Whether a projection change must be delivered to `onSubscriptionChange`.
    pub notify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Written. `changed_user` is the user whose projection changed.
    Applied { changed_user: Option<String> },
    /// Older than what is stored: nothing written.
    Stale,
    /// Same second as the stored state: re-fetch and apply the fetched truth.
    NeedsRefetch,
    /// A payment failure for a subscription not stored yet.
    UnknownSubscription,
    /// Stored, but no user owns its customer: recorded as ignored.
    Unowned,
}

impl ApplyOutcome {
    /// Whether the transaction that produced this outcome is committed.
    pub fn commits(&self) -> bool {
        !matches!(self, Self::NeedsRefetch | Self::UnknownSubscription)
    }
}

/// One stored subscription, whole: what the billing status reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionRecord {
    pub id: String,
    pub status: String,
    pub items: Vec<SubscriptionItem>,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub ended_at: Option<i64>,
}

/// The stored row's ordering facts.
#[derive(Debug, Clone)]
pub struct StoredFacts {
    pub user_id: Option<String>,
    pub status: String,
    pub last_event_created: Option<i64>,
}

/// Reads a row of `Dialect::select_subscription` / `lock_subscription`.
fn facts_from_row<R: Row>(row: &R) -> Result<StoredFacts, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredFacts {
        user_id: row.try_get(0)?,
        status: row.try_get(1)?,
        last_event_created: row.try_get(2)?,
    })
}

impl Store {
    /// The stored row's ordering facts, read without a lock (to decide early
    /// whether a same-second event needs a fetch from Stripe).
    pub async fn subscription_facts(
        &self,
        subscription_id: &str,
    ) -> BillingResult<Option<StoredFacts>> {
        let facts = dispatch!(self, pool => {
            sqlx::query(self.sql.select_subscription)
                .bind(subscription_id)
                .fetch_optional(pool)
                .await?
                .map(|row| facts_from_row(&row))
                .transpose()?
        });
        Ok(facts)
    }

    /// A stored subscription by id, read without a lock.
    pub async fn subscription_record(
        &self,
        subscription_id: &str,
    ) -> BillingResult<Option<SubscriptionRecord>> {
        let record = dispatch!(self, pool => {
            sqlx::query(self.sql.select_subscription_record)
                .bind(subscription_id)
                .fetch_optional(pool)
                .await?
                .map(|row| -> Result<SubscriptionRecord, sqlx::Error> {
                    let items: String = row.try_get(2)?;
                    Ok(SubscriptionRecord {
                        id: row.try_get(0)?,
                        status: row.try_get(1)?,
                        // Written by this package from parsed items; a row
                        // edited by hand to something else reads as no items.
                        items: serde_json::from_str(&items).unwrap_or_default(),
                        price_id: row.try_get(3)?,
                        product_id: row.try_get(4)?,
                        quantity: row.try_get(5)?,
                        current_period_end: row.try_get(6)?,
                        cancel_at_period_end: row.try_get(7)?,
                        cancel_at: row.try_get(8)?,
                        trial_start: row.try_get(9)?,
                        trial_end: row.try_get(10)?,
                        ended_at: row.try_get(11)?,
                    })
                })
                .transpose()?
        });
        Ok(record)
    }

    pub async fn apply_subscription(
        &self,
        write: &SubscriptionWrite<'_>,
    ) -> BillingResult<ApplyOutcome> {
        let sql = self.sql;
        dispatch!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let result: BillingResult<ApplyOutcome> = async {
                if let Some(user_id) = write.user_id {
                    sqlx::query(sql.lock_user).bind(user_id).fetch_optional(&mut *tx).await?;
                }
                let subscription_id = match &write.change {
                    SubscriptionChange::Snapshot { snapshot, .. } => snapshot.id.as_str(),
                    SubscriptionChange::PaymentFailed { subscription_id } => subscription_id.as_str(),
                };
                let stored = sqlx::query(sql.lock_subscription)
                    .bind(subscription_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| facts_from_row(&row))
                    .transpose()?;
                let last = stored.as_ref().and_then(|s| s.last_event_created);
                let owner: Option<String> = write
                    .user_id
                    .map(str::to_owned)
                    .or_else(|| stored.as_ref().and_then(|s| s.user_id.clone()));

                match &write.change {
                    SubscriptionChange::Snapshot { snapshot, fetched } => {
                        match decide(last, write.event_created, fetched.is_some()) {
                            Ordering::Tie => return Ok(ApplyOutcome::NeedsRefetch),
                            Ordering::Stale => {
                                sqlx::query(sql.finish_event)
                                    .bind(EventState::Done.as_str())
                                    .bind(Some("older than the stored state"))
                                    .bind(None::<String>)
                                    .bind(write.event_id)
                                    .execute(&mut *tx)
                                    .await?;
                                return Ok(ApplyOutcome::Stale);
                            }
                            Ordering::Apply => {}
                        }
                        let main = snapshot.main_item();
                        let items = serde_json::to_string(&snapshot.items)
                            .map_err(|e| BillingError::Internal(format!("cannot encode items: {e}")))?;
                        sqlx::query(sql.upsert_subscription)
                            .bind(&snapshot.id)
                            .bind(&snapshot.customer_id)
                            .bind(write.user_id)
                            .bind(&snapshot.status)
                            .bind(items)
                            .bind(main.and_then(|i| i.price.clone()))
                            .bind(main.and_then(|i| i.current_period_end))
                            .bind(snapshot.cancel_at_period_end)
                            .bind(snapshot.cancel_at)
                            .bind(snapshot.trial_end)
                            .bind(snapshot.created)
                            .bind(Some(
                                last.map_or(write.event_created, |l| l.max(write.event_created))
                                    .max(fetched.and_then(|f| f.as_of).unwrap_or(i64::MIN)),
                            ))
                            .bind(main.and_then(|i| i.product.clone()))
                            .bind(main.and_then(|i| i.quantity))
                            .bind(snapshot.trial_start)
                            .bind(snapshot.ended_at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    SubscriptionChange::PaymentFailed { .. } => {
                        let Some(stored) = &stored else {
                            return Ok(ApplyOutcome::UnknownSubscription);
                        };
                        match decide(last, write.event_created, false) {
                            Ordering::Tie => return Ok(ApplyOutcome::NeedsRefetch),
                            Ordering::Stale => {
                                sqlx::query(sql.finish_event)
                                    .bind(EventState::Done.as_str())
                                    .bind(Some("older than the stored state"))
                                    .bind(None::<String>)
                                    .bind(write.event_id)
                                    .execute(&mut *tx)
                                    .await?;
                                return Ok(ApplyOutcome::Stale);
                            }
                            Ordering::Apply => {}
                        }
                        // A failed first invoice leaves `incomplete`; `unpaid`
                        // and `canceled` are never revived.
                        let status = if matches!(stored.status.as_str(), "active" | "trialing") {
                            "past_due"
                        } else {
                            stored.status.as_str()
                        };
                        sqlx::query(sql.set_subscription_status)
                            .bind(status)
                            .bind(write.event_created)
                            .bind(subscription_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }

                let mut changed_user = None;
                if let Some(user_id) = &owner {
                    let subscriptions = sqlx::query(sql.user_subscriptions)
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(|row| -> Result<StoredSubscription, sqlx::Error> {
                            Ok(StoredSubscription {
                                id: row.try_get(0)?,
                                status: row.try_get(1)?,
                                created: row.try_get(2)?,
                                price_id: row.try_get(3)?,
                                current_period_end: row.try_get(4)?,
                                cancel_at_period_end: row.try_get(5)?,
                                cancel_at: row.try_get(6)?,
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let projection = project(&subscriptions);
                    let current = sqlx::query(sql.select_user)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| -> Result<UserRecord, sqlx::Error> { super::user_from_row(&row) })
                        .transpose()?;
                    if let Some(current) = current {
                        if projection_of(&current) != projection {
                            sqlx::query(sql.write_projection)
                                .bind(&projection.subscription_id)
                                .bind(&projection.status)
                                .bind(&projection.price_id)
                                .bind(projection.current_period_end)
                                .bind(projection.cancel_at_period_end)
                                .bind(user_id)
                                .execute(&mut *tx)
                                .await?;
                            changed_user = Some(user_id.clone());
                        }
                    }
                }
                let notify_user = changed_user.clone().filter(|_| write.notify);
                let state = match (&owner, &notify_user) {
                    (None, _) => EventState::Ignored,
                    (Some(_), Some(_)) => EventState::Notify,
                    (Some(_), None) => EventState::Done,
                };
                sqlx::query(sql.finish_event)
                    .bind(state.as_str())
                    .bind(if owner.is_none() { Some("no user owns this customer") } else { None })
                    .bind(notify_user)
                    .bind(write.event_id)
                    .execute(&mut *tx)
                    .await?;
                Ok(match owner {
                    None => ApplyOutcome::Unowned,
                    Some(_) => ApplyOutcome::Applied { changed_user },
                })
            }
            .await;
            // Outcomes that change nothing roll back (the transaction is dropped).
            if result.as_ref().is_ok_and(ApplyOutcome::commits) {
                tx.commit().await?;
            }
            result
        })
    }
}

/// The projection currently stored on a user row.
pub fn projection_of(user: &UserRecord) -> Projection {
    Projection {
        subscription_id: user.stripe_subscription_id.clone(),
        status: user.stripe_subscription_status.clone(),
        price_id: user.stripe_price_id.clone(),
        current_period_end: user.stripe_current_period_end,
        cancel_at_period_end: user.stripe_cancel_at_period_end,
    }
}
