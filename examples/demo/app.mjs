// The demo app: a signed-in user picks a plan, pays on Stripe's checkout
// page (the emulator's, offline), manages billing in the portal and sees a
// payment issue and its "pay now" link. Auth is a demo cookie; billing is
// this package's API and endpoints.
import http from 'node:http'
import * as pages from './pages.mjs'

const USER = { id: 'demo-user', email: 'demo@example.com', name: 'Demo User' }
const COOKIE = 'demo_user'

const signedIn = (request) => (request.headers.get('cookie') ?? '').split(/;\s*/).includes(`${COOKIE}=${USER.id}`)

export async function startDemoApp({ billing, emulator, plans, port, origin }) {
  await billing.upsertUser(USER)
  const html = (body, status = 200) => new Response(body, { status, headers: { 'content-type': 'text/html; charset=utf-8' } })
  const redirect = (to, headers = {}) => new Response(null, { status: 303, headers: { location: to, ...headers } })

  async function route(request) {
    const url = new URL(request.url)
    const api = await billing.handleRequest(request, '/api/kavach')
    if (api) return api
    const user = signedIn(request) ? USER : null
    const form = request.method === 'POST' ? new URLSearchParams(await request.text()) : new URLSearchParams()
    switch (`${request.method} ${url.pathname}`) {
      case 'GET /': {
        if (!user) return html(pages.signIn({ emulated: Boolean(emulator) }))
        const status = await billing.getBillingStatus(user.id)
        return html(pages.home({ user, status, plans, emulated: Boolean(emulator), now: emulator?.now() }))
      }
      case 'POST /signin':
        return redirect('/', { 'set-cookie': `${COOKIE}=${USER.id}; Path=/; HttpOnly; SameSite=Lax` })
      case 'POST /signout':
        return redirect('/', { 'set-cookie': `${COOKIE}=; Path=/; Max-Age=0` })
      case 'POST /subscribe': {
        if (!user) return redirect('/')
        const session = await billing.createCheckoutSession(user.id, { plan: form.get('plan') ?? '' }, {
          successUrl: `${origin}/billing/success?session_id={CHECKOUT_SESSION_ID}`,
          cancelUrl: `${origin}/billing/cancel`,
        })
        return redirect(session.url)
      }
      case 'GET /billing/success': {
        if (!user) return redirect('/')
        // The webhooks may still be on their way: ask Stripe now.
        await billing.syncSubscription(user.id, { sessionId: url.searchParams.get('session_id') ?? undefined })
        return html(pages.success({ status: await billing.getBillingStatus(user.id) }))
      }
      case 'GET /billing/cancel':
        return html(pages.canceled())
      case 'POST /portal': {
        if (!user) return redirect('/')
        const portal = await billing.createPortalSession(user.id, `${origin}/account`)
        return redirect(portal.url)
      }
      case 'GET /account': {
        if (user) await billing.syncSubscription(user.id)
        return redirect('/')
      }
      case 'POST /advance': {
        if (!emulator) return html(pages.failure('The clock moves only on the local emulator.'), 400)
        const days = Math.min(Math.max(Number(form.get('days')) || 1, 1), 366)
        await emulator.advanceTime(days * 86_400)
        // Let the renewal's webhooks arrive before the page shows the result.
        await new Promise((resolve) => setTimeout(resolve, 500))
        return redirect('/')
      }
      default:
        return html(pages.failure('Not found.'), 404)
    }
  }

  const server = http.createServer(async (req, res) => {
    try {
      const chunks = []
      for await (const chunk of req) chunks.push(chunk)
      const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(chunks)
      const response = await route(new Request(new URL(req.url, origin), { method: req.method, headers: req.headers, body }))
      res.writeHead(response.status, Object.fromEntries(response.headers))
      res.end(Buffer.from(await response.arrayBuffer()))
    } catch (error) {
      res.writeHead(500, { 'content-type': 'text/html; charset=utf-8' })
      res.end(pages.failure(error.message))
    }
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  return {
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(resolve)
      }),
  }
}
