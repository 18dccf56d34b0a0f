// One app instance of the chaos run: the plugin behind the contract host,
// delivering its share of the deliveries like Stripe (redelivering every
// non-2xx), making the app's own calls (change plan, cancel, resume, sync)
// meanwhile, with an onSubscriptionChange that sometimes throws. Every 2xx
// answer and every notification is appended to a journal as it happens, so
// the run can account for an instance that is killed mid-way.
import fs from 'node:fs'
import { stripe } from '../../index.js'
import { createHost } from '../helpers/host.mjs'
import { signature } from '../helpers/events.mjs'
import { seededRandom } from './random.mjs'

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const journal = fs.openSync(job.journalFile, 'a')
const record = (entry) => fs.writeSync(journal, `${JSON.stringify(entry)}\n`)
const notifications = []
let listenerThrows = 0
const random = seededRandom(job.seed)

const host = await createHost({
  database: job.database,
  plugins: [
    stripe({
      secretKey: job.secretKey,
      webhookSecret: job.webhookSecret,
      apiBase: job.apiBase,
      maxNetworkRetries: 1,
      onSubscriptionChange: async (userId, sub) => {
        if (random() < job.listenerThrowRate) {
          listenerThrows += 1
          throw new Error('chaos: the app failed')
        }
        const notification = { userId, at: performance.timeOrigin + performance.now(), sub: { ...sub, currentPeriodEnd: sub.currentPeriodEnd?.toISOString() ?? null } }
        notifications.push(notification)
        record({ notification })
      },
    }),
  ],
})
const api = host.plugins.getContext().stripe

const responses = []
let retries = 0
const failures = {}
let next = 0
async function lane() {
  while (next < job.deliveries.length) {
    const index = next++
    const payload = job.deliveries[index]
    record({ start: index })
    for (let attempt = 1; ; attempt++) {
      const res = await host.plugins.handleRequest(
        new Request('http://chaos.test/api/kavach/auth/stripe/webhook', { method: 'POST', body: payload, headers: { 'stripe-signature': signature(payload, job.webhookSecret) } }),
        '/api/kavach',
      )
      const body = await res.json()
      const id = JSON.parse(payload).id
      if (res.status >= 200 && res.status < 300) {
        responses.push({ id, body, attempt })
        record({ ack: index, id, body, attempt })
        break
      }
      const key = `${res.status} ${body.code}`
      failures[key] = (failures[key] ?? 0) + 1
      responses.push({ id, failed: key })
      record({ fail: index, id, key })
      retries += 1
      if (attempt >= job.maxAttempts) throw new Error(`delivery of ${id} failed ${attempt} times: ${key} ${body.error}`)
      await new Promise((resolve) => setTimeout(resolve, Math.min(25 * attempt, job.maxBackoffMs ?? 250)))
    }
  }
}
/** The app's own calls, each made once its share of the deliveries has started. */
const operations = []
async function appCalls() {
  for (const call of job.operations ?? []) {
    while (next < Math.floor(call.at * job.deliveries.length) && next < job.deliveries.length) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    try {
      if (call.op === 'change_plan') await api.changePlan(call.userId, { priceId: call.price })
      else if (call.op === 'cancel') await api.cancelSubscription(call.userId)
      else if (call.op === 'cancel_now') await api.cancelSubscription(call.userId, { immediately: true })
      else if (call.op === 'resume') await api.resumeSubscription(call.userId)
      else await api.syncSubscription(call.userId)
      operations.push({ ...call, ok: true })
    } catch (error) {
      operations.push({ ...call, ok: false, code: error.code ?? 'thrown' })
    }
    record({ operation: operations.at(-1) })
  }
}
/**
 * Reconcile once, early in this instance's deliveries (again while anything fails). It runs on a
 * second plugin instance in this process whose callback never throws: a throw would leave a
 * notification owed that a later delivery of the same event rightly delivers, which the oracle
 * could not tell from a no-op duplicate that notified.
 */
const reconciles = []
async function reconcilePass() {
  if (job.reconcileAt === null || job.reconcileAt === undefined) return
  const reconcileHost = await createHost({
    database: job.database,
    plugins: [
      stripe({
        secretKey: job.secretKey,
        webhookSecret: job.webhookSecret,
        apiBase: job.apiBase,
        maxNetworkRetries: 1,
        onSubscriptionChange: async (userId, sub) => {
          const notification = { userId, at: performance.timeOrigin + performance.now(), sub: { ...sub, currentPeriodEnd: sub.currentPeriodEnd?.toISOString() ?? null } }
          notifications.push(notification)
          record({ notification })
        },
      }),
    ],
  })
  const reconciler = reconcileHost.plugins.getContext().stripe
  try {
    await runReconcile(reconciler)
  } finally {
    await reconciler.close()
  }
}
async function runReconcile(reconciler) {
  while (next < Math.floor(job.reconcileAt * job.deliveries.length) && next < job.deliveries.length) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  for (let attempt = 1; attempt <= 8; attempt++) {
    try {
      const counts = await reconciler.reconcile()
      reconciles.push({ attempt, counts })
      // Failed events (a callback that threw, a Stripe fetch that failed) are run again, as the README says.
      if (counts.failed === 0) return
    } catch (error) {
      reconciles.push({ attempt, failed: error.code ?? 'thrown' })
    }
  }
}
await Promise.all([...Array.from({ length: job.concurrency }, lane), appCalls(), reconcilePass()])
await api.close()
fs.writeFileSync(job.resultFile, JSON.stringify({ name: job.name, responses, notifications, retries, failures, listenerThrows, operations, reconciles }))
