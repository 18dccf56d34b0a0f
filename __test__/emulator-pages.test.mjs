// The emulator's hosted pages driven by form posts: Checkout with each test
// card, the portal (switch, cancel at period end under classic and flexible
// billing, resume, a new card), and the dashboard's buttons.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startStripeEmulator } from '../emulator.js'
import { stripeFor, submit } from './helpers/emulator-client.mjs'
import { HANDLED_EVENT_TYPES } from '../index.js'

const KEY = 'sk_test_emulator_pages_suite'
const DAY = 86_400
const HOUR = 3600
const sdkFor = (emulator) => stripeFor(emulator, KEY)

describe('hosted Checkout with each test card', () => {
  let emulator
  let sdk
  before(async () => {
    emulator = await startStripeEmulator({ port: 0 })
    sdk = sdkFor(emulator)
  })
  after(() => emulator?.close())

  const session = async ({ trial, email } = {}) =>
    sdk.checkout.sessions.create({
      mode: 'subscription',
      ...(email ? {} : { customer: (await sdk.customers.create({ email: 'buyer@example.com' })).id }),
      line_items: [{ price: 'price_basic_monthly', quantity: 1 }],
      ...(trial ? { subscription_data: { trial_period_days: trial } } : {}),
      success_url: 'https://app.example/ok?s={CHECKOUT_SESSION_ID}',
      cancel_url: 'https://app.example/pricing',
    })
  const paidSubscription = async (id) => sdk.subscriptions.retrieve((await sdk.checkout.sessions.retrieve(id)).subscription)

  test('the page shows the items, a card field and the cancel link', async () => {
    const s = await session()
    const html = await (await fetch(s.url)).text()
    assert.match(html, /Basic/)
    assert.match(html, /9\.00 USD/)
    assert.match(html, /name="card_number"/)
    assert.match(html, /href="https:\/\/app\.example\/pricing"/)
  })

  test('4242 4242 4242 4242 succeeds', async () => {
    const s = await session()
    const answer = await submit(s.url, { card_number: '4242 4242 4242 4242' })
    assert.equal(answer.status, 303)
    assert.equal(answer.headers.get('location'), `https://app.example/ok?s=${s.id}`)
    assert.equal((await paidSubscription(s.id)).status, 'active')
  })

  test('4000 0000 0000 0002 is declined, 9995 has insufficient funds: the session stays open', async () => {
    const s = await session()
    const declined = await submit(s.url, { card_number: '4000000000000002' })
    assert.equal(declined.status, 402)
    assert.match(await declined.text(), /Your card was declined\./)
    const poor = await submit(s.url, { card_number: '4000 0000 0000 9995' })
    assert.equal(poor.status, 402)
    assert.match(await poor.text(), /insufficient funds/)
    assert.equal((await sdk.checkout.sessions.retrieve(s.id)).status, 'open')
    const unknown = await submit(s.url, { card_number: '1234' })
    assert.equal(unknown.status, 402)
    assert.match(await unknown.text(), /Your card number is incorrect/)
  })

  test('4000 0025 0000 3155 asks for authentication once; its renewals then succeed', async () => {
    const s = await session()
    const step = await submit(s.url, { card_number: '4000002500003155' })
    assert.equal(step.status, 200)
    assert.match(await step.text(), /Authenticate this payment/)
    assert.equal((await sdk.checkout.sessions.retrieve(s.id)).status, 'open', 'nothing happens before authentication')
    assert.equal((await submit(s.url, { card_number: '4000002500003155', authenticated: 'true' })).status, 303)
    const sub = await paidSubscription(s.id)
    assert.equal(sub.status, 'active')
    await emulator.advanceTime(sub.items.data[0].current_period_end - emulator.now() + HOUR + 60)
    const renewed = await sdk.subscriptions.retrieve(sub.id)
    assert.equal((await sdk.invoices.retrieve(renewed.latest_invoice)).status, 'paid')
    assert.equal(renewed.status, 'active')
  })

  test('with a trial nothing is charged, yet 3155 and 3184 authenticate the card they save', async () => {
    for (const card of ['4000002500003155', '4000002760003184']) {
      const s = await session({ trial: 7 })
      const step = await submit(s.url, { card_number: card })
      assert.equal(step.status, 200, card)
      assert.match(await step.text(), /Authenticate/)
      assert.equal((await sdk.checkout.sessions.retrieve(s.id)).status, 'open')
      assert.equal((await submit(s.url, { card_number: card, authenticated: 'true' })).status, 303)
      assert.equal((await paidSubscription(s.id)).status, 'trialing')
    }
  })

  test('4000 0027 6000 3184 asks every time: the renewal emits invoice.payment_action_required', async () => {
    const s = await session()
    assert.equal((await submit(s.url, { card_number: '4000002760003184' })).status, 200)
    assert.equal((await submit(s.url, { card_number: '4000002760003184', authenticated: 'true' })).status, 303)
    const sub = await paidSubscription(s.id)
    const mark = (await sdk.events.list({ limit: 1 })).data[0].id
    await emulator.advanceTime(sub.items.data[0].current_period_end - emulator.now() + HOUR + 60)
    const types = []
    for await (const event of sdk.events.list({ limit: 100 })) {
      if (event.id === mark) break
      if (event.data.object.customer === sub.customer) types.push(event.type)
    }
    assert.ok(types.includes('invoice.payment_action_required'), types.join(' '))
    assert.equal((await sdk.subscriptions.retrieve(sub.id)).status, 'past_due')
  })

  test('4000 0000 0000 0341 attaches, so a trial starts; its first renewal fails', async () => {
    const noTrial = await session()
    assert.equal((await submit(noTrial.url, { card_number: '4000000000000341' })).status, 402, 'without a trial the first charge fails')
    const s = await session({ trial: 3 })
    assert.match(await (await fetch(s.url)).text(), /3-day free trial/)
    assert.equal((await submit(s.url, { card_number: '4000000000000341' })).status, 303)
    const sub = await paidSubscription(s.id)
    assert.equal(sub.status, 'trialing')
    assert.equal((await sdk.checkout.sessions.retrieve(s.id)).payment_status, 'no_payment_required')
    await emulator.advanceTime(3 * DAY + HOUR + 60)
    const after = await sdk.subscriptions.retrieve(sub.id)
    assert.equal(after.status, 'past_due')
    assert.equal((await sdk.invoices.retrieve(after.latest_invoice)).attempt_count, 1)
  })

  test('a session without a customer asks for an email and creates the customer', async () => {
    const s = await session({ email: true })
    assert.match(await (await fetch(s.url)).text(), /name="email"/)
    assert.equal((await submit(s.url, { card_number: '4242424242424242' })).status, 400, 'the email is required')
    assert.equal((await submit(s.url, { card_number: '4242424242424242', email: 'new@example.com' })).status, 303)
    const done = await sdk.checkout.sessions.retrieve(s.id, { expand: ['customer'] })
    assert.equal(done.customer.email, 'new@example.com')
  })
})

