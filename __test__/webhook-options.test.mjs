// Webhook behaviour that depends on options: the products filter, a listener
// that reads through the api while it runs, and a listener that throws
// synchronously.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createStripeBilling } from '../index.js'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_options_suite'
let fake
let billing
let syncThrower
const seen = []

const deliver = async (target, evt) => {
  const body = JSON.stringify(evt)
  const res = await target.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }))
  return { status: res.status, body: await res.json() }
}

before(async () => {
  fake = await startFakeStripe()
  billing = await createStripeBilling({
    secretKey: 'sk_test_options_0123',
    webhookSecret: SECRET,
    apiBase: fake.url,
    products: ['prod_app'],
    database: { provider: 'sqlite', url: ':memory:' },
    // Runs outside the transaction: reading through the api (on the single
    // in-memory connection) would deadlock otherwise, and must see the new state.
    onSubscriptionChange: async (userId, sub) => {
      seen.push({ userId, sub, stored: await billing.getSubscription(userId) })
    },
  })
  syncThrower = await createStripeBilling({
    secretKey: 'sk_test_options_0123',
    webhookSecret: SECRET,
    apiBase: fake.url,
    database: { provider: 'sqlite', url: ':memory:' },
    onSubscriptionChange: () => {
      throw new Error('sync failure in the app')
    },
  })
  for (const b of [billing, syncThrower]) {
    await b.upsertUser({ id: 'u1', email: 'u1@example.com' })
  }
})
after(async () => {
  await billing.close()
  await syncThrower.close()
  await fake.close()
})

test('products: subscriptions to none of the configured products are ignored', async () => {
  fake.objects.set('/v1/customers/cus_p', { id: 'cus_p', object: 'customer', metadata: { kavach_user_id: 'u1' } })
  const foreign = await deliver(billing, event('customer.subscription.created', subscription({ id: 'sub_foreign', customer: 'cus_p', product: 'prod_other_app' })))
  assert.deepEqual(foreign.body, { received: true, ignored: 'none of the configured products' })
  assert.equal(await billing.getSubscription('u1'), null)
  const ours = await deliver(billing, event('customer.subscription.created', subscription({ id: 'sub_ours', customer: 'cus_p', product: 'prod_app' })))
  assert.deepEqual(ours.body, { received: true, notified: true })
  assert.equal((await billing.getSubscription('u1')).id, 'sub_ours')
})

test('the listener runs after commit and gets the current projection', () => {
  assert.equal(seen.length, 1)
  assert.deepEqual(seen[0].sub, seen[0].stored)
  assert.equal(seen[0].sub.id, 'sub_ours')
})

test('a listener that throws synchronously answers 500, and the process lives on', async () => {
  const evt = event('customer.subscription.created', subscription({ id: 'sub_sync', customer: 'cus_sync', userId: 'u1' }))
  const res = await deliver(syncThrower, evt)
  assert.equal(res.status, 500)
  assert.equal(res.body.code, 'subscription_listener_failed')
  assert.match(res.body.error, /sync failure in the app/)
  assert.equal((await syncThrower.getSubscription('u1')).id, 'sub_sync')
})
