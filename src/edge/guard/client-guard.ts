import { DurableObject } from 'cloudflare:workers'
import { actionForRisk, actionRank, mergeGuardPolicies, resolveGuardPolicy, type GuardAction, type GuardPolicy, type GuardPolicyInput } from '../../shared/guard/guard-policy.ts'
import { createModelSignals, observeClassifierQuery, observeLlmRequest, readSignals, readVolume, signalOptions, type ModelSignals } from '../../shared/guard/model-signals.ts'
import { explainRisk, riskScore, type SignalReading } from '../../shared/guard/risk-score.ts'
import { hashString } from '../../shared/guard/seeded-random.ts'
import { decodeState, encodeState } from '../../shared/guard/state-codec.ts'
import { giveBack, take, type TokenBucket } from '../../shared/guard/token-bucket.ts'
import { createVolumeState, DEFAULT_VOLUME_OPTIONS, observeVolume, volumeZ, type VolumeState } from '../../shared/guard/volume-anomaly.ts'
import { createId } from '../../shared/ids.ts'
import type { Env } from '../env.ts'
import { emitEvent, eventId } from '../webhooks/emit-event.ts'
import { clientId } from './client-id.ts'
import { UNTRACKED_RESERVATION, type Admission, type AdmitRequest, type ClassifierReport, type ClientIdentity, type ClientView, type LlmReport, type SettleRequest } from './guard-protocol.ts'

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000
// A reservation whose call never reports back (the isolate died) is
// released after this long; what it reserved stays spent.
const RESERVATION_TTL_MS = 10 * MINUTE_MS
// A throttled client without its own rpm limit gets this base times the
// throttle factor.
const THROTTLE_BASE_RPM = 60
const MAX_MODELS_PER_CLIENT = 8
const SYNC_INTERVAL_MS = MINUTE_MS
// Detector state (tens of KB per model) is written behind: at most once per
// this interval, by the next call or by an alarm. Limits and actions are
// written on every call; what a crash can lose is under a second of
// detector observations. Writing the state on every call was most of the
// object's work under load.
const SIGNALS_FLUSH_MS = 1000
const SCHEMA_VERSION = 2

type ClientMeta = {
  identity: ClientIdentity | null
  action: GuardAction
  actionSince: number | null
  risk: number
  signals: SignalReading[]
  volume: VolumeState | null
  escalations: number
  cooldownMs: number
  keyPolicy: GuardPolicyInput
  syncedAt: number
  syncedRisk: number
}

const freshMeta = (): ClientMeta => ({
  identity: null,
  action: 'observe',
  actionSince: null,
  risk: 0,
  signals: [],
  volume: null,
  escalations: 0,
  cooldownMs: DAY_MS,
  keyPolicy: {},
  syncedAt: 0,
  syncedRisk: 0,
})

// Limits that need a call's usage after it (tokens, units) or its end (concurrency).
const limitsNeedUsage = (policy: GuardPolicy) => {
  const { concurrency, tpm, daily_tokens, budget_units } = policy.limits
  return concurrency !== undefined || tpm !== undefined || daily_tokens !== undefined || budget_units !== undefined
}

const utcDay = (now: number) => new Date(now).toISOString().slice(0, 10)
const nextUtcDay = (now: number) => (Math.floor(now / DAY_MS) + 1) * DAY_MS

