'use strict'
// Loads the native addon for this platform (the generated binding.js finds a
// local build or the @kavachos-stripe/binding-<platform> package), or throws
// an error that says which platform this is, which have binaries, and how to
// build from source.

const TARGET_NAMES = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
}

function thisPlatform() {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}${platform === 'win32' ? '-msvc' : ''}`
  const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime
  return `${platform}-${arch}-${glibc ? 'gnu' : 'musl'}`
}

function loadError(cause) {
  const pkg = require('./package.json')
  const here = thisPlatform()
  const supported = pkg.napi.targets.map((t) => TARGET_NAMES[t] ?? t)
  const platformPackage = `${pkg.napi.packageName}-${here}`
  const build =
    'To build from source: install Rust 1.88 or newer (rustup) and a C compiler, then in ' +
    'node_modules/kavachos-stripe run ' +
    '`npm install --ignore-scripts && npx napi build --platform --release --js binding.js --dts binding.d.ts`.'
  const message = supported.includes(here)
    ? `kavachos-stripe could not load its native binary for ${here} (Node ${process.versions.node}): the optional package ${platformPackage} is not installed or does not load. Reinstall without --omit=optional (or --no-optional), and with the lockfile made on this platform. ${build}`
    : `kavachos-stripe has no native binary for ${here} (Node ${process.versions.node}). Published platforms: ${supported.join(', ')}. ${build}`
  return Object.assign(new Error(message, { cause }), { code: 'platform_unsupported' })
}

let binding
try {
  binding = require('./binding.js')
} catch (error) {
  throw loadError(error)
}

module.exports = binding
