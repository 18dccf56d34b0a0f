//! The `state` option: everything the emulator holds, in a JSON file that
//! survives a restart (written atomically after each change).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cards::CardBehaviour;
use crate::clock::Clock;
use crate::store::{CheckoutTerms, Collection, DeliveryAttempt, SavedAnswer, Store};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    base_url: String,
    webhook_secret: String,
    clock_offset: i64,
    /// Endpoints made from the `webhooks` option (re-made from the options on load).
    option_endpoints: Vec<String>,
    customers: Vec<Value>,
    products: Vec<Value>,
    prices: Vec<Value>,
    payment_methods: Vec<Value>,
    checkout_sessions: Vec<Value>,
    portal_sessions: Vec<Value>,
    subscriptions: Vec<Value>,
    invoices: Vec<Value>,
    invoice_items: Vec<Value>,
    events: Vec<Value>,
    webhook_endpoints: Vec<Value>,
    test_clocks: Vec<Value>,
    deliveries: Vec<DeliveryAttempt>,
    idempotency: HashMap<String, SavedAnswer>,
    card_behaviours: HashMap<String, CardBehaviour>,
    checkout_terms: HashMap<String, CheckoutTerms>,
    endpoint_secrets: HashMap<String, String>,
    trial_notices: HashSet<String>,
    first_failures: HashMap<String, i64>,
}

fn to_vec(collection: &Collection) -> Vec<Value> {
    collection.oldest_first().cloned().collect()
}

fn to_collection(objects: Vec<Value>) -> Collection {
    let mut collection = Collection::default();
    for object in objects {
        collection.insert(object);
    }
    collection
}

/// What a state file gives back.
pub struct Restored {
    pub store: Store,
    pub webhook_secret: String,
    pub option_endpoints: Vec<String>,
}

pub fn save(
    path: &Path,
    store: &Store,
    webhook_secret: &str,
    option_endpoints: &[String],
) -> std::io::Result<()> {
    let file = StateFile {
        format: FORMAT,
        base_url: store.base_url.clone(),
        webhook_secret: webhook_secret.to_owned(),
        clock_offset: store.clock.offset(),
        option_endpoints: option_endpoints.to_vec(),
        customers: to_vec(&store.customers),
        products: to_vec(&store.products),
        prices: to_vec(&store.prices),
        payment_methods: to_vec(&store.payment_methods),
        checkout_sessions: to_vec(&store.checkout_sessions),
        portal_sessions: to_vec(&store.portal_sessions),
        subscriptions: to_vec(&store.subscriptions),
        invoices: to_vec(&store.invoices),
        invoice_items: to_vec(&store.invoice_items),
        events: to_vec(&store.events),
        webhook_endpoints: to_vec(&store.webhook_endpoints),
        test_clocks: to_vec(&store.test_clocks),
        deliveries: store.deliveries.clone(),
        idempotency: store.idempotency.clone(),
        card_behaviours: store.card_behaviours.clone(),
        checkout_terms: store.checkout_terms.clone(),
        endpoint_secrets: store.endpoint_secrets.clone(),
        trial_notices: store.trial_notices.clone(),
        first_failures: store.first_failures.clone(),
    };
    let text = serde_json::to_string(&file).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// Reads a state file; `Ok(None)` when there is none yet. Hosted-page URLs
/// saved under another address are moved to `base_url`.
pub fn load(path: &Path, base_url: &str) -> Result<Option<Restored>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    let file: StateFile = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not an emulator state file: {error}", path.display()))?;
    if file.format != FORMAT {
        return Err(format!(
            "{} has state format {}, this emulator reads {FORMAT}",
            path.display(),
            file.format
        ));
    }
    let moved = |mut objects: Vec<Value>, fields: &[&str]| {
        if file.base_url != base_url {
            for object in &mut objects {
                for field in fields {
                    if let Some(url) = object[*field].as_str() {
                        object[*field] = Value::String(url.replacen(&file.base_url, base_url, 1));
                    }
                }
            }
        }
        to_collection(objects)
    };
    let mut store = Store::new(base_url.to_owned());
    store.clock = Clock::with_offset(file.clock_offset);
    store.customers = to_collection(file.customers);
    store.products = to_collection(file.products);
    store.prices = to_collection(file.prices);
    store.payment_methods = to_collection(file.payment_methods);
    store.checkout_sessions = moved(file.checkout_sessions, &["url"]);
    store.portal_sessions = moved(file.portal_sessions, &["url"]);
    store.subscriptions = to_collection(file.subscriptions);
    store.invoices = moved(file.invoices, &["hosted_invoice_url", "invoice_pdf"]);
    store.invoice_items = to_collection(file.invoice_items);
    store.events = to_collection(file.events);
    store.webhook_endpoints = to_collection(file.webhook_endpoints);
    store.test_clocks = to_collection(file.test_clocks);
    store.deliveries = file.deliveries;
    store.idempotency = file.idempotency;
    store.card_behaviours = file.card_behaviours;
    store.checkout_terms = file.checkout_terms;
    store.endpoint_secrets = file.endpoint_secrets;
    store.trial_notices = file.trial_notices;
    store.first_failures = file.first_failures;
    Ok(Some(Restored {
        store,
        webhook_secret: file.webhook_secret,
        option_endpoints: file.option_endpoints,
    }))
}
