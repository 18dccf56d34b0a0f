// The chaos run (`npm run test:chaos`): thousands of signed subscription
// lifecycle events for hundreds of users, each delivered one to three times in
// shuffled order by several app instances at once (4 on one Postgres, 3 on one
// MariaDB, 2 on one SQLite file), with a fake Stripe that fails and stalls,
// one instance's database connections killed again and again in the middle of
// its batches, a callback that throws, commits that fail on Postgres and
// SQLite (a deferred foreign key broken by a random ledger insert, so the
// whole batch's commit fails), ledger inserts that fail on MariaDB (a trigger
// that signals an error), and on SQLite an instance killed (SIGKILL) in the
// middle of its batches and replaced. An oracle computed from the events
// alone checks the stored state, the projection and the notifications, and
// that every delivery answered 200 is in the ledger.
//
// Meanwhile the app changes plans, cancels, resumes and syncs a fifth of the
// users' subscriptions through the API (the fake Stripe applies them to what
// it holds, with the same faults). A call that succeeded must have stored
// Stripe's answer for good: every event is older than it. A call that failed
// (Stripe refused or failed, a connection died, the callback threw) is
// followed by a sync, as the webhook Stripe sends for a change would be.
//
// Early on, one instance of each part runs reconcile: Stripe's event
// list (every generated event) is handled through the webhook code while the
// same events are being delivered; the ledger must keep each one once.
//
// CHAOS_USERS (default 200) scales it; CHAOS_ONLY=postgres|mysql|sqlite runs one part.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import mysql from 'mysql2/promise'
import Database from 'better-sqlite3'
import { stripe } from '../../index.js'
import { createHost } from '../helpers/host.mjs'
import { checkoutSession, event, invoice, subscription } from '../helpers/events.mjs'
import { MYSQL_URL, POSTGRES_URL } from '../helpers/databases.mjs'
import { seededRandom } from './random.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const USERS = Number(process.env.CHAOS_USERS ?? 200)
const ONLY = process.env.CHAOS_ONLY
const SECRET_KEY = 'sk_test_chaos_0123456789'
const WEBHOOK_SECRET = 'whsec_chaos_secret'
const LIVE = ['trialing', 'active', 'past_due', 'unpaid', 'paused', 'incomplete']
const random = seededRandom(20261128)
/** One ledger insert in this many breaks the commit that holds it (Postgres, SQLite) or fails (MariaDB). */
const COMMIT_TRAP_ODDS = 150
/** The SQLite instance that is killed is killed once this share of its deliveries is answered. */
const KILL_AFTER_SHARE = 0.3
/** The MariaDB account of the instance whose connections are killed. */
const MYSQL_VICTIM = 'kavach_chaos1'
const OWN_TABLES = ['kavach_stripe_subscriptions', 'kavach_stripe_events', 'kavach_stripe_checkout_sessions', 'kavach_stripe_customer_claims', 'kavach_stripe_trial_grants', 'kavach_stripe_invoices', 'kavach_stripe_event_deliveries', 'kavach_stripe_schema', 'kavach_users']
const pick = (list) => list[Math.floor(random() * list.length)]
/** The share of users whose subscription the app changes during the run. */
const APP_OPERATION_SHARE = 0.2
const APP_OPERATIONS = ['change_plan', 'change_plan', 'cancel', 'resume', 'cancel_now', 'sync']

