// A local stand-in for Stripe's REST API that records every request and
// answers from queued or default responses.
import http from 'node:http'

export async function startFakeStripe() {
  const requests = []
  const queued = []
  /** GET path -> object: what Stripe "holds" (the truth for re-fetches). */
  const objects = new Map()
  /** id -> subscription: updated, cancelled, listed and fetched like Stripe does. */
  const subscriptions = new Map()
  const behaviour = { failNextPayment: false }
  /** Invoices `GET /v1/invoices?customer=` lists, newest first. */
  const invoices = []
  /** Events `GET /v1/events` lists (newest first, `types[]`, `created` bounds, paging). */
  const events = []
  const nowSeconds = () => Math.floor(Date.now() / 1000)
  /** A subscription update, applied the way Stripe applies the form. */
  const update = (sub, form) => {
    const next = structuredClone(sub)
    if (form.has('items[0][price]')) {
      const item = next.items.data.find((i) => i.id === form.get('items[0][id]'))
      if (!item) return { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'items[0][id]', message: `No such subscription item: '${form.get('items[0][id]')}'` } }
      const price = form.get('items[0][price]')
      const quantity = Number(form.get('items[0][quantity]') ?? 1)
      if (behaviour.failNextPayment && form.get('payment_behavior') === 'pending_if_incomplete') {
        behaviour.failNextPayment = false
        next.pending_update = { expires_at: nowSeconds() + 23 * 3600, subscription_items: [{ id: item.id, price: { id: price }, quantity }], billing_cycle_anchor: null, trial_end: null, trial_from_plan: null }
        next.latest_invoice = { id: `in_pending_${sub.id}`, object: 'invoice', status: 'open', hosted_invoice_url: `https://invoice.stripe.test/i/${sub.id}` }
      } else {
        item.price = { ...item.price, id: price }
        item.quantity = quantity
        next.pending_update = null
        next.latest_invoice = { id: `in_paid_${sub.id}`, object: 'invoice', status: 'paid', hosted_invoice_url: null }
      }
    }
    if (form.has('cancel_at_period_end')) {
      next.cancel_at_period_end = form.get('cancel_at_period_end') === 'true'
      next.cancel_at = next.cancel_at_period_end ? next.items.data[0].current_period_end : next.cancel_at
      next.canceled_at = next.cancel_at_period_end ? nowSeconds() : null
    }
    if (form.has('cancel_at') && form.get('cancel_at') === '') next.cancel_at = null
    if (!form.getAll('expand[0]').includes('latest_invoice') && typeof next.latest_invoice === 'object' && next.latest_invoice) {
      next.latest_invoice = next.latest_invoice.id
    }
    return { subscription: next }
  }
  let counter = 0
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const record = { method: req.method, path: req.url, headers: req.headers, body, form: new URLSearchParams(body) }
      requests.push(record)
      const next = queued.shift()
      if (next) return next(req, res, record)
      counter += 1
      const reply = (status, json) => {
        res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_fake_${counter}` })
        res.end(JSON.stringify(json))
      }
      if (req.method === 'POST' && req.url === '/v1/customers') {
        return reply(200, { id: `cus_fake_${counter}`, object: 'customer', email: record.form.get('email') })
      }
      if (req.method === 'POST' && req.url === '/v1/checkout/sessions') {
        const id = `cs_test_fake_${counter}`
        return reply(200, { id, object: 'checkout.session', url: `https://checkout.stripe.test/c/pay/${id}` })
      }
      if (req.method === 'POST' && req.url === '/v1/billing_portal/sessions') {
        return reply(200, { id: `bps_fake_${counter}`, object: 'billing_portal.session', url: `https://billing.stripe.test/p/session/${counter}` })
      }
      const subscriptionPath = req.url.match(/^\/v1\/subscriptions\/([A-Za-z0-9_]+)$/)
      if (subscriptionPath && subscriptions.has(subscriptionPath[1])) {
        const sub = subscriptions.get(subscriptionPath[1])
        if (req.method === 'GET') return reply(200, sub)
        if (sub.status === 'canceled') {
          return reply(400, { error: { type: 'invalid_request_error', message: 'A canceled subscription can only update its cancellation_details.' } })
        }
        if (req.method === 'DELETE') {
          const ended = { ...structuredClone(sub), status: 'canceled', canceled_at: nowSeconds(), ended_at: nowSeconds() }
          subscriptions.set(sub.id, ended)
          return reply(200, ended)
        }
        if (req.method === 'POST') {
          const result = update(sub, record.form)
          if (result.error) return reply(400, result)
          const stored = structuredClone(result.subscription)
          if (typeof stored.latest_invoice === 'object' && stored.latest_invoice) stored.latest_invoice = stored.latest_invoice.id
          subscriptions.set(sub.id, stored)
          return reply(200, result.subscription)
        }
      }
      if (req.method === 'GET' && req.url.startsWith('/v1/subscriptions?')) {
        const query = new URL(req.url, 'http://fake').searchParams
        const all = [...subscriptions.values()].filter((s) => s.customer === query.get('customer')).sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1))
        const after = query.get('starting_after')
        const from = after ? all.findIndex((s) => s.id === after) + 1 : 0
        const limit = Number(query.get('limit') ?? 10)
        const data = all.slice(from, from + limit)
        return reply(200, { object: 'list', url: '/v1/subscriptions', has_more: from + limit < all.length, data })
      }
      if (req.method === 'GET' && req.url.startsWith('/v1/events?')) {
        const query = new URL(req.url, 'http://fake').searchParams
        const types = query.getAll('types[]')
        if (types.length > 20) return reply(400, { error: { type: 'invalid_request_error', param: 'types', message: 'You may pass at most 20 types.' } })
        const gte = Number(query.get('created[gte]') ?? -Infinity)
        const lt = Number(query.get('created[lt]') ?? Infinity)
        const all = events
          .filter((e) => (types.length === 0 || types.includes(e.type)) && e.created >= gte && e.created < lt)
          .sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1))
        const after = query.get('starting_after')
        const from = after ? all.findIndex((e) => e.id === after) + 1 : 0
        const limit = Number(query.get('limit') ?? 10)
        return reply(200, { object: 'list', url: '/v1/events', has_more: from + limit < all.length, data: all.slice(from, from + limit) })
      }
      if (req.method === 'GET' && req.url.startsWith('/v1/invoices?')) {
        const query = new URL(req.url, 'http://fake').searchParams
        const all = invoices.filter((i) => i.customer === query.get('customer')).sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1))
        const after = query.get('starting_after')
        const from = after ? all.findIndex((i) => i.id === after) + 1 : 0
        const limit = Number(query.get('limit') ?? 10)
        return reply(200, { object: 'list', url: '/v1/invoices', has_more: from + limit < all.length, data: all.slice(from, from + limit) })
      }
      if (req.method === 'POST' && req.url === '/v1/invoices/create_preview') {
        const price = record.form.get('subscription_details[items][0][price]')
        return reply(200, {
          id: `upcoming_in_${counter}`, object: 'invoice', billing_reason: 'upcoming', amount_due: 1500, currency: 'usd',
          lines: { object: 'list', data: [
            { description: 'Unused time on the old plan', amount: -500, parent: { subscription_item_details: { proration: true } }, pricing: { price_details: { price: 'price_old' } } },
            { description: 'Remaining time on the new plan', amount: 2000, parent: { subscription_item_details: { proration: true } }, pricing: { price_details: { price } } },
          ] },
        })
      }
      if (req.method === 'GET' && objects.has(req.url)) return reply(200, objects.get(req.url))
      reply(404, { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such route: ${req.url}` } })
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    objects,
    subscriptions,
    invoices,
    events,
    /** `failNextPayment`: the next plan change's payment fails (it stays pending). */
    behaviour,
    /** Queue a handler `(req, res, record) => void` for the next request. */
    enqueue: (handler) => queued.push(handler),
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
