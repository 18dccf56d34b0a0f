// The README's kavachOS snippet, as a kavachOS app would compile it: taken
// from the README as it is, type-checked with `tsc --strict` against
// kavachOS's public types (__test__/types/kavachos.d.ts) and this package's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

test("the README's kavachOS snippet type-checks under strict", () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Use with kavachOS'))
  const snippet = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  assert.ok(snippet && snippet.includes("from 'kavachos'"), 'the section has a ts snippet')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kavach-readme-'))
  try {
    fs.writeFileSync(path.join(dir, 'snippet.ts'), snippet)
    fs.copyFileSync(path.join(root, '__test__/types/kavachos.d.ts'), path.join(dir, 'kavachos.d.ts'))
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [path.join(root, 'node_modules/@types')],
          paths: { 'kavachos-stripe': [path.join(root, 'index.d.ts')] },
        },
        files: ['snippet.ts', 'kavachos.d.ts'],
      }),
    )
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}')
    try {
      execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' })
    } catch (error) {
      assert.fail(`tsc --strict rejects the README snippet:\n${error.stdout}${error.stderr}`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
