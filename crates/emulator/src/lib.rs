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
pub mod store;
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
pub use store::DeliveryAttempt;

use delivery::Deliverer;
use resources::prices::{new_price, NewPrice};
use resources::products::new_product;
use resources::webhook_endpoints::{new_endpoint, new_secret};
use server::{serve, Shared};
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
}

fn seed(store: &mut Store, config: &EmulatorConfig, secret: &str) {
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
    for target in &config.webhooks {
        let version = target
            .api_version
            .as_deref()
            .and_then(|v| ApiVersion::parse(v).ok());
        let endpoint = new_endpoint(&target.url, target.events.clone(), version.as_ref(), now);
        let id = endpoint["id"].as_str().unwrap_or_default().to_owned();
        store.endpoint_secrets.insert(id, secret.to_owned());
        store.webhook_endpoints.insert(endpoint);
    }
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
        let webhook_secret = new_secret();
        let mut store = Store::new(base.clone());
        seed(&mut store, &config, &webhook_secret);
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
        Ok(Self {
            api_base: base.clone(),
            webhook_secret,
            dashboard_url: format!("{base}/_emulator"),
            port,
            shared,
            stop: Mutex::new(Some(stop_tx)),
            server: Mutex::new(Some(server)),
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
        self.shared.deliverer.shutdown();
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
