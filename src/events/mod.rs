//! The event model: reading Stripe objects, ordering, the projection rule,
//! and the processor that applies verified events.

mod ordering;
mod processor;
mod projection;
mod snapshot;
mod subscription_event;

pub use ordering::{decide, Ordering};
pub use processor::{
    EventOutcome, EventProcessor, SubscriptionListener, LEASE_SECS, WEBHOOK_FETCH_BUDGET,
};
pub use projection::{is_live, project, Projection, StoredSubscription, LIVE_STATUSES};
pub use snapshot::{
    customer_metadata_user, invoice_subscription_id, main_item, object_id, CheckoutCompletion,
    SnapshotError, SubscriptionItem, SubscriptionSnapshot,
};
pub use subscription_event::{
    read_subscription_event, SubscriptionEvent, SUBSCRIPTION_EVENT_TYPES,
};
