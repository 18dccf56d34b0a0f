// `npm start`: the first run. Without STRIPE_SECRET_KEY it starts the local
// Stripe emulator in this process and a demo app against it, offline; with a
// key, the same app runs against that Stripe (STRIPE_API_BASE, if set, for an
// emulator in another process). Data: a SQLite file (DATABASE_PATH).
import net from 'node:net'
import { createStripeBilling } from '../index.js'
import { startStripeEmulator } from '../emulator.js'
import { startDemoApp } from './demo/app.mjs'

const port = Number(process.env.PORT ?? 3000)
const origin = `http://127.0.0.1:${port}`
const databasePath = process.env.DATABASE_PATH ?? './kavach-example.db'
const secretKey = process.env.STRIPE_SECRET_KEY

/** A free port near `preferred` (the emulator's 12111 may be taken). */
async function freePort(preferred) {
  const tryPort = (p) =>
    new Promise((resolve) => {
      const probe = net.createServer()
      probe.once('error', () => resolve(false))
      probe.listen(p, '127.0.0.1', () => probe.close(() => resolve(true)))
    })
  return (await tryPort(preferred)) ? preferred : 0
}

const emulator = secretKey
  ? null
  : await startStripeEmulator({
      port: await freePort(12111),
      webhooks: [{ url: `${origin}/api/kavach/auth/stripe/webhook` }],
      // The emulator keeps its state beside the app's database, so both survive a restart.
      state: process.env.EMULATOR_STATE_PATH ?? './kavach-example-stripe.json',
    })

// Plans: the emulator's catalog, or prices named in the environment.
const plans = [
  { name: 'basic', label: 'Basic', price: '9.00 USD / month', priceId: process.env.STRIPE_PRICE_BASIC ?? 'price_basic_monthly' },
  { name: 'pro', label: 'Pro', price: '29.00 USD / month', priceId: process.env.STRIPE_PRICE_PRO ?? 'price_pro_monthly' },
]

const billing = await createStripeBilling({
  secretKey: secretKey ?? 'sk_test_kavachos_demo',
  webhookSecret: emulator?.webhookSecret ?? process.env.STRIPE_WEBHOOK_SECRET,
  apiBase: emulator?.apiBase ?? process.env.STRIPE_API_BASE,
  database: { provider: 'sqlite', url: databasePath },
  baseUrl: origin,
  plans: plans.map(({ name, priceId }) => ({ name, priceId })),
  auth: async (request) => ((request.headers.get('cookie') ?? '').includes('demo_user=demo-user') ? { id: 'demo-user' } : null),
})
const app = await startDemoApp({ billing, emulator, plans, port, origin })

console.log(`Demo: ${origin}  (open it in a browser)`)
if (emulator) {
  console.log(`Stripe: the local emulator at ${emulator.apiBase} (dashboard ${emulator.dashboardUrl}); no account or network needed.`)
  console.log('Pay with 4242 4242 4242 4242. Set STRIPE_SECRET_KEY (and STRIPE_WEBHOOK_SECRET) to use your Stripe account instead.')
} else {
  console.log(`Stripe: ${process.env.STRIPE_API_BASE ?? 'https://api.stripe.com'} with your key. Webhooks: ${origin}/api/kavach/auth/stripe/webhook`)
}
console.log(`Data: SQLite file ${databasePath}`)

let stopping = false
const shutdown = async () => {
  if (stopping) return
  stopping = true
  await app.close()
  await billing.close()
  await emulator?.close()
  process.exit(0)
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
