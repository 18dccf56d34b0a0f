//! The hosted pages, as plain server-rendered HTML that a browser or a form
//! post can drive: Checkout, the customer portal, the hosted invoice page,
//! and the emulator's dashboard.

use serde_json::Value;

use crate::billing::checkout_completion::{complete_checkout, CardEntry, CheckoutOutcome};
use crate::error::ApiError;
use crate::form::{bracketed, parse_form};
use crate::resources::invoices::pay_invoice;
use crate::store::{Cause, Store};

/// What a page answers.
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub location: Option<String>,
}

impl Page {
    fn html(status: u16, title: &str, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: layout(title, &body),
            location: None,
        }
    }

    fn redirect(to: String) -> Self {
        Self {
            status: 303,
            content_type: "text/html; charset=utf-8",
            body: format!("<a href=\"{0}\">{0}</a>", escape(&to)),
            location: Some(to),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::html(
            404,
            "Not found",
            format!("<h1>Not found</h1><p>{}</p>", escape(what)),
        )
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Stripe emulator</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1a1f36}}\
table{{border-collapse:collapse;width:100%;margin:1rem 0}}td,th{{border-bottom:1px solid #e3e8ee;padding:.4rem;text-align:left;font-size:.9rem}}\
.error{{color:#b3093c;font-weight:600}}button{{background:#635bff;color:#fff;border:0;padding:.6rem 1.2rem;border-radius:4px;font-size:1rem}}\
input{{padding:.5rem;font-size:1rem;width:20rem}}.note{{color:#697386;font-size:.85rem}}</style></head>\
<body><p class=\"note\">kavachos-stripe emulator · test mode</p>{}</body></html>",
        escape(title),
        body
    )
}

fn money(amount: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        amount / 100,
        (amount % 100).abs(),
        currency.to_uppercase()
    )
}

fn form_fields(body: &str) -> Vec<(String, String)> {
    parse_form(body)
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|p| (bracketed(&p.path), p.value))
                .collect()
        })
        .unwrap_or_default()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const CARD_HINT: &str = "Test cards: 4242 4242 4242 4242 (succeeds), 4000 0000 0000 0002 (declined), 4000 0000 0000 9995 (insufficient funds), 4000 0025 0000 3155 (authenticates once), 4000 0027 6000 3184 (always authenticates), 4000 0000 0000 0341 (attaches, charges fail).";

fn card_form(action: &str, needs_email: bool, error: Option<&str>, button: &str) -> String {
    let email = if needs_email {
        "<p><label>Email<br><input name=\"email\" type=\"email\" id=\"email\" required></label></p>"
    } else {
        ""
    };
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"error\">{}</p>", escape(e))
    });
    format!(
        "{error}<form method=\"post\" action=\"{action}\">{email}<p><label>Card number<br>\
<input name=\"card_number\" id=\"card_number\" value=\"4242 4242 4242 4242\" autocomplete=\"off\"></label></p>\
<p class=\"note\">Any future expiry and any CVC. {CARD_HINT}</p><button type=\"submit\" id=\"submit\">{button}</button></form>",
        action = escape(action),
    )
}

fn authentication_step(action: &str, number: &str, email: Option<&str>, cancel: &str) -> String {
    format!(
        "<h1>Authenticate this payment</h1><p>Your bank asks you to confirm this payment (3-D Secure test).</p>\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"card_number\" value=\"{number}\">\
<input type=\"hidden\" name=\"email\" value=\"{email}\"><input type=\"hidden\" name=\"authenticated\" value=\"true\">\
<button type=\"submit\" id=\"authenticate\">Complete authentication</button></form>\
<p><a href=\"{cancel}\" id=\"fail-authentication\">Fail authentication</a></p>",
        action = escape(action),
        number = escape(number),
        email = escape(email.unwrap_or_default()),
        cancel = escape(cancel),
    )
}

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
pub fn checkout(store: &mut Store, id: &str, method: &str, body: &str) -> Page {
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

/// `GET /portal/:id`: the customer's subscriptions and invoices.
pub fn portal(store: &Store, id: &str) -> Page {
    let Some(session) = store.portal_sessions.get(id) else {
        return Page::not_found("No such portal session.");
    };
    let customer = session["customer"].as_str().unwrap_or_default();
    let mut subscriptions = String::new();
    for s in store
        .subscriptions
        .newest_first()
        .filter(|s| s["customer"] == customer)
    {
        let item = &s["items"]["data"][0];
        let scheduled = if s["cancel_at_period_end"] == true || !s["cancel_at"].is_null() {
            format!("cancels at {}", s["cancel_at"])
        } else {
            String::new()
        };
        subscriptions.push_str(&format!(
            "<tr class=\"subscription\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(s["id"].as_str().unwrap_or_default()),
            escape(s["status"].as_str().unwrap_or_default()),
            escape(item["price"]["nickname"].as_str().or(item["price"]["id"].as_str()).unwrap_or_default()),
            item["current_period_end"],
            escape(&scheduled),
        ));
    }
    let invoices = invoice_rows(store, customer);
    let back = session["return_url"].as_str().map_or(String::new(), |url| {
        format!(
            "<p><a href=\"{}\" id=\"return\">Return to the app</a></p>",
            escape(url)
        )
    });
    Page::html(
        200,
        "Billing portal",
        format!(
            "<h1>Billing</h1><h2>Subscriptions</h2><table><tr><th>Id</th><th>Status</th><th>Plan</th><th>Period end</th><th></th></tr>{subscriptions}</table>\
<h2>Invoices</h2><table><tr><th>Number</th><th>Status</th><th>Amount</th><th></th></tr>{invoices}</table>{back}"
        ),
    )
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
                format!("<a href=\"{}\">View</a>", escape(u))
            });
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{link}</td></tr>",
            escape(invoice["number"].as_str().unwrap_or("draft")),
            escape(invoice["status"].as_str().unwrap_or_default()),
            money(
                invoice["amount_due"].as_i64().unwrap_or_default(),
                invoice["currency"].as_str().unwrap_or("usd")
            ),
        ));
    }
    rows
}

