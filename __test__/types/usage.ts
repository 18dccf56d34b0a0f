// A typed usage example, checked with `tsc --noEmit` (npm run test:types):
// the public types are precise and assignable to the kavachOS contract.
import {
  constructEvent,
  createStripeBilling,
  stripe,
  StripeApiError,
  type KavachStripeErrorCode,
  type BillingStatus,
  type BillingStatusJson,
  type PlanConfig,
  type StripeEvent,
  type Subscription,
} from '../../index.js'

// The host's shapes, as kavachos-plugin-contract.md describes them.
interface ResolvedUser { id: string; email?: string; name?: string }
interface EndpointContext { db: unknown; getUser(request: Request): Promise<ResolvedUser | null>; getSession(token: string): Promise<unknown> }
interface PluginEndpoint {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  path: string
  handler(request: Request, ctx: EndpointContext): Promise<Response>
  metadata?: { requireAuth?: boolean; rateLimit?: { window: number; max: number }; description?: string }
}
interface KavachConfig { database: { provider: 'sqlite' | 'sqlite-native' | 'postgres' | 'mysql'; url: string; skipMigrations?: boolean } | { provider: 'd1'; binding: unknown } }
interface PluginContext { db: unknown; config: KavachConfig; addEndpoint(ep: PluginEndpoint): void; addMigration(sql: string): void; sessionManager: unknown }
interface KavachPlugin { id: string; init?(ctx: PluginContext): Promise<{ context?: Record<string, unknown> } | undefined> }

const plugin = stripe({
  secretKey: 'sk_test_123456789',
  webhookSecret: ['whsec_a', 'whsec_b'],
  onSubscriptionChange: async (userId: string, sub: Subscription) => {
    const status: 'active' | 'trialing' | 'past_due' | 'canceled' | 'unpaid' | 'paused' | 'incomplete' | 'incomplete_expired' = sub.status
    console.log(userId, status, sub.currentPeriodEnd?.toISOString(), sub.priceId ?? 'none', sub.cancelAtPeriodEnd)
  },
  prices: ['price_basic'],
  maxClientTrialDays: 7,
})
const asHostPlugin: KavachPlugin = plugin
void asHostPlugin

async function underKavach(ctx: PluginContext): Promise<void> {
  const { context } = await plugin.init(ctx)
  const api = context.stripe
  const customerId: string = await api.createCustomer('user_1', 'a@example.com', 'Ada')
  const maybe: string | null = await api.getCustomerId('user_1')
  const session = await api.createCheckoutSession('user_1', 'price_basic', { trialDays: 7, metadata: { campaign: 'x' } })
  const sessionUrl: string = session.url
  const portal = await api.createPortalSession('user_1', 'https://app.example/account')
  const sub: Subscription | null = await api.getSubscription('user_1')
  console.log(customerId, maybe, sessionUrl, session.sessionId, portal.url, sub?.id)
  await api.close()
}
void underKavach

const plans: PlanConfig[] = [
  { name: 'basic', priceId: 'price_basic' },
  { name: 'pro', priceId: 'price_pro', annualPriceId: 'price_pro_year', trialDays: 14, limits: { projects: 10 } },
]
const withPlans = stripe({ secretKey: 'sk_test_123456789', plans, pastDueIsActive: false, oneTrialPerUser: true, clientQuantity: { max: 50 }, clientCancelImmediately: false })

