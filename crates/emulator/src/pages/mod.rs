//! The hosted pages, as plain server-rendered HTML that a browser or a form
//! post can drive: Checkout, the customer portal, the hosted invoice page,
//! and the emulator's dashboard.

pub mod checkout;
pub mod dashboard;
pub mod invoice;
pub mod portal;

use crate::error::ApiError;
use crate::form::{bracketed, parse_form};

/// What a page answers.
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub location: Option<String>,
}

impl Page {
    pub fn html(status: u16, title: &str, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: layout(title, &body),
            location: None,
        }
    }

    pub fn redirect(to: String) -> Self {
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

pub fn layout(title: &str, body: &str) -> String {
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

pub fn money(amount: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        amount / 100,
        (amount % 100).abs(),
        currency.to_uppercase()
    )
}

pub fn form_fields(body: &str) -> Vec<(String, String)> {
    parse_form(body)
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|p| (bracketed(&p.path), p.value))
                .collect()
        })
        .unwrap_or_default()
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub const CARD_HINT: &str = "Test cards: 4242 4242 4242 4242 (succeeds), 4000 0000 0000 0002 (declined), 4000 0000 0000 9995 (insufficient funds), 4000 0025 0000 3155 (authenticates once), 4000 0027 6000 3184 (always authenticates), 4000 0000 0000 0341 (attaches, charges fail).";

pub fn card_form(action: &str, needs_email: bool, error: Option<&str>, button: &str) -> String {
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

pub fn authentication_step(
    action: &str,
    number: &str,
    email: Option<&str>,
    cancel: &str,
) -> String {
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

/// A timestamp as a reader wants it (`2026-12-29 14:03 UTC`).
pub fn date(timestamp: Option<i64>) -> String {
    timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M UTC").to_string())
}
