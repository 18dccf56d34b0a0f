// Our verifier against the official `stripe` package, case by case: what it
// accepts we accept, what it rejects we reject; where we are deliberately
// stricter the case says so.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Stripe from 'stripe'
import { constructEvent } from '../index.js'
import { signature } from './helpers/events.mjs'

const sdk = new Stripe('sk_test_crosscheck_0123')
const SECRET = 'whsec_crosscheck_secret'
const now = () => Math.floor(Date.now() / 1000)
const EVENT = JSON.stringify({ id: 'evt_x', object: 'event', type: 'customer.subscription.updated', created: 1700000000, data: { object: { id: 'sub_1', note: 'héllo ✓' } } })
const header = (opts) => sdk.webhooks.generateTestHeaderString({ payload: EVENT, secret: SECRET, timestamp: now(), ...opts })
const mac = (payload, secret, t) => signature(payload, secret, t).split(',')[1].slice(3)

// [name, payload, header, secret, tolerance, expectation]
// expectation: 'accept' (both accept), 'reject' (both reject), 'stricter' (SDK accepts, we reject)
const cases = () => [
  ['valid string payload', EVENT, header(), SECRET, undefined, 'accept'],
  ['valid Buffer payload', Buffer.from(EVENT), header(), SECRET, undefined, 'accept'],
  ['valid with a 64 KB payload', null, null, SECRET, undefined, 'accept', 'large'],
  ['a wrong v1 before the right one', EVENT, `t=${now()},v1=${'0'.repeat(64)},v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'accept'],
  ['the same v1 twice', EVENT, `t=${now()},v1=${mac(EVENT, SECRET, now())},v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'accept'],
  ['unknown keys and a v0 are ignored', EVENT, `t=${now()},foo=bar,v0=${'1'.repeat(64)},v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'accept'],
  ['age 290 s within the default tolerance', EVENT, header({ timestamp: now() - 290 }), SECRET, undefined, 'accept'],
  ['age 310 s beyond the default tolerance', EVENT, header({ timestamp: now() - 310 }), SECRET, undefined, 'reject'],
  ['age 20 s with tolerance 10', EVENT, header({ timestamp: now() - 20 }), SECRET, 10, 'reject'],
  ['age 5 s with tolerance 10', EVENT, header({ timestamp: now() - 5 }), SECRET, 10, 'accept'],
  ['an hour old with tolerance 7200', EVENT, header({ timestamp: now() - 3600 }), SECRET, 7200, 'accept'],
  ['a wrong secret', EVENT, header({ secret: 'whsec_other' }), SECRET, undefined, 'reject'],
  ['the secret with a trailing newline', EVENT, header(), `${SECRET}\n`, undefined, 'reject'],
  ['the secret without its whsec_ prefix', EVENT, header(), SECRET.slice(6), undefined, 'reject'],
  ['a payload with an added newline', `${EVENT}\n`, header(), SECRET, undefined, 'reject'],
  ['a re-serialised (pretty) payload', JSON.stringify(JSON.parse(EVENT), null, 2), header(), SECRET, undefined, 'reject'],
  ['CRLF instead of LF', EVENT.replace('"', '\r\n"'), header(), SECRET, undefined, 'reject'],
  ['an empty header', EVENT, '', SECRET, undefined, 'reject'],
  ['a header without t', EVENT, `v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'reject'],
  ['a header with only v0', EVENT, header({ scheme: 'v0' }), SECRET, undefined, 'reject'],
  ['uppercase hex', EVENT, `t=${now()},v1=${mac(EVENT, SECRET, now()).toUpperCase()}`, SECRET, undefined, 'reject'],
  ['a truncated v1', EVENT, `t=${now()},v1=${mac(EVENT, SECRET, now()).slice(0, 63)}`, SECRET, undefined, 'reject'],
  ['a v1 with one character more', EVENT, `t=${now()},v1=${mac(EVENT, SECRET, now())}0`, SECRET, undefined, 'reject'],
  ['spaces after the commas', EVENT, `t=${now()}, v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'reject'],
  ['a signature for another timestamp', EVENT, `t=${now()},v1=${mac(EVENT, SECRET, now() - 1)}`, SECRET, undefined, 'reject'],
  ['a signature over another payload', EVENT, header({ payload: '{}' }), SECRET, undefined, 'reject'],
  ['an empty payload that verifies', '', `t=${now()},v1=${mac('', SECRET, now())}`, SECRET, undefined, 'reject'],
  // Deliberately stricter than the SDK:
  ['stricter: t is not an integer (the SDK parseInts 123.9 to 123)', EVENT, `t=${now()}.9,v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'stricter'],
  ['stricter: t is far in the future (the SDK bounds only the past)', EVENT, header({ timestamp: now() + 3600 }), SECRET, undefined, 'stricter'],
  ['stricter: t is not a number at all (the SDK then skips the age check)', EVENT, `t=NaN,v1=${mac(EVENT, SECRET, 'NaN')}`, SECRET, undefined, 'stricter'],
  ['stricter: t appears twice (the SDK takes the last)', EVENT, `t=${now()},t=${now()},v1=${mac(EVENT, SECRET, now())}`, SECRET, undefined, 'stricter'],
  ['stricter: a verified body that is a JSON array, not an event', '[]', `t=${now()},v1=${mac('[]', SECRET, now())}`, SECRET, undefined, 'stricter'],
  ['a thin event (the SDK points to its EventNotification API)', '{"id":"evt_t","object":"v2.core.event"}', `t=${now()},v1=${mac('{"id":"evt_t","object":"v2.core.event"}', SECRET, now())}`, SECRET, undefined, 'reject'],
]

