// The three databases the tests run on, with raw access through independent
// drivers (pg, mysql2, better-sqlite3) to check what the native side stored.
// Under CI=true a database that cannot be reached fails the run; elsewhere its
// tests are skipped with a visible message.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import mysql from 'mysql2/promise'
import Database from 'better-sqlite3'

export const POSTGRES_URL = process.env.KAVACH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/kavach_stripe_test'
export const MYSQL_URL = process.env.KAVACH_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/kavach_stripe_test'
const REQUIRED = process.env.CI === 'true'

const OWN_TABLES = ['kavach_stripe_subscriptions', 'kavach_stripe_events', 'kavach_stripe_checkout_sessions', 'kavach_stripe_customer_claims', 'kavach_stripe_trial_grants', 'kavach_stripe_invoices', 'kavach_stripe_event_deliveries', 'kavach_stripe_schema', 'kavach_users']

/** kavachOS's own DDL for kavach_users, as a host creates it (optionally without the Stripe columns). */
const HOST_USERS_DDL = {
  sqlite: (withStripe) => `CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL${withStripe ? `, stripe_customer_id TEXT UNIQUE,
    stripe_subscription_id TEXT, stripe_subscription_status TEXT, stripe_price_id TEXT, stripe_current_period_end INTEGER,
    stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0` : ''})`,
  postgres: (withStripe) => `CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL${withStripe ? `, stripe_customer_id TEXT UNIQUE,
    stripe_subscription_id TEXT, stripe_subscription_status TEXT, stripe_price_id TEXT, stripe_current_period_end TIMESTAMPTZ,
    stripe_cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE` : ''})`,
  mysql: (withStripe) => `CREATE TABLE kavach_users (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name TEXT,
    created_at DATETIME(3) NOT NULL, updated_at DATETIME(3) NOT NULL${withStripe ? `, stripe_customer_id VARCHAR(255) UNIQUE,
    stripe_subscription_id TEXT, stripe_subscription_status TEXT, stripe_price_id TEXT, stripe_current_period_end DATETIME(3),
    stripe_cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0` : ''})`,
}

