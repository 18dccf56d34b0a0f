// The Stripe client and the billing operations against a local fake Stripe:
// exact requests, idempotency across retries, the retry policy, timeouts,
// error mapping, and the guards of the authenticated endpoints.
import http from 'node:http'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createStripeBilling, StripeApiError } from '../index.js'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const KEY = 'sk_test_client_suite_SECRETKEY'
const WEBHOOK = 'whsec_client_suite'
let fake
const instances = []

async function billingWith(options = {}) {
  const billing = await createStripeBilling({
    secretKey: KEY,
    webhookSecret: WEBHOOK,
    apiBase: fake.url,
    baseUrl: 'https://app.example',
    database: { provider: 'sqlite', url: ':memory:' },
    auth: async (request) => (request.headers.get('x-user') ? { id: request.headers.get('x-user') } : null),
    ...options,
  })
  instances.push(billing)
  for (const id of ['alice', 'bob', 'carol', 'dave']) await billing.upsertUser({ id, email: `${id}@example.com`, name: id.toUpperCase() })
  return billing
}

const stripeError = (status, error, headers = {}) => (req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_err_${status}`, ...headers })
  res.end(JSON.stringify({ error }))
}
const since = (path) => {
  const start = fake.requests.length
  return () => fake.requests.slice(start).filter((r) => r.path === path)
}
const post = (billing, path, body, user = 'alice', origin = 'https://app.example') =>
  billing.handleRequest(new Request(`${origin}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...(user ? { 'x-user': user } : {}) } }))

before(async () => {
  fake = await startFakeStripe()
})
after(async () => {
  for (const b of instances) await b.close()
  await fake.close()
})

test('checkout sends exactly the documented form, with an idempotency key', async () => {
  const billing = await billingWith()
  const customers = since('/v1/customers')
  const sessions = since('/v1/checkout/sessions')
  const session = await billing.createCheckoutSession('alice', 'price_basic', {
    trialDays: 14,
    metadata: { campaign: 'spring & "summer"' },
    successUrl: 'https://app.example/ok?session={CHECKOUT_SESSION_ID}',
    cancelUrl: 'https://app.example/no',
  })
  assert.match(session.sessionId, /^cs_test_fake_/)
  const [customer] = customers()
  assert.deepEqual([...customer.form], [['email', 'alice@example.com'], ['name', 'ALICE'], ['metadata[kavach_user_id]', 'alice']])
  assert.match(customer.headers['idempotency-key'], /^kavach-customer-/)
  const [request] = sessions()
  assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded')
  assert.equal(request.headers['stripe-version'], '2026-03-25.dahlia')
  assert.equal(request.headers.authorization, `Bearer ${KEY}`)
  assert.ok(request.headers['idempotency-key'])
  assert.deepEqual([...request.form], [
    ['mode', 'subscription'],
    ['customer', await billing.getCustomerId('alice')],
    ['client_reference_id', 'alice'],
    ['line_items[0][price]', 'price_basic'],
    ['line_items[0][quantity]', '1'],
    ['success_url', 'https://app.example/ok?session={CHECKOUT_SESSION_ID}'],
    ['cancel_url', 'https://app.example/no'],
    ['subscription_data[metadata][kavach_user_id]', 'alice'],
    ['subscription_data[trial_period_days]', '14'],
    ['metadata[campaign]', 'spring & "summer"'],
    ['metadata[kavach_user_id]', 'alice'],
  ])
  assert.match(request.body, /metadata\[campaign\]=spring%20%26%20%22summer%22/)
  const defaults = since('/v1/checkout/sessions')
  await billing.createCheckoutSession('bob', 'price_basic')
  assert.equal(defaults()[0].form.get('success_url'), 'https://app.example/billing/success?session_id={CHECKOUT_SESSION_ID}')
  assert.equal(defaults()[0].form.get('cancel_url'), 'https://app.example/billing/cancel')
})

