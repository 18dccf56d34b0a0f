//! Stripe's test cards and what each does when attached and charged.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CardBehaviour {
    /// 4242 4242 4242 4242.
    Succeeds,
    /// 4000 0000 0000 0002: `card_declined` / `generic_decline`.
    Declined,
    /// 4000 0000 0000 9995: `card_declined` / `insufficient_funds`.
    InsufficientFunds,
    /// 4000 0000 0000 0341: attaches, every charge fails.
    ChargeFails,
    /// 4000 0025 0000 3155: authentication on-session; off-session charges pass.
    AuthenticateOnSetup,
    /// 4000 0027 6000 3184: authentication on every charge.
    AuthenticateAlways,
}

/// How a charge ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ChargeOutcome {
    Succeeded,
    Declined(ApiError),
    RequiresAction,
}

pub struct TestCard {
    pub number: &'static str,
    pub token: &'static str,
    pub behaviour: CardBehaviour,
}

pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4242424242424242",
        token: "pm_card_visa",
        behaviour: CardBehaviour::Succeeds,
    },
    TestCard {
        number: "4000000000000002",
        token: "pm_card_visa_chargeDeclined",
        behaviour: CardBehaviour::Declined,
    },
    TestCard {
        number: "4000000000009995",
        token: "pm_card_visa_chargeDeclinedInsufficientFunds",
        behaviour: CardBehaviour::InsufficientFunds,
    },
    TestCard {
        number: "4000000000000341",
        token: "pm_card_chargeCustomerFail",
        behaviour: CardBehaviour::ChargeFails,
    },
    TestCard {
        number: "4000002500003155",
        token: "pm_card_authenticationRequiredOnSetup",
        behaviour: CardBehaviour::AuthenticateOnSetup,
    },
    TestCard {
        number: "4000002760003184",
        token: "pm_card_authenticationRequired",
        behaviour: CardBehaviour::AuthenticateAlways,
    },
];

pub fn card_by_number(number: &str) -> ApiResult<&'static TestCard> {
    let digits: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    TEST_CARDS.iter().find(|c| c.number == digits).ok_or_else(|| {
        ApiError::card_error(
            "incorrect_number",
            "Your card number is incorrect. The emulator takes Stripe's test cards: 4242 4242 4242 4242, 4000 0000 0000 0002, 4000 0000 0000 9995, 4000 0000 0000 0341, 4000 0025 0000 3155, 4000 0027 6000 3184.",
        )
    })
}

pub fn card_by_token(token: &str) -> Option<&'static TestCard> {
    TEST_CARDS.iter().find(|c| c.token == token)
}

/// A `payment_method` object for a test card. Declining cards refuse to attach,
/// as Stripe's do.
pub fn new_payment_method(card: &TestCard, customer: Option<&str>, now: i64) -> ApiResult<Value> {
    if let Some(error) = attach_error(card.behaviour) {
        return Err(error);
    }
    Ok(json!({
        "id": new_id("pm"),
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": "visa",
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "last4": &card.number[12..],
        },
        "billing_details": {"address": null, "email": null, "name": null, "phone": null},
        "created": now,
        "customer": customer,
        "livemode": false,
        "metadata": {},
    }))
}

fn attach_error(behaviour: CardBehaviour) -> Option<ApiError> {
    match behaviour {
        CardBehaviour::Declined => Some(declined("generic_decline")),
        CardBehaviour::InsufficientFunds => Some(declined("insufficient_funds")),
        _ => None,
    }
}

fn declined(code: &str) -> ApiError {
    let message = if code == "insufficient_funds" {
        "Your card has insufficient funds."
    } else {
        "Your card was declined."
    };
    ApiError::card_declined(code, message)
}

/// Saving a card with the customer on a page and nothing charged now (a
/// trial, setup mode): Stripe authenticates the setup for the cards that
/// want it on setup or always.
pub fn set_up_on_session(behaviour: CardBehaviour, authenticated: bool) -> ChargeOutcome {
    match behaviour {
        CardBehaviour::AuthenticateOnSetup | CardBehaviour::AuthenticateAlways
            if !authenticated =>
        {
            ChargeOutcome::RequiresAction
        }
        _ => ChargeOutcome::Succeeded,
    }
}

/// A charge of `amount` on a card: on-session (the customer is on a page) or
/// off-session (a renewal, `/pay` from a server).
pub fn charge(
    behaviour: CardBehaviour,
    amount: i64,
    on_session: bool,
    authenticated: bool,
) -> ChargeOutcome {
    if amount <= 0 {
        return ChargeOutcome::Succeeded;
    }
    match behaviour {
        CardBehaviour::Succeeds => ChargeOutcome::Succeeded,
        CardBehaviour::Declined | CardBehaviour::ChargeFails => {
            ChargeOutcome::Declined(declined("generic_decline"))
        }
        CardBehaviour::InsufficientFunds => ChargeOutcome::Declined(declined("insufficient_funds")),
        CardBehaviour::AuthenticateOnSetup if on_session && !authenticated => {
            ChargeOutcome::RequiresAction
        }
        CardBehaviour::AuthenticateOnSetup => ChargeOutcome::Succeeded,
        CardBehaviour::AuthenticateAlways if authenticated && on_session => {
            ChargeOutcome::Succeeded
        }
        CardBehaviour::AuthenticateAlways => ChargeOutcome::RequiresAction,
    }
}
