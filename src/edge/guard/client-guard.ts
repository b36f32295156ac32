import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env.ts'

// One Durable Object per API key: the single authority for that key's exact
// state (limits, budgets, extraction signals), which the guard issue fills.
// Today it keeps the schema version of its SQLite storage, so later
// migrations of that storage have a starting point.
export class ClientGuard extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    ctx.blockConcurrencyWhile(async () => {
      this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS guard_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
      this.ctx.storage.sql.exec(`INSERT OR IGNORE INTO guard_meta (key, value) VALUES ('schema_version', '1')`)
    })
  }

  schemaVersion(): number {
    const row = this.ctx.storage.sql.exec<{ value: string }>(`SELECT value FROM guard_meta WHERE key = 'schema_version'`).one()
    return Number(row.value)
  }
}
