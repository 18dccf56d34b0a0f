// When the native binary cannot load, the error names this platform, the
// published ones and how to build from source (not napi-rs's generic hint).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

function loadIn(platform) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-loader-'))
  try {
    fs.copyFileSync(path.join(root, 'native.js'), path.join(dir, 'native.js'))
    fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'))
    // As if no binary matched: what napi-rs's loader throws.
    fs.writeFileSync(path.join(dir, 'binding.js'), "throw new Error('Cannot find native binding. npm has a bug related to optional dependencies')")
    const script = `${platform ? `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });` : ''}
      try { require('./native.js') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && e.cause.message })) }`
    return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8' }))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('an unsupported platform: named, with the published list and how to build', () => {
  const error = loadIn('freebsd')
  assert.equal(error.code, 'platform_unsupported')
  assert.match(error.message, /no native binary for freebsd-x64/)
  assert.match(error.message, /Published platforms: linux-x64-gnu, linux-arm64-gnu, linux-x64-musl, linux-arm64-musl, darwin-x64, darwin-arm64, win32-x64-msvc/)
  assert.match(error.message, /install Rust 1\.88 or newer/)
  assert.match(error.cause, /Cannot find native binding/)
})

test('a supported platform whose package is missing: says which package to install', () => {
  const error = loadIn(null)
  assert.equal(error.code, 'platform_unsupported')
  assert.match(error.message, /@kavachos-stripe\/binding-linux-x64-gnu is not installed/)
  assert.match(error.message, /--omit=optional/)
})
