// The local Stripe (kavachos-stripe/emulator) driven by the official `stripe`
// package: every resource, Stripe's errors as the SDK's error classes,
// idempotent retries, list paging, versions.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import Stripe from 'stripe'
import { startStripeEmulator } from '../emulator.js'

const KEY = 'sk_test_emulator_api_suite'

describe('the emulator through the official stripe package', () => {
  let emulator
  let stripe
  const client = (key = KEY, options = {}) =>
    new Stripe(key, { host: '127.0.0.1', port: emulator.port, protocol: 'http', maxNetworkRetries: 0, ...options })
  const raw = (path, init = {}) =>
    fetch(`${emulator.apiBase}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${KEY}`, ...(init.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...init.headers },
    })
  const pay = (url, form) =>
    fetch(url, { method: 'POST', body: new URLSearchParams(form), redirect: 'manual' })

  before(async () => {
    emulator = await startStripeEmulator({ port: 0 })
    stripe = client()
  })
  after(() => emulator?.close())

  test('the handle: loopback address, a whsec_ secret, the dashboard', async () => {
    assert.match(emulator.apiBase, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.match(emulator.webhookSecret, /^whsec_[A-Za-z0-9]{32}$/)
    assert.equal(emulator.dashboardUrl, `${emulator.apiBase}/_emulator`)
    const page = await fetch(emulator.dashboardUrl)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /Stripe emulator/)
  })

  test('customers: create, retrieve, update, list by email, delete', async () => {
    const created = await stripe.customers.create({ email: 'ada@example.com', name: 'Ada', metadata: { userId: 'u1' } })
    assert.match(created.id, /^cus_/)
    assert.equal(created.object, 'customer')
    assert.deepEqual(created.metadata, { userId: 'u1' })
    assert.match(created.lastResponse.requestId, /^req_/)
    const again = await stripe.customers.retrieve(created.id)
    assert.equal(again.email, 'ada@example.com')
    const updated = await stripe.customers.update(created.id, { name: 'Ada L.', metadata: { userId: '', plan: 'x' } })
    assert.equal(updated.name, 'Ada L.')
    assert.deepEqual(updated.metadata, { plan: 'x' }, 'an empty value unsets a key')
    await stripe.customers.create({ email: 'other@example.com' })
    const listed = await stripe.customers.list({ email: 'ada@example.com' })
    assert.deepEqual(listed.data.map((c) => c.id), [created.id])
    const deleted = await stripe.customers.del(created.id)
    assert.deepEqual({ id: deleted.id, deleted: deleted.deleted }, { id: created.id, deleted: true })
    assert.equal((await stripe.customers.retrieve(created.id)).deleted, true)
    assert.equal((await stripe.customers.list({ email: 'ada@example.com' })).data.length, 0)
  })

  test("Stripe's errors: parameter_unknown, parameter_missing, resource_missing, bad URL, 401", async () => {
    await assert.rejects(stripe.customers.create({ emial: 'x@example.com' }), (error) => {
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError)
      assert.equal(error.code, 'parameter_unknown')
      assert.equal(error.param, 'emial')
      assert.equal(error.message, 'Received unknown parameter: emial')
      assert.equal(error.statusCode, 400)
      assert.match(error.requestId, /^req_/)
      return true
    })
    await assert.rejects(stripe.prices.create({ unit_amount: 100, product_data: { name: 'x' } }), (error) => {
      assert.equal(error.code, 'parameter_missing')
      assert.equal(error.param, 'currency')
      assert.equal(error.message, 'Missing required param: currency.')
      return true
    })
    await assert.rejects(stripe.customers.retrieve('cus_missing'), (error) => {
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError)
      assert.equal(error.statusCode, 404)
      assert.equal(error.code, 'resource_missing')
      assert.equal(error.param, 'id')
      assert.equal(error.message, "No such customer: 'cus_missing'")
      assert.equal(error.raw.doc_url, 'https://stripe.com/docs/error-codes/resource-missing')
      return true
    })
    await assert.rejects(stripe.subscriptions.create({ customer: 'cus_nobody', items: [{ price: 'price_pro_monthly' }] }), (error) => {
      assert.equal(error.statusCode, 400)
      assert.equal(error.param, 'customer')
      assert.equal(error.message, "No such customer: 'cus_nobody'")
      return true
    })
    // A parameter Stripe has but the emulator does not model: refused by name.
    await assert.rejects(stripe.customers.create({ tax_exempt: 'exempt' }), (error) => {
      assert.equal(error.code, 'parameter_unknown')
      assert.equal(error.param, 'tax_exempt')
      assert.match(error.message, /does not implement/)
      return true
    })
    // A bad expand refuses the whole request: nothing is created.
    await assert.rejects(stripe.customers.create({ email: 'expand@example.com', expand: ['nothing'] }), /This property cannot be expanded \(nothing\)/)
    assert.equal((await stripe.customers.list({ email: 'expand@example.com' })).data.length, 0)
    const badPath = await raw('/v1/customers/')
    assert.equal(badPath.status, 404)
    assert.match((await badPath.json()).error.message, /^Unrecognized request URL \(GET: \/v1\/customers\/\)/)
    assert.match(badPath.headers.get('request-id'), /^req_/)
    await assert.rejects(client('sk_live_0123456789abcdef').customers.list(), (error) => {
      assert.ok(error instanceof Stripe.errors.StripeAuthenticationError)
      assert.equal(error.statusCode, 401)
      assert.equal(error.message, 'Invalid API Key provided: sk_live_************cdef')
      return true
    })
    const noKey = await fetch(`${emulator.apiBase}/v1/customers`)
    assert.equal(noKey.status, 401)
    assert.match((await noKey.json()).error.message, /^You did not provide an API key/)
    assert.match(noKey.headers.get('request-id'), /^req_/)
  })

  test('idempotency: a retry gets the same answer, replayed; other parameters are an idempotency_error', async () => {
    const key = `idem-${Date.now()}`
    const first = await stripe.customers.create({ email: 'idem@example.com' }, { idempotencyKey: key })
    const second = await stripe.customers.create({ email: 'idem@example.com' }, { idempotencyKey: key })
    assert.equal(second.id, first.id)
    assert.equal(second.lastResponse.headers['idempotent-replayed'], 'true')
    assert.equal(first.lastResponse.headers['idempotent-replayed'], undefined)
    assert.equal((await stripe.customers.list({ email: 'idem@example.com' })).data.length, 1, 'one customer, not two')
    await assert.rejects(stripe.customers.create({ email: 'other@example.com' }, { idempotencyKey: key }), (error) => {
      assert.ok(error instanceof Stripe.errors.StripeIdempotencyError)
      assert.equal(error.type, 'StripeIdempotencyError')
      assert.equal(error.raw.type, 'idempotency_error')
      assert.match(error.message, new RegExp(`Try using a key other than '${key}'`))
      return true
    })
    // An error answer is replayed too, once the endpoint ran.
    const failKey = `idem-fail-${Date.now()}`
    const a = await raw('/v1/invoices/in_none/pay', { method: 'POST', body: '', headers: { 'idempotency-key': failKey } })
    const b = await raw('/v1/invoices/in_none/pay', { method: 'POST', body: '', headers: { 'idempotency-key': failKey } })
    assert.equal(a.status, 404)
    assert.equal(b.status, 404)
    assert.equal(b.headers.get('idempotent-replayed'), 'true')
  })

  test('products and prices: the seeded catalog, creation, lookup keys', async () => {
    const seeded = await stripe.prices.list({ lookup_keys: ['pro_monthly', 'basic_yearly'] })
    assert.deepEqual(seeded.data.map((p) => p.id).sort(), ['price_basic_yearly', 'price_pro_monthly'])
    const product = await stripe.products.create({ name: 'Team' })
    assert.match(product.id, /^prod_/)
    const price = await stripe.prices.create({ product: product.id, unit_amount: 4900, currency: 'usd', recurring: { interval: 'month' }, lookup_key: 'team_monthly' })
    assert.equal(price.type, 'recurring')
    assert.equal(price.recurring.interval, 'month')
    assert.equal((await stripe.prices.retrieve(price.id)).lookup_key, 'team_monthly')
    await assert.rejects(stripe.prices.create({ product: product.id, unit_amount: 5900, currency: 'usd', recurring: { interval: 'month' }, lookup_key: 'team_monthly' }), /already uses that lookup key/)
    const moved = await stripe.prices.create({ product: product.id, unit_amount: 5900, currency: 'usd', recurring: { interval: 'month' }, lookup_key: 'team_monthly', transfer_lookup_key: true })
    assert.deepEqual((await stripe.prices.list({ lookup_keys: ['team_monthly'] })).data.map((p) => p.id), [moved.id])
    const inline = await stripe.prices.create({ product_data: { name: 'Inline' }, unit_amount: 100, currency: 'eur' })
    assert.equal(inline.type, 'one_time')
    assert.equal((await stripe.products.retrieve(inline.product)).name, 'Inline')
    assert.equal((await stripe.products.update(product.id, { active: false })).active, false)
    assert.ok((await stripe.products.list({ active: false })).data.some((p) => p.id === product.id))
  })

  test('list paging: limit, has_more, starting_after, ending_before, newest first', async () => {
    const ids = []
    for (let i = 0; i < 5; i += 1) ids.push((await stripe.customers.create({ email: 'page@example.com' })).id)
    const newestFirst = [...ids].reverse()
    const first = await stripe.customers.list({ email: 'page@example.com', limit: 2 })
    assert.deepEqual(first.data.map((c) => c.id), newestFirst.slice(0, 2))
    assert.equal(first.has_more, true)
    assert.equal(first.url, '/v1/customers')
    const second = await stripe.customers.list({ email: 'page@example.com', limit: 2, starting_after: first.data[1].id })
    assert.deepEqual(second.data.map((c) => c.id), newestFirst.slice(2, 4))
    const back = await stripe.customers.list({ email: 'page@example.com', limit: 2, ending_before: second.data[0].id })
    assert.deepEqual(back.data.map((c) => c.id), newestFirst.slice(0, 2))
    const all = []
    for await (const customer of stripe.customers.list({ email: 'page@example.com', limit: 2 })) all.push(customer.id)
    assert.deepEqual(all, newestFirst, 'the SDK auto-pages through has_more')
    await assert.rejects(stripe.customers.list({ limit: 101 }), (error) => error.param === 'limit')
  })

  test('checkout sessions: the three modes, retrieve, expire, pay on the page', async () => {
    const customer = await stripe.customers.create({ email: 'buyer@example.com' })
    const session = await stripe.checkout.sessions.create({
      mode: 'subscription',
      customer: customer.id,
      client_reference_id: 'user_7',
      line_items: [{ price: 'price_pro_monthly', quantity: 1 }],
      subscription_data: { trial_period_days: 14, metadata: { userId: 'user_7' } },
      metadata: { userId: 'user_7' },
      success_url: 'https://app.example/done?session={CHECKOUT_SESSION_ID}',
      cancel_url: 'https://app.example/pricing',
    })
    assert.match(session.id, /^cs_test_/)
    assert.equal(session.url, `${emulator.apiBase}/checkout/${session.id}`)
    assert.equal(session.status, 'open')
    assert.equal(session.payment_status, 'unpaid')
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).client_reference_id, 'user_7')
    const items = await stripe.checkout.sessions.listLineItems(session.id)
    assert.equal(items.data[0].price.id, 'price_pro_monthly')
    const expanded = await stripe.checkout.sessions.retrieve(session.id, { expand: ['line_items'] })
    assert.deepEqual(expanded.line_items.data.map((i) => [i.price.id, i.quantity, i.amount_total]), [['price_pro_monthly', 1, 2900]])
    const page = await fetch(session.url)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /14-day free trial/)
    const paid = await pay(session.url, { card_number: '4242 4242 4242 4242' })
    assert.equal(paid.status, 303)
    assert.equal(paid.headers.get('location'), `https://app.example/done?session=${session.id}`)
    const done = await stripe.checkout.sessions.retrieve(session.id, { expand: ['subscription'] })
    assert.equal(done.status, 'complete')
    assert.equal(done.payment_status, 'no_payment_required')
    assert.equal(done.subscription.status, 'trialing')
    assert.deepEqual(done.subscription.metadata, { userId: 'user_7' })
    assert.equal((await pay(session.url, { card_number: '4242424242424242' })).status, 410, 'a completed session cannot be paid again')

    const payment = await stripe.checkout.sessions.create({ mode: 'payment', customer_email: 'once@example.com', line_items: [{ price: (await stripe.prices.create({ product_data: { name: 'Once' }, unit_amount: 500, currency: 'usd' })).id, quantity: 2 }], success_url: 'https://app.example/ok' })
    assert.equal(payment.amount_total, 1000)
    assert.equal((await pay(payment.url, { card_number: '4242424242424242' })).status, 303)
    const paidOnce = await stripe.checkout.sessions.retrieve(payment.id)
    assert.equal(paidOnce.payment_status, 'paid')
    assert.equal(paidOnce.subscription, null)

    // Stripe's own setup-mode example passes the currency.
    const setup = await stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, currency: 'USD', success_url: 'https://app.example/saved' })
    assert.equal(setup.currency, 'usd')
    assert.equal((await pay(setup.url, { card_number: '4242424242424242' })).status, 303)
    assert.equal((await stripe.checkout.sessions.retrieve(setup.id)).status, 'complete')
    await assert.rejects(
      stripe.checkout.sessions.create({ mode: 'subscription', customer: customer.id, currency: 'eur', line_items: [{ price: 'price_basic_monthly' }], success_url: 'https://app.example/x' }),
      (e) => e.type === 'StripeInvalidRequestError' && e.param === 'currency' && /price_basic_monthly/.test(e.message),
    )
    await assert.rejects(stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, currency: 'dollars', success_url: 'https://app.example/x' }), (e) => e.param === 'currency')

    const declined = await stripe.checkout.sessions.create({ mode: 'subscription', customer: customer.id, line_items: [{ price: 'price_basic_monthly' }], success_url: 'https://app.example/x' })
    const refused = await pay(declined.url, { card_number: '4000000000000002' })
    assert.equal(refused.status, 402)
    assert.match(await refused.text(), /Your card was declined/)
    assert.equal((await stripe.checkout.sessions.retrieve(declined.id)).status, 'open', 'a declined card leaves the session open')
    const expired = await stripe.checkout.sessions.expire(declined.id)
    assert.equal(expired.status, 'expired')
    assert.equal(expired.url, null)
    await assert.rejects(stripe.checkout.sessions.expire(declined.id), /Only Checkout Sessions with a status of `open` can be expired/)
    assert.equal((await pay(`${emulator.apiBase}/checkout/${declined.id}`, { card_number: '4242424242424242' })).status, 410)
    await assert.rejects(
      stripe.checkout.sessions.create({ mode: 'subscription', customer: customer.id, customer_email: 'x@example.com', line_items: [{ price: 'price_basic_monthly' }], success_url: 'https://a.example' }),
      /only specify one of these parameters: customer, customer_email/,
    )
    const listed = await stripe.checkout.sessions.list({ customer: customer.id, limit: 100 })
    assert.ok(listed.data.some((s) => s.id === session.id))
  })

  test('billing portal sessions', async () => {
    const customer = await stripe.customers.create({ email: 'portal@example.com' })
    const session = await stripe.billingPortal.sessions.create({ customer: customer.id, return_url: 'https://app.example/account' })
    assert.match(session.id, /^bps_/)
    assert.equal(session.url, `${emulator.apiBase}/portal/${session.id}`)
    assert.equal(session.return_url, 'https://app.example/account')
    const page = await fetch(session.url)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /https:\/\/app\.example\/account/)
    await assert.rejects(stripe.billingPortal.sessions.create({ customer: 'cus_none' }), (e) => e.code === 'resource_missing')
  })

  test('subscriptions: create, retrieve, list with status=all, change items, schedule and undo a cancel, cancel', async () => {
    const customer = await stripe.customers.create({ email: 'subs@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })
    assert.match(customer.invoice_settings.default_payment_method, /^pm_/)
    const cards = await stripe.customers.listPaymentMethods(customer.id, { type: 'card' })
    assert.deepEqual(cards.data.map((m) => [m.id, m.customer, m.card.last4]), [[customer.invoice_settings.default_payment_method, customer.id, '4242']])
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id })).data.map((m) => m.id), [customer.invoice_settings.default_payment_method])
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id, type: 'sepa_debit' })).data, [], 'only cards exist here')
    await assert.rejects(stripe.customers.listPaymentMethods('cus_none'), (e) => e.code === 'resource_missing')
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], metadata: { userId: 'u_s' }, expand: ['latest_invoice'] })
    assert.equal(sub.status, 'active')
    assert.equal(sub.latest_invoice.status, 'paid')
    assert.equal(sub.latest_invoice.billing_reason, 'subscription_create')
    assert.equal(sub.latest_invoice.amount_paid, 900)
    assert.equal(sub.latest_invoice.parent.subscription_details.subscription, sub.id)
    const item = sub.items.data[0]
    assert.match(item.id, /^si_/)
    assert.ok(item.current_period_end > item.current_period_start)
    assert.equal(sub.current_period_end, undefined, 'basil and later: the period is on the item')

    // create_prorations: the change applies, the proration waits for the next invoice.
    const up = await stripe.subscriptions.update(sub.id, { items: [{ id: item.id, price: 'price_pro_monthly' }], proration_behavior: 'create_prorations' })
    assert.equal(up.items.data[0].price.id, 'price_pro_monthly')
    assert.equal(up.items.data[0].id, item.id, 'the same item, not a new one')
    assert.equal(up.items.data.length, 1)
    const preview = await stripe.invoices.createPreview({ customer: customer.id, subscription: sub.id })
    assert.match(preview.id, /^upcoming_in_/)
    assert.equal(preview.billing_reason, 'upcoming')
    assert.ok(preview.lines.data.some((l) => l.parent.subscription_item_details.proration), 'the pending proration is on the next invoice')
    await assert.rejects(stripe.invoices.pay(preview.id), (e) => e.statusCode === 404)

    // always_invoice: invoiced and paid now.
    const down = await stripe.subscriptions.update(sub.id, { items: [{ id: item.id, price: 'price_basic_monthly' }], proration_behavior: 'always_invoice', expand: ['latest_invoice'] })
    assert.equal(down.latest_invoice.billing_reason, 'subscription_update')
    assert.ok(down.latest_invoice.total < 0, 'a downgrade credits')

    // A preview of an upgrade invoiced now, then the same change.
    const upgrade = await stripe.invoices.createPreview({
      customer: customer.id,
      subscription: sub.id,
      subscription_details: { items: [{ id: item.id, price: 'price_pro_monthly' }], proration_behavior: 'always_invoice', proration_date: Math.floor(Date.now() / 1000) },
    })
    assert.deepEqual(upgrade.lines.data.map((l) => l.parent.subscription_item_details.proration), [true, true])
    assert.equal(upgrade.currency, 'usd')

    const scheduled = await stripe.subscriptions.update(sub.id, { cancel_at_period_end: true })
    assert.equal(scheduled.cancel_at_period_end, true)
    assert.equal(scheduled.cancel_at, scheduled.items.data[0].current_period_end)
    assert.ok(scheduled.canceled_at)
    const resumed = await stripe.subscriptions.update(sub.id, { cancel_at_period_end: false, cancel_at: '' })
    assert.equal(resumed.cancel_at_period_end, false)
    assert.equal(resumed.cancel_at, null)
    const at = Math.floor(Date.now() / 1000) + 5 * 86_400
    const cancelAt = await stripe.subscriptions.update(sub.id, { cancel_at: at })
    assert.equal(cancelAt.cancel_at, at)
    assert.equal(cancelAt.cancel_at_period_end, false, 'flexible billing: cancel_at, not cancel_at_period_end')
    await stripe.subscriptions.update(sub.id, { cancel_at: '' })

    const canceled = await stripe.subscriptions.cancel(sub.id, { cancellation_details: { comment: 'moving on', feedback: 'unused' } })
    assert.equal(canceled.status, 'canceled')
    assert.ok(canceled.ended_at)
    assert.deepEqual(canceled.cancellation_details, { comment: 'moving on', feedback: 'unused', reason: 'cancellation_requested' })
    await assert.rejects(stripe.subscriptions.update(sub.id, { metadata: { a: 'b' } }), /A canceled subscription can only update its cancellation_details/)
    assert.equal((await stripe.subscriptions.list({ customer: customer.id })).data.length, 0, 'the default list leaves out canceled')
    assert.deepEqual((await stripe.subscriptions.list({ customer: customer.id, status: 'all' })).data.map((s) => s.id), [sub.id])
    assert.deepEqual((await stripe.subscriptions.list({ customer: customer.id, status: 'ended' })).data.map((s) => s.id), [sub.id])
    assert.equal((await stripe.subscriptions.retrieve(sub.id)).status, 'canceled')
  })

  test('payment_behavior: pending_if_incomplete keeps the old items until the invoice is paid; error_if_incomplete refuses', async () => {
    const customer = await stripe.customers.create({ email: 'pending@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] })
    const failing = await stripe.subscriptions.update(sub.id, { default_payment_method: 'pm_card_chargeCustomerFail' })
    assert.notEqual(failing.default_payment_method, sub.default_payment_method)
    const pending = await stripe.subscriptions.update(sub.id, {
      items: [{ id: sub.items.data[0].id, price: 'price_pro_monthly' }],
      proration_behavior: 'always_invoice',
      payment_behavior: 'pending_if_incomplete',
      expand: ['latest_invoice'],
    })
    assert.equal(pending.items.data[0].price.id, 'price_basic_monthly', 'still the old price')
    assert.equal(pending.status, 'active')
    assert.equal(pending.pending_update.subscription_items[0].price.id, 'price_pro_monthly')
    assert.ok(pending.pending_update.expires_at <= Math.floor(Date.now() / 1000) + 23 * 3600)
    assert.equal(pending.latest_invoice.status, 'open')
    await assert.rejects(stripe.subscriptions.update(sub.id, { items: [{ id: sub.items.data[0].id, price: 'price_pro_yearly' }], payment_behavior: 'pending_if_incomplete', metadata: { a: 'b' } }), /cannot be passed when creating a pending update/)
    await assert.rejects(stripe.invoices.pay(pending.latest_invoice.id), (error) => {
      assert.ok(error instanceof Stripe.errors.StripeCardError)
      assert.equal(error.code, 'card_declined')
      assert.equal(error.decline_code, 'generic_decline')
      return true
    })
    const paid = await stripe.invoices.pay(pending.latest_invoice.id, { payment_method: 'pm_card_visa' })
    assert.equal(paid.status, 'paid')
    const applied = await stripe.subscriptions.retrieve(sub.id)
    assert.equal(applied.items.data[0].price.id, 'price_pro_monthly')
    assert.equal(applied.pending_update, null)

    await assert.rejects(
      stripe.subscriptions.update(sub.id, { default_payment_method: 'pm_card_chargeCustomerFail' }).then(() =>
        stripe.subscriptions.update(sub.id, { items: [{ id: sub.items.data[0].id, price: 'price_pro_yearly' }], payment_behavior: 'error_if_incomplete' }),
      ),
      (error) => error instanceof Stripe.errors.StripeCardError,
    )
    assert.equal((await stripe.subscriptions.retrieve(sub.id)).items.data[0].price.id, 'price_pro_monthly', 'nothing changed')

    // allow_incomplete (the default): applied, past_due, the invoice open.
    const pastDue = await stripe.subscriptions.update(sub.id, { items: [{ id: sub.items.data[0].id, price: 'price_pro_yearly' }] })
    assert.equal(pastDue.status, 'past_due')
    assert.equal(pastDue.items.data[0].price.id, 'price_pro_yearly')
    const open = await stripe.invoices.list({ subscription: sub.id, status: 'open' })
    assert.equal(open.data.length, 1)
    await stripe.invoices.pay(open.data[0].id, { payment_method: 'pm_card_visa' })
    assert.equal((await stripe.subscriptions.retrieve(sub.id)).status, 'active')
  })

  test('a customer without a payment method: Stripe refuses the subscription; default_incomplete makes it incomplete', async () => {
    const customer = await stripe.customers.create({ email: 'nopm@example.com' })
    await assert.rejects(stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }] }), /no attached payment source or default payment method/)
    assert.equal((await stripe.subscriptions.list({ customer: customer.id, status: 'all' })).data.length, 0)
    const incomplete = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], payment_behavior: 'default_incomplete' })
    assert.equal(incomplete.status, 'incomplete')
    const trial = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_pro_monthly' }], trial_period_days: 7 })
    assert.equal(trial.status, 'trialing')
    assert.equal(trial.trial_end - trial.trial_start, 7 * 86_400)
  })

  test('invoices: retrieve, list by customer and status', async () => {
    const customer = await stripe.customers.create({ email: 'inv@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_pro_monthly' }] })
    const invoices = await stripe.invoices.list({ customer: customer.id })
    assert.equal(invoices.data.length, 1)
    const invoice = await stripe.invoices.retrieve(invoices.data[0].id)
    assert.equal(invoice.id, sub.latest_invoice)
    assert.equal(invoice.status, 'paid')
    assert.equal(invoice.amount_due, 2900)
    assert.match(invoice.hosted_invoice_url, /\/invoice\/in_/)
    assert.equal((await stripe.invoices.list({ customer: customer.id, status: 'open' })).data.length, 0)
    await assert.rejects(stripe.invoices.pay(invoice.id), /already paid/)
  })

  test('events: retrieve, list by type (with a wildcard) or types[], by created, newest first', async () => {
    const customer = await stripe.customers.create({ email: 'events@example.com' })
    const events = await stripe.events.list({ type: 'customer.*', limit: 100 })
    assert.ok(events.data.every((e) => e.type.startsWith('customer.')))
    const created = events.data.find((e) => e.type === 'customer.created' && e.data.object.id === customer.id)
    assert.ok(created)
    assert.equal(created.api_version, '2026-10-28.endive')
    assert.match(created.request.id, /^req_/)
    const again = await stripe.events.retrieve(created.id)
    assert.equal(again.data.object.email, 'events@example.com')
    const typed = await stripe.events.list({ types: ['customer.created', 'customer.deleted'], created: { gte: created.created }, limit: 100 })
    assert.ok(typed.data.every((e) => ['customer.created', 'customer.deleted'].includes(e.type)))
    const times = (await stripe.events.list({ limit: 100 })).data.map((e) => e.created)
    assert.deepEqual(times, [...times].sort((a, b) => b - a))
    await assert.rejects(stripe.events.list({ type: 'a.b', types: ['c.d'] }), /only specify one of these parameters: type, types/)
    await assert.rejects(stripe.events.retrieve('evt_none'), (e) => e.code === 'resource_missing')
  })

  test('webhook endpoints: create (with its own secret), list, delete', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url: 'https://app.example/hooks', enabled_events: ['customer.subscription.updated'], api_version: '2025-03-31.basil' })
    assert.match(endpoint.id, /^we_/)
    assert.match(endpoint.secret, /^whsec_/)
    assert.notEqual(endpoint.secret, emulator.webhookSecret)
    assert.equal(endpoint.api_version, '2025-03-31.basil')
    const listed = await stripe.webhookEndpoints.list()
    const found = listed.data.find((e) => e.id === endpoint.id)
    assert.deepEqual(found.enabled_events, ['customer.subscription.updated'])
    assert.equal(found.secret, undefined, 'the secret is shown once')
    assert.equal((await stripe.webhookEndpoints.del(endpoint.id)).deleted, true)
    assert.ok(!(await stripe.webhookEndpoints.list()).data.some((e) => e.id === endpoint.id))
    await assert.rejects(stripe.webhookEndpoints.create({ url: 'https://app.example/x' }), (e) => e.code === 'parameter_missing' && e.param === 'enabled_events')
  })

  test('Stripe-Version: before basil the period is on the subscription and an invoice names its subscription at the top', async () => {
    const legacy = client(KEY, { apiVersion: '2024-09-30.acacia' })
    const customer = await legacy.customers.create({ email: 'legacy@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } })
    const sub = await legacy.subscriptions.create({ customer: customer.id, items: [{ price: 'price_basic_monthly' }], expand: ['latest_invoice'] })
    assert.equal(sub.lastResponse.headers['stripe-version'], '2024-09-30.acacia')
    assert.equal(typeof sub.current_period_end, 'number')
    assert.equal(sub.items.data[0].current_period_end, undefined)
    assert.equal(sub.latest_invoice.subscription, sub.id)
    assert.equal(sub.latest_invoice.parent, undefined)
    const current = await stripe.subscriptions.retrieve(sub.id)
    assert.equal(current.current_period_end, undefined)
    assert.equal(current.items.data[0].current_period_end, sub.current_period_end)
    const bad = await raw('/v1/customers', { headers: { 'stripe-version': 'someday' } })
    assert.equal(bad.status, 400)
    assert.match((await bad.json()).error.message, /Invalid Stripe API version: someday/)
  })

  test('options are checked by name; the default port is 12111', async () => {
    await assert.rejects(startStripeEmulator({ port: 0, chaos: { duplicate: 0.5 } }), (error) => {
      assert.equal(error.code, 'invalid_config')
      assert.match(error.message, /chaos\.duplicate/)
      return true
    })
    await assert.rejects(startStripeEmulator({ port: 0, webhooks: [{ url: 'not a url' }] }), /webhooks\[0\]\.url/)
    await assert.rejects(startStripeEmulator({ port: 0, catalog: [{ name: 'X', prices: [{ unitAmount: -1 }] }] }), /catalog\[0\]\.prices\[0\]\.unitAmount/)
    const other = await startStripeEmulator({ port: emulator.port }).catch((error) => error)
    assert.equal(other.code, 'emulator_listen_failed', 'a taken port is a clear error')
    const custom = await startStripeEmulator({ port: 0, catalog: [{ id: 'prod_x', name: 'X', prices: [{ id: 'price_x', unitAmount: 1234, interval: 'year' }] }] })
    try {
      const prices = await client(KEY, { port: custom.port }).prices.list()
      assert.deepEqual(prices.data.map((p) => [p.id, p.unit_amount, p.recurring.interval]), [['price_x', 1234, 'year']])
    } finally {
      await custom.close()
    }
    const byDefault = await startStripeEmulator().catch((error) => error)
    if (byDefault.code === 'emulator_listen_failed') {
      assert.match(byDefault.message, /12111/)
    } else {
      assert.equal(byDefault.apiBase, 'http://127.0.0.1:12111')
      await byDefault.close()
    }
  })
})
