// Postgres as many deployments run it: the app's role owns its schema but is
// not a superuser, and connections go through PgBouncer in transaction mode
// (each transaction may get another server connection). Two instances migrate
// at once through the pooler, then take subscription webhooks concurrently:
// the batch writer's one statement per batch needs no session state.
//
// Needs PgBouncer (Debian's `pgbouncer`); under CI=true its absence fails the
// run, elsewhere the suite is skipped with a message.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { POSTGRES_URL } from './helpers/databases.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_pooler_suite_secret'
const KEY = 'sk_test_pooler_suite_0123'
const ROLE = 'kavach_pooled_app'
const USERS = 20
const REQUIRED = process.env.CI === 'true'

const pgbouncer = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((file) => fs.existsSync(file))
if (!pgbouncer) {
  if (REQUIRED) throw new Error('CI=true: PgBouncer is required for the pooler suite (apt-get install pgbouncer)')
  console.log('# postgres-pooler: skipped, PgBouncer is not installed')
}

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitForPort(port) {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true) })
      socket.on('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`PgBouncer did not listen on ${port}`)
}

describe('Postgres through PgBouncer in transaction mode, as a role that is not a superuser', { skip: !pgbouncer }, () => {
  const database = new URL(POSTGRES_URL).pathname.slice(1)
  let admin
  let bouncer
  let dir
  let pooledUrl
  const hosts = []

  before(async () => {
    admin = new pg.Client({ connectionString: POSTGRES_URL })
    await admin.connect()
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [ROLE])
    if (exists.rowCount) {
      await admin.query(`DROP SCHEMA IF EXISTS ${ROLE} CASCADE`)
      await admin.query(`DROP OWNED BY ${ROLE}`)
      await admin.query(`DROP ROLE ${ROLE}`)
    }
    await admin.query(`CREATE ROLE ${ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`)
    await admin.query(`CREATE SCHEMA ${ROLE} AUTHORIZATION ${ROLE}`)
    await admin.query(`GRANT CONNECT ON DATABASE ${database} TO ${ROLE}`)

    // The host's own table, created by the app's role in its schema.
    const url = new URL(POSTGRES_URL)
    url.username = ROLE
    url.password = ''
    const app = new pg.Client({ connectionString: url.toString() })
    await app.connect()
    await app.query('CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)')
    await app.end()

    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-pgbouncer-'))
    fs.chmodSync(dir, 0o777)
    const port = await freePort()
    const server = new URL(POSTGRES_URL)
    fs.writeFileSync(path.join(dir, 'users.txt'), `"${ROLE}" ""\n`)
    fs.writeFileSync(path.join(dir, 'pgbouncer.ini'), [
      '[databases]',
      `${database} = host=${server.hostname} port=${server.port || 5432} dbname=${database}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      // Fewer server connections than the instances' pools hold: transactions
      // of one client connection land on different server connections.
      'default_pool_size = 3',
      'max_client_conn = 200',
      'ignore_startup_parameters = extra_float_digits,options,search_path',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'))
    // PgBouncer refuses to run as root; switch to the postgres account then.
    const asRoot = process.getuid?.() === 0
    bouncer = spawn(pgbouncer, [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], { stdio: 'ignore' })
    await waitForPort(port)
    pooledUrl = `postgres://${ROLE}@127.0.0.1:${port}/${database}`
  })

  after(async () => {
    for (const host of hosts) await host.plugins.getContext().stripe.close()
    bouncer?.kill()
    if (admin) {
      await admin.query(`DROP SCHEMA IF EXISTS ${ROLE} CASCADE`)
      await admin.query(`DROP OWNED BY ${ROLE}`)
      await admin.query(`DROP ROLE IF EXISTS ${ROLE}`)
      await admin.end()
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  const post = (host, evt) => {
    const body = JSON.stringify(evt)
    return host.plugins.handleRequest(
      new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }),
    )
  }

  test('two instances migrate at once through the pooler, into the role\'s own schema', async () => {
    const started = await Promise.all([0, 1].map(() => createHost({
      database: { provider: 'postgres', url: pooledUrl },
      plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET })],
    })))
    hosts.push(...started)
    const versions = await admin.query(`SELECT version FROM ${ROLE}.kavach_stripe_schema ORDER BY version`)
    assert.deepEqual(versions.rows.map((r) => r.version), [6])
    const fn = await admin.query(`SELECT p.proname, r.rolname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner WHERE n.nspname = $1 AND p.proname = 'kavach_stripe_apply_events'`, [ROLE])
    assert.deepEqual(fn.rows, [{ proname: 'kavach_stripe_apply_events', rolname: ROLE }])
  })

  test('webhooks from both instances, 50 in flight, are applied once each and projected', async () => {
    for (let u = 0; u < USERS; u++) {
      await admin.query(`INSERT INTO ${ROLE}.kavach_users (id, email, created_at, updated_at, stripe_customer_id) VALUES ($1, $2, now(), now(), $3)`, [`pool_u${u}`, `pool_u${u}@example.com`, `cus_pool_${u}`])
    }
    const events = []
    for (let u = 0; u < USERS; u++) {
      // Newest first for half of the users: older events must not win.
      const order = u % 2 ? [9, 8, 7, 6, 5, 4, 3, 2, 1, 0] : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      for (const k of order) {
        events.push(event('customer.subscription.updated', subscription({ id: `sub_pool_${u}`, customer: `cus_pool_${u}`, price: `price_v${k}`, periodEnd: 1900000000 + k }), { created: 1760000000 + k, id: `evt_pool_${u}_${k}` }))
      }
    }
    const answers = []
    let next = 0
    await Promise.all(Array.from({ length: 50 }, async (_, lane) => {
      while (next < events.length) {
        const evt = events[next++]
        const res = await post(hosts[lane % 2], evt)
        answers.push({ status: res.status, body: await res.json() })
      }
    }))
    assert.deepEqual(answers.filter((a) => a.status !== 200), [])
    assert.equal(answers.filter((a) => a.body.duplicate).length, 0)
    const rows = await admin.query(`SELECT id, stripe_subscription_id, stripe_price_id, CAST(EXTRACT(EPOCH FROM stripe_current_period_end) AS BIGINT) AS period_end FROM ${ROLE}.kavach_users ORDER BY id`)
    for (const row of rows.rows) {
      const u = row.id.slice('pool_u'.length)
      assert.deepEqual(row, { id: row.id, stripe_subscription_id: `sub_pool_${u}`, stripe_price_id: 'price_v9', period_end: '1900000009' })
    }
    const ledger = await admin.query(`SELECT state, COUNT(*)::int AS n FROM ${ROLE}.kavach_stripe_events GROUP BY state`)
    assert.deepEqual(ledger.rows, [{ state: 'done', n: USERS * 10 }])

    // Redelivered: every one a duplicate, nothing written.
    const again = await Promise.all(events.slice(0, 40).map(async (evt, i) => (await post(hosts[i % 2], evt)).json()))
    assert.ok(again.every((body) => body.duplicate === true), JSON.stringify(again))
  })
})
