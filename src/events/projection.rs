//! The one rule that projects a user's subscriptions onto the six
//! `kavach_users` columns.
//!
//! A live status beats a terminal one; among equals the most recently created
//! subscription wins (the greater id on the same second). So a new purchase
//! after a cancellation shows, and a late event about an old subscription
//! never hides the current one.

/// A stored subscription, as the projection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub id: String,
    pub status: String,
    pub created: i64,
    pub price_id: Option<String>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
}

/// The values of the user's six Stripe columns (the customer id aside).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Projection {
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub price_id: Option<String>,
    pub current_period_end: Option<i64>,
    /// "Scheduled to cancel": `cancel_at_period_end` or a `cancel_at` date.
    pub cancel_at_period_end: bool,
}

pub const LIVE_STATUSES: [&str; 6] = [
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "paused",
    "incomplete",
];

pub fn is_live(status: &str) -> bool {
    LIVE_STATUSES.contains(&status)
}

/// The projection of a user's subscriptions; empty columns when there are none.
pub fn project(subscriptions: &[StoredSubscription]) -> Projection {
    let winner = subscriptions.iter().max_by(|a, b| {
        (is_live(&a.status), a.created, &a.id).cmp(&(is_live(&b.status), b.created, &b.id))
    });
    match winner {
        None => Projection::default(),
        Some(sub) => Projection {
            subscription_id: Some(sub.id.clone()),
            status: Some(sub.status.clone()),
            price_id: sub.price_id.clone(),
            current_period_end: sub.current_period_end,
            cancel_at_period_end: sub.cancel_at_period_end || sub.cancel_at.is_some(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, status: &str, created: i64) -> StoredSubscription {
        StoredSubscription {
            id: id.into(),
            status: status.into(),
            created,
            price_id: Some(format!("price_{id}")),
            current_period_end: Some(created + 100),
            cancel_at_period_end: false,
            cancel_at: None,
        }
    }

    #[test]
    fn live_beats_terminal_even_when_older() {
        let p = project(&[sub("old", "active", 1), sub("new", "canceled", 9)]);
        assert_eq!(p.subscription_id.as_deref(), Some("old"));
    }

    #[test]
    fn among_equals_the_newest_wins_then_the_greater_id() {
        assert_eq!(
            project(&[sub("a", "canceled", 1), sub("b", "canceled", 2)])
                .subscription_id
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            project(&[sub("b", "active", 2), sub("a", "active", 2)])
                .subscription_id
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            project(&[sub("n", "active", 5), sub("o", "trialing", 3)])
                .subscription_id
                .as_deref(),
            Some("n")
        );
    }

    #[test]
    fn a_cancel_at_date_counts_as_scheduled_and_empty_is_empty() {
        let mut s = sub("a", "active", 1);
        s.cancel_at = Some(50);
        assert!(project(&[s]).cancel_at_period_end);
        assert_eq!(project(&[]), Projection::default());
    }
}