// ---- the events, and the truth they imply ---------------------------------
function generate() {
  const events = []
  const truth = new Map() // subscription id -> final object
  const invoices = new Map() // invoice id -> final state
  const users = []
  // Within the last 25 days, so reconcile (30 days of Stripe's events) can list them all.
  const spacing = Math.min(10000, Math.floor((24 * 86400) / USERS))
  const base = Math.floor(Date.now() / 1000) - 25 * 86400
  for (let u = 0; u < USERS; u++) {
    const userId = `chaos_u${u}`
    const customer = `cus_chaos_${u}`
    users.push({ id: userId, customer })
    let t = base + u * spacing
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
          // A renewal invoice: finalized, failed once (maybe needing action),
          // then paid, voided, uncollectible or left open, its events sharing
          // seconds and arriving in any order.
          const invoiceId = `in_chaos_${u}_${s}_${k}`
          const bill = (status, attempts, extra = {}) => ({
            ...invoice({ subscriptionId: id, customer }), id: invoiceId, status, attempt_count: attempts, created: t, billing_reason: 'subscription_cycle',
            amount_due: 1500, currency: 'usd', next_payment_attempt: status === 'open' && attempts > 0 ? t + 259200 : null, hosted_invoice_url: `https://invoice.stripe.test/${invoiceId}`, ...extra,
          })
          emit('invoice.finalized', bill('open', 0), t)
          const action = random() < 0.3
          if (action) emit('invoice.payment_action_required', bill('open', 1), t)
          let final = { status: 'open', attempts: 1, action, created: t, subscription: id, nextPaymentAttempt: t + 259200 }
          const outcome = random()
          const settledAt = t + Math.floor(random() * 400)
          if (outcome < 0.35) {
            emit('invoice.paid', bill('paid', 1), settledAt)
            final = { ...final, status: 'paid' }
          } else if (outcome < 0.5) {
            const [type, status] = pick([['invoice.voided', 'void'], ['invoice.marked_uncollectible', 'uncollectible']])
            emit(type, bill(status, 1), settledAt)
            final = { ...final, status }
          }
          invoices.set(invoiceId, final)
          emit('invoice.payment_failed', bill('open', 1), t)
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
  const operations = users
    .filter(() => random() < APP_OPERATION_SHARE)
    .flatMap((user) => Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ userId: user.id, op: pick(APP_OPERATIONS), price: pick(['price_basic', 'price_pro', 'price_team']), at: random() })))
  return { events, truth, users, operations, invoices }
}

// ---- a fake Stripe that holds the truth, and fails on purpose -------------
async function startStripe(truth, faults, events) {
  const server = http.createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_chaos' })
      res.end(JSON.stringify(body))
    }
    // Reconcile lists ~120 pages of events: its listing fails 1% of the time
    // and never stalls, or it would rarely finish while deliveries still run.
    const listing = req.url.startsWith('/v1/events?')
    const roll = random()
    if (roll < (listing ? 0.01 : 0.08)) {
      faults.stripe500 += 1
      return reply(500, { error: { type: 'api_error', message: 'chaos' } })
    }
    if (!listing && roll < 0.1) {
      faults.stripeStall += 1
      return setTimeout(() => reply(500, { error: { type: 'api_error', message: 'too late' } }), 6000)
    }
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
      const match = req.url.match(/^\/v1\/subscriptions\/([A-Za-z0-9_]+)$/)
      const held = match && truth.get(match[1])
      if (req.method === 'GET' && held) return reply(200, held)
      if (held && held.status === 'canceled' && req.method !== 'GET') {
        return reply(400, { error: { type: 'invalid_request_error', message: 'A canceled subscription can only update its cancellation_details.' } })
      }
      // The app's own changes, applied to what this Stripe holds.
      if (req.method === 'DELETE' && held) {
        const ended = { ...structuredClone(held), status: 'canceled', cancel_at_period_end: false, cancel_at: null }
        truth.set(held.id, ended)
        return reply(200, ended)
      }
      if (req.method === 'POST' && held) {
        const next = structuredClone(held)
        if (form.has('items[0][price]')) {
          const item = next.items.data.find((i) => i.id === form.get('items[0][id]'))
          if (!item) return reply(400, { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such subscription item' } })
          item.price = { ...item.price, id: form.get('items[0][price]') }
          item.quantity = Number(form.get('items[0][quantity]') ?? 1)
        }
        if (form.has('cancel_at_period_end')) next.cancel_at_period_end = form.get('cancel_at_period_end') === 'true'
        if (form.get('cancel_at') === '') next.cancel_at = null
        truth.set(held.id, next)
        return reply(200, next)
      }
      if (req.method === 'GET' && req.url.startsWith('/v1/events?')) {
        const query = new URL(req.url, 'http://chaos').searchParams
        const types = query.getAll('types[]')
        const gte = Number(query.get('created[gte]') ?? -Infinity)
        const lt = Number(query.get('created[lt]') ?? Infinity)
        const all = events.filter((e) => types.includes(e.type) && e.created >= gte && e.created < lt).sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1))
        const after = query.get('starting_after')
        const from = after ? all.findIndex((e) => e.id === after) + 1 : 0
        const limit = Number(query.get('limit') ?? 10)
        return reply(200, { object: 'list', url: '/v1/events', has_more: from + limit < all.length, data: all.slice(from, from + limit) })
      }
      if (req.method === 'GET' && req.url.startsWith('/v1/subscriptions?')) {
        const customer = new URL(req.url, 'http://chaos').searchParams.get('customer')
        const data = [...truth.values()].filter((sub) => sub.customer === customer)
        return reply(200, { object: 'list', url: '/v1/subscriptions', has_more: false, data })
      }
      reply(404, { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such object' } })
    })
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