class SqliteDb {
  kind = 'sqlite'
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-stripe-'))
    this.file = path.join(this.dir, 'app.db')
    this.config = { provider: 'sqlite-native', url: this.file }
  }
  async connect() {
    this.db = new Database(this.file)
    this.db.pragma('busy_timeout = 10000')
    return true
  }
  async query(sql, params = []) {
    const statement = this.db.prepare(sql)
    return statement.reader ? statement.all(...params) : (statement.run(...params), [])
  }
  async reset() {
    for (const table of OWN_TABLES) this.db.exec(`DROP TABLE IF EXISTS ${table}`)
  }
  async createHostUsersTable(withStripe = true) {
    this.db.exec(HOST_USERS_DDL.sqlite(withStripe))
  }
  async insertUser(id, email, name = null) {
    const now = Math.floor(Date.now() / 1000)
    await this.query('INSERT INTO kavach_users (id, email, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)', [id, email, name, now, now])
  }
  /** Writes a projection in kavachOS's encoding (period end in Unix seconds, flag 0/1). */
  async setProjection(id, { subscriptionId, status, priceId, periodEnd, cancelAtPeriodEnd }) {
    await this.query(
      `UPDATE kavach_users SET stripe_subscription_id = ?, stripe_subscription_status = ?, stripe_price_id = ?,
       stripe_current_period_end = ?, stripe_cancel_at_period_end = ? WHERE id = ?`,
      [subscriptionId, status, priceId, Math.floor(periodEnd.getTime() / 1000), cancelAtPeriodEnd ? 1 : 0, id],
    )
  }
  async columnTypes() {
    const rows = await this.query("SELECT name, type FROM pragma_table_info('kavach_users')")
    return Object.fromEntries(rows.map((r) => [r.name, r.type.toUpperCase()]))
  }
  async close() {
    if (this.db?.open) this.db.close()
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

class PostgresDb {
  kind = 'postgres'
  config = { provider: 'postgres', url: POSTGRES_URL }
  async connect() {
    const url = new URL(POSTGRES_URL)
    const name = url.pathname.slice(1)
    const admin = new pg.Client({ connectionString: Object.assign(new URL(url), { pathname: '/postgres' }).toString() })
    try {
      await admin.connect()
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${name}"`)
    } catch (error) {
      return unavailable('PostgreSQL', POSTGRES_URL, error)
    } finally {
      await admin.end().catch(() => {})
    }
    this.client = new pg.Client({ connectionString: POSTGRES_URL })
    await this.client.connect()
    return true
  }
  async query(sql, params = []) {
    let i = 0
    return (await this.client.query(sql.replace(/\?/g, () => `$${++i}`), params)).rows
  }
  async reset() {
    for (const table of OWN_TABLES) await this.client.query(`DROP TABLE IF EXISTS ${table}`)
  }
  async createHostUsersTable(withStripe = true) {
    await this.client.query(HOST_USERS_DDL.postgres(withStripe))
  }
  async insertUser(id, email, name = null) {
    await this.query('INSERT INTO kavach_users (id, email, name, created_at, updated_at) VALUES (?, ?, ?, now(), now())', [id, email, name])
  }
  async setProjection(id, { subscriptionId, status, priceId, periodEnd, cancelAtPeriodEnd }) {
    await this.query(
      `UPDATE kavach_users SET stripe_subscription_id = ?, stripe_subscription_status = ?, stripe_price_id = ?,
       stripe_current_period_end = ?, stripe_cancel_at_period_end = ? WHERE id = ?`,
      [subscriptionId, status, priceId, periodEnd, cancelAtPeriodEnd, id],
    )
  }
  async columnTypes() {
    const rows = await this.query(
      "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'kavach_users'",
    )
    return Object.fromEntries(rows.map((r) => [r.column_name, r.data_type.toUpperCase()]))
  }
  async close() {
    await this.client?.end()
  }
}

class MysqlDb {
  kind = 'mysql'
  config = { provider: 'mysql', url: MYSQL_URL }
  async connect() {
    const url = new URL(MYSQL_URL)
    const name = url.pathname.slice(1)
    try {
      const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) })
      await admin.query(`CREATE DATABASE IF NOT EXISTS \`${name}\``)
      await admin.end()
    } catch (error) {
      return unavailable('MariaDB/MySQL', MYSQL_URL, error)
    }
    this.conn = await mysql.createConnection({ uri: MYSQL_URL, timezone: 'Z', dateStrings: false })
    await this.conn.query("SET time_zone = '+00:00'")
    return true
  }
  async query(sql, params = []) {
    const [rows] = await this.conn.query(sql, params)
    return Array.isArray(rows) ? rows : []
  }
  async reset() {
    for (const table of OWN_TABLES) await this.conn.query(`DROP TABLE IF EXISTS ${table}`)
  }
  async createHostUsersTable(withStripe = true) {
    await this.conn.query(HOST_USERS_DDL.mysql(withStripe))
  }
  async insertUser(id, email, name = null) {
    await this.query('INSERT INTO kavach_users (id, email, name, created_at, updated_at) VALUES (?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))', [id, email, name])
  }
  async setProjection(id, { subscriptionId, status, priceId, periodEnd, cancelAtPeriodEnd }) {
    await this.query(
      `UPDATE kavach_users SET stripe_subscription_id = ?, stripe_subscription_status = ?, stripe_price_id = ?,
       stripe_current_period_end = ?, stripe_cancel_at_period_end = ? WHERE id = ?`,
      [subscriptionId, status, priceId, periodEnd, cancelAtPeriodEnd ? 1 : 0, id],
    )
  }
  async columnTypes() {
    const rows = await this.query(
      "SELECT column_name AS name, column_type AS type FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'kavach_users'",
    )
    return Object.fromEntries(rows.map((r) => [r.name, String(r.type).toUpperCase()]))
  }
  async close() {
    await this.conn?.end()
  }
}

function unavailable(label, url, error) {
  const message = `${label} at ${url} is unreachable (${error.message})`
  if (REQUIRED) throw new Error(`${message}; CI=true requires every database`)
  console.log(`# SKIP: ${message}; its tests are skipped (they run under CI=true)`)
  return false
}

/** Each database kind, connected and reset; `null` where it is unavailable outside CI. */
export async function openDatabase(kind) {
  const db = kind === 'sqlite' ? new SqliteDb() : kind === 'postgres' ? new PostgresDb() : new MysqlDb()
  if (!(await db.connect())) return null
  await db.reset()
  return db
}

export const DATABASE_KINDS = ['sqlite', 'postgres', 'mysql']
