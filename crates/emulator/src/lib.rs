//! A local, stateful Stripe: the parts of Stripe's API a subscription
//! business uses (customers, catalog, Checkout, the portal, subscriptions,
//! invoices, events, webhook endpoints), Stripe's form encoding, errors,
//! idempotency and versions, and webhooks signed as Stripe signs them.
//!
//! `Emulator::start` binds 127.0.0.1 and serves until `close`.

pub mod billing;
pub mod cards;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod error;
pub mod expand;
pub mod form;
pub mod ids;
pub mod list;
pub mod pages;
pub mod params;
pub mod resources;
pub mod router;
pub mod server;
pub mod signing;
pub mod state;
pub mod store;
pub mod triggers;
pub mod version;

use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub use config::{CatalogPrice, CatalogProduct, Chaos, EmulatorConfig, RetryPolicy, WebhookTarget};
pub use error::EmulatorError;
pub use store::{BillingSettings, DeliveryAttempt, RetriesEnd};

use delivery::Deliverer;
use resources::prices::{new_price, NewPrice};
use resources::products::new_product;
use resources::webhook_endpoints::{new_endpoint, new_secret};
use server::{serve, Persist, Shared};
use store::Store;
use version::ApiVersion;

/// reqwest is built without a default TLS provider; install ring's once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running emulator.
pub struct Emulator {
    pub api_base: String,
    pub webhook_secret: String,
    pub dashboard_url: String,
    pub port: u16,
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    ticker: tokio::task::JoinHandle<()>,
}

fn seed_catalog(store: &mut Store, config: &EmulatorConfig) {
    let now = store.now();
    for product_spec in config
        .catalog
        .clone()
        .unwrap_or_else(config::default_catalog)
    {
        let product = new_product(product_spec.id.clone(), &product_spec.name, None, now);
        let product_id = product["id"].as_str().unwrap_or_default().to_owned();
        store.products.insert(product);
        for price in product_spec.prices {
            store.prices.insert(new_price(
                NewPrice {
                    id: price.id,
                    product: product_id.clone(),
                    currency: price.currency,
                    unit_amount: price.unit_amount,
                    recurring: price.interval.map(|i| (i, price.interval_count)),
                    lookup_key: price.lookup_key,
                    nickname: price.nickname,
                },
                now,
            ));
        }
    }
}

/// The `webhooks` option's endpoints (replacing those of a previous run).
fn seed_endpoints(
    store: &mut Store,
    config: &EmulatorConfig,
    secret: &str,
    previous: &[String],
) -> Vec<String> {
    for id in previous {
        store.webhook_endpoints.remove(id);
        store.endpoint_secrets.remove(id);
    }
    let now = store.now();
    let mut ids = Vec::new();
    for target in &config.webhooks {
        let version = target
            .api_version
            .as_deref()
            .and_then(|v| ApiVersion::parse(v).ok());
        let mut endpoint = new_endpoint(&target.url, target.events.clone(), version.as_ref(), now);
        endpoint["description"] = serde_json::json!("from the emulator's `webhooks` option");
        let id = endpoint["id"].as_str().unwrap_or_default().to_owned();
        store.endpoint_secrets.insert(id.clone(), secret.to_owned());
        store.webhook_endpoints.insert(endpoint);
        ids.push(id);
    }
    ids
}

impl Emulator {
    /// Binds 127.0.0.1:`port` (0 for any free port) and starts serving on
    /// the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        config.validate()?;
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| EmulatorError::Listen {
                port: config.port,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| EmulatorError::Listen {
                port: config.port,
                source,
            })?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let restored = match &config.state {
            Some(path) => state::load(path, &base).map_err(EmulatorError::State)?,
            None => None,
        };
        let (mut store, webhook_secret, previous) = match restored {
            Some(restored) => (
                restored.store,
                restored.webhook_secret,
                restored.option_endpoints,
            ),
            None => {
                let mut store = Store::new(base.clone());
                seed_catalog(&mut store, &config);
                (store, new_secret(), Vec::new())
            }
        };
        store.settings = config.billing.clone();
        let option_endpoints = seed_endpoints(&mut store, &config, &webhook_secret, &previous);
        let persist = config.state.clone().map(|path| Persist {
            path,
            webhook_secret: webhook_secret.clone(),
            option_endpoints,
        });
        if let Some(persist) = &persist {
            state::save(
                &persist.path,
                &store,
                &webhook_secret,
                &persist.option_endpoints,
            )
            .map_err(|e| {
                EmulatorError::State(format!("cannot write {}: {e}", persist.path.display()))
            })?;
        }
        let store = Arc::new(Mutex::new(store));
        let default_version = config
            .api_version
            .as_deref()
            .and_then(|v| ApiVersion::parse(v).ok())
            .unwrap_or_else(ApiVersion::default_version);
        let deliverer = Deliverer::new(
            store.clone(),
            config.chaos.clone(),
            config.retry.clone(),
            default_version.clone(),
        );
        let shared = Arc::new(Shared {
            store,
            deliverer,
            default_version,
            persist,
        });
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let accept_shared = shared.clone();
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = accept_shared.clone();
                        while connections.try_join_next().is_some() {}
                        connections.spawn(async move {
                            let service = service_fn(move |request| serve(shared.clone(), request));
                            let _ = http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                }
            }
            connections.abort_all();
        });
        // Wall time passes too: what comes due (a Checkout session
        // expiring, a renewal) runs within a second.
        let ticking = Arc::downgrade(&shared);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let Some(shared) = ticking.upgrade() else {
                    break;
                };
                let store = shared.lock();
                if billing::schedule::has_due(&store) {
                    shared.settle(store, true);
                }
            }
        });
        Ok(Self {
            api_base: base.clone(),
            webhook_secret,
            dashboard_url: format!("{base}/_emulator"),
            port,
            shared,
            stop: Mutex::new(Some(stop_tx)),
            server: Mutex::new(Some(server)),
            ticker,
        })
    }

    /// Stops listening, drops open connections and pending deliveries.
    pub async fn close(&self) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server {
            let _ = server.await;
        }
        self.ticker.abort();
        self.shared.deliverer.shutdown();
        let store = self.shared.lock();
        self.shared.save(&store);
    }

    /// Moves the one clock forward, running in order everything Stripe
    /// would run in between; returns the new time (unix seconds).
    pub fn advance_time(&self, seconds: i64) -> i64 {
        let mut store = self.shared.lock();
        let target = store.now().saturating_add(seconds.max(0));
        billing::schedule::run_until(&mut store, target);
        let now = store.now();
        self.shared.settle(store, true);
        now
    }

    /// Makes an event happen (see `triggers`): what it needs is created
    /// and the normal flow emits it.
    pub fn trigger(
        &self,
        kind: &str,
        target: &triggers::TriggerFor,
    ) -> Result<(), error::ApiError> {
        let mut store = self.shared.lock();
        let result = triggers::trigger(&mut store, kind, target);
        self.shared.settle(store, true);
        result
    }

    /// The emulator's time (unix seconds).
    pub fn now(&self) -> i64 {
        self.shared.lock().now()
    }

    /// Every webhook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.shared
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deliveries
            .clone()
    }
}
