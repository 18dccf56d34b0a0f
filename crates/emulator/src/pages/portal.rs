//! The customer portal (`portal session.url`): the customer's subscriptions
//! and invoices; switch plan, cancel at period end (`cancel_at_period_end`
//! under classic billing, `cancel_at` under flexible), resume, replace the
//! card. Each action emits Stripe's events; a link goes back to `return_url`.

use serde_json::Value;

use super::{authentication_step, card_form, date, escape, field, form_fields, money, Page};
use crate::billing::subscription_object::{current_period, has_ended};
use crate::cards::{card_by_number, set_up_on_session, ChargeOutcome};
use crate::error::{ApiError, ApiResult};
use crate::resources::customers::set_default_card;
use crate::resources::payment_methods::attach_new_card;
use crate::resources::subscriptions::{change_subscription, CancelAt, SubscriptionChange};
use crate::resources::SentItem;
use crate::store::{Cause, Store};

fn price_name(store: &Store, price: &Value) -> String {
    let product = price["product"]
        .as_str()
        .and_then(|p| store.products.get(p))
        .and_then(|p| p["name"].as_str());
    let interval = price["recurring"]["interval"].as_str().unwrap_or("once");
    format!(
        "{} ({} / {interval})",
        price["nickname"].as_str().or(product).unwrap_or("Plan"),
        money(
            price["unit_amount"].as_i64().unwrap_or_default(),
            price["currency"].as_str().unwrap_or("usd")
        )
    )
}

fn subscription_block(store: &Store, action: &str, sub: &Value) -> String {
    let id = sub["id"].as_str().unwrap_or_default();
    let item = &sub["items"]["data"][0];
    let (_, end) = current_period(sub);
    let scheduled = sub["cancel_at_period_end"] == true || !sub["cancel_at"].is_null();
    let mut html = format!(
        "<section class=\"subscription\" id=\"{id}\"><h3>{}</h3><p>Status: <strong class=\"status\">{}</strong>. Current period ends {}.</p>",
        escape(&price_name(store, &item["price"])),
        escape(sub["status"].as_str().unwrap_or_default()),
        date(Some(end)),
        id = escape(id),
    );
    if !sub["pending_update"].is_null() {
        html.push_str("<p class=\"note\">A plan change waits for its invoice to be paid.</p>");
    }
    if has_ended(sub) {
        html.push_str("</section>");
        return html;
    }
    let hidden = format!(
        "<input type=\"hidden\" name=\"subscription\" value=\"{}\">",
        escape(id)
    );
    if scheduled {
        html.push_str(&format!(
            "<p class=\"scheduled\">Cancels on {}.</p><form method=\"post\" action=\"{action}\">{hidden}<input type=\"hidden\" name=\"action\" value=\"resume\"><button type=\"submit\" class=\"resume\">Resume subscription</button></form>",
            date(sub["cancel_at"].as_i64()),
        ));
    } else {
        html.push_str(&format!(
            "<form method=\"post\" action=\"{action}\">{hidden}<input type=\"hidden\" name=\"action\" value=\"cancel\"><button type=\"submit\" class=\"cancel\">Cancel at period end</button></form>"
        ));
    }
    let current = item["price"]["id"].as_str().unwrap_or_default();
    let options: String = store
        .prices
        .oldest_first()
        .filter(|p| !p["recurring"].is_null() && p["active"] == true && p["id"] != current)
        .map(|p| {
            format!(
                "<option value=\"{}\">{}</option>",
                escape(p["id"].as_str().unwrap_or_default()),
                escape(&price_name(store, p))
            )
        })
        .collect();
    if !options.is_empty() {
        html.push_str(&format!(
            "<form method=\"post\" action=\"{action}\">{hidden}<input type=\"hidden\" name=\"action\" value=\"switch\"><label>Switch plan <select name=\"price\" class=\"price\">{options}</select></label> <button type=\"submit\" class=\"switch\">Switch</button></form>"
        ));
    }
    html.push_str("</section>");
    html
}

fn invoice_rows(store: &Store, customer: &str) -> String {
    let mut rows = String::new();
    for invoice in store
        .invoices
        .newest_first()
        .filter(|i| i["customer"] == customer)
    {
        let link = invoice["hosted_invoice_url"]
            .as_str()
            .map_or(String::new(), |u| {
                let label = if invoice["status"] == "open" {
                    "Pay"
                } else {
                    "View"
                };
                format!("<a href=\"{}\">{label}</a>", escape(u))
            });
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{link}</td></tr>",
            escape(invoice["number"].as_str().unwrap_or("draft")),
            date(invoice["created"].as_i64()),
            escape(invoice["status"].as_str().unwrap_or_default()),
            money(
                invoice["total"].as_i64().unwrap_or_default(),
                invoice["currency"].as_str().unwrap_or("usd")
            ),
        ));
    }
    rows
}

