// `npm run bench` (or `npm run bench -- --quick`): one run, one Markdown table,
// written to bench/RESULTS.md with the machine, date, versions and command.
// Needs the release addon (`npm run build`), PostgreSQL at KAVACH_TEST_POSTGRES_URL
// and MariaDB/MySQL at KAVACH_TEST_MYSQL_URL.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import pg from 'pg'
import mysql from 'mysql2/promise'
import Database from 'better-sqlite3'
import Stripe from 'stripe'
import { constructEvent, stripe, verifySignature } from '../index.js'
import { createHost } from '../__test__/helpers/host.mjs'
import { event, signature, subscription } from '../__test__/helpers/events.mjs'
import { MYSQL_URL, POSTGRES_URL } from '../__test__/helpers/databases.mjs'
import { referenceHandler } from './reference.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const QUICK = process.argv.includes('--quick')
// `--only=sqlite` (or `postgres`, `mysql`): just that database's end-to-end rows, for
// iterating on the write path; it does not write RESULTS.md.
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length)
const SECRET = 'whsec_bench_secret'
const OP_MS = QUICK ? 200 : 1500
const E2E_COUNT = QUICK ? 600 : 6000
const MEMORY_COUNT = QUICK ? 10_000 : 100_000
const ROWS = 50
const rows = []
const row = (measure, ours, reference, notes = '') => {
  const ratio = typeof ours === 'number' && typeof reference === 'number' ? `${(ours / reference).toFixed(2)}×` : ''
  rows.push({ measure, ours, reference, ratio, notes })
  console.error(`${measure}: ${fmt(ours)} vs ${fmt(reference)} ${ratio} ${notes}`)
}
const fmt = (n) => (typeof n === 'number' ? Math.round(n).toLocaleString('en-US') : n ?? '')

function opsPerSecond(fn) {
  for (let i = 0; i < 200; i++) fn()
  let count = 0
  const end = performance.now() + OP_MS
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) fn()
    count += 50
  }
  return count / (OP_MS / 1000)
}

/** A realistic event of about `bytes`: real subscription shape, many small fields. */
function realisticEvent(bytes) {
  const evt = event('customer.subscription.updated', subscription({ id: 'sub_bench', customer: 'cus_bench' }))
  const object = evt.data.object
  let i = 0
  while (JSON.stringify(evt).length < bytes) {
    object.metadata[`key_${i}`] = `value_${i}_${'x'.repeat(i % 17)}`
    i++
  }
  return JSON.stringify(evt)
}

// ---- 1. verification --------------------------------------------------------
const sdk = new Stripe('sk_test_bench_0123')
for (const [label, size] of ONLY ? [] : [['1 KB', 1024], ['8 KB', 8192], ['64 KB', 65536]]) {
  const payload = Buffer.from(realisticEvent(size))
  const header = signature(payload.toString(), SECRET)
  const bare = opsPerSecond(() => crypto.createHmac('sha256', SECRET).update(payload).digest())
  const ours = opsPerSecond(() => verifySignature(payload, header, SECRET))
  const theirs = opsPerSecond(() => sdk.webhooks.signature.verifyHeader(payload, header, SECRET))
  row(`verify signature, ${label} (ops/s) vs stripe SDK verifyHeader`, ours, theirs)
  row(`verify signature, ${label} (ops/s) vs bare HMAC-SHA256 (node:crypto)`, ours, bare, 'the limit')
  const oursEvent = opsPerSecond(() => constructEvent(payload, header, SECRET))
  const theirsEvent = opsPerSecond(() => sdk.webhooks.constructEvent(payload, header, SECRET))
  row(`constructEvent, ${label} (ops/s) vs stripe SDK constructEvent`, oursEvent, theirsEvent)
}