async function plansAndStatus(ctx: PluginContext): Promise<void> {
  const api = (await withPlans.init(ctx)).context.stripe
  const byPlan = await api.createCheckoutSession('user_1', { plan: 'pro', annual: true })
  const granted: boolean = byPlan.trialGranted
  const status: BillingStatus = await api.getBillingStatus('user_1')
  const projects: number | undefined = status.plan?.limits.projects
  const ends: Date | null = status.endsAt
  const flags: boolean[] = [status.active, status.onTrial, status.onGracePeriod, status.scheduledToCancel, status.pastDue]
  const paying: boolean = await api.hasActiveSubscription('user_1', { plan: 'pro', productId: 'prod_app' })
  const sub = await api.getSubscription('user_1')
  const annual: boolean | undefined = sub?.plan?.annual
  const json: BillingStatusJson = (await (await fetch('http://localhost/api/auth/stripe/status')).json()) as BillingStatusJson
  const iso: string | null = json.trialEndsAt
  console.log(granted, projects, ends, flags, paying, annual, iso, status.quantity, status.productId)

  const preview = await api.previewPlanChange('user_1', { plan: 'pro', annual: true })
  const due: number = preview.amountDue
  const changed = await api.changePlan('user_1', { plan: 'pro', prorationDate: preview.prorationDate, prorationBehavior: 'always_invoice' })
  const payAt: string | null | undefined = changed.pending?.hostedInvoiceUrl
  const expires: Date | null | undefined = changed.pending?.expiresAt
  const canceled: Subscription = await api.cancelSubscription('user_1', { immediately: false })
  const resumed: Subscription = await api.resumeSubscription('user_1')
  const synced: Subscription | null = await api.syncSubscription('user_1', { sessionId: 'cs_test_1' })
  console.log(due, changed.subscription.priceId, payAt, expires, canceled.cancelAtPeriodEnd, resumed.status, synced?.id)

  const issue = status.paymentIssue
  if (issue !== null) {
    const reason: 'payment_failed' | 'requires_action' = issue.reason
    const retry: Date | null = issue.nextPaymentAttempt
    console.log(reason, retry, issue.hostedInvoiceUrl, issue.attemptCount)
  }
  const history = await api.listInvoices('user_1', { limit: 20, startingAfter: 'in_1' })
  const first: Date | undefined = history.invoices[0]?.created
  console.log(first, history.hasMore, json.paymentIssue?.nextPaymentAttempt)
}

const withTrials = stripe({
  secretKey: 'sk_test_123456789',
  onTrialWillEnd: async (userId: string, trial: { trialEndsAt: Date; subscription: Subscription }) => {
    console.log(userId, trial.trialEndsAt.toISOString(), trial.subscription.paymentIssue?.invoiceId)
  },
})
void withTrials

const withEvents = stripe({
  secretKey: 'sk_test_123456789',
  onEventTypes: ['charge.refunded'],
  onEvent: async (event: StripeEvent) => {
    if (event.type === 'charge.refunded') console.log(event.id, event.data.object)
  },
})
async function afterOutage(ctx: PluginContext): Promise<void> {
  const api = (await withEvents.init(ctx)).context.stripe
  const result = await api.reconcile({ since: new Date(Date.now() - 3 * 86_400_000) })
  const counts: number[] = [result.fetched, result.applied, result.duplicates, result.ignored, result.failed]
  console.log(counts)
}
void afterOutage
void plansAndStatus

async function standalone(): Promise<void> {
  const billing = await createStripeBilling({
    secretKey: 'sk_test_123456789',
    database: { provider: 'postgres', url: 'postgres://localhost/app' },
    auth: async (request: Request) => (request.headers.get('x-user') ? { id: 'u' } : null),
  })
  await billing.upsertUser({ id: 'u', email: 'u@example.com' })
  const response: Response | null = await billing.handleRequest(new Request('http://localhost/api/auth/stripe/subscription'), '/api')
  console.log(response?.status)
  try {
    await billing.createPortalSession('u', 'https://app.example')
  } catch (error) {
    if (error instanceof StripeApiError) {
      const details: [string, string, number, string | undefined] = [error.code, error.type, error.statusCode, error.requestId]
      console.log(details)
    } else {
      const code = (error as { code?: KavachStripeErrorCode }).code
      console.log(code)
    }
  }
  await billing.close()
}
void standalone

const event: StripeEvent = constructEvent(Buffer.from('{}'), 't=1,v1=00', 'whsec_a', 300)
const eventType: string = event.type
console.log(eventType, event.data.object)

// @ts-expect-error secretKey is required
stripe({})
// @ts-expect-error unknown options are type errors too
stripe({ secretKey: 'sk_test_1', webhookSecrets: 'whsec_a' })
