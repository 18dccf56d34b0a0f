#!/usr/bin/env node
'use strict'
// kavachos-stripe: the command line of the package. It reads flags and the
// environment, calls the addon (src/ops, the emulator, the billing API) and
// prints; every decision about Stripe or the database is in Rust.

const fs = require('node:fs')
const { parseArgs } = require('node:util')
const native = require('../native.js')
const { startStripeEmulator } = require('../emulator.js')
const { createStripeBilling } = require('../index.js')

const EXIT = { ok: 0, failed: 1, usage: 2, config: 3, unreachable: 4 }
const DEFAULT_EMULATOR = 'http://127.0.0.1:12111'

class CliError extends Error {
  constructor(exitCode, message, code = undefined) {
    super(message)
    this.exitCode = exitCode
    this.code = code
  }
}

const COMMON = `
Configuration: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_API_BASE and DATABASE_URL
(postgres://, mysql:// or mariadb://, sqlite:<path>) from the environment; flags win.
  --database <url>     the database (instead of DATABASE_URL)
  --provider <name>    postgres, mysql or sqlite, for a URL without a prefix
  --api-base <url>     Stripe's API base (default https://api.stripe.com; an emulator's apiBase)
  --json               machine-readable output
  --help               this help
Exit codes: 0 ok, 1 a check or operation failed, 2 usage error, 3 configuration missing or
invalid, 4 something unreachable.`

const COMMANDS = {
  emulator: {
    usage: 'kavachos-stripe emulator [--port <n>] [--webhook <url>]... [--state <file>] [--catalog <file>]',
    about: 'Starts a local Stripe and prints its API base, webhook secret and dashboard URL. Runs until Ctrl+C.',
    options: {
      port: { type: 'string' },
      webhook: { type: 'string', multiple: true },
      state: { type: 'string' },
      catalog: { type: 'string' },
    },
    run: emulatorCommand,
  },
  trigger: {
    usage: 'kavachos-stripe trigger <event> --user <id> [--emulator <url>]',
    about: "Makes an event happen in the emulator for an app user: creates what it needs (a customer tagged with the user's id, or the user's own customer when a database is configured) and lets the emulator emit it.",
    options: { user: { type: 'string' }, emulator: { type: 'string' } },
    positionals: 1,
    run: triggerCommand,
  },
  migrate: {
    usage: 'kavachos-stripe migrate --database <url> [--standalone]',
    about: "Runs the package's migrations (for deploy pipelines). kavach_users is created only with --standalone: in a kavachOS app the host creates it.",
    options: { standalone: { type: 'boolean' } },
    run: migrateCommand,
  },
  reconcile: {
    usage: 'kavachos-stripe reconcile --since <date> [--until <date>]',
    about: "Lists Stripe's events in the window and handles those the webhooks missed; prints the counts.",
    options: { since: { type: 'string' }, until: { type: 'string' } },
    run: reconcileCommand,
  },
  doctor: {
    usage: 'kavachos-stripe doctor [--url <webhook url>]',
    about: "Checks a deployment: the key and its mode, Stripe reachable with it, the database reachable and migrated, and a webhook endpoint for --url in the key's mode sending every event this package handles.",
    options: { url: { type: 'string' } },
    run: doctorCommand,
  },
}

const GLOBAL = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  database: { type: 'string' },
  provider: { type: 'string' },
  'api-base': { type: 'string' },
}

function mainHelp() {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.about.split('.')[0]}.`)
  return `kavachos-stripe <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun kavachos-stripe <command> --help for a command's options.\n${COMMON}`
}

function commandHelp(name) {
  const command = COMMANDS[name]
  return `${command.usage}\n\n${command.about}\n${COMMON}`
}

