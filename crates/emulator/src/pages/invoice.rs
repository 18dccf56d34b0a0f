//! The hosted invoice page (`hosted_invoice_url`): pays an open invoice.

use super::{authentication_step, card_form, escape, field, form_fields, money, Page};
use crate::resources::invoices::pay_invoice;
use crate::store::{Cause, Store};

/// `GET|POST /invoice/:id`: the hosted invoice page; an open invoice can be paid.
pub fn page(store: &mut Store, id: &str, method: &str, body: &str) -> Page {
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
