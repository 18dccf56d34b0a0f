// The subscription lifecycle from the app, on SQLite, Postgres and MariaDB,
// against the fake Stripe: change plan (and a payment that fails), preview,
// cancel, resume, sync (racing webhooks), notifications owed after a callback
// throws, and the endpoints' refusals.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createStripeBilling, stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'
import { event, invoice, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_lifecycle_suite'
const KEY = 'sk_test_lifecycle_suite_0123'
const DAY = 86_400
const now = () => Math.floor(Date.now() / 1000)
const PLANS = [
  { name: 'basic', priceId: 'price_basic_m' },
  { name: 'pro', priceId: 'price_pro_m', annualPriceId: 'price_pro_y' },
]
const JSON_TYPE = { 'content-type': 'application/json' }

for (const kind of DATABASE_KINDS) {
  describe(`subscription lifecycle on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let fake
    let host
    let api
    const notifications = []
    let failNotifications = 0

    const request = (path, { body, user, headers = JSON_TYPE } = {}) =>
      host.plugins.handleRequest(
        new Request(`http://app.test/api/kavach/auth/stripe/${path}`, {
          method: 'POST',
          body: typeof body === 'string' ? body : JSON.stringify(body ?? {}),
          headers: { ...(user ? { 'x-user': user } : {}), ...headers },
        }),
        '/api/kavach',
      )
    const deliver = async (evt) => {
      const body = JSON.stringify(evt)
      const reply = await host.plugins.handleRequest(
        new Request('http://app.test/api/kavach/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }),
        '/api/kavach',
      )
      assert.equal(reply.status, 200, await reply.clone().text())
      return reply.json()
    }
    const notified = (userId) => notifications.filter((n) => n.userId === userId)
    /** A user with a customer and an active subscription on `price`, at Stripe and stored. */
    const seed = async (userId, { price = 'price_basic_m', status = 'active' } = {}) => {
      await db.insertUser(userId, `${userId}@example.com`)
      await db.query('UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?', [`cus_${userId}`, userId])
      const sub = subscription({ id: `sub_${userId}`, customer: `cus_${userId}`, price, product: 'prod_app', periodEnd: now() + 20 * DAY, created: now() - 100 })
      sub.status = status
      fake.subscriptions.set(sub.id, structuredClone(sub))
      await deliver(event('customer.subscription.created', sub, { created: now() - 60 }))
      return sub
    }
    const stripeCalls = (method, path) => fake.requests.filter((r) => r.method === method && r.path === path)

    before(async () => {
      if (!db) return
      fake = await startFakeStripe()
      await db.createHostUsersTable(true)
      host = await createHost({
        database: db.config,
        getUser: async (req) => (req.headers.get('x-user') ? { id: req.headers.get('x-user') } : null),
        plugins: [
          stripe({
            secretKey: KEY,
            webhookSecret: SECRET,
            apiBase: fake.url,
            plans: PLANS,
            clientQuantity: { max: 10 },
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

    test('changePlan swaps the item price, stores the answer at once and notifies once', { skip: !db }, async () => {
      await seed('u_change')
      const before = notified('u_change').length
      const result = await api.changePlan('u_change', { plan: 'pro', quantity: 3 })
      assert.equal(result.pending, null)
      assert.equal(result.subscription.priceId, 'price_pro_m')
      assert.deepEqual(result.subscription.plan, { name: 'pro', limits: {}, annual: false })
      const form = stripeCalls('POST', '/v1/subscriptions/sub_u_change').at(-1).form
      assert.equal(form.get('items[0][id]'), 'si_QXhVnC2h0Jczwc', 'the existing item, not a new one')
      assert.equal(form.get('items[0][price]'), 'price_pro_m')
      assert.equal(form.get('items[0][quantity]'), '3')
      assert.equal(form.get('proration_behavior'), 'always_invoice')
      assert.equal(form.get('payment_behavior'), 'pending_if_incomplete')
      assert.equal((await api.getSubscription('u_change')).priceId, 'price_pro_m', 'stored before any webhook')
      assert.equal((await api.getBillingStatus('u_change')).quantity, 3)
      assert.equal(notified('u_change').length, before + 1)
      // The webhook for the same change, same second or earlier, notifies nobody.
      const reply = await deliver(event('customer.subscription.updated', fake.subscriptions.get('sub_u_change'), { created: now() }))
      assert.equal(reply.notified, undefined)
      assert.equal(notified('u_change').length, before + 1)
    })

    test('a plan change whose payment fails keeps the old plan; pending_update_expired keeps it too', { skip: !db }, async () => {
      await seed('u_fail')
      fake.behaviour.failNextPayment = true
      const result = await api.changePlan('u_fail', { plan: 'pro', annual: true })
      assert.equal(result.subscription.priceId, 'price_basic_m')
      assert.equal(result.subscription.status, 'active')
      assert.equal(result.pending.invoiceId, 'in_pending_sub_u_fail')
      assert.equal(result.pending.hostedInvoiceUrl, 'https://invoice.stripe.test/i/sub_u_fail')
      assert.ok(result.pending.expiresAt instanceof Date)
      // Stripe's payment failure for the pending change's invoice: not past_due.
      const failed = { ...invoice({ subscriptionId: 'sub_u_fail', customer: 'cus_u_fail' }), billing_reason: 'subscription_update' }
      await deliver(event('invoice.payment_failed', failed, { created: now() + 1 }))
      assert.equal((await api.getSubscription('u_fail')).status, 'active')
      const expired = { ...structuredClone(fake.subscriptions.get('sub_u_fail')), pending_update: null }
      await deliver(event('customer.subscription.pending_update_expired', expired, { created: now() + 2 }))
      const after = await api.getBillingStatus('u_fail')
      assert.equal(after.priceId, 'price_basic_m')
      assert.equal(after.active, true)
      assert.equal(after.pastDue, false)
    })

    test('preview, then change with its prorationDate', { skip: !db }, async () => {
      await seed('u_preview')
      const preview = await api.previewPlanChange('u_preview', { plan: 'pro' })
      assert.equal(preview.amountDue, 1500)
      assert.equal(preview.currency, 'usd')
      assert.equal(typeof preview.prorationDate, 'number')
      assert.deepEqual(preview.lines.map((l) => [l.amount, l.proration]), [[-500, true], [2000, true]])
      const form = stripeCalls('POST', '/v1/invoices/create_preview').at(-1).form
      assert.equal(form.get('customer'), 'cus_u_preview')
      assert.equal(form.get('subscription'), 'sub_u_preview')
      assert.equal(form.get('subscription_details[items][0][id]'), 'si_QXhVnC2h0Jczwc')
      assert.equal(form.get('subscription_details[items][0][price]'), 'price_pro_m')
      assert.equal(form.get('subscription_details[proration_behavior]'), 'always_invoice')
      assert.equal(form.get('subscription_details[proration_date]'), String(preview.prorationDate))
      assert.equal((await api.getSubscription('u_preview')).priceId, 'price_basic_m', 'a preview changes nothing')
      await api.changePlan('u_preview', { plan: 'pro', prorationDate: preview.prorationDate })
      assert.equal(stripeCalls('POST', '/v1/subscriptions/sub_u_preview').at(-1).form.get('proration_date'), String(preview.prorationDate))
    })

    test('cancel at period end, resume, cancel now; ended and paused subscriptions refuse', { skip: !db }, async () => {
      await seed('u_cancel')
      let sub = await api.cancelSubscription('u_cancel')
      assert.equal(sub.cancelAtPeriodEnd, true)
      assert.equal(stripeCalls('POST', '/v1/subscriptions/sub_u_cancel').at(-1).form.get('cancel_at_period_end'), 'true')
      assert.equal((await api.getBillingStatus('u_cancel')).onGracePeriod, true)
      sub = await api.resumeSubscription('u_cancel')
      assert.equal(sub.cancelAtPeriodEnd, false)
      const form = stripeCalls('POST', '/v1/subscriptions/sub_u_cancel').at(-1).form
      assert.equal(form.get('cancel_at_period_end'), 'false')
      assert.equal(form.get('cancel_at'), '')
      const calls = fake.requests.length
      assert.equal((await api.resumeSubscription('u_cancel')).cancelAtPeriodEnd, false)
      assert.equal(fake.requests.length, calls, 'one not scheduled is returned unchanged, without a call')
      sub = await api.cancelSubscription('u_cancel', { immediately: true })
      assert.equal(sub.status, 'canceled')
      assert.equal(stripeCalls('DELETE', '/v1/subscriptions/sub_u_cancel').length, 1)
      await assert.rejects(api.resumeSubscription('u_cancel'), { code: 'subscription_ended' })
      await assert.rejects(api.cancelSubscription('u_cancel'), { code: 'subscription_ended' })
      await assert.rejects(api.changePlan('u_cancel', { plan: 'pro' }), { code: 'subscription_ended' })

      await seed('u_paused', { status: 'paused' })
      await assert.rejects(api.resumeSubscription('u_paused'), { code: 'subscription_paused' })
    })

    test('no subscription, or another user\'s, is no_subscription', { skip: !db }, async () => {
      await db.insertUser('u_nosub', 'u_nosub@example.com')
      await assert.rejects(api.changePlan('u_nosub', { plan: 'pro' }), { code: 'no_subscription' })
      await assert.rejects(api.cancelSubscription('u_nosub'), { code: 'no_subscription' })
      await seed('u_owner')
      await assert.rejects(api.cancelSubscription('u_nosub', { subscriptionId: 'sub_u_owner' }), { code: 'no_subscription' })
      await assert.rejects(api.changePlan('u_owner', { plan: 'nope' }), { code: 'invalid_argument' })
      await assert.rejects(api.changePlan('u_owner', { plan: 'pro', priceId: 'price_pro_m' }), { code: 'invalid_argument' })
      await assert.rejects(api.changePlan('u_owner', { plan: 'pro', prorationBehavior: 'sometimes' }), { code: 'invalid_argument' })
      assert.equal(stripeCalls('POST', '/v1/subscriptions/sub_u_owner').length, 0, 'nothing reached Stripe')
    })

    test('sync stores what Stripe holds; racing the webhook for the same change notifies once', { skip: !db }, async () => {
      await seed('u_sync')
      const before = notified('u_sync').length
      const atStripe = fake.subscriptions.get('sub_u_sync')
      atStripe.items.data[0].price = { ...atStripe.items.data[0].price, id: 'price_pro_m' }
      const [synced] = await Promise.all([
        api.syncSubscription('u_sync'),
        deliver(event('customer.subscription.updated', structuredClone(atStripe), { created: now() })),
      ])
      assert.equal(synced.priceId, 'price_pro_m')
      assert.equal(notified('u_sync').length, before + 1)
      assert.equal(notified('u_sync').at(-1).sub.priceId, 'price_pro_m')
      // An event created before the sync's answer never overwrites it.
      const older = { ...structuredClone(atStripe), status: 'past_due' }
      older.items.data[0].price = { ...older.items.data[0].price, id: 'price_basic_m' }
      await deliver(event('customer.subscription.updated', older, { created: now() - 30 }))
      const status = await api.getBillingStatus('u_sync')
      assert.equal(status.priceId, 'price_pro_m')
      assert.equal(status.status, 'active')
    })

    test('a callback that throws fails the call; the next sync delivers the owed notification', { skip: !db }, async () => {
      await seed('u_owed')
      const before = notified('u_owed').length
      failNotifications = 1
      await assert.rejects(api.changePlan('u_owed', { plan: 'pro' }), { code: 'subscription_listener_failed' })
      assert.equal((await api.getSubscription('u_owed')).priceId, 'price_pro_m', 'the state stays stored')
      assert.equal(notified('u_owed').length, before)
      await api.syncSubscription('u_owed')
      assert.equal(notified('u_owed').length, before + 1)
      assert.equal(notified('u_owed').at(-1).sub.priceId, 'price_pro_m')
      await api.syncSubscription('u_owed')
      assert.equal(notified('u_owed').length, before + 1, 'delivered once')
    })

    test('a database error after the callback fails the call; the next sync delivers the notification at once', { skip: !db }, async () => {
      await seed('u_lostack')
      const before = notified('u_lostack').length
      // The database refuses the write that marks this user's notification
      // delivered, as a connection lost at that moment would.
      const trap = {
        sqlite: ["CREATE TRIGGER kavach_test_lost_ack BEFORE UPDATE ON kavach_stripe_events WHEN OLD.notify_user_id = 'u_lostack' AND NEW.state = 'done' BEGIN SELECT RAISE(ABORT, 'test: connection lost'); END"],
        postgres: [
          "CREATE OR REPLACE FUNCTION kavach_test_lost_ack() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF OLD.notify_user_id = 'u_lostack' AND NEW.state = 'done' THEN RAISE EXCEPTION 'test: connection lost'; END IF; RETURN NEW; END $$",
          'CREATE TRIGGER kavach_test_lost_ack BEFORE UPDATE ON kavach_stripe_events FOR EACH ROW EXECUTE FUNCTION kavach_test_lost_ack()',
        ],
        mysql: ["CREATE TRIGGER kavach_test_lost_ack BEFORE UPDATE ON kavach_stripe_events FOR EACH ROW BEGIN IF OLD.notify_user_id = 'u_lostack' AND NEW.state = 'done' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'test: connection lost'; END IF; END"],
      }[kind]
      const untrap = { sqlite: 'DROP TRIGGER kavach_test_lost_ack', postgres: 'DROP TRIGGER kavach_test_lost_ack ON kavach_stripe_events', mysql: 'DROP TRIGGER kavach_test_lost_ack' }[kind]
      for (const sql of trap) await db.query(sql)
      try {
        await assert.rejects(api.changePlan('u_lostack', { plan: 'pro' }), { code: 'database_error' })
      } finally {
        await db.query(untrap)
      }
      assert.equal((await api.getSubscription('u_lostack')).priceId, 'price_pro_m', 'the change stays stored')
      const owed = "SELECT id FROM kavach_stripe_events WHERE notify_user_id = 'u_lostack' AND state = 'notify'"
      assert.equal((await db.query(owed)).length, 1, 'still owed: the callback may not have seen it')
      // No redelivery comes back for an app call: the next sync delivers it,
      // without waiting for the failed call's lease to run out.
      await api.syncSubscription('u_lostack')
      assert.deepEqual(await db.query(owed), [])
      assert.equal(notified('u_lostack').at(-1).sub.priceId, 'price_pro_m')
      const count = notified('u_lostack').length
      assert.ok(count > before, 'notified')
      await api.syncSubscription('u_lostack')
      assert.equal(notified('u_lostack').length, count, 'not again')
    })

    test('the endpoints: change plan, preview, cancel, resume, sync by checkout session', { skip: !db }, async () => {
      await seed('u_http')
      let res = await request('change-plan', { user: 'u_http', body: { plan: 'pro', preview: true } })
      assert.equal(res.status, 200)
      assert.equal((await res.json()).amountDue, 1500)
      res = await request('change-plan', { user: 'u_http', body: { plan: 'pro', quantity: 2 } })
      assert.equal(res.status, 200)
      const changed = await res.json()
      assert.equal(changed.subscription.priceId, 'price_pro_m')
      assert.equal(changed.pending, null)
      res = await request('change-plan', { user: 'u_http', body: { plan: 'pro', quantity: 11 } })
      assert.equal(res.status, 400)
      res = await request('change-plan', { user: 'u_http', body: { priceId: 'price_not_sold' } })
      assert.equal(res.status, 400)
      res = await request('cancel', { user: 'u_http' })
      assert.equal((await res.json()).subscription.cancelAtPeriodEnd, true)
      res = await request('cancel', { user: 'u_http', body: { immediately: true } })
      assert.equal(res.status, 400, 'immediate cancellation needs clientCancelImmediately')
      res = await request('resume', { user: 'u_http' })
      assert.equal((await res.json()).subscription.cancelAtPeriodEnd, false)

      await db.insertUser('u_success', 'u_success@example.com')
      const session = await api.createCheckoutSession('u_success', { plan: 'basic' }, { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' })
      const [customer] = await db.query('SELECT stripe_customer_id FROM kavach_users WHERE id = ?', ['u_success'])
      const sub = subscription({ id: 'sub_u_success', customer: customer.stripe_customer_id, price: 'price_basic_m', periodEnd: now() + 30 * DAY, created: now() })
      fake.subscriptions.set(sub.id, sub)
      fake.objects.set(`/v1/checkout/sessions/${session.sessionId}`, { id: session.sessionId, object: 'checkout.session', customer: customer.stripe_customer_id, subscription: sub.id, status: 'complete' })
      res = await request('sync', { user: 'u_http', body: { sessionId: session.sessionId } })
      assert.equal(res.status, 404, 'a session of another user')
      assert.equal((await res.json()).code, 'checkout_session_not_found')
      res = await request('sync', { user: 'u_success', body: { sessionId: session.sessionId } })
      assert.equal(res.status, 200)
      assert.equal((await res.json()).subscription.id, 'sub_u_success', 'the success page sees it before the webhook')
    })

    test('every POST endpoint but the webhook answers 415 to a body that is not JSON', { skip: !db }, async () => {
      await seed('u_form')
      for (const path of ['checkout', 'portal', 'change-plan', 'cancel', 'resume', 'sync']) {
        for (const headers of [{ 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'text/plain' }, {}]) {
          const res = await request(path, { user: 'u_form', body: path === 'checkout' ? 'priceId=price_basic_m' : '', headers })
          assert.equal(res.status, 415, `${path} ${JSON.stringify(headers)}`)
          assert.equal((await res.json()).code, 'unsupported_media_type')
        }
      }
      const res = await request('cancel', { user: 'u_form', headers: { 'content-type': 'application/json; charset=utf-8' } })
      assert.equal(res.status, 200, 'parameters on the media type are fine')
    })

    test('standalone, one sync per user per 2 seconds', { skip: !db }, async () => {
      const billing = await createStripeBilling({ secretKey: KEY, apiBase: fake.url, database: db.config, auth: async (req) => ({ id: req.headers.get('x-user') }) })
      try {
        await seed('u_limit')
        const sync = () => billing.handleRequest(new Request('http://app.test/auth/stripe/sync', { method: 'POST', body: '{}', headers: { 'x-user': 'u_limit', ...JSON_TYPE } }))
        assert.equal((await sync()).status, 200)
        const limited = await sync()
        assert.equal(limited.status, 429)
        assert.equal((await limited.json()).code, 'rate_limited')
        assert.ok(Number(limited.headers.get('retry-after')) >= 1)
      } finally {
        await billing.close()
      }
    })
  })
}
