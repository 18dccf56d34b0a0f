// The emulator's clock: trials that end and renew, renewals that fail and
// are retried (then canceled, or left unpaid), recovered on the hosted
// invoice page, pending updates expiring, scheduled cancellations ending,
// Checkout sessions expiring, Stripe's test-clock endpoints, the Date header,
// and the state file across a restart.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startStripeEmulator } from '../emulator.js'
import { stripeFor, submit } from './helpers/emulator-client.mjs'

const KEY = 'sk_test_emulator_time_suite'
const DAY = 86_400
const HOUR = 3600

const sdkFor = (emulator) => stripeFor(emulator, KEY)
/** Event types emitted after `mark` (oldest first), for one object id if given. */
async function eventsSince(sdk, mark, objectId) {
  const all = []
  for await (const event of sdk.events.list({ limit: 100 })) {
    if (event.id === mark) break
    all.push(event)
  }
  return all.reverse().filter((e) => !objectId || e.data.object.id === objectId || e.data.object.subscription === objectId || e.data.object.parent?.subscription_details?.subscription === objectId)
}
const lastEventId = async (sdk) => (await sdk.events.list({ limit: 1 })).data[0]?.id

describe('the emulator clock', () => {
  let emulator
  let sdk
  before(async () => {
    emulator = await startStripeEmulator({ port: 0 })
    sdk = sdkFor(emulator)
  })
  after(() => emulator?.close())

  const customerWith = (card) =>
    sdk.customers.create({ email: `${card}@example.com`, payment_method: card, invoice_settings: { default_payment_method: card } })

  test('a trial: trial_will_end three days before, then the first paid invoice', async () => {
    const customer = await customerWith('pm_card_visa')
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_pro_monthly' }], trial_period_days: 7 })
    assert.equal(sub.status, 'trialing')
    let mark = await lastEventId(sdk)
    const started = emulator.now()
    await emulator.advanceTime(4 * DAY - HOUR)
    assert.deepEqual((await eventsSince(sdk, mark, sub.id)).map((e) => e.type), [])
    await emulator.advanceTime(2 * HOUR)
    let events = await eventsSince(sdk, mark, sub.id)
    assert.deepEqual(events.map((e) => e.type), ['customer.subscription.trial_will_end'])
    assert.ok(events[0].created >= started + 4 * DAY - 5, 'event.created follows the clock')
    mark = await lastEventId(sdk)
    await emulator.advanceTime(3 * DAY + 2 * HOUR)
    events = await eventsSince(sdk, mark, sub.id)
    assert.deepEqual(events.map((e) => e.type), [
      'customer.subscription.updated',
      'invoice.created',
      'invoice.finalized',
      'invoice.paid',
      'invoice.payment_succeeded',
      'customer.subscription.updated',
    ])
    assert.equal(events[1].data.object.billing_reason, 'subscription_cycle')
    assert.equal(events[1].data.object.status, 'draft')
    assert.equal(events[2].created - events[1].created, HOUR, 'finalized and charged an hour after invoice.created')
    assert.deepEqual(events[5].data.previous_attributes, { status: 'trialing' })
    const now = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(now.status, 'active')
    assert.equal(now.items.data[0].current_period_start, sub.trial_end)
  })

  test('a renewal that fails is retried on schedule, then recovered on the hosted invoice page', async () => {
    const customer = await customerWith('pm_card_visa')
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    await sdk.subscriptions.update(sub.id, { default_payment_method: 'pm_card_chargeCustomerFail' })
    const mark = await lastEventId(sdk)
    const periodEnd = sub.items.data[0].current_period_end
    await emulator.advanceTime(periodEnd - emulator.now() + HOUR + 60)
    let renewed = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(renewed.status, 'past_due')
    let invoice = await sdk.invoices.retrieve(renewed.latest_invoice)
    assert.equal(invoice.status, 'open')
    assert.equal(invoice.attempt_count, 1)
    assert.equal(invoice.next_payment_attempt, periodEnd + HOUR + DAY, 'the first retry a day later')
    await emulator.advanceTime(DAY)
    invoice = await sdk.invoices.retrieve(invoice.id)
    assert.equal(invoice.attempt_count, 2)
    assert.equal(invoice.next_payment_attempt, periodEnd + HOUR + 3 * DAY)
    const failures = (await eventsSince(sdk, mark, sub.id)).filter((e) => e.type === 'invoice.payment_failed')
    assert.deepEqual(failures.map((e) => e.data.object.attempt_count), [1, 2])
    const recoveredMark = await lastEventId(sdk)
    const page = await fetch(invoice.hosted_invoice_url)
    assert.match(await page.text(), /Amount due: 9\.00 USD/)
    assert.equal((await submit(invoice.hosted_invoice_url, { card_number: '4000000000009995' })).status, 402)
    assert.equal((await submit(invoice.hosted_invoice_url, { card_number: '4242424242424242' })).status, 303)
    const events = await eventsSince(sdk, recoveredMark, sub.id)
    assert.deepEqual(events.map((e) => e.type), ['payment_method.attached', 'invoice.paid', 'invoice.payment_succeeded', 'customer.subscription.updated'].filter((t) => t !== 'payment_method.attached'))
    assert.equal((await sdk.subscriptions.retrieve(sub.id)).status, 'active')
    assert.equal((await sdk.invoices.retrieve(invoice.id)).next_payment_attempt, null)
  })

  test('retries that run out cancel the subscription (payment_failed)', async () => {
    const customer = await customerWith('pm_card_chargeCustomerFail')
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], trial_period_days: 1 })
    await emulator.advanceTime(DAY + HOUR + 8 * DAY)
    const ended = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(ended.status, 'canceled')
    assert.equal(ended.cancellation_details.reason, 'payment_failed')
    const invoice = await sdk.invoices.retrieve(ended.latest_invoice)
    assert.equal(invoice.attempt_count, 4, 'the first attempt and three retries')
    assert.equal(invoice.next_payment_attempt, null)
  })

  test('a card that always asks for authentication: the renewal needs action', async () => {
    const customer = await customerWith('pm_card_authenticationRequired')
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], trial_period_days: 2 })
    const mark = await lastEventId(sdk)
    await emulator.advanceTime(2 * DAY + 2 * HOUR)
    const types = (await eventsSince(sdk, mark, sub.id)).map((e) => e.type)
    assert.ok(types.includes('invoice.payment_action_required'), types.join(' '))
    assert.equal(types.indexOf('invoice.payment_action_required'), types.indexOf('invoice.payment_failed') + 1)
    const invoice = await sdk.invoices.retrieve((await sdk.subscriptions.retrieve(sub.id)).latest_invoice)
    // Paying on the page asks for authentication, then succeeds.
    const step = await submit(invoice.hosted_invoice_url, { card_number: '4000002760003184' })
    assert.equal(step.status, 200)
    assert.match(await step.text(), /Authenticate this payment/)
    assert.equal((await submit(invoice.hosted_invoice_url, { card_number: '4000002760003184', authenticated: 'true' })).status, 303)
    assert.equal((await sdk.invoices.retrieve(invoice.id)).status, 'paid')
  })

  test('a pending plan change expires: its invoice voided, the old plan kept', async () => {
    const customer = await customerWith('pm_card_visa')
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    await sdk.subscriptions.update(sub.id, { default_payment_method: 'pm_card_chargeCustomerFail' })
    const pending = await sdk.subscriptions.update(sub.id, {
      items: [{ id: sub.items.data[0].id, price: 'price_pro_monthly' }],
      proration_behavior: 'always_invoice',
      payment_behavior: 'pending_if_incomplete',
    })
    const mark = await lastEventId(sdk)
    await emulator.advanceTime(pending.pending_update.expires_at - emulator.now() + 1)
    const events = await eventsSince(sdk, mark, sub.id)
    assert.deepEqual(events.map((e) => e.type), ['invoice.voided', 'customer.subscription.pending_update_expired'])
    const after = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(after.pending_update, null)
    assert.equal(after.items.data[0].price.id, 'price_basic_monthly')
    assert.equal((await sdk.invoices.retrieve(pending.latest_invoice)).status, 'void')
  })

  test('a scheduled cancellation ends at its time, without a renewal invoice', async () => {
    const customer = await customerWith('pm_card_visa')
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    await sdk.subscriptions.update(sub.id, { cancel_at_period_end: true })
    const mark = await lastEventId(sdk)
    await emulator.advanceTime(sub.items.data[0].current_period_end - emulator.now() + 2 * HOUR)
    const events = await eventsSince(sdk, mark, sub.id)
    assert.deepEqual(events.map((e) => e.type), ['customer.subscription.deleted'])
    assert.equal(events[0].data.object.ended_at, sub.items.data[0].current_period_end)
    assert.equal((await sdk.invoices.list({ subscription: sub.id })).data.length, 1, 'only the first invoice')
  })

  test('an incomplete subscription expires after 23 hours; a Checkout session after its expiry', async () => {
    const customer = await sdk.customers.create({ email: 'late@example.com' })
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], payment_behavior: 'default_incomplete' })
    const session = await sdk.checkout.sessions.create({ mode: 'subscription', customer: customer.id, line_items: [{ price: 'price_basic_monthly' }], success_url: 'https://a.example/ok' })
    await emulator.advanceTime(24 * HOUR + 60)
    const expired = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(expired.status, 'incomplete_expired')
    assert.equal((await sdk.invoices.retrieve(expired.latest_invoice)).status, 'void')
    assert.equal((await sdk.checkout.sessions.retrieve(session.id)).status, 'expired')
    assert.equal((await submit(session.url, { card_number: '4242424242424242' })).status, 410)
  })

  test("Stripe's test clocks: advancing, then ready; one shared time; the Date header follows", async () => {
    const clock = await sdk.testHelpers.testClocks.create({ frozen_time: emulator.now(), name: 'suite' })
    assert.equal(clock.object, 'test_helpers.test_clock')
    assert.equal(clock.status, 'ready')
    const customer = await sdk.customers.create({ email: 'clocked@example.com', test_clock: clock.id, payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })
    assert.equal(customer.test_clock, clock.id)
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    assert.equal(sub.test_clock, clock.id)
    assert.ok(!(await sdk.customers.list({ limit: 100 })).data.some((c) => c.id === customer.id), 'lists leave out test-clock customers')
    assert.deepEqual((await sdk.customers.list({ test_clock: clock.id })).data.map((c) => c.id), [customer.id])
    const target = sub.items.data[0].current_period_end + 2 * HOUR
    const advancing = await sdk.testHelpers.testClocks.advance(clock.id, { frozen_time: target })
    assert.equal(advancing.status, 'advancing')
    let ready
    for (let i = 0; i < 100 && ready?.status !== 'ready'; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      ready = await sdk.testHelpers.testClocks.retrieve(clock.id)
    }
    assert.equal(ready.status, 'ready')
    assert.equal(ready.frozen_time, emulator.now())
    assert.ok(emulator.now() >= target)
    const types = (await sdk.events.list({ limit: 100 })).data.map((e) => e.type)
    assert.ok(types.includes('test_helpers.test_clock.advancing') && types.includes('test_helpers.test_clock.ready'))
    const renewed = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(renewed.items.data[0].current_period_start, sub.items.data[0].current_period_end)
    const answer = await fetch(`${emulator.apiBase}/v1/customers/${customer.id}`, { headers: { authorization: `Bearer ${KEY}` } })
    assert.ok(Math.abs(Date.parse(answer.headers.get('date')) / 1000 - emulator.now()) <= 2)
    await assert.rejects(sdk.testHelpers.testClocks.create({ frozen_time: emulator.now() - 10 * DAY }), /only moves forward/)
    await assert.rejects(sdk.testHelpers.testClocks.advance(clock.id, { frozen_time: emulator.now() - 1 }), /later than the test clock's current time/)
    await assert.rejects(sdk.testHelpers.testClocks.advance(clock.id, { frozen_time: emulator.now() + 100 * DAY }), /two intervals/)
    const deleted = await sdk.testHelpers.testClocks.del(clock.id)
    assert.equal(deleted.deleted, true)
    assert.equal((await sdk.customers.retrieve(customer.id)).deleted, true)
  })
})

