// The Postgres and MySQL batch writers, as a user's webhooks meet them: many
// deliveries at once share batches, hostile text survives the trip into the
// batch document unchanged, an event the database refuses fails alone while
// the rest of its batch commits, and a batch chosen as a deadlock's victim is
// retried instead of failing its deliveries.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { stripe } from '../index.js'
import { createHost } from './helpers/host.mjs'
import { MYSQL_URL, POSTGRES_URL, openDatabase } from './helpers/databases.mjs'
import { event, signature, subscription } from './helpers/events.mjs'

const SECRET = 'whsec_server_writer_secret'
const KEY = 'sk_test_server_writer_0123'

for (const kind of ['postgres', 'mysql']) {
  describe(`the ${kind} batch writer`, async () => {
    const db = await openDatabase(kind)
    let host
    const notifications = []

    before(async () => {
      if (!db) return
      await db.reset()
      await db.createHostUsersTable(true)
      host = await createHost({
        database: db.config,
        plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET, onSubscriptionChange: (userId, sub) => { notifications.push({ userId, sub }) } })],
      })
    })
    after(async () => {
      await host?.plugins.getContext().stripe.close()
      await db?.close()
    })

    const post = async (evt) => {
      const body = JSON.stringify(evt)
      const res = await host.plugins.handleRequest(
        new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }),
      )
      return { status: res.status, body: await res.json() }
    }
    const user = async (id, customer) => {
      await db.insertUser(id, `${id}@example.com`)
      await db.query(`UPDATE kavach_users SET stripe_customer_id = ? WHERE id = ?`, [customer, id])
    }

    test('text that could end the batch document or a SQL literal is stored exactly', { skip: !db }, async () => {
      const hostile = [
        '$kavach_batch$); DROP TABLE kavach_users; --',
        "price_'quoted'\\back$lash$$",
        'price_ünïcødé_😀',
      ]
      for (const [i, price] of hostile.entries()) {
        await user(`hostile_u${i}`, `cus_hostile_${i}`)
        const sub = subscription({ id: `sub_hostile_${i}`, customer: `cus_hostile_${i}`, price })
        sub.metadata = { note: '$kavach_batch$' }
        const answer = await post(event('customer.subscription.updated', sub, { created: 1760000000 + i }))
        assert.deepEqual(answer, { status: 200, body: { received: true, notified: true } })
        const [row] = await db.query(`SELECT stripe_price_id FROM kavach_users WHERE id = ?`, [`hostile_u${i}`])
        assert.equal(row.stripe_price_id, price)
      }
      assert.equal(Number((await db.query('SELECT COUNT(*) AS n FROM kavach_users'))[0].n), hostile.length)
    })

    test('fifty deliveries at once: each applied once, the one the database refuses fails alone', { skip: !db }, async () => {
      for (let u = 0; u < 10; u++) await user(`batch_u${u}`, `cus_batch_${u}`)
      const events = []
      for (let u = 0; u < 10; u++) {
        for (let k = 0; k < 5; k++) {
          events.push(event('customer.subscription.updated', subscription({ id: `sub_batch_${u}`, customer: `cus_batch_${u}`, price: `price_${k}`, periodEnd: 1900000000 + k }), { created: 1760000100 + k, id: `evt_batch_${u}_${k}` }))
        }
      }
      // Refused by the database, on a subscription of its own (so no later event of the batch
      // supersedes it): a period end beyond Postgres's timestamps (on the projection it wins), or a
      // price id over VARCHAR(255) (MySQL's strict mode).
      const refused = events[23]
      refused.data.object.id = 'sub_batch_refused'
      if (kind === 'postgres') {
        refused.data.object.created = 1800000000
        refused.data.object.items.data[0].current_period_end = 9000000000000000
      } else {
        refused.data.object.items.data[0].price.id = `price_${'x'.repeat(300)}`
      }
      const answers = await Promise.all(events.map(post))
      const failed = answers.map((a, i) => (a.status === 200 ? null : i)).filter((i) => i !== null)
      assert.deepEqual(failed, [23])
      assert.equal(answers[23].status, 500)
      assert.equal(answers[23].body.code, 'database_error')
      const ledger = await db.query("SELECT id FROM kavach_stripe_events WHERE id LIKE 'evt_batch_%'")
      assert.equal(ledger.length, 49)
      assert.ok(!ledger.some((r) => r.id === refused.id), 'nothing of the refused event is recorded')
      const rows = await db.query("SELECT id, stripe_price_id FROM kavach_users WHERE id LIKE 'batch_u%' ORDER BY id")
      assert.deepEqual(rows.map((r) => r.stripe_price_id), Array(10).fill('price_4'))
      // Redelivered: duplicates, except the refused one, which fails again the same way.
      const again = await Promise.all(events.map(post))
      assert.deepEqual(again.map((a) => a.status === 200 && a.body.duplicate === true), events.map((_, i) => i !== 23))
    })

    test('a batch that loses a deadlock is retried: the delivery still answers 200', { skip: !db }, async () => {
      await user('deadlock_u', 'cus_deadlock')
      const first = event('customer.subscription.created', subscription({ id: 'sub_deadlock', customer: 'cus_deadlock', price: 'price_a' }), { created: 1760000200 })
      assert.equal((await post(first)).status, 200)
      // Another session takes the subscription row, then (while the writer holds the user row and
      // waits for the subscription) the user row: the opposite order, so one of the two is a
      // deadlock's victim.
      const other = kind === 'postgres' ? new pg.Client({ connectionString: POSTGRES_URL }) : await mysql.createConnection({ uri: MYSQL_URL })
      if (kind === 'postgres') await other.connect()
      const run = (sql) => other.query(sql)
      const deadlocks = async () => {
        const rows = kind === 'postgres'
          ? (await db.query('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()'))
          : (await db.query("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'"))
        return Number(kind === 'postgres' ? rows[0].deadlocks : rows[0].Value)
      }
      const before = await deadlocks()
      await run('BEGIN')
      // Rows changed first make this session the costlier one to roll back, so MySQL (which rolls
      // back the cheaper side) picks the writer, as Postgres does (whose older lock wait detects it).
      await run("INSERT INTO kavach_stripe_checkout_sessions (id, user_id, created_at) VALUES ('cs_dl_1', 'x', 1), ('cs_dl_2', 'x', 1), ('cs_dl_3', 'x', 1), ('cs_dl_4', 'x', 1)")
      await run("SELECT id FROM kavach_stripe_subscriptions WHERE id = 'sub_deadlock' FOR UPDATE")
      const delivery = post(event('customer.subscription.updated', subscription({ id: 'sub_deadlock', customer: 'cus_deadlock', price: 'price_b' }), { created: 1760000201 }))
      await new Promise((resolve) => setTimeout(resolve, 300))
      let otherFailed = false
      try {
        await run("SELECT id FROM kavach_users WHERE id = 'deadlock_u' FOR UPDATE")
      } catch {
        otherFailed = true
      }
      await run('ROLLBACK')
      const answer = await delivery
      await other.end()
      assert.deepEqual(answer, { status: 200, body: { received: true, notified: true } })
      const [row] = await db.query('SELECT stripe_price_id FROM kavach_users WHERE id = ?', ['deadlock_u'])
      assert.equal(row.stripe_price_id, 'price_b')
      // Postgres counts the deadlock after the victim's lock wait times out; it may lag a little.
      for (let i = 0; i < 20 && (await deadlocks()) === before; i++) await new Promise((resolve) => setTimeout(resolve, 100))
      assert.equal(await deadlocks(), before + 1, 'a deadlock happened')
      // The writer's batch was the victim, and its retry committed.
      assert.equal(otherFailed, false)
    })

    test('a user row held elsewhere for long delays only its own events', { skip: !db }, async () => {
      const free = Array.from({ length: 10 }, (_, i) => `held_free_${i}`)
      for (const [i, id] of free.entries()) await user(id, `cus_held_${i}`)
      await user('held_u', 'cus_held_locked')
      const other = kind === 'postgres' ? new pg.Client({ connectionString: POSTGRES_URL }) : await mysql.createConnection({ uri: MYSQL_URL })
      if (kind === 'postgres') await other.connect()
      await other.query('BEGIN')
      await other.query("SELECT id FROM kavach_users WHERE id = 'held_u' FOR UPDATE")
      // The app's transaction ends after 30 s at the latest; the others must be answered well before.
      let released = false
      const release = setTimeout(async () => { released = true; await other.query('ROLLBACK') }, 30000)
      const locked = event('customer.subscription.updated', subscription({ id: 'sub_held_locked', customer: 'cus_held_locked' }), { created: 1760000300 })
      const lockedAnswer = post(locked)
      const answers = await Promise.all(free.map((_, i) => post(event('customer.subscription.updated', subscription({ id: `sub_held_${i}`, customer: `cus_held_${i}` }), { created: 1760000300 }))))
      const answeredWhileHeld = !released
      const stuck = await lockedAnswer
      const stuckWhileHeld = !released
      clearTimeout(release)
      if (!released) await other.query('ROLLBACK')
      await other.end()
      assert.ok(answeredWhileHeld, 'the other users\' webhooks were answered while the row was held')
      assert.deepEqual(answers.map((a) => a.status), Array(10).fill(200))
      assert.ok(stuckWhileHeld, 'the held user\'s webhook gave up on the row')
      assert.equal(stuck.status, 500)
      assert.equal(stuck.body.code, 'database_error')
      // Once the row is free, Stripe's retry applies it.
      assert.equal((await post(locked)).status, 200)
      const [row] = await db.query('SELECT stripe_subscription_id FROM kavach_users WHERE id = ?', ['held_u'])
      assert.equal(row.stripe_subscription_id, 'sub_held_locked')
    })

    test('a migration whose connection is killed while it waits for the lock is retried', { skip: !db }, async () => {
      const other = kind === 'postgres' ? new pg.Client({ connectionString: POSTGRES_URL }) : await mysql.createConnection({ uri: MYSQL_URL })
      if (kind === 'postgres') await other.connect()
      // Hold the package's migration lock, so the next instance's migration waits on it.
      if (kind === 'postgres') await other.query('SELECT pg_advisory_lock($1)', [BigInt('0x6b61766163685354').toString()])
      else await other.query("SELECT GET_LOCK('kavach_stripe_migrations', 10)")
      const starting = createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET })] })
      let killed = 0
      for (let i = 0; i < 100 && killed === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        if (kind === 'postgres') {
          killed = (await other.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_advisory_xact_lock%' AND state = 'active' AND pid <> pg_backend_pid()")).rowCount
        } else {
          const [rows] = await other.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%GET_LOCK(?%' AND ID <> CONNECTION_ID()")
          for (const row of rows) await other.query(`KILL CONNECTION ${Number(row.ID)}`)
          killed = rows.length
        }
      }
      assert.equal(killed, 1, 'the waiting migration was found and its connection killed')
      if (kind === 'postgres') await other.query('SELECT pg_advisory_unlock($1)', [BigInt('0x6b61766163685354').toString()])
      else await other.query("SELECT RELEASE_LOCK('kavach_stripe_migrations')")
      await other.end()
      const started = await starting
      await started.plugins.getContext().stripe.close()
    })

    test('close() commits and answers what is queued, then new deliveries get closed', { skip: !db }, async () => {
      const own = await createHost({ database: db.config, plugins: [stripe({ secretKey: KEY, webhookSecret: SECRET })] })
      const ownPost = async (evt) => {
        const body = JSON.stringify(evt)
        const res = await own.plugins.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': signature(body, SECRET) } }))
        return { status: res.status, body: await res.json() }
      }
      for (const n of [1, 2, 3, 4]) await user(`close_u${n}`, `cus_close_${n}`)
      // Another session holds the first user's row, so the deliveries are still queued when close() starts.
      const other = kind === 'postgres' ? new pg.Client({ connectionString: POSTGRES_URL }) : await mysql.createConnection({ uri: MYSQL_URL })
      if (kind === 'postgres') await other.connect()
      await other.query('BEGIN')
      await other.query("SELECT id FROM kavach_users WHERE id = 'close_u1' FOR UPDATE")
      const answers = [1, 2, 3, 4].map((n) => ownPost(event('customer.subscription.created', subscription({ id: `sub_close_${n}`, customer: `cus_close_${n}` }))))
      await new Promise((resolve) => setTimeout(resolve, 100))
      const closing = own.plugins.getContext().stripe.close()
      await new Promise((resolve) => setTimeout(resolve, 300))
      await other.query('ROLLBACK')
      await other.end()
      assert.deepEqual((await Promise.all(answers)).map((a) => a.status), [200, 200, 200, 200])
      await closing
      for (const n of [1, 2, 3, 4]) {
        const [row] = await db.query('SELECT stripe_subscription_id FROM kavach_users WHERE id = ?', [`close_u${n}`])
        assert.equal(row.stripe_subscription_id, `sub_close_${n}`)
      }
      const late = await ownPost(event('customer.subscription.created', subscription({ id: 'sub_close_late', customer: 'cus_close_1' })))
      assert.deepEqual([late.status, late.body.code], [500, 'closed'])
    })

    test('ids that differ only in case are different ids (Stripe ids are case-sensitive)', { skip: !db }, async () => {
      await user('case_u', 'cus_case_A')
      const first = event('customer.subscription.created', subscription({ id: 'sub_case_X', customer: 'cus_case_A', price: 'price_upper' }), { created: 1760000400, id: 'evt_case_Ab' })
      const second = event('customer.subscription.created', subscription({ id: 'sub_case_x', customer: 'cus_case_A', price: 'price_lower', created: 1700000001 }), { created: 1760000401, id: 'evt_case_aB' })
      assert.deepEqual((await post(first)).body.duplicate, undefined)
      assert.deepEqual((await post(second)).body.duplicate, undefined, 'evt_case_aB is not evt_case_Ab')
      const rows = await db.query("SELECT id, price_id FROM kavach_stripe_subscriptions WHERE user_id = 'case_u' ORDER BY price_id")
      assert.deepEqual(rows.map((r) => [r.id, r.price_id]), [['sub_case_x', 'price_lower'], ['sub_case_X', 'price_upper']])
      const ledger = await db.query("SELECT id FROM kavach_stripe_events WHERE id IN ('evt_case_Ab', 'evt_case_aB') ORDER BY id")
      assert.equal(ledger.length, 2)
      // customer.deleted for cus_case_a is not about cus_case_A.
      const deleted = await post(event('customer.deleted', { id: 'cus_case_a', object: 'customer' }, { created: 1760000402 }))
      assert.equal(deleted.status, 200)
      const [linked] = await db.query('SELECT stripe_customer_id FROM kavach_users WHERE id = ?', ['case_u'])
      assert.equal(linked.stripe_customer_id, 'cus_case_A')
    })
  })
}
