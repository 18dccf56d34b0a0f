// Run on each release platform with its binary in place: the addon loads,
// verifies a signature, and stores a subscription from a signed webhook in SQLite.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { createStripeBilling, verifySignature } = require('../index.js')
const secret = 'whsec_platform_smoke'
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-smoke-'))
const billing = await createStripeBilling({ secretKey: 'sk_test_platform_smoke', webhookSecret: secret, database: { provider: 'sqlite', url: path.join(dir, 'smoke.db') } })
await billing.upsertUser({ id: 'u_smoke', email: 'smoke@example.com' })
const now = Math.floor(Date.now() / 1000)
const body = JSON.stringify({
  id: 'evt_smoke', object: 'event', type: 'customer.subscription.created', created: now, api_version: '2026-03-25.dahlia', livemode: false,
  data: { object: { id: 'sub_smoke', object: 'subscription', customer: 'cus_smoke', status: 'active', created: now, cancel_at_period_end: false, cancel_at: null, metadata: { kavach_user_id: 'u_smoke' },
    items: { object: 'list', data: [{ id: 'si_smoke', object: 'subscription_item', price: { id: 'price_smoke', product: 'prod_smoke' }, quantity: 1, current_period_start: now, current_period_end: now + 2592000 }] } } },
})
const header = `t=${now},v1=${crypto.createHmac('sha256', secret).update(`${now}.${body}`).digest('hex')}`
verifySignature(body, header, secret)
const answer = await billing.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': header } }))
if (answer.status !== 200) throw new Error(`webhook answered ${answer.status}: ${await answer.text()}`)
const subscription = await billing.getSubscription('u_smoke')
if (subscription?.status !== 'active') throw new Error(`not stored: ${JSON.stringify(subscription)}`)
await billing.close()
fs.rmSync(dir, { recursive: true, force: true })
console.log(`ok: ${process.platform}-${process.arch}, Node ${process.versions.node}`)
