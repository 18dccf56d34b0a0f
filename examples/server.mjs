// `npm start`: an example server on embedded SQLite that mounts the billing
// endpoints under /api/kavach. Auth is a demo header (x-user-id); use your
// framework's session in a real app.
import http from 'node:http'
import { createStripeBilling } from '../index.js'

const port = Number(process.env.PORT ?? 3000)
const origin = `http://localhost:${port}`
const billing = await createStripeBilling({
  secretKey: process.env.STRIPE_SECRET_KEY ?? 'sk_test_replace_with_your_key',
  webhookSecret: process.env.STRIPE_WEBHOOK_SECRET,
  apiBase: process.env.STRIPE_API_BASE,
  database: { provider: 'sqlite', url: process.env.DATABASE_PATH ?? './kavach-example.db' },
  baseUrl: origin,
  auth: async (request) => {
    const id = request.headers.get('x-user-id')
    return id ? { id } : null
  },
})
await billing.upsertUser({ id: 'demo-user', email: 'demo@example.com', name: 'Demo User' })

const server = http.createServer(async (req, res) => {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(chunks)
  const request = new Request(new URL(req.url, origin), { method: req.method, headers: req.headers, body })
  const response = await billing.handleRequest(request, '/api/kavach')
  if (!response) {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Not found"}')
    return
  }
  res.writeHead(response.status, Object.fromEntries(response.headers))
  res.end(Buffer.from(await response.arrayBuffer()))
})

server.listen(port, () => {
  console.log(`kavachos-stripe example on ${origin} (SQLite file ${process.env.DATABASE_PATH ?? './kavach-example.db'})`)
  console.log('Try:')
  console.log(`  curl -H 'x-user-id: demo-user' ${origin}/api/kavach/auth/stripe/subscription`)
  console.log(`  curl -X POST -H 'x-user-id: demo-user' -H 'content-type: application/json' -d '{"priceId":"price_..."}' ${origin}/api/kavach/auth/stripe/checkout`)
  console.log(`  curl -X POST -H 'x-user-id: demo-user' -H 'content-type: application/json' -d '{"returnUrl":"${origin}/account"}' ${origin}/api/kavach/auth/stripe/portal`)
  console.log('Set STRIPE_SECRET_KEY (and STRIPE_WEBHOOK_SECRET) for real Stripe calls.')
})

const shutdown = () => server.close(() => billing.close())
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
