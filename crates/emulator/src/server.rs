//! The HTTP server: HTTP/1.1 on 127.0.0.1, one task per connection, routing
//! `/v1/...` to the API and the rest to the hosted pages.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::billing::schedule;
use crate::delivery::Deliverer;
use crate::error::ApiError;
use crate::ids::random_token;
use crate::pages;
use crate::resources::test_clocks::finish_advance;
use crate::router::{handle_api, ApiRequest};
use crate::state;
use crate::store::Store;
use crate::version::ApiVersion;

/// What every connection shares.
pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub deliverer: Deliverer,
    pub default_version: ApiVersion,
    /// The `state` file, if any.
    pub persist: Option<Persist>,
}

/// Where and what to save.
pub struct Persist {
    pub path: std::path::PathBuf,
    pub webhook_secret: String,
    pub option_endpoints: Vec<String>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a request, a tick or an advance: what is due by now runs, then
    /// the state file is written and the events go to the deliverer; test
    /// clock advances asked for run on their own task.
    pub fn settle(self: &Arc<Self>, mut store: MutexGuard<'_, Store>, changed: bool) {
        schedule::run_due(&mut store);
        let advances = std::mem::take(&mut store.clock_advances);
        let outbox = store.take_outbox();
        if changed || !outbox.is_empty() {
            self.save(&store);
        }
        drop(store);
        self.deliverer.enqueue(outbox);
        for (clock, target) in advances {
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                // The advance answered `advancing` first; the work follows.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let mut store = shared.lock();
                finish_advance(&mut store, &clock, target);
                shared.settle(store, true);
            });
        }
    }

    pub fn save(&self, store: &Store) {
        if let Some(persist) = &self.persist {
            // A failed write is not the request's failure; the next change retries it.
            let _ = state::save(
                &persist.path,
                store,
                &persist.webhook_secret,
                &persist.option_endpoints,
            );
        }
    }
}

const MAX_BODY: usize = 1 << 20;

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

pub async fn serve(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let content_type = header(&request, "content-type").map(str::to_owned);
    let authorization = header(&request, "authorization").map(str::to_owned);
    let stripe_version = header(&request, "stripe-version").map(str::to_owned);
    let idempotency_key = header(&request, "idempotency-key").map(str::to_owned);
    let wants_json = header(&request, "accept").is_some_and(|a| a.contains("application/json"));
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => {
            let error = ApiError::invalid_request("The request body is larger than 1 MB.", None);
            return Ok(respond(
                413,
                "application/json",
                error.to_json("req_body").to_string(),
                Vec::new(),
                None,
            ));
        }
    };
    let mut store = shared.lock();
    let date = store.clock.http_date();
    let response = if path.starts_with("/v1/") || path == "/v1" {
        let answer = handle_api(
            &mut store,
            &ApiRequest {
                method: &method,
                path: &path,
                query: &query,
                body: &body,
                content_type: content_type.as_deref(),
                authorization: authorization.as_deref(),
                stripe_version: stripe_version.as_deref(),
                idempotency_key: idempotency_key.as_deref(),
            },
            &shared.default_version,
        );
        let mut headers = answer.headers;
        headers.push(("Date", date));
        respond(
            answer.status,
            "application/json",
            answer.body,
            headers,
            None,
        )
    } else {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let page = match (method.as_str(), segments.as_slice()) {
            ("GET" | "POST", ["checkout", id]) => {
                pages::checkout::page(&mut store, id, &method, &body)
            }
            ("GET" | "POST", ["portal", id]) => {
                pages::portal::page(&mut store, id, &method, &query, &body)
            }
            ("GET" | "POST", ["invoice", id]) => {
                pages::invoice::page(&mut store, id, &method, &body)
            }
            ("GET", ["_emulator"]) => pages::dashboard::page(&store, None),
            ("GET", ["_emulator", "deliveries"]) => pages::dashboard::deliveries_json(&store),
            ("POST", ["_emulator", "advance"]) => {
                pages::dashboard::advance(&mut store, &body, wants_json)
            }
            ("POST", ["_emulator", "trigger"]) => {
                pages::dashboard::trigger_event(&mut store, &body, wants_json)
            }
            ("POST", ["_emulator", "events", id, "resend"]) => {
                pages::dashboard::resend(&mut store, id)
            }
            _ => pages::unknown(&method, &path),
        };
        let headers = vec![
            ("Date", date),
            ("Request-Id", format!("req_{}", random_token(14))),
        ];
        respond(
            page.status,
            page.content_type,
            page.body,
            headers,
            page.location,
        )
    };
    shared.settle(store, method != "GET");
    Ok(response)
}

fn respond(
    status: u16,
    content_type: &str,
    body: String,
    headers: Vec<(&'static str, String)>,
    location: Option<String>,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Server", "kavachos-stripe-emulator")
        .header("Cache-Control", "no-cache, no-store");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if let Some(location) = location {
        builder = builder.header("Location", location);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}
