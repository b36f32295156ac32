import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { expect, it } from 'vitest'
import { QUIET_WRANGLER_ENV, ROOT } from '../../scripts/local-stack.ts'

const FREE_PLAN_GZIP_BYTES = 3 * 1024 * 1024
const PAID_PLAN_GZIP_BYTES = 10 * 1024 * 1024

it('bundles the Worker for deployment within Cloudflare’s size limits', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'moat-bundle-'))
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outdir], {
      cwd: ROOT,
      env: { ...process.env, ...QUIET_WRANGLER_ENV },
      stdio: 'pipe',
    })
    const files = readdirSync(outdir).filter((name) => name.endsWith('.js'))
    expect(files.length).toBeGreaterThan(0)
    const raw = Buffer.concat(files.map((name) => readFileSync(join(outdir, name))))
    const gzipped = gzipSync(raw).length
    console.log(`worker bundle: ${raw.length} bytes, ${gzipped} bytes gzipped (free plan ${FREE_PLAN_GZIP_BYTES}, paid ${PAID_PLAN_GZIP_BYTES})`)
    expect(gzipped).toBeLessThan(FREE_PLAN_GZIP_BYTES)
  } finally {
    rmSync(outdir, { recursive: true, force: true })
  }
})
