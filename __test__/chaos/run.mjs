// The chaos run (`npm run test:chaos`): thousands of signed subscription
// lifecycle events for hundreds of users, each delivered one to three times in
// shuffled order by several app instances at once (4 on one Postgres, 2 on one
// SQLite file), with a fake Stripe that fails and stalls, database connections
// killed mid-run and a callback that throws. An oracle computed from the
// events alone checks the stored state, the projection and the notifications.
//
// CHAOS_USERS (default 200) scales it; CHAOS_ONLY=postgres|sqlite runs one half.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import Database from 'better-sqlite3'
import { checkoutSession, event, invoice, subscription } from '../helpers/events.mjs'
import { POSTGRES_URL } from '../helpers/databases.mjs'
import { seededRandom } from './random.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const USERS = Number(process.env.CHAOS_USERS ?? 200)
const ONLY = process.env.CHAOS_ONLY
const SECRET_KEY = 'sk_test_chaos_0123456789'
const WEBHOOK_SECRET = 'whsec_chaos_secret'
const LIVE = ['trialing', 'active', 'past_due', 'unpaid', 'paused', 'incomplete']
const random = seededRandom(20261128)
const pick = (list) => list[Math.floor(random() * list.length)]

// ---- the events, and the truth they imply ---------------------------------
function generate() {
  const events = []
  const truth = new Map() // subscription id -> final object
  const users = []
  const base = 1760000000
  for (let u = 0; u < USERS; u++) {
    const userId = `chaos_u${u}`
    const customer = `cus_chaos_${u}`
    users.push({ id: userId, customer })
    let t = base + u * 10000
    const subscriptions = random() < 0.35 ? 2 : 1
    for (let s = 0; s < subscriptions; s++) {
      const id = `sub_chaos_${u}_${s}`
      const created = t
      let state = { id, customer, userId, created, status: pick(['incomplete', 'trialing', 'active']), price: pick(['price_basic', 'price_pro']), periodEnd: t + 2592000, cancelAtPeriodEnd: false }
      const emit = (type, object, at) => events.push(event(type, object, { created: at, id: `evt_chaos_${events.length}` }))
      const snapshot = () => subscription(state)
      emit('customer.subscription.created', snapshot(), t)
      emit('checkout.session.completed', checkoutSession({ id: `cs_chaos_${u}_${s}`, customer, subscription: id, clientReferenceId: userId }), t)
      const updates = 3 + Math.floor(random() * 4)
      for (let k = 0; k < updates; k++) {
        t += random() < 0.25 ? 0 : 1 + Math.floor(random() * 50) // a quarter share their second with the previous event
        if (state.status === 'active' && random() < 0.3) {
          emit('invoice.payment_failed', invoice({ subscriptionId: id, customer }), t)
          state = { ...state, status: 'past_due' }
          t += random() < 0.5 ? 0 : 1
          emit('customer.subscription.updated', snapshot(), t)
          continue
        }
        state = {
          ...state,
          status: pick(['active', 'active', 'trialing', 'past_due', 'unpaid', 'paused']),
          price: pick(['price_basic', 'price_pro', 'price_team']),
          periodEnd: state.periodEnd + (random() < 0.5 ? 2592000 : 0),
          cancelAtPeriodEnd: random() < 0.2,
        }
        emit('customer.subscription.updated', snapshot(), t)
      }
      if (s + 1 < subscriptions || random() < 0.3) {
        t += 1 + Math.floor(random() * 20)
        state = { ...state, status: 'canceled', cancelAtPeriodEnd: false }
        emit('customer.subscription.deleted', snapshot(), t)
      }
      truth.set(id, snapshot())
      t += 100
    }
  }
  return { events, truth, users }
}

// ---- a fake Stripe that holds the truth, and fails on purpose -------------
async function startStripe(truth, faults) {
  const server = http.createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_chaos' })
      res.end(JSON.stringify(body))
    }
    const roll = random()
    if (roll < 0.08) {
      faults.stripe500 += 1
      return reply(500, { error: { type: 'api_error', message: 'chaos' } })
    }
    if (roll < 0.1) {
      faults.stripeStall += 1
      return setTimeout(() => reply(500, { error: { type: 'api_error', message: 'too late' } }), 6000)
    }
    const match = req.url.match(/^\/v1\/subscriptions\/(.+)$/)
    if (req.method === 'GET' && match && truth.has(match[1])) return reply(200, truth.get(match[1]))
    reply(404, { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such object' } })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections(); return new Promise((resolve) => server.close(resolve)) },
  }
}

