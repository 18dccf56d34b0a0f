// An HTTP endpoint that records webhook deliveries as they arrive: raw body,
// Stripe-Signature header, the answer it gave.
import http from 'node:http'

export async function startWebhookReceiver({ respond = () => 200 } = {}) {
  const received = []
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      let event = null
      try {
        event = JSON.parse(body)
      } catch {}
      const delivery = { body, signature: req.headers['stripe-signature'], userAgent: req.headers['user-agent'], event, at: Date.now() }
      delivery.status = respond(delivery, received)
      received.push(delivery)
      res.writeHead(delivery.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ received: delivery.status < 300 }))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    received,
    types: () => received.map((d) => d.event?.type),
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

export async function waitFor(predicate, { timeoutMs = 10_000, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await predicate()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