for (const billingMode of ['classic', 'flexible']) {
  describe(`the portal under ${billingMode} billing`, () => {
    let emulator
    let sdk
    before(async () => {
      emulator = await startStripeEmulator({ port: 0, billingMode })
      sdk = sdkFor(emulator)
    })
    after(() => emulator?.close())

    test('switch plan, cancel at period end, resume, cancel again and reach the end; a new card', async () => {
      const customer = await sdk.customers.create({ email: 'portal@example.com', payment_method: 'pm_card_chargeCustomerFail', invoice_settings: { default_payment_method: 'pm_card_chargeCustomerFail' } })
      const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], trial_period_days: 10 })
      assert.equal(sub.billing_mode.type, billingMode)
      const portal = await sdk.billingPortal.sessions.create({ customer: customer.id, return_url: 'https://app.example/account' })
      const act = (form) => submit(portal.url, { subscription: sub.id, ...form })
      let page = await (await fetch(portal.url)).text()
      assert.match(page, /Cancel at period end/)
      assert.match(page, /https:\/\/app\.example\/account/)

      assert.equal((await act({ action: 'switch', price: 'price_pro_monthly' })).status, 303)
      assert.equal((await sdk.subscriptions.retrieve(sub.id)).items.data[0].price.id, 'price_pro_monthly')

      const mark = (await sdk.events.list({ limit: 1 })).data[0].id
      assert.equal((await act({ action: 'cancel' })).status, 303)
      let scheduled = await sdk.subscriptions.retrieve(sub.id)
      const periodEnd = scheduled.items.data[0].current_period_end
      if (billingMode === 'classic') {
        assert.equal(scheduled.cancel_at_period_end, true)
      } else {
        assert.equal(scheduled.cancel_at_period_end, false, 'flexible: cancel_at, not cancel_at_period_end')
      }
      assert.equal(scheduled.cancel_at, periodEnd)
      const [updated] = (await sdk.events.list({ limit: 10 })).data.filter((e) => e.type === 'customer.subscription.updated')
      assert.ok(updated && updated.id !== mark)
      assert.ok('cancel_at' in updated.data.previous_attributes)
      page = await (await fetch(portal.url)).text()
      assert.match(page, /Resume subscription/)

      assert.equal((await act({ action: 'resume' })).status, 303)
      const resumed = await sdk.subscriptions.retrieve(sub.id)
      assert.equal(resumed.cancel_at, null)
      assert.equal(resumed.cancel_at_period_end, false)

      // A new card replaces the failing one.
      assert.equal((await submit(`${portal.url}?action=card`, { card_number: '4000000000000002' })).status, 402)
      assert.equal((await submit(`${portal.url}?action=card`, { card_number: '4242424242424242' })).status, 303)
      const withCard = await sdk.customers.retrieve(customer.id)
      assert.equal((await sdk.paymentMethods.retrieve(withCard.invoice_settings.default_payment_method)).card.last4, '4242')
      assert.match(await (await fetch(portal.url)).text(), /Visa ending 4242/)
      // A card that wants 3-D Secure on setup is authenticated first.
      const step = await submit(`${portal.url}?action=card`, { card_number: '4000002500003155' })
      assert.equal(step.status, 200)
      assert.match(await step.text(), /Authenticate/)
      assert.equal((await sdk.customers.retrieve(customer.id)).invoice_settings.default_payment_method, withCard.invoice_settings.default_payment_method, 'not saved before authentication')
      assert.equal((await submit(`${portal.url}?action=card`, { card_number: '4000002500003155', authenticated: 'true' })).status, 303)
      assert.match(await (await fetch(portal.url)).text(), /Visa ending 3155/)

      assert.equal((await act({ action: 'cancel' })).status, 303)
      scheduled = await sdk.subscriptions.retrieve(sub.id)
      await emulator.advanceTime(scheduled.cancel_at - emulator.now() + HOUR)
      const ended = await sdk.subscriptions.retrieve(sub.id)
      assert.equal(ended.status, 'canceled')
      assert.equal(ended.ended_at, scheduled.cancel_at)
      assert.equal((await sdk.invoices.list({ subscription: sub.id })).data.filter((i) => i.billing_reason === 'subscription_cycle').length, 0, 'no renewal invoice')
      const unknown = await act({ action: 'explode' })
      assert.equal(unknown.status, 400)
    })
  })
}

