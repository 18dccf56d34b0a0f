// Type definitions for kavachos-stripe: the whole public API.

/** Every `code` this package puts on an Error or a JSON error body (see README). */
export type KavachStripeErrorCode =
  | 'invalid_config'
  | 'database_unsupported'
  | 'database_error'
  | 'migration_failed'
  | 'closed'
  | 'user_not_found'
  | 'no_customer'
  | 'invalid_argument'
  | 'subscription_active'
  | 'no_subscription'
  | 'subscription_ended'
  | 'subscription_paused'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'checkout_session_not_found'
  | 'customer_creation_in_progress'
  | 'unauthenticated'
  | 'invalid_json'
  | 'payload_too_large'
  | 'payload_invalid'
  | 'signature_missing'
  | 'signature_malformed'
  | 'signature_mismatch'
  | 'timestamp_out_of_tolerance'
  | 'secret_not_configured'
  | 'event_in_progress'
  | 'subscription_listener_failed'
  | 'trial_listener_failed'
  | 'event_listener_failed'
  | 'stripe_api_error'
  | 'stripe_unreachable'
  | 'internal_error'

/** An Error thrown by this package: `code` is stable and machine-readable. */
export interface KavachStripeError extends Error {
  code: KavachStripeErrorCode
}

/** A failure Stripe's API answered with. `code` is Stripe's own (e.g. `resource_missing`), or `stripe_api_error`. */
export declare class StripeApiError extends Error {
  readonly name: 'StripeApiError'
  readonly code: string
  /** Stripe's error type, e.g. `invalid_request_error`, `card_error`, `api_error`. */
  readonly type: string
  readonly param: string | undefined
  readonly declineCode: string | undefined
  readonly statusCode: number
  readonly requestId: string | undefined
}

export type SubscriptionStatus =
  | 'incomplete'
  | 'incomplete_expired'
  | 'trialing'
  | 'active'
  | 'past_due'
  | 'canceled'
  | 'unpaid'
  | 'paused'

/** A configured plan, as a subscription carries it: matched by the subscription's price. */
export interface SubscriptionPlan {
  name: string
  limits: Record<string, number>
  /** The subscription is on the plan's `annualPriceId`. */
  annual: boolean
}

/** The user's subscription as projected onto `kavach_users`. */
export interface Subscription {
  id: string
  status: SubscriptionStatus
  priceId: string | null
  /** `null` only when the stored row has no period end (written by something other than this package). */
  currentPeriodEnd: Date | null
  /** Scheduled to cancel: `cancel_at_period_end`, or a `cancel_at` date (flexible billing). */
  cancelAtPeriodEnd: boolean
  /** The configured plan of `priceId`; `null` without `plans` or for another price. */
  plan: SubscriptionPlan | null
  /** What the user must do about a payment (see README, Payments that fail); `null` when nothing. */
  paymentIssue: PaymentIssue | null
}

/**
 * The newest open invoice of the subscription that failed at least once or requires action
 * (3-D Secure); paid, voided and uncollectible invoices never count.
 */
export interface PaymentIssue {
  invoiceId: string
  reason: 'payment_failed' | 'requires_action'
  /** Minor units. */
  amountDue: number | null
  currency: string | null
  attemptCount: number
  /** When Stripe retries; `null` when it will not. */
  nextPaymentAttempt: Date | null
  /** Where the user pays or authenticates. */
  hostedInvoiceUrl: string | null
}

/** What `reconcile` did with the events it listed. */
export interface ReconcileResult {
  fetched: number
  /** Handled now (or delivered to `onEvent`). */
  applied: number
  /** Already handled (by a webhook, or another reconcile). */
  duplicates: number
  /** Handled and recorded as ignored (no user owns the customer, a foreign product, ...). */
  ignored: number
  /** Failed (a database or Stripe error, a callback that threw): run it again. */
  failed: number
}

/** One invoice of `listInvoices`. */
export interface InvoiceSummary {
  id: string
  number: string | null
  status: 'draft' | 'open' | 'paid' | 'void' | 'uncollectible' | null
  amountDue: number
  amountPaid: number
  currency: string
  created: Date
  periodStart: Date | null
  periodEnd: Date | null
  hostedInvoiceUrl: string | null
  invoicePdf: string | null
}

/** One entry of the `plans` option. */
export interface PlanConfig {
  /** Unique; what clients send as `{ plan }` and what `subscription.plan.name` says. */
  name: string
  /** The monthly (or only) price. */
  priceId: string
  /** The annual price, checked out with `{ plan, annual: true }`. */
  annualPriceId?: string
  /** The plan's free trial in days (1 to 730); subject to `oneTrialPerUser`. */
  trialDays?: number
  /** What the plan allows, for the app to enforce (e.g. `{ projects: 10 }`). */
  limits?: Record<string, number>
}

