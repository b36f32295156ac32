import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { convertV4MiniflareOptions, Miniflare } from 'miniflare'
import { unstable_getMiniflareWorkerOptions, unstable_splitSqlQuery } from 'wrangler'
import { QUIET_WRANGLER_ENV, ROOT } from './local-stack.ts'

// The edge on Miniflare's own socket, without wrangler dev's proxy in front:
// what benchmarks of the request path use. The Worker is bundled exactly as
// `wrangler deploy` would, its bindings come from wrangler.toml, and the D1
// migrations are applied to a fresh in-memory database.
export type MiniflareEdge = { url: string; mf: Miniflare; bundlePath: string; inspectorPort: number | undefined; stop: () => Promise<void> }

export type MiniflareEdgeOptions = {
  // Opens workerd's V8 inspector on this port (scripts/cpu-profile.ts reads
  // CPU profiles through it).
  inspectorPort?: number
}

export async function startMiniflareEdge(vars: Record<string, string>, options: MiniflareEdgeOptions = {}): Promise<MiniflareEdge> {
  const outdir = mkdtempSync(join(tmpdir(), 'moat-mf-'))
  execFileSync(process.execPath, [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outdir], {
    cwd: ROOT,
    env: { ...process.env, ...QUIET_WRANGLER_ENV },
    stdio: 'pipe',
  })
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, 'wrangler.toml'))
  // The bundle is one module: module rules (which Miniflare 5 cannot take from
  // Miniflare 4's shape) have nothing to match.
  const { modulesRules: _rules, ...bindingOptions } = workerOptions
  const worker = {
    ...bindingOptions,
    name: 'moat-edge',
    modules: true,
    modulesRoot: outdir,
    scriptPath: join(outdir, 'index.js'),
    bindings: { ...(workerOptions.bindings ?? {}), ...vars },
  }
  // Wrangler still describes workers in Miniflare 4's shape.
  const mf = new Miniflare(convertV4MiniflareOptions({ workers: [worker], host: '127.0.0.1', port: 0, ...(options.inspectorPort === undefined ? {} : { inspectorPort: options.inspectorPort }) } as Parameters<typeof convertV4MiniflareOptions>[0]))
  const url = (await mf.ready).toString().replace(/\/$/, '')
  const db = await mf.getD1Database('DB')
  const migrations = readdirSync(join(ROOT, 'migrations')).filter((name) => name.endsWith('.sql')).sort()
  for (const name of migrations) {
    for (const statement of unstable_splitSqlQuery(readFileSync(join(ROOT, 'migrations', name), 'utf8'))) {
      await db.prepare(statement).run()
    }
  }
  return {
    url,
    mf,
    bundlePath: join(outdir, 'index.js'),
    inspectorPort: options.inspectorPort,
    stop: async () => {
      await mf.dispose()
      rmSync(outdir, { recursive: true, force: true })
    },
  }
}
