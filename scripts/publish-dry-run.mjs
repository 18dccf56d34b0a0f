// `npm run publish:dry-run`: `npm publish --dry-run` of every package the
// release publishes (each npm/<platform> package, then the main one), as
// the release workflow runs them. This machine's platform package carries
// the binary built here.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const { napi } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-publish-'))
const results = []
try {
  for (const platform of fs.readdirSync(path.join(root, 'npm')).sort()) {
    const dir = path.join(staging, platform)
    fs.cpSync(path.join(root, 'npm', platform), dir, { recursive: true })
    const binary = `${napi.binaryName}.${platform}.node`
    if (fs.existsSync(path.join(root, binary))) fs.copyFileSync(path.join(root, binary), path.join(dir, binary))
    const out = execFileSync('npm', ['publish', '--dry-run', '--json', '--provenance=false', '--access', 'public'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const report = JSON.parse(out)
    const single = report.id ? report : Object.values(report)[0]
    results.push({ package: single.id, files: single.files.map((f) => f.path) })
  }
  const out = execFileSync('npm', ['publish', '--dry-run', '--json', '--ignore-scripts', '--provenance=false', '--access', 'public'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const report = JSON.parse(out)
  const main = report.id ? report : Object.values(report)[0]
  results.push({ package: main.id, files: main.files.map((f) => f.path) })
} finally {
  fs.rmSync(staging, { recursive: true, force: true })
}
for (const r of results) console.log(`${r.package}: ${r.files.length} files (${r.files.filter((f) => f.endsWith('.node')).join(', ') || 'no binary'})`)
