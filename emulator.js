'use strict'
// `kavachos-stripe/emulator`: a local, stateful Stripe. The emulator is Rust
// (crates/emulator); this file only shapes its handle for JavaScript.

const native = require('./native.js')

function rebuildError(error) {
  let document
  try {
    document = JSON.parse(error.message)
  } catch {
    return error
  }
  if (!document || typeof document.code !== 'string') return error
  return Object.assign(new Error(document.message), { code: document.code })
}

async function call(fn) {
  try {
    return await fn()
  } catch (error) {
    throw rebuildError(error)
  }
}

/**
 * Starts the emulator on 127.0.0.1 and resolves once it listens.
 * @param {import('./emulator').StripeEmulatorOptions} [options]
 * @returns {Promise<import('./emulator').StripeEmulator>}
 */
async function startStripeEmulator(options) {
  let handle
  try {
    handle = await native.parseEmulatorOptions(options).start()
  } catch (error) {
    throw rebuildError(error)
  }
  let closed
  return {
    apiBase: handle.apiBase,
    webhookSecret: handle.webhookSecret,
    dashboardUrl: handle.dashboardUrl,
    port: handle.port,
    deliveries: () => JSON.parse(handle.deliveriesJson()),
    now: () => handle.now(),
    advanceTime: (seconds) => call(() => handle.advanceTime(seconds)),
    trigger: (type, target = {}) =>
      call(() => handle.trigger(type, target.customer ?? null, target.email ?? null, target.metadata ? JSON.stringify(target.metadata) : null)),
    close: () => (closed ??= handle.close()),
  }
}

module.exports = { startStripeEmulator }
