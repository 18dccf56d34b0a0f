//! The billing status of a user, computed from stored state only (never a
//! call to Stripe): the definitions the README documents, in one place.

use serde::Serialize;

use super::plans::{plan_for_price, plan_view, Plan, PlanView};
use crate::events::{is_live, PaymentIssue};
use crate::store::SubscriptionRecord;

/// `getBillingStatus(userId)`; timestamps in Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BillingStatus {
    pub active: bool,
    pub status: Option<String>,
    pub plan: Option<PlanView>,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub current_period_end: Option<i64>,
    pub on_trial: bool,
    pub trial_ends_at: Option<i64>,
    pub scheduled_to_cancel: bool,
    pub ends_at: Option<i64>,
    pub on_grace_period: bool,
    pub past_due: bool,
    /// The newest open invoice that failed or requires action (read separately).
    pub payment_issue: Option<PaymentIssue>,
}

/// What `hasActiveSubscription` narrows to; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub plan: Option<String>,
}

/// Statuses after which a subscription never comes back.
pub fn has_ended(status: &str) -> bool {
    matches!(status, "canceled" | "incomplete_expired")
}

/// Whether a status counts as paying: `active`, `trialing`, and `past_due`
/// while Stripe retries (unless the app says otherwise).
pub fn is_active_status(status: &str, past_due_is_active: bool) -> bool {
    match status {
        "active" | "trialing" => true,
        "past_due" => past_due_is_active,
        _ => false,
    }
}

/// The status of the user's projected subscription (`None`: the user has none).
pub fn billing_status(
    record: Option<&SubscriptionRecord>,
    plans: &[Plan],
    past_due_is_active: bool,
    now: i64,
) -> BillingStatus {
    let Some(sub) = record else {
        return BillingStatus::default();
    };
    let status = sub.status.as_str();
    let scheduled_to_cancel =
        is_live(status) && (sub.cancel_at_period_end || sub.cancel_at.is_some());
    let ends_at = if sub.cancel_at.is_some() {
        sub.cancel_at
    } else if sub.cancel_at_period_end {
        sub.current_period_end
    } else if has_ended(status) {
        sub.ended_at
    } else {
        None
    };
    BillingStatus {
        active: is_active_status(status, past_due_is_active),
        status: Some(sub.status.clone()),
        plan: plan_view(plans, sub.price_id.as_deref()),
        price_id: sub.price_id.clone(),
        product_id: sub.product_id.clone(),
        quantity: sub.quantity,
        current_period_end: sub.current_period_end,
        on_trial: status == "trialing" && sub.trial_end.is_some_and(|end| end > now),
        trial_ends_at: sub.trial_end,
        scheduled_to_cancel,
        ends_at,
        on_grace_period: scheduled_to_cancel && ends_at.is_some_and(|end| end > now),
        past_due: matches!(status, "past_due" | "unpaid"),
        payment_issue: None,
    }
}