/** A checkout by plan in place of a price id. */
export interface PlanChoice {
  plan: string
  /** Use the plan's `annualPriceId`; default false. */
  annual?: boolean
}

/**
 * `getBillingStatus(userId)`, computed from stored state only (no Stripe call) on the user's
 * projected subscription. With no subscription: `active: false`, `false` flags and `null` fields.
 * The README gives each definition.
 */
export interface BillingStatus {
  /** `active` or `trialing`; also `past_due` while `pastDueIsActive` (default true). */
  active: boolean
  status: SubscriptionStatus | null
  plan: SubscriptionPlan | null
  priceId: string | null
  productId: string | null
  quantity: number | null
  currentPeriodEnd: Date | null
  /** Status `trialing` and the trial end is in the future. */
  onTrial: boolean
  trialEndsAt: Date | null
  /** `cancel_at_period_end`, or a `cancel_at` date, while the status is live. */
  scheduledToCancel: boolean
  /** `cancel_at`; else the period end when `cancel_at_period_end`; else, once ended, when it ended. */
  endsAt: Date | null
  /** Scheduled to cancel and `endsAt` is in the future. */
  onGracePeriod: boolean
  /** Status `past_due` or `unpaid`. */
  pastDue: boolean
  paymentIssue: PaymentIssue | null
}

/** `GET /auth/stripe/status`: `BillingStatus` as JSON (dates as ISO 8601 strings). */
export type BillingStatusJson = Omit<BillingStatus, 'currentPeriodEnd' | 'trialEndsAt' | 'endsAt' | 'paymentIssue'> & {
  currentPeriodEnd: string | null
  trialEndsAt: string | null
  endsAt: string | null
  paymentIssue: (Omit<PaymentIssue, 'nextPaymentAttempt'> & { nextPaymentAttempt: string | null }) | null
}

/** Narrows `hasActiveSubscription`; every given field must match one of the subscription's items. */
export interface SubscriptionFilter {
  priceId?: string
  productId?: string
  /** A configured plan's name (its monthly or annual price). */
  plan?: string
}

export type DatabaseProvider = 'postgres' | 'mysql' | 'sqlite-native' | 'sqlite'

export interface DatabaseConfig {
  provider: DatabaseProvider
  /** `postgres://…`, `mysql://…`, or a SQLite file path (`:memory:` standalone only). */
  url: string
}

export interface StripePluginOptions {
  /** Stripe secret key (`sk_…`) or restricted key (`rk_…`). */
  secretKey: string
  /** Webhook signing secret(s) (`whsec_…`); several while rotating. Without one every webhook is rejected. */
  webhookSecret?: string | readonly string[]
  /** Called after the user's projected subscription really changed, its payment issue included (never for a no-op). */
  onSubscriptionChange?: (userId: string, subscription: Subscription) => Promise<void> | void
  /**
   * `customer.subscription.trial_will_end` (3 days before a trial ends): once per event; if it throws the
   * webhook answers 500 `trial_listener_failed` and Stripe's retry calls it again.
   */
  onTrialWillEnd?: (userId: string, trial: { trialEndsAt: Date; subscription: Subscription }) => Promise<void> | void
  /**
   * Every verified event of a handled type or of `onEventTypes`, after the package's own work for it
   * is committed: once per event id on success; if it throws the webhook answers 500
   * `event_listener_failed` and Stripe's retry calls it again (nothing is re-applied).
   */
  onEvent?: (event: StripeEvent) => Promise<void> | void
  /** Event types `onEvent` wants besides those the package handles (e.g. `charge.refunded`); no wildcards. */
  onEventTypes?: readonly string[]
  /**
   * Default `https://api.stripe.com`; tests and local stand-ins point it elsewhere. Plain `http:` is
   * refused (`invalid_config`) unless the host is loopback (127.0.0.0/8, `::1`, `localhost`) or
   * `allowInsecureApiBase` is set: the secret key would travel unencrypted.
   */
  apiBase?: string
  /** Allow a plain-`http:` `apiBase` to a host that is not loopback (a stand-in on a private network, such as a container named `stripe-mock`); default false. */
  allowInsecureApiBase?: boolean
  /** The pinned `Stripe-Version`; default `2026-03-25.dahlia`. */
  apiVersion?: string
  /** A database of this plugin's own; overrides the kavachOS host's. */
  database?: DatabaseConfig
  /** The app's public origin, for default redirect URLs outside a request. */
  baseUrl?: string
  /** Seconds a webhook signature may be old (or early); default 300. */
  webhookTolerance?: number
  /** Largest webhook body read, in bytes; default 1 MiB. */
  maxWebhookBytes?: number
  /** Create a Stripe customer at first checkout; default true. */
  autoCreateCustomer?: boolean
  /** Retries of a failed Stripe request; default 2. */
  maxNetworkRetries?: number
  /** Per-attempt timeout of a Stripe request, ms; default 15000. */
  timeoutMs?: number
  /** Origins besides the request's own that redirect URLs may point to. */
  trustedOrigins?: readonly string[]
  /** When set, the only price ids clients may check out. */
  prices?: readonly string[]
  /** When set, subscriptions to none of these products are ignored. */
  products?: readonly string[]
  /** Longest trial a client may ask for, days; default 0 (none). */
  maxClientTrialDays?: number
  /** Metadata keys a client may set on a checkout; default none. */
  clientMetadataKeys?: readonly string[]
  /** Whether `POST /auth/stripe/cancel` accepts `{ immediately: true }`; default false (at period end only). */
  clientCancelImmediately?: boolean
  /** Lets clients send `quantity` to `POST /auth/stripe/change-plan`, from 1 to `max`; default: no client quantity. */
  clientQuantity?: { max: number }
  /** Days handled event ids stay in the ledger (pruned hourly); default 30, 0 keeps them forever, else at least 3. */
  eventRetentionDays?: number
  /**
   * The app's plans. Clients then check out `{ plan, annual? }` (or a plan's price), the trial comes from
   * the plan (a client `trialDays` is refused), `prices` defaults to the plans' prices, and subscriptions
   * carry `plan`. Names unique; each price in one plan.
   */
  plans?: readonly PlanConfig[]
  /** Whether `past_due` counts as active in `getBillingStatus` and `hasActiveSubscription`; default true (Stripe is still retrying). */
  pastDueIsActive?: boolean
  /**
   * A free trial only for a user who never had one (a stored subscription with a trial, or a trial this
   * package granted at checkout); default true. A refused trial is not an error: `trialGranted: false`.
   */
  oneTrialPerUser?: boolean
}

