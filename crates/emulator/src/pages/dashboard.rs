//! The emulator's dashboard (`/_emulator`): customers, subscriptions,
//! invoices, events and every delivery attempt, with buttons to move the
//! clock, resend an event and trigger one.

use super::{date, escape, field, form_fields, money, Page};
use crate::billing::schedule::run_until;
use crate::store::Store;
use crate::triggers::{trigger, TriggerFor, TRIGGERABLE};

fn truncate(text: &str, most: usize) -> String {
    match text.char_indices().nth(most) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn controls(store: &Store) -> String {
    let steps = [
        (3600, "1 hour"),
        (86_400, "1 day"),
        (3 * 86_400, "3 days"),
        (7 * 86_400, "1 week"),
        (31 * 86_400, "31 days"),
    ];
    let buttons: String = steps
        .iter()
        .map(|(seconds, label)| {
            format!("<button type=\"submit\" name=\"seconds\" value=\"{seconds}\" class=\"advance\">+{label}</button> ")
        })
        .collect();
    let types: String = TRIGGERABLE
        .iter()
        .map(|t| format!("<option value=\"{t}\">{t}</option>"))
        .collect();
    format!(
        "<p>Emulator time: <strong id=\"now\">{}</strong> (<span id=\"now-unix\">{}</span>)</p>\
<form method=\"post\" action=\"/_emulator/advance\" id=\"advance\">Advance the clock: {buttons}\
<input name=\"custom\" type=\"number\" min=\"1\" placeholder=\"seconds\" style=\"width:8rem\"> <button type=\"submit\">Advance</button></form>\
<form method=\"post\" action=\"/_emulator/trigger\" id=\"trigger\">Trigger an event: <select name=\"type\">{types}</select> \
<input name=\"email\" type=\"email\" placeholder=\"customer email (optional)\" style=\"width:14rem\"> <button type=\"submit\">Trigger</button></form>",
        date(Some(store.now())),
        store.now()
    )
}

fn tables(store: &Store) -> String {
    let mut customers = String::new();
    for c in store.customers.newest_first() {
        customers.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(c["id"].as_str().unwrap_or_default()),
            escape(c["email"].as_str().unwrap_or_default()),
            if c["deleted"] == true { "deleted" } else { "" }
        ));
    }
    let mut subscriptions = String::new();
    for s in store.subscriptions.newest_first() {
        subscriptions.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(s["id"].as_str().unwrap_or_default()),
            escape(s["customer"].as_str().unwrap_or_default()),
            escape(s["status"].as_str().unwrap_or_default()),
            escape(
                s["items"]["data"][0]["price"]["id"]
                    .as_str()
                    .unwrap_or_default()
            ),
            date(s["cancel_at"].as_i64()),
        ));
    }
    let mut invoices = String::new();
    for i in store.invoices.newest_first() {
        let link = i["hosted_invoice_url"].as_str().map_or(String::new(), |u| {
            format!("<a href=\"{}\">page</a>", escape(u))
        });
        invoices.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{link}</td></tr>",
            escape(i["id"].as_str().unwrap_or_default()),
            escape(i["customer"].as_str().unwrap_or_default()),
            escape(i["billing_reason"].as_str().unwrap_or_default()),
            escape(i["status"].as_str().unwrap_or_default()),
            money(
                i["amount_due"].as_i64().unwrap_or_default(),
                i["currency"].as_str().unwrap_or("usd")
            ),
        ));
    }
    let mut events = String::new();
    for e in store.events.newest_first().take(300) {
        let id = e["id"].as_str().unwrap_or_default();
        let attempts: Vec<String> = store
            .deliveries
            .iter()
            .filter(|a| a.event_id == id)
            .map(|a| {
                format!(
                    "#{} {}{}",
                    a.attempt,
                    a.status
                        .map_or_else(|| a.error.clone().unwrap_or_default(), |s| s.to_string()),
                    if a.duplicate { " (duplicate)" } else { "" }
                )
            })
            .collect();
        events.push_str(&format!(
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/_emulator/events/{id}/resend\"><button type=\"submit\" class=\"resend\">Resend</button></form></td></tr>",
            escape(e["type"].as_str().unwrap_or_default()),
            date(e["created"].as_i64()),
            escape(&attempts.join(", ")),
            id = escape(id),
        ));
    }
    let mut deliveries = String::new();
    for a in store.deliveries.iter().rev().take(300) {
        deliveries.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&a.event_id),
            escape(&a.event_type),
            escape(&a.url),
            a.attempt,
            a.status.map_or_else(|| escape(a.error.as_deref().unwrap_or_default()), |s| s.to_string()),
            escape(&truncate(&a.response_body, 200)),
        ));
    }
    format!(
        "<h2>Customers</h2><table id=\"customers\"><tr><th>Id</th><th>Email</th><th></th></tr>{customers}</table>\
<h2>Subscriptions</h2><table id=\"subscriptions\"><tr><th>Id</th><th>Customer</th><th>Status</th><th>Price</th><th>Cancels</th></tr>{subscriptions}</table>\
<h2>Invoices</h2><table id=\"invoices\"><tr><th>Id</th><th>Customer</th><th>Reason</th><th>Status</th><th>Due</th><th></th></tr>{invoices}</table>\
<h2>Events</h2><table id=\"events\"><tr><th>Id</th><th>Type</th><th>Created</th><th>Deliveries</th><th></th></tr>{events}</table>\
<h2>Delivery attempts</h2><table id=\"deliveries\"><tr><th>Event</th><th>Type</th><th>Endpoint</th><th>Attempt</th><th>Answer</th><th>Body</th></tr>{deliveries}</table>"
    )
}

