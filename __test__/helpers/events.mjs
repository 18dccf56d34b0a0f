// Signed Stripe events for tests, shaped like the fixtures in ../fixtures/stripe.
import crypto from 'node:crypto'
import fs from 'node:fs'

const fixture = (name) => JSON.parse(fs.readFileSync(new URL(`../fixtures/stripe/${name}.json`, import.meta.url), 'utf8'))
const SUBSCRIPTION = fixture('subscription')
const INVOICE = fixture('invoice')
const CHECKOUT = fixture('checkout.session')

export function signature(payload, secret, timestamp = Math.floor(Date.now() / 1000)) {
  const mac = crypto.createHmac('sha256', secret).update(`${timestamp}.${payload}`).digest('hex')
  return `t=${timestamp},v1=${mac}`
}

let counter = 0
export function event(type, object, { created = Math.floor(Date.now() / 1000), id, apiVersion = '2026-03-25.dahlia' } = {}) {
  counter += 1
  return {
    id: id ?? `evt_test_${Date.now()}_${counter}`,
    object: 'event',
    api_version: apiVersion,
    created,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object },
  }
}

/** A subscription in the basil-and-later shape (period on the items). */
export function subscription({ id, customer, status = 'active', price = 'price_basic', product = 'prod_app', periodEnd = 1900000000, created = 1700000000, cancelAtPeriodEnd = false, cancelAt = null, userId }) {
  const item = structuredClone(SUBSCRIPTION.items.data[0])
  item.price = { ...item.price, id: price, product }
  item.current_period_end = periodEnd
  item.subscription = id
  return {
    ...structuredClone(SUBSCRIPTION),
    id,
    customer,
    status,
    created,
    cancel_at_period_end: cancelAtPeriodEnd,
    cancel_at: cancelAt,
    canceled_at: null,
    ended_at: null,
    trial_end: null,
    metadata: userId ? { kavach_user_id: userId } : {},
    items: { ...SUBSCRIPTION.items, data: [item] },
  }
}

/** The same subscription as API versions before 2025-03-31.basil render it. */
export function legacySubscription(options) {
  const sub = subscription(options)
  sub.current_period_end = options.periodEnd ?? 1900000000
  delete sub.items.data[0].current_period_end
  return sub
}

export function invoice({ subscriptionId, customer, legacy = false }) {
  const inv = { ...structuredClone(INVOICE), customer, status: 'open' }
  if (legacy) {
    inv.subscription = subscriptionId
    inv.parent = null
  } else {
    inv.parent = { type: 'subscription_details', quote_details: null, subscription_details: { subscription: subscriptionId, metadata: {} } }
    delete inv.subscription
  }
  return inv
}

export function checkoutSession({ id, mode = 'subscription', customer, subscription: subscriptionId = null, clientReferenceId = null }) {
  return { ...structuredClone(CHECKOUT), id, mode, customer, subscription: subscriptionId, client_reference_id: clientReferenceId, status: 'complete', payment_status: 'paid' }
}
