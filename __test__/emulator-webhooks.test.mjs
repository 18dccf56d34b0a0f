// The emulator's webhooks: signed as Stripe signs (verified by the official
// package's constructEvent), in the order the lifecycle reference gives for
// checkout, plan changes and cancellation, retried with backoff, and
// disordered on purpose by chaos.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import Stripe from 'stripe'
import { startStripeEmulator } from '../emulator.js'
import { startWebhookReceiver, waitFor } from './helpers/webhook-receiver.mjs'

const KEY = 'sk_test_emulator_webhook_suite'
const sdk = new Stripe(KEY)

describe('emulator webhooks', () => {
  let emulator
  let receiver
  let stripe
  // Fails the first two attempts of any event whose customer email says so.
  const flaky = new Map()

  before(async () => {
    receiver = await startWebhookReceiver({
      respond: (delivery) => {
        const email = delivery.event?.data?.object?.email
        if (email === 'flaky@example.com' && delivery.event.type === 'customer.created') {
          const seen = (flaky.get(delivery.event.id) ?? 0) + 1
          flaky.set(delivery.event.id, seen)
          return seen <= 2 ? 500 : 200
        }
        return 200
      },
    })
    emulator = await startStripeEmulator({ port: 0, webhooks: [{ url: receiver.url }], webhookRetry: { initialBackoffMs: 100 } })
    stripe = new Stripe(KEY, { host: '127.0.0.1', port: emulator.port, protocol: 'http', maxNetworkRetries: 0 })
  })
  after(async () => {
    await emulator?.close()
    await receiver?.close()
  })

  /** Deliveries received from `from` on, once `count` arrived, as events. */
  const next = async (from, count) => {
    await waitFor(() => receiver.received.length >= from + count, { what: `${count} deliveries` })
    await new Promise((resolve) => setTimeout(resolve, 50))
    return receiver.received.slice(from).map((d) => d.event)
  }
  const customerWithCard = () =>
    stripe.customers.create({ email: 'card@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })

  test('every delivery verifies with the official constructEvent and the shared secret', async () => {
    const from = receiver.received.length
    const customer = await stripe.customers.create({ email: 'signed@example.com' })
    const [delivery] = await waitFor(() => receiver.received.slice(from).length >= 1 && receiver.received.slice(from))
    const event = sdk.webhooks.constructEvent(delivery.body, delivery.signature, emulator.webhookSecret)
    assert.equal(event.type, 'customer.created')
    assert.equal(event.data.object.id, customer.id)
    const t = Number(/t=(\d+)/.exec(delivery.signature)[1])
    assert.ok(Math.abs(t - Date.now() / 1000) < 5, 't is wall-clock time')
    assert.match(delivery.userAgent, /^Stripe\/1\.0/)
    assert.throws(() => sdk.webhooks.constructEvent(delivery.body, delivery.signature, 'whsec_wrong'))
    assert.equal(event.api_version, '2026-10-28.endive')
    assert.equal(event.livemode, false)
    assert.equal(event.pending_webhooks, 1)
  })

  test('checkout, subscription with a card: the reference order, the statuses it carries', async () => {
    const session = await stripe.checkout.sessions.create({
      mode: 'subscription',
      customer_email: 'checkout@example.com',
      line_items: [{ price: 'price_pro_monthly', quantity: 1 }],
      success_url: 'https://app.example/done',
    })
    const from = receiver.received.length
    const paid = await fetch(session.url, { method: 'POST', body: new URLSearchParams({ card_number: '4242424242424242' }), redirect: 'manual' })
    assert.equal(paid.status, 303)
    const events = await next(from, 9)
    assert.deepEqual(events.map((e) => e.type), [
      'customer.created',
      'payment_method.attached',
      'invoice.created',
      'customer.subscription.created',
      'invoice.finalized',
      'customer.subscription.updated',
      'invoice.paid',
      'invoice.payment_succeeded',
      'checkout.session.completed',
    ])
    const byType = Object.fromEntries(events.map((e) => [e.type, e]))
    assert.equal(byType['customer.subscription.created'].data.object.status, 'incomplete')
    assert.equal(byType['customer.subscription.updated'].data.object.status, 'active')
    assert.deepEqual(byType['customer.subscription.updated'].data.previous_attributes, { status: 'incomplete' })
    assert.equal(byType['invoice.created'].data.object.billing_reason, 'subscription_create')
    assert.equal(byType['invoice.created'].data.object.status, 'draft')
    assert.equal(byType['invoice.paid'].data.object.status, 'paid')
    const completed = byType['checkout.session.completed'].data.object
    assert.equal(completed.subscription, byType['customer.subscription.created'].data.object.id)
    assert.equal(completed.customer, byType['customer.created'].data.object.id)
    assert.equal(completed.payment_status, 'paid')
    for (const event of events) assert.equal(event.request.id, null, 'a hosted page, not an API request')
  })

  test('plan change: updated with previous items, then prorations or the invoice', async () => {
    const customer = await customerWithCard()
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    await waitFor(() => receiver.received.some((d) => d.event?.type === 'invoice.payment_succeeded' && d.event.data.object.customer === customer.id))
    let from = receiver.received.length
    await stripe.subscriptions.update(sub.id, { items: [{ id: sub.items.data[0].id, price: 'price_pro_monthly' }], proration_behavior: 'create_prorations' })
    let events = await next(from, 3)
    assert.deepEqual(events.map((e) => e.type), ['customer.subscription.updated', 'invoiceitem.created', 'invoiceitem.created'])
    assert.equal(events[0].data.previous_attributes.items.data[0].price.id, 'price_basic_monthly')
    assert.equal(events[0].data.object.items.data[0].price.id, 'price_pro_monthly')
    assert.deepEqual(events.slice(1).map((e) => Math.sign(e.data.object.amount)), [-1, 1], 'a credit, then a debit')
    assert.ok(events[0].request.id.startsWith('req_'))

    from = receiver.received.length
    await stripe.subscriptions.update(sub.id, { items: [{ id: sub.items.data[0].id, price: 'price_pro_yearly' }], proration_behavior: 'always_invoice' })
    events = await next(from, 5)
    assert.deepEqual(events.map((e) => e.type), ['customer.subscription.updated', 'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded'])
    assert.equal(events[1].data.object.billing_reason, 'subscription_update')
  })

  test('cancellation: at period end is an update, now is a deletion', async () => {
    const customer = await customerWithCard()
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    await waitFor(() => receiver.received.some((d) => d.event?.type === 'invoice.payment_succeeded' && d.event.data.object.customer === customer.id))
    let from = receiver.received.length
    await stripe.subscriptions.update(sub.id, { cancel_at_period_end: true })
    let [updated] = await next(from, 1)
    assert.equal(updated.type, 'customer.subscription.updated')
    assert.equal(updated.data.object.status, 'active')
    assert.equal(updated.data.object.cancel_at_period_end, true)
    assert.equal(updated.data.previous_attributes.cancel_at_period_end, false)
    assert.equal(updated.data.previous_attributes.cancel_at, null)
    from = receiver.received.length
    await stripe.subscriptions.cancel(sub.id)
    const [deleted] = await next(from, 1)
    assert.equal(deleted.type, 'customer.subscription.deleted')
    assert.equal(deleted.data.object.status, 'canceled')
    assert.ok(deleted.data.object.ended_at)
  })

  test('a non-2xx answer is retried with growing backoff; every attempt is recorded', async () => {
    const customer = await stripe.customers.create({ email: 'flaky@example.com' })
    const attempts = await waitFor(() => {
      const mine = emulator.deliveries().filter((a) => a.eventType === 'customer.created' && a.succeeded === false)
      const success = emulator.deliveries().find((a) => a.eventType === 'customer.created' && a.attempt === 3)
      return mine.length >= 2 && success ? emulator.deliveries().filter((a) => a.eventId === success.eventId) : null
    }, { what: 'three attempts' })
    assert.deepEqual(attempts.map((a) => [a.attempt, a.status, a.succeeded]), [[1, 500, false], [2, 500, false], [3, 200, true]])
    assert.ok(attempts[2].atMs - attempts[1].atMs >= attempts[1].atMs - attempts[0].atMs, 'the wait doubles')
    assert.match(attempts[2].responseBody, /received/)
    const event = await stripe.events.retrieve(attempts[0].eventId)
    assert.equal(event.data.object.id, customer.id)
    assert.equal(event.pending_webhooks, 0)
    const dashboard = await (await fetch(emulator.dashboardUrl)).text()
    assert.match(dashboard, new RegExp(`${attempts[0].eventId}.*#1 500`, 's'))
    const json = await (await fetch(`${emulator.apiBase}/_emulator/deliveries`)).json()
    assert.ok(json.filter((a) => a.eventId === attempts[0].eventId).length === 3)
  })

  test('an endpoint created through the API: its own secret, its events, its API version', async () => {
    const own = await startWebhookReceiver()
    try {
      const endpoint = await stripe.webhookEndpoints.create({ url: own.url, enabled_events: ['customer.subscription.created'], api_version: '2024-09-30.acacia' })
      const customer = await customerWithCard()
      await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
      const [delivery] = await waitFor(() => own.received.length >= 1 && own.received)
      assert.throws(() => sdk.webhooks.constructEvent(delivery.body, delivery.signature, emulator.webhookSecret))
      const event = sdk.webhooks.constructEvent(delivery.body, delivery.signature, endpoint.secret)
      assert.equal(event.type, 'customer.subscription.created')
      assert.equal(event.api_version, '2024-09-30.acacia')
      assert.equal(typeof event.data.object.current_period_end, 'number', 'rendered in the endpoint version')
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.deepEqual(own.types(), ['customer.subscription.created'], 'only its enabled events')
      await stripe.webhookEndpoints.del(endpoint.id)
    } finally {
      await own.close()
    }
  })

  test('chaos: every event twice, out of order within the window', async () => {
    const chaotic = await startWebhookReceiver()
    const noisy = await startStripeEmulator({ port: 0, webhooks: [{ url: chaotic.url }], chaos: { duplicateRate: 1, reorderWindowMs: 400 } })
    try {
      const api = new Stripe(KEY, { host: '127.0.0.1', port: noisy.port, protocol: 'http' })
      for (let i = 0; i < 8; i += 1) await api.customers.create({ email: `c${i}@example.com` })
      await waitFor(() => chaotic.received.length >= 16, { what: '16 deliveries' })
      const emitted = (await api.events.list({ limit: 100 })).data.map((e) => e.id).reverse()
      const arrived = chaotic.received.map((d) => d.event.id)
      assert.deepEqual([...new Set(arrived)].sort(), [...emitted].sort())
      for (const id of emitted) assert.equal(arrived.filter((a) => a === id).length, 2, `${id} came twice`)
      const firstArrivals = [...new Set(arrived)]
      assert.notDeepEqual(firstArrivals, emitted, 'the order is shuffled')
      assert.equal(noisy.deliveries().filter((a) => a.duplicate).length, 8)
      for (const d of chaotic.received) sdk.webhooks.constructEvent(d.body, d.signature, noisy.webhookSecret)
    } finally {
      await noisy.close()
      await chaotic.close()
    }
  })
})
