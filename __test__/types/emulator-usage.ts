// The emulator's public types, through the package's own subpath export
// (`kavachos-stripe/emulator`), checked with `tsc --noEmit`.
import { startStripeEmulator, type StripeEmulator, type StripeEmulatorOptions } from 'kavachos-stripe/emulator'

const options: StripeEmulatorOptions = {
  port: 0,
  webhooks: [{ url: 'http://127.0.0.1:3000/api/kavach/auth/stripe/webhook', events: ['customer.subscription.updated'] }],
  catalog: [{ name: 'Team', prices: [{ id: 'price_team', unitAmount: 4900, interval: 'month' }, { unitAmount: 500, interval: null }] }],
  chaos: { duplicateRate: 0.2, reorderWindowMs: 300 },
  webhookRetry: { maxAttempts: 3 },
  state: '.tmp/stripe-state.json',
  billingMode: 'classic',
  dunning: { retryDays: [1, 3], whenRetriesEnd: 'unpaid' },
}

export async function run(): Promise<string> {
  const emulator: StripeEmulator = await startStripeEmulator(options)
  const failed = emulator.deliveries().filter((attempt) => !attempt.succeeded)
  const later: number = await emulator.advanceTime(86_400)
  await emulator.trigger('invoice.payment_failed', { email: 'a@example.com', metadata: { kavach_user_id: 'u1' } })
  const summary = `${emulator.apiBase} ${emulator.webhookSecret} ${emulator.dashboardUrl} ${failed.length} ${later - emulator.now()}`
  await emulator.close()
  return summary
}

// @ts-expect-error chaos takes rates and windows, not booleans
const wrong: StripeEmulatorOptions = { chaos: { duplicateRate: true } }
void wrong
// @ts-expect-error billing modes are classic or flexible
const mode: StripeEmulatorOptions = { billingMode: 'hybrid' }
void mode
