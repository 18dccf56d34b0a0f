// Payments that fail, on SQLite, Postgres and MariaDB: invoices stored and
// ordered per invoice, the payment issue an app shows its user (and the
// notification when it appears, changes or clears), onTrialWillEnd once per
// event, and the billing history from Stripe.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'
import { event, invoice, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_dunning_suite'
const KEY = 'sk_test_dunning_suite_0123'
const DAY = 86_400
const now = () => Math.floor(Date.now() / 1000)

for (const kind of DATABASE_KINDS) {
  describe(`payments that fail on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let fake
    let host
    let api
    const notifications = []
    const trialCalls = []
    let failTrialCalls = 0

    const post = async (evt) => {
      const body = JSON.stringify(evt)
      const res = await host.plugins.handleRequest(
        new Request('http://app.test/api/kavach/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }),
        '/api/kavach',
      )
      return { status: res.status, body: await res.json() }
    }
    const deliver = async (evt) => {
      const reply = await post(evt)
      assert.equal(reply.status, 200, JSON.stringify(reply.body))
      return reply.body
    }
    const notified = (userId) => notifications.filter((n) => n.userId === userId)
    const seed = async (userId, { status = 'active', trialEnd = null } = {}) => {
      await db.insertUser(userId, `${userId}@example.com`)
      await db.query('UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?', [`cus_${userId}`, userId])
      const sub = { ...subscription({ id: `sub_${userId}`, customer: `cus_${userId}`, periodEnd: now() + 20 * DAY, created: now() - 1000 }), status, trial_end: trialEnd }
      await deliver(event('customer.subscription.created', sub, { created: now() - 900 }))
      return sub
    }
    /** An invoice of the user's subscription in a given state. */
    const bill = (userId, id, fields = {}) => ({
      ...invoice({ subscriptionId: `sub_${userId}`, customer: `cus_${userId}` }),
      id,
      status: 'open',
      billing_reason: 'subscription_cycle',
      amount_due: 2900,
      amount_paid: 0,
      amount_remaining: 2900,
      currency: 'usd',
      attempt_count: 0,
      next_payment_attempt: null,
      hosted_invoice_url: `https://invoice.stripe.test/i/${id}`,
      invoice_pdf: `https://pay.stripe.test/${id}.pdf`,
      created: now() - 500,
      ...fields,
    })

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
            onSubscriptionChange: async (userId, sub) => {
              notifications.push({ userId, sub })
            },
            onTrialWillEnd: async (userId, trial) => {
              if (failTrialCalls > 0) {
                failTrialCalls -= 1
                throw new Error('the app could not send the email')
              }
              trialCalls.push({ userId, trial })
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

    test('a renewal that fails, is retried and succeeds: the issue appears, changes and clears', { skip: !db }, async () => {
      await seed('u_renew')
      const t = now()
      await deliver(event('invoice.finalized', bill('u_renew', 'in_renew'), { created: t - 400 }))
      assert.equal((await api.getBillingStatus('u_renew')).paymentIssue, null, 'finalized, not failed')
      const before = notified('u_renew').length

      const retryAt = t + 3 * DAY
      await deliver(event('invoice.payment_failed', bill('u_renew', 'in_renew', { attempt_count: 1, next_payment_attempt: retryAt }), { created: t - 300 }))
      let status = await api.getBillingStatus('u_renew')
      assert.equal(status.status, 'past_due')
      assert.deepEqual(status.paymentIssue, {
        invoiceId: 'in_renew',
        reason: 'payment_failed',
        amountDue: 2900,
        currency: 'usd',
        attemptCount: 1,
        nextPaymentAttempt: new Date(retryAt * 1000),
        hostedInvoiceUrl: 'https://invoice.stripe.test/i/in_renew',
      })
      assert.deepEqual((await api.getSubscription('u_renew')).paymentIssue, status.paymentIssue)
      assert.equal(notified('u_renew').length, before + 1)
      assert.equal(notified('u_renew').at(-1).sub.paymentIssue.attemptCount, 1)

      await deliver(event('invoice.payment_failed', bill('u_renew', 'in_renew', { attempt_count: 2, next_payment_attempt: retryAt + 2 * DAY }), { created: t - 200 }))
      assert.equal((await api.getBillingStatus('u_renew')).paymentIssue.attemptCount, 2)
      assert.equal(notified('u_renew').length, before + 2, 'the issue changed')

      const res = await host.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/status', { headers: { 'x-user': 'u_renew' } }), '/api/kavach')
      assert.equal((await res.json()).paymentIssue.nextPaymentAttempt, new Date((retryAt + 2 * DAY) * 1000).toISOString())

      await deliver(event('invoice.paid', bill('u_renew', 'in_renew', { status: 'paid', attempt_count: 3, amount_paid: 2900, amount_remaining: 0 }), { created: t - 100 }))
      status = await api.getBillingStatus('u_renew')
      assert.equal(status.paymentIssue, null)
      assert.equal(notified('u_renew').length, before + 3, 'the issue cleared')
      assert.equal(notified('u_renew').at(-1).sub.paymentIssue, null)
      // Stripe's own events for the same payment change nothing more.
      await deliver(event('invoice.payment_succeeded', bill('u_renew', 'in_renew', { status: 'paid', attempt_count: 3, amount_paid: 2900, amount_remaining: 0 }), { created: t - 100 }))
      assert.equal(notified('u_renew').length, before + 3)
    })

    test('action required wins over a plain failure of the same attempt, in either order', { skip: !db }, async () => {
      for (const [userId, order] of [['u_sca1', ['invoice.payment_failed', 'invoice.payment_action_required']], ['u_sca2', ['invoice.payment_action_required', 'invoice.payment_failed']]]) {
        await seed(userId)
        const t = now()
        for (const type of order) {
          await deliver(event(type, bill(userId, `in_${userId}`, { attempt_count: 1 }), { created: t - 50 }))
        }
        const issue = (await api.getBillingStatus(userId)).paymentIssue
        assert.equal(issue.reason, 'requires_action', order.join(' then '))
        assert.equal(issue.hostedInvoiceUrl, `https://invoice.stripe.test/i/in_${userId}`)
        // The next attempt starts anew.
        await deliver(event('invoice.payment_failed', bill(userId, `in_${userId}`, { attempt_count: 2 }), { created: t - 40 }))
        assert.equal((await api.getBillingStatus(userId)).paymentIssue.reason, 'payment_failed')
      }
    })

    test('a delivery that fails after the event is recorded still leaves the issue notification to its retry', { skip: !db }, async () => {
      await seed('u_lost')
      const evt = event('invoice.payment_action_required', bill('u_lost', 'in_lost', { attempt_count: 1 }), { created: now() - 50 })
      // The database refuses the one write that says a notification is owed
      // for this event, as a connection lost at that moment would.
      const trap = {
        sqlite: [`CREATE TRIGGER kavach_test_lost_write BEFORE UPDATE ON kavach_stripe_events WHEN NEW.id = '${evt.id}' AND NEW.state = 'notify' BEGIN SELECT RAISE(ABORT, 'test: connection lost'); END`],
        postgres: [
          `CREATE OR REPLACE FUNCTION kavach_test_lost_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = '${evt.id}' AND NEW.state = 'notify' THEN RAISE EXCEPTION 'test: connection lost'; END IF; RETURN NEW; END $$`,
          'CREATE TRIGGER kavach_test_lost_write BEFORE UPDATE ON kavach_stripe_events FOR EACH ROW EXECUTE FUNCTION kavach_test_lost_write()',
        ],
        mysql: [`CREATE TRIGGER kavach_test_lost_write BEFORE UPDATE ON kavach_stripe_events FOR EACH ROW BEGIN IF NEW.id = '${evt.id}' AND NEW.state = 'notify' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'test: connection lost'; END IF; END`],
      }[kind]
      const untrap = { sqlite: 'DROP TRIGGER kavach_test_lost_write', postgres: 'DROP TRIGGER kavach_test_lost_write ON kavach_stripe_events', mysql: 'DROP TRIGGER kavach_test_lost_write' }[kind]
      const before = notified('u_lost').length
      for (const sql of trap) await db.query(sql)
      let failed
      try {
        failed = await post(evt)
      } finally {
        await db.query(untrap)
      }
      assert.equal(failed.status, 500, JSON.stringify(failed.body))
      assert.equal(notified('u_lost').length, before, 'the first delivery notified nobody')
      assert.equal((await api.getBillingStatus('u_lost')).paymentIssue.reason, 'requires_action', 'the invoice was stored')

      // Stripe's retry finds the event handled, and the notification still owed.
      const retried = await deliver(evt)
      assert.deepEqual(retried, { received: true, duplicate: true, notified: true })
      assert.equal(notified('u_lost').length, before + 1)
      assert.equal(notified('u_lost').at(-1).sub.paymentIssue.reason, 'requires_action')
      // Once delivered, never again.
      assert.deepEqual(await deliver(evt), { received: true, duplicate: true })
      assert.equal(notified('u_lost').length, before + 1)
      const owed = await db.query("SELECT id FROM kavach_stripe_events WHERE state NOT IN ('done', 'ignored')")
      assert.deepEqual(owed, [], 'nothing is left owed')
    })

    test('invoice events out of order and in one second: a later state never goes back', { skip: !db }, async () => {
      await seed('u_order')
      const t = now() - 100
      const paid = bill('u_order', 'in_order', { status: 'paid', attempt_count: 1, amount_paid: 2900, amount_remaining: 0 })
      await deliver(event('invoice.paid', paid, { created: t }))
      await deliver(event('invoice.payment_failed', bill('u_order', 'in_order', { attempt_count: 1 }), { created: t - 5 }))
      await deliver(event('invoice.finalized', bill('u_order', 'in_order'), { created: t }))
      await deliver(event('invoice.payment_succeeded', paid, { created: t }))
      const [row] = await db.query('SELECT status, attempt_count FROM kavach_stripe_invoices WHERE id = ?', ['in_order'])
      assert.equal(row.status, 'paid')
      assert.equal(Number(row.attempt_count), 1)
      assert.equal((await api.getBillingStatus('u_order')).paymentIssue, null)
    })

    test('an older failed invoice still open keeps the issue while a newer one is paid', { skip: !db }, async () => {
      await seed('u_two')
      await deliver(event('invoice.payment_failed', bill('u_two', 'in_two_old', { attempt_count: 3, created: now() - 40 * DAY }), { created: now() - 300 }))
      await deliver(event('invoice.paid', bill('u_two', 'in_two_new', { status: 'paid', attempt_count: 1, created: now() - 10 * DAY }), { created: now() - 200 }))
      const issue = (await api.getBillingStatus('u_two')).paymentIssue
      assert.equal(issue.invoiceId, 'in_two_old')
      assert.equal(issue.attemptCount, 3)
    })

    test('voided and uncollectible invoices clear the issue', { skip: !db }, async () => {
      for (const [userId, type, status] of [['u_void', 'invoice.voided', 'void'], ['u_uncol', 'invoice.marked_uncollectible', 'uncollectible']]) {
        await seed(userId)
        await deliver(event('invoice.payment_failed', bill(userId, `in_${userId}`, { attempt_count: 4 }), { created: now() - 300 }))
        assert.notEqual((await api.getBillingStatus(userId)).paymentIssue, null)
        await deliver(event(type, bill(userId, `in_${userId}`, { status, attempt_count: 4 }), { created: now() - 200 }))
        assert.equal((await api.getBillingStatus(userId)).paymentIssue, null, type)
      }
    })

    test('onTrialWillEnd: once per event under redelivery, retried after a throw', { skip: !db }, async () => {
      const trialEnd = now() + 3 * DAY
      const sub = await seed('u_trialend', { status: 'trialing', trialEnd })
      const evt = event('customer.subscription.trial_will_end', sub, { created: now() - 10 })
      await deliver(evt)
      await deliver(evt)
      let calls = trialCalls.filter((c) => c.userId === 'u_trialend')
      assert.equal(calls.length, 1, 'a redelivery calls nobody')
      assert.deepEqual(calls[0].trial.trialEndsAt, new Date(trialEnd * 1000))
      assert.equal(calls[0].trial.subscription.id, 'sub_u_trialend')
      assert.equal(calls[0].trial.subscription.status, 'trialing')

      failTrialCalls = 1
      const second = event('customer.subscription.trial_will_end', sub, { created: now() - 5 })
      const failed = await post(second)
      assert.equal(failed.status, 500)
      assert.equal(failed.body.code, 'trial_listener_failed')
      await deliver(second)
      await deliver(second)
      calls = trialCalls.filter((c) => c.userId === 'u_trialend')
      assert.equal(calls.length, 2, 'retried once after the throw, never again after success')
    })

    test('listInvoices pages through Stripe; the endpoint answers the same', { skip: !db }, async () => {
      await seed('u_history')
      for (let i = 0; i < 5; i++) {
        fake.invoices.push({ id: `in_hist_${i}`, object: 'invoice', customer: 'cus_u_history', number: `ABC-000${i}`, status: 'paid', amount_due: 900, amount_paid: 900, currency: 'eur', created: 1_800_000_000 + i * DAY, period_start: 1_799_000_000 + i * DAY, period_end: 1_800_000_000 + i * DAY, hosted_invoice_url: `https://invoice.stripe.test/i/hist_${i}`, invoice_pdf: `https://pay.stripe.test/hist_${i}.pdf` })
      }
      const first = await api.listInvoices('u_history', { limit: 2 })
      assert.equal(first.hasMore, true)
      assert.deepEqual(first.invoices.map((i) => i.id), ['in_hist_4', 'in_hist_3'])
      assert.deepEqual(first.invoices[0], {
        id: 'in_hist_4', number: 'ABC-0004', status: 'paid', amountDue: 900, amountPaid: 900, currency: 'eur',
        created: new Date((1_800_000_000 + 4 * DAY) * 1000), periodStart: new Date((1_799_000_000 + 4 * DAY) * 1000), periodEnd: new Date((1_800_000_000 + 4 * DAY) * 1000),
        hostedInvoiceUrl: 'https://invoice.stripe.test/i/hist_4', invoicePdf: 'https://pay.stripe.test/hist_4.pdf',
      })
      const rest = await api.listInvoices('u_history', { limit: 10, startingAfter: 'in_hist_3' })
      assert.equal(rest.hasMore, false)
      assert.deepEqual(rest.invoices.map((i) => i.id), ['in_hist_2', 'in_hist_1', 'in_hist_0'])
      assert.equal(fake.requests.filter((r) => r.path.startsWith('/v1/invoices?')).at(-1).path, '/v1/invoices?customer=cus_u_history&limit=10&starting_after=in_hist_3')
      await assert.rejects(api.listInvoices('u_history', { limit: 101 }), { code: 'invalid_argument' })

      const res = await host.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/invoices?limit=1&startingAfter=in_hist_4', { headers: { 'x-user': 'u_history' } }), '/api/kavach')
      assert.equal(res.status, 200)
      const body = await res.json()
      assert.equal(body.hasMore, true)
      assert.equal(body.invoices[0].id, 'in_hist_3')
      assert.equal(body.invoices[0].created, new Date((1_800_000_000 + 3 * DAY) * 1000).toISOString())
      const bad = await host.plugins.handleRequest(new Request('http://app.test/api/kavach/auth/stripe/invoices?customer=cus_other', { headers: { 'x-user': 'u_history' } }), '/api/kavach')
      assert.equal(bad.status, 400)
      await db.insertUser('u_nocustomer', 'u_nocustomer@example.com')
      assert.deepEqual(await api.listInvoices('u_nocustomer'), { invoices: [], hasMore: false })
    })
  })
}
