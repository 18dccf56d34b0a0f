//! One sync per user per interval. Each sync calls Stripe, so a client
//! hammering `POST /auth/stripe/sync` would spend the app's Stripe rate limit;
//! under kavachOS the host limits the route per IP (`metadata.rateLimit`),
//! standalone this does, per user and per instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::BillingService;
use crate::error::{BillingError, BillingResult};

pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// Entries kept before old ones are dropped (they only matter for 2 s).
const MAX_TRACKED_USERS: usize = 10_000;

#[derive(Debug, Default)]
pub struct SyncLimit {
    last: Mutex<HashMap<String, Instant>>,
}

impl SyncLimit {
    /// Takes the user's slot, or says how many seconds until the next one.
    pub fn take(&self, user_id: &str, now: Instant) -> Result<(), u64> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(at) = last.get(user_id) {
            let elapsed = now.saturating_duration_since(*at);
            if elapsed < SYNC_INTERVAL {
                let wait = SYNC_INTERVAL - elapsed;
                return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
            }
        }
        if last.len() >= MAX_TRACKED_USERS {
            last.retain(|_, at| now.saturating_duration_since(*at) < SYNC_INTERVAL);
        }
        last.insert(user_id.to_owned(), now);
        Ok(())
    }
}

impl BillingService {
    /// The standalone endpoint's per-user limit; 429 `rate_limited` with the
    /// seconds to wait.
    pub fn take_sync_slot(&self, user_id: &str) -> BillingResult<()> {
        self.sync_limit
            .take(user_id, Instant::now())
            .map_err(|retry_after_secs| BillingError::RateLimited { retry_after_secs })
    }

    /// The same limit for the invoice history, counted apart from syncs.
    pub fn take_invoices_slot(&self, user_id: &str) -> BillingResult<()> {
        self.sync_limit
            .take(&format!("invoices\0{user_id}"), Instant::now())
            .map_err(|retry_after_secs| BillingError::RateLimited { retry_after_secs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sync_per_user_per_interval() {
        let limit = SyncLimit::default();
        let start = Instant::now();
        assert_eq!(limit.take("a", start), Ok(()));
        assert_eq!(limit.take("a", start + Duration::from_millis(500)), Err(2));
        assert_eq!(limit.take("b", start), Ok(()), "per user");
        assert_eq!(limit.take("a", start + SYNC_INTERVAL), Ok(()));
    }
}
