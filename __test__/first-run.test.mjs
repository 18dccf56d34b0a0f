// The first run, in a real browser: `npm start` without a Stripe key starts
// the emulator and the demo app; a stranger signs in, picks a plan, pays on
// the emulator's checkout page, comes back to a success page showing the plan,
// cancels and resumes in the portal, switches to a card that never pays,
// advances the clock, sees the renewal fail with a "pay now" link, pays, and
// is active again. A screenshot of each step goes to screenshots/first-run/
// (git ignores it). Then the same app with a key, against an emulator in
// another process, as if it were Stripe.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const shots = path.join(root, 'screenshots', 'first-run')
const BROWSERS = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(Boolean)
const browserPath = BROWSERS.find((p) => fs.existsSync(p))
const noBrowser = browserPath
  ? false
  : `no Chromium found (${BROWSERS.join(', ')}): install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`
if (noBrowser && process.env.CI === 'true') throw new Error(`CI=true: the first-run browser test must run, but ${noBrowser}`)
if (noBrowser) console.log(`# SKIP first-run browser test: ${noBrowser}`)

async function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer()
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** Starts a process and resolves with the first stdout line matching `pattern`. */
function startProcess(args, env, pattern) {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env } })
  let output = ''
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk
      const line = output.split('\n').find((l) => pattern.test(l))
      if (line) resolve(line)
    })
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${output}`)))
  })
  return { child, ready, output: () => output }
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once('exit', resolve)
    child.kill('SIGTERM')
  })
}

const withoutStripeEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRIPE_') && k !== 'DATABASE_URL'))

describe('the first run', { skip: noBrowser }, () => {
  let puppeteer
  let browser
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-first-run-'))
  before(async () => {
    puppeteer = (await import('puppeteer-core')).default
    browser = await puppeteer.launch({ executablePath: browserPath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
    fs.mkdirSync(shots, { recursive: true })
  })
  after(async () => {
    await browser?.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('offline: sign in, pay, portal, a failed renewal, pay now, recovered', async () => {
    const port = await freePort()
    const demo = startProcess(['examples/server.mjs'], {
      ...withoutStripeEnv(),
      PORT: String(port),
      DATABASE_PATH: path.join(dir, 'demo.db'),
      EMULATOR_STATE_PATH: path.join(dir, 'demo-stripe.json'),
    }, /^Demo: /)
    const context = await browser.createBrowserContext()
    const page = await context.newPage()
    let step = 0
    const shot = async (name) => {
      step += 1
      await page.screenshot({ path: path.join(shots, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true })
    }
    const click = async (selector) => {
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)])
    }
    const text = (selector) => page.$eval(selector, (el) => el.textContent.trim())
    try {
      const firstLine = await demo.ready
      assert.match(firstLine, new RegExp(`^Demo: http://127\\.0\\.0\\.1:${port}`), 'the demo URL is printed first')
      assert.equal(demo.output().split('\n')[0], firstLine)
      const origin = `http://127.0.0.1:${port}`
      await page.goto(origin, { waitUntil: 'load' })
      await shot('sign-in')
      await click('#signin')
      assert.match(await text('#status'), /No subscription yet/)
      await shot('plans')

      await click('#subscribe-pro')
      assert.match(page.url(), /\/checkout\/cs_test_/)
      await shot('checkout')
      await page.$eval('#card_number', (el) => (el.value = ''))
      await page.type('#card_number', '4242 4242 4242 4242')
      await click('#submit')
      assert.match(page.url(), new RegExp(`^${origin}/billing/success\\?session_id=cs_test_`))
      assert.equal(await text('#plan'), 'pro')
      assert.equal(await text('#state'), 'active')
      await shot('success')

      await click('#home')
      await click('#portal')
      assert.match(page.url(), /\/portal\/bps_/)
      await shot('portal')
      await click('button.cancel')
      assert.ok(await page.$('button.resume'), 'scheduled to cancel')
      await shot('portal-canceled')
      await click('button.resume')
      assert.ok(await page.$('button.cancel'), 'resumed')
      // A card that attaches but never pays.
      await page.$eval('#card_number', (el) => (el.value = ''))
      await page.type('#card_number', '4000 0000 0000 0341')
      await click('#submit')
      assert.match(await text('#card'), /ending 0341/)
      await shot('portal-new-card')
      await click('#return')
      assert.equal(page.url(), `${origin}/`)

      await click('#advance')
      for (let i = 0; i < 50 && !(await page.$('#payment-issue')); i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 200))
        await page.reload({ waitUntil: 'load' })
      }
      assert.ok(await page.$('#payment-issue'), 'the failed renewal shows')
      assert.equal(await text('#state'), 'past_due')
      await shot('payment-issue')
      await click('#pay-now')
      assert.match(page.url(), /\/invoice\/in_/)
      await shot('invoice')
      await page.$eval('#card_number', (el) => (el.value = ''))
      await page.type('#card_number', '4242 4242 4242 4242')
      await click('#submit')
      assert.equal(await text('#status'), 'paid')
      await shot('invoice-paid')

      for (let i = 0; i < 50; i += 1) {
        await page.goto(origin, { waitUntil: 'load' })
        if (!(await page.$('#payment-issue')) && (await text('#state')) === 'active') break
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      assert.equal(await page.$('#payment-issue'), null)
      assert.equal(await text('#state'), 'active')
      assert.equal(await text('#plan'), 'pro')
      await shot('recovered')
    } finally {
      await context.close()
      await stop(demo.child)
    }
  })

  test('with a key: the same app against an emulator in another process', async () => {
    const port = await freePort()
    const stripe = startProcess(['bin/kavachos-stripe.js', 'emulator', '--port', '0', '--json', '--webhook', `http://127.0.0.1:${port}/api/kavach/auth/stripe/webhook`], withoutStripeEnv(), /^\{/)
    let demo
    try {
      const { apiBase, webhookSecret } = JSON.parse(await stripe.ready)
      demo = startProcess(['examples/server.mjs'], {
        ...withoutStripeEnv(),
        PORT: String(port),
        DATABASE_PATH: path.join(dir, 'keyed.db'),
        STRIPE_SECRET_KEY: 'sk_test_first_run_with_a_key',
        STRIPE_WEBHOOK_SECRET: webhookSecret,
        STRIPE_API_BASE: apiBase,
      }, /^Data: /)
      await demo.ready
      assert.match(demo.output(), new RegExp(`Stripe: ${apiBase.replace(/[.]/g, '\\.')} with your key`))
      const origin = `http://127.0.0.1:${port}`
      // Its own context: cookies are per host, and the offline run signed in on 127.0.0.1 too.
      const context = await browser.createBrowserContext()
      const page = await context.newPage()
      try {
        await page.goto(origin, { waitUntil: 'load' })
        await Promise.all([page.waitForNavigation(), page.click('#signin')])
        await Promise.all([page.waitForNavigation(), page.click('#subscribe-basic')])
        assert.ok(page.url().startsWith(`${apiBase}/checkout/cs_test_`), 'checkout at the other process')
        await page.$eval('#card_number', (el) => (el.value = '4242424242424242'))
        await Promise.all([page.waitForNavigation(), page.click('#submit')])
        assert.equal(await page.$eval('#plan', (el) => el.textContent.trim()), 'basic')
        await page.screenshot({ path: path.join(shots, 'with-key-success.png'), fullPage: true })
        assert.equal(await page.$('#advance'), null, 'no clock button against a real Stripe')
      } finally {
        await context.close()
      }
    } finally {
      if (demo) await stop(demo.child)
      await stop(stripe.child)
    }
  })
})
