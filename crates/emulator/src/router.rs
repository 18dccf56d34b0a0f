//! The API's front door: authentication, `Stripe-Version`, parameters,
//! `Idempotency-Key`, routing to a resource handler, rendering and
//! `expand[]`, and Stripe's error shape with a `Request-Id` on every answer.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::expand::expand;
use crate::form::{fingerprint, parse_form};
use crate::ids::random_token;
use crate::params::Params;
use crate::resources::{
    checkout_sessions, customers, events, invoices, payment_methods, portal_sessions, prices,
    products, subscriptions, test_clocks, webhook_endpoints, Call, Handler,
};
use crate::store::{Cause, SavedAnswer, Store};
use crate::version::{render, ApiVersion};

/// An API request as the server read it.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a str,
    pub content_type: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub stripe_version: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// The answer: status, JSON body, extra headers.
pub struct ApiAnswer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

fn route(method: &str, path: &str) -> Option<(Handler, Option<String>)> {
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let id = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let found: (Handler, Option<String>) = match (method, segments.as_slice()) {
        ("GET", ["customers"]) => (customers::list, None),
        ("POST", ["customers"]) => (customers::create, None),
        ("GET", ["customers", c]) => (customers::retrieve, id(c)),
        ("POST", ["customers", c]) => (customers::update, id(c)),
        ("DELETE", ["customers", c]) => (customers::delete, id(c)),
        ("GET", ["products"]) => (products::list, None),
        ("POST", ["products"]) => (products::create, None),
        ("GET", ["products", p]) => (products::retrieve, id(p)),
        ("POST", ["products", p]) => (products::update, id(p)),
        ("GET", ["prices"]) => (prices::list, None),
        ("POST", ["prices"]) => (prices::create, None),
        ("GET", ["prices", p]) => (prices::retrieve, id(p)),
        ("POST", ["prices", p]) => (prices::update, id(p)),
        ("GET", ["customers", c, "payment_methods"]) => (payment_methods::list_for_customer, id(c)),
        ("GET", ["payment_methods"]) => (payment_methods::list, None),
        ("GET", ["payment_methods", p]) => (payment_methods::retrieve, id(p)),
        ("POST", ["payment_methods", p, "attach"]) => (payment_methods::attach, id(p)),
        ("GET", ["checkout", "sessions"]) => (checkout_sessions::list, None),
        ("POST", ["checkout", "sessions"]) => (checkout_sessions::create, None),
        ("GET", ["checkout", "sessions", s]) => (checkout_sessions::retrieve, id(s)),
        ("POST", ["checkout", "sessions", s, "expire"]) => (checkout_sessions::expire, id(s)),
        ("GET", ["checkout", "sessions", s, "line_items"]) => {
            (checkout_sessions::line_items, id(s))
        }
        ("POST", ["billing_portal", "sessions"]) => (portal_sessions::create, None),
        ("GET", ["subscriptions"]) => (subscriptions::list, None),
        ("POST", ["subscriptions"]) => (subscriptions::create, None),
        ("GET", ["subscriptions", s]) => (subscriptions::retrieve, id(s)),
        ("POST", ["subscriptions", s]) => (subscriptions::update, id(s)),
        ("DELETE", ["subscriptions", s]) => (subscriptions::cancel, id(s)),
        ("GET", ["invoices"]) => (invoices::list, None),
        ("POST", ["invoices", "create_preview"]) => (invoices::create_preview, None),
        ("GET", ["invoices", i]) => (invoices::retrieve, id(i)),
        ("POST", ["invoices", i, "pay"]) => (invoices::pay, id(i)),
        ("POST", ["invoices", i, "void"]) => (invoices::void, id(i)),
        ("POST", ["invoices", i, "mark_uncollectible"]) => (invoices::mark_uncollectible, id(i)),
        ("GET", ["events"]) => (events::list, None),
        ("GET", ["events", e]) => (events::retrieve, id(e)),
        ("POST", ["test_helpers", "test_clocks"]) => (test_clocks::create, None),
        ("GET", ["test_helpers", "test_clocks"]) => (test_clocks::list, None),
        ("GET", ["test_helpers", "test_clocks", c]) => (test_clocks::retrieve, id(c)),
        ("DELETE", ["test_helpers", "test_clocks", c]) => (test_clocks::delete, id(c)),
        ("POST", ["test_helpers", "test_clocks", c, "advance"]) => (test_clocks::advance, id(c)),
        ("GET", ["webhook_endpoints"]) => (webhook_endpoints::list, None),
        ("POST", ["webhook_endpoints"]) => (webhook_endpoints::create, None),
        ("GET", ["webhook_endpoints", w]) => (webhook_endpoints::retrieve, id(w)),
        ("POST", ["webhook_endpoints", w]) => (webhook_endpoints::update, id(w)),
        ("DELETE", ["webhook_endpoints", w]) => (webhook_endpoints::delete, id(w)),
        _ => return None,
    };
    // `/v1/customers/` (an empty id) is not a route.
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(found)
}

