// The plugin as kavachOS runs it, on SQLite, Postgres and MariaDB: init,
// endpoints, migrations, the contract's column types and value encodings.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const SECRET_KEY = 'sk_test_plugin_0123456789'
const EXPECTED_TYPES = {
  sqlite: {
    stripe_customer_id: 'TEXT', stripe_subscription_id: 'TEXT', stripe_subscription_status: 'TEXT', stripe_price_id: 'TEXT',
    stripe_current_period_end: 'INTEGER', stripe_cancel_at_period_end: 'INTEGER',
  },
  postgres: {
    stripe_customer_id: 'TEXT', stripe_subscription_id: 'TEXT', stripe_subscription_status: 'TEXT', stripe_price_id: 'TEXT',
    stripe_current_period_end: 'TIMESTAMP WITH TIME ZONE', stripe_cancel_at_period_end: 'BOOLEAN',
  },
  mysql: {
    stripe_customer_id: 'VARCHAR(255)', stripe_subscription_id: 'TEXT', stripe_subscription_status: 'TEXT', stripe_price_id: 'TEXT',
    stripe_current_period_end: 'DATETIME(3)', stripe_cancel_at_period_end: 'TINYINT(1)',
  },
}

for (const kind of DATABASE_KINDS) {
  describe(`plugin on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let fake
    const apis = []
    const plugin = (extra = {}) => stripe({ secretKey: SECRET_KEY, apiBase: fake.url, webhookSecret: 'whsec_plugin_test', ...extra })
    const host = async (options = {}) => {
      const h = await createHost({ database: db.config, plugins: [plugin()], ...options })
      apis.push(h.plugins.getContext().stripe)
      return h
    }

    before(async () => {
      if (!db) return
      fake = await startFakeStripe()
      // kavachOS created its users table before this plugin existed: no Stripe columns.
      await db.createHostUsersTable(false)
    })
    after(async () => {
      for (const api of apis) await api.close()
      await fake?.close()
      await db?.close()
    })

    test('init registers exactly the package endpoints and returns the api', { skip: !db }, async () => {
      const h = await host()
      assert.deepEqual(
        h.endpoints.map((e) => [e.method, e.path, e.metadata.requireAuth]),
        [
          ['POST', '/auth/stripe/checkout', true],
          ['POST', '/auth/stripe/portal', true],
          ['GET', '/auth/stripe/subscription', true],
          ['GET', '/auth/stripe/status', true],
          ['POST', '/auth/stripe/change-plan', true],
          ['POST', '/auth/stripe/cancel', true],
          ['POST', '/auth/stripe/resume', true],
          ['POST', '/auth/stripe/sync', true],
          ['GET', '/auth/stripe/invoices', true],
          ['POST', '/auth/stripe/webhook', false],
        ],
      )
      assert.deepEqual(
        h.endpoints.filter((e) => e.metadata.rateLimit).map((e) => [e.path, e.metadata.rateLimit]),
        [['/auth/stripe/sync', { window: 60, max: 30 }], ['/auth/stripe/invoices', { window: 60, max: 30 }]],
        'sync calls Stripe on every request: the host rate-limits it',
      )
      const api = h.plugins.getContext().stripe
      for (const name of ['createCustomer', 'getCustomerId', 'createCheckoutSession', 'createPortalSession', 'getSubscription', 'getBillingStatus', 'hasActiveSubscription', 'changePlan', 'previewPlanChange', 'cancelSubscription', 'resumeSubscription', 'syncSubscription', 'listInvoices', 'close']) {
        assert.equal(typeof api[name], 'function', name)
      }
      assert.deepEqual(h.migrations, [], 'migrations run natively, not through addMigration')
    })

    test('migrations add the missing Stripe columns with the contract types', { skip: !db }, async () => {
      await host()
      const types = await db.columnTypes()
      for (const [column, type] of Object.entries(EXPECTED_TYPES[kind])) assert.equal(types[column], type, column)
      if (kind === 'sqlite') {
        const indexes = await db.query("SELECT name FROM pragma_index_list('kavach_users') WHERE \"unique\" = 1")
        assert.ok(indexes.some((i) => i.name === 'kavach_users_stripe_customer_id_unique'), 'unique index on stripe_customer_id')
      }
      await db.insertUser('dup1', 'dup1@example.com')
      await db.insertUser('dup2', 'dup2@example.com')
      await db.query("UPDATE kavach_users SET stripe_customer_id = 'cus_same' WHERE id = 'dup1'")
      await assert.rejects(db.query("UPDATE kavach_users SET stripe_customer_id = 'cus_same' WHERE id = 'dup2'"), 'stripe_customer_id is unique')
    })

    test('migrations are idempotent and safe when several instances start at once', { skip: !db }, async () => {
      await Promise.all([host(), host(), host()])
      const versions = await db.query('SELECT version FROM kavach_stripe_schema')
      assert.deepEqual(versions.map((v) => Number(v.version)), [6])
      for (const table of ['kavach_stripe_subscriptions', 'kavach_stripe_events', 'kavach_stripe_checkout_sessions']) {
        assert.deepEqual(await db.query(`SELECT COUNT(*) AS n FROM ${table}`).then((r) => Number(r[0].n)), 0, table)
      }
    })

    test("reads the projection in the contract's encodings", { skip: !db }, async () => {
      const h = await host()
      const api = h.plugins.getContext().stripe
      await db.insertUser('enc1', 'enc1@example.com')
      const periodEnd = new Date('2031-05-06T07:08:09.000Z')
      await db.setProjection('enc1', { subscriptionId: 'sub_enc', status: 'active', priceId: 'price_enc', periodEnd, cancelAtPeriodEnd: true })
      assert.deepEqual(await api.getSubscription('enc1'), {
        id: 'sub_enc', status: 'active', priceId: 'price_enc', currentPeriodEnd: periodEnd, cancelAtPeriodEnd: true, plan: null, paymentIssue: null,
      })
      const res = await h.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/subscription'), '/api/kavach')
      assert.equal(res.status, 401, 'no user: the host refuses before the handler')
    })

    test('GET /auth/stripe/subscription answers the projection with ISO dates', { skip: !db }, async () => {
      const h = await host({ getUser: async () => ({ id: 'enc1' }) })
      const res = await h.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/subscription/'), '/api/kavach')
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/json')
      assert.deepEqual(await res.json(), {
        subscription: { id: 'sub_enc', status: 'active', priceId: 'price_enc', currentPeriodEnd: '2031-05-06T07:08:09.000Z', cancelAtPeriodEnd: true, plan: null, paymentIssue: null },
      })
      await db.insertUser('nosub', 'nosub@example.com')
      const none = await (await createHost({ database: db.config, plugins: [plugin()], getUser: async () => ({ id: 'nosub' }) }))
      apis.push(none.plugins.getContext().stripe)
      const empty = await none.plugins.handleRequest(new Request('http://app.test/auth/stripe/subscription'))
      assert.deepEqual(await empty.json(), { subscription: null })
    })

    test('createCustomer stores the customer id and updated_at in the native encoding', { skip: !db }, async () => {
      const h = await host()
      const api = h.plugins.getContext().stripe
      await db.insertUser('cust1', 'cust1@example.com', 'Cust One')
      await db.query("UPDATE kavach_users SET updated_at = created_at WHERE id = 'cust1'")
      const before = Date.now()
      const id = await api.createCustomer('cust1', 'cust1@example.com', 'Cust One')
      assert.match(id, /^cus_fake_/)
      assert.equal(await api.getCustomerId('cust1'), id)
      assert.equal(await api.createCustomer('cust1', 'cust1@example.com'), id, 'a linked customer is returned, not created again')
      const [row] = await db.query("SELECT stripe_customer_id, updated_at FROM kavach_users WHERE id = 'cust1'")
      assert.equal(row.stripe_customer_id, id)
      if (kind === 'sqlite') {
        assert.equal(typeof row.updated_at, 'number', 'SQLite timestamps are Unix seconds')
        assert.ok(Math.abs(row.updated_at - before / 1000) < 5)
      } else {
        assert.ok(row.updated_at instanceof Date)
        assert.ok(Math.abs(row.updated_at.getTime() - before) < 5000, `${row.updated_at.toISOString()} is now (UTC)`)
      }
      const created = fake.requests.filter((r) => r.path === '/v1/customers')
      assert.equal(created.length, 1)
      assert.equal(created[0].form.get('metadata[kavach_user_id]'), 'cust1')
      assert.equal(created[0].headers.authorization, `Bearer ${SECRET_KEY}`)
      assert.ok(created[0].headers['idempotency-key'])
      assert.equal(created[0].headers['stripe-version'], '2026-03-25.dahlia')
    })

    test('authenticated endpoints: checkout and portal through the host', { skip: !db }, async () => {
      await db.insertUser('buyer', 'buyer@example.com')
      const h = await host({ getUser: async () => ({ id: 'buyer' }) })
      const checkout = await h.plugins.handleRequest(
        new Request('http://app.test/api/kavach/auth/stripe/checkout', { method: 'POST', body: JSON.stringify({ priceId: 'price_basic' }), headers: { 'content-type': 'application/json' } }),
        '/api/kavach',
      )
      assert.equal(checkout.status, 200)
      const session = await checkout.json()
      assert.match(session.sessionId, /^cs_test_fake_/)
      const form = fake.requests.at(-1).form
      assert.equal(form.get('mode'), 'subscription')
      assert.equal(form.get('client_reference_id'), 'buyer')
      assert.equal(form.get('line_items[0][price]'), 'price_basic')
      assert.equal(form.get('success_url'), 'http://app.test/billing/success?session_id={CHECKOUT_SESSION_ID}')
      assert.equal(form.get('cancel_url'), 'http://app.test/billing/cancel')
      const recorded = await db.query('SELECT user_id FROM kavach_stripe_checkout_sessions WHERE id = ?', [session.sessionId])
      assert.deepEqual(recorded.map((r) => r.user_id), ['buyer'])

      const portal = await h.plugins.handleRequest(
        new Request('http://app.test/auth/stripe/portal', { method: 'POST', body: JSON.stringify({ returnUrl: 'http://app.test/account' }), headers: { 'content-type': 'application/json' } }),
      )
      assert.equal(portal.status, 200)
      assert.match((await portal.json()).url, /^https:\/\/billing\.stripe\.test\//)
    })

    test('handlers answer 401 themselves and call getUser once', { skip: !db }, async () => {
      const h = await host()
      for (const endpoint of h.endpoints.filter((e) => e.metadata.requireAuth)) {
        let calls = 0
        const res = await endpoint.handler(new Request(`http://app.test${endpoint.path}`, { method: endpoint.method, body: endpoint.method === 'GET' ? undefined : '{}' }), {
          getUser: async () => { calls += 1; return null },
        })
        assert.equal(res.status, 401, endpoint.path)
        assert.deepEqual(await res.json(), { error: 'Authentication required', code: 'unauthenticated' })
        assert.equal(calls, 1)
      }
    })

    test('close() makes the api refuse with code closed', { skip: !db }, async () => {
      const h = await createHost({ database: db.config, plugins: [plugin()] })
      const api = h.plugins.getContext().stripe
      await api.close()
      await assert.rejects(api.getSubscription('enc1'), { code: 'closed' })
    })

    test('ids with NUL: the same answers on every database, never a 5xx', { skip: !db }, async () => {
      const h = await host({ getUser: async () => ({ id: 'nul\u0000user' }) })
      const api = h.plugins.getContext().stripe
      await db.insertUser('nul_ok', 'nul_ok@example.com')
      for (const call of [() => api.getSubscription('nul\u0000user'), () => api.getCustomerId('a\u0000'), () => api.createCheckoutSession('a\u0000b', 'price_basic', { successUrl: 'https://app.example/s', cancelUrl: 'https://app.example/c' }), () => api.createCustomer('x\u0000', 'x@example.com')]) {
        await assert.rejects(call(), (error) => error.code === 'user_not_found')
      }
      const res = await h.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/subscription'), '/api/kavach')
      assert.equal(res.status, 404)
      assert.equal((await res.json()).code, 'user_not_found')
      const body = JSON.stringify(event('customer.subscription.updated', subscription({ id: 'sub_nul\u0000', customer: 'cus_nul' })))
      assert.ok(body.includes('\\u0000'))
      const hook = await h.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, 'whsec_plugin_test') } }), '/api/kavach')
      assert.equal(hook.status, 400)
      assert.equal((await hook.json()).code, 'payload_invalid')
      // A literal backslash before "u0000" is not a NUL.
      const literal = JSON.stringify(event('customer.subscription.updated', subscription({ id: 'sub_nul_ok', customer: 'cus_nul_none', price: 'price_\\u0000' })))
      const ok = await h.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/webhook', { method: 'POST', body: literal, headers: { 'stripe-signature': signature(literal, 'whsec_plugin_test') } }), '/api/kavach')
      assert.notEqual(ok.status, 400)
    })
  })
}
