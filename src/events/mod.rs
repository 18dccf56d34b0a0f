//! The event model: reading Stripe objects, ordering, the projection rule,
//! and the processor that applies verified events.

mod invoice;
mod ordering;
mod processor;
mod projection;
mod snapshot;
mod subscription_event;

pub use invoice::{
    decide_invoice, invoice_rank, InvoiceOrdering, InvoiceSnapshot, PaymentIssue,
    INVOICE_EVENT_TYPES,
};
pub use ordering::{decide, Ordering};
pub use processor::{
    EventListener, EventOutcome, EventProcessor, SubscriptionListener, TrialListener,
    HANDLED_EVENT_TYPES, LEASE_SECS, WEBHOOK_FETCH_BUDGET,
};
pub use projection::{is_live, project, Projection, StoredSubscription, LIVE_STATUSES};
pub use snapshot::{
    customer_metadata_user, invoice_subscription_id, main_item, object_id, CheckoutCompletion,
    SnapshotError, SubscriptionItem, SubscriptionSnapshot,
};
pub use subscription_event::{
    read_subscription_event, SubscriptionEvent, SUBSCRIPTION_EVENT_TYPES,
};
