// Plans, billing status and one trial per user, on SQLite, Postgres and
// MariaDB: the `plans` option, checkout by plan, every status field from
// stored state, hasActiveSubscription's filters, and trials granted once per
// user even when two app instances race.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createStripeBilling, stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_plans_suite_secret'
const KEY = 'sk_test_plans_suite_0123'
const DAY = 86_400
const now = () => Math.floor(Date.now() / 1000)
const PLANS = [
  { name: 'basic', priceId: 'price_basic_m', limits: { projects: 3 } },
  { name: 'pro', priceId: 'price_pro_m', annualPriceId: 'price_pro_y', trialDays: 14, limits: { projects: 50, seats: 5 } },
]

function configError(options) {
  try {
    stripe({ secretKey: KEY, ...options })
  } catch (error) {
    return { code: error.code, message: error.message }
  }
  return null
}

function checkPlansValidation() {
  const cases = [
    [{ plans: 'pro' }, 'plans'],
    [{ plans: [] }, 'plans'],
    [{ plans: [{ priceId: 'price_a' }] }, 'plans[0].name'],
    [{ plans: [{ name: 'a', priceId: 'price_a' }, { name: 'a', priceId: 'price_b' }] }, 'plans[1].name'],
    [{ plans: [{ name: 'a' }] }, 'plans[0].priceId'],
    [{ plans: [{ name: 'a', priceId: 'price a' }] }, 'plans[0].priceId'],
    [{ plans: [{ name: 'a', priceId: 'price_a' }, { name: 'b', priceId: 'price_a' }] }, 'plans[1].priceId'],
    [{ plans: [{ name: 'a', priceId: 'price_a', annualPriceId: 'price_a' }] }, 'plans[0].annualPriceId'],
    [{ plans: [{ name: 'a', priceId: 'price_a', annualPriceId: 5 }] }, 'plans[0].annualPriceId'],
    [{ plans: [{ name: 'a', priceId: 'price_a', trialDays: 0 }] }, 'plans[0].trialDays'],
    [{ plans: [{ name: 'a', priceId: 'price_a', trialDays: 731 }] }, 'plans[0].trialDays'],
    [{ plans: [{ name: 'a', priceId: 'price_a', limits: { seats: '5' } }] }, 'plans[0].limits.seats'],
    [{ plans: [{ name: 'a', priceId: 'price_a', limits: { seats: Infinity } }] }, 'plans[0].limits.seats'],
    [{ plans: [{ name: 'a', priceId: 'price_a', limit: {} }] }, 'plans[0].limit'],
    [{ plans: [{ name: ' ', priceId: 'price_a' }] }, 'plans[0].name'],
    [{ pastDueIsActive: 'yes' }, 'pastDueIsActive'],
    [{ oneTrialPerUser: 1 }, 'oneTrialPerUser'],
  ]
  for (const [options, field] of cases) {
    const error = configError(options)
    assert.equal(error?.code, 'invalid_config', JSON.stringify(options))
    assert.ok(error.message.includes(field), `${JSON.stringify(options)}: ${error.message} should name ${field}`)
  }
  assert.equal(configError({ plans: PLANS, pastDueIsActive: false, oneTrialPerUser: false }), null)
}

