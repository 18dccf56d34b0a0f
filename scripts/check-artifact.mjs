// Checks a Linux addon binary: the expected machine, no dynamic OpenSSL, and
// (for glibc) no symbol version newer than the given glibc (default 2.17).
// `node scripts/check-artifact.mjs <file.node> [2.17|musl]`
import { execFileSync } from 'node:child_process'

const [file, wanted = '2.17'] = process.argv.slice(2)
if (!file) {
  console.error('usage: node scripts/check-artifact.mjs <file.node> [2.17|musl]')
  process.exit(2)
}
const readelf = (...args) => execFileSync('readelf', [...args, file], { encoding: 'utf8', maxBuffer: 64 << 20 })
const failures = []
const header = readelf('-h')
const machine = /Machine:\s+(.+)/.exec(header)?.[1]?.trim()
if (!/X86-64|AArch64/.test(machine ?? '')) failures.push(`unexpected machine: ${machine}`)
const needed = [...readelf('-d').matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((m) => m[1])
const openssl = needed.filter((lib) => /libssl|libcrypto/.test(lib))
if (openssl.length > 0) failures.push(`links OpenSSL dynamically: ${openssl.join(', ')}`)
let newest = null
if (wanted !== 'musl') {
  const versions = [...readelf('--dyn-syms', '-W').matchAll(/@GLIBC_(\d+)\.(\d+)(?:\.(\d+))?/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)])
  const [major, minor] = wanted.split('.').map(Number)
  newest = versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && (b[1] > a[1] || (b[1] === a[1] && b[2] > a[2]))) ? b : a), [0, 0, 0])
  if (newest[0] > major || (newest[0] === major && newest[1] > minor)) failures.push(`needs GLIBC_${newest.join('.')}, newer than ${wanted}`)
}
console.log(JSON.stringify({ file, machine, needed, newestGlibc: newest ? newest.join('.') : null }))
if (failures.length > 0) {
  console.error(`check-artifact: ${failures.join('; ')}`)
  process.exit(1)
}
