// No Rust panic reaches Node as a crash: a panic in a synchronous call is a
// thrown Error, one in async work a rejected Promise, each with a clear message,
// and the process (and the addon) keeps working.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

test('panics become errors, and the process lives on', () => {
  const script = `
    const binding = require('./binding.js')
    const { createStripeBilling } = require('./index.js')
    const results = {}
    try { binding.__panicProbe() } catch (error) { results.sync = error.message }
    binding.__panicProbeAsync().then(
      () => { results.async = 'resolved' },
      (error) => { results.async = JSON.parse(error.message) },
    ).then(async () => {
      const billing = await createStripeBilling({ secretKey: 'sk_test_panic_0123', database: { provider: 'sqlite', url: ':memory:' } })
      await billing.upsertUser({ id: 'u', email: 'u@example.com' })
      results.after = await billing.getSubscription('u')
      await billing.close()
      console.log(JSON.stringify(results))
    })
  `
  const run = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, RUST_BACKTRACE: '0' } })
  assert.equal(run.signal, null)
  assert.equal(run.status, 0, run.stderr)
  const results = JSON.parse(run.stdout.trim().split('\n').at(-1))
  assert.match(results.sync, /panic probe \(synchronous\)/)
  assert.equal(results.async.code, 'internal_error')
  assert.match(results.async.message, /panicked and did not complete the operation: kavachos-stripe panic probe \(async\)/)
  assert.equal(results.after, null, 'the addon still works after both panics')
})