// One Durable Object per client (an API key, or a key and an end-user id):
// the single authority for that client's limits (token buckets for rpm and
// tpm, daily quotas, concurrency, budgets reserved before a call and
// reconciled after) and its extraction signals, so both hold exactly across
// every isolate. Everything lives in the object's SQLite storage; detector
// state is bounded per model and at most eight models are remembered. An
// alarm rolls daily windows over, releases abandoned reservations and lets
// an action cool down.
export class ClientGuard extends DurableObject<Env> {
  private meta: ClientMeta = freshMeta()
  private models = new Map<string, { signals: ModelSignals; readings: SignalReading[] }>()
  private unsaved = new Set<string>()
  // When the alarm is set for, as this object last set or read it (undefined:
  // not known yet): spares a storage read on every admitted call.
  private alarmAt: number | null | undefined = undefined
  private signalsSavedAt = 0
  // Whether the client's record has been stored at least once, and whether
  // what is in memory is newer (only ever the volume detector's state).
  private metaSaved = false
  private metaDirty = false
  // Each model's latest readings: read from storage once (undefined: not
  // yet), then kept as each report rescores its model; rescoring the client
  // needs them all on every report.
  private readingsByModel: Map<string, SignalReading[]> | undefined = undefined
  // The observation of the last call admitted with a report, which runs
  // after the admission has answered (see admit). Every entry point waits
  // for it first, so each call and each read sees every earlier call
  // observed, in order.
  private observing: Promise<void> = Promise.resolve()

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    ctx.blockConcurrencyWhile(async () => {
      const sql = this.ctx.storage.sql
      sql.exec('CREATE TABLE IF NOT EXISTS guard_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
      sql.exec('CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at INTEGER NOT NULL)')
      sql.exec('CREATE TABLE IF NOT EXISTS daily (name TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (name, day))')
      sql.exec('CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, tokens INTEGER NOT NULL, units INTEGER NOT NULL, day TEXT NOT NULL, expires_at INTEGER NOT NULL)')
      sql.exec('CREATE TABLE IF NOT EXISTS model_signals (model TEXT PRIMARY KEY, state TEXT NOT NULL, readings TEXT NOT NULL, updated_at INTEGER NOT NULL)')
      sql.exec(`INSERT INTO guard_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT DO UPDATE SET value = excluded.value`, String(SCHEMA_VERSION))
      const stored = sql.exec<{ value: string }>(`SELECT value FROM guard_meta WHERE key = 'client'`).toArray()[0]
      if (stored) {
        this.meta = { ...freshMeta(), ...(JSON.parse(stored.value) as ClientMeta) }
        this.metaSaved = true
      }
    })
  }

  schemaVersion(): number {
    const row = this.ctx.storage.sql.exec<{ value: string }>(`SELECT value FROM guard_meta WHERE key = 'schema_version'`).one()
    return Number(row.value)
  }

  private saveMeta(): void {
    this.ctx.storage.sql.exec(`INSERT INTO guard_meta (key, value) VALUES ('client', ?) ON CONFLICT DO UPDATE SET value = excluded.value`, JSON.stringify(this.meta))
    this.metaSaved = true
    this.metaDirty = false
  }

  // Resolving a policy (merging, validating, filling defaults) cost more than
  // the rest of a call's bookkeeping; a client meets few distinct policies, so
  // the resolved ones are kept, keyed by what they were resolved from.
  private resolvedPolicies = new Map<string, GuardPolicy>()

  private policyFor(callerPolicy: GuardPolicyInput): GuardPolicy {
    const key = JSON.stringify([callerPolicy, this.meta.keyPolicy ?? null])
    let policy = this.resolvedPolicies.get(key)
    if (!policy) {
      policy = resolveGuardPolicy(mergeGuardPolicies(callerPolicy, this.meta.keyPolicy))
      if (this.resolvedPolicies.size >= 16) this.resolvedPolicies.clear()
      this.resolvedPolicies.set(key, policy)
    }
    return policy
  }

  private bucket(name: string): TokenBucket | undefined {
    const row = this.ctx.storage.sql.exec<{ tokens: number; updated_at: number }>(`SELECT tokens, updated_at FROM buckets WHERE name = ?`, name).toArray()[0]
    return row ? { tokens: row.tokens, updatedAt: row.updated_at } : undefined
  }

  private saveBucket(name: string, bucket: TokenBucket): void {
    this.ctx.storage.sql.exec(
      `INSERT INTO buckets (name, tokens, updated_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at`,
      name,
      bucket.tokens,
      bucket.updatedAt,
    )
  }

  private dailyUsed(name: string, day: string): number {
    return this.ctx.storage.sql.exec<{ used: number }>(`SELECT used FROM daily WHERE name = ? AND day = ?`, name, day).toArray()[0]?.used ?? 0
  }

