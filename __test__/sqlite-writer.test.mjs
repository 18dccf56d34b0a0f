// The SQLite group-commit writer, as a user's webhooks meet it: several
// deliveries held behind the host's own write lock land in one batch, and every
// guarantee holds inside it: a failing event fails alone, a failed commit is
// retried event by event, duplicates and reversed or same-second events inside
// one batch, and close() with work queued.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { startFakeStripe } from './helpers/fake-stripe.mjs'
import { openDatabase } from './helpers/databases.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_writer_suite_secret'
const KEY = 'sk_test_writer_suite_0123'

describe('the SQLite batch writer', async () => {
  const db = await openDatabase('sqlite')
  let fake
  let host
  const notifications = []

  const post = (target, evt) => {
    const body = JSON.stringify(evt)
    return target.plugins.handleRequest(
      new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }),
    )
  }
  const answer = async (response) => {
    const res = await response
    return { status: res.status, body: await res.json() }
  }
  const user = async (id, customer) => {
    await db.insertUser(id, `${id}@example.com`)
    await db.query('UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?', [customer, id])
  }
  const row = async (id) => (await db.query('SELECT stripe_subscription_id, stripe_subscription_status, stripe_price_id FROM kavach_users WHERE id = ?', [id]))[0]
  const ledger = async (id) => db.query('SELECT state, detail FROM kavach_stripe_events WHERE id = ?', [id])

  let sentinels = 0
  /**
   * Delivers `events` so that they reach the writer together: the host's own
   * connection holds the write lock while a first delivery waits on it and the
   * others queue behind; releasing the lock lets the queue go as one batch.
   */
  async function inOneBatch(events, target = host) {
    sentinels += 1
    const sentinelUser = `u_sentinel_${sentinels}`
    await user(sentinelUser, `cus_sentinel_${sentinels}`)
    db.db.exec('BEGIN IMMEDIATE')
    let released = false
    try {
      const first = answer(post(target, event('customer.subscription.created', subscription({ id: `sub_sentinel_${sentinels}`, customer: `cus_sentinel_${sentinels}` }))))
      await sleep(80)
      const rest = events.map((evt) => answer(post(target, evt)))
      await sleep(80)
      db.db.exec('COMMIT')
      released = true
      assert.equal((await first).status, 200)
      return await Promise.all(rest)
    } finally {
      if (!released) db.db.exec('COMMIT')
    }
  }

  before(async () => {
    if (!db) return
    fake = await startFakeStripe()
    await db.createHostUsersTable(true)
    host = await createHost({
      database: db.config,
      plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET, apiBase: fake.url, onSubscriptionChange: (userId, sub) => notifications.push({ userId, sub }) })],
    })
  })
  after(async () => {
    await host?.plugins.getContext().stripe.close()
    await fake?.close()
    await db?.close()
  })

  test('an event that fails inside its savepoint answers 500 alone; the rest of its batch commits', { skip: !db }, async () => {
    for (const n of [1, 2, 3]) await user(`u_fail_${n}`, `cus_fail_${n}`)
    db.db.exec(`CREATE TRIGGER poison_subscription BEFORE INSERT ON kavach_stripe_subscriptions
      WHEN NEW.id = 'sub_fail_2' BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END`)
    const events = [1, 2, 3].map((n) => event('customer.subscription.created', subscription({ id: `sub_fail_${n}`, customer: `cus_fail_${n}` })))
    try {
      const answers = await inOneBatch(events)
      assert.deepEqual(answers.map((a) => a.status), [200, 500, 200])
      assert.equal(answers[1].body.code, 'database_error')
      assert.deepEqual(await ledger(events[1].id), [], 'nothing of the failed event is recorded')
      assert.equal((await row('u_fail_1')).stripe_subscription_id, 'sub_fail_1')
      assert.equal((await row('u_fail_2')).stripe_subscription_id, null)
      assert.equal((await row('u_fail_3')).stripe_subscription_id, 'sub_fail_3')
    } finally {
      db.db.exec('DROP TRIGGER poison_subscription')
    }
    assert.deepEqual(await answer(post(host, events[1])), { status: 200, body: { received: true, notified: true } }, "Stripe's retry applies it")
    assert.equal((await row('u_fail_2')).stripe_subscription_id, 'sub_fail_2')
  })

  test('a batch whose commit fails is retried event by event: only the event that fails alone answers 5xx', { skip: !db }, async () => {
    for (const n of [1, 2, 3]) await user(`u_commit_${n}`, `cus_commit_${n}`)
    const events = [1, 2, 3].map((n) => event('customer.subscription.created', subscription({ id: `sub_commit_${n}`, customer: `cus_commit_${n}` })))
    // A deferred foreign key that the trapped event's ledger row breaks: the
    // statement succeeds, the COMMIT that holds it fails.
    db.db.exec(`CREATE TABLE commit_trap_parent (id INTEGER PRIMARY KEY);
      CREATE TABLE commit_trap (parent INTEGER REFERENCES commit_trap_parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER commit_trap_event AFTER INSERT ON kavach_stripe_events
        WHEN NEW.id = '${events[1].id}' BEGIN INSERT INTO commit_trap VALUES (1); END`)
    const notified = notifications.length
    try {
      const answers = await inOneBatch(events)
      assert.deepEqual(answers.map((a) => a.status), [200, 500, 200])
      assert.equal(answers[1].body.code, 'database_error')
      assert.equal(answers[0].body.duplicate, undefined, 'applied by its retry, not found applied before')
      assert.equal(answers[2].body.duplicate, undefined)
    } finally {
      db.db.exec('DROP TRIGGER commit_trap_event; DROP TABLE commit_trap; DROP TABLE commit_trap_parent')
    }
    assert.equal((await row('u_commit_1')).stripe_subscription_id, 'sub_commit_1')
    assert.equal((await row('u_commit_2')).stripe_subscription_id, null)
    assert.equal((await row('u_commit_3')).stripe_subscription_id, 'sub_commit_3')
    assert.deepEqual(await ledger(events[1].id), [])
    for (const evt of [events[0], events[2]]) assert.equal((await ledger(evt.id)).length, 1)
    const mine = notifications.slice(notified).filter((n) => n.userId.startsWith('u_commit_'))
    assert.deepEqual(mine.map((n) => n.userId).sort(), ['u_commit_1', 'u_commit_3'], 'each applied event notified once')
    assert.equal((await answer(post(host, events[1]))).status, 200)
    assert.equal((await row('u_commit_2')).stripe_subscription_id, 'sub_commit_2')
  })

  test('duplicates of one event in one batch apply and notify once', { skip: !db }, async () => {
    await user('u_dup', 'cus_dup')
    const evt = event('customer.subscription.created', subscription({ id: 'sub_dup', customer: 'cus_dup' }))
    const notified = notifications.filter((n) => n.userId === 'u_dup').length
    const answers = await inOneBatch([evt, evt, evt])
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200])
    assert.equal(answers.filter((a) => a.body.duplicate).length, 2)
    assert.equal(notifications.filter((n) => n.userId === 'u_dup').length, notified + 1)
    assert.deepEqual(await ledger(evt.id), [{ state: 'done', detail: null }])
  })

  test('events of one subscription in reverse order in one batch: the newest wins', { skip: !db }, async () => {
    await user('u_order', 'cus_order')
    const newer = event('customer.subscription.updated', subscription({ id: 'sub_order', customer: 'cus_order', status: 'past_due', price: 'price_new' }), { created: 1_800_000_100 })
    const older = event('customer.subscription.updated', subscription({ id: 'sub_order', customer: 'cus_order', status: 'active', price: 'price_old' }), { created: 1_800_000_000 })
    const answers = await inOneBatch([newer, older])
    assert.deepEqual(answers.map((a) => a.status), [200, 200])
    assert.deepEqual(await row('u_order'), { stripe_subscription_id: 'sub_order', stripe_subscription_status: 'past_due', stripe_price_id: 'price_new' })
    assert.deepEqual(await ledger(older.id), [{ state: 'done', detail: 'older than the stored state' }])
  })

  test('a same-second tie inside a batch takes the fetch path and applies what Stripe holds', { skip: !db }, async () => {
    await user('u_batch_tie', 'cus_batch_tie')
    const path = '/v1/subscriptions/sub_batch_tie'
    fake.objects.set(path, subscription({ id: 'sub_batch_tie', customer: 'cus_batch_tie', status: 'canceled', price: 'price_truth' }))
    const one = event('customer.subscription.updated', subscription({ id: 'sub_batch_tie', customer: 'cus_batch_tie', status: 'active' }), { created: 1_800_000_500 })
    const two = event('customer.subscription.updated', subscription({ id: 'sub_batch_tie', customer: 'cus_batch_tie', status: 'past_due' }), { created: 1_800_000_500 })
    const fetches = fake.requests.filter((r) => r.path === path).length
    const answers = await inOneBatch([one, two])
    assert.deepEqual(answers.map((a) => a.status), [200, 200])
    assert.equal(fake.requests.filter((r) => r.path === path).length, fetches + 1, 'one fetch settles the tie')
    assert.deepEqual(await row('u_batch_tie'), { stripe_subscription_id: 'sub_batch_tie', stripe_subscription_status: 'canceled', stripe_price_id: 'price_truth' })
  })

  test('an event over 64 KiB is verified off the event loop and applied the same way', { skip: !db }, async () => {
    await user('u_large', 'cus_large')
    const sub = subscription({ id: 'sub_large', customer: 'cus_large' })
    for (let i = 0; i < 40; i++) sub.metadata[`note_${i}`] = 'x'.repeat(480)
    sub.items.data[0].price.nickname = 'y'.repeat(60_000)
    const evt = event('customer.subscription.created', sub)
    assert.ok(JSON.stringify(evt).length > 64 * 1024)
    assert.deepEqual(await answer(post(host, evt)), { status: 200, body: { received: true, notified: true } })
    assert.equal((await row('u_large')).stripe_subscription_id, 'sub_large')
    const forged = JSON.stringify(evt)
    const res = await host.plugins.handleRequest(
      new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body: forged, headers: { 'stripe-signature': signature(forged, 'whsec_wrong') } }),
    )
    assert.deepEqual([res.status, (await res.json()).code], [400, 'signature_mismatch'])
  })

  test('reads and other writes keep working while the writer is busy', { skip: !db }, async () => {
    const api = host.plugins.getContext().stripe
    for (let n = 0; n < 20; n++) await user(`u_busy_${n}`, `cus_busy_${n}`)
    await db.insertUser('u_busy_new', 'u_busy_new@example.com')
    const webhooks = Array.from({ length: 200 }, (_, i) =>
      answer(post(host, event('customer.subscription.updated', subscription({ id: `sub_busy_${i % 20}`, customer: `cus_busy_${i % 20}` }), { created: 1_800_001_000 + i }))),
    )
    const others = await Promise.all([
      api.getSubscription('u_busy_0'),
      api.createCustomer('u_busy_new', 'u_busy_new@example.com'),
      api.getCustomerId('u_busy_1'),
    ])
    assert.equal(others[2], 'cus_busy_1')
    assert.match(others[1], /^cus_fake_/)
    assert.ok((await Promise.all(webhooks)).every((a) => a.status === 200))
    assert.equal(await api.getCustomerId('u_busy_new'), others[1])
    assert.equal((await row('u_busy_7')).stripe_subscription_id, 'sub_busy_7')
  })

  test('close() commits and answers what is queued, then new deliveries get closed', { skip: !db }, async () => {
    const own = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET, apiBase: fake.url })] })
    for (const n of [1, 2, 3, 4]) await user(`u_close_${n}`, `cus_close_${n}`)
    const events = [1, 2, 3, 4].map((n) => event('customer.subscription.created', subscription({ id: `sub_close_${n}`, customer: `cus_close_${n}` })))
    db.db.exec('BEGIN IMMEDIATE')
    let closing
    let answers
    try {
      answers = events.map((evt) => answer(post(own, evt)))
      await sleep(80)
      closing = own.plugins.getContext().stripe.close()
      await sleep(50)
    } finally {
      db.db.exec('COMMIT')
    }
    assert.deepEqual((await Promise.all(answers)).map((a) => a.status), [200, 200, 200, 200])
    await closing
    for (const n of [1, 2, 3, 4]) assert.equal((await row(`u_close_${n}`)).stripe_subscription_id, `sub_close_${n}`)
    const late = await answer(post(own, event('customer.subscription.created', subscription({ id: 'sub_close_late', customer: 'cus_close_1' }))))
    assert.deepEqual([late.status, late.body.code], [500, 'closed'])
  })
})
