'use strict'
// The JS side of kavachos-stripe: adapts Fetch `Request`/`Response` to the
// native core and rebuilds its errors as `Error` objects. Everything that
// decides anything lives in Rust (src/).

const native = require('./native.js')

/** An error Stripe answered with (a 4xx/5xx from its API). */
class StripeApiError extends Error {
  constructor(message, details) {
    super(message)
    this.name = 'StripeApiError'
    this.code = details.code ?? 'stripe_api_error'
    this.type = details.type
    this.param = details.param ?? undefined
    this.declineCode = details.declineCode ?? undefined
    this.statusCode = details.statusCode
    this.requestId = details.requestId ?? undefined
  }
}

// Native failures arrive as an Error whose message is `{ code, message, stripe? }`.
function rebuildError(error) {
  let document
  try {
    document = JSON.parse(error.message)
  } catch {
    return error
  }
  if (!document || typeof document.code !== 'string') return error
  const rebuilt = document.stripe
    ? new StripeApiError(document.message, { ...document.stripe, code: document.code })
    : Object.assign(new Error(document.message), { code: document.code })
  return rebuilt
}

function callSync(fn) {
  try {
    return fn()
  } catch (error) {
    throw rebuildError(error)
  }
}

async function callAsync(fn) {
  try {
    return await fn()
  } catch (error) {
    throw rebuildError(error)
  }
}

async function readBody(request, limit) {
  const declared = Number(request.headers.get('content-length'))
  if (request.body === null) return { body: Buffer.alloc(0), bodyTooLarge: false }
  if (Number.isFinite(declared) && declared > limit) {
    await request.body.cancel().catch(() => {})
    return { body: Buffer.alloc(0), bodyTooLarge: true }
  }
  const reader = request.body.getReader()
  const chunks = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > limit) {
      await reader.cancel().catch(() => {})
      return { body: Buffer.alloc(0), bodyTooLarge: true }
    }
    chunks.push(value)
  }
  const body = chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, total) : Buffer.concat(chunks, total)
  return { body, bodyTooLarge: false }
}

const JSON_HEADERS = { 'content-type': 'application/json' }
const REPLIES_PER_TURN = 8

// Webhook answers come back from the native side as (ticket, status, body),
// committed in batches of up to 64. They are handed to their requests a few
// per event-loop turn, so a committed batch never holds the loop in one long
// burst. A webhook waiting for its answer keeps the process alive.
function webhookChannel(billing) {
  const waiting = new Map()
  const ready = []
  let nextTicket = 0
  let draining = false
  let keepAlive = null
  const forget = (ticket) => {
    const resolve = waiting.get(ticket)
    waiting.delete(ticket)
    if (waiting.size === 0 && keepAlive !== null) {
      clearInterval(keepAlive)
      keepAlive = null
    }
    return resolve
  }
  const drain = () => {
    for (const [ticket, status, body] of ready.splice(0, REPLIES_PER_TURN)) forget(ticket)?.({ status, body })
    if (ready.length > 0) setImmediate(drain)
    else draining = false
  }
  billing.onWebhookReply((ticket, status, body) => {
    ready.push([ticket, status, body])
    if (!draining) {
      draining = true
      setImmediate(drain)
    }
  })
  return (body, signature) =>
    new Promise((resolve, reject) => {
      const ticket = nextTicket
      nextTicket = (nextTicket + 1) >>> 0
      waiting.set(ticket, resolve)
      if (keepAlive === null) keepAlive = setInterval(() => {}, 2 ** 30)
      try {
        billing.handleWebhook(ticket, body, signature)
      } catch (error) {
        forget(ticket)
        reject(rebuildError(error))
      }
    })
}

// The webhook route passes only the body and the signature; the answer is always JSON.
async function handleWebhook(webhook, endpoint, request) {
  const { body, bodyTooLarge } = await readBody(request, endpoint.bodyLimit)
  const reply = await webhook(bodyTooLarge ? null : body, request.headers.get('stripe-signature'))
  return new Response(reply.body, { status: reply.status, headers: JSON_HEADERS })
}

async function toNativeRequest(request, endpoint) {
  const { body, bodyTooLarge } = await readBody(request, endpoint.bodyLimit)
  return { url: request.url, headers: [...request.headers], body, bodyTooLarge }
}

function toResponse(reply) {
  return new Response(reply.body, { status: reply.status, headers: reply.headers })
}

async function handleEndpoint(billing, endpoint, request, resolveUser) {
  const user = endpoint.requireAuth ? await resolveUser(request) : null
  const nativeRequest = await toNativeRequest(request, endpoint)
  const reply = await callAsync(() => billing.handle(endpoint.path, nativeRequest, user?.id ?? null))
  return toResponse(reply)
}

