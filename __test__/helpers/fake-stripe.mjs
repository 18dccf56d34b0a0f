// A local stand-in for Stripe's REST API that records every request and
// answers from queued or default responses.
import http from 'node:http'

export async function startFakeStripe() {
  const requests = []
  const queued = []
  /** GET path -> object: what Stripe "holds" (the truth for re-fetches). */
  const objects = new Map()
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
      if (req.method === 'GET' && objects.has(req.url)) return reply(200, objects.get(req.url))
      reply(404, { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such route: ${req.url}` } })
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    objects,
    /** Queue a handler `(req, res, record) => void` for the next request. */
    enqueue: (handler) => queued.push(handler),
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