test('retries 500, 409 and dropped connections with the same idempotency key and a backoff', async () => {
  const billing = await billingWith()
  await billing.createCustomer('carol', 'carol@example.com')
  const portal = since('/v1/billing_portal/sessions')
  fake.enqueue(stripeError(500, { type: 'api_error', message: 'boom' }))
  fake.enqueue(stripeError(409, { type: 'invalid_request_error', message: 'conflict' }))
  fake.enqueue((req) => req.socket.destroy())
  const started = Date.now()
  await assert.rejects(billing.createPortalSession('carol', 'https://app.example/account'), { code: 'stripe_unreachable' })
  // default maxNetworkRetries 2: three attempts, two backoffs of at least 0.5 s
  assert.ok(Date.now() - started >= 1000, `backed off (${Date.now() - started} ms)`)
  const attempts = portal()
  assert.equal(attempts.length, 3)
  assert.equal(new Set(attempts.map((r) => r.headers['idempotency-key'])).size, 1, 'one key for every retry')
  const ok = await billing.createPortalSession('carol', 'https://app.example/account')
  assert.match(ok.url, /^https:\/\/billing\.stripe\.test\//)
  assert.notEqual(portal().at(-1).headers['idempotency-key'], attempts[0].headers['idempotency-key'], 'a new call, a new key')
})

test('no retry on 400, on Stripe-Should-Retry: false, or on a 429 without it; retry when it says true', async () => {
  const billing = await billingWith()
  await billing.createCustomer('dave', 'dave@example.com')
  const portal = since('/v1/billing_portal/sessions')
  fake.enqueue(stripeError(400, { type: 'invalid_request_error', code: 'parameter_invalid', param: 'return_url', message: 'Not a valid URL' }))
  await assert.rejects(billing.createPortalSession('dave', 'https://app.example/x'), { name: 'StripeApiError', code: 'parameter_invalid' })
  assert.equal(portal().length, 1)
  fake.enqueue(stripeError(500, { type: 'api_error', message: 'no' }, { 'stripe-should-retry': 'false' }))
  await assert.rejects(billing.createPortalSession('dave', 'https://app.example/x'), { statusCode: 500 })
  assert.equal(portal().length, 2)
  fake.enqueue(stripeError(429, { type: 'invalid_request_error', code: 'rate_limit', message: 'slow down' }))
  await assert.rejects(billing.createPortalSession('dave', 'https://app.example/x'), { statusCode: 429 })
  assert.equal(portal().length, 3)
  fake.enqueue(stripeError(429, { type: 'invalid_request_error', code: 'lock_timeout', message: 'retry' }, { 'stripe-should-retry': 'true' }))
  await billing.createPortalSession('dave', 'https://app.example/x')
  assert.equal(portal().length, 5)
})

test('maxNetworkRetries and the per-attempt timeout', async () => {
  const billing = await billingWith({ maxNetworkRetries: 0, timeoutMs: 300 })
  await billing.upsertUser({ id: 'erin', email: 'erin@example.com' })
  const customers = since('/v1/customers')
  fake.enqueue(() => {}) // never answers
  const started = Date.now()
  await assert.rejects(billing.createCustomer('erin', 'erin@example.com'), (error) => {
    assert.equal(error.code, 'stripe_unreachable')
    assert.match(error.message, /timed out/)
    return true
  })
  assert.ok(Date.now() - started < 5000)
  assert.equal(customers().length, 1)
})

test('Stripe errors reach JS as StripeApiError with every field', async () => {
  const billing = await billingWith()
  await billing.createCustomer('alice', 'alice@example.com')
  fake.enqueue(stripeError(402, { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds', param: 'payment_method', message: 'Your card has insufficient funds.' }))
  await assert.rejects(billing.createPortalSession('alice', 'https://app.example/x'), (error) => {
    assert.ok(error instanceof StripeApiError)
    assert.ok(error instanceof Error)
    assert.deepEqual(
      { name: error.name, type: error.type, code: error.code, declineCode: error.declineCode, param: error.param, statusCode: error.statusCode, requestId: error.requestId, message: error.message },
      { name: 'StripeApiError', type: 'card_error', code: 'card_declined', declineCode: 'insufficient_funds', param: 'payment_method', statusCode: 402, requestId: 'req_err_402', message: 'Your card has insufficient funds.' },
    )
    return true
  })
})

test('redirects are never followed: a 3xx is a StripeApiError, not retried, nothing linked; endpoints answer 502', async () => {
  // Another origin that would receive whatever a followed redirect re-sends.
  const elsewhere = []
  const other = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      elsewhere.push({ path: req.url, body: Buffer.concat(chunks).toString(), authorization: req.headers.authorization })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ id: 'cus_attacker', object: 'customer', url: 'https://evil.example/pay' }))
    })
  })
  await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve))
  const target = `http://127.0.0.1:${other.address().port}`
  const redirect = (status) => (req, res) => {
    res.writeHead(status, { location: `${target}${req.url}`, 'stripe-should-retry': 'true', 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { type: 'invalid_request_error', code: 'chosen_by_the_network', message: 'follow me' } }))
  }
  try {
    const billing = await billingWith({ maxNetworkRetries: 2 })
    const customers = since('/v1/customers')
    fake.enqueue(redirect(307))
    await assert.rejects(billing.createCustomer('carol', 'carol@example.com'), (error) => {
      assert.ok(error instanceof StripeApiError)
      assert.deepEqual({ code: error.code, type: error.type, statusCode: error.statusCode }, { code: 'stripe_api_error', type: 'api_error', statusCode: 307 })
      return true
    })
    assert.equal(customers().length, 1, 'not retried, even when the 3xx says Stripe-Should-Retry: true')
    assert.equal(await billing.getCustomerId('carol'), null, 'nothing linked')

    await billing.createCustomer('dave', 'dave@example.com')
    const sessions = since('/v1/checkout/sessions')
    fake.enqueue(redirect(302))
    const res = await post(billing, '/auth/stripe/checkout', { priceId: 'price_basic' }, 'dave')
    assert.equal(res.status, 502)
    const body = await res.json()
    assert.equal(body.code, 'stripe_api_error')
    assert.ok(!JSON.stringify(body).includes('evil.example'))
    assert.equal(sessions().length, 1)
    assert.deepEqual(elsewhere, [], 'nothing reached the other origin')
  } finally {
    other.closeAllConnections()
    await new Promise((resolve) => other.close(resolve))
  }
})

