// createStripeBilling: the same billing without kavachOS.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createStripeBilling } from '../index.js'
import { startFakeStripe } from './helpers/fake-stripe.mjs'

let fake
let billing
let anonymous

before(async () => {
  fake = await startFakeStripe()
  const options = { secretKey: 'sk_test_standalone_0123', apiBase: fake.url, database: { provider: 'sqlite', url: ':memory:' } }
  billing = await createStripeBilling({ ...options, auth: async (request) => (request.headers.get('x-user') ? { id: request.headers.get('x-user') } : null) })
  anonymous = await createStripeBilling(options)
  await billing.upsertUser({ id: 'alice', email: 'alice@example.com', name: 'Alice' })
})
after(async () => {
  await billing.close()
  await anonymous.close()
  await fake.close()
})

test('routes under a basePath and ignores other requests', async () => {
  const res = await billing.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/subscription', { headers: { 'x-user': 'alice' } }), '/api/kavach')
  assert.equal(res.status, 200)
  assert.deepEqual(await res.json(), { subscription: null })
  assert.equal(await billing.handleRequest(new Request('http://app.test/api/kavach/auth/other'), '/api/kavach'), null)
  assert.equal(await billing.handleRequest(new Request('http://app.test/auth/stripe/subscription', { method: 'DELETE' })), null)
  assert.equal(await billing.handleRequest(new Request('http://app.test/elsewhere/auth/stripe/subscription'), '/api/kavach'), null)
})

test('without a user (or without an auth option) the authenticated routes answer 401', async () => {
  for (const b of [billing, anonymous]) {
    const res = await b.handleRequest(new Request('http://app.test/auth/stripe/checkout', { method: 'POST', body: '{"priceId":"price_1"}' }))
    assert.equal(res.status, 401)
    assert.deepEqual(await res.json(), { error: 'Authentication required', code: 'unauthenticated' })
  }
})

test('JSON errors: invalid JSON, missing and ill-typed fields, oversized bodies', async () => {
  const post = (path, body) => billing.handleRequest(new Request(`http://app.test${path}`, { method: 'POST', body, headers: { 'x-user': 'alice', 'content-type': 'application/json' } }))
  let res = await post('/auth/stripe/checkout', '{not json')
  assert.equal(res.status, 400)
  assert.deepEqual(await res.json(), { error: 'Invalid JSON body', code: 'invalid_json' })
  res = await post('/auth/stripe/portal', '{}')
  assert.equal(res.status, 400)
  assert.match((await res.json()).error, /returnUrl/)
  res = await post('/auth/stripe/checkout', '{"priceId": 5}')
  assert.match((await res.json()).error, /priceId/)
  res = await post('/auth/stripe/checkout', JSON.stringify({ priceId: 'p', pad: 'x'.repeat(70 * 1024) }))
  assert.equal(res.status, 413)
  assert.equal((await res.json()).code, 'payload_too_large')
})

test('the api works standalone: customer, checkout, portal', async () => {
  const customer = await billing.createCustomer('alice', 'alice@example.com', 'Alice')
  assert.equal(await billing.getCustomerId('alice'), customer)
  const session = await billing.createCheckoutSession('alice', 'price_1', { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' })
  assert.match(session.url, /^https:\/\/checkout\.stripe\.test\//)
  const portal = await billing.createPortalSession('alice', 'https://app.test/account')
  assert.match(portal.url, /^https:\/\/billing\.stripe\.test\//)
  await assert.rejects(billing.getCustomerId('nobody'), { code: 'user_not_found' })
})

test('a webhook without a configured secret is rejected', async () => {
  const res = await billing.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body: '{}', headers: { 'stripe-signature': 't=1,v1=00' } }))
  assert.equal(res.status, 400)
  assert.equal((await res.json()).code, 'secret_not_configured')
})

test('upsertUser refuses NUL in the id, email or name (no database stores it) and writes nothing', async () => {
  for (const user of [{ id: 'nul\u0000id', email: 'n@example.com' }, { id: 'nul_email', email: 'n\u0000@example.com' }, { id: 'nul_name', email: 'n@example.com', name: 'N\u0000' }]) {
    await assert.rejects(billing.upsertUser(user), (error) => error.code === 'invalid_argument')
  }
  await assert.rejects(billing.getSubscription('nul_email'), (error) => error.code === 'user_not_found')
  await assert.rejects(billing.getSubscription('nul_name'), (error) => error.code === 'user_not_found')
})
