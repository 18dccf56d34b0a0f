// A catalogue of hostile and broken requests through the endpoints: each
// gets its exact status and code; afterwards the process is alive, nothing was
// written, and the next valid request succeeds.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Database from 'better-sqlite3'
import { createStripeBilling } from '../index.js'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const KEY = 'sk_test_hostile_SECRETKEY_0123'
const SECRET = 'whsec_hostile_current'
const OLD_SECRET = 'whsec_hostile_rotated_out'
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-hostile-'))
const file = path.join(dir, 'app.db')
let fake
let billing
let reader

const now = () => Math.floor(Date.now() / 1000)
const request = (route, { method = 'POST', body, headers = {}, user = 'alice' } = {}) =>
  new Request(`https://app.example/api${route}`, { method, body, headers: { ...(user === null ? {} : { 'x-user': user }), ...headers }, duplex: 'half' })
const webhook = (body, header, extra = {}) => request('/auth/stripe/webhook', { body, headers: { ...(header === undefined ? {} : { 'stripe-signature': header }), ...extra }, user: null })
const signed = (body, secret = SECRET, t = now()) => webhook(body, signature(body, secret, t))
const JSON_TYPE = { 'content-type': 'application/json' }
const checkout = (body, user = 'alice') => request('/auth/stripe/checkout', { body: typeof body === 'string' ? body : JSON.stringify(body), user, headers: JSON_TYPE })
const portal = (body, user = 'alice') => request('/auth/stripe/portal', { body: typeof body === 'string' ? body : JSON.stringify(body), user, headers: JSON_TYPE })
const validEvent = (overrides = {}) => JSON.stringify({ ...event('customer.subscription.updated', subscription({ id: 'sub_h', customer: 'cus_alice' })), ...overrides })
const streamOf = (bytes) => new ReadableStream({ start(c) { for (let i = 0; i < bytes; i += 65536) c.enqueue(new Uint8Array(Math.min(65536, bytes - i))); c.close() } })
const nested = (depth) => '['.repeat(depth) + ']'.repeat(depth)