/// `GET|POST /invoice/:id`: the hosted invoice page; an open invoice can be paid.
pub fn invoice(store: &mut Store, id: &str, method: &str, body: &str) -> Page {
    let Some(invoice) = store.invoices.get(id).cloned() else {
        return Page::not_found("No such invoice.");
    };
    let status = invoice["status"].as_str().unwrap_or_default().to_owned();
    let amount = money(
        invoice["amount_remaining"].as_i64().unwrap_or_default(),
        invoice["currency"].as_str().unwrap_or("usd"),
    );
    let heading = format!(
        "<h1>Invoice {}</h1><p>Status: <strong id=\"status\">{}</strong></p><p>Amount due: {amount}</p>",
        escape(invoice["number"].as_str().unwrap_or_default()),
        escape(&status)
    );
    let action = format!("/invoice/{id}");
    if status != "open" {
        return Page::html(200, "Invoice", heading);
    }
    if method != "POST" {
        return Page::html(
            200,
            "Invoice",
            format!("{heading}{}", card_form(&action, false, None, "Pay")),
        );
    }
    let fields = form_fields(body);
    let number = field(&fields, "card_number").unwrap_or_default().to_owned();
    let authenticated = field(&fields, "authenticated") == Some("true");
    let result = crate::cards::card_by_number(&number).and_then(|card| {
        let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
        crate::cards::new_payment_method(card, None, 0)?;
        let pm = crate::resources::payment_methods::attach_new_card(
            store,
            card,
            &customer,
            &Cause::default(),
        )?;
        pay_invoice(store, id, Some(pm), true, authenticated, &Cause::default())
    });
    match result {
        Ok(_) => Page::redirect(action),
        Err(error) if error.code.as_deref() == Some("invoice_payment_intent_requires_action") => {
            Page::html(
                200,
                "Authenticate",
                authentication_step(&action, &number, None, &action),
            )
        }
        Err(error) => Page::html(
            error.status,
            "Invoice",
            format!(
                "{heading}{}",
                card_form(&action, false, Some(&error.message), "Pay")
            ),
        ),
    }
}

/// `GET /_emulator`: what the emulator holds and every delivery attempt.
pub fn dashboard(store: &Store) -> Page {
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
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(s["id"].as_str().unwrap_or_default()),
            escape(s["customer"].as_str().unwrap_or_default()),
            escape(s["status"].as_str().unwrap_or_default()),
            escape(
                s["items"]["data"][0]["price"]["id"]
                    .as_str()
                    .unwrap_or_default()
            ),
        ));
    }
    let mut invoices = String::new();
    for i in store.invoices.newest_first() {
        invoices.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(i["id"].as_str().unwrap_or_default()),
            escape(i["customer"].as_str().unwrap_or_default()),
            escape(i["status"].as_str().unwrap_or_default()),
            money(
                i["amount_due"].as_i64().unwrap_or_default(),
                i["currency"].as_str().unwrap_or("usd")
            ),
        ));
    }
    let mut events = String::new();
    for e in store.events.newest_first().take(200) {
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
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(id),
            escape(e["type"].as_str().unwrap_or_default()),
            e["created"],
            escape(&attempts.join(", ")),
        ));
    }
    Page::html(
        200,
        "Dashboard",
        format!(
            "<h1>Stripe emulator</h1><p class=\"note\">Deliveries as JSON: <a href=\"/_emulator/deliveries\">/_emulator/deliveries</a></p>\
<h2>Customers</h2><table><tr><th>Id</th><th>Email</th><th></th></tr>{customers}</table>\
<h2>Subscriptions</h2><table><tr><th>Id</th><th>Customer</th><th>Status</th><th>Price</th></tr>{subscriptions}</table>\
<h2>Invoices</h2><table><tr><th>Id</th><th>Customer</th><th>Status</th><th>Due</th></tr>{invoices}</table>\
<h2>Events</h2><table><tr><th>Id</th><th>Type</th><th>Created</th><th>Deliveries</th></tr>{events}</table>"
        ),
    )
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

/// A page-level error (bad path) in Stripe's JSON shape.
pub fn unknown(method: &str, path: &str) -> Page {
    Page {
        status: 404,
        content_type: "application/json",
        body: ApiError::unrecognized_url(method, path)
            .to_json("req_page")
            .to_string(),
        location: None,
    }
}