/// Whether the subscription holds what the filter asks for, on any of its
/// items (a subscription may carry several prices).
pub fn matches_filter(
    sub: &SubscriptionRecord,
    filter: &SubscriptionFilter,
    plans: &[Plan],
) -> bool {
    let prices: Vec<&str> = sub
        .items
        .iter()
        .filter_map(|item| item.price.as_deref())
        .chain(sub.price_id.as_deref())
        .collect();
    let products: Vec<&str> = sub
        .items
        .iter()
        .filter_map(|item| item.product.as_deref())
        .chain(sub.product_id.as_deref())
        .collect();
    let price_ok = filter
        .price_id
        .as_deref()
        .is_none_or(|wanted| prices.contains(&wanted));
    let product_ok = filter
        .product_id
        .as_deref()
        .is_none_or(|wanted| products.contains(&wanted));
    let plan_ok = filter.plan.as_deref().is_none_or(|wanted| {
        prices
            .iter()
            .any(|price| plan_for_price(plans, price).is_some_and(|(plan, _)| plan.name == wanted))
    });
    price_ok && product_ok && plan_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::SubscriptionItem;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn plans() -> Vec<Plan> {
        vec![Plan {
            name: "pro".into(),
            price_id: "price_pro".into(),
            annual_price_id: Some("price_pro_year".into()),
            trial_days: Some(14),
            limits: BTreeMap::from([("projects".to_owned(), 10.0)]),
        }]
    }

    fn record(status: &str) -> SubscriptionRecord {
        SubscriptionRecord {
            id: "sub_1".into(),
            status: status.into(),
            items: vec![
                SubscriptionItem {
                    id: None,
                    price: Some("price_pro".into()),
                    product: Some("prod_app".into()),
                    quantity: Some(3),
                    current_period_end: Some(NOW + 30 * DAY),
                },
                SubscriptionItem {
                    id: None,
                    price: Some("price_addon".into()),
                    product: Some("prod_addon".into()),
                    quantity: Some(1),
                    current_period_end: Some(NOW + 30 * DAY),
                },
            ],
            price_id: Some("price_pro".into()),
            product_id: Some("prod_app".into()),
            quantity: Some(3),
            current_period_end: Some(NOW + 30 * DAY),
            ..SubscriptionRecord::default()
        }
    }

    fn status_of(sub: &SubscriptionRecord, past_due_is_active: bool) -> BillingStatus {
        billing_status(Some(sub), &plans(), past_due_is_active, NOW)
    }

    #[test]
    fn none_is_inactive_with_null_fields() {
        let status = billing_status(None, &plans(), true, NOW);
        assert_eq!(status, BillingStatus::default());
        assert!(!status.active && status.status.is_none());
    }

    #[test]
    fn trialing_with_a_future_end_is_on_trial() {
        let mut sub = record("trialing");
        sub.trial_start = Some(NOW - DAY);
        sub.trial_end = Some(NOW + 13 * DAY);
        let status = status_of(&sub, true);
        assert!(status.active && status.on_trial && !status.past_due);
        assert_eq!(status.trial_ends_at, Some(NOW + 13 * DAY));
        assert_eq!(status.plan.as_ref().map(|p| p.name.as_str()), Some("pro"));
        assert_eq!(status.quantity, Some(3));
        sub.trial_end = Some(NOW - 1);
        assert!(!status_of(&sub, true).on_trial, "a trial end in the past");
    }

    #[test]
    fn past_due_follows_the_option_and_unpaid_is_never_active() {
        let sub = record("past_due");
        assert!(status_of(&sub, true).active);
        assert!(!status_of(&sub, false).active);
        assert!(status_of(&sub, false).past_due);
        let unpaid = status_of(&record("unpaid"), true);
        assert!(!unpaid.active && unpaid.past_due);
        for status in ["incomplete", "incomplete_expired", "paused", "canceled"] {
            assert!(!status_of(&record(status), true).active, "{status}");
        }
    }

    #[test]
    fn scheduled_by_period_end_or_by_cancel_at() {
        let mut sub = record("active");
        sub.cancel_at_period_end = true;
        let status = status_of(&sub, true);
        assert!(status.scheduled_to_cancel && status.on_grace_period && status.active);
        assert_eq!(status.ends_at, Some(NOW + 30 * DAY));

        let mut flexible = record("active");
        flexible.cancel_at = Some(NOW + 5 * DAY);
        let status = status_of(&flexible, true);
        assert!(status.scheduled_to_cancel && status.on_grace_period);
        assert_eq!(status.ends_at, Some(NOW + 5 * DAY), "cancel_at wins");

        flexible.cancel_at = Some(NOW - 5);
        assert!(!status_of(&flexible, true).on_grace_period, "already past");
    }

    #[test]
    fn ended_subscriptions_say_when_and_are_not_scheduled() {
        let mut sub = record("canceled");
        sub.ended_at = Some(NOW - DAY);
        let status = status_of(&sub, true);
        assert!(!status.active && !status.scheduled_to_cancel && !status.on_grace_period);
        assert_eq!(status.ends_at, Some(NOW - DAY));
        sub.cancel_at_period_end = true;
        assert!(!status_of(&sub, true).scheduled_to_cancel, "not live");
        assert_eq!(status_of(&record("active"), true).ends_at, None);
    }

    #[test]
    fn filters_match_any_item() {
        let sub = record("active");
        let f =
            |price: Option<&str>, product: Option<&str>, plan: Option<&str>| SubscriptionFilter {
                price_id: price.map(Into::into),
                product_id: product.map(Into::into),
                plan: plan.map(Into::into),
            };
        assert!(matches_filter(&sub, &f(None, None, None), &plans()));
        assert!(matches_filter(
            &sub,
            &f(Some("price_addon"), None, None),
            &plans()
        ));
        assert!(matches_filter(
            &sub,
            &f(None, Some("prod_addon"), Some("pro")),
            &plans()
        ));
        assert!(!matches_filter(
            &sub,
            &f(Some("price_other"), None, None),
            &plans()
        ));
        assert!(!matches_filter(
            &sub,
            &f(None, Some("prod_other"), None),
            &plans()
        ));
        let mut annual = record("active");
        annual.items[0].price = Some("price_pro_year".into());
        annual.price_id = Some("price_pro_year".into());
        assert!(matches_filter(
            &annual,
            &f(None, None, Some("pro")),
            &plans()
        ));
        assert!(!matches_filter(
            &annual,
            &f(None, None, Some("basic")),
            &plans()
        ));
    }
}