export interface CheckoutOptions {
  successUrl?: string
  cancelUrl?: string
  trialDays?: number
  metadata?: Record<string, string>
}

export interface CheckoutSession {
  url: string
  sessionId: string
  /** Whether the session carries a free trial (false when none was asked, or `oneTrialPerUser` refused it). */
  trialGranted: boolean
}

export interface PortalSession {
  url: string
}

/** `changePlan` / `previewPlanChange`: a `priceId`, or a configured `plan` (with `annual`). */
export interface PlanChangeOptions {
  priceId?: string
  plan?: string
  annual?: boolean
  /** Default: the item's current quantity. */
  quantity?: number
  /** Default `always_invoice`: the difference is charged (or credited) now. */
  prorationBehavior?: 'always_invoice' | 'create_prorations' | 'none'
  /** Unix seconds; pass `previewPlanChange`'s `prorationDate` to be charged what was previewed. */
  prorationDate?: number
  /** Act on this subscription (it must be the user's) instead of the projected one. */
  subscriptionId?: string
}

/** A plan change held until its invoice is paid (`payment_behavior=pending_if_incomplete`). */
export interface PendingPlanChange {
  invoiceId: string | null
  hostedInvoiceUrl: string | null
  /** After it Stripe drops the change and the old plan simply continues. */
  expiresAt: Date | null
}

export interface PlanChangeResult {
  /** The subscription as stored after the call (the old plan while `pending`). */
  subscription: Subscription
  pending: PendingPlanChange | null
}

export interface PlanChangePreview {
  /** Minor units, what `changePlan` would charge now. */
  amountDue: number
  currency: string
  /** Unix seconds. */
  prorationDate: number
  lines: { description: string | null; amount: number; proration: boolean; priceId: string | null }[]
}