for (const kind of DATABASE_KINDS) {
  describe(`plans and billing status on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let fake
    let host
    let api
    let strict

    const request = (path, { method = 'GET', body, user } = {}) =>
      host.plugins.handleRequest(
        new Request(`http://app.test/api/kavach/auth/stripe/${path}`, {
          method,
          body: body === undefined ? undefined : JSON.stringify(body),
          headers: user ? { 'x-user': user, 'content-type': 'application/json' } : { 'content-type': 'application/json' },
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
    }
    const user = async (id, customer) => {
      await db.insertUser(id, `${id}@example.com`)
      if (customer) await db.query('UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?', [customer, id])
    }
    /** Stores a subscription for a user through a signed webhook. */
    const store = async (userId, fields, { created = now() } = {}) => {
      const customer = `cus_${userId}`
      const sub = {
        ...subscription({ id: `sub_${userId}`, customer, price: fields.price ?? 'price_pro_m', product: fields.product ?? 'prod_app', periodEnd: fields.periodEnd ?? now() + 30 * DAY }),
        ...fields.raw,
      }
      sub.items.data[0].quantity = fields.quantity ?? 1
      await deliver(event(fields.type ?? 'customer.subscription.updated', sub, { created }))
      return sub
    }
    const checkoutForms = () => fake.requests.filter((r) => r.path === '/v1/checkout/sessions').map((r) => r.form)

    before(async () => {
      if (!db) return
      fake = await startFakeStripe()
      await db.createHostUsersTable(true)
      host = await createHost({
        database: db.config,
        getUser: async (req) => (req.headers.get('x-user') ? { id: req.headers.get('x-user') } : null),
        plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET, apiBase: fake.url, plans: PLANS })],
      })
      api = host.plugins.getContext().stripe
      // A second instance on the same database, with past_due not counting as active.
      strict = await createStripeBilling({ secretKey: KEY, apiBase: fake.url, database: db.config, plans: PLANS, pastDueIsActive: false })
    })
    after(async () => {
      await strict?.close()
      await api?.close()
      await fake?.close()
      await db?.close()
    })

    test('plans: invalid entries throw invalid_config naming the field', { skip: !db }, () => {
      checkPlansValidation()
      assert.throws(() => stripe({ secretKey: KEY, database: db.config, plans: [{ name: 'x', priceId: 'price x' }] }), { code: 'invalid_config' })
    })

    test('the endpoint checks out by plan, by annual plan and by a plan price, with the plan trial', { skip: !db }, async () => {
      await user('u_plan')
      let res = await request('checkout', { method: 'POST', user: 'u_plan', body: { plan: 'pro' } })
      assert.equal(res.status, 200)
      const first = await res.json()
      assert.equal(first.trialGranted, true)
      let form = checkoutForms().at(-1)
      assert.equal(form.get('line_items[0][price]'), 'price_pro_m')
      assert.equal(form.get('subscription_data[trial_period_days]'), '14')

      res = await request('checkout', { method: 'POST', user: 'u_plan', body: { plan: 'pro', annual: true } })
      assert.equal(res.status, 200)
      assert.equal((await res.json()).trialGranted, false, 'the user already holds a trial grant')
      form = checkoutForms().at(-1)
      assert.equal(form.get('line_items[0][price]'), 'price_pro_y')
      assert.equal(form.get('subscription_data[trial_period_days]'), null)

      res = await request('checkout', { method: 'POST', user: 'u_plan', body: { priceId: 'price_basic_m' } })
      assert.equal(res.status, 200, 'prices default to the plans\' prices')
      assert.equal(checkoutForms().at(-1).get('line_items[0][price]'), 'price_basic_m')

      const server = await api.createCheckoutSession('u_plan', { plan: 'basic' }, { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' })
      assert.equal(server.trialGranted, false)
      assert.equal(checkoutForms().at(-1).get('line_items[0][price]'), 'price_basic_m')
    })

    test('the endpoint refuses client trials, unknown plans and bad combinations', { skip: !db }, async () => {
      await user('u_refuse')
      const cases = [
        [{ plan: 'pro', trialDays: 3 }, 'trialDays'],
        [{ priceId: 'price_pro_m', trialDays: 3 }, 'trialDays'],
        [{ plan: 'enterprise' }, 'plan'],
        [{ plan: 'basic', annual: true }, 'annual'],
        [{ plan: 'pro', priceId: 'price_pro_m' }, 'plan'],
        [{ priceId: 'price_pro_m', annual: true }, 'annual'],
        [{ plan: 'pro', annual: 'yes' }, 'annual'],
        [{ priceId: 'price_elsewhere' }, 'priceId'],
        [{}, 'plan'],
      ]
      const before = checkoutForms().length
      for (const [body, field] of cases) {
        const res = await request('checkout', { method: 'POST', user: 'u_refuse', body })
        assert.equal(res.status, 400, JSON.stringify(body))
        const reply = await res.json()
        assert.equal(reply.code, 'invalid_argument')
        assert.ok(reply.error.includes(field), `${JSON.stringify(body)}: ${reply.error}`)
      }
      assert.equal(checkoutForms().length, before, 'nothing reached Stripe')
      await assert.rejects(api.createCheckoutSession('u_refuse', { plan: 'nope' }), { code: 'invalid_argument' })
    })

    test('trialing: active, on trial, with the plan, product, quantity and trial end', { skip: !db }, async () => {
      await user('u_trial', 'cus_u_trial')
      const trialEnd = now() + 10 * DAY
      await store('u_trial', { quantity: 3, raw: { status: 'trialing', trial_start: now() - 4 * DAY, trial_end: trialEnd } })
      const status = await api.getBillingStatus('u_trial')
      assert.deepEqual(status, {
        active: true,
        status: 'trialing',
        plan: { name: 'pro', limits: { projects: 50, seats: 5 }, annual: false },
        priceId: 'price_pro_m',
        productId: 'prod_app',
        quantity: 3,
        currentPeriodEnd: status.currentPeriodEnd,
        onTrial: true,
        trialEndsAt: new Date(trialEnd * 1000),
        scheduledToCancel: false,
        endsAt: null,
        onGracePeriod: false,
        pastDue: false,
        paymentIssue: null,
      })
      assert.ok(status.currentPeriodEnd instanceof Date)
      const res = await request('status', { user: 'u_trial' })
      assert.equal(res.status, 200)
      assert.deepEqual(await res.json(), JSON.parse(JSON.stringify(status)), 'the endpoint answers the same object')
      assert.deepEqual((await api.getSubscription('u_trial')).plan, { name: 'pro', limits: { projects: 50, seats: 5 }, annual: false })
    })

    test('active on the annual price; no subscription at all', { skip: !db }, async () => {
      await user('u_active', 'cus_u_active')
      await store('u_active', { price: 'price_pro_y' })
      const status = await api.getBillingStatus('u_active')
      assert.equal(status.active, true)
      assert.equal(status.onTrial, false)
      assert.deepEqual(status.plan, { name: 'pro', limits: { projects: 50, seats: 5 }, annual: true })
      await user('u_none')
      assert.deepEqual(await api.getBillingStatus('u_none'), {
        active: false, status: null, plan: null, priceId: null, productId: null, quantity: null, currentPeriodEnd: null,
        onTrial: false, trialEndsAt: null, scheduledToCancel: false, endsAt: null, onGracePeriod: false, pastDue: false, paymentIssue: null,
      })
      assert.equal(await api.hasActiveSubscription('u_none'), false)
      const res = await request('status', { user: 'u_none' })
      assert.equal((await res.json()).active, false)
      assert.equal((await request('status')).status, 401)
      await assert.rejects(api.getBillingStatus('u_missing'), { code: 'user_not_found' })
    })

    test('past_due is active only while pastDueIsActive; unpaid never', { skip: !db }, async () => {
      await user('u_pd', 'cus_u_pd')
      await store('u_pd', { raw: { status: 'past_due' } })
      const lenient = await api.getBillingStatus('u_pd')
      assert.equal(lenient.active, true)
      assert.equal(lenient.pastDue, true)
      const severe = await strict.getBillingStatus('u_pd')
      assert.equal(severe.active, false)
      assert.equal(severe.pastDue, true)
      assert.equal(await strict.hasActiveSubscription('u_pd'), false)
      assert.equal(await api.hasActiveSubscription('u_pd'), true)

      await user('u_unpaid', 'cus_u_unpaid')
      await store('u_unpaid', { raw: { status: 'unpaid' } })
      const unpaid = await api.getBillingStatus('u_unpaid')
      assert.equal(unpaid.active, false)
      assert.equal(unpaid.pastDue, true)
    })

    test('scheduled to cancel by cancel_at_period_end, and by cancel_at alone (flexible billing)', { skip: !db }, async () => {
      const periodEnd = now() + 20 * DAY
      await user('u_cape', 'cus_u_cape')
      await store('u_cape', { periodEnd, raw: { cancel_at_period_end: true } })
      let status = await api.getBillingStatus('u_cape')
      assert.equal(status.active, true)
      assert.equal(status.scheduledToCancel, true)
      assert.equal(status.onGracePeriod, true)
      assert.deepEqual(status.endsAt, new Date(periodEnd * 1000))

      const cancelAt = now() + 5 * DAY
      await user('u_cat', 'cus_u_cat')
      await store('u_cat', { periodEnd, raw: { cancel_at: cancelAt } })
      status = await api.getBillingStatus('u_cat')
      assert.equal(status.scheduledToCancel, true)
      assert.equal(status.onGracePeriod, true)
      assert.deepEqual(status.endsAt, new Date(cancelAt * 1000))
      assert.equal((await api.getSubscription('u_cat')).cancelAtPeriodEnd, true)
    })

    test('ended: not active, not scheduled, endsAt is when it ended', { skip: !db }, async () => {
      const endedAt = now() - 3600
      await user('u_ended', 'cus_u_ended')
      await store('u_ended', { type: 'customer.subscription.deleted', raw: { status: 'canceled', ended_at: endedAt, canceled_at: endedAt } })
      const status = await api.getBillingStatus('u_ended')
      assert.equal(status.status, 'canceled')
      assert.equal(status.active, false)
      assert.equal(status.scheduledToCancel, false)
      assert.equal(status.onGracePeriod, false)
      assert.deepEqual(status.endsAt, new Date(endedAt * 1000))
    })

    test('hasActiveSubscription filters by price, product and plan', { skip: !db }, async () => {
      await user('u_filter', 'cus_u_filter')
      const sub = subscription({ id: 'sub_u_filter', customer: 'cus_u_filter', price: 'price_basic_m', product: 'prod_app', periodEnd: now() + DAY })
      const addon = structuredClone(sub.items.data[0])
      addon.price = { ...addon.price, id: 'price_addon', product: 'prod_addon' }
      sub.items.data.push(addon)
      await deliver(event('customer.subscription.created', sub))
      assert.equal(await api.hasActiveSubscription('u_filter'), true)
      assert.equal(await api.hasActiveSubscription('u_filter', { plan: 'basic' }), true)
      assert.equal(await api.hasActiveSubscription('u_filter', { plan: 'pro' }), false)
      assert.equal(await api.hasActiveSubscription('u_filter', { priceId: 'price_addon' }), true)
      assert.equal(await api.hasActiveSubscription('u_filter', { productId: 'prod_addon', plan: 'basic' }), true)
      assert.equal(await api.hasActiveSubscription('u_filter', { productId: 'prod_other' }), false)
      await assert.rejects(api.hasActiveSubscription('u_filter', { plan: 'enterprise' }), { code: 'invalid_argument' })
      await assert.rejects(api.hasActiveSubscription('u_filter', { priceId: "x' OR 1=1" }), { code: 'invalid_argument' })
    })

    test('a user who had a trial on a subscription gets no second one', { skip: !db }, async () => {
      await user('u_had', 'cus_u_had')
      await store('u_had', { type: 'customer.subscription.deleted', raw: { status: 'canceled', trial_start: now() - 40 * DAY, trial_end: now() - 26 * DAY, ended_at: now() - DAY } })
      const session = await api.createCheckoutSession('u_had', { plan: 'pro' }, { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' })
      assert.equal(session.trialGranted, false)
      assert.equal(checkoutForms().at(-1).get('subscription_data[trial_period_days]'), null)
      const explicit = await api.createCheckoutSession('u_had', 'price_basic_m', { trialDays: 7, successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' })
      assert.equal(explicit.trialGranted, false, 'the server-side trialDays counts too')
    })

    test('two instances racing two checkouts grant one trial', { skip: !db }, async () => {
      const other = await createStripeBilling({ secretKey: KEY, apiBase: fake.url, database: db.config, plans: PLANS })
      try {
        for (let round = 0; round < 3; round++) {
          const id = `u_race_${round}`
          await user(id, `cus_${id}`)
          const options = { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' }
          const results = await Promise.all([
            api.createCheckoutSession(id, { plan: 'pro' }, options),
            other.createCheckoutSession(id, { plan: 'pro' }, options),
            api.createCheckoutSession(id, { plan: 'pro', annual: true }, options),
            other.createCheckoutSession(id, 'price_pro_y', options),
          ])
          assert.equal(results.filter((r) => r.trialGranted).length, 1, `round ${round}: ${JSON.stringify(results)}`)
        }
      } finally {
        await other.close()
      }
    })

    test('a trial is given back when Stripe refused the session, or expired it unpaid', { skip: !db }, async () => {
      const options = { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' }
      await user('u_back', 'cus_u_back')
      fake.enqueue((req, res) => {
        res.writeHead(400, { 'content-type': 'application/json', 'request-id': 'req_refused' })
        res.end(JSON.stringify({ error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such price' } }))
      })
      await assert.rejects(api.createCheckoutSession('u_back', { plan: 'pro' }, options), { code: 'resource_missing' })
      const granted = await api.createCheckoutSession('u_back', { plan: 'pro' }, options)
      assert.equal(granted.trialGranted, true, 'the failed checkout did not use the trial up')

      // The session carrying the trial expires unpaid: after its expiry the trial is the user's again.
      await db.query('UPDATE kavach_stripe_trial_grants SET session_expires_at = ? WHERE user_id = ?', [now() - 60, 'u_back'])
      fake.objects.set(`/v1/checkout/sessions/${granted.sessionId}`, { id: granted.sessionId, object: 'checkout.session', status: 'complete' })
      assert.equal((await api.createCheckoutSession('u_back', { plan: 'pro' }, options)).trialGranted, false, 'completed: no second trial')
      fake.objects.set(`/v1/checkout/sessions/${granted.sessionId}`, { id: granted.sessionId, object: 'checkout.session', status: 'expired' })
      const again = await api.createCheckoutSession('u_back', { plan: 'pro' }, options)
      assert.equal(again.trialGranted, true)
      assert.equal(checkoutForms().at(-1).get('subscription_data[trial_period_days]'), '14')
      assert.equal((await api.createCheckoutSession('u_back', { plan: 'pro' }, options)).trialGranted, false)
    })

    test('oneTrialPerUser: false grants every trial asked for', { skip: !db }, async () => {
      const generous = await createStripeBilling({ secretKey: KEY, apiBase: fake.url, database: db.config, plans: PLANS, oneTrialPerUser: false })
      try {
        await user('u_generous', 'cus_u_generous')
        const options = { successUrl: 'https://app.test/ok', cancelUrl: 'https://app.test/no' }
        for (let i = 0; i < 2; i++) assert.equal((await generous.createCheckoutSession('u_generous', { plan: 'pro' }, options)).trialGranted, true)
        assert.equal((await generous.createCheckoutSession('u_generous', { plan: 'basic' }, options)).trialGranted, false, 'no trial asked')
      } finally {
        await generous.close()
      }
    })

    test('schema version 4 fills product and quantity of rows stored before it', { skip: !db }, async () => {
      await user('u_old', 'cus_u_old')
      await store('u_old', { quantity: 7, product: 'prod_old' })
      for (const column of ['product_id', 'quantity', 'trial_start', 'ended_at']) {
        await db.query(`ALTER TABLE kavach_stripe_subscriptions DROP COLUMN ${column}`)
      }
      await db.query('DELETE FROM kavach_stripe_schema WHERE version >= 4')
      const upgraded = await createStripeBilling({ secretKey: KEY, apiBase: fake.url, database: db.config, plans: PLANS })
      try {
        const status = await upgraded.getBillingStatus('u_old')
        assert.equal(status.productId, 'prod_old')
        assert.equal(status.quantity, 7)
        const [row] = await db.query('SELECT MAX(version) AS v FROM kavach_stripe_schema')
        assert.equal(Number(row.v), 6)
      } finally {
        await upgraded.close()
      }
    })
  })
}