  private addDaily(name: string, day: string, amount: number): void {
    if (amount === 0) return
    this.ctx.storage.sql.exec(`INSERT INTO daily (name, day, used) VALUES (?, ?, MAX(?, 0)) ON CONFLICT DO UPDATE SET used = MAX(used + ?, 0)`, name, day, amount, amount)
  }

  private inFlight(now: number): number {
    return this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM reservations WHERE expires_at > ?`, now).one().n
  }

  // Returns whether the action cooled down to observe.
  private coolDown(now: number): boolean {
    if (this.meta.action !== 'observe' && this.meta.actionSince !== null && now - this.meta.actionSince >= this.meta.cooldownMs) {
      this.meta.action = 'observe'
      this.meta.actionSince = null
      this.meta.risk = 0
      this.meta.signals = []
      this.clearSignals()
      return true
    }
    return false
  }

  // Asks before the call: every limit is checked first and only if all pass
  // is anything taken, so a refused request costs nothing.
  async admit(request: AdmitRequest): Promise<Admission> {
    await this.observing
    const now = request.now ?? Date.now()
    this.meta.identity ??= request.client
    const policy = this.policyFor(request.policy)
    this.meta.cooldownMs = policy.cooldown_seconds * 1000
    const cooled = this.coolDown(now)
    const { action, risk } = this.meta
    const overlap = policy.admission === 'overlap'
    if (!policy.enabled) return { outcome: 'allow', reservation: UNTRACKED_RESERVATION, action: 'observe', masking: null, risk, overlap }
    if (action === 'block') {
      return { outcome: 'block', action, risk, message: 'This client is blocked: its queries look like a model extraction attempt' }
    }
    const throttled = action === 'throttle'
    const factor = throttled ? policy.throttle_factor : 1
    const limits = policy.limits
    const rpm = limits.rpm ?? (throttled ? THROTTLE_BASE_RPM : undefined)
    const day = utcDay(now)
    const untilTomorrow = Math.ceil((nextUtcDay(now) - now) / 1000)
    const refuse = (limit: string, retryAfterSeconds: number, message: string): Admission => ({
      outcome: 'throttle',
      limit,
      retryAfterSeconds: Math.max(1, retryAfterSeconds),
      action,
      risk,
      message,
    })
    if (limits.concurrency !== undefined && this.inFlight(now) >= limits.concurrency) {
      return refuse('concurrency', 1, `At most ${limits.concurrency} requests of this client may run at once`)
    }
    for (const [name, limit, amount] of [
      ['daily_requests', limits.daily_requests, 1],
      ['daily_tokens', limits.daily_tokens, request.tokens],
      ['budget_units', limits.budget_units, request.units],
    ] as const) {
      if (limit !== undefined && this.dailyUsed(name, day) + amount > limit) {
        return refuse(name, untilTomorrow, `Daily ${name.replace('_', ' ')} limit of ${limit} reached`)
      }
    }
    const buckets: [string, TokenBucket][] = []
    for (const [name, capacity, amount] of [
      ['rpm', rpm, 1],
      ['tpm', limits.tpm, request.tokens],
    ] as const) {
      if (capacity === undefined || amount === 0) continue
      const scaled = Math.max(1, Math.floor(capacity * factor))
      if (amount > scaled) return refuse(name, 60, `This request needs ${amount} of a ${name} limit of ${scaled}`)
      const decision = take(this.bucket(name), scaled, MINUTE_MS, amount, now)
      if (!decision.allowed) return refuse(name, Math.ceil(decision.retryAfterMs / 1000), `Rate limit of ${scaled} ${name === 'rpm' ? 'requests' : 'tokens'} per minute reached`)
      buckets.push([name, decision.bucket])
    }
    for (const [name, bucket] of buckets) this.saveBucket(name, bucket)
    // Counted only under a daily_requests limit (from when one applies), as
    // tokens are counted only when a limit needs them: a write on every call
    // holds every answer until storage confirms it (the output gate), which
    // was most of what the guard added to a proxied call.
    if (limits.daily_requests !== undefined) this.addDaily('daily_requests', day, 1)
    // A call observed here needs no report after it unless a limit counts
    // what it used or how many run at once: then nothing is reserved, and
    // the edge makes one call to this object instead of two.
    const tracked = request.report === undefined || limitsNeedUsage(policy)
    let reservation = UNTRACKED_RESERVATION
    if (tracked) {
      this.addDaily('daily_tokens', day, request.tokens)
      this.addDaily('budget_units', day, request.units)
      reservation = createId('grs')
      this.ctx.storage.sql.exec(`INSERT INTO reservations (id, tokens, units, day, expires_at) VALUES (?, ?, ?, ?, ?)`, reservation, request.tokens, request.units, day, now + RESERVATION_TTL_MS)
    }
    // The volume detector's state is the only part of the client's record an
    // admission changes (unless it is new, or an action just cooled down):
    // like the other detectors' state it is written behind, by this call's
    // report, the next call that changes more, or the alarm.
    this.meta.volume ??= createVolumeState(DEFAULT_VOLUME_OPTIONS, now)
    observeVolume(this.meta.volume, DEFAULT_VOLUME_OPTIONS, now)
    // A reservation expires at now + TTL, and today's counters at midnight:
    // an alarm set for then or sooner already covers them.
    await this.scheduleAlarmBy(tracked ? now + RESERVATION_TTL_MS : nextUtcDay(now), now)
    // A new client's record, and an action that just cooled down, are kept
    // at once; otherwise the record is written behind.
    if (!this.metaSaved || cooled) this.saveMeta()
    else this.metaDirty = true
    // Observed after the decision, as a report after the call would be: what
    // this call shows acts from the next one on. A caller that waits for
    // this answer before starting its call gets it first, and the detectors
    // (with any write to D1 an escalation or the client list needs) run while
    // its call does. A caller whose call already runs gets the answer after
    // them: its upstream is still busy, and the work done now is not done in
    // the middle of handling the answer (locally the object shares the
    // Worker's thread).
    if (request.report) await this.observeInTurn(request.client, request.model, request.report, policy, now, request.observeAfterAnswer === true)
    const masking = actionRank(action) >= actionRank('degrade') ? policy.degrade_masking : null
    return { outcome: 'allow', reservation, action, masking, risk, overlap }
  }

  // Reports after the call: reconciles what was reserved with what was used,
  // feeds the detectors, rescores the client and escalates its action.
  async settle(request: SettleRequest): Promise<{ risk: number; action: GuardAction; escalated: boolean }> {
    await this.observing
    const now = request.now ?? Date.now()
    const policy = this.policyFor(request.policy)
    const held = this.ctx.storage.sql
      .exec<{ tokens: number; units: number; day: string }>(`SELECT tokens, units, day FROM reservations WHERE id = ?`, request.reservation)
      .toArray()[0]
    if (held) {
      const tokens = request.tokens ?? 0
      const units = request.units ?? 0
      const limits = policy.limits
      if (limits.tpm !== undefined && tokens !== held.tokens) {
        const capacity = Math.max(1, Math.floor(limits.tpm * (this.meta.action === 'throttle' ? policy.throttle_factor : 1)))
        this.saveBucket('tpm', giveBack(this.bucket('tpm'), capacity, MINUTE_MS, held.tokens - tokens, now))
      }
      this.addDaily('daily_tokens', held.day, tokens - held.tokens)
      this.addDaily('budget_units', held.day, units - held.units)
      // A call that used nothing (it failed before the model ran) was not a
      // request the client got an answer for.
      if (request.tokens === null && request.report === null && limits.daily_requests !== undefined) this.addDaily('daily_requests', held.day, -1)
      this.ctx.storage.sql.exec(`DELETE FROM reservations WHERE id = ?`, request.reservation)
    }
    if (!policy.enabled || request.report === null) {
      if (this.metaDirty) this.saveMeta()
      return { risk: this.meta.risk, action: this.meta.action, escalated: false }
    }
    return this.observe(request.client, request.model, request.report, policy, now)
  }

  // Observes a call after any observation still running, now or (`later`)
  // once this turn has answered (a timer, so the answer is on its way
  // first). Now: a failure is the caller's, as any failure of the admission.
  // Later: a failure is logged and the calls after go on; the detectors'
  // state is already updated in memory when the writes that can fail (the
  // escalation's event and alert in D1, the client list) run, and the call
  // it came with has been answered.
  private observeInTurn(client: ClientIdentity, model: string, report: LlmReport | ClassifierReport, policy: GuardPolicy, now: number, later: boolean): Promise<void> {
    const run = this.observing
      .then(() => (later ? new Promise<void>((resolve) => setTimeout(resolve, 0)) : undefined))
      .then(() => this.observe(client, model, report, policy, now))
    this.observing = run.then(
      () => undefined,
      (error: unknown) => {
        if (later) console.error(JSON.stringify({ level: 'error', message: `guard observation failed: ${String(error)}` }))
      },
    )
    return later ? Promise.resolve() : run.then(() => undefined)
  }

  // Feeds the detectors, rescores the client and escalates its action.
  private async observe(
    client: ClientIdentity,
    model: string,
    report: ClassifierReport | LlmReport,
    policy: GuardPolicy,
    now: number,
  ): Promise<{ risk: number; action: GuardAction; escalated: boolean }> {
    const options = signalOptions(policy, hashString(client.tenantId))
    const entry = this.loadModel(model, report.kind)
    if (report.kind === 'classifier') {
      for (const instance of report.instances) {
        observeClassifierQuery(entry.signals, options, {
          input: instance.input,
          ...(instance.probabilities ? { probabilities: instance.probabilities } : {}),
          ...(instance.label !== undefined ? { label: instance.label } : {}),
        })
      }
    } else {
      observeLlmRequest(entry.signals, options, {
        prompt: report.prompt,
        ...(report.logitBias ? { logitBias: report.logitBias } : {}),
        logprobs: report.logprobs ?? false,
      })
    }
    entry.readings = readSignals(entry.signals, options, policy)
    this.storedReadings().set(model, entry.readings)

    const readings = [...this.allReadings()]
    if (this.meta.volume) readings.push(readVolume(this.meta.volume, policy, volumeZ(this.meta.volume, DEFAULT_VOLUME_OPTIONS)))
    const assessment = riskScore(readings)
    const previous = this.meta.action
    const target = actionForRisk(policy, assessment.score)
    const escalated = actionRank(target) > actionRank(previous)
    this.meta.risk = assessment.score
    this.meta.signals = assessment.signals
    if (escalated) {
      this.meta.action = target
      this.meta.actionSince = now
      this.meta.escalations++
    }
    // An escalation is kept at once; a new risk score without one is derived
    // from the detectors' state and is written behind with it.
    if (escalated || !this.metaSaved) this.saveMeta()
    else this.metaDirty = true
    await this.saveSignalsBehind(model, now)
    if (escalated) await this.recordEvent('escalated', previous, model, now)
    else await this.syncView(now, false)
    return { risk: assessment.score, action: this.meta.action, escalated }
  }

  private storedReadings(): Map<string, SignalReading[]> {
    if (!this.readingsByModel) {
      this.readingsByModel = new Map()
      for (const row of this.ctx.storage.sql.exec<{ model: string; readings: string }>(`SELECT model, readings FROM model_signals`)) {
        this.readingsByModel.set(row.model, JSON.parse(row.readings) as SignalReading[])
      }
    }
    return this.readingsByModel
  }

  private *allReadings(): Iterable<SignalReading> {
    // The strongest reading of each signal across the client's models.
    const best = new Map<string, SignalReading>()
    for (const readings of this.storedReadings().values()) {
      for (const reading of readings) {
        const current = best.get(reading.signal)
        if (!current || reading.strength > current.strength) best.set(reading.signal, reading)
      }
    }
    yield* best.values()
  }

  private loadModel(model: string, kind: ModelSignals['kind']) {
    const cached = this.models.get(model)
    if (cached) return cached
    const row = this.ctx.storage.sql.exec<{ state: string; readings: string }>(`SELECT state, readings FROM model_signals WHERE model = ?`, model).toArray()[0]
    const entry = row
      ? { signals: decodeState<ModelSignals>(row.state), readings: JSON.parse(row.readings) as SignalReading[] }
      : { signals: createModelSignals(kind, signalOptions(resolveGuardPolicy(), 0)), readings: [] }
    this.models.set(model, entry)
    return entry
  }

  private saveModel(model: string, entry: { signals: ModelSignals; readings: SignalReading[] }, now: number): void {
    const sql = this.ctx.storage.sql
    sql.exec(
      `INSERT INTO model_signals (model, state, readings, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET state = excluded.state, readings = excluded.readings, updated_at = excluded.updated_at`,
      model,
      encodeState(entry.signals),
      JSON.stringify(entry.readings),
      now,
    )
    const extra = sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM model_signals`).one().n - MAX_MODELS_PER_CLIENT
    if (extra > 0) {
      for (const row of sql.exec<{ model: string }>(`SELECT model FROM model_signals ORDER BY updated_at LIMIT ?`, extra).toArray()) {
        sql.exec(`DELETE FROM model_signals WHERE model = ?`, row.model)
        this.models.delete(row.model)
        this.readingsByModel?.delete(row.model)
      }
    }
  }