/** `kavach.plugins.getContext().stripe`. */
export interface StripeBillingApi {
  createCustomer(userId: string, email: string, name?: string): Promise<string>
  getCustomerId(userId: string): Promise<string | null>
  /** `options.trialDays` (the app's own) wins over the plan's trial. */
  createCheckoutSession(
    userId: string,
    priceIdOrPlan: string | PlanChoice,
    options?: CheckoutOptions,
  ): Promise<CheckoutSession>
  createPortalSession(userId: string, returnUrl: string): Promise<PortalSession>
  getSubscription(userId: string): Promise<Subscription | null>
  /** From stored state only; never calls Stripe. */
  getBillingStatus(userId: string): Promise<BillingStatus>
  /** `getBillingStatus(userId).active`, narrowed by price, product or plan. An unknown plan is `invalid_argument`. */
  hasActiveSubscription(userId: string, filter?: SubscriptionFilter): Promise<boolean>
  /** New price on the existing item; a failed payment leaves the old plan (`pending`). Stored at once. */
  changePlan(userId: string, change: PlanChangeOptions): Promise<PlanChangeResult>
  /** What `changePlan` with the same arguments would invoice now; changes nothing. */
  previewPlanChange(userId: string, change: PlanChangeOptions): Promise<PlanChangePreview>
  /** At period end by default; `immediately` ends it now. */
  cancelSubscription(userId: string, options?: { immediately?: boolean; subscriptionId?: string }): Promise<Subscription>
  /** Undoes a scheduled cancellation; one not scheduled is returned unchanged. */
  resumeSubscription(userId: string, options?: { subscriptionId?: string }): Promise<Subscription>
  /**
   * Handles the events Stripe holds that the ledger has not (after an outage), oldest first, through the
   * webhook's code. `since` defaults to the earliest allowed: 30 days, or `eventRetentionDays` if shorter.
   */
  reconcile(options?: { since?: Date; until?: Date }): Promise<ReconcileResult>
  /** The customer's invoices from Stripe, newest first (`limit` 1–100, default 10). */
  listInvoices(userId: string, options?: { limit?: number; startingAfter?: string }): Promise<{ invoices: InvoiceSummary[]; hasMore: boolean }>
  /** Stores the customer's subscriptions from Stripe; with `sessionId`, links the checkout's customer first. */
  syncSubscription(userId: string, options?: { sessionId?: string }): Promise<Subscription | null>
  /** Closes the database pool; the instance is unusable afterwards. */
  close(): Promise<void>
}

/** The parts of kavachOS's `PluginContext` this plugin uses. */
export interface KavachPluginContextLike {
  config: { database?: unknown }
  addEndpoint(endpoint: KavachPluginEndpointLike): void
}

export interface KavachEndpointContextLike {
  getUser(request: Request): Promise<{ id: string } | null>
}

export interface KavachPluginEndpointLike {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  path: string
  handler(request: Request, ctx: KavachEndpointContextLike): Promise<Response>
  metadata?: { requireAuth?: boolean; description?: string; rateLimit?: { window: number; max: number } }
}

export interface KavachStripePlugin {
  id: 'kavach-stripe'
  init(ctx: KavachPluginContextLike): Promise<{ context: { stripe: StripeBillingApi } }>
}

/** The kavachOS plugin. Throws `invalid_config` synchronously on a bad option. */
export declare function stripe(options: StripePluginOptions): KavachStripePlugin

/**
 * The plugin's API in a kavachOS app, typed: `getStripe(kavach)` is
 * `kavach.plugins.getContext().stripe` (which kavachOS types as `unknown`). Throws
 * `plugin_not_registered` when `stripe()` is not among the app's plugins.
 */
export declare function getStripe(kavach: { plugins: { getContext(): Record<string, unknown> } }): StripeBillingApi

export interface StripeBillingOptions extends StripePluginOptions {
  database: DatabaseConfig
  /** Resolves the signed-in user; without it the authenticated routes answer 401. */
  auth?: (request: Request) => Promise<{ id: string } | null>
}

export interface StandaloneUser {
  id: string
  email: string
  name?: string
}

export interface StripeBilling extends StripeBillingApi {
  /** Answers the package's endpoints under `basePath`; `null` when the request is not one of them. */
  handleRequest(request: Request, basePath?: string): Promise<Response | null>
  /** Creates or updates a `kavach_users` row (standalone deployments own that table). */
  upsertUser(user: StandaloneUser): Promise<void>
}

/** The same billing without kavachOS, for Hono, Next.js, Express, ... */
export declare function createStripeBilling(options: StripeBillingOptions): Promise<StripeBilling>

/** A Stripe event as delivered to a webhook. */
export interface StripeEvent {
  id: string
  object: 'event'
  type: string
  created: number
  livemode?: boolean
  api_version?: string | null
  data: { object: Record<string, unknown>; previous_attributes?: Record<string, unknown> }
  [key: string]: unknown
}

/**
 * Verifies `Stripe-Signature` over the raw body and returns the event: a drop-in
 * for the official SDK's `stripe.webhooks.constructEvent`. Throws an Error with
 * a `signature_*`, `timestamp_out_of_tolerance` or `payload_invalid` code.
 */
export declare function constructEvent(
  payload: Buffer | string,
  header: string,
  secret: string | readonly string[],
  tolerance?: number,
): StripeEvent

/**
 * Verifies `Stripe-Signature` over the raw payload and nothing else (no JSON
 * parsing). Throws an Error with a `signature_*` or `timestamp_out_of_tolerance` code.
 */
/**
 * The event types this package handles, in the order the README lists them: enable them on the
 * webhook endpoint (`kavachos-stripe doctor --url` checks it).
 */
export declare const HANDLED_EVENT_TYPES: readonly string[]

export declare function verifySignature(
  payload: Buffer | string,
  header: string,
  secret: string | readonly string[],
  tolerance?: number,
): void