function billingApi(billing) {
  return {
    createCustomer: (userId, email, name) => callAsync(() => billing.createCustomer(userId, email, name)),
    getCustomerId: (userId) => callAsync(() => billing.getCustomerId(userId)),
    createCheckoutSession: (userId, priceIdOrPlan, options) =>
      callAsync(() => billing.createCheckoutSession(userId, priceIdOrPlan, options)),
    createPortalSession: async (userId, returnUrl) => ({
      url: await callAsync(() => billing.createPortalSession(userId, returnUrl)),
    }),
    getSubscription: async (userId) => (await callAsync(() => billing.getSubscription(userId))) ?? null,
    getBillingStatus: (userId) => callAsync(() => billing.getBillingStatus(userId)),
    listInvoices: (userId, options) => callAsync(() => billing.listInvoices(userId, options)),
    reconcile: (options) => callAsync(() => billing.reconcile(options)),
    changePlan: (userId, change) => callAsync(() => billing.changePlan(userId, change)),
    previewPlanChange: (userId, change) => callAsync(() => billing.previewPlanChange(userId, change)),
    cancelSubscription: (userId, options) => callAsync(() => billing.cancelSubscription(userId, options)),
    resumeSubscription: (userId, options) => callAsync(() => billing.resumeSubscription(userId, options)),
    syncSubscription: async (userId, options) =>
      (await callAsync(() => billing.syncSubscription(userId, options))) ?? null,
    hasActiveSubscription: (userId, filter) => callAsync(() => billing.hasActiveSubscription(userId, filter)),
    close: () => callAsync(() => billing.close()),
  }
}

// onSubscriptionChange / onTrialWillEnd, made to always return a Promise (sync throws become rejections).
function listenerOf(options, name) {
  const listener = options !== null && typeof options === 'object' ? options[name] : undefined
  if (typeof listener !== 'function') return undefined
  return async (userId, value) => {
    await listener(userId, value)
  }
}

// onEvent gets the event as parsed JSON.
function eventListenerOf(options) {
  const listener = options !== null && typeof options === 'object' ? options.onEvent : undefined
  if (typeof listener !== 'function') return undefined
  return async (payload) => {
    await listener(JSON.parse(payload))
  }
}

function parse(options, standalone) {
  return callSync(() =>
    native.parseOptions(
      options,
      standalone,
      listenerOf(options, 'onSubscriptionChange'),
      listenerOf(options, 'onTrialWillEnd'),
      eventListenerOf(options),
    ),
  )
}

/** The kavachOS plugin: `createKavach({ plugins: [stripe({...})] })`. */
function stripe(options) {
  const config = parse(options, false)
  return {
    id: 'kavach-stripe',
    async init(ctx) {
      const billing = await callAsync(() => config.open(ctx.config ? ctx.config.database : undefined))
      const webhook = webhookChannel(billing)
      for (const endpoint of billing.endpoints()) {
        ctx.addEndpoint({
          method: endpoint.method,
          path: endpoint.path,
          metadata: {
            requireAuth: endpoint.requireAuth,
            description: endpoint.description,
            ...(endpoint.rateLimit ? { rateLimit: endpoint.rateLimit } : {}),
          },
          handler: endpoint.isWebhook
            ? (request) => handleWebhook(webhook, endpoint, request)
            : (request, endpointCtx) => handleEndpoint(billing, endpoint, request, (r) => endpointCtx.getUser(r)),
        })
      }
      return { context: { stripe: billingApi(billing) } }
    },
  }
}

/** The same billing without kavachOS: mount `handleRequest` in any framework. */
async function createStripeBilling(options) {
  const config = parse(options, true)
  const billing = await callAsync(() => config.open(undefined))
  const webhook = webhookChannel(billing)
  const endpoints = new Map(billing.endpoints().map((endpoint) => [endpoint.path, endpoint]))
  const resolveUser = options.auth ? (request) => options.auth(request) : async () => null
  return {
    ...billingApi(billing),
    upsertUser: (user) => callAsync(() => billing.upsertUser(user.id, user.email, user.name)),
    async handleRequest(request, basePath = '') {
      const path = native.matchRoute(request.method, new URL(request.url).pathname, basePath)
      if (path === null) return null
      const endpoint = endpoints.get(path)
      if (endpoint.isWebhook) return handleWebhook(webhook, endpoint, request)
      return handleEndpoint(billing, endpoint, request, resolveUser)
    },
  }
}

/** Verifies a webhook and returns the event: a drop-in for the SDK's `constructEvent`. */
function constructEvent(payload, header, secret, tolerance) {
  callSync(() => native.constructEvent(payload, header, secret, tolerance))
  return JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'))
}

/** Verifies `Stripe-Signature` over the raw payload; throws on failure. */
function verifySignature(payload, header, secret, tolerance) {
  callSync(() => native.verifySignature(payload, header, secret, tolerance))
}

/** The plugin's API in a kavachOS app (`getContext().stripe`), or a clear error. */
function getStripe(kavach) {
  const api = kavach?.plugins?.getContext?.()?.stripe
  if (!api || typeof api.createCheckoutSession !== 'function') {
    throw Object.assign(new Error('kavachos-stripe is not registered: add stripe({ ... }) to createKavach({ plugins: [...] })'), { code: 'plugin_not_registered' })
  }
  return api
}

/** The event types this package handles: what a webhook endpoint must send. */
const HANDLED_EVENT_TYPES = Object.freeze(native.handledEventTypes())

module.exports = { stripe, getStripe, createStripeBilling, constructEvent, verifySignature, StripeApiError, HANDLED_EVENT_TYPES }
