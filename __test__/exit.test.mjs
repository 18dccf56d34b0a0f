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