function startWorker(job, dir) {
  const jobFile = path.join(dir, `${job.name}.job.json`)
  job.resultFile = path.join(dir, `${job.name}.result.json`)
  job.journalFile = path.join(dir, `${job.name}.journal.jsonl`)
  fs.writeFileSync(jobFile, JSON.stringify(job))
  const child = spawn(process.execPath, [path.join(here, 'worker.mjs'), jobFile], { stdio: ['ignore', 'inherit', 'inherit'] })
  const done = new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => (code === 0 ? resolve(JSON.parse(fs.readFileSync(job.resultFile, 'utf8'))) : signal === 'SIGKILL' ? resolve(null) : reject(new Error(`${job.name} exited with ${code}`))))
  })
  return { child, done, job }
}

/** What a worker answered and notified, from its journal (also when it was killed). */
function readJournal(file) {
  // Polled while the worker appends: a last line without its newline is still being written.
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  const entries = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((line) => JSON.parse(line))
  const acked = new Set(entries.filter((e) => 'ack' in e).map((e) => e.ack))
  return {
    acked,
    /** Deliveries started and never answered: cut off by a kill. */
    interrupted: entries.filter((e) => 'start' in e && !acked.has(e.start)).map((e) => e.start),
    responses: entries.filter((e) => 'ack' in e || 'fail' in e).map(({ id, body, attempt, key }) => (key ? { id, failed: key } : { id, body, attempt })),
    notifications: entries.filter((e) => e.notification).map((e) => e.notification),
  }
}

/**
 * Runs a worker, SIGKILLs it once `killAfter` of its deliveries are answered,
 * and runs a replacement on what it had not answered (whatever it held in a
 * batch or a lease is redelivered, as Stripe would).
 */
