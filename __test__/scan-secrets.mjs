// Scans everything the Node suites produced (Error messages, Response bodies,
// console lines, recorded by helpers/capture.mjs) for the secret keys and
// webhook secrets the suites use. `--reset` clears the capture before a run.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const dir = process.env.KAVACH_CAPTURE_DIR ?? path.join(here, '..', '.tmp', 'secret-scan')

if (process.argv.includes('--reset')) {
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

const SECRET = /\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9_]{4,}|\bwhsec_[A-Za-z0-9_]{2,}/g
const sources = fs.readdirSync(here, { recursive: true }).filter((f) => /\.m?js$/.test(f) && !f.includes('scan-secrets'))
const secrets = new Set()
for (const file of sources) for (const match of fs.readFileSync(path.join(here, file), 'utf8').matchAll(SECRET)) secrets.add(match[0])

const captured = fs.existsSync(dir) ? fs.readdirSync(dir).flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) : []
const leaks = captured.filter((line) => [...secrets].some((secret) => line.includes(secret)))
console.log(`secret scan: ${secrets.size} secrets, ${captured.length} captured error messages, response bodies and log lines`)
for (const leak of leaks.slice(0, 20)) console.log(`  LEAK ${leak.slice(0, 300)}`)
if (captured.length < 200) {
  console.log('the capture is too small to mean anything: did the suites run with --import ./__test__/helpers/capture.mjs?')
  console.log('secret-scan: 0 passed, 1 failed')
  process.exit(1)
}
console.log(`secret-scan: ${leaks.length === 0 ? 1 : 0} passed, ${leaks.length === 0 ? 0 : 1} failed`)
process.exit(leaks.length === 0 ? 0 : 1)