/** `{ provider, url }` from a URL and an optional --provider. */
function databaseOptions(url, provider) {
  if (!url) return undefined
  if (provider) {
    if (!['postgres', 'mysql', 'sqlite'].includes(provider)) throw new CliError(EXIT.config, `--provider must be postgres, mysql or sqlite (got ${provider})`)
    return { provider, url: provider === 'mysql' ? url.replace(/^mariadb:\/\//, 'mysql://') : url }
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { provider: 'postgres', url }
  if (/^(mysql|mariadb):\/\//.test(url)) return { provider: 'mysql', url: url.replace(/^mariadb:\/\//, 'mysql://') }
  if (/^(sqlite|file):/.test(url)) return { provider: 'sqlite', url: url.replace(/^file:(\/\/)?/, 'sqlite:') }
  throw new CliError(EXIT.config, `the database URL has no provider prefix (postgres://, mysql://, sqlite:): add one, or pass --provider`)
}

function configuration(values) {
  return {
    secretKey: process.env.STRIPE_SECRET_KEY || undefined,
    webhookSecret: process.env.STRIPE_WEBHOOK_SECRET || undefined,
    apiBase: values['api-base'] ?? (process.env.STRIPE_API_BASE || undefined),
    database: databaseOptions(values.database ?? (process.env.DATABASE_URL || undefined), values.provider),
  }
}

/** Maps an addon error to an exit code. */
function fromAddon(error) {
  const code = error.code
  if (code === 'invalid_config' || code === 'database_unsupported') return new CliError(EXIT.config, error.message, code)
  if (code === 'database_error' || code === 'stripe_unreachable') return new CliError(EXIT.unreachable, error.message, code)
  return new CliError(EXIT.failed, error.message, code)
}

function print(json, value, text) {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text}\n`)
}

async function emulatorCommand({ values, json }) {
  const port = values.port === undefined ? 12111 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(EXIT.usage, `--port must be a port number (got ${values.port})`)
  let catalog
  if (values.catalog) {
    let text
    try {
      text = fs.readFileSync(values.catalog, 'utf8')
    } catch (error) {
      throw new CliError(EXIT.config, `cannot read the catalog ${values.catalog}: ${error.message}`)
    }
    try {
      catalog = JSON.parse(text)
    } catch (error) {
      throw new CliError(EXIT.config, `the catalog ${values.catalog} is not JSON: ${error.message}`)
    }
  }
  let emulator
  try {
    emulator = await startStripeEmulator({
      port,
      webhooks: (values.webhook ?? []).map((url) => ({ url })),
      ...(values.state ? { state: values.state } : {}),
      ...(catalog ? { catalog } : {}),
    })
  } catch (error) {
    if (error.code === 'invalid_config' || error.code === 'emulator_state_invalid') throw new CliError(EXIT.config, error.message, error.code)
    throw new CliError(EXIT.failed, error.message, error.code)
  }
  print(
    json,
    { apiBase: emulator.apiBase, webhookSecret: emulator.webhookSecret, dashboardUrl: emulator.dashboardUrl, port: emulator.port },
    [
      `Stripe emulator on ${emulator.apiBase}`,
      `  API base        ${emulator.apiBase}   (apiBase, or STRIPE_API_BASE)`,
      `  Webhook secret  ${emulator.webhookSecret}   (webhookSecret, or STRIPE_WEBHOOK_SECRET)`,
      `  Dashboard       ${emulator.dashboardUrl}`,
      ...(values.webhook ?? []).map((url) => `  Webhooks to     ${url}`),
      'Any sk_test_ key works. Ctrl+C stops it.',
    ].join('\n'),
  )
  // The addon's server does not hold Node's event loop open: this does.
  const keepAlive = setInterval(() => {}, 1 << 30)
  await new Promise((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  clearInterval(keepAlive)
  await emulator.close()
  return EXIT.ok
}

async function triggerCommand({ values, positionals, json, config }) {
  const [event] = positionals
  const triggerable = native.emulatorTriggerableEvents()
  if (!event) throw new CliError(EXIT.usage, `name the event to trigger; one of: ${triggerable.join(', ')}`)
  if (!triggerable.includes(event)) throw new CliError(EXIT.usage, `the emulator cannot trigger ${event}; it can trigger: ${triggerable.join(', ')}`)
  if (!values.user) throw new CliError(EXIT.usage, '--user <id> is required: the app user the event is for')
  const base = (values.emulator ?? config.apiBase ?? DEFAULT_EMULATOR).replace(/\/+$/, '')
  const form = new URLSearchParams({ type: event, 'metadata[kavach_user_id]': values.user })
  if (config.database) {
    let billing
    try {
      billing = await createStripeBilling({ secretKey: config.secretKey ?? 'sk_test_kavachos_cli', apiBase: base, database: config.database })
      const customer = await billing.getCustomerId(values.user)
      if (customer) form.set('customer', customer)
    } catch (error) {
      throw fromAddon(error)
    } finally {
      await billing?.close()
    }
  }
  let answer
  try {
    // Without a database, the user's customer is the newest one an earlier
    // trigger tagged, so repeated triggers build on one customer.
    if (!form.has('customer')) {
      const tagged = await taggedCustomer(base, values.user)
      if (tagged) form.set('customer', tagged)
    }
    answer = await fetch(`${base}/_emulator/trigger`, { method: 'POST', body: form, headers: { accept: 'application/json' } })
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError(EXIT.unreachable, `no emulator at ${base} (${error.cause?.code ?? error.message}); start one with kavachos-stripe emulator`)
  }
  const body = await answer.json().catch(() => null)
  if (!answer.ok || !body) throw new CliError(EXIT.failed, body?.error?.message ?? `the emulator at ${base} answered ${answer.status}`)
  print(json, body, `Triggered ${event} for ${values.user}: ${body.events.map((e) => `${e.type} ${e.id}`).join(', ')}`)
  return EXIT.ok
}

/** The newest emulator customer tagged `kavach_user_id=<userId>`, if any. */
async function taggedCustomer(base, userId) {
  let startingAfter = null
  for (;;) {
    const url = new URL(`${base}/v1/customers`)
    url.searchParams.set('limit', '100')
    if (startingAfter) url.searchParams.set('starting_after', startingAfter)
    const answer = await fetch(url, { headers: { authorization: 'Bearer sk_test_kavachos_cli' } })
    const page = await answer.json().catch(() => null)
    if (!answer.ok || !Array.isArray(page?.data)) throw new CliError(EXIT.failed, page?.error?.message ?? `the emulator at ${base} answered ${answer.status} to a customer list`)
    const found = page.data.find((customer) => customer.metadata?.kavach_user_id === userId)
    if (found) return found.id
    if (!page.has_more || page.data.length === 0) return null
    startingAfter = page.data.at(-1).id
  }
}

async function migrateCommand({ values, json, config }) {
  if (!config.database) throw new CliError(EXIT.config, 'no database: set DATABASE_URL or pass --database')
  let report
  try {
    report = JSON.parse(await native.parseCliOptions({ database: config.database }).migrate(values.standalone === true))
  } catch (error) {
    throw fromAddon(rebuild(error))
  }
  print(json, report, report.fromVersion === report.schemaVersion ? `Schema version ${report.schemaVersion}: already current.` : `Migrated from schema version ${report.fromVersion} to ${report.schemaVersion}.`)
  return EXIT.ok
}

function date(value, flag) {
  const parsed = /^\d+$/.test(value) ? new Date(Number(value) * 1000) : new Date(value)
  if (Number.isNaN(parsed.getTime())) throw new CliError(EXIT.usage, `${flag} must be a date (2026-11-01, an ISO time, or unix seconds), got ${value}`)
  return parsed
}

async function reconcileCommand({ values, json, config }) {
  if (!values.since) throw new CliError(EXIT.usage, '--since <date> is required')
  const since = date(values.since, '--since')
  const until = values.until ? date(values.until, '--until') : undefined
  if (!config.secretKey) throw new CliError(EXIT.config, 'no Stripe key: set STRIPE_SECRET_KEY')
  if (!config.database) throw new CliError(EXIT.config, 'no database: set DATABASE_URL or pass --database')
  let billing
  let counts
  try {
    billing = await createStripeBilling({ secretKey: config.secretKey, apiBase: config.apiBase, database: config.database })
    counts = await billing.reconcile({ since, ...(until ? { until } : {}) })
  } catch (error) {
    throw fromAddon(error)
  } finally {
    await billing?.close()
  }
  print(json, counts, `Fetched ${counts.fetched} events: ${counts.applied} applied, ${counts.duplicates} already handled, ${counts.ignored} ignored, ${counts.failed} failed.`)
  return counts.failed > 0 ? EXIT.failed : EXIT.ok
}

async function doctorCommand({ values, json, config }) {
  let report
  try {
    report = JSON.parse(
      await native
        .parseCliOptions({ secretKey: config.secretKey, apiBase: config.apiBase, database: config.database, webhookUrl: values.url })
        .doctor(),
    )
  } catch (error) {
    throw fromAddon(rebuild(error))
  }
  const mark = { ok: 'ok  ', skipped: 'skip', failed: 'FAIL', missing: 'MISS', unreachable: 'DOWN' }
  const text = report.checks
    .map((c) => `${mark[c.status]}  ${c.name}: ${c.detail}${c.fix ? `\n      fix: ${c.fix}` : ''}`)
    .join('\n')
  print(json, report, `${text}\n${report.ok ? 'All checks passed.' : 'Some checks failed.'}`)
  return report.exitCode
}

/** Native failures arrive as `{ code, message }` JSON in the message. */
function rebuild(error) {
  try {
    const document = JSON.parse(error.message)
    if (document && typeof document.code === 'string') return Object.assign(new Error(document.message), { code: document.code })
  } catch {}
  return error
}

async function main(argv) {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${mainHelp()}\n`)
    return name ? EXIT.ok : EXIT.usage
  }
  const command = COMMANDS[name]
  const json = rest.includes('--json')
  try {
    if (!command) throw new CliError(EXIT.usage, `unknown command ${name}\n\n${mainHelp()}`)
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: { ...GLOBAL, ...command.options }, allowPositionals: true, strict: true })
    } catch (error) {
      throw new CliError(EXIT.usage, `${error.message}\n\n${commandHelp(name)}`)
    }
    if (parsed.values.help) {
      process.stdout.write(`${commandHelp(name)}\n`)
      return EXIT.ok
    }
    if (parsed.positionals.length > (command.positionals ?? 0)) throw new CliError(EXIT.usage, `unexpected argument ${parsed.positionals.at(-1)}\n\n${commandHelp(name)}`)
    const config = configuration(parsed.values)
    return await command.run({ values: parsed.values, positionals: parsed.positionals, json, config })
  } catch (error) {
    const failure = error instanceof CliError ? error : new CliError(EXIT.failed, error.message, error.code)
    if (json) process.stdout.write(`${JSON.stringify({ error: { message: failure.message, code: failure.code ?? null, exitCode: failure.exitCode } })}\n`)
    else process.stderr.write(`kavachos-stripe ${name}: ${failure.message}\n`)
    return failure.exitCode
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.stderr.write(`kavachos-stripe: ${error.stack ?? error}\n`)
    process.exitCode = EXIT.failed
  },
)