const catalogue = () => [
  ['webhook: no Stripe-Signature header', webhook(validEvent()), 400, 'signature_missing'],
  ['webhook: an empty Stripe-Signature header', webhook(validEvent(), ''), 400, 'signature_missing'],
  ['webhook: a header of only t=', webhook(validEvent(), 't='), 400, 'signature_malformed'],
  ['webhook: no v1 value', webhook(validEvent(), `t=${now()},v0=${'a'.repeat(64)}`), 400, 'signature_malformed'],
  ['webhook: t is not a number', webhook(validEvent(), `t=abc,v1=${'a'.repeat(64)}`), 400, 'signature_malformed'],
  ['webhook: t is a fraction', webhook(validEvent(), `t=${now()}.5,v1=${'a'.repeat(64)}`), 400, 'signature_malformed'],
  ['webhook: t twice', webhook(validEvent(), `t=${now()},t=${now()},v1=${'a'.repeat(64)}`), 400, 'signature_malformed'],
  ['webhook: the header sent twice', (() => { const b = validEvent(); return webhook(b, `${signature(b, SECRET)}, ${signature(b, SECRET)}`) })(), 400, 'signature_malformed'],
  ['webhook: a 10 KB header of garbage', webhook(validEvent(), 'x'.repeat(10240)), 400, 'signature_malformed'],
  ['webhook: signed with a wrong secret', (() => { const b = validEvent(); return webhook(b, signature(b, 'whsec_attacker')) })(), 400, 'signature_mismatch'],
  ['webhook: signed with a rotated-out secret', (() => { const b = validEvent(); return webhook(b, signature(b, OLD_SECRET)) })(), 400, 'signature_mismatch'],
  ['webhook: a signature over another body', webhook(validEvent(), signature('{}', SECRET)), 400, 'signature_mismatch'],
  ['webhook: a replayed old delivery', (() => { const b = validEvent(); return webhook(b, signature(b, SECRET, now() - 3600)) })(), 400, 'timestamp_out_of_tolerance'],
  ['webhook: a timestamp an hour ahead', (() => { const b = validEvent(); return webhook(b, signature(b, SECRET, now() + 3600)) })(), 400, 'timestamp_out_of_tolerance'],
  ['webhook: a body over maxWebhookBytes (declared)', signed(JSON.stringify({ pad: 'x'.repeat(300 * 1024) })), 413, 'payload_too_large'],
  ['webhook: a streamed body over maxWebhookBytes (undeclared)', request('/auth/stripe/webhook', { body: streamOf(2 * 1024 * 1024), headers: { 'stripe-signature': `t=${now()},v1=${'a'.repeat(64)}` }, user: null }), 413, 'payload_too_large'],
  ['webhook: an empty body, signed', signed(''), 400, 'payload_invalid'],
  ['webhook: a body that is not UTF-8, signed over its bytes', (() => {
    const b = Buffer.from([0xff, 0xfe, 0x7b, 0x80])
    const t = now()
    const mac = crypto.createHmac('sha256', SECRET).update(Buffer.concat([Buffer.from(`${t}.`), b])).digest('hex')
    return webhook(b, `t=${t},v1=${mac}`)
  })(), 400, 'payload_invalid'],
  ['webhook: deeply nested JSON, signed', signed(nested(5000)), 400, 'payload_invalid'],
  ['webhook: a JSON array, signed', signed('[1,2,3]'), 400, 'payload_invalid'],
  ['webhook: JSON of the wrong shape, signed', signed('{"hello":"world"}'), 400, 'payload_invalid'],
  ['webhook: an event without data.object, signed', signed(JSON.stringify({ id: 'evt_h1', object: 'event', type: 'customer.subscription.updated', created: now(), data: {} })), 400, 'payload_invalid'],
  ['webhook: an event id that is a number, signed', signed(JSON.stringify({ id: 42, object: 'event', type: 'x', created: now(), data: { object: {} } })), 400, 'payload_invalid'],
  ['webhook: a thin event, signed', signed('{"id":"evt_thin","object":"v2.core.event","type":"v1.billing.meter.no_meter_found"}'), 400, 'payload_invalid'],
  ['webhook: a subscription with an unknown status, signed', signed(validEvent({ data: { object: { ...subscription({ id: 'sub_h', customer: 'cus_alice' }), status: 'hacked' } } })), 400, 'payload_invalid'],
  ['webhook: a subscription without a customer, signed', signed(validEvent({ data: { object: { ...subscription({ id: 'sub_h', customer: 'cus_alice' }), customer: null } } })), 400, 'payload_invalid'],
  ['webhook: GET instead of POST', request('/auth/stripe/webhook', { method: 'GET', user: null }), null, null],
  ['checkout: no user', checkout({ priceId: 'price_basic' }, null), 401, 'unauthenticated'],
  ['checkout: invalid JSON', checkout('{"priceId":'), 400, 'invalid_json'],
  ['checkout: a body that is an array', checkout('[]'), 400, 'invalid_argument'],
  ['checkout: no priceId', checkout({}), 400, 'invalid_argument'],
  ['checkout: priceId is a number', checkout({ priceId: 12 }), 400, 'invalid_argument'],
  ['checkout: priceId carries SQL', checkout({ priceId: "price_basic'; DROP TABLE kavach_users;--" }), 400, 'invalid_argument'],
  ['checkout: priceId with quotes and unicode', checkout({ priceId: 'price_"ü"' }), 400, 'invalid_argument'],
  ['checkout: a price the app does not sell', checkout({ priceId: 'price_free_forever' }), 400, 'invalid_argument'],
  ['checkout: an absurd trialDays', checkout({ priceId: 'price_basic', trialDays: 1e9 }), 400, 'invalid_argument'],
  ['checkout: a negative trialDays', checkout({ priceId: 'price_basic', trialDays: -3 }), 400, 'invalid_argument'],
  ['checkout: trialDays as a string', checkout({ priceId: 'price_basic', trialDays: '7' }), 400, 'invalid_argument'],
  ['checkout: a foreign successUrl', checkout({ priceId: 'price_basic', successUrl: 'https://evil.example/phish' }), 400, 'invalid_argument'],
  ['checkout: a javascript: cancelUrl', checkout({ priceId: 'price_basic', cancelUrl: 'javascript:alert(document.cookie)' }), 400, 'invalid_argument'],
  ['checkout: a data: successUrl', checkout({ priceId: 'price_basic', successUrl: 'data:text/html,<script>alert(1)</script>' }), 400, 'invalid_argument'],
  ['checkout: a protocol-relative cancelUrl', checkout({ priceId: 'price_basic', cancelUrl: '//evil.example/' }), 400, 'invalid_argument'],
  ['checkout: a look-alike origin', checkout({ priceId: 'price_basic', successUrl: 'https://app.example.evil.example/' }), 400, 'invalid_argument'],
  ['checkout: forged kavach_user_id metadata', checkout({ priceId: 'price_basic', metadata: { kavach_user_id: 'bob' } }), 400, 'invalid_argument'],
  ['checkout: a metadata key not allowed', checkout({ priceId: 'price_basic', metadata: { role: 'admin' } }), 400, 'invalid_argument'],
  ['checkout: a metadata value that is an object', checkout({ priceId: 'price_basic', metadata: { campaign: { $gt: '' } } }), 400, 'invalid_argument'],
  ['checkout: an unknown field (customer)', checkout({ priceId: 'price_basic', customer: 'cus_bob' }), 400, 'invalid_argument'],
  ['checkout: a 100 KB body', checkout({ priceId: 'price_basic', pad: 'x'.repeat(100 * 1024) }), 413, 'payload_too_large'],
  ['checkout: a plan when no plans are configured', checkout({ plan: 'pro' }), 400, 'invalid_argument'],
  ['checkout: a plan that is an object', checkout({ plan: { $ne: null } }), 400, 'invalid_argument'],
  ['checkout: a plan and a priceId together', checkout({ plan: 'pro', priceId: 'price_basic' }), 400, 'invalid_argument'],
  ['checkout: annual with a priceId', checkout({ priceId: 'price_basic', annual: true }), 400, 'invalid_argument'],
  ['checkout: annual as a string', checkout({ plan: 'pro', annual: 'true' }), 400, 'invalid_argument'],
  ['checkout: a form body (a cross-site form post)', request('/auth/stripe/checkout', { body: 'priceId=price_basic', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type'],
  ['checkout: JSON sent as text/plain (no CORS preflight)', request('/auth/stripe/checkout', { body: JSON.stringify({ priceId: 'price_basic' }), headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type'],
  ['cancel: a bodiless cross-site POST', request('/auth/stripe/cancel', {}), 415, 'unsupported_media_type'],
  ['sync: a multipart form', request('/auth/stripe/sync', { body: '--x\r\n\r\n--x--', headers: { 'content-type': 'multipart/form-data; boundary=x' } }), 415, 'unsupported_media_type'],
  ['change-plan: no subscription', request('/auth/stripe/change-plan', { body: JSON.stringify({ priceId: 'price_basic' }), headers: JSON_TYPE }), 409, 'no_subscription'],
  ['change-plan: a client quantity', request('/auth/stripe/change-plan', { body: JSON.stringify({ priceId: 'price_basic', quantity: 1000 }), headers: JSON_TYPE }), 400, 'invalid_argument'],
  ['cancel: immediately from a client', request('/auth/stripe/cancel', { body: JSON.stringify({ immediately: true }), headers: JSON_TYPE }), 400, 'invalid_argument'],
  ['resume: an unknown field', request('/auth/stripe/resume', { body: JSON.stringify({ subscriptionId: 'sub_bob' }), headers: JSON_TYPE }), 400, 'invalid_argument'],
  ["sync: another user's checkout session", request('/auth/stripe/sync', { body: JSON.stringify({ sessionId: 'cs_test_not_alices' }), headers: JSON_TYPE }), 404, 'checkout_session_not_found'],
  ['invoices: an unknown query parameter (customer)', request('/auth/stripe/invoices?customer=cus_bob', { method: 'GET' }), 400, 'invalid_argument'],
  ['invoices: limit 0', request('/auth/stripe/invoices?limit=0', { method: 'GET' }), 400, 'invalid_argument'],
  ['invoices: a limit that is not a number', request('/auth/stripe/invoices?limit=ten', { method: 'GET' }), 400, 'invalid_argument'],
  ['invoices: startingAfter carrying a path', request('/auth/stripe/invoices?startingAfter=in_1%2F..%2Fcustomers', { method: 'GET' }), 400, 'invalid_argument'],
  ['portal: no returnUrl', portal({}), 400, 'invalid_argument'],
  ['portal: a foreign returnUrl', portal({ returnUrl: 'https://evil.example/' }), 400, 'invalid_argument'],
  ["portal: another user's customer", portal({ returnUrl: 'https://app.example/', customer: 'cus_alice' }, 'bob'), 400, 'invalid_argument'],
  ['portal: a user with no customer', portal({ returnUrl: 'https://app.example/' }, 'bob'), 409, 'no_customer'],
  ['portal: invalid JSON', portal('nope'), 400, 'invalid_json'],
  ['subscription: no user', request('/auth/stripe/subscription', { method: 'GET', user: null }), 401, 'unauthenticated'],
  ['status: no user', request('/auth/stripe/status', { method: 'GET', user: null }), 401, 'unauthenticated'],
  ['status: a user id carrying SQL', request('/auth/stripe/status', { method: 'GET', user: "alice' OR '1'='1" }), 404, 'user_not_found'],
  ['status: POST instead of GET', request('/auth/stripe/status', { body: '{}' }), null, null],
  ['subscription: a user id carrying SQL', request('/auth/stripe/subscription', { method: 'GET', user: "alice' OR '1'='1" }), 404, 'user_not_found'],
  ['subscription: a non-ASCII user id', request('/auth/stripe/subscription', { method: 'GET', user: 'üsér\u00ff' }), 404, 'user_not_found'],
  ['subscription: a 10,000-character user id (the message repeats 100)', request('/auth/stripe/subscription', { method: 'GET', user: 'u'.repeat(10000) }), 404, 'user_not_found'],
  ['checkout: a 10,000-character user id', checkout({ priceId: 'price_basic' }, 'u'.repeat(10000)), 404, 'user_not_found'],
  ['webhook: ids carrying NUL, signed', signed(JSON.stringify(event('customer.subscription.updated', subscription({ id: 'sub_\u0000', customer: 'cus_\u0000alice' })))), 400, 'payload_invalid'],
]

function snapshot() {
  const count = (table) => reader.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get().n
  return JSON.stringify({
    users: reader.prepare('SELECT * FROM kavach_users ORDER BY id').all(),
    subscriptions: count('kavach_stripe_subscriptions'),
    events: count('kavach_stripe_events'),
    sessions: count('kavach_stripe_checkout_sessions'),
    claims: count('kavach_stripe_customer_claims'),
    trialGrants: count('kavach_stripe_trial_grants'),
    stripeCalls: fake.requests.length,
  })
}

before(async () => {
  fake = await startFakeStripe()
  billing = await createStripeBilling({
    secretKey: KEY,
    webhookSecret: SECRET,
    apiBase: fake.url,
    maxWebhookBytes: 256 * 1024,
    prices: ['price_basic'],
    clientMetadataKeys: ['campaign'],
    maxClientTrialDays: 7,
    database: { provider: 'sqlite', url: file },
    auth: async (r) => (r.headers.get('x-user') === null ? null : { id: r.headers.get('x-user') }),
  })
  await billing.upsertUser({ id: 'alice', email: 'alice@example.com' })
  await billing.upsertUser({ id: 'bob', email: 'bob@example.com' })
  await billing.createCustomer('alice', 'alice@example.com')
  reader = new Database(file, { readonly: true })
})
after(async () => {
  reader.close()
  await billing.close()
  await fake.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

const cases = catalogue()
test('at least 40 cases', () => assert.ok(cases.length >= 40, String(cases.length)))

for (const [name, req, status, code] of cases) {
  test(name, async () => {
    const before = snapshot()
    const res = await billing.handleRequest(req, '/api')
    if (status === null) {
      assert.equal(res, null, 'not an endpoint: left to the app')
    } else {
      const text = await res.text()
      assert.equal(res.status, status, text)
      const body = JSON.parse(text)
      assert.equal(body.code, code, text)
      assert.equal(typeof body.error, 'string')
      assert.ok(!text.includes(KEY) && !text.includes(SECRET), 'no secret in the answer')
      assert.ok(text.length < 1000, `a bounded answer (${text.length} bytes)`)
    }
    assert.equal(snapshot(), before, 'nothing was written')
    const next = await billing.handleRequest(request('/auth/stripe/subscription', { method: 'GET' }), '/api')
    assert.equal(next.status, 200, 'the next valid request succeeds')
  })
}
