// Webhooks on SQLite, Postgres and MariaDB: verification, every handled event,
// exactly-once state under duplicate, reversed and same-second delivery, and
// at-least-once notification.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'
import { checkoutSession, event, invoice, legacySubscription, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_webhook_suite_secret'
const KEY = 'sk_test_webhook_suite_0123'

for (const kind of DATABASE_KINDS) {
  describe(`webhooks on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let fake
    let host
    let api
    const notifications = []
    let failNotifications = 0

    const post = (body, headers = {}) =>
      host.plugins.handleRequest(
        new Request('http://app.test/api/kavach/auth/stripe/webhook', { method: 'POST', body, headers }),
        '/api/kavach',
      )
    const deliver = async (evt, { timestamp } = {}) => {
      const body = JSON.stringify(evt)
      const res = await post(body, { 'stripe-signature': signature(body, SECRET, timestamp) })
      return { status: res.status, body: await res.json() }
    }
    const row = async (userId) =>
      (await db.query(
        'SELECT stripe_customer_id, stripe_subscription_id, stripe_subscription_status, stripe_price_id, stripe_current_period_end, stripe_cancel_at_period_end FROM kavach_users WHERE id = ?',
        [userId],
      ))[0]
    const periodEndSeconds = (value) => (value instanceof Date ? value.getTime() / 1000 : Number(value))
    const user = async (id, customer) => {
      await db.insertUser(id, `${id}@example.com`)
      if (customer) await db.query('UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?', [customer, id])
    }

    before(async () => {
      if (!db) return
      fake = await startFakeStripe()
      await db.createHostUsersTable(true)
      host = await createHost({
        database: db.config,
        getUser: async (request) => (request.headers.get('x-user') ? { id: request.headers.get('x-user') } : null),
        plugins: [
          stripe({
            secretKey: KEY,
            webhookSecret: ['whsec_old_rotated_out', SECRET],
            apiBase: fake.url,
            onSubscriptionChange: async (userId, sub) => {
              if (failNotifications > 0) {
                failNotifications -= 1
                throw new Error('the app could not take it')
              }
              notifications.push({ userId, sub })
            },
          }),
        ],
      })
      api = host.plugins.getContext().stripe
    })
    after(async () => {
      await api?.close()
      await fake?.close()
      await db?.close()
    })

    test('verification failures answer 400 with their code and apply nothing', { skip: !db }, async () => {
      const body = JSON.stringify(event('customer.subscription.created', subscription({ id: 'sub_v', customer: 'cus_v' })))
      const cases = [
        [{}, 'signature_missing'],
        [{ 'stripe-signature': 'garbage' }, 'signature_malformed'],
        [{ 'stripe-signature': signature(body, 'whsec_wrong') }, 'signature_mismatch'],
        [{ 'stripe-signature': signature(body, SECRET, Math.floor(Date.now() / 1000) - 301) }, 'timestamp_out_of_tolerance'],
        [{ 'stripe-signature': signature(body, SECRET, Math.floor(Date.now() / 1000) + 301) }, 'timestamp_out_of_tolerance'],
      ]
      for (const [headers, code] of cases) {
        const res = await post(body, headers)
        assert.equal(res.status, 400, code)
        const json = await res.json()
        assert.equal(json.code, code)
        assert.ok(!json.error.includes(SECRET))
      }
      const mismatch = await (await post(body + ' ', { 'stripe-signature': signature(body, SECRET) })).json()
      assert.match(mismatch.error, /raw request body/)
      const notJson = 'not json'
      let res = await post(notJson, { 'stripe-signature': signature(notJson, SECRET) })
      assert.deepEqual([res.status, (await res.json()).code], [400, 'payload_invalid'])
      const thin = JSON.stringify({ id: 'evt_thin', object: 'v2.core.event', type: 'v1.billing.meter.error_report_triggered' })
      res = await post(thin, { 'stripe-signature': signature(thin, SECRET) })
      const thinJson = await res.json()
      assert.deepEqual([res.status, thinJson.code], [400, 'payload_invalid'])
      assert.match(thinJson.error, /thin events/)
      const huge = JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 10) })
      res = await post(huge, { 'stripe-signature': signature(huge, SECRET) })
      assert.deepEqual([res.status, (await res.json()).code], [413, 'payload_too_large'])
      assert.equal((await db.query('SELECT COUNT(*) AS n FROM kavach_stripe_events'))[0].n == 0, true)
    })

    test('a subscription event projects onto its linked user, once', { skip: !db }, async () => {
      await user('u_basic', 'cus_basic')
      const evt = event('customer.subscription.created', subscription({ id: 'sub_basic', customer: 'cus_basic', periodEnd: 1900000123, created: 1700000100 }), { created: 1700000100 })
      assert.deepEqual(await deliver(evt), { status: 200, body: { received: true, notified: true } })
      const r = await row('u_basic')
      assert.equal(r.stripe_subscription_id, 'sub_basic')
      assert.equal(r.stripe_subscription_status, 'active')
      assert.equal(r.stripe_price_id, 'price_basic')
      assert.equal(periodEndSeconds(r.stripe_current_period_end), 1900000123)
      assert.equal(Boolean(r.stripe_cancel_at_period_end), false)
      assert.deepEqual(await api.getSubscription('u_basic'), {
        id: 'sub_basic', status: 'active', priceId: 'price_basic', currentPeriodEnd: new Date(1900000123 * 1000), cancelAtPeriodEnd: false, plan: null, paymentIssue: null,
      })
      const mine = notifications.filter((n) => n.userId === 'u_basic')
      assert.equal(mine.length, 1)
      assert.ok(mine[0].sub.currentPeriodEnd instanceof Date)
      assert.equal(mine[0].sub.status, 'active')

      assert.deepEqual(await deliver(evt), { status: 200, body: { received: true, duplicate: true } })
      assert.equal(notifications.filter((n) => n.userId === 'u_basic').length, 1, 'no notification for a duplicate')
    })

    test('reversed delivery: an older event never overwrites a newer one', { skip: !db }, async () => {
      await user('u_rev', 'cus_rev')
      const created = event('customer.subscription.created', subscription({ id: 'sub_rev', customer: 'cus_rev', status: 'incomplete' }), { created: 1700000200 })
      const updated = event('customer.subscription.updated', subscription({ id: 'sub_rev', customer: 'cus_rev', status: 'active', price: 'price_pro' }), { created: 1700000260 })
      await deliver(updated)
      const before = notifications.length
      assert.equal((await deliver(created)).status, 200)
      const r = await row('u_rev')
      assert.deepEqual([r.stripe_subscription_status, r.stripe_price_id], ['active', 'price_pro'])
      assert.equal(notifications.length, before, 'a stale event changes nothing and notifies nobody')
    })

    test('same-second events are settled by re-fetching from Stripe', { skip: !db }, async () => {
      await user('u_tie', 'cus_tie')
      const first = event('customer.subscription.updated', subscription({ id: 'sub_tie', customer: 'cus_tie', status: 'active' }), { created: 1700000300 })
      const second = event('customer.subscription.updated', subscription({ id: 'sub_tie', customer: 'cus_tie', status: 'past_due' }), { created: 1700000300 })
      fake.objects.set('/v1/subscriptions/sub_tie', subscription({ id: 'sub_tie', customer: 'cus_tie', status: 'past_due', price: 'price_truth' }))
      await deliver(first)
      const fetchesBefore = fake.requests.filter((r) => r.path === '/v1/subscriptions/sub_tie').length
      await deliver(second)
      assert.equal(fake.requests.filter((r) => r.path === '/v1/subscriptions/sub_tie').length, fetchesBefore + 1)
      assert.equal(fake.requests.at(-1).headers.authorization, `Bearer ${KEY}`)
      const r = await row('u_tie')
      assert.deepEqual([r.stripe_subscription_status, r.stripe_price_id], ['past_due', 'price_truth'])
    })

    test('checkout.session.completed links the customer of a session we created and stores the fetched subscription', { skip: !db }, async () => {
      await user('u_co')
      const res = await host.plugins.handleRequest(
        new Request('http://app.test/api/kavach/auth/stripe/checkout', { method: 'POST', body: '{"priceId":"price_basic"}', headers: { 'x-user': 'u_co', 'content-type': 'application/json' } }),
        '/api/kavach',
      )
      const { sessionId } = await res.json()
      const customer = (await row('u_co')).stripe_customer_id
      assert.ok(customer)
      fake.objects.set('/v1/subscriptions/sub_co', subscription({ id: 'sub_co', customer, status: 'trialing', created: 1700000400 }))
      const done = await deliver(event('checkout.session.completed', checkoutSession({ id: sessionId, customer, subscription: 'sub_co', clientReferenceId: 'u_co' })))
      assert.equal(done.status, 200)
      assert.equal((await row('u_co')).stripe_subscription_status, 'trialing')
    })

    test('client_reference_id of a session we did not create is not trusted', { skip: !db }, async () => {
      await user('u_victim')
      fake.objects.set('/v1/subscriptions/sub_forged', subscription({ id: 'sub_forged', customer: 'cus_forged' }))
      fake.objects.set('/v1/customers/cus_forged', { id: 'cus_forged', object: 'customer', metadata: {} })
      const res = await deliver(event('checkout.session.completed', checkoutSession({ id: 'cs_not_ours', customer: 'cus_forged', subscription: 'sub_forged', clientReferenceId: 'u_victim' })))
      assert.deepEqual(res, { status: 200, body: { received: true, ignored: 'no user owns this customer' } })
      const r = await row('u_victim')
      assert.equal(r.stripe_customer_id, null)
      assert.equal(r.stripe_subscription_id, null)
    })

    test('a subscription that arrives before its checkout finds its user through metadata, then the customer', { skip: !db }, async () => {
      await user('u_meta')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_meta', customer: 'cus_meta', userId: 'u_meta' }), { created: 1700000500 }))
      assert.deepEqual([(await row('u_meta')).stripe_customer_id, (await row('u_meta')).stripe_subscription_id], ['cus_meta', 'sub_meta'])
      await user('u_custmeta')
      fake.objects.set('/v1/customers/cus_custmeta', { id: 'cus_custmeta', object: 'customer', metadata: { kavach_user_id: 'u_custmeta' } })
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_custmeta', customer: 'cus_custmeta' }), { created: 1700000501 }))
      assert.equal((await row('u_custmeta')).stripe_customer_id, 'cus_custmeta')
      // A customer linked to one user is never moved to another.
      await user('u_other')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_move', customer: 'cus_meta', userId: 'u_other' }), { created: 1700000502 }))
      assert.equal((await row('u_other')).stripe_customer_id, null)
      assert.equal((await row('u_meta')).stripe_customer_id, 'cus_meta')
    })

    test('an event for a customer no user owns is recorded as ignored', { skip: !db }, async () => {
      fake.objects.set('/v1/customers/cus_nobody', { id: 'cus_nobody', object: 'customer', metadata: {} })
      const evt = event('customer.subscription.created', subscription({ id: 'sub_nobody', customer: 'cus_nobody' }))
      assert.deepEqual(await deliver(evt), { status: 200, body: { received: true, ignored: 'no user owns this customer' } })
      const [ledger] = await db.query('SELECT state FROM kavach_stripe_events WHERE id = ?', [evt.id])
      assert.equal(ledger.state, 'ignored')
    })

    test('invoice.payment_failed on both invoice shapes; incomplete, unpaid and canceled are not revived', { skip: !db }, async () => {
      await user('u_inv', 'cus_inv')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_inv', customer: 'cus_inv', status: 'active' }), { created: 1700000600 }))
      await deliver(event('invoice.payment_failed', invoice({ subscriptionId: 'sub_inv', customer: 'cus_inv' }), { created: 1700000601 }))
      assert.equal((await row('u_inv')).stripe_subscription_status, 'past_due')
      await user('u_inv2', 'cus_inv2')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_inv2', customer: 'cus_inv2', status: 'trialing' }), { created: 1700000600 }))
      await deliver(event('invoice.payment_failed', invoice({ subscriptionId: 'sub_inv2', customer: 'cus_inv2', legacy: true }), { created: 1700000602 }))
      assert.equal((await row('u_inv2')).stripe_subscription_status, 'past_due')
      for (const status of ['incomplete', 'unpaid', 'canceled']) {
        const id = `sub_keep_${status}`
        await user(`u_${status}`, `cus_${status}`)
        await deliver(event('customer.subscription.created', subscription({ id, customer: `cus_${status}`, status }), { created: 1700000600 }))
        await deliver(event('invoice.payment_failed', invoice({ subscriptionId: id, customer: `cus_${status}` }), { created: 1700000603 }))
        assert.equal((await row(`u_${status}`)).stripe_subscription_status, status)
      }
    })

    test('deleted keeps the canceled subscription visible; a new purchase shows; a late event about the old one does not hide it', { skip: !db }, async () => {
      await user('u_life', 'cus_life')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_old', customer: 'cus_life', created: 1700000700 }), { created: 1700000700 }))
      await deliver(event('customer.subscription.deleted', subscription({ id: 'sub_old', customer: 'cus_life', status: 'canceled', created: 1700000700 }), { created: 1700000710 }))
      assert.deepEqual((await api.getSubscription('u_life')).status, 'canceled')
      assert.equal((await api.getSubscription('u_life')).id, 'sub_old')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_new', customer: 'cus_life', price: 'price_pro', created: 1700000800 }), { created: 1700000800 }))
      assert.equal((await api.getSubscription('u_life')).id, 'sub_new')
      await deliver(event('customer.subscription.updated', subscription({ id: 'sub_old', customer: 'cus_life', status: 'canceled', created: 1700000700 }), { created: 1700000900 }))
      assert.deepEqual([(await api.getSubscription('u_life')).id, (await api.getSubscription('u_life')).status], ['sub_new', 'active'])
    })

    test('legacy payloads (current_period_end on the subscription) and cancel_at both read right', { skip: !db }, async () => {
      await user('u_legacy', 'cus_legacy')
      await deliver(event('customer.subscription.created', legacySubscription({ id: 'sub_legacy', customer: 'cus_legacy', periodEnd: 1888888888 }), { created: 1700001000, apiVersion: '2024-09-30.acacia' }))
      assert.equal(periodEndSeconds((await row('u_legacy')).stripe_current_period_end), 1888888888)
      await deliver(event('customer.subscription.updated', subscription({ id: 'sub_legacy', customer: 'cus_legacy', cancelAt: 1888888888 }), { created: 1700001001 }))
      assert.equal((await api.getSubscription('u_legacy')).cancelAtPeriodEnd, true)
    })

    test('customer.deleted unlinks the customer and keeps the subscriptions', { skip: !db }, async () => {
      await user('u_gone', 'cus_gone')
      await deliver(event('customer.subscription.created', subscription({ id: 'sub_gone', customer: 'cus_gone' }), { created: 1700001100 }))
      await deliver(event('customer.deleted', { id: 'cus_gone', object: 'customer', deleted: true }, { created: 1700001101 }))
      assert.equal(await api.getCustomerId('u_gone'), null)
      assert.equal((await db.query('SELECT COUNT(*) AS n FROM kavach_stripe_subscriptions WHERE id = ?', ['sub_gone']))[0].n == 1, true)
    })

    test('a throwing onSubscriptionChange answers 500; the retry notifies without applying twice', { skip: !db }, async () => {
      await user('u_cb', 'cus_cb')
      const evt = event('customer.subscription.created', subscription({ id: 'sub_cb', customer: 'cus_cb' }), { created: 1700001200 })
      failNotifications = 1
      const first = await deliver(evt)
      assert.equal(first.status, 500)
      assert.equal(first.body.code, 'subscription_listener_failed')
      assert.match(first.body.error, /the app could not take it/)
      assert.equal((await row('u_cb')).stripe_subscription_status, 'active', 'the state was committed before the callback')
      const second = await deliver(evt)
      assert.deepEqual(second, { status: 200, body: { received: true, duplicate: true, notified: true } }, 'the owed notification, delivered')
      assert.equal(notifications.filter((n) => n.userId === 'u_cb').length, 1)
      assert.deepEqual(await deliver(evt), { status: 200, body: { received: true, duplicate: true } })
      assert.equal(notifications.filter((n) => n.userId === 'u_cb').length, 1)
    })

    test('a failing Stripe fetch answers 5xx and records nothing; a 404 is recorded as ignored', { skip: !db }, async () => {
      await user('u_fetch', 'cus_fetch')
      fake.objects.set('/v1/subscriptions/sub_fetch', subscription({ id: 'sub_fetch', customer: 'cus_fetch' }))
      // One attempt and its two retries all fail.
      for (let i = 0; i < 3; i++) fake.enqueue((req, res) => { res.writeHead(500, { 'content-type': 'application/json' }); res.end('{"error":{"type":"api_error","message":"boom"}}') })
      const evt = event('invoice.payment_failed', invoice({ subscriptionId: 'sub_fetch', customer: 'cus_fetch' }))
      const failed = await deliver(evt)
      assert.equal(failed.status, 502)
      assert.equal(failed.body.code, 'stripe_unreachable')
      assert.equal((await db.query('SELECT COUNT(*) AS n FROM kavach_stripe_events WHERE id = ?', [evt.id]))[0].n == 0, true)
      assert.equal((await deliver(evt)).status, 200)
      assert.equal((await row('u_fetch')).stripe_subscription_id, 'sub_fetch')
      const missing = await deliver(event('invoice.payment_failed', invoice({ subscriptionId: 'sub_missing', customer: 'cus_fetch' })))
      assert.deepEqual(missing, { status: 200, body: { received: true, ignored: 'the subscription is gone at Stripe' } })
    })

    test('concurrent deliveries of one event apply it once and notify once', { skip: !db }, async () => {
      await user('u_conc', 'cus_conc')
      const evt = event('customer.subscription.created', subscription({ id: 'sub_conc', customer: 'cus_conc' }), { created: 1700001300 })
      const results = await Promise.all(Array.from({ length: 8 }, () => deliver(evt)))
      assert.deepEqual(results.map((r) => r.status), Array(8).fill(200))
      assert.equal(notifications.filter((n) => n.userId === 'u_conc').length, 1)
    })

    test('handled event ids older than eventRetentionDays are pruned; newer ones and unfinished ones stay', { skip: !db }, async () => {
      // A fresh instance has not pruned yet: its first handled event prunes.
      const fresh = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET, apiBase: fake.url })] })
      const old = Math.floor(Date.now() / 1000) - 31 * 86400
      await db.query("INSERT INTO kavach_stripe_events (id, type, created, state, lease_until, received_at) VALUES ('evt_ancient', 'x', 1, 'done', 0, ?)", [old])
      await db.query("INSERT INTO kavach_stripe_events (id, type, created, state, lease_until, received_at, notify_user_id) VALUES ('evt_ancient_owed', 'x', 1, 'notify', 0, ?, 'u_basic')", [old])
      await user('u_prune', 'cus_prune')
      const body = JSON.stringify(event('customer.subscription.created', subscription({ id: 'sub_prune', customer: 'cus_prune' })))
      const res = await fresh.plugins.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }))
      assert.equal(res.status, 200)
      await fresh.plugins.getContext().stripe.close()
      const ids = (await db.query("SELECT id FROM kavach_stripe_events WHERE id LIKE 'evt_ancient%'")).map((r) => r.id)
      assert.deepEqual(ids, ['evt_ancient_owed'], 'an owed notification is never pruned')
      assert.ok(Number((await db.query('SELECT COUNT(*) AS n FROM kavach_stripe_events'))[0].n) > 5, 'recent ids stay')
    })

    test('other event types answer 200 and change nothing', { skip: !db }, async () => {
      assert.deepEqual(await deliver(event('charge.succeeded', { id: 'ch_1', object: 'charge' })), { status: 200, body: { received: true } })
    })
  })
}
