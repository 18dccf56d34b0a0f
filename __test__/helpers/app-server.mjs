// Serves a kavachOS host (helpers/host.mjs) over real HTTP, so that a Stripe
// emulator in the same process can deliver webhooks to it.
import http from 'node:http'

export async function serveHost(getHost, basePath = '/api/kavach') {
  const server = http.createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const body = Buffer.concat(chunks)
    const request = new Request(`http://127.0.0.1:${server.address().port}${req.url}`, {
      method: req.method,
      headers: req.headers,
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body,
    })
    const response = (await getHost()?.plugins.handleRequest(request, basePath)) ?? new Response('not found', { status: 404 })
    res.writeHead(response.status, Object.fromEntries(response.headers))
    res.end(Buffer.from(await response.arrayBuffer()))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${server.address().port}`
  return {
    url,
    webhookUrl: `${url}${basePath}/auth/stripe/webhook`,
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** Waits until the emulator has delivered everything and gone quiet. */
export async function settled(emulator, { quietMs = 800, timeoutMs = 20_000 } = {}) {
  const deadline = Date.now() + timeoutMs
  let seen = -1
  let since = Date.now()
  for (;;) {
    const attempts = emulator.deliveries()
    const pending = new Set(attempts.map((a) => `${a.eventId} ${a.endpointId}`))
    for (const a of attempts) if (a.succeeded) pending.delete(`${a.eventId} ${a.endpointId}`)
    if (attempts.length !== seen) {
      seen = attempts.length
      since = Date.now()
    } else if (pending.size === 0 && Date.now() - since >= quietMs) {
      return attempts
    }
    if (Date.now() > deadline) throw new Error(`deliveries did not settle: ${[...pending].join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