// ---- deliveries: each event one to three times, shuffled -------------------
function deliveries(events, counts) {
  const list = []
  for (const evt of events) {
    const times = 1 + Math.floor(random() * 3)
    counts.deliveries += times
    counts.duplicates += times - 1
    for (let i = 0; i < times; i++) list.push(JSON.stringify(evt))
  }
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[list[i], list[j]] = [list[j], list[i]]
  }
  return list
}

function runWorker(job, dir) {
  const jobFile = path.join(dir, `${job.name}.job.json`)
  job.resultFile = path.join(dir, `${job.name}.result.json`)
  fs.writeFileSync(jobFile, JSON.stringify(job))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'worker.mjs'), jobFile], { stdio: ['ignore', 'inherit', 'inherit'] })
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(fs.readFileSync(job.resultFile, 'utf8'))) : reject(new Error(`${job.name} exited with ${code}`))))
  })
}

// ---- the oracle ------------------------------------------------------------
function project(subs) {
  const rank = (s) => [LIVE.includes(s.status) ? 1 : 0, s.created, s.id]
  const better = (a, b) => {
    const [x, y] = [rank(a), rank(b)]
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] > y[i]
    return false
  }
  let best = null
  for (const s of subs) if (!best || better(s, best)) best = s
  return best
}

function compare(label, expected, actual, mismatches) {
  const e = JSON.stringify(expected)
  const a = JSON.stringify(actual)
  if (e !== a) {
    mismatches.push(`${label}: expected ${e}, got ${a}`)
  }
}

async function check(kind, read, truth, users, results, mismatches) {
  const stored = await read('SELECT id, user_id, status, price_id, current_period_end, cancel_at_period_end, cancel_at FROM kavach_stripe_subscriptions')
  const byId = new Map(stored.map((r) => [r.id, r]))
  const finals = new Map()
  for (const [id, sub] of truth) {
    const item = sub.items.data[0]
    const expected = { user: sub.metadata.kavach_user_id, status: sub.status, price: item.price.id, periodEnd: item.current_period_end, scheduled: sub.cancel_at_period_end || sub.cancel_at !== null }
    finals.set(id, { ...expected, id, created: sub.created })
    const r = byId.get(id)
    compare(`${kind} subscription ${id}`, expected, r && { user: r.user_id, status: r.status, price: r.price_id, periodEnd: Number(r.current_period_end), scheduled: Boolean(Number(r.cancel_at_period_end)) || r.cancel_at !== null }, mismatches)
  }
  const rows = await read('SELECT id, stripe_customer_id, stripe_subscription_id, stripe_subscription_status, stripe_price_id, stripe_current_period_end, stripe_cancel_at_period_end FROM kavach_users')
  const userRows = new Map(rows.map((r) => [r.id, r]))
  const lastNotification = new Map()
  for (const n of results.flatMap((r) => r.notifications)) {
    const previous = lastNotification.get(n.userId)
    if (!previous || n.at >= previous.at) lastNotification.set(n.userId, n)
  }
  for (const user of users) {
    const winner = project([...finals.values()].filter((s) => s.user === user.id))
    const expected = { customer: user.customer, id: winner.id, status: winner.status, price: winner.price, periodEnd: winner.periodEnd, scheduled: winner.scheduled }
    const r = userRows.get(user.id)
    const periodEnd = r.stripe_current_period_end instanceof Date ? r.stripe_current_period_end.getTime() / 1000 : Number(r.stripe_current_period_end)
    compare(`${kind} user ${user.id}`, expected, { customer: r.stripe_customer_id, id: r.stripe_subscription_id, status: r.stripe_subscription_status, price: r.stripe_price_id, periodEnd, scheduled: Boolean(Number(r.stripe_cancel_at_period_end)) }, mismatches)
    const last = lastNotification.get(user.id)
    compare(`${kind} last notification of ${user.id}`, { id: winner.id, status: winner.status, priceId: winner.price, currentPeriodEnd: new Date(winner.periodEnd * 1000).toISOString(), cancelAtPeriodEnd: winner.scheduled }, last?.sub, mismatches)
  }
  // A duplicate may notify only to deliver what an earlier failed delivery owed.
  const failed = new Set(results.flatMap((r) => r.responses.filter((x) => x.failed).map((x) => x.id)))
  for (const response of results.flatMap((r) => r.responses)) {
    if (response.body?.duplicate && response.body.notified && !failed.has(response.id)) mismatches.push(`${kind} ${response.id}: a no-op duplicate notified`)
  }
}

