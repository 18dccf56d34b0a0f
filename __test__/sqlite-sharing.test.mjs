// Sharing a database with a kavachOS host: sql.js, D1 and :memory: are refused
// with the fix; a better-sqlite3 file is shared with WAL and a busy timeout.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { openDatabase } from './helpers/databases.mjs'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const KEY = 'sk_test_sharing_0123456789'
const here = path.dirname(fileURLToPath(import.meta.url))
const HOST_DDL = `CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, stripe_customer_id TEXT UNIQUE, stripe_subscription_id TEXT, stripe_subscription_status TEXT,
  stripe_price_id TEXT, stripe_current_period_end INTEGER, stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0)`
let fake
let db
const apis = []

// The host's better-sqlite3 runs in child processes: two SQLite copies in ONE
// process do not see each other's POSIX locks (see README, "SQLite").
function hostSql(file, code) {
  const script = `const db = require('better-sqlite3')(process.argv[1]); db.pragma('busy_timeout = 10000'); ${code}`
  const result = spawnSync(process.execPath, ['-e', script, file], { cwd: here, encoding: 'utf8' })
  assert.equal(result.status, 0, result.stderr)
  return result.stdout
}

before(async () => {
  fake = await startFakeStripe()
  db = await openDatabase('sqlite')
  db.db.close()
  hostSql(db.file, `db.exec(${JSON.stringify(HOST_DDL)}); db.prepare("INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES ('shared', 'shared@example.com', 1, 1)").run()`)
})
after(async () => {
  for (const api of apis) await api.close()
  await fake.close()
  await db.close()
})

for (const [label, database, hint] of [
  ['sql.js (provider sqlite)', { provider: 'sqlite', url: './app.db' }, /sqlite-native/],
  ['D1', { provider: 'd1', binding: { prepare() {} } }, /own `database/],
  [':memory:', { provider: 'sqlite-native', url: ':memory:' }, /sqlite-native|own `database/],
]) {
  test(`a host on ${label} is refused with the fix`, async () => {
    await assert.rejects(createHost({ database, plugins: [stripe({ secretKey: KEY })] }), (error) => {
      assert.equal(error.code, 'database_unsupported')
      assert.match(error.message, hint)
      return true
    })
  })
}

test("the plugin's own database option overrides a sql.js host", async () => {
  const h = await createHost({
    database: { provider: 'sqlite', url: './never-written.db' },
    plugins: [stripe({ secretKey: KEY, database: db.config })],
  })
  apis.push(h.plugins.getContext().stripe)
  assert.equal(await h.plugins.getContext().stripe.getSubscription('missing').catch((e) => e.code), 'user_not_found')
})

test('a shared SQLite file is switched to WAL, and rows the host wrote are read', async () => {
  const h = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, apiBase: fake.url })] })
  const api = h.plugins.getContext().stripe
  apis.push(api)
  // WAL is recorded in the file header (bytes 18 and 19 are 2).
  assert.deepEqual([...fs.readFileSync(db.file).subarray(18, 20)], [2, 2])
  assert.equal(await api.getCustomerId('shared'), null)
})