// ---- 2.-4. end to end ---------------------------------------------------------
async function prepare(kind) {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-bench-'))
    const file = path.join(dir, 'bench.db')
    const db = new Database(file)
    db.exec(`CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      stripe_customer_id TEXT UNIQUE, stripe_subscription_id TEXT, stripe_subscription_status TEXT, stripe_price_id TEXT,
      stripe_current_period_end INTEGER, stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0)`)
    const insert = db.prepare('INSERT INTO kavach_users (id, email, created_at, updated_at, stripe_customer_id) VALUES (?, ?, 1, 1, ?)')
    for (let i = 0; i < ROWS; i++) insert.run(`bench_u${i}`, `u${i}@example.com`, `cus_bench_${i}`)
    db.close()
    return { database: { provider: 'sqlite-native', url: file }, done: () => fs.rmSync(dir, { recursive: true, force: true }) }
  }
  const tables = ['kavach_stripe_subscriptions', 'kavach_stripe_events', 'kavach_stripe_checkout_sessions', 'kavach_stripe_customer_claims', 'kavach_stripe_trial_grants', 'kavach_stripe_invoices', 'kavach_stripe_event_deliveries', 'kavach_stripe_schema', 'kavach_users']
  if (kind === 'mysql') {
    const conn = await mysql.createConnection({ uri: MYSQL_URL })
    for (const t of tables) await conn.query(`DROP TABLE IF EXISTS ${t}`)
    await conn.query(`CREATE TABLE kavach_users (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name TEXT, created_at DATETIME(3) NOT NULL DEFAULT UTC_TIMESTAMP(3), updated_at DATETIME(3) NOT NULL DEFAULT UTC_TIMESTAMP(3),
      stripe_customer_id VARCHAR(255) UNIQUE, stripe_subscription_id TEXT, stripe_subscription_status TEXT, stripe_price_id TEXT,
      stripe_current_period_end DATETIME(3), stripe_cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0) DEFAULT CHARSET = utf8mb4`)
    for (let i = 0; i < ROWS; i++) await conn.query('INSERT INTO kavach_users (id, email, stripe_customer_id) VALUES (?, ?, ?)', [`bench_u${i}`, `u${i}@example.com`, `cus_bench_${i}`])
    await conn.end()
    return { database: { provider: 'mysql', url: MYSQL_URL }, done: async () => {} }
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  for (const t of tables) await client.query(`DROP TABLE IF EXISTS ${t}`)
  await client.query(`CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    stripe_customer_id TEXT UNIQUE, stripe_subscription_id TEXT, stripe_subscription_status TEXT, stripe_price_id TEXT,
    stripe_current_period_end TIMESTAMPTZ, stripe_cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE)`)
  for (let i = 0; i < ROWS; i++) await client.query('INSERT INTO kavach_users (id, email, stripe_customer_id) VALUES ($1, $2, $3)', [`bench_u${i}`, `u${i}@example.com`, `cus_bench_${i}`])
  await client.end()
  return { database: { provider: 'postgres', url: POSTGRES_URL }, done: async () => {} }
}

let createdClock = 1_800_000_000
function bodies(count, distinct) {
  const start = createdClock
  createdClock += count + 1
  return Array.from({ length: count }, (_, i) => {
    const r = i % distinct
    return JSON.stringify(event('customer.subscription.updated', subscription({ id: `sub_bench_${r}`, customer: `cus_bench_${r}`, status: i % 2 ? 'active' : 'past_due', periodEnd: 1900000000 + i }), { created: start + i, id: `evt_bench_${start}_${i}` }))
  })
}

async function drive(handle, list, inFlight) {
  const latencies = []
  const loop = monitorEventLoopDelay({ resolution: 1 })
  let peakRss = process.memoryUsage().rss
  let next = 0
  loop.enable()
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < list.length) {
      const body = list[next++]
      const t0 = performance.now()
      const res = await handle(new Request('http://bench.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }))
      if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`)
      await res.arrayBuffer()
      latencies.push(performance.now() - t0)
      if (latencies.length % 250 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss)
    }
  }))
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  loop.disable()
  latencies.sort((a, b) => a - b)
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]
  return { perSecond: list.length / seconds, cpuPerRequestUs: (cpu.user + cpu.system) / list.length, p50: q(0.5), p99: q(0.99), loopP50: loop.percentile(50) / 1e6, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6, peakRss: peakRss / 1048576 }
}

/** A plugin that registers the webhook route and does nothing: the host's own cost. */
const noopPlugin = {
  id: 'noop',
  init(ctx) {
    ctx.addEndpoint({ method: 'POST', path: '/auth/stripe/webhook', metadata: { requireAuth: false }, handler: async () => Response.json({ received: true }) })
  },
}

const ms = (n) => n.toFixed(2)
const REPEATS = QUICK ? 1 : 3
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
/** The run with the median rate, with each figure replaced by its median over the runs. */
function medianRun(list) {
  const middle = [...list].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(list.length / 2)]
  return Object.fromEntries(Object.keys(middle).map((key) => [key, median(list.map((run) => run[key]))]))
}
for (const kind of ONLY ? [ONLY] : ['sqlite', 'postgres', 'mysql']) {
  for (const [inFlight, distinct] of [[1, 1], [50, 1], [50, ROWS]]) {
    const label = `${kind}, ${inFlight} in flight, ${distinct} row${distinct > 1 ? 's' : ''}`
    // The three runs alternate, REPEATS times; each figure is the median of its runs, so a burst
    // of load from elsewhere on a shared machine moves one run, not the row.
    const runs = { ceiling: [], ours: [], theirs: [] }
    for (let rep = 0; rep < REPEATS; rep++) {
      const noopHost = await createHost({ database: null, plugins: [noopPlugin] })
      runs.ceiling.push(await drive((r) => noopHost.plugins.handleRequest(r), bodies(E2E_COUNT, distinct), inFlight))
      const { database, done } = await prepare(kind)
      const host = await createHost({ database, plugins: [stripe({ secretKey: 'sk_test_bench_0123', webhookSecret: SECRET })] })
      runs.ours.push(await drive((r) => host.plugins.handleRequest(r), bodies(E2E_COUNT, distinct), inFlight))
      await host.plugins.getContext().stripe.close()
      const reference = referenceHandler(kind, database, SECRET)
      runs.theirs.push(await drive((r) => reference.handle(r), bodies(E2E_COUNT, distinct), inFlight))
      await reference.close()
      await done()
    }
    const [ceiling, ours, theirs] = [runs.ceiling, runs.ours, runs.theirs].map(medianRun)
    row(`host ceiling: webhooks/s with a plugin that does nothing, ${label}`, ceiling.perSecond, '', `process CPU ${Math.round(ceiling.cpuPerRequestUs)} µs per webhook`)
    row(
      `plugin's own CPU per webhook (µs), ${label}, vs JS reference`,
      ours.cpuPerRequestUs - ceiling.cpuPerRequestUs,
      theirs.cpuPerRequestUs - ceiling.cpuPerRequestUs,
      `process CPU per webhook minus the no-op host's: ours ${Math.round(ours.cpuPerRequestUs)} µs, reference ${Math.round(theirs.cpuPerRequestUs)} µs, no-op ${Math.round(ceiling.cpuPerRequestUs)} µs`,
    )
    row(
      `webhooks/s end to end, ${label} vs JS reference`,
      ours.perSecond,
      theirs.perSecond,
      `ours: p50 ${ms(ours.p50)} ms, p99 ${ms(ours.p99)} ms, loop delay p50/p99/max ${ms(ours.loopP50)}/${ms(ours.loopP99)}/${ms(ours.loopMax)} ms, peak RSS ${Math.round(ours.peakRss)} MB; reference: p99 ${ms(theirs.p99)} ms, loop p99 ${ms(theirs.loopP99)} ms`,
    )
  }
  // 3. GET /auth/stripe/subscription
  const { database, done } = await prepare(kind)
  const host = await createHost({ database, getUser: async () => ({ id: 'bench_u1' }), plugins: [stripe({ secretKey: 'sk_test_bench_0123', webhookSecret: SECRET })] })
  const reference = referenceHandler(kind, database, SECRET)
  const reads = async (fn) => {
    let next = 0
    const started = performance.now()
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (next++ < E2E_COUNT) await (await fn()).arrayBuffer()
    }))
    return E2E_COUNT / ((performance.now() - started) / 1000)
  }
  const oursReads = await reads(() => host.plugins.handleRequest(new Request('http://bench.test/auth/stripe/subscription')))
  const theirReads = await reads(() => reference.getSubscription('bench_u1'))
  row(`GET /auth/stripe/subscription per second, ${kind}, 50 in flight vs JS reference (Drizzle select)`, oursReads, theirReads)
  await host.plugins.getContext().stripe.close()
  await reference.close()
  await done()
}