fn authenticate(authorization: Option<&str>) -> ApiResult<()> {
    let Some(header) = authorization.filter(|h| !h.trim().is_empty()) else {
        return Err(ApiError::no_api_key());
    };
    let key = header.strip_prefix("Bearer ").unwrap_or_default().trim();
    let valid = ["sk_test_", "rk_test_"]
        .iter()
        .any(|prefix| key.len() > prefix.len() && key.starts_with(prefix));
    if valid {
        return Ok(());
    }
    if key.is_empty() {
        return Err(ApiError::no_api_key());
    }
    // Stripe shows the key's prefix and last four characters.
    let shown = if key.len() > 12 && key.is_char_boundary(8) && key.is_char_boundary(key.len() - 4)
    {
        format!(
            "{}{}{}",
            &key[..8],
            "*".repeat(key.len() - 12),
            &key[key.len() - 4..]
        )
    } else {
        "*".repeat(key.chars().count())
    };
    Err(ApiError::invalid_api_key(&shown))
}

fn error_answer(error: &ApiError, request_id: &str) -> ApiAnswer {
    ApiAnswer {
        status: error.status,
        body: error.to_json(request_id).to_string(),
        headers: Vec::new(),
    }
}

/// Handles one API request against the store. Events it emits stay in the
/// store's outbox for the caller to hand to the deliverer.
pub fn handle_api(
    store: &mut Store,
    request: &ApiRequest<'_>,
    default_version: &ApiVersion,
) -> ApiAnswer {
    let request_id = format!("req_{}", random_token(14));
    let mut answer = answer_for(store, request, default_version, &request_id);
    answer.headers.push(("Request-Id", request_id));
    answer
}

fn answer_for(
    store: &mut Store,
    request: &ApiRequest<'_>,
    default_version: &ApiVersion,
    request_id: &str,
) -> ApiAnswer {
    if let Err(error) = authenticate(request.authorization) {
        return error_answer(&error, request_id);
    }
    let version = match request.stripe_version.filter(|v| !v.is_empty()) {
        Some(text) => match ApiVersion::parse(text) {
            Ok(version) => version,
            Err(error) => return error_answer(&error, request_id),
        },
        None => default_version.clone(),
    };
    let mut answer = answer_versioned(store, request, &version, request_id);
    answer
        .headers
        .push(("Stripe-Version", version.as_str().to_owned()));
    answer
}

fn answer_versioned(
    store: &mut Store,
    request: &ApiRequest<'_>,
    version: &ApiVersion,
    request_id: &str,
) -> ApiAnswer {
    let Some((handler, id)) = route(request.method, request.path) else {
        return error_answer(
            &ApiError::unrecognized_url(request.method, request.path),
            request_id,
        );
    };
    if request.method == "POST"
        && !request.body.is_empty()
        && request
            .content_type
            .is_some_and(|t| !t.starts_with("application/x-www-form-urlencoded"))
    {
        return error_answer(
            &ApiError::invalid_request(
                "Invalid request: the body must be application/x-www-form-urlencoded, as Stripe's API takes it.",
                None,
            ),
            request_id,
        );
    }
    let mut pairs = match parse_form(request.query) {
        Ok(pairs) => pairs,
        Err(error) => return error_answer(&error, request_id),
    };
    match parse_form(request.body) {
        Ok(body) => pairs.extend(body),
        Err(error) => return error_answer(&error, request_id),
    }
    let writes = request.method != "GET";
    let key = request.idempotency_key.filter(|k| writes && !k.is_empty());
    if let Some(key) = key {
        if key.len() > 255 {
            return error_answer(
                &ApiError::invalid_request(
                    format!(
                        "Idempotency-Key must be at most 255 characters long (got {}).",
                        key.len()
                    ),
                    None,
                ),
                request_id,
            );
        }
        if let Some(saved) = store.idempotency.get(key) {
            if saved.method != request.method
                || saved.path != request.path
                || saved.fingerprint != fingerprint(&pairs)
            {
                return error_answer(&ApiError::idempotency_mismatch(key), request_id);
            }
            return ApiAnswer {
                status: saved.status,
                body: saved.body.clone(),
                headers: vec![
                    ("Idempotent-Replayed", "true".into()),
                    ("Idempotency-Key", key.to_owned()),
                ],
            };
        }
    }
    let print = fingerprint(&pairs);
    let params = Params::new(pairs);
    let call = Call {
        params: &params,
        version,
        cause: Cause {
            request_id: writes.then(|| request_id.to_owned()),
            idempotency_key: key.map(str::to_owned),
        },
        id: id.as_deref(),
        path: request.path,
    };
    let result = params.strings("expand").and_then(|paths| {
        // An expansion that fails after a write undoes the write: Stripe
        // refuses such a request as a whole.
        let backup = (writes && !paths.is_empty()).then(|| store.clone());
        let object = handler(store, &call)?;
        let mut rendered = render(&object, version);
        if let Err(error) = expand(store, &mut rendered, &paths, version) {
            if let Some(backup) = backup {
                *store = backup;
            }
            return Err(error);
        }
        Ok(rendered)
    });
    let (status, body) = match &result {
        Ok(object) => (200, object.to_string()),
        Err(error) => (error.status, error.to_json(request_id).to_string()),
    };
    let mut headers = Vec::new();
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key.to_owned()));
        // Stripe keeps the answer once the endpoint started executing;
        // a request refused while its parameters were read is not kept.
        if result.is_ok() || params.executed() {
            store.idempotency.insert(
                key.to_owned(),
                SavedAnswer {
                    method: request.method.to_owned(),
                    path: request.path.to_owned(),
                    fingerprint: print,
                    status,
                    body: body.clone(),
                },
            );
        }
    }
    ApiAnswer {
        status,
        body,
        headers,
    }
}