  private clearSignals(): void {
    this.ctx.storage.sql.exec(`DELETE FROM model_signals`)
    this.models.clear()
    this.unsaved.clear()
    this.readingsByModel = new Map()
  }

  // Saves now if the last save is older than the interval; otherwise leaves
  // the model unsaved for the next call or the alarm set for it.
  private async saveSignalsBehind(model: string, now: number): Promise<void> {
    const alarmNeeded = this.unsaved.size === 0
    this.unsaved.add(model)
    if (now - this.signalsSavedAt >= SIGNALS_FLUSH_MS) this.saveUnsavedSignals(now)
    else if (alarmNeeded) await this.scheduleAlarm(now)
  }

  private saveUnsavedSignals(now: number): void {
    for (const model of this.unsaved) {
      const entry = this.models.get(model)
      if (entry) this.saveModel(model, entry, now)
    }
    if (this.metaDirty) this.saveMeta()
    this.unsaved.clear()
    this.signalsSavedAt = now
  }

  stateBytes(): number {
    const signals = this.ctx.storage.sql.exec<{ n: number | null }>(`SELECT SUM(LENGTH(state) + LENGTH(readings)) AS n FROM model_signals`).one().n ?? 0
    return signals + JSON.stringify(this.meta).length
  }

  async view(now = Date.now()): Promise<ClientView> {
    await this.observing
    return this.currentView(now)
  }

