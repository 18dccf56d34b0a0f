// `npm pack` carries this machine's built binary; installed into an empty
// folder (no Rust toolchain on PATH, no build step) it loads and works.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

test('the packed tarball installs into an empty folder and passes a smoke check', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-pack-'))
  try {
    // --ignore-scripts: pack what `npm install` built, without rebuilding.
    const output = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' })
    const [{ filename, files }] = JSON.parse(output)
    const names = files.map((f) => f.path)
    assert.ok(names.some((n) => n.endsWith('.node')), `the tarball carries the binary: ${names.join(', ')}`)
    for (const required of ['index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'emulator.js', 'emulator.mjs', 'emulator.d.ts', 'package.json']) assert.ok(names.includes(required), required)
    assert.ok(!names.some((n) => n.startsWith('src/') || n.startsWith('target/')), 'no sources or build tree')

    const app = path.join(dir, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}')
    const env = { ...process.env, PATH: process.env.PATH.split(path.delimiter).filter((p) => !p.includes('.cargo')).join(path.delimiter) }
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', path.join(dir, filename)], { cwd: app, env, stdio: 'pipe' })
    const smoke = `
      const { stripe, createStripeBilling } = require('kavachos-stripe')
      import('kavachos-stripe').then(async (esm) => {
        if (esm.stripe !== stripe) throw new Error('ESM and CJS exports differ')
        try { stripe({ secretKey: 'nope' }) } catch (e) { if (e.code !== 'invalid_config') throw e }
        const billing = await createStripeBilling({ secretKey: 'sk_test_pack_123456', database: { provider: 'sqlite', url: ':memory:' } })
        await billing.upsertUser({ id: 'u', email: 'u@example.com' })
        console.log(JSON.stringify(await billing.getSubscription('u')))
        await billing.close()
        const { startStripeEmulator } = require('kavachos-stripe/emulator')
        if ((await import('kavachos-stripe/emulator')).startStripeEmulator !== startStripeEmulator) throw new Error('emulator ESM and CJS differ')
        const emulator = await startStripeEmulator({ port: 0 })
        const prices = await fetch(emulator.apiBase + '/v1/prices', { headers: { authorization: 'Bearer sk_test_pack' } })
        if (prices.status !== 200) throw new Error('emulator answered ' + prices.status)
        await emulator.close()
      })
    `
    const result = execFileSync(process.execPath, ['-e', smoke], { cwd: app, env, encoding: 'utf8' })
    assert.equal(result.trim(), 'null')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