// ---- 4. memory ------------------------------------------------------------------
if (!ONLY) {
  const { database, done } = await prepare('sqlite')
  const host = await createHost({ database, plugins: [stripe({ secretKey: 'sk_test_bench_0123', webhookSecret: SECRET })] })
  const warm = bodies(2000, ROWS)
  await drive((r) => host.plugins.handleRequest(r), warm, 50)
  globalThis.gc?.()
  const before = process.memoryUsage().rss
  for (let sent = 0; sent < MEMORY_COUNT; sent += 5000) await drive((r) => host.plugins.handleRequest(r), bodies(5000, ROWS), 50)
  globalThis.gc?.()
  const after = process.memoryUsage().rss
  await host.plugins.getContext().stripe.close()
  await done()
  row(`RSS growth over ${MEMORY_COUNT.toLocaleString('en-US')} webhooks (MB)`, (after - before) / 1048576, '', `RSS ${Math.round(before / 1048576)} MB before, ${Math.round(after / 1048576)} MB after (SQLite, 50 in flight)`)
}

// ---- the table -------------------------------------------------------------------
const pkg = (name) => JSON.parse(fs.readFileSync(path.join(here, '..', 'node_modules', name, 'package.json'), 'utf8')).version
const own = JSON.parse(fs.readFileSync(path.join(here, '..', 'package.json'), 'utf8'))
const table = [
  '| measure | kavachos-stripe | reference | ratio | notes |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.measure} | ${typeof r.ours === 'number' && r.ours < 100 ? r.ours.toFixed(1) : fmt(r.ours)} | ${fmt(r.reference)} | ${r.ratio} | ${r.notes} |`),
].join('\n')
const header = [
  `# Benchmark results`,
  '',
  `- command: \`npm run bench${QUICK ? ' -- --quick' : ''}\` (node --expose-gc bench/run.mjs${QUICK ? ' --quick' : ''})`,
  `- date: ${new Date().toISOString()}`,
  `- machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
  `- versions: kavachos-stripe ${own.version} (release build), node ${process.version}, stripe ${pkg('stripe')}, drizzle-orm ${pkg('drizzle-orm')}, better-sqlite3 ${pkg('better-sqlite3')}, pg ${pkg('pg')}, mysql2 ${pkg('mysql2')}`,
  `- Postgres: ${POSTGRES_URL.replace(/\/\/[^@]*@/, '//')} on the same machine`,
  `- MariaDB/MySQL: ${MYSQL_URL.replace(/\/\/[^@]*@/, '//')} on the same machine`,
  '',
]
console.log(table)
if (!QUICK && !ONLY) fs.writeFileSync(path.join(here, 'RESULTS.md'), `${header.join('\n')}\n${table}\n`)