/// `GET /_emulator`.
pub fn page(store: &Store, error: Option<&str>) -> Page {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"error\">{}</p>", escape(e))
    });
    Page::html(
        if error.is_empty() { 200 } else { 400 },
        "Dashboard",
        format!(
            "<h1>Stripe emulator</h1>{error}{}<p class=\"note\">Delivery attempts as JSON: <a href=\"/_emulator/deliveries\">/_emulator/deliveries</a></p>{}",
            controls(store),
            tables(store)
        ),
    )
}

fn json_answer(status: u16, body: serde_json::Value) -> Page {
    Page {
        status,
        content_type: "application/json",
        body: body.to_string(),
        location: None,
    }
}

/// `POST /_emulator/advance` (`seconds` or `custom`). With `json`, answers
/// `{"now": ...}` instead of going back to the dashboard.
pub fn advance(store: &mut Store, body: &str, json: bool) -> Page {
    let fields = form_fields(body);
    let seconds = field(&fields, "custom")
        .filter(|s| !s.is_empty())
        .or(field(&fields, "seconds"))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| (1..=5 * 365 * 86_400).contains(s));
    let Some(seconds) = seconds else {
        let message = "Advance by a whole number of seconds, from 1 to five years.";
        return if json {
            json_answer(400, serde_json::json!({"error": {"message": message}}))
        } else {
            page(store, Some(message))
        };
    };
    let target = store.now() + seconds;
    run_until(store, target);
    if json {
        json_answer(200, serde_json::json!({"now": store.now()}))
    } else {
        Page::redirect("/_emulator".into())
    }
}

/// `POST /_emulator/trigger`: `type`, and `customer` or `email` and
/// `metadata[key]` for a new customer. With `json`, answers JSON.
pub fn trigger_event(store: &mut Store, body: &str, json: bool) -> Page {
    let fields = form_fields(body);
    let kind = field(&fields, "type").unwrap_or_default().to_owned();
    let target = TriggerFor {
        customer: field(&fields, "customer")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        email: field(&fields, "email")
            .filter(|e| !e.is_empty())
            .map(str::to_owned),
        metadata: fields
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("metadata[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .map(|key| (key.to_owned(), v.clone()))
            })
            .collect(),
    };
    let mark = store.events.len();
    match (trigger(store, &kind, &target), json) {
        (Ok(()), false) => Page::redirect("/_emulator".into()),
        (Ok(()), true) => {
            let emitted: Vec<serde_json::Value> = store
                .events
                .oldest_first()
                .skip(mark)
                .map(|e| serde_json::json!({"id": e["id"], "type": e["type"]}))
                .collect();
            json_answer(200, serde_json::json!({"type": kind, "events": emitted}))
        }
        (Err(error), false) => page(store, Some(&error.message)),
        (Err(error), true) => json_answer(error.status, error.to_json("req_trigger")),
    }
}

/// `POST /_emulator/events/:id/resend`.
pub fn resend(store: &mut Store, id: &str) -> Page {
    if store.redeliver(id) {
        Page::redirect("/_emulator".into())
    } else {
        Page::not_found("No such event.")
    }
}

/// `GET /_emulator/deliveries`: every delivery attempt, as JSON.
pub fn deliveries_json(store: &Store) -> Page {
    Page {
        status: 200,
        content_type: "application/json",
        body: serde_json::to_string(&store.deliveries).unwrap_or_else(|_| "[]".into()),
        location: None,
    }
}
