// The kavachos-stripe command: every subcommand's success and its failures
// (missing configuration, an unreachable database or Stripe, a key in the
// wrong mode, events missing on the endpoint), --json parsed, exit codes.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import mysql from 'mysql2/promise'
import Stripe from 'stripe'
import { HANDLED_EVENT_TYPES, createStripeBilling } from '../index.js'
import { startStripeEmulator } from '../emulator.js'
import { POSTGRES_URL, MYSQL_URL } from './helpers/databases.mjs'

const BIN = fileURLToPath(new URL('../bin/kavachos-stripe.js', import.meta.url))
const KEY = 'sk_test_cli_suite_0123456789'
const CLEAN_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'STRIPE_API_BASE', 'DATABASE_URL'].includes(k)))

function run(args, env = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...CLEAN_ENV, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, stdout, stderr, json: (() => { try { return JSON.parse(stdout) } catch { return undefined } })() })
    })
  })
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-cli-'))
const sqlite = (name) => `sqlite:${path.join(dir, `${name}.db`)}`

describe('kavachos-stripe', () => {
  let emulator
  let sdk
  before(async () => {
    emulator = await startStripeEmulator({ port: 0 })
    sdk = new Stripe(KEY, { host: '127.0.0.1', port: emulator.port, protocol: 'http' })
  })
  after(async () => {
    await emulator?.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('help and usage errors', async () => {
    const none = await run([])
    assert.equal(none.code, 2)
    assert.match(none.stdout, /Commands:/)
    assert.equal((await run(['--help'])).code, 0)
    for (const command of ['emulator', 'trigger', 'migrate', 'reconcile', 'doctor']) {
      const help = await run([command, '--help'])
      assert.equal(help.code, 0, command)
      assert.match(help.stdout, new RegExp(`kavachos-stripe ${command}`))
      assert.match(help.stdout, /Exit codes: 0 ok/)
    }
    const unknown = await run(['deploy'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown command deploy/)
    const flag = await run(['doctor', '--frobnicate', '--json'])
    assert.equal(flag.code, 2)
    assert.equal(flag.json.error.exitCode, 2)
    assert.match(flag.json.error.message, /frobnicate/)
  })

  test('emulator: prints its addresses, serves, stops on SIGINT; bad options', async () => {
    const catalog = path.join(dir, 'catalog.json')
    fs.writeFileSync(catalog, JSON.stringify([{ id: 'prod_cli', name: 'CLI', prices: [{ id: 'price_cli', unitAmount: 700 }] }]))
    const child = spawn(process.execPath, [BIN, 'emulator', '--port', '0', '--catalog', catalog, '--json', '--webhook', 'http://127.0.0.1:9/hook'], { env: CLEAN_ENV })
    const first = await new Promise((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (chunk) => {
        out += chunk
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]))
      })
      child.on('exit', (code) => reject(new Error(`exited ${code}`)))
    })
    assert.match(first.apiBase, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.match(first.webhookSecret, /^whsec_/)
    assert.equal(first.dashboardUrl, `${first.apiBase}/_emulator`)
    const prices = await new Stripe(KEY, { host: '127.0.0.1', port: first.port, protocol: 'http' }).prices.list()
    assert.deepEqual(prices.data.map((p) => p.id), ['price_cli'])
    const endpoints = await new Stripe(KEY, { host: '127.0.0.1', port: first.port, protocol: 'http' }).webhookEndpoints.list()
    assert.deepEqual(endpoints.data.map((e) => e.url), ['http://127.0.0.1:9/hook'])
    const exited = new Promise((resolve) => child.on('exit', resolve))
    child.kill('SIGINT')
    assert.equal(await exited, 0)

    fs.writeFileSync(catalog, '{ not json')
    assert.equal((await run(['emulator', '--port', '0', '--catalog', catalog])).code, 3)
    assert.equal((await run(['emulator', '--port', '0', '--catalog', path.join(dir, 'none.json')])).code, 3)
    assert.equal((await run(['emulator', '--port', 'abc'])).code, 2)
    const busy = await run(['emulator', '--port', String(emulator.port), '--json'])
    assert.equal(busy.code, 1)
    assert.match(busy.json.error.message, /cannot listen/)
  })

  test('trigger: the event happens for the user; usage and unreachable emulator', async () => {
    const done = await run(['trigger', 'customer.subscription.created', '--user', 'u_cli', '--emulator', emulator.apiBase, '--json'])
    assert.equal(done.code, 0, done.stderr + done.stdout)
    assert.ok(done.json.events.some((e) => e.type === 'customer.subscription.created'))
    const event = await sdk.events.retrieve(done.json.events.find((e) => e.type === 'customer.subscription.created').id)
    assert.equal(event.data.object.metadata.kavach_user_id, 'u_cli')
    // A second trigger for the same user builds on the same customer.
    const again = await run(['trigger', 'invoice.payment_failed', '--user', 'u_cli', '--emulator', emulator.apiBase, '--json'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.ok(!again.json.events.some((e) => e.type === 'customer.created'), 'no second customer')
    const failedAgain = await sdk.events.retrieve(again.json.events.find((e) => e.type === 'invoice.payment_failed').id)
    assert.equal(failedAgain.data.object.customer, event.data.object.customer)
    assert.equal((await run(['trigger', 'charge.refunded', '--user', 'u', '--emulator', emulator.apiBase])).code, 2)
    assert.equal((await run(['trigger', 'invoice.paid', '--emulator', emulator.apiBase])).code, 2)
    assert.equal((await run(['trigger', 'invoice.paid', '--user', 'u', '--emulator', 'http://127.0.0.1:9'])).code, 4)

    // With a database, the user's own customer is used.
    const url = sqlite('trigger')
    const billing = await createStripeBilling({ secretKey: KEY, apiBase: emulator.apiBase, database: { provider: 'sqlite', url } })
    await billing.upsertUser({ id: 'u_linked', email: 'linked@example.com' })
    const customer = await billing.createCustomer('u_linked', 'linked@example.com')
    await billing.close()
    const linked = await run(['trigger', 'invoice.payment_failed', '--user', 'u_linked', '--emulator', emulator.apiBase, '--database', url, '--json'])
    assert.equal(linked.code, 0, linked.stderr + linked.stdout)
    const failed = await sdk.events.retrieve(linked.json.events.find((e) => e.type === 'invoice.payment_failed').id)
    assert.equal(failed.data.object.customer, customer)
  })

  test('migrate: SQLite, Postgres and MariaDB; kavach_users only with --standalone', async () => {
    const url = sqlite('migrate')
    const refused = await run(['migrate', '--database', url, '--json'])
    assert.equal(refused.code, 1)
    assert.match(refused.json.error.message, /kavach_users does not exist/)
    const created = await run(['migrate', '--database', url, '--standalone', '--json'])
    assert.equal(created.code, 0, created.stdout)
    assert.deepEqual(created.json, { fromVersion: 0, schemaVersion: 6 })
    const again = await run(['migrate', '--standalone'], { DATABASE_URL: url })
    assert.equal(again.code, 0)
    assert.match(again.stdout, /already current/)
    assert.equal((await run(['migrate', '--database', path.join(dir, 'bare.db'), '--provider', 'sqlite', '--standalone'])).code, 0)

    // Real servers: a fresh database each, with a host-made kavach_users.
    const pgUrl = new URL(POSTGRES_URL)
    pgUrl.pathname = '/kavach_stripe_cli'
    const admin = new pg.Client({ connectionString: Object.assign(new URL(POSTGRES_URL), { pathname: '/postgres' }).toString() })
    await admin.connect()
    await admin.query('DROP DATABASE IF EXISTS kavach_stripe_cli')
    await admin.query('CREATE DATABASE kavach_stripe_cli')
    await admin.end()
    const host = new pg.Client({ connectionString: pgUrl.toString() })
    await host.connect()
    await host.query('CREATE TABLE kavach_users (id TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT)')
    await host.end()
    const onPostgres = await run(['migrate', '--database', pgUrl.toString(), '--json'])
    assert.equal(onPostgres.code, 0, onPostgres.stdout)
    assert.equal(onPostgres.json.schemaVersion, 6)

    const myUrl = new URL(MYSQL_URL)
    myUrl.pathname = '/kavach_stripe_cli'
    const my = await mysql.createConnection({ host: myUrl.hostname, port: Number(myUrl.port || 3306), user: decodeURIComponent(myUrl.username), password: decodeURIComponent(myUrl.password) })
    await my.query('DROP DATABASE IF EXISTS kavach_stripe_cli')
    await my.query('CREATE DATABASE kavach_stripe_cli')
    await my.end()
    const onMysql = await run(['migrate', '--database', myUrl.toString().replace(/^mysql:/, 'mariadb:'), '--standalone', '--json'])
    assert.equal(onMysql.code, 0, onMysql.stdout)
    assert.equal(onMysql.json.schemaVersion, 6)

    assert.equal((await run(['migrate'])).code, 3, 'no database')
    assert.equal((await run(['migrate', '--database', 'oracle://x'])).code, 3, 'no known provider')
    assert.equal((await run(['migrate', '--database', 'postgres://postgres@127.0.0.1:1/x', '--json'])).code, 4, 'unreachable')
  })

  test('reconcile: counts; missing key, bad dates, unreachable Stripe', async () => {
    const url = sqlite('reconcile')
    assert.equal((await run(['migrate', '--database', url, '--standalone'])).code, 0)
    const env = { STRIPE_SECRET_KEY: KEY, DATABASE_URL: url, STRIPE_API_BASE: emulator.apiBase }
    const counted = await run(['reconcile', '--since', new Date(Date.now() - 3600_000).toISOString(), '--json'], env)
    assert.equal(counted.code, 0, counted.stdout + counted.stderr)
    for (const key of ['fetched', 'applied', 'duplicates', 'ignored', 'failed']) assert.equal(typeof counted.json[key], 'number')
    assert.ok(counted.json.fetched > 0)
    const text = await run(['reconcile', '--since', String(Math.floor(Date.now() / 1000) - 60)], env)
    assert.match(text.stdout, /^Fetched \d+ events/)
    assert.equal((await run(['reconcile'], env)).code, 2)
    assert.equal((await run(['reconcile', '--since', 'last tuesday'], env)).code, 2)
    assert.equal((await run(['reconcile', '--since', '2026-11-01'], { DATABASE_URL: url })).code, 3)
    assert.equal((await run(['reconcile', '--since', '2026-11-01', '--api-base', 'http://127.0.0.1:9'], env)).code, 4)
  })

  test('doctor: all good; events missing on the endpoint; wrong mode; missing and unreachable', async () => {
    const url = sqlite('doctor')
    assert.equal((await run(['migrate', '--database', url, '--standalone'])).code, 0)
    const hook = 'https://app.example/api/kavach/auth/stripe/webhook'
    await sdk.webhookEndpoints.create({ url: hook, enabled_events: [...HANDLED_EVENT_TYPES] })
    const env = { STRIPE_SECRET_KEY: KEY, DATABASE_URL: url, STRIPE_API_BASE: emulator.apiBase }
    const good = await run(['doctor', '--url', hook, '--json'], env)
    assert.equal(good.code, 0, good.stdout)
    assert.equal(good.json.ok, true)
    assert.deepEqual(good.json.checks.map((c) => [c.name, c.status]), [['secret key', 'ok'], ['stripe', 'ok'], ['webhook endpoint', 'ok'], ['database', 'ok']])
    assert.match(good.json.checks[0].detail, /test mode/)

    const partialHook = 'https://partial.example/hook'
    await sdk.webhookEndpoints.create({ url: partialHook, enabled_events: ['customer.subscription.updated'] })
    const partial = await run(['doctor', '--url', partialHook, '--json'], env)
    assert.equal(partial.code, 1)
    const endpoint = partial.json.checks.find((c) => c.name === 'webhook endpoint')
    assert.equal(endpoint.status, 'failed')
    assert.match(endpoint.detail, /does not send: checkout\.session\.completed/)
    assert.ok(endpoint.fix)
    const text = await run(['doctor', '--url', 'https://nowhere.example/hook'], env)
    assert.equal(text.code, 1)
    assert.match(text.stdout, /FAIL  webhook endpoint: no webhook endpoint at Stripe/)

    // A live endpoint for a test key (a stand-in Stripe answering one endpoint).
    const fake = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ object: 'list', has_more: false, data: [{ id: 'we_live', url: hook, livemode: true, status: 'enabled', enabled_events: ['*'] }] }))
    })
    await new Promise((resolve) => fake.listen(0, '127.0.0.1', resolve))
    const wrongMode = await run(['doctor', '--url', hook, '--json', '--api-base', `http://127.0.0.1:${fake.address().port}`], env)
    fake.closeAllConnections()
    fake.close()
    assert.equal(wrongMode.code, 1)
    assert.match(wrongMode.json.checks.find((c) => c.name === 'webhook endpoint').detail, /live mode endpoint, the key is a test mode key/)

    const refusedKey = await run(['doctor', '--json'], { ...env, STRIPE_SECRET_KEY: 'sk_live_0123456789abcdef' })
    assert.equal(refusedKey.code, 1)
    assert.match(refusedKey.json.checks.find((c) => c.name === 'stripe').detail, /refused the key/)
    const publishable = await run(['doctor', '--json'], { ...env, STRIPE_SECRET_KEY: 'pk_test_0123456789abcdef' })
    assert.equal(publishable.code, 3)
    assert.equal((await run(['doctor', '--json'], { STRIPE_API_BASE: emulator.apiBase, DATABASE_URL: url })).code, 3, 'no key')
    assert.equal((await run(['doctor', '--json'], { ...env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x' })).code, 4, 'database down')
    assert.equal((await run(['doctor', '--json'], { ...env, STRIPE_API_BASE: 'http://127.0.0.1:9' })).code, 4, 'Stripe down')
    const outdated = sqlite('empty')
    fs.writeFileSync(outdated.slice('sqlite:'.length), '')
    const old = await run(['doctor', '--json'], { ...env, DATABASE_URL: outdated })
    assert.equal(old.code, 1)
    assert.match(old.json.checks.find((c) => c.name === 'database').fix, /kavachos-stripe migrate/)
  })
})