fn render(store: &Store, session: &Value, error: Option<&str>, status: u16) -> Page {
    let id = session["id"].as_str().unwrap_or_default();
    let action = format!("/portal/{id}");
    let customer = session["customer"].as_str().unwrap_or_default();
    let subscriptions: String = store
        .subscriptions
        .newest_first()
        .filter(|s| s["customer"] == customer)
        .map(|s| subscription_block(store, &action, s))
        .collect();
    let card = store
        .customers
        .get(customer)
        .and_then(|c| c["invoice_settings"]["default_payment_method"].as_str())
        .and_then(|pm| store.payment_methods.get(pm))
        .map_or("none".to_owned(), |pm| {
            format!(
                "Visa ending {}",
                pm["card"]["last4"].as_str().unwrap_or("????")
            )
        });
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"error\">{}</p>", escape(e))
    });
    let card_update = card_form(
        &format!("{action}?action=card"),
        false,
        None,
        "Use this card",
    );
    let back = session["return_url"].as_str().map_or(String::new(), |url| {
        format!(
            "<p><a href=\"{}\" id=\"return\">Return to the app</a></p>",
            escape(url)
        )
    });
    Page::html(
        status,
        "Billing portal",
        format!(
            "<h1>Billing</h1>{error}<h2>Subscriptions</h2>{subscriptions}\
<h2>Payment method</h2><p id=\"card\">{}</p>{card_update}\
<h2>Invoices</h2><table><tr><th>Number</th><th>Date</th><th>Status</th><th>Total</th><th></th></tr>{}</table>{back}",
            escape(&card),
            invoice_rows(store, customer)
        ),
    )
}

/// What a portal action needs next.
enum Acted {
    Done,
    /// The new card wants 3-D Secure on setup: the step, then the post again.
    NeedsAuthentication,
}

/// One portal action on one of the customer's subscriptions (or the card).
fn act(
    store: &mut Store,
    customer: &str,
    action: &str,
    fields: &[(String, String)],
) -> ApiResult<Acted> {
    let cause = Cause::default();
    if action == "card" {
        let card = card_by_number(field(fields, "card_number").unwrap_or_default())?;
        crate::cards::new_payment_method(card, None, 0)?;
        let authenticated = field(fields, "authenticated") == Some("true");
        if let ChargeOutcome::RequiresAction = set_up_on_session(card.behaviour, authenticated) {
            return Ok(Acted::NeedsAuthentication);
        }
        let pm = attach_new_card(store, card, customer, &cause)?;
        set_default_card(store, customer, &pm, &cause);
        return Ok(Acted::Done);
    }
    let id = field(fields, "subscription").unwrap_or_default().to_owned();
    let sub = store
        .subscriptions
        .get(&id)
        .filter(|s| s["customer"] == customer)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription", &id))?;
    let mut change = SubscriptionChange::none();
    match action {
        "cancel" => {
            if sub["billing_mode"]["type"] == "classic" {
                change.cancel_at_period_end = Some(true);
            } else {
                change.cancel_at = Some(CancelAt::MaxPeriodEnd);
            }
        }
        "resume" => {
            change.cancel_at_period_end = Some(false);
            change.cancel_at = Some(CancelAt::Clear);
        }
        "switch" => {
            change.items = vec![SentItem {
                id: sub["items"]["data"][0]["id"].as_str().map(str::to_owned),
                price: field(fields, "price").map(str::to_owned),
                quantity: None,
                deleted: false,
            }];
        }
        other => {
            return Err(ApiError::invalid_value(
                "action",
                format!("Unknown portal action: {other}"),
            ))
        }
    }
    change_subscription(store, &id, change, &cause).map(|_| Acted::Done)
}

/// `GET|POST /portal/:id`.
pub fn page(store: &mut Store, id: &str, method: &str, query: &str, body: &str) -> Page {
    let Some(session) = store.portal_sessions.get(id).cloned() else {
        return Page::not_found("No such portal session.");
    };
    if method != "POST" {
        return render(store, &session, None, 200);
    }
    let mut fields = form_fields(body);
    fields.extend(form_fields(query));
    let customer = session["customer"].as_str().unwrap_or_default().to_owned();
    let action = field(&fields, "action").unwrap_or_default().to_owned();
    match act(store, &customer, &action, &fields) {
        Ok(Acted::Done) => Page::redirect(format!("/portal/{id}")),
        Ok(Acted::NeedsAuthentication) => Page::html(
            200,
            "Authenticate",
            authentication_step(
                &format!("/portal/{id}?action=card"),
                field(&fields, "card_number").unwrap_or_default(),
                None,
                &format!("/portal/{id}"),
            ),
        ),
        Err(error) => render(store, &session, Some(&error.message), error.status),
    }
}
