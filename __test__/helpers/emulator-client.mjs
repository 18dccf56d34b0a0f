// What the emulator suites share: the official SDK pointed at an emulator,
// and a form post the way a browser submits a hosted page.
import Stripe from 'stripe'

export const stripeFor = (emulator, key) =>
  new Stripe(key, { host: '127.0.0.1', port: emulator.port, protocol: 'http', maxNetworkRetries: 0 })

export const submit = (url, form) => fetch(url, { method: 'POST', body: new URLSearchParams(form), redirect: 'manual' })