test("endpoints map Stripe's answers and never show the key", async () => {
  const billing = await billingWith({ maxNetworkRetries: 0 })
  await billing.createCustomer('alice', 'alice@example.com')
  const cases = [
    [stripeError(400, { type: 'invalid_request_error', message: 'bad' }), 400],
    [stripeError(402, { type: 'card_error', code: 'card_declined', message: 'declined' }), 402],
    [stripeError(404, { type: 'invalid_request_error', code: 'resource_missing', message: 'No such customer' }), 404],
    [stripeError(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${KEY}` }), 500],
    [stripeError(403, { type: 'invalid_request_error', message: 'The provided key does not have access' }), 500],
    [stripeError(429, { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests' }, { 'retry-after': '7' }), 503],
    [stripeError(503, { type: 'api_error', message: 'down' }), 502],
    [(req) => req.socket.destroy(), 502],
  ]
  for (const [handler, status] of cases) {
    fake.enqueue(handler)
    const res = await post(billing, '/auth/stripe/portal', { returnUrl: 'https://app.example/account' })
    const text = await res.text()
    assert.equal(res.status, status, text)
    assert.ok(!text.includes(KEY) && !text.includes('SECRETKEY'), text)
    const body = JSON.parse(text)
    assert.equal(typeof body.code, 'string')
    if (status === 500) assert.match(body.error, /secretKey/)
    if (status === 503) assert.equal(res.headers.get('retry-after'), '7')
    if (status >= 400 && status < 500) assert.match(body.requestId, /^req_err_/)
  }
})

test("Stripe's error text leaves the package with keys and secrets redacted; 401/403 stay generic for browsers", async () => {
  const billing = await billingWith({ maxNetworkRetries: 0 })
  await billing.createCustomer('alice', 'alice@example.com')
  const chatty = `Echoed by a proxy: key ${KEY}, masked sk_live_****9876, restricted rk_test_AbC123, webhook ${WEBHOOK}_x`
  for (const status of [400, 403]) {
    fake.enqueue(stripeError(status, { type: 'invalid_request_error', message: chatty }))
    const res = await post(billing, '/auth/stripe/portal', { returnUrl: 'https://app.example/account' })
    const text = await res.text()
    for (const leak of [KEY, 'SECRETKEY', 'sk_live_', 'rk_test_', 'whsec_']) assert.ok(!text.includes(leak), `${status}: ${text}`)
    if (status === 400) assert.match(JSON.parse(text).error, /key \[redacted\], masked \[redacted\], restricted \[redacted\], webhook \[redacted\]/)
    else assert.equal(JSON.parse(text).error, "Stripe refused this server's credentials; check the `secretKey` configuration")
  }
  for (const status of [400, 401, 403]) {
    fake.enqueue(stripeError(status, { type: 'invalid_request_error', message: chatty }))
    await assert.rejects(billing.createPortalSession('alice', 'https://app.example/x'), (error) => {
      assert.ok(error instanceof StripeApiError)
      for (const leak of [KEY, 'sk_live_', 'rk_test_', 'whsec_']) {
        assert.ok(!error.message.includes(leak), error.message)
        assert.ok(!JSON.stringify({ ...error }).includes(leak), JSON.stringify({ ...error }))
      }
      // The calling code keeps Stripe's (redacted) words and the request id.
      assert.equal(error.requestId, `req_err_${status}`)
      return true
    })
  }
})

test('messages repeat at most the first 100 characters of an input', async () => {
  const billing = await billingWith()
  const long = 'u'.repeat(10_000)
  await assert.rejects(billing.getSubscription(long), (error) => {
    assert.equal(error.code, 'user_not_found')
    assert.ok(error.message.includes(`${'u'.repeat(100)}…`))
    assert.ok(error.message.length < 200, `${error.message.length}`)
    return true
  })
  const res = await billing.handleRequest(new Request('https://app.example/auth/stripe/subscription', { headers: { 'x-user': long } }))
  const text = await res.text()
  assert.equal(res.status, 404)
  assert.ok(text.length < 300, `${text.length}`)
  await assert.rejects(createStripeBilling({ secretKey: KEY, [`o${'p'.repeat(5000)}`]: 1 }), (error) => error.code === 'invalid_config' && error.message.length < 400)
})

test('concurrent checkouts for a user without a customer create exactly one customer', async () => {
  const billing = await billingWith()
  await billing.upsertUser({ id: 'frank', email: 'frank@example.com' })
  const customers = since('/v1/customers')
  const sessions = await Promise.all(Array.from({ length: 5 }, () => billing.createCheckoutSession('frank', 'price_basic')))
  assert.equal(sessions.length, 5)
  assert.equal(customers().length, 1)
  const [a, b] = await Promise.all([billing.createCustomer('frank', 'frank@example.com'), billing.createCustomer('frank', 'other@example.com')])
  assert.equal(a, b)
  assert.equal(customers().length, 1)
})

test('arguments are checked in order: user, customer, then the rest; nothing is created on bad input', async () => {
  const billing = await billingWith({ autoCreateCustomer: false, baseUrl: undefined })
  await assert.rejects(billing.createCheckoutSession('nobody', '', {}), { code: 'user_not_found' })
  await assert.rejects(billing.createCheckoutSession('alice', '', {}), { code: 'no_customer' })
  await assert.rejects(billing.createPortalSession('alice', 'not a url'), { code: 'no_customer' })
  const auto = await billingWith({ baseUrl: undefined })
  const customers = since('/v1/customers')
  await assert.rejects(auto.createCheckoutSession('bob', 'price basic'), (e) => e.code === 'invalid_argument' && /priceId/.test(e.message))
  await assert.rejects(auto.createCheckoutSession('bob', 'price_basic'), (e) => e.code === 'invalid_argument' && /successUrl/.test(e.message))
  await assert.rejects(auto.createCheckoutSession('bob', 'price_basic', { successUrl: 'https://a/ok', cancelUrl: 'https://a/no', trialDays: 0 }), /trialDays/)
  await assert.rejects(auto.createCheckoutSession('bob', 'price_basic', { successUrl: 'https://a/ok', cancelUrl: 'https://a/no', metadata: { kavach_user_id: 'mallory' } }), { code: 'invalid_argument' })
  assert.equal(customers().length, 0)
  await assert.rejects(auto.createCustomer('bob', 'not-an-email'), { code: 'invalid_argument' })
  await assert.rejects(auto.createPortalSession('bob', 'https://a/x'), { code: 'no_customer' })
})

test('endpoint guards: origins, prices, trials, metadata, live subscriptions', async () => {
  const billing = await billingWith({ prices: ['price_basic'], maxClientTrialDays: 7, clientMetadataKeys: ['campaign'], trustedOrigins: ['https://www.app.example'] })
  const expect400 = async (body, field, path = '/auth/stripe/checkout', origin) => {
    const res = await post(billing, path, body, 'alice', origin)
    const json = await res.json()
    assert.equal(res.status, 400, JSON.stringify(json))
    assert.equal(json.code, 'invalid_argument')
    assert.ok(json.error.includes(field), json.error)
  }
  await expect400({ priceId: 'price_basic', successUrl: 'https://evil.example/ok' }, 'successUrl')
  await expect400({ priceId: 'price_basic', cancelUrl: 'javascript:alert(1)' }, 'cancelUrl')
  await expect400({ priceId: 'price_basic', successUrl: '/relative' }, 'successUrl')
  await expect400({ returnUrl: 'https://evil.example/' }, 'returnUrl', '/auth/stripe/portal')
  await expect400({ priceId: 'price_enterprise' }, 'priceId')
  await expect400({ priceId: 'price_basic', trialDays: 30 }, 'trialDays')
  await expect400({ priceId: 'price_basic', trialDays: 1.5 }, 'trialDays')
  await expect400({ priceId: 'price_basic', metadata: { kavach_user_id: 'bob' } }, 'metadata.kavach_user_id')
  await expect400({ priceId: 'price_basic', metadata: { other: 'x' } }, 'metadata.other')
  await expect400({ priceId: 'price_basic', metadata: { campaign: 'x'.repeat(501) } }, 'metadata.campaign')
  await expect400({ priceId: 'price_basic', unknown: 1 }, 'unknown')
  const sessions = since('/v1/checkout/sessions')
  const ok = await post(billing, '/auth/stripe/checkout', { priceId: 'price_basic', trialDays: 7, metadata: { campaign: 'x' }, successUrl: 'https://www.app.example/done' })
  assert.equal(ok.status, 200)
  assert.equal(sessions()[0].form.get('subscription_data[trial_period_days]'), '7')
  const fromOtherOrigin = await post(billing, '/auth/stripe/checkout', { priceId: 'price_basic' }, 'bob', 'http://localhost:3000')
  assert.equal(fromOtherOrigin.status, 200)
  assert.equal(sessions()[1].form.get('cancel_url'), 'http://localhost:3000/billing/cancel', 'defaults follow the request origin')

  // The portal of a user without a customer: 409 no_customer.
  const noCustomer = await post(billing, '/auth/stripe/portal', { returnUrl: 'https://app.example/account' }, 'carol')
  assert.deepEqual([noCustomer.status, (await noCustomer.json()).code], [409, 'no_customer'])
  // No user: 401 on every authenticated endpoint.
  for (const path of ['/auth/stripe/checkout', '/auth/stripe/portal']) {
    const anonymous = await post(billing, path, { priceId: 'price_basic', returnUrl: 'https://app.example/' }, null)
    assert.equal(anonymous.status, 401)
  }
  // A live subscription: 409, no second checkout.
  const customer = await billing.getCustomerId('alice')
  const body = JSON.stringify(event('customer.subscription.created', subscription({ id: 'sub_live', customer })))
  await billing.handleRequest(new Request('https://app.example/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, WEBHOOK) } }))
  const again = await post(billing, '/auth/stripe/checkout', { priceId: 'price_basic' })
  assert.equal(again.status, 409)
  assert.equal((await again.json()).code, 'subscription_active')
  await assert.rejects(billing.createCheckoutSession('alice', 'price_basic'), { code: 'subscription_active' })
})
