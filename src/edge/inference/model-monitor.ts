import { DurableObject } from 'cloudflare:workers'
import {
  emptyWindow,
  latencyQuantile,
  observe,
  populationStabilityIndex,
  type MonitorWindow,
  type Observation,
} from '../../shared/model-monitoring.ts'
import type { Env } from '../env.ts'
import { emitEvent, eventId } from '../webhooks/emit-event.ts'

export type MonitorIdentity = { tenantId: string; modelId: string; version: string }

export type WindowReport = {
  start: string
  requests: number
  errors: number
  error_rate: number
  rows: number
  latency_ms: { p50: number | null; p95: number | null; p99: number | null }
  classes: Record<string, number>
  confidence: number[]
  drift: { psi_classes: number; psi_confidence: number; drifted: boolean } | null
}

// One object per model version: it aggregates that version's traffic into
// windows and compares each closed window with the reference (the first full
// window it saw) by the population stability index of the predicted classes
// and of top-1 confidence. Past the threshold it raises `model.drift`.
export class ModelMonitor extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    ctx.blockConcurrencyWhile(async () => {
      this.ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS windows (start INTEGER PRIMARY KEY, data TEXT NOT NULL, drift TEXT)`)
      this.ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`)
    })
  }

  private windowMs(): number {
    const seconds = Number(this.env.MOAT_MONITOR_WINDOW_SECONDS ?? 3600)
    return Number.isInteger(seconds) && seconds > 0 ? seconds * 1000 : 3_600_000
  }

  private threshold(): number {
    const value = Number(this.env.MOAT_DRIFT_PSI_THRESHOLD ?? 0.2)
    return Number.isFinite(value) && value > 0 ? value : 0.2
  }

  private load(start: number): MonitorWindow | null {
    const row = this.ctx.storage.sql.exec<{ data: string }>('SELECT data FROM windows WHERE start = ?', start).toArray()[0]
    return row ? (JSON.parse(row.data) as MonitorWindow) : null
  }

  private meta(key: string): string | null {
    return this.ctx.storage.sql.exec<{ value: string }>('SELECT value FROM meta WHERE key = ?', key).toArray()[0]?.value ?? null
  }

  async record(identity: MonitorIdentity, observation: Observation, at = Date.now()): Promise<void> {
    const size = this.windowMs()
    const start = at - (at % size)
    const current = this.meta('current')
    if (current !== null && Number(current) < start) await this.close(identity, Number(current))
    const window = observe(this.load(start) ?? emptyWindow(start), observation)
    this.ctx.storage.sql.exec('INSERT OR REPLACE INTO windows (start, data, drift) VALUES (?, ?, NULL)', start, JSON.stringify(window))
    this.ctx.storage.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('current', ?)`, String(start))
    // Keep about a week of hourly windows.
    this.ctx.storage.sql.exec('DELETE FROM windows WHERE start < ? AND start <> ?', start - 168 * size, Number(this.meta('reference') ?? -1))
  }

  // A window is done: the first becomes the reference; later ones are compared with it.
  private async close(identity: MonitorIdentity, start: number): Promise<void> {
    const window = this.load(start)
    if (!window || window.rows === 0) return
    const referenceStart = this.meta('reference')
    if (referenceStart === null) {
      this.ctx.storage.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('reference', ?)`, String(start))
      return
    }
    const reference = this.load(Number(referenceStart))
    if (!reference) return
    const drift = {
      psi_classes: populationStabilityIndex(reference.classes, window.classes),
      psi_confidence: populationStabilityIndex(reference.confidence, window.confidence),
      drifted: false,
    }
    drift.drifted = drift.psi_classes > this.threshold() || drift.psi_confidence > this.threshold()
    this.ctx.storage.sql.exec('UPDATE windows SET drift = ? WHERE start = ?', JSON.stringify(drift), start)
    if (!drift.drifted) return
    await emitEvent(this.env, {
      id: await eventId(identity.modelId, identity.version, String(start), 'drift'),
      tenantId: identity.tenantId,
      type: 'model.drift',
      data: {
        model_id: identity.modelId,
        version: identity.version,
        window_start: new Date(start).toISOString(),
        reference_start: new Date(Number(referenceStart)).toISOString(),
        psi_classes: drift.psi_classes,
        psi_confidence: drift.psi_confidence,
        threshold: this.threshold(),
      },
    })
  }

  report(): { window_seconds: number; reference: string | null; windows: WindowReport[] } {
    const rows = this.ctx.storage.sql.exec<{ data: string; drift: string | null }>('SELECT data, drift FROM windows ORDER BY start DESC LIMIT 48').toArray()
    const reference = this.meta('reference')
    return {
      window_seconds: this.windowMs() / 1000,
      reference: reference === null ? null : new Date(Number(reference)).toISOString(),
      windows: rows.map((row) => {
        const window = JSON.parse(row.data) as MonitorWindow
        return {
          start: new Date(window.start).toISOString(),
          requests: window.requests,
          errors: window.errors,
          error_rate: window.requests === 0 ? 0 : window.errors / window.requests,
          rows: window.rows,
          latency_ms: { p50: latencyQuantile(window.latency, 0.5), p95: latencyQuantile(window.latency, 0.95), p99: latencyQuantile(window.latency, 0.99) },
          classes: window.classes,
          confidence: window.confidence,
          drift: row.drift ? (JSON.parse(row.drift) as WindowReport['drift']) : null,
        }
      }),
    }
  }
}
