// This package behind the local Stripe, on SQLite, Postgres and MariaDB,
// with chaos on (duplicates and reordering): a checkout paid on the hosted
// page, plan changes (one whose payment fails and is recovered on the hosted
// invoice page), the portal, cancel, resume, cancel now, invoices, sync.
// After each step the stored state matches the emulator's.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import Stripe from 'stripe'
import { stripe as stripePlugin } from '../index.js'
import { startStripeEmulator } from '../emulator.js'
import { submit } from './helpers/emulator-client.mjs'
import { createHost } from './helpers/host.mjs'
import { serveHost, settled } from './helpers/app-server.mjs'
import { DATABASE_KINDS, openDatabase } from './helpers/databases.mjs'

const KEY = 'sk_test_emulator_package_suite'
const PLANS = [
  { name: 'basic', priceId: 'price_basic_monthly' },
  { name: 'pro', priceId: 'price_pro_monthly', annualPriceId: 'price_pro_yearly' },
  { name: 'starter', priceId: 'price_basic_yearly', trialDays: 7 },
]

for (const kind of DATABASE_KINDS) {
  describe(`the package behind the emulator, with chaos, on ${kind}`, async () => {
    const db = await openDatabase(kind)
    let host
    let app
    let emulator
    let sdk
    let api
    const notifications = []

    const call = async (method, path, { user, body } = {}) => {
      const response = await fetch(`${app.url}/api/kavach/auth/stripe/${path}`, {
        method,
        headers: { ...(user ? { 'x-user': user } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      })
      const json = await response.json()
      assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`)
      return json
    }
    /** The stored subscription agrees with the emulator's. */
    const agrees = async (userId) => {
      await settled(emulator)
      const stored = await api.getSubscription(userId)
      const truth = await sdk.subscriptions.retrieve(stored.id)
      assert.equal(stored.status, truth.status)
      assert.equal(stored.priceId, truth.items.data[0].price.id)
      // Scheduled either way: cancel_at_period_end, or a cancel_at date.
      assert.equal(stored.cancelAtPeriodEnd, truth.cancel_at_period_end || truth.cancel_at !== null)
      return { stored, truth }
    }

    before(async () => {
      if (!db) return
      await db.createHostUsersTable(true)
      app = await serveHost(() => host)
      emulator = await startStripeEmulator({
        port: 0,
        webhooks: [{ url: app.webhookUrl }],
        chaos: { duplicateRate: 0.5, reorderWindowMs: 300 },
        webhookRetry: { initialBackoffMs: 200 },
      })
      sdk = new Stripe(KEY, { host: '127.0.0.1', port: emulator.port, protocol: 'http' })
      host = await createHost({
        database: db.config,
        getUser: async (req) => (req.headers.get('x-user') ? { id: req.headers.get('x-user') } : null),
        plugins: [
          stripePlugin({
            secretKey: KEY,
            webhookSecret: emulator.webhookSecret,
            apiBase: emulator.apiBase,
            plans: PLANS,
            onSubscriptionChange: async (userId, sub) => {
              notifications.push({ userId, status: sub.status, priceId: sub.priceId })
            },
          }),
        ],
      })
      api = host.plugins.getContext().stripe
    })
    after(async () => {
      await api?.close()
      await emulator?.close()
      await app?.close()
      await db?.close()
    })

    test('checkout on the hosted page: webhooks make the user active on the plan', { skip: !db }, async () => {
      await db.insertUser('u_emu', 'emu@example.com', 'Emu')
      const checkout = await call('POST', 'checkout', { user: 'u_emu', body: { plan: 'pro' } })
      assert.ok(checkout.url.startsWith(`${emulator.apiBase}/checkout/cs_test_`))
      const page = await fetch(checkout.url)
      assert.equal(page.status, 200)
      const paid = await submit(checkout.url, { card_number: '4242 4242 4242 4242' })
      assert.equal(paid.status, 303)
      assert.equal(paid.headers.get('location'), `${app.url}/billing/success?session_id=${checkout.sessionId}`)
      const { stored } = await agrees('u_emu')
      assert.equal(stored.status, 'active')
      const status = await call('GET', 'status', { user: 'u_emu' })
      assert.equal(status.active, true)
      assert.equal(status.plan.name, 'pro')
      const customer = await sdk.customers.retrieve((await db.query('SELECT stripe_customer_id FROM kavach_users WHERE id = ?', ['u_emu']))[0].stripe_customer_id)
      assert.equal(customer.email, 'emu@example.com')
      const duplicates = emulator.deliveries().filter((a) => a.duplicate).length
      assert.ok(duplicates > 0, 'chaos delivered duplicates')
      assert.ok(notifications.some((n) => n.userId === 'u_emu' && n.status === 'active'))
    })

    test('change plan through the endpoint, then sync: stored as the emulator has it', { skip: !db }, async () => {
      const changed = await call('POST', 'change-plan', { user: 'u_emu', body: { plan: 'basic' } })
      assert.equal(changed.subscription.priceId, 'price_basic_monthly')
      assert.equal(changed.pending, null)
      await agrees('u_emu')
      const synced = await call('POST', 'sync', { user: 'u_emu', body: {} })
      assert.equal(synced.subscription.priceId, 'price_basic_monthly')
    })

    test('preview an upgrade, then change with its prorationDate: charged what was previewed', { skip: !db }, async () => {
      const preview = await api.previewPlanChange('u_emu', { plan: 'pro' })
      const difference = preview.lines.reduce((sum, line) => sum + line.amount, 0)
      assert.ok(difference > 0, JSON.stringify(preview))
      // The downgrade before left a credit on the customer's balance, which pays first.
      const { truth: before } = await agrees('u_emu')
      const balance = (await sdk.customers.retrieve(before.customer)).balance
      assert.equal(preview.amountDue, Math.max(0, difference + balance))
      assert.equal(preview.currency, 'usd')
      assert.deepEqual(preview.lines.map((l) => l.proration), [true, true])
      assert.equal((await api.getSubscription('u_emu')).priceId, 'price_basic_monthly', 'a preview changes nothing')
      const result = await api.changePlan('u_emu', { plan: 'pro', prorationDate: preview.prorationDate })
      assert.equal(result.subscription.priceId, 'price_pro_monthly')
      const { truth } = await agrees('u_emu')
      const invoice = await sdk.invoices.retrieve(truth.latest_invoice)
      assert.equal(invoice.amount_due, preview.amountDue)
      assert.equal(invoice.total, difference)
      assert.equal(invoice.status, 'paid')
    })

    test('a change whose payment fails waits as pending; paying on the hosted invoice page applies it', { skip: !db }, async () => {
      const { stored } = await agrees('u_emu')
      await sdk.subscriptions.update(stored.id, { default_payment_method: 'pm_card_chargeCustomerFail' })
      const changed = await call('POST', 'change-plan', { user: 'u_emu', body: { plan: 'pro', annual: true } })
      assert.equal(changed.subscription.priceId, 'price_pro_monthly', 'the old plan stays')
      assert.ok(changed.pending, 'the change is pending')
      assert.ok(changed.pending.hostedInvoiceUrl.startsWith(`${emulator.apiBase}/invoice/in_`))
      await agrees('u_emu')
      const declined = await submit(changed.pending.hostedInvoiceUrl, { card_number: '4000000000000002' })
      assert.equal(declined.status, 402)
      const paid = await submit(changed.pending.hostedInvoiceUrl, { card_number: '4242424242424242' })
      assert.equal(paid.status, 303)
      const after = await agrees('u_emu')
      assert.equal(after.stored.priceId, 'price_pro_yearly')
      assert.equal(after.truth.pending_update, null)
    })

    test('the portal session opens the emulator portal', { skip: !db }, async () => {
      const portal = await call('POST', 'portal', { user: 'u_emu', body: { returnUrl: `${app.url}/account` } })
      assert.ok(portal.url.startsWith(`${emulator.apiBase}/portal/bps_`))
      const page = await (await fetch(portal.url)).text()
      assert.match(page, /price_pro_yearly|Pro yearly/)
      assert.ok(page.includes(`${app.url}/account`))
    })

    test('cancel at period end, resume, cancel now', { skip: !db }, async () => {
      const scheduled = await call('POST', 'cancel', { user: 'u_emu', body: {} })
      assert.equal(scheduled.subscription.cancelAtPeriodEnd, true)
      assert.equal((await agrees('u_emu')).stored.cancelAtPeriodEnd, true)
      assert.equal((await call('GET', 'status', { user: 'u_emu' })).scheduledToCancel, true)
      const resumed = await call('POST', 'resume', { user: 'u_emu', body: {} })
      assert.equal(resumed.subscription.cancelAtPeriodEnd, false)
      assert.equal((await agrees('u_emu')).truth.cancel_at, null)
      // Clients may only schedule; the app's server cancels now.
      const ended = await api.cancelSubscription('u_emu', { immediately: true })
      assert.equal(ended.status, 'canceled')
      assert.equal((await agrees('u_emu')).stored.status, 'canceled')
      assert.equal((await call('GET', 'status', { user: 'u_emu' })).active, false)
    })

    test('a plan with a trial: trialing, with its end', { skip: !db }, async () => {
      await db.insertUser('u_trial', 'trial@example.com')
      const checkout = await call('POST', 'checkout', { user: 'u_trial', body: { plan: 'starter' } })
      assert.equal(checkout.trialGranted, true)
      assert.match(await (await fetch(checkout.url)).text(), /7-day free trial/)
      assert.equal((await submit(checkout.url, { card_number: '4242424242424242' })).status, 303)
      const { stored, truth } = await agrees('u_trial')
      assert.equal(stored.status, 'trialing')
      const status = await call('GET', 'status', { user: 'u_trial' })
      assert.equal(Date.parse(status.trialEndsAt), truth.trial_end * 1000)
      assert.equal(status.onTrial, true)
      assert.equal(status.active, true)
    })

    test('reconcile lists the emulator events and finds everything handled', { skip: !db }, async () => {
      await settled(emulator)
      const result = await api.reconcile({ since: new Date(Date.now() - 3600_000) })
      assert.ok(result.fetched > 10, JSON.stringify(result))
      assert.equal(result.failed, 0)
      assert.equal(result.applied, 0, JSON.stringify(result))
      assert.ok(result.duplicates > 0)
    })

    test('the portal cancels and resumes; a renewal fails, shows as a payment issue, is paid and recovers', { skip: !db }, async () => {
      await db.insertUser('u_clock', 'clock@example.com')
      const checkout = await call('POST', 'checkout', { user: 'u_clock', body: { plan: 'basic' } })
      assert.equal((await submit(checkout.url, { card_number: '4242424242424242' })).status, 303)
      await agrees('u_clock')
      const portal = await call('POST', 'portal', { user: 'u_clock', body: { returnUrl: `${app.url}/account` } })
      const { stored } = await agrees('u_clock')
      assert.equal((await submit(portal.url, { action: 'cancel', subscription: stored.id })).status, 303)
      await agrees('u_clock')
      assert.equal((await call('GET', 'status', { user: 'u_clock' })).scheduledToCancel, true)
      assert.equal((await submit(portal.url, { action: 'resume', subscription: stored.id })).status, 303)
      await agrees('u_clock')
      assert.equal((await call('GET', 'status', { user: 'u_clock' })).scheduledToCancel, false)

      // A card that attaches but never pays, then the renewal.
      assert.equal((await submit(`${portal.url}?action=card`, { card_number: '4000000000000341' })).status, 303)
      const { truth } = await agrees('u_clock')
      await emulator.advanceTime(truth.items.data[0].current_period_end - emulator.now() + 3600 + 60)
      await agrees('u_clock')
      const failing = await call('GET', 'status', { user: 'u_clock' })
      assert.equal(failing.pastDue, true)
      assert.ok(failing.paymentIssue, JSON.stringify(failing))
      assert.ok(failing.paymentIssue.hostedInvoiceUrl.startsWith(`${emulator.apiBase}/invoice/in_`))
      assert.equal(failing.paymentIssue.attemptCount, 1)
      assert.equal((await submit(failing.paymentIssue.hostedInvoiceUrl, { card_number: '4242424242424242' })).status, 303)
      await agrees('u_clock')
      const recovered = await call('GET', 'status', { user: 'u_clock' })
      assert.equal(recovered.pastDue, false)
      assert.equal(recovered.paymentIssue, null)
      assert.equal(recovered.status, 'active')
    })

    test('invoices come from the emulator', { skip: !db }, async () => {
      const listed = await call('GET', 'invoices', { user: 'u_emu' })
      const { invoices } = listed
      assert.ok(invoices.length >= 3, JSON.stringify(listed).slice(0, 300))
      const customer = (await db.query('SELECT stripe_customer_id FROM kavach_users WHERE id = ?', ['u_emu']))[0].stripe_customer_id
      const truth = await sdk.invoices.list({ customer, limit: 100 })
      assert.equal(invoices.length, Math.min(truth.data.length, invoices.length))
      assert.equal(invoices[0].id, truth.data[0].id, 'newest first')
    })
  })
}
