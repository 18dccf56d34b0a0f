// `npm run build:portable [-- <zig target>]`: the addon for Linux, linked
// against an old glibc (default x86_64-unknown-linux-gnu.2.17) or musl with
// cargo-zigbuild and Zig (PyPI: ziglang, cargo-zigbuild), copied where
// napi-rs's loader looks for it, then checked (scripts/check-artifact.mjs).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const zigTarget = process.argv[2] ?? 'x86_64-unknown-linux-gnu.2.17'
const triple = zigTarget.replace(/\.\d+\.\d+$/, '')
const platforms = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
}
const platform = platforms[triple]
if (!platform) {
  console.error(`build:portable builds Linux targets (${Object.keys(platforms).join(', ')}), optionally with a glibc suffix such as .2.17; got ${zigTarget}`)
  process.exit(2)
}
const { napi } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
console.log(`cargo zigbuild --release -p kavachos-stripe --lib --target ${zigTarget}`)
execFileSync('cargo', ['zigbuild', '--release', '-p', 'kavachos-stripe', '--lib', '--target', zigTarget], { cwd: root, stdio: 'inherit' })
const built = path.join(root, 'target', triple, 'release', 'libkavachos_stripe.so')
const output = path.join(root, `${napi.binaryName}.${platform}.node`)
fs.copyFileSync(built, output)
console.log(`${output} (${fs.statSync(output).size} bytes)`)
execFileSync(process.execPath, [path.join(root, 'scripts/check-artifact.mjs'), output, triple.includes('musl') ? 'musl' : '2.17'], { stdio: 'inherit' })