  private currentView(now: number): ClientView {
    const identity = this.meta.identity
    return {
      client_id: identity ? clientId(identity) : '',
      key_id: identity?.keyId ?? '',
      end_user: identity?.endUser ?? null,
      risk: this.meta.risk,
      action: this.meta.action,
      action_since: this.meta.actionSince,
      signals: this.meta.signals,
      in_flight: this.inFlight(now),
      state_bytes: this.stateBytes(),
    }
  }

  async setPolicy(client: ClientIdentity, policy: GuardPolicyInput): Promise<void> {
    await this.observing
    this.meta.identity ??= client
    this.meta.keyPolicy = policy
    this.saveMeta()
  }

  async keyPolicy(): Promise<GuardPolicyInput> {
    await this.observing
    return this.meta.keyPolicy
  }

  // An admin's reset: the client starts over (signals, risk, action); its
  // limits and what it has used today stay.
  async reset(client: ClientIdentity, now = Date.now()): Promise<ClientView> {
    await this.observing
    this.meta.identity ??= client
    const previous = this.meta.action
    this.clearSignals()
    this.meta = { ...this.meta, action: 'observe', actionSince: null, risk: 0, signals: [], volume: null }
    this.saveMeta()
    await this.recordEvent('reset', previous, null, now)
    return this.currentView(now)
  }