describe('settings: retries that end unpaid; the state file', () => {
  test("whenRetriesEnd 'unpaid' leaves the subscription unpaid and later invoices as drafts", async () => {
    const emulator = await startStripeEmulator({ port: 0, dunning: { retryDays: [2], whenRetriesEnd: 'unpaid' } })
    try {
      const sdk = sdkFor(emulator)
      const customer = await sdk.customers.create({ email: 'u@example.com', payment_method: 'pm_card_chargeCustomerFail', invoice_settings: { default_payment_method: 'pm_card_chargeCustomerFail' } })
      const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], trial_period_days: 1 })
      await emulator.advanceTime(DAY + HOUR + 3 * DAY)
      const unpaid = await sdk.subscriptions.retrieve(sub.id)
      assert.equal(unpaid.status, 'unpaid')
      assert.equal((await sdk.invoices.retrieve(unpaid.latest_invoice)).attempt_count, 2)
      await emulator.advanceTime(32 * DAY)
      const later = await sdk.invoices.list({ subscription: sub.id, status: 'draft' })
      assert.equal(later.data.length, 1, 'the next invoice stays a draft')
    } finally {
      await emulator.close()
    }
  })

  test('options are checked: billingMode, dunning, state', async () => {
    await assert.rejects(startStripeEmulator({ port: 0, billingMode: 'hybrid' }), /billingMode/)
    await assert.rejects(startStripeEmulator({ port: 0, dunning: { retryDays: [3, 1] } }), /dunning\.retryDays/)
    await assert.rejects(startStripeEmulator({ port: 0, dunning: { whenRetriesEnd: 'later' } }), /dunning\.whenRetriesEnd/)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emulator-state-'))
    try {
      const garbage = path.join(dir, 'garbage.json')
      fs.writeFileSync(garbage, '{"not": "a state"}')
      await assert.rejects(startStripeEmulator({ port: 0, state: garbage }), (error) => error.code === 'emulator_state_invalid' && /not an emulator state file/.test(error.message))
      assert.equal(fs.readFileSync(garbage, 'utf8'), '{"not": "a state"}', 'a file it cannot read is left alone')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the state file survives a restart: objects, events, the clock, the webhook secret', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emulator-state-'))
    const file = path.join(dir, 'stripe.json')
    try {
      const first = await startStripeEmulator({ port: 0, state: file })
      const sdk = sdkFor(first)
      const customer = await sdk.customers.create({ email: 'kept@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })
      const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_pro_yearly' }] })
      await first.advanceTime(5 * DAY)
      const session = await sdk.checkout.sessions.create({ mode: 'subscription', customer: customer.id, line_items: [{ price: 'price_basic_monthly' }], success_url: 'https://a.example/ok' })
      const time = first.now()
      const secret = first.webhookSecret
      await first.close()
      assert.ok(fs.statSync(file).size > 1000)

      const second = await startStripeEmulator({ port: 0, state: file })
      try {
        const again = sdkFor(second)
        assert.equal(second.webhookSecret, secret)
        assert.ok(second.now() >= time && second.now() - time < 60, 'the clock keeps its offset')
        assert.equal((await again.customers.retrieve(customer.id)).email, 'kept@example.com')
        assert.equal((await again.subscriptions.retrieve(sub.id)).status, 'active')
        assert.ok((await again.events.list({ limit: 100 })).data.some((e) => e.type === 'customer.subscription.created' && e.data.object.id === sub.id))
        const moved = await again.checkout.sessions.retrieve(session.id)
        assert.equal(moved.url, `${second.apiBase}/checkout/${session.id}`, 'hosted URLs follow the new address')
        assert.equal((await submit(moved.url, { card_number: '4242424242424242' })).status, 303, 'the saved session can be paid')
        assert.equal((await again.prices.list({ limit: 100 })).data.filter((p) => p.id === 'price_pro_yearly').length, 1, 'the catalog is not seeded twice')
      } finally {
        await second.close()
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
