// End-to-end webhook throughput through the contract host (Request in,
// Response out: verification, ledger, database write, commit), on a SQLite
// file and on Postgres, sequential and with many in flight.
// `node bench/e2e.mjs [--quick]`; build with `npm run build` (release) first.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import pg from 'pg'
import Database from 'better-sqlite3'
import { stripe } from '../index.js'
import { createHost } from '../__test__/helpers/host.mjs'
import { event, signature, subscription } from '../__test__/helpers/events.mjs'
import { POSTGRES_URL } from '../__test__/helpers/databases.mjs'

const QUICK = process.argv.includes('--quick')
const SECRET = 'whsec_bench_secret'
const COUNT = QUICK ? 500 : 5000
const ROWS = 50

async function setup(kind) {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-bench-'))
    const file = path.join(dir, 'bench.db')
    const db = new Database(file)
    db.exec('CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, stripe_customer_id TEXT UNIQUE)')
    const insert = db.prepare('INSERT INTO kavach_users (id, email, created_at, updated_at, stripe_customer_id) VALUES (?, ?, 1, 1, ?)')
    for (let i = 0; i < ROWS; i++) insert.run(`bench_u${i}`, `u${i}@example.com`, `cus_bench_${i}`)
    db.close()
    return { database: { provider: 'sqlite-native', url: file }, done: () => fs.rmSync(dir, { recursive: true, force: true }) }
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  for (const t of ['kavach_stripe_subscriptions', 'kavach_stripe_events', 'kavach_stripe_checkout_sessions', 'kavach_stripe_customer_claims', 'kavach_stripe_schema', 'kavach_users']) await client.query(`DROP TABLE IF EXISTS ${t}`)
  await client.query('CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), stripe_customer_id TEXT UNIQUE)')
  for (let i = 0; i < ROWS; i++) await client.query('INSERT INTO kavach_users (id, email, stripe_customer_id) VALUES ($1, $2, $3)', [`bench_u${i}`, `u${i}@example.com`, `cus_bench_${i}`])
  await client.end()
  return { database: { provider: 'postgres', url: POSTGRES_URL }, done: async () => {} }
}

function payloads(rows, startCreated) {
  // customer.subscription.updated events of about 3.4 KB, each newer than the last.
  return Array.from({ length: COUNT }, (_, i) => {
    const row = i % rows
    const body = JSON.stringify(event('customer.subscription.updated', subscription({ id: `sub_bench_${row}`, customer: `cus_bench_${row}`, status: i % 2 ? 'active' : 'past_due', periodEnd: 1900000000 + i }), { created: startCreated + i, id: `evt_bench_${startCreated}_${i}` }))
    return body
  })
}

async function run(kind, inFlight, rows) {
  const { database, done } = await setup(kind)
  const host = await createHost({ database, plugins: [stripe({ secretKey: 'sk_test_bench_0123', webhookSecret: SECRET })] })
  const bodies = payloads(rows, 1_800_000_000)
  const latencies = []
  const loop = monitorEventLoopDelay({ resolution: 1 })
  const rssBefore = process.memoryUsage().rss
  let peakRss = rssBefore
  let next = 0
  loop.enable()
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++]
      const t0 = performance.now()
      const res = await host.plugins.handleRequest(new Request('http://bench.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }))
      if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`)
      latencies.push(performance.now() - t0)
      if (latencies.length % 500 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss)
    }
  }))
  const seconds = (performance.now() - started) / 1000
  loop.disable()
  await host.plugins.getContext().stripe.close()
  await done()
  latencies.sort((a, b) => a - b)
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]
  return {
    kind, inFlight, rows, perSecond: Math.round(COUNT / seconds),
    p50: q(0.5).toFixed(2), p99: q(0.99).toFixed(2),
    loopP50: (loop.percentile(50) / 1e6).toFixed(2), loopP99: (loop.percentile(99) / 1e6).toFixed(2), loopMax: (loop.max / 1e6).toFixed(2),
    peakRssMb: Math.round(peakRss / 1048576),
  }
}

console.log(`| database | in flight | rows | webhooks/s | p50 ms | p99 ms | loop p50 ms | loop p99 ms | loop max ms | peak RSS MB |`)
console.log(`|---|---|---|---|---|---|---|---|---|---|`)
for (const kind of ['sqlite', 'postgres']) {
  for (const [inFlight, rows] of [[1, 1], [50, 1], [50, ROWS]]) {
    const r = await run(kind, inFlight, rows)
    console.log(`| ${r.kind} | ${r.inFlight} | ${r.rows} | ${r.perSecond} | ${r.p50} | ${r.p99} | ${r.loopP50} | ${r.loopP99} | ${r.loopMax} | ${r.peakRssMb} |`)
  }
}
