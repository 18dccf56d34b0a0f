//! Webhook delivery: each event to each endpoint that wants it, signed with
//! that endpoint's secret at wall-clock time, retried with backoff on any
//! non-2xx, every attempt recorded. In order per endpoint, unless chaos
//! asks for duplicates, reordering or delay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::clock::wall_now;
use crate::config::{Chaos, RetryPolicy};
use crate::ids::random_unit;
use crate::router::render_event;
use crate::signing::signature_header;
use crate::store::{endpoint_wants, DeliveryAttempt, Store};
use crate::version::ApiVersion;

/// One event for one endpoint, ready to send.
#[derive(Debug, Clone)]
struct Job {
    event_id: String,
    event_type: String,
    endpoint_id: String,
    url: String,
    secret: String,
    payload: String,
}

struct Inner {
    store: Arc<Mutex<Store>>,
    http: reqwest::Client,
    chaos: Chaos,
    retry: RetryPolicy,
    default_version: ApiVersion,
    tasks: Mutex<JoinSet<()>>,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
}

#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Deliverer {
    pub fn new(
        store: Arc<Mutex<Store>>,
        chaos: Chaos,
        retry: RetryPolicy,
        default_version: ApiVersion,
    ) -> Self {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                store,
                http,
                chaos,
                retry,
                default_version,
                tasks: Mutex::new(JoinSet::new()),
                queues: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = lock(&self.inner.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Queues deliveries of these events (ids from the store's outbox).
    pub fn enqueue(&self, event_ids: Vec<String>) {
        if event_ids.is_empty() {
            return;
        }
        let jobs: Vec<Job> = {
            let store = lock(&self.inner.store);
            let mut jobs = Vec::new();
            for id in &event_ids {
                let Some(event) = store.events.get(id) else {
                    continue;
                };
                let event_type = event["type"].as_str().unwrap_or_default();
                for endpoint in store.webhook_endpoints.oldest_first() {
                    if !endpoint_wants(endpoint, event_type) {
                        continue;
                    }
                    let endpoint_id = endpoint["id"].as_str().unwrap_or_default().to_owned();
                    let version = endpoint["api_version"]
                        .as_str()
                        .and_then(|v| ApiVersion::parse(v).ok())
                        .unwrap_or_else(|| self.inner.default_version.clone());
                    jobs.push(Job {
                        event_id: id.clone(),
                        event_type: event_type.to_owned(),
                        url: endpoint["url"].as_str().unwrap_or_default().to_owned(),
                        secret: store
                            .endpoint_secrets
                            .get(&endpoint_id)
                            .cloned()
                            .unwrap_or_default(),
                        endpoint_id,
                        payload: render_event(event, &version),
                    });
                }
            }
            jobs
        };
        for job in jobs {
            if self.inner.chaos.is_on() {
                let this = self.clone();
                self.spawn(async move { this.deliver_with_chaos(job).await });
            } else {
                self.queue_for(&job.endpoint_id).send(job).ok();
            }
        }
    }

    /// The in-order queue of one endpoint (first attempts; retries run beside it).
    fn queue_for(&self, endpoint_id: &str) -> mpsc::UnboundedSender<Job> {
        let mut queues = lock(&self.inner.queues);
        if let Some(sender) = queues.get(endpoint_id).filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        let (sender, mut receiver) = mpsc::unbounded_channel::<Job>();
        let this = self.clone();
        self.spawn(async move {
            while let Some(job) = receiver.recv().await {
                this.deliver(job, 1, false).await;
            }
        });
        queues.insert(endpoint_id.to_owned(), sender.clone());
        sender
    }

    async fn deliver_with_chaos(&self, job: Job) {
        let chaos = &self.inner.chaos;
        let hold = chaos.delay_ms + (random_unit() * chaos.reorder_window_ms as f64) as u64;
        tokio::time::sleep(Duration::from_millis(hold)).await;
        if random_unit() < chaos.duplicate_rate {
            let this = self.clone();
            let copy = job.clone();
            let later = (random_unit() * chaos.reorder_window_ms.max(50) as f64) as u64;
            self.spawn(async move {
                tokio::time::sleep(Duration::from_millis(later)).await;
                this.deliver(copy, 1, true).await;
            });
        }
        self.deliver(job, 1, false).await;
    }

    /// The first attempt, here; retries with backoff in their own task so an
    /// endpoint's queue does not wait for them.
    async fn deliver(&self, job: Job, attempt: u32, duplicate: bool) {
        if self.attempt(&job, attempt, duplicate).await || attempt >= self.inner.retry.max_attempts
        {
            return;
        }
        let this = self.clone();
        self.spawn(async move {
            for next in attempt + 1..=this.inner.retry.max_attempts {
                let backoff = this
                    .inner
                    .retry
                    .initial_backoff_ms
                    .saturating_mul(1 << (next - 2).min(16));
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                if this.attempt(&job, next, duplicate).await {
                    return;
                }
            }
        });
    }

    /// One attempt, recorded; whether the endpoint answered 2xx.
    async fn attempt(&self, job: &Job, attempt: u32, duplicate: bool) -> bool {
        let timestamp = wall_now();
        let sent = self
            .inner
            .http
            .post(&job.url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "Stripe-Signature",
                signature_header(&job.secret, timestamp, &job.payload),
            )
            .body(job.payload.clone())
            .send()
            .await;
        let (status, error, body) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                (Some(status), None, body.chars().take(2000).collect())
            }
            Err(error) => (None, Some(error.to_string()), String::new()),
        };
        let succeeded = status.is_some_and(|s| (200..300).contains(&s));
        {
            let mut store = lock(&self.inner.store);
            let first_success = succeeded
                && !store.deliveries.iter().any(|a| {
                    a.event_id == job.event_id && a.endpoint_id == job.endpoint_id && a.succeeded
                });
            store.deliveries.push(DeliveryAttempt {
                event_id: job.event_id.clone(),
                event_type: job.event_type.clone(),
                endpoint_id: job.endpoint_id.clone(),
                url: job.url.clone(),
                attempt,
                duplicate,
                at_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default(),
                status,
                error,
                response_body: body,
                succeeded,
            });
            if first_success {
                if let Some(event) = store.events.get_mut(&job.event_id) {
                    let pending = event["pending_webhooks"].as_i64().unwrap_or_default();
                    event["pending_webhooks"] = serde_json::json!((pending - 1).max(0));
                }
            }
        }
        succeeded
    }

    /// Stops every delivery and retry.
    pub fn shutdown(&self) {
        lock(&self.inner.queues).clear();
        lock(&self.inner.tasks).abort_all();
    }
}
