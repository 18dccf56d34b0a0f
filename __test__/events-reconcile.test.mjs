// onEvent and reconcile on SQLite, Postgres and MariaDB: every handled or
// wanted event reaches the app once, a throw is retried without re-applying,
// ignored types leave no ledger rows, and events that never arrived are
// handled from Stripe's event list, once, even while webhooks arrive.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createStripeBilling, stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'
import { event, legacySubscription, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_events_suite'
const KEY = 'sk_test_events_suite_0123'
const now = () => Math.floor(Date.now() / 1000)

for (const kind of DATABASE_KINDS) {
  describe(`onEvent and reconcile on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let fake
    let host
    let api
    const seen = []
    const notifications = []
    let failEvents = 0

    const post = async (evt) => {
      const body = JSON.stringify(evt)
      const res = await host.plugins.handleRequest(
        new Request('http://app.test/api/kavach/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }),
        '/api/kavach',
      )
      return { status: res.status, body: await res.json() }
    }
    const user = async (id) => {
      await db.insertUser(id, `${id}@example.com`)
      await db.query('UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?', [`cus_${id}`, id])
    }
    const ledger = async (id) => (await db.query('SELECT state FROM kavach_stripe_events WHERE id = ?', [id]))[0]?.state
    const calls = (id) => seen.filter((e) => e.id === id).length

    before(async () => {
      if (!db) return
      fake = await startFakeStripe()
      await db.createHostUsersTable(true)
      host = await createHost({
        database: db.config,
        plugins: [
          stripe({
            secretKey: KEY,
            webhookSecret: SECRET,
            apiBase: fake.url,
            onEventTypes: ['charge.refunded'],
            onSubscriptionChange: async (userId, sub) => {
              notifications.push({ userId, sub })
            },
            onEvent: async (evt) => {
              if (failEvents > 0) {
                failEvents -= 1
                throw new Error('the app could not record it')
              }
              seen.push(evt)
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

    test('onEvent gets handled and wanted events once, after the package\'s work', { skip: !db }, async () => {
      await user('u_on')
      const sub = event('customer.subscription.created', subscription({ id: 'sub_u_on', customer: 'cus_u_on' }))
      assert.equal((await post(sub)).status, 200)
      assert.equal(calls(sub.id), 1)
      assert.equal(seen.at(-1).type, 'customer.subscription.created', 'the parsed event')
      assert.equal(seen.at(-1).data.object.id, 'sub_u_on')
      assert.equal(notifications.filter((n) => n.userId === 'u_on').length, 1, 'onSubscriptionChange ran before')
      assert.equal((await post(sub)).body.duplicate, true)
      assert.equal(calls(sub.id), 1, 'a redelivery after success calls nobody')

      const refund = event('charge.refunded', { id: 'ch_1', object: 'charge', amount_refunded: 500 })
      assert.equal((await post(refund)).status, 200)
      assert.equal(calls(refund.id), 1)
      await post(refund)
      assert.equal(calls(refund.id), 1)

      const unwanted = event('payment_intent.created', { id: 'pi_1', object: 'payment_intent' })
      assert.equal((await post(unwanted)).status, 200)
      assert.equal(calls(unwanted.id), 0)
      assert.equal(await ledger(unwanted.id), undefined, 'ignored types leave no ledger row')
    })

    test('a throwing onEvent fails the webhook; the retry calls it again without re-applying', { skip: !db }, async () => {
      await user('u_throw')
      const evt = event('customer.subscription.created', subscription({ id: 'sub_u_throw', customer: 'cus_u_throw' }))
      failEvents = 1
      const failed = await post(evt)
      assert.equal(failed.status, 500)
      assert.equal(failed.body.code, 'event_listener_failed')
      assert.equal(await ledger(evt.id), 'done', 'the package\'s own work is committed')
      const notified = notifications.filter((n) => n.userId === 'u_throw').length
      const retried = await post(evt)
      assert.equal(retried.status, 200)
      assert.equal(retried.body.duplicate, true, 'nothing re-applied')
      assert.equal(calls(evt.id), 1)
      assert.equal(notifications.filter((n) => n.userId === 'u_throw').length, notified)
    })

    test('without onEvent, unhandled types are not recorded', { skip: !db }, async () => {
      const plain = await createStripeBilling({ secretKey: KEY, webhookSecret: SECRET, apiBase: fake.url, database: db.config })
      try {
        const evt = event('charge.refunded', { id: 'ch_2', object: 'charge' })
        const body = JSON.stringify(evt)
        const res = await plain.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }))
        assert.equal(res.status, 200)
        assert.equal(await ledger(evt.id), undefined)
        assert.throws(() => stripe({ secretKey: KEY, onEventTypes: ['charge.refunded'] }), { code: 'invalid_config' })
        assert.throws(() => stripe({ secretKey: KEY, onEvent() {}, onEventTypes: ['charge.*'] }), { code: 'invalid_config' })
      } finally {
        await plain.close()
      }
    })

    test('reconcile after an outage: missed events applied in order, delivered ones duplicates, every shape', { skip: !db }, async () => {
      fake.events.length = 0
      await user('u_out')
      const t = now() - 3600
      const delivered = event('customer.subscription.created', subscription({ id: 'sub_u_out', customer: 'cus_u_out', price: 'price_a', created: t - 10 }), { created: t })
      assert.equal((await post(delivered)).status, 200)
      // The endpoint was down for these: a legacy-shaped update, then a basil one.
      const missed1 = event('customer.subscription.updated', legacySubscription({ id: 'sub_u_out', customer: 'cus_u_out', price: 'price_b', created: t - 10 }), { created: t + 60, apiVersion: '2024-06-20' })
      const missed2 = event('customer.subscription.updated', subscription({ id: 'sub_u_out', customer: 'cus_u_out', price: 'price_c', created: t - 10 }), { created: t + 120 })
      const refund = event('charge.refunded', { id: 'ch_out', object: 'charge' }, { created: t + 130 })
      fake.events.push(delivered, missed2, missed1, refund)
      const before = fake.requests.length
      const result = await api.reconcile({ since: new Date((t - 100) * 1000) })
      assert.deepEqual(result, { fetched: 4, applied: 3, duplicates: 1, ignored: 0, failed: 0 })
      assert.equal((await api.getSubscription('u_out')).priceId, 'price_c', 'applied oldest first: the newest wins')
      assert.equal(calls(missed1.id) + calls(missed2.id) + calls(refund.id), 3, 'onEvent for each, once')
      const listed = fake.requests.slice(before).filter((r) => r.path.startsWith('/v1/events?'))
      assert.ok(listed.length > 0)
      assert.ok(listed.every((r) => new URL(r.path, 'http://x').searchParams.getAll('types[]').length <= 20))
      assert.deepEqual(await api.reconcile({ since: new Date((t - 100) * 1000) }), { fetched: 4, applied: 0, duplicates: 4, ignored: 0, failed: 0 }, 'a second run changes nothing')
    })

    test('a webhook of the same event during reconcile, and two reconciles at once: applied and notified once', { skip: !db }, async () => {
      fake.events.length = 0
      await user('u_race')
      const t = now() - 600
      const evt = event('customer.subscription.created', subscription({ id: 'sub_u_race', customer: 'cus_u_race', price: 'price_r', created: t - 5 }), { created: t })
      fake.events.push(evt)
      const before = notifications.filter((n) => n.userId === 'u_race').length
      const [a, b, webhook] = await Promise.all([
        api.reconcile({ since: new Date((t - 60) * 1000) }),
        api.reconcile({ since: new Date((t - 60) * 1000) }),
        post(evt),
      ])
      assert.equal(webhook.status, 200)
      assert.equal(a.applied + b.applied + (webhook.body.duplicate ? 0 : 1), 1, JSON.stringify({ a, b, webhook: webhook.body }))
      assert.equal(notifications.filter((n) => n.userId === 'u_race').length, before + 1)
      assert.equal(calls(evt.id), 1)
    })

    test('since is bounded by Stripe\'s 30 days and the ledger\'s retention', { skip: !db }, async () => {
      await assert.rejects(api.reconcile({ since: new Date(Date.now() - 31 * 86_400_000) }), (error) => error.code === 'invalid_argument' && /30 days/.test(error.message))
      const short = await createStripeBilling({ secretKey: KEY, apiBase: fake.url, database: db.config, eventRetentionDays: 7 })
      try {
        await assert.rejects(short.reconcile({ since: new Date(Date.now() - 8 * 86_400_000) }), (error) => error.code === 'invalid_argument' && /eventRetentionDays \(7 days\)/.test(error.message))
        await assert.rejects(short.reconcile({ since: new Date(), until: new Date(Date.now() - 1000) }), { code: 'invalid_argument' })
      } finally {
        await short.close()
      }
    })
  })
}
