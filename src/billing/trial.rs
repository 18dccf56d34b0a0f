//! One free trial per user (option `oneTrialPerUser`). A user who ever had a
//! stored subscription with a trial gets none; otherwise the first checkout
//! that records the user's grant row carries it, so two tabs or two app
//! instances cannot both hand one out. A refused trial is not an error: the
//! session is created without it.
//!
//! A grant whose checkout session Stripe expired unpaid (24 hours by default)
//! is given back: the next checkout with a trial after the session's
//! `expires_at` asks Stripe for that session, and takes the grant over only if
//! Stripe says `expired`.

use serde_json::Value;

use super::BillingService;
use crate::error::BillingResult;

/// When Stripe's answer lacks `expires_at`: Stripe's default session lifetime.
const DEFAULT_SESSION_LIFETIME_SECS: i64 = 86_400;

/// How a granted trial is recorded, so it can be bound or given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TrialClaim {
    /// The user's grant row, claimed by this checkout.
    Recorded,
    /// `oneTrialPerUser: false`: nothing recorded.
    Unrecorded,
}

impl BillingService {
    /// Whether this checkout may carry a trial; `None` when the user had one.
    pub(super) async fn grant_trial(&self, user_id: &str) -> BillingResult<Option<TrialClaim>> {
        if !self.config.one_trial_per_user {
            return Ok(Some(TrialClaim::Unrecorded));
        }
        if self.store.user_had_trial(user_id).await? {
            return Ok(None);
        }
        let now = chrono::Utc::now().timestamp();
        if self.store.claim_trial(user_id, now).await? {
            return Ok(Some(TrialClaim::Recorded));
        }
        let Some(grant) = self.store.trial_grant(user_id).await? else {
            // Given back between the two reads: claim again, once.
            return Ok(self
                .store
                .claim_trial(user_id, now)
                .await?
                .then_some(TrialClaim::Recorded));
        };
        let (Some(session_id), Some(expires_at)) =
            (grant.checkout_session_id, grant.session_expires_at)
        else {
            // Another checkout is creating its session with the trial.
            return Ok(None);
        };
        if expires_at >= now || !crate::config::is_stripe_id(&session_id) {
            return Ok(None);
        }
        let session = self
            .stripe
            .get(&format!("/v1/checkout/sessions/{session_id}"))
            .await?;
        if session.get("status").and_then(Value::as_str) != Some("expired") {
            return Ok(None);
        }
        Ok(self
            .store
            .retake_trial_grant(user_id, &session_id, now)
            .await?
            .then_some(TrialClaim::Recorded))
    }

    /// Ties the grant to the session that carries the trial. Failing to write
    /// it keeps the claim in place: the user gets no second trial, which is
    /// the safe side.
    pub(super) async fn bind_trial(
        &self,
        user_id: &str,
        claim: &TrialClaim,
        session_id: &str,
        expires_at: Option<i64>,
    ) {
        if *claim == TrialClaim::Recorded {
            let expires_at = expires_at
                .unwrap_or_else(|| chrono::Utc::now().timestamp() + DEFAULT_SESSION_LIFETIME_SECS);
            let _ = self
                .store
                .bind_trial_grant(user_id, session_id, expires_at)
                .await;
        }
    }

    /// Stripe refused the session: the trial is the user's again.
    pub(super) async fn give_back_trial(&self, user_id: &str, claim: &TrialClaim) {
        if *claim == TrialClaim::Recorded {
            let _ = self.store.release_trial_claim(user_id).await;
        }
    }
}
