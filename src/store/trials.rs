//! One free trial per user: whether a user ever had a trial, and the grant
//! row that makes concurrent checkouts (two tabs, two app instances) agree on
//! which one carries it.

use sqlx::Row;

use super::{DbPool, Store};
use crate::error::BillingResult;

/// A user's trial grant: the checkout session that carries the trial, once
/// created (`None` while its creation is in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialGrant {
    pub checkout_session_id: Option<String>,
    pub session_expires_at: Option<i64>,
}

impl Store {
    /// Whether any stored subscription of the user has (or had) a trial.
    pub async fn user_had_trial(&self, user_id: &str) -> BillingResult<bool> {
        let found = dispatch!(self, pool => {
            sqlx::query(self.sql.user_had_trial)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
                .is_some()
        });
        Ok(found)
    }

    /// Records the user's trial grant unless one exists; whether this call
    /// recorded it.
    pub async fn claim_trial(&self, user_id: &str, now: i64) -> BillingResult<bool> {
        let inserted = dispatch!(self, pool => {
            sqlx::query(self.sql.claim_trial)
                .bind(user_id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted > 0)
    }

    pub async fn trial_grant(&self, user_id: &str) -> BillingResult<Option<TrialGrant>> {
        let grant = dispatch!(self, pool => {
            sqlx::query(self.sql.read_trial_grant)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
                .map(|row| -> Result<TrialGrant, sqlx::Error> {
                    Ok(TrialGrant {
                        checkout_session_id: row.try_get(0)?,
                        session_expires_at: row.try_get(1)?,
                    })
                })
                .transpose()?
        });
        Ok(grant)
    }

    /// Ties a claimed grant to the checkout session that carries the trial.
    pub async fn bind_trial_grant(
        &self,
        user_id: &str,
        session_id: &str,
        expires_at: i64,
    ) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.bind_trial_grant)
                .bind(session_id)
                .bind(expires_at)
                .bind(user_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Gives back a claim whose checkout session was never created.
    pub async fn release_trial_claim(&self, user_id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.release_trial_claim).bind(user_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Takes over a grant whose session expired unpaid; whether this call
    /// took it (another checkout may have taken it first).
    pub async fn retake_trial_grant(
        &self,
        user_id: &str,
        expired_session_id: &str,
        now: i64,
    ) -> BillingResult<bool> {
        let taken = dispatch!(self, pool => {
            sqlx::query(self.sql.retake_trial_grant)
                .bind(now)
                .bind(user_id)
                .bind(expired_session_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(taken > 0)
    }
}