// ---- one half: N instances on one database ---------------------------------
async function half(kind, instances, generated, dir) {
  const counts = { events: generated.events.length, deliveries: 0, duplicates: 0 }
  const faults = { stripe500: 0, stripeStall: 0, connectionsKilled: 0 }
  const stripeServer = await startStripe(generated.truth, faults)
  let database
  let read
  let cleanup = async () => {}
  let killer = null
  if (kind === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    for (const table of ['kavach_stripe_subscriptions', 'kavach_stripe_events', 'kavach_stripe_checkout_sessions', 'kavach_stripe_customer_claims', 'kavach_stripe_schema', 'kavach_users']) await client.query(`DROP TABLE IF EXISTS ${table}`)
    await client.query(`CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)`)
    for (const user of generated.users) await client.query('INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES ($1, $2, now(), now())', [user.id, `${user.id}@example.com`])
    database = (i) => ({ provider: 'postgres', url: `${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}application_name=kavach-chaos-${i}` })
    read = async (sql) => (await client.query(sql)).rows
    // Kill instance 1's database connections, again and again, while it works.
    killer = setInterval(async () => {
      const killed = await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kavach-chaos-1' AND pid <> pg_backend_pid()")
      faults.connectionsKilled += killed.rowCount
    }, 700)
    cleanup = () => client.end()
  } else {
    const file = path.join(dir, 'chaos.db')
    const db = new Database(file)
    db.exec('CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)')
    const insert = db.prepare('INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES (?, ?, 1, 1)')
    for (const user of generated.users) insert.run(user.id, `${user.id}@example.com`)
    db.close()
    database = () => ({ provider: 'sqlite-native', url: file })
    read = async (sql) => {
      const reader = new Database(file, { readonly: true })
      try { return reader.prepare(sql).all() } finally { reader.close() }
    }
  }

  const all = deliveries(generated.events, counts)
  const shares = Array.from({ length: instances }, (_, i) => all.filter((_, j) => j % instances === i))
  const started = Date.now()
  const results = await Promise.all(
    shares.map((share, i) =>
      runWorker({ name: `${kind}-${i}`, database: database(i), secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET, apiBase: stripeServer.url, deliveries: share, concurrency: 8, listenerThrowRate: 0.03, maxAttempts: 200, seed: 1000 + i }, dir),
    ),
  )
  if (killer) clearInterval(killer)
  const seconds = (Date.now() - started) / 1000
  const mismatches = []
  await check(kind, read, generated.truth, generated.users, results, mismatches)
  await cleanup()
  await stripeServer.close()
  const sum = (f) => results.reduce((n, r) => n + f(r), 0)
  const failures = {}
  for (const r of results) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
  console.log(`${kind}: ${instances} instances, ${generated.users.length} users, ${counts.events} events, ${counts.deliveries} deliveries (${counts.duplicates} duplicates), ${sum((r) => r.retries)} redeliveries after non-2xx, ${seconds.toFixed(1)} s`)
  console.log(`${kind}: faults injected: ${faults.stripe500} Stripe 500s, ${faults.stripeStall} stalled Stripe fetches, ${faults.connectionsKilled} database connections killed, ${sum((r) => r.listenerThrows)} throwing callbacks`)
  console.log(`${kind}: non-2xx answers: ${JSON.stringify(failures)}; notifications: ${sum((r) => r.notifications.length)}`)
  for (const m of mismatches.slice(0, 20)) console.log(`  MISMATCH ${m}`)
  return mismatches.length
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-chaos-'))
let mismatches = 0
try {
  const generated = generate()
  if (ONLY !== 'sqlite') mismatches += await half('postgres', 4, generated, dir)
  if (ONLY !== 'postgres') mismatches += await half('sqlite', 2, generated, dir)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log(`mismatches: ${mismatches}`)
process.exit(mismatches === 0 ? 0 : 1)