function run(fn) {
  try {
    fn()
    return { ok: true }
  } catch (error) {
    return { ok: false, error }
  }
}

const all = cases()
test('at least 30 cases', () => assert.ok(all.length >= 30, String(all.length)))

for (const [name, rawPayload, rawHeader, secret, tolerance, expectation, special] of all) {
  test(name, () => {
    let payload = rawPayload
    let hdr = rawHeader
    if (special === 'large') {
      payload = JSON.stringify({ id: 'evt_big', object: 'event', type: 'x', created: 1, data: { object: { pad: 'x'.repeat(64 * 1024) } } })
      hdr = sdk.webhooks.generateTestHeaderString({ payload, secret: SECRET, timestamp: now() })
    }
    const theirs = run(() => sdk.webhooks.constructEvent(payload, hdr, secret, tolerance))
    const ours = run(() => constructEvent(payload, hdr, secret, tolerance))
    if (!ours.ok) {
      assert.equal(typeof ours.error.code, 'string')
      assert.ok(!ours.error.message.includes(SECRET), 'no secret in messages')
    }
    switch (expectation) {
      case 'accept':
        assert.ok(theirs.ok, `the SDK accepts: ${theirs.error?.message}`)
        assert.ok(ours.ok, `we accept: ${ours.error?.message}`)
        assert.deepEqual(constructEvent(payload, hdr, secret, tolerance), JSON.parse(payload.toString()))
        break
      case 'reject':
        assert.ok(!theirs.ok, 'the SDK rejects')
        assert.ok(!ours.ok, 'we reject')
        break
      case 'stricter':
        assert.ok(theirs.ok, `the SDK accepts: ${theirs.error?.message}`)
        assert.ok(!ours.ok, 'we reject, deliberately')
        break
    }
  })
}

test('rotation: any configured secret verifies', () => {
  const hdr = header()
  assert.equal(constructEvent(EVENT, hdr, ['whsec_old', SECRET]).id, 'evt_x')
  assert.throws(() => constructEvent(EVENT, hdr, ['whsec_old', 'whsec_older']), { code: 'signature_mismatch' })
})

test('error codes and helpful messages', () => {
  assert.throws(() => constructEvent(EVENT, '', SECRET), { code: 'signature_missing' })
  assert.throws(() => constructEvent(EVENT, 't=1', SECRET), { code: 'signature_malformed' })
  assert.throws(() => constructEvent(`${EVENT} `, header(), SECRET), (e) => e.code === 'signature_mismatch' && /raw request body/.test(e.message))
  assert.throws(() => constructEvent(EVENT, header(), ` ${SECRET}`), (e) => /whitespace/.test(e.message) && !e.message.includes(SECRET))
  assert.throws(() => constructEvent(EVENT, header({ timestamp: now() - 1000 }), SECRET), { code: 'timestamp_out_of_tolerance' })
  assert.throws(() => constructEvent('[]', `t=${now()},v1=${mac('[]', SECRET, now())}`, SECRET), { code: 'payload_invalid' })
})
