//! The hosted Checkout page (`session.url`): line items, any trial, a card.

use serde_json::Value;

use super::{authentication_step, card_form, escape, field, form_fields, money, Page};
use crate::billing::checkout_completion::{complete_checkout, CardEntry, CheckoutOutcome};
use crate::store::{Cause, Store};

fn checkout_summary(store: &Store, session: &Value) -> String {
    let id = session["id"].as_str().unwrap_or_default();
    let terms = store.checkout_terms.get(id).cloned().unwrap_or_default();
    let mut rows = String::new();
    for (price, quantity) in &terms.items {
        let product = price["product"]
            .as_str()
            .and_then(|p| store.products.get(p));
        let name = product
            .and_then(|p| p["name"].as_str())
            .or(price["nickname"].as_str())
            .unwrap_or("Item");
        let per = price["recurring"]["interval"]
            .as_str()
            .map_or(String::new(), |i| format!(" / {i}"));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{quantity}</td><td>{}{}</td></tr>",
            escape(name),
            money(
                price["unit_amount"].as_i64().unwrap_or_default() * quantity,
                price["currency"].as_str().unwrap_or("usd")
            ),
            per
        ));
    }
    let trial = terms.trial_period_days.map_or(String::new(), |d| {
        format!("<p id=\"trial\">{d}-day free trial: nothing is charged today.</p>")
    });
    format!("<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>{rows}</table>{trial}")
}

/// `GET|POST /checkout/:id`.
pub fn page(store: &mut Store, id: &str, method: &str, body: &str) -> Page {
    let Some(session) = store.checkout_sessions.get(id).cloned() else {
        return Page::not_found("No such Checkout session.");
    };
    let action = format!("/checkout/{id}");
    let cancel = session["cancel_url"].as_str().unwrap_or("/").to_owned();
    let expired = session["status"] == "open"
        && session["expires_at"]
            .as_i64()
            .is_some_and(|at| at <= store.now());
    if session["status"] != "open" || expired {
        if expired {
            crate::resources::checkout_sessions::expire_session(store, id, &Cause::default()).ok();
        }
        let status = if expired {
            "expired"
        } else {
            session["status"].as_str().unwrap_or_default()
        };
        return Page::html(
            410,
            "Checkout",
            format!("<h1>This Checkout session is {}</h1><p id=\"closed\">It can no longer be paid.</p>", escape(status)),
        );
    }
    let needs_email = session["customer"].is_null() && session["customer_email"].is_null();
    let verb = if session["mode"] == "setup" {
        "Save card"
    } else {
        "Pay"
    };
    let cancel_link = format!(
        "<p><a href=\"{}\" id=\"cancel\">Cancel and go back</a></p>",
        escape(&cancel)
    );
    let heading = format!("<h1>Checkout</h1>{}", checkout_summary(store, &session));
    if method != "POST" {
        return Page::html(
            200,
            "Checkout",
            format!(
                "{heading}{}{cancel_link}",
                card_form(&action, needs_email, None, verb)
            ),
        );
    }
    let fields = form_fields(body);
    let number = field(&fields, "card_number").unwrap_or_default().to_owned();
    let email = field(&fields, "email")
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    let authenticated = field(&fields, "authenticated") == Some("true");
    if needs_email && email.is_none() {
        return Page::html(
            400,
            "Checkout",
            format!(
                "{heading}{}{cancel_link}",
                card_form(&action, true, Some("Enter an email address."), verb)
            ),
        );
    }
    let entry = CardEntry {
        number: &number,
        email: email.as_deref(),
        authenticated,
    };
    match complete_checkout(store, id, entry, &Cause::default()) {
        Ok(CheckoutOutcome::Completed {
            redirect: Some(url),
        }) => Page::redirect(url),
        Ok(CheckoutOutcome::Completed { redirect: None }) => Page::html(
            200,
            "Paid",
            "<h1 id=\"complete\">Payment complete</h1><p>You can close this page.</p>".into(),
        ),
        Ok(CheckoutOutcome::NeedsAuthentication) => Page::html(
            200,
            "Authenticate",
            authentication_step(&action, &number, email.as_deref(), &action),
        ),
        Err(error) => Page::html(
            error.status,
            "Checkout",
            format!(
                "{heading}{}{cancel_link}",
                card_form(&action, needs_email, Some(&error.message), verb)
            ),
        ),
    }
}