/// An event rendered for a webhook endpoint's API version.
pub fn render_event(event: &Value, version: &ApiVersion) -> String {
    render(event, version).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_masked() {
        assert!(authenticate(Some("Bearer sk_test_123")).is_ok());
        assert!(authenticate(Some("Bearer sk_test_")).is_err());
        assert_eq!(authenticate(None).unwrap_err().status, 401);
        let error = authenticate(Some("Bearer sk_live_abcdefghijkl1234")).unwrap_err();
        assert_eq!(
            error.message,
            "Invalid API Key provided: sk_live_************1234"
        );
        assert!(authenticate(Some("Basic c2tfdGVzdF8xMjM6")).is_err());
    }

    /// Hostile parameters on every route answer a Stripe error, never a panic
    /// or a 5xx, and leave the store as it was.
    #[test]
    fn hostile_parameters_get_clear_errors() {
        let mut store = Store::new("http://127.0.0.1:1".into());
        let version = ApiVersion::default_version();
        let routes = [
            ("POST", "/v1/customers"),
            ("POST", "/v1/products"),
            ("POST", "/v1/prices"),
            ("POST", "/v1/checkout/sessions"),
            ("POST", "/v1/billing_portal/sessions"),
            ("POST", "/v1/subscriptions"),
            ("POST", "/v1/subscriptions/sub_x"),
            ("DELETE", "/v1/subscriptions/sub_x"),
            ("POST", "/v1/invoices/create_preview"),
            ("POST", "/v1/invoices/in_x/pay"),
            ("POST", "/v1/webhook_endpoints"),
            ("GET", "/v1/events"),
            ("GET", "/v1/subscriptions"),
        ];
        let bodies = [
            "metadata[a][b]=1",
            "limit=-1",
            "limit=99999999999999999999",
            "unit_amount=9223372036854775807&currency=usd&product_data[name]=x",
            "unit_amount=5&currency=usd&product_data[name]=x&recurring[interval]=year&recurring[interval_count]=9223372036854775807",
            "balance=-9223372036854775808",
            "items[0][price]=price_x&items[0][quantity]=9223372036854775807&customer=cus_x",
            "mode=subscription&line_items[0][price]=nope",
            "email[]=a",
            "created[gte]=x",
            "cancel_at=-5",
            "expand[]=customer.nothing",
            "url=javascript:alert(1)&enabled_events[]=*",
        ];
        for (method, path) in routes {
            for body in bodies {
                let (query, form) = if method == "GET" {
                    (body, "")
                } else {
                    ("", body)
                };
                let answer = handle_api(
                    &mut store,
                    &ApiRequest {
                        method,
                        path,
                        query,
                        body: form,
                        content_type: Some("application/x-www-form-urlencoded"),
                        authorization: Some("Bearer sk_test_hostile"),
                        stripe_version: None,
                        idempotency_key: None,
                    },
                    &version,
                );
                assert!(
                    (400..500).contains(&answer.status)
                        || (answer.status == 200 && method == "GET"),
                    "{method} {path} {body}: {} {}",
                    answer.status,
                    answer.body
                );
                let parsed: Value = serde_json::from_str(&answer.body).expect("JSON");
                if answer.status != 200 {
                    assert!(parsed["error"]["message"].is_string(), "{}", answer.body);
                }
            }
        }
        assert!(store.customers.is_empty(), "customers");
        assert!(store.prices.is_empty(), "prices");
        assert!(
            store.events.is_empty(),
            "{:?}",
            store.events.newest_first().next()
        );
    }

    #[test]
    fn routes() {
        assert!(route("GET", "/v1/customers").is_some());
        assert!(route("GET", "/v1/customers/").is_none());
        assert_eq!(
            route("DELETE", "/v1/subscriptions/sub_1")
                .unwrap()
                .1
                .as_deref(),
            Some("sub_1")
        );
        assert!(route("PUT", "/v1/customers").is_none());
    }
}
