// stripe(options) and createStripeBilling(options) validate every option at
// once; errors carry code invalid_config, name the field, never the secret.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { stripe, createStripeBilling } from '../index.js'

const KEY = 'sk_test_SECRETVALUE_123'

function configError(fn) {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof Error)
    assert.equal(error.code, 'invalid_config')
    assert.ok(!error.message.includes('SECRETVALUE'), error.message)
    return error.message
  }
  assert.fail('expected invalid_config')
}

test('returns the plugin shape', () => {
  const plugin = stripe({ secretKey: KEY })
  assert.equal(plugin.id, 'kavach-stripe')
  assert.equal(typeof plugin.init, 'function')
})

test('accepts every declared option', () => {
  stripe({
    secretKey: 'rk_live_abcdefgh',
    webhookSecret: ['whsec_old', 'whsec_new'],
    onSubscriptionChange: async () => {},
    apiBase: 'http://stripe-mock:12111',
    allowInsecureApiBase: true,
    apiVersion: '2025-03-31.basil',
    database: { provider: 'postgres', url: 'postgres://u@localhost/db' },
    baseUrl: 'https://app.example',
    webhookTolerance: 600,
    maxWebhookBytes: 2 * 1024 * 1024,
    autoCreateCustomer: false,
    maxNetworkRetries: 0,
    timeoutMs: 5000,
    trustedOrigins: ['https://www.app.example'],
    prices: ['price_basic', 'price_pro'],
    products: ['prod_app'],
    maxClientTrialDays: 14,
    clientMetadataKeys: ['campaign'],
    eventRetentionDays: 90,
  })
})

const invalid = [
  [{}, 'secretKey'],
  [{ secretKey: 'pk_test_SECRETVALUE' }, 'publishable'],
  [{ secretKey: `${KEY}\n` }, 'whitespace'],
  [{ secretKey: 42 }, 'secretKey'],
  [{ secretKey: KEY, webhookSecret: 'SECRETVALUE' }, 'webhookSecret'],
  [{ secretKey: KEY, webhookSecret: ['whsec_ok', ' whsec_SECRETVALUE'] }, 'webhookSecret[1]'],
  [{ secretKey: KEY, webhookSecret: [] }, 'webhookSecret'],
  [{ secretKey: KEY, webhookSecrets: 'whsec_x' }, 'did you mean `webhookSecret`'],
  [{ secretKey: KEY, onSubscriptionChange: 'fn' }, 'onSubscriptionChange'],
  [{ secretKey: KEY, apiBase: 'api.stripe.com' }, 'apiBase'],
  [{ secretKey: KEY, apiBase: 'http://example.com' }, 'allowInsecureApiBase'],
  [{ secretKey: KEY, apiBase: 'http://api.stripe.com' }, 'allowInsecureApiBase'],
  [{ secretKey: KEY, apiBase: 'http://stripe-mock:12111', allowInsecureApiBase: false }, 'allowInsecureApiBase'],
  [{ secretKey: KEY, allowInsecureApiBase: 'yes' }, 'allowInsecureApiBase'],
  [{ secretKey: KEY, apiVersion: 'latest' }, 'apiVersion'],
  [{ secretKey: KEY, database: { provider: 'oracle', url: 'x' } }, 'database.provider'],
  [{ secretKey: KEY, database: { provider: 'postgres' } }, 'database.url'],
  [{ secretKey: KEY, database: { provider: 'postgres', url: 'mysql://x' } }, 'database.url'],
  [{ secretKey: KEY, baseUrl: 'https://app.example/path' }, 'baseUrl'],
  [{ secretKey: KEY, webhookTolerance: -1 }, 'webhookTolerance'],
  [{ secretKey: KEY, maxWebhookBytes: 10 }, 'maxWebhookBytes'],
  [{ secretKey: KEY, autoCreateCustomer: 'yes' }, 'autoCreateCustomer'],
  [{ secretKey: KEY, maxNetworkRetries: 2.5 }, 'maxNetworkRetries'],
  [{ secretKey: KEY, timeoutMs: 0 }, 'timeoutMs'],
  [{ secretKey: KEY, trustedOrigins: ['not a url'] }, 'trustedOrigins[0]'],
  [{ secretKey: KEY, prices: 'price_1' }, 'prices'],
  [{ secretKey: KEY, products: [] }, 'products'],
  [{ secretKey: KEY, maxClientTrialDays: 1000 }, 'maxClientTrialDays'],
  [{ secretKey: KEY, clientMetadataKeys: ['kavach_user_id'] }, 'clientMetadataKeys[0]'],
  [{ secretKey: KEY, auth: async () => null }, 'createStripeBilling'],
  [{ secretKey: KEY, eventRetentionDays: 1 }, 'eventRetentionDays'],
]

for (const [options, expected] of invalid) {
  test(`rejects ${JSON.stringify(Object.keys(options))} -> ${expected}`, () => {
    const message = configError(() => stripe(options))
    assert.ok(message.includes(expected), message)
  })
}

test('options must be an object', () => {
  configError(() => stripe(undefined))
  configError(() => stripe('sk_test_x'))
})

test('createStripeBilling requires a database and validates synchronously', async () => {
  await assert.rejects(createStripeBilling({ secretKey: KEY }), (error) => {
    assert.equal(error.code, 'invalid_config')
    assert.match(error.message, /database/)
    return true
  })
  await assert.rejects(createStripeBilling({ secretKey: KEY, database: { provider: 'sqlite', url: ':memory:' }, auth: 'x' }), { code: 'invalid_config' })
})