async function runKilledWorker(job, dir, faults) {
  const victim = startWorker(job, dir)
  const target = Math.floor(job.deliveries.length * KILL_AFTER_SHARE)
  await new Promise((resolve) => {
    const poll = setInterval(() => {
      if (readJournal(victim.job.journalFile).acked.size >= target) {
        victim.child.kill('SIGKILL')
        clearInterval(poll)
        resolve()
      }
    }, 20)
    victim.done.then(() => { clearInterval(poll); resolve() }, () => {})
  })
  await victim.done
  const journal = readJournal(victim.job.journalFile)
  faults.killed.push(`${job.name} after ${journal.acked.size} of ${job.deliveries.length} answered`)
  const rest = job.deliveries.filter((_, i) => !journal.acked.has(i))
  // A lease left by the killed instance (60 s) must be able to expire while the replacement retries.
  const replacement = await startWorker({ ...job, name: `${job.name}-replacement`, deliveries: rest, maxAttempts: 400, maxBackoffMs: 1000 }, dir).done
  return {
    ...replacement,
    // An interrupted delivery failed, as far as Stripe knows: its retry may deliver a notification it owed.
    responses: [...journal.responses, ...journal.interrupted.map((i) => ({ id: JSON.parse(job.deliveries[i]).id, failed: 'killed' })), ...replacement.responses],
    notifications: [...journal.notifications, ...replacement.notifications],
  }
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

/** The payment issue of a subscription, from the invoices' final states. */
function expectedIssue(invoices, subscriptionId) {
  const open = [...invoices.entries()]
    .filter(([, i]) => i.subscription === subscriptionId && i.status === 'open')
    .sort(([a, x], [b, y]) => y.created - x.created || (a < b ? 1 : a > b ? -1 : 0))
  if (open.length === 0) return null
  const [id, i] = open[0]
  return { invoiceId: id, reason: i.action ? 'requires_action' : 'payment_failed', amountDue: 1500, currency: 'usd', attemptCount: i.attempts, nextPaymentAttempt: new Date(i.nextPaymentAttempt * 1000).toISOString(), hostedInvoiceUrl: `https://invoice.stripe.test/${id}` }
}

async function check(kind, read, truth, users, results, mismatches, invoices) {
  // Every invoice ends in its last state, whatever order its events came in.
  const storedInvoices = new Map((await read('SELECT id, status, attempt_count, action_required FROM kavach_stripe_invoices')).map((r) => [r.id, r]))
  for (const [id, expected] of invoices) {
    const r = storedInvoices.get(id)
    // "Requires action" belongs to the open attempt; a final state clears it.
    compare(`${kind} invoice ${id}`, { status: expected.status, attempts: expected.attempts, action: expected.status === 'open' && expected.action }, r && { status: r.status, attempts: Number(r.attempt_count), action: Boolean(Number(r.action_required)) }, mismatches)
  }
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
    const paymentIssue = expectedIssue(invoices, winner.id)
    compare(`${kind} last notification of ${user.id}`, { id: winner.id, status: winner.status, priceId: winner.price, currentPeriodEnd: new Date(winner.periodEnd * 1000).toISOString(), cancelAtPeriodEnd: winner.scheduled, plan: null, paymentIssue }, last?.sub && JSON.parse(JSON.stringify(last.sub)), mismatches)
  }
  // Nothing answered 200 is lost, nothing is left half-done.
  const ledger = new Map((await read('SELECT id, state FROM kavach_stripe_events')).map((r) => [r.id, r.state]))
  for (const id of new Set(results.flatMap((r) => r.responses.filter((x) => !x.failed).map((x) => x.id)))) {
    if (!['done', 'ignored'].includes(ledger.get(id))) mismatches.push(`${kind} ${id}: answered 200 but the ledger holds ${ledger.get(id) ?? 'nothing'}`)
  }
  for (const [id, state] of ledger) if (!['done', 'ignored'].includes(state)) mismatches.push(`${kind} ${id}: left in state ${state}`)
  // A duplicate may notify only to deliver what an earlier failed delivery owed.
  const failed = new Set(results.flatMap((r) => r.responses.filter((x) => x.failed).map((x) => x.id)))
  for (const response of results.flatMap((r) => r.responses)) {
    if (response.body?.duplicate && response.body.notified && !failed.has(response.id)) mismatches.push(`${kind} ${response.id}: a no-op duplicate notified`)
  }
}

/** Runs the package's migrations, so the faults can be armed on its tables. */
async function migrate(database) {
  const host = await createHost({ database, plugins: [stripe({ secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET })] })
  await host.plugins.getContext().stripe.close()
}

