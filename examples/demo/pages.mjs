// The demo app's pages: plain server-rendered HTML.

const escape = (text) =>
  String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])

const money = (amount, currency) => `${(amount / 100).toFixed(2)} ${String(currency ?? 'usd').toUpperCase()}`
const day = (date) => (date ? new Date(date).toISOString().slice(0, 10) : '')

export function layout(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)} · kavachos-stripe demo</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1a1f36}
.plan{border:1px solid #e3e8ee;border-radius:8px;padding:1rem;margin:.5rem 0}.issue{background:#fff4f4;border:1px solid #f5c2c7;padding:1rem;border-radius:8px}
button{background:#635bff;color:#fff;border:0;padding:.5rem 1rem;border-radius:4px;font-size:1rem;cursor:pointer}.note{color:#697386;font-size:.9rem}
form{display:inline}</style></head><body><p class="note">kavachos-stripe demo</p>${body}</body></html>`
}

export function signIn({ emulated }) {
  return layout(
    'Sign in',
    `<h1>Demo shop</h1><p>Sign in as the demo user to buy a subscription${emulated ? ' from the local Stripe emulator (no account or network needed)' : ''}.</p>
<form method="post" action="/signin"><button type="submit" id="signin">Sign in as demo user</button></form>`,
  )
}

function statusBlock(status) {
  if (!status.status) return '<p id="status">No subscription yet.</p>'
  const plan = status.plan?.name ?? status.priceId
  const lines = [`<p id="status">Plan <strong id="plan">${escape(plan)}</strong>, status <strong id="state">${escape(status.status)}</strong>${status.active ? ' (active)' : ''}.</p>`]
  if (status.onTrial) lines.push(`<p>Trial until ${day(status.trialEndsAt)}.</p>`)
  if (status.scheduledToCancel) lines.push(`<p id="scheduled">Cancels on ${day(status.endsAt)}.</p>`)
  else if (status.currentPeriodEnd) lines.push(`<p>Renews on ${day(status.currentPeriodEnd)}.</p>`)
  return lines.join('')
}

function issueBlock(issue) {
  if (!issue) return ''
  const what = issue.reason === 'requires_action' ? 'Your bank needs you to confirm the payment' : 'Your last payment failed'
  const amount = issue.amountDue === null ? '' : ` (${money(issue.amountDue, issue.currency)})`
  return `<div class="issue" id="payment-issue"><strong>${what}${amount}.</strong>
${issue.hostedInvoiceUrl ? `<p><a href="${escape(issue.hostedInvoiceUrl)}" id="pay-now">Pay now</a></p>` : ''}</div>`
}

export function home({ user, status, plans, emulated, now }) {
  const choices = plans
    .map(
      (plan) => `<div class="plan"><h3>${escape(plan.label)}</h3><p>${escape(plan.price)}</p>
<form method="post" action="/subscribe"><input type="hidden" name="plan" value="${escape(plan.name)}"><button type="submit" class="subscribe" id="subscribe-${escape(plan.name)}">Choose ${escape(plan.label)}</button></form></div>`,
    )
    .join('')
  const subscribed = status.status && !['canceled', 'incomplete_expired'].includes(status.status)
  const clock = emulated
    ? `<h2>Time</h2><p class="note">Emulator time: <span id="now">${day(now * 1000)}</span>. Renewals, retries and trial ends run as the clock moves.</p>
<form method="post" action="/advance"><input type="hidden" name="days" value="31"><button type="submit" id="advance">Advance the clock 31 days</button></form>`
    : ''
  return layout(
    'Account',
    `<h1>Hello, ${escape(user.email)}</h1>${issueBlock(status.paymentIssue)}${statusBlock(status)}
${subscribed ? '<form method="post" action="/portal"><button type="submit" id="portal">Manage billing</button></form>' : `<h2>Pick a plan</h2>${choices}`}
${clock}<p><form method="post" action="/signout"><button type="submit" id="signout">Sign out</button></form></p>
${emulated ? '<p class="note">Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0341 attaches but never pays (use it in Manage billing, then advance the clock to see a renewal fail).</p>' : ''}`,
  )
}

export function success({ status }) {
  return layout(
    'Thank you',
    `<h1 id="thanks">Thank you!</h1>${statusBlock(status)}<p><a href="/" id="home">Back to your account</a></p>`,
  )
}

export function canceled() {
  return layout('Checkout canceled', '<h1>Checkout canceled</h1><p>Nothing was charged.</p><p><a href="/">Back</a></p>')
}

export function failure(message) {
  return layout('Something went wrong', `<h1>Something went wrong</h1><p id="error">${escape(message)}</p><p><a href="/">Back</a></p>`)
}
