/** A product of the emulator's catalog, with its prices. */
export interface EmulatorCatalogProduct {
  /** Fixed id (default: a generated `prod_...`). */
  id?: string
  name: string
  prices: EmulatorCatalogPrice[]
}

export interface EmulatorCatalogPrice {
  /** Fixed id, e.g. `price_pro_monthly` (default: a generated `price_...`). */
  id?: string
  lookupKey?: string
  nickname?: string
  /** Minor units (cents). */
  unitAmount: number
  /** Default `usd`. */
  currency?: string
  /** Default `month`; `null` makes a one-time price. */
  interval?: 'day' | 'week' | 'month' | 'year' | null
  /** Default 1. */
  intervalCount?: number
}

/** Where the emulator sends webhooks; all of these share `webhookSecret`. */
export interface EmulatorWebhookTarget {
  url: string
  /** Event types (default `['*']`, every event). */
  events?: string[]
  /** The version events are rendered in (default: `apiVersion`). */
  apiVersion?: string
}

/** Delivery disorder on purpose. */
export interface EmulatorChaos {
  /** Share of deliveries sent twice, 0 to 1. */
  duplicateRate?: number
  /** Each delivery waits a random time up to this, so events within the window arrive out of order. */
  reorderWindowMs?: number
  /** Every delivery waits this long first. */
  delayMs?: number
}

export interface StripeEmulatorOptions {
  /** Default 12111; 0 picks any free port. The emulator listens on 127.0.0.1 only. */
  port?: number
  webhooks?: EmulatorWebhookTarget[]
  /** Default: Basic and Pro, monthly and yearly (`price_basic_monthly`, `price_pro_yearly`, ...). */
  catalog?: EmulatorCatalogProduct[]
  chaos?: EmulatorChaos
  /** The account's API version: used when a request sends no `Stripe-Version` (default `2026-10-28.endive`). */
  apiVersion?: string
  /** Retries of a failed delivery (default 6 attempts, 1 s then doubling). */
  webhookRetry?: { maxAttempts?: number; initialBackoffMs?: number }
  /** A JSON file that keeps the state across restarts (written after every change). Use a fixed `port` with it. */
  state?: string
  /**
   * `billing_mode` of new subscriptions (default `flexible`). It decides how the portal schedules a
   * cancellation: `cancel_at` under `flexible`, `cancel_at_period_end` under `classic`.
   */
  billingMode?: 'classic' | 'flexible'
  /** Failed renewals: retried on these days after the first failure (default [1, 3, 7]), then `whenRetriesEnd` (default `cancel`). */
  dunning?: { retryDays?: number[]; whenRetriesEnd?: 'cancel' | 'unpaid' | 'past_due' }
}

/** One try at delivering one event to one endpoint. */
export interface EmulatorDeliveryAttempt {
  eventId: string
  eventType: string
  endpointId: string
  url: string
  attempt: number
  /** A chaos-made second copy. */
  duplicate: boolean
  /** Unix milliseconds. */
  atMs: number
  status: number | null
  error: string | null
  responseBody: string
  succeeded: boolean
}

export interface StripeEmulator {
  /** e.g. `http://127.0.0.1:12111`: give it to the app as Stripe's API base. */
  apiBase: string
  /** The `whsec_` secret of the `webhooks` targets. */
  webhookSecret: string
  /** The emulator's dashboard: objects, events, deliveries. */
  dashboardUrl: string
  port: number
  /** Every webhook delivery attempt so far. */
  deliveries(): EmulatorDeliveryAttempt[]
  /** The emulator's time, unix seconds (drives every timestamp, `event.created` and the `Date` header). */
  now(): number
  /**
   * Moves the one clock forward (all test clocks share it), running in order what Stripe would run in
   * between: trial notices and ends, renewals, retries, scheduled cancellations, expiries. Resolves with the new time.
   */
  advanceTime(seconds: number): Promise<number>
  /** Makes an event happen: creates what it needs (for `customer`, or a new customer) and lets the normal flow emit it. */
  trigger(type: string, target?: { customer?: string; email?: string; metadata?: Record<string, string> }): Promise<void>
  /** Stops listening and drops pending deliveries. */
  close(): Promise<void>
}

export declare function startStripeEmulator(options?: StripeEmulatorOptions): Promise<StripeEmulator>