// ---- one part: N instances on one database ---------------------------------
async function part(kind, instances, generated, dir) {
  const counts = { events: generated.events.length, deliveries: 0, duplicates: 0 }
  const faults = { stripe500: 0, stripeStall: 0, connectionsKilled: 0, killed: [] }
  // The app's calls change what Stripe holds: each part starts from the events' truth.
  const truth = new Map([...generated.truth].map(([id, sub]) => [id, structuredClone(sub)]))
  const stripeServer = await startStripe(truth, faults, generated.events)
  let database
  let read
  let cleanup = async () => {}
  let killer = null
  if (kind === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    for (const table of [...OWN_TABLES, 'chaos_trap', 'chaos_trap_parent']) await client.query(`DROP TABLE IF EXISTS ${table}`)
    await client.query(`CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)`)
    for (const user of generated.users) await client.query('INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES ($1, $2, now(), now())', [user.id, `${user.id}@example.com`])
    database = (i) => ({ provider: 'postgres', url: `${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}application_name=kavach-chaos-${i}` })
    await migrate(database(0))
    // Arm the commit trap: a batch holding a trapped ledger insert fails at its commit.
    await client.query(`CREATE TABLE chaos_trap_parent (id INTEGER PRIMARY KEY);
      CREATE TABLE chaos_trap (parent INTEGER REFERENCES chaos_trap_parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE OR REPLACE FUNCTION chaos_commit_trap() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF floor(random() * ${COMMIT_TRAP_ODDS}) = 0 THEN INSERT INTO chaos_trap VALUES (1); END IF; RETURN NEW; END $$;
      CREATE TRIGGER chaos_commit_trap AFTER INSERT ON kavach_stripe_events FOR EACH ROW EXECUTE FUNCTION chaos_commit_trap()`)
    read = async (sql) => (await client.query(sql)).rows
    // Kill instance 1's database connections, again and again, while it works.
    killer = setInterval(async () => {
      const killed = await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kavach-chaos-1' AND pid <> pg_backend_pid()")
      faults.connectionsKilled += killed.rowCount
    }, 700)
    cleanup = () => client.end()
  } else if (kind === 'mysql') {
    const admin = await mysql.createConnection({ uri: MYSQL_URL, timezone: 'Z' })
    for (const table of OWN_TABLES) await admin.query(`DROP TABLE IF EXISTS ${table}`)
    await admin.query('CREATE TABLE kavach_users (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name TEXT, created_at DATETIME(3) NOT NULL, updated_at DATETIME(3) NOT NULL)')
    for (const user of generated.users) await admin.query('INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES (?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))', [user.id, `${user.id}@example.com`])
    // Instance 1 connects with an account of its own, so its connections can be told apart and killed.
    const url = new URL(MYSQL_URL)
    const schema = url.pathname.slice(1)
    for (const host of ['%', 'localhost']) {
      await admin.query(`CREATE USER IF NOT EXISTS '${MYSQL_VICTIM}'@'${host}'`)
      await admin.query(`GRANT ALL ON \`${schema}\`.* TO '${MYSQL_VICTIM}'@'${host}'`)
    }
    const victimUrl = new URL(MYSQL_URL)
    victimUrl.username = MYSQL_VICTIM
    victimUrl.password = ''
    database = (i) => ({ provider: 'mysql', url: i === 1 ? victimUrl.toString() : MYSQL_URL })
    await migrate(database(0))
    await admin.query(`CREATE TRIGGER chaos_insert_trap BEFORE INSERT ON kavach_stripe_events FOR EACH ROW
      BEGIN IF FLOOR(RAND() * ${COMMIT_TRAP_ODDS}) = 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'chaos: a ledger insert failed'; END IF; END`)
    read = async (sql) => (await admin.query(sql))[0]
    killer = setInterval(async () => {
      const [rows] = await admin.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [MYSQL_VICTIM])
      for (const row of rows) {
        try {
          await admin.query(`KILL CONNECTION ${Number(row.ID)}`)
          faults.connectionsKilled += 1
        } catch {
          // Gone meanwhile.
        }
      }
    }, 700)
    cleanup = () => admin.end()
  } else {
    const file = path.join(dir, 'chaos.db')
    const db = new Database(file)
    db.exec('CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)')
    const insert = db.prepare('INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES (?, ?, 1, 1)')
    for (const user of generated.users) insert.run(user.id, `${user.id}@example.com`)
    db.close()
    database = () => ({ provider: 'sqlite-native', url: file })
    // Migrate first, then arm the commit trap on the package's ledger.
    await migrate(database())
    const trap = new Database(file)
    trap.exec(`CREATE TABLE chaos_trap_parent (id INTEGER PRIMARY KEY);
      CREATE TABLE chaos_trap (parent INTEGER REFERENCES chaos_trap_parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER chaos_commit_trap AFTER INSERT ON kavach_stripe_events
        WHEN abs(random()) % ${COMMIT_TRAP_ODDS} = 0 BEGIN INSERT INTO chaos_trap VALUES (1); END`)
    trap.close()
    read = async (sql) => {
      const reader = new Database(file, { readonly: true })
      try { return reader.prepare(sql).all() } finally { reader.close() }
    }
  }

  const all = deliveries(generated.events, counts)
  const shares = Array.from({ length: instances }, (_, i) => all.filter((_, j) => j % instances === i))
  // The app's calls go to every instance but the one that is killed.
  const callers = Array.from({ length: instances }, (_, i) => i).filter((i) => !(kind === 'sqlite' && i === 0))
  const calls = shares.map((_, i) => generated.operations.filter((_, j) => callers[j % callers.length] === i))
  const started = Date.now()
  const results = await Promise.all(
    shares.map((share, i) => {
      const job = { name: `${kind}-${i}`, database: database(i), secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET, apiBase: stripeServer.url, deliveries: share, operations: calls[i], reconcileAt: i === callers[0] ? 0.15 : null, concurrency: 8, listenerThrowRate: 0.03, maxAttempts: 200, seed: 1000 + i }
      if (kind === 'sqlite' && i === 0) return runKilledWorker(job, dir, faults)
      return startWorker(job, dir).done
    }),
  )
  if (killer) clearInterval(killer)
  // A failed call is followed by a sync of that user, as the webhook Stripe
  // sends for a change that happened would be.
  const failedCalls = results.flatMap((r) => r.operations ?? []).filter((o) => !o.ok)
  const repair = { name: `${kind}-repair`, responses: [], notifications: [], retries: 0, failures: {}, listenerThrows: 0 }
  if (failedCalls.length > 0) {
    const repairHost = await createHost({
      database: database(0),
      plugins: [stripe({ secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET, apiBase: stripeServer.url, onSubscriptionChange: (userId, sub) => {
        repair.notifications.push({ userId, at: performance.timeOrigin + performance.now(), sub: { ...sub, currentPeriodEnd: sub.currentPeriodEnd?.toISOString() ?? null } })
      } })],
    })
    const repairApi = repairHost.plugins.getContext().stripe
    for (const userId of new Set(failedCalls.map((o) => o.userId))) {
      for (let attempt = 1; ; attempt++) {
        try {
          await repairApi.syncSubscription(userId)
          break
        } catch (error) {
          if (attempt >= 30) throw new Error(`the repair sync of ${userId} kept failing: ${error.code} ${error.message}`)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
    }
    await repairApi.close()
  }
  results.push(repair)
  const seconds = (Date.now() - started) / 1000
  const mismatches = []
  await check(kind, read, truth, generated.users, results, mismatches, generated.invoices)
  await cleanup()
  await stripeServer.close()
  const sum = (f) => results.reduce((n, r) => n + f(r), 0)
  const failures = {}
  for (const r of results) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
  console.log(`${kind}: ${instances} instances, ${generated.users.length} users, ${counts.events} events, ${counts.deliveries} deliveries (${counts.duplicates} duplicates), ${sum((r) => r.retries)} redeliveries after non-2xx, ${seconds.toFixed(1)} s`)
  const trap = kind === 'mysql' ? `ledger inserts failed for 1 in ${COMMIT_TRAP_ODDS}` : `commits broken for 1 in ${COMMIT_TRAP_ODDS} ledger inserts`
  const killed = kind === 'sqlite' ? `, instance killed: ${faults.killed.join('; ')}` : ''
  console.log(`${kind}: faults injected: ${faults.stripe500} Stripe 500s, ${faults.stripeStall} stalled Stripe fetches, ${faults.connectionsKilled} database connections killed, ${sum((r) => r.listenerThrows)} throwing callbacks, ${trap}${killed}`)
  console.log(`${kind}: non-2xx answers: ${JSON.stringify(failures)}; notifications: ${sum((r) => r.notifications.length)}`)
  const operations = results.flatMap((r) => r.operations ?? [])
  const refusals = {}
  for (const o of operations.filter((o) => !o.ok)) refusals[o.code] = (refusals[o.code] ?? 0) + 1
  const reconciles = results.flatMap((r) => r.reconciles ?? [])
  console.log(`${kind}: reconcile during delivery: ${reconciles.map((r) => JSON.stringify(r)).join('; ') || 'none'}`)
  if (reconciles.length === 0 || !reconciles.some((r) => r.counts)) mismatches.push(`${kind}: reconcile never completed`)
  console.log(`${kind}: app calls during delivery: ${operations.length} (${operations.filter((o) => o.ok).length} succeeded; failed: ${JSON.stringify(refusals)}), then ${new Set(failedCalls.map((o) => o.userId)).size} repair syncs`)
  for (const m of mismatches.slice(0, 20)) console.log(`  MISMATCH ${m}`)
  return mismatches.length
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-chaos-'))
let mismatches = 0
try {
  const generated = generate()
  if (!ONLY || ONLY === 'postgres') mismatches += await part('postgres', 4, generated, dir)
  if (!ONLY || ONLY === 'mysql') mismatches += await part('mysql', 3, generated, dir)
  if (!ONLY || ONLY === 'sqlite') mismatches += await part('sqlite', 2, generated, dir)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log(`mismatches: ${mismatches}`)
process.exit(mismatches === 0 ? 0 : 1)
