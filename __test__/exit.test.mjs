// After close(), nothing native keeps the Node process alive.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const entry = fileURLToPath(new URL('../index.js', import.meta.url))

test('a process that used the addon exits on its own after close()', () => {
  const script = `
    const { createStripeBilling } = require(${JSON.stringify(entry)})
    createStripeBilling({ secretKey: 'sk_test_exit_0123456', database: { provider: 'sqlite', url: ':memory:' } })
      .then(async (billing) => { await billing.getSubscription('x').catch(() => {}); await billing.close(); console.log('closed') })
  `
  const started = Date.now()
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  assert.equal(result.signal, null, `the process did not exit by itself (${Date.now() - started} ms)`)
  assert.equal(result.status, 0, result.stderr)
  assert.equal(result.stdout.trim(), 'closed')
})

test('a webhook waiting for its batch keeps the process alive, and nothing does once it is answered', () => {
  const events = fileURLToPath(new URL('./helpers/events.mjs', import.meta.url))
  // No close(): the process must still exit by itself after the answer.
  const script = `
    const { createStripeBilling } = require(${JSON.stringify(entry)})
    import(${JSON.stringify(events)}).then(async ({ event, signature, subscription }) => {
      const billing = await createStripeBilling({ secretKey: 'sk_test_exit_0123456', webhookSecret: 'whsec_exit', database: { provider: 'sqlite', url: ':memory:' } })
      await billing.upsertUser({ id: 'u_exit', email: 'exit@example.com' })
      const body = JSON.stringify(event('customer.subscription.created', subscription({ id: 'sub_exit', customer: 'cus_exit', userId: 'u_exit' })))
      const res = await billing.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, 'whsec_exit') } }))
      console.log(res.status, JSON.stringify(await billing.getSubscription('u_exit')))
    })
  `
  const started = Date.now()
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  assert.equal(result.signal, null, `the process did not exit by itself (${Date.now() - started} ms)`)
  assert.equal(result.status, 0, result.stderr)
  assert.match(result.stdout.trim(), /^200 \{"id":"sub_exit"/, 'answered before the process could exit')
})
