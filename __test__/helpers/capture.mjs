// Preloaded into every test process (`node --import`): records every Error
// message, Response body and console line the suites produce, so that
// scan-secrets.mjs can prove no secret ever appears in them.
import fs from 'node:fs'
import path from 'node:path'
import { format } from 'node:util'

const dir = process.env.KAVACH_CAPTURE_DIR ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', '.tmp', 'secret-scan')
{
  const lines = []
  const record = (kind, text) => {
    if (typeof text === 'string' && text.length > 0) lines.push(`${kind}\t${text.replace(/\n/g, '\\n')}`)
  }
  const OriginalError = globalThis.Error
  globalThis.Error = new Proxy(OriginalError, {
    construct(target, args, newTarget) {
      record('error', String(args[0] ?? ''))
      return Reflect.construct(target, args, newTarget)
    },
  })
  const OriginalResponse = globalThis.Response
  globalThis.Response = class CapturedResponse extends OriginalResponse {
    constructor(body, init) {
      if (typeof body === 'string') record('response', body)
      super(body, init)
    }
    static json(data, init) {
      record('response', JSON.stringify(data))
      return OriginalResponse.json(data, init)
    }
  }
  for (const level of ['log', 'info', 'warn', 'error']) {
    const original = console[level].bind(console)
    console[level] = (...args) => {
      record('log', format(...args))
      original(...args)
    }
  }
  process.on('exit', () => {
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, `${process.pid}.txt`), lines.join('\n'))
  })
}