  private async recordEvent(type: 'escalated' | 'reset', previous: GuardAction, model: string | null, now: number): Promise<void> {
    const identity = this.meta.identity
    if (!identity) return
    const id = createId('gev', now)
    await this.env.DB.prepare(
      `INSERT INTO guard_events (id, tenant_id, client_id, key_id, end_user, model_id, type, action, previous_action, risk_bp, signals, created_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (id) DO NOTHING`,
    )
      .bind(id, identity.tenantId, clientId(identity), identity.keyId, identity.endUser, model, type, this.meta.action, previous, Math.round(this.meta.risk * 1e4), JSON.stringify(this.meta.signals), now)
      .run()
    await this.syncView(now, true)
    await emitEvent(this.env, {
      id: await eventId('guard', id),
      tenantId: identity.tenantId,
      type: type === 'reset' ? 'guard.reset' : 'guard.alert',
      createdAt: now,
      data: {
        client_id: clientId(identity),
        key_id: identity.keyId,
        end_user: identity.endUser,
        model,
        action: this.meta.action,
        previous_action: previous,
        risk: this.meta.risk,
        signals: this.meta.signals,
        explanation: explainRisk({ score: this.meta.risk, signals: this.meta.signals }),
      },
    })
  }

  // Mirrors the client's standing into D1 for the list endpoint, when it
  // matters (an action change) or at most once a minute otherwise.
  private async syncView(now: number, force: boolean): Promise<void> {
    const identity = this.meta.identity
    if (!identity) return
    if (!force && now - this.meta.syncedAt < SYNC_INTERVAL_MS && Math.abs(this.meta.risk - this.meta.syncedRisk) < 0.05) return
    await this.env.DB.prepare(
      `INSERT INTO guard_clients (tenant_id, client_id, key_id, end_user, risk_bp, action, signals, state_bytes, updated_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        ON CONFLICT (tenant_id, client_id) DO UPDATE SET risk_bp = excluded.risk_bp, action = excluded.action, signals = excluded.signals,
          state_bytes = excluded.state_bytes, updated_at = excluded.updated_at`,
    )
      .bind(identity.tenantId, clientId(identity), identity.keyId, identity.endUser, Math.round(this.meta.risk * 1e4), this.meta.action, JSON.stringify(this.meta.signals), this.stateBytes(), now)
      .run()
    this.meta.syncedAt = now
    this.meta.syncedRisk = this.meta.risk
    this.saveMeta()
  }