describe('the dashboard', () => {
  let emulator
  let sdk
  before(async () => {
    emulator = await startStripeEmulator({ port: 0 })
    sdk = sdkFor(emulator)
  })
  after(() => emulator?.close())

  test('advance the clock, trigger an event, resend one', async () => {
    const before = emulator.now()
    assert.equal((await submit(`${emulator.dashboardUrl}/advance`, { seconds: String(DAY) })).status, 303)
    assert.ok(emulator.now() >= before + DAY)
    assert.equal((await submit(`${emulator.dashboardUrl}/advance`, { seconds: 'soon' })).status, 400)
    assert.equal((await submit(`${emulator.dashboardUrl}/trigger`, { type: 'customer.subscription.created', email: 'dash@example.com' })).status, 303)
    const created = (await sdk.events.list({ type: 'customer.subscription.created' })).data[0]
    assert.ok(created)
    assert.equal((await sdk.customers.retrieve(created.data.object.customer)).email, 'dash@example.com')
    const refused = await submit(`${emulator.dashboardUrl}/trigger`, { type: 'charge.refunded' })
    assert.equal(refused.status, 400)
    assert.match(await refused.text(), /cannot trigger charge\.refunded/)
    assert.equal((await submit(`${emulator.dashboardUrl}/events/${created.id}/resend`, {})).status, 303)
    const html = await (await fetch(emulator.dashboardUrl)).text()
    for (const part of ['id="customers"', 'id="subscriptions"', 'id="invoices"', 'id="events"', 'id="deliveries"', created.id]) assert.ok(html.includes(part), part)
  })

  test('trigger through the handle: every event this package handles happens', async () => {
    for (const type of new Set([...HANDLED_EVENT_TYPES, 'customer.created', 'customer.updated'])) {
      const mark = (await sdk.events.list({ limit: 1 })).data[0]?.id
      await emulator.trigger(type, { email: `${type}@example.com`, metadata: { kavach_user_id: 'u_trigger' } })
      const types = []
      for await (const event of sdk.events.list({ limit: 100 })) {
        if (event.id === mark) break
        types.push(event.type)
      }
      assert.ok(types.includes(type), `${type}: ${types.join(' ')}`)
    }
    await assert.rejects(emulator.trigger('nope.nope'), /cannot trigger nope\.nope/)
  })
})
