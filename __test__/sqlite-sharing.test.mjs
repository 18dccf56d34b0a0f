// Sharing a database with a kavachOS host: sql.js, D1 and :memory: are refused
// with the fix; a better-sqlite3 file is shared with WAL and a busy timeout.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { openDatabase } from './helpers/databases.mjs'
import { event, signature, subscription } from './helpers/events.mjs'
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import Database from 'better-sqlite3'
import { fileURLToPath } from 'node:url'

const KEY = 'sk_test_sharing_0123456789'
const here = path.dirname(fileURLToPath(import.meta.url))
const HOST_DDL = `CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, stripe_customer_id TEXT UNIQUE, stripe_subscription_id TEXT, stripe_subscription_status TEXT,
  stripe_price_id TEXT, stripe_current_period_end INTEGER, stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0)`
let fake
let db
const apis = []

// A host connection in another process.
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

test('a shared SQLite file is switched to WAL', async () => {
  const h = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, apiBase: fake.url })] })
  apis.push(h.plugins.getContext().stripe)
  // WAL is recorded in the file header (bytes 18 and 19 are 2).
  assert.deepEqual([...fs.readFileSync(db.file).subarray(18, 20)], [2, 2])
  assert.equal(await h.plugins.getContext().stripe.getCustomerId('shared'), null)
})

// kavachOS on sqlite-native: better-sqlite3 and this addon are two SQLite copies
// in ONE process. Their locks must still exclude each other, and closing a host
// connection must not pull the WAL from under our pool.
test('in one process with the host: our writes wait for its lock, and its closes do not disturb us', async () => {
  const h = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, apiBase: fake.url })] })
  const api = h.plugins.getContext().stripe
  apis.push(api)
  const hostDb = new Database(db.file)
  hostDb.pragma('busy_timeout = 10000')
  try {
    hostDb.prepare("INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES ('inproc', 'inproc@example.com', 1, 1)").run()
    // A short-lived second host connection, opened and closed.
    const brief = new Database(db.file)
    brief.prepare('SELECT COUNT(*) FROM kavach_users').get()
    brief.close()
    assert.equal(await api.getCustomerId('inproc'), null, 'the row the host wrote is visible after another host connection closed')

    hostDb.exec('BEGIN IMMEDIATE')
    hostDb.prepare("UPDATE kavach_users SET name = 'host' WHERE id = 'inproc'").run()
    let settledAt = 0
    const pending = api.createCustomer('inproc', 'inproc@example.com').finally(() => { settledAt = Date.now() })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const committedAt = Date.now()
    hostDb.exec('COMMIT')
    const customerId = await pending
    assert.ok(settledAt >= committedAt, 'our write waited for the host transaction')
    assert.deepEqual(hostDb.prepare("SELECT name, stripe_customer_id FROM kavach_users WHERE id = 'inproc'").get(), { name: 'host', stripe_customer_id: customerId })
    assert.equal(hostDb.pragma('integrity_check', { simple: true }), 'ok')
  } finally {
    hostDb.close()
  }
  assert.ok(await api.getCustomerId('inproc'), 'still readable after the host connection closed')
})

test('across processes: our writes wait for the lock of a host in another process', async () => {
  const h = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, apiBase: fake.url })] })
  const api = h.plugins.getContext().stripe
  apis.push(api)
  const hostScript = `
    const db = require('better-sqlite3')(process.argv[1])
    db.pragma('busy_timeout = 10000')
    db.exec('BEGIN IMMEDIATE')
    db.prepare("UPDATE kavach_users SET name = 'other process' WHERE id = 'shared'").run()
    process.stdout.write('locked\\n')
    setTimeout(() => { process.stdout.write('commit ' + Date.now() + '\\n'); db.exec('COMMIT'); db.close() }, 400)
  `
  const child = spawn(process.execPath, ['-e', hostScript, db.file], { cwd: here })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  let output = ''
  await new Promise((resolve) => child.stdout.on('data', (chunk) => { output += chunk; if (output.includes('locked')) resolve() }))
  const customerId = await api.createCustomer('shared', 'shared@example.com')
  const settledAt = Date.now()
  assert.equal(await exited, 0)
  const committedAt = Number(output.match(/commit (\d+)/)[1])
  assert.ok(settledAt >= committedAt, 'our write waited for the other process')
  const row = hostSql(db.file, `console.log(JSON.stringify(db.prepare("SELECT name, stripe_customer_id FROM kavach_users WHERE id = 'shared'").get()))`)
  assert.deepEqual(JSON.parse(row), { name: 'other process', stripe_customer_id: customerId })
})

test('webhooks through the batch writer wait for the host lock in this process, and its closes do not disturb them', async () => {
  const secret = 'whsec_sharing_writer'
  const h = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, webhookSecret: secret, apiBase: fake.url })] })
  apis.push(h.plugins.getContext().stripe)
  const hostDb = new Database(db.file)
  hostDb.pragma('busy_timeout = 10000')
  const deliver = (evt) => {
    const body = JSON.stringify(evt)
    return h.plugins.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, secret) } }))
  }
  try {
    hostDb.prepare("INSERT INTO kavach_users (id, email, created_at, updated_at, stripe_customer_id) VALUES ('writer', 'writer@example.com', 1, 1, 'cus_writer')").run()
    hostDb.exec('BEGIN IMMEDIATE')
    hostDb.prepare("UPDATE kavach_users SET name = 'host' WHERE id = 'writer'").run()
    let settledAt = 0
    const pending = deliver(event('customer.subscription.created', subscription({ id: 'sub_writer', customer: 'cus_writer' }))).finally(() => { settledAt = Date.now() })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const committedAt = Date.now()
    hostDb.exec('COMMIT')
    assert.equal((await pending).status, 200)
    assert.ok(settledAt >= committedAt, 'the batch waited for the host transaction')
    const brief = new Database(db.file)
    brief.prepare('SELECT COUNT(*) FROM kavach_users').get()
    brief.close()
    assert.equal((await deliver(event('customer.subscription.updated', subscription({ id: 'sub_writer', customer: 'cus_writer', status: 'past_due' }), { created: Math.floor(Date.now() / 1000) + 5 }))).status, 200)
    assert.deepEqual(hostDb.prepare("SELECT name, stripe_subscription_id, stripe_subscription_status FROM kavach_users WHERE id = 'writer'").get(), { name: 'host', stripe_subscription_id: 'sub_writer', stripe_subscription_status: 'past_due' })
    assert.equal(hostDb.pragma('integrity_check', { simple: true }), 'ok')
  } finally {
    hostDb.close()
  }
})