  // Makes sure an alarm runs by `at`: with the alarm's time known and no
  // later than that, nothing to read or write.
  private async scheduleAlarmBy(at: number, now: number): Promise<void> {
    if (typeof this.alarmAt === 'number' && this.alarmAt <= at) return
    await this.scheduleAlarm(now)
  }

  private async scheduleAlarm(now: number): Promise<void> {
    const sql = this.ctx.storage.sql
    const reservationEnd = sql.exec<{ end: number | null }>(`SELECT MIN(expires_at) AS end FROM reservations`).one().end
    const candidates = [nextUtcDay(now), reservationEnd ?? Infinity]
    if (this.unsaved.size > 0) candidates.push(this.signalsSavedAt + SIGNALS_FLUSH_MS)
    if (this.meta.actionSince !== null) candidates.push(this.meta.actionSince + this.meta.cooldownMs)
    const next = Math.min(...candidates)
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm()
    if (this.alarmAt === null || this.alarmAt > next) {
      await this.ctx.storage.setAlarm(next)
      this.alarmAt = next
    }
  }

  override async alarm(): Promise<void> {
    await this.observing
    // A fired alarm is no longer set; what this run needs next it sets again.
    this.alarmAt = null
    const now = Date.now()
    const sql = this.ctx.storage.sql
    this.saveUnsavedSignals(now)
    sql.exec(`DELETE FROM daily WHERE day < ?`, utcDay(now))
    sql.exec(`DELETE FROM reservations WHERE expires_at <= ?`, now)
    const before = this.meta.action
    this.coolDown(now)
    this.saveMeta()
    if (before !== this.meta.action) await this.syncView(now, true)
    const pending = sql.exec<{ n: number }>(`SELECT (SELECT COUNT(*) FROM daily) + (SELECT COUNT(*) FROM reservations) AS n`).one().n
    if (pending > 0 || this.meta.actionSince !== null) await this.scheduleAlarm(now)
  }
}
