// The JavaScript reference: a webhook handler written the way kavachOS's own
// TypeScript Stripe plugin works. WebCrypto HMAC with a hex compare in JS,
// JSON.parse, then Drizzle ORM (better-sqlite3, pg or mysql2) with one UPDATE per event
// and no ledger, no ordering guard, no notification outbox.
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzleMysql } from 'drizzle-orm/mysql2'
import { sqliteTable, text as sqliteText, integer } from 'drizzle-orm/sqlite-core'
import { pgTable, text as pgText, timestamp, boolean } from 'drizzle-orm/pg-core'
import { mysqlTable, varchar, text as mysqlText, datetime, boolean as mysqlBoolean } from 'drizzle-orm/mysql-core'
import { eq } from 'drizzle-orm'
import Database from 'better-sqlite3'
import pg from 'pg'
import mysql from 'mysql2/promise'

const sqliteUsers = sqliteTable('kavach_users', {
  id: sqliteText('id').primaryKey(),
  stripeCustomerId: sqliteText('stripe_customer_id'),
  stripeSubscriptionId: sqliteText('stripe_subscription_id'),
  stripeSubscriptionStatus: sqliteText('stripe_subscription_status'),
  stripePriceId: sqliteText('stripe_price_id'),
  stripeCurrentPeriodEnd: integer('stripe_current_period_end', { mode: 'timestamp' }),
  stripeCancelAtPeriodEnd: integer('stripe_cancel_at_period_end', { mode: 'boolean' }),
  updatedAt: integer('updated_at', { mode: 'timestamp' }),
})

const pgUsers = pgTable('kavach_users', {
  id: pgText('id').primaryKey(),
  stripeCustomerId: pgText('stripe_customer_id'),
  stripeSubscriptionId: pgText('stripe_subscription_id'),
  stripeSubscriptionStatus: pgText('stripe_subscription_status'),
  stripePriceId: pgText('stripe_price_id'),
  stripeCurrentPeriodEnd: timestamp('stripe_current_period_end', { withTimezone: true }),
  stripeCancelAtPeriodEnd: boolean('stripe_cancel_at_period_end'),
  updatedAt: timestamp('updated_at', { withTimezone: true }),
})

const mysqlUsers = mysqlTable('kavach_users', {
  id: varchar('id', { length: 255 }).primaryKey(),
  stripeCustomerId: varchar('stripe_customer_id', { length: 255 }),
  stripeSubscriptionId: mysqlText('stripe_subscription_id'),
  stripeSubscriptionStatus: mysqlText('stripe_subscription_status'),
  stripePriceId: mysqlText('stripe_price_id'),
  stripeCurrentPeriodEnd: datetime('stripe_current_period_end', { fsp: 3 }),
  stripeCancelAtPeriodEnd: mysqlBoolean('stripe_cancel_at_period_end'),
  updatedAt: datetime('updated_at', { fsp: 3 }),
})

const encoder = new TextEncoder()

async function verify(body, header, secret) {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=')))
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(`${parts.t}.${body}`))
  const hex = [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, '0')).join('')
  if (hex !== parts.v1) throw new Error('bad signature')
  if (Math.abs(Date.now() / 1000 - Number(parts.t)) > 300) throw new Error('too old')
}

export function referenceHandler(kind, database, secret) {
  let db
  let close
  let users
  if (kind === 'sqlite') {
    const connection = new Database(database.url)
    connection.pragma('journal_mode = WAL')
    connection.pragma('busy_timeout = 10000')
    db = drizzleSqlite(connection)
    users = sqliteUsers
    close = async () => connection.close()
  } else if (kind === 'mysql') {
    const pool = mysql.createPool({ uri: database.url, connectionLimit: 10, timezone: 'Z' })
    db = drizzleMysql(pool)
    users = mysqlUsers
    close = () => pool.end()
  } else {
    const pool = new pg.Pool({ connectionString: database.url, max: 10 })
    db = drizzlePg(pool)
    users = pgUsers
    close = () => pool.end()
  }
  return {
    async handle(request) {
      const body = await request.text()
      try {
        await verify(body, request.headers.get('stripe-signature') ?? '', secret)
      } catch (error) {
        return Response.json({ error: error.message }, { status: 400 })
      }
      const event = JSON.parse(body)
      if (event.type.startsWith('customer.subscription.')) {
        const sub = event.data.object
        await db
          .update(users)
          .set({
            stripeSubscriptionId: sub.id,
            stripeSubscriptionStatus: sub.status,
            stripePriceId: sub.items?.data?.[0]?.price?.id ?? null,
            stripeCurrentPeriodEnd: new Date((sub.items?.data?.[0]?.current_period_end ?? 0) * 1000),
            stripeCancelAtPeriodEnd: Boolean(sub.cancel_at_period_end),
            updatedAt: new Date(),
          })
          .where(eq(users.stripeCustomerId, sub.customer))
      }
      return Response.json({ received: true })
    },
    async getSubscription(userId) {
      const [row] = await db.select().from(users).where(eq(users.id, userId))
      return Response.json({ subscription: row?.stripeSubscriptionId ? { id: row.stripeSubscriptionId, status: row.stripeSubscriptionStatus } : null })
    },
    close,
  }
}
