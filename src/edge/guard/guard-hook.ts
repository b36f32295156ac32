import type { Context } from 'hono'
import { guardPolicySchema, type GuardAction, type GuardPolicyInput, type MaskingMode } from '../../shared/guard/guard-policy.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { clientId, END_USER_HEADER, guardStub, isValidEndUser } from './client-id.ts'
import { UNTRACKED_RESERVATION, type ClassifierReport, type ClientIdentity, type LlmReport } from './guard-protocol.ts'

// The guard hook that hosted inference (`/v1/models/{id}/predict`) and the
// proxy (`/v1/chat/completions`, `/v1/proxy/{route}/…`) call around each
// model call, after auth:
//
//   const ticket = await guardBefore(c, { model: modelId, kind: 'classifier', policy: model.policy?.guard, units: instances.length })
//   (an LLM call passes its `report` here instead of after: it is known before the call)
//   // ticket.masking: null, or the stricter masking mode to apply to this answer
//   … validate the input, run the model (a 400 for a bad shape is still the model path's own) …
//   await guardAfter(c, ticket, { units: instances.length, report: { kind: 'classifier', instances: [{ input, probabilities }] } })
//   // on a failure before the model answered: await guardAfter(c, ticket, null)
//
// guardBefore throws 429 `rate_limited` (with retry-after) when a per-client
// limit is reached, 403 `extraction_suspected` when the client is blocked,
// and — when the guard itself fails and the policy is fail-closed (the
// default) — 503 `guard_unavailable`; fail-open lets the call through with
// `ticket.failedOpen` set. guardAfter reconciles the reservation (tokens and
// budget units actually used) and feeds the detectors with the raw answer
// (before masking); it must be awaited before the response is returned, so
// that a fail-closed guard failure is a 503 rather than a silent pass.

export type GuardBeforeInput = {
  // The model's id (hosted) or route and upstream model (proxy): signals are
  // kept per client and model.
  model: string
  kind: 'classifier' | 'llm'
  // The guard section of the most specific model or route policy; the key's
  // own policy overrides it. Absent: the recommended defaults.
  policy?: GuardPolicyInput | undefined
  // Reserved before the call, reconciled in guardAfter.
  tokens?: number
  units?: number
  // An LLM call's report, known before the call: observed at admission. When
  // the policy sets no limit on tokens, units or concurrency, the ticket then
  // has no reservation and guardAfter makes no call.
  report?: LlmReport
  // The call starts only once this admission answers: the report is observed
  // after the answer, while the call runs (see AdmitRequest).
  observeAfterAnswer?: boolean
}

export type GuardTicket = {
  client: ClientIdentity
  model: string
  policy: GuardPolicyInput
  reservation: string | null
  action: GuardAction
  masking: MaskingMode | null
  risk: number
  failedOpen: boolean
  // The guard lets this client's next call start before it answers (GuardPolicy.admission).
  overlap: boolean
}

export type GuardAfterInput = {
  tokens?: number
  units?: number
  report?: ClassifierReport | LlmReport
}

function checkedAmount(value: number | undefined, name: string): number {
  if (value === undefined) return 0
  if (!Number.isInteger(value) || value < 0) throw new ApiError(400, `'${name}' must be a non-negative integer`, { code: 'invalid_request', param: name })
  return value
}

function identityOf(c: Context<AppEnv>): ClientIdentity {
  const { tenantId, keyId } = c.get('auth')
  const endUser = c.req.header(END_USER_HEADER) ?? null
  if (endUser !== null && !isValidEndUser(endUser)) {
    throw new ApiError(400, `${END_USER_HEADER} must be 1 to 128 letters, digits or . @ : + - _`, { code: 'invalid_end_user', param: END_USER_HEADER })
  }
  return { tenantId, keyId, endUser }
}

function guardFailure(cause: unknown): ApiError {
  console.error('guard unavailable', cause)
  return new ApiError(503, 'The guard is unavailable and this policy fails closed; try again shortly', {
    code: 'guard_unavailable',
    headers: { 'retry-after': '1' },
  })
}

// Policies come from cached model and route rows, so the same object is
// checked again and again: its result is kept beside it.
const checkedPolicies = new WeakMap<object, ReturnType<typeof guardPolicySchema.safeParse>>()
const DEFAULT_POLICY = {}

function checkPolicy(policy: GuardPolicyInput | undefined) {
  const input = policy ?? DEFAULT_POLICY
  let checked = checkedPolicies.get(input)
  if (!checked) {
    checked = guardPolicySchema.safeParse(input)
    checkedPolicies.set(input, checked)
  }
  return checked
}

export async function guardBefore(c: Context<AppEnv>, input: GuardBeforeInput): Promise<GuardTicket> {
  const client = identityOf(c)
  const parsed = checkPolicy(input.policy)
  if (!parsed.success) throw new ApiError(400, `Invalid guard policy: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { code: 'invalid_policy', param: 'policy.guard' })
  const policy = input.policy ?? DEFAULT_POLICY
  const tokens = checkedAmount(input.tokens, 'tokens')
  const units = checkedAmount(input.units, 'units')
  let admission
  try {
    admission = await guardStub(c.env, client).admit({
      client,
      model: input.model,
      policy,
      tokens,
      units,
      ...(input.report ? { report: input.report, observeAfterAnswer: input.observeAfterAnswer === true } : {}),
    })
  } catch (cause) {
    if (parsed.data.fail_mode === 'closed') throw guardFailure(cause)
    return { client, model: input.model, policy, reservation: null, action: 'observe', masking: null, risk: 0, failedOpen: true, overlap: false }
  }
  if (admission.outcome === 'block') throw new ApiError(403, admission.message, { code: 'extraction_suspected' })
  if (admission.outcome === 'throttle') {
    throw new ApiError(429, admission.message, { code: 'rate_limited', param: admission.limit, headers: { 'retry-after': String(admission.retryAfterSeconds) } })
  }
  return {
    client,
    model: input.model,
    policy,
    // null: the guard does not track this call, and guardAfter has nothing to report.
    reservation: admission.reservation === UNTRACKED_RESERVATION ? null : admission.reservation,
    action: admission.action,
    masking: admission.masking,
    risk: admission.risk,
    failedOpen: false,
    overlap: admission.overlap,
  }
}

// The clients (with their model) whose last admission on this isolate was an
// allow (not throttled, not failed open): their next proxied call may start
// before the guard answers. Insertion order is age: the oldest go first past
// the cap.
const clearedClients = new Map<string, number>()
const CLEARED_CAP = 10_000
// How long an allow vouches for the next call.
const CLEARED_FOR_MS = 60_000

function clearanceKey(c: Context<AppEnv>, model: string): string {
  return `${clientId({ keyId: c.get('auth').keyId, endUser: c.req.header(END_USER_HEADER) ?? null })}\n${model}`
}

function noteAdmission(key: string, ticket: GuardTicket | null): void {
  clearedClients.delete(key)
  // A degraded client is still admitted (its answers are masked, after the
  // guard has answered); a throttled one is near a limit that refuses.
  if (!ticket || !ticket.overlap || ticket.failedOpen || (ticket.action !== 'observe' && ticket.action !== 'degrade')) return
  clearedClients.set(key, Date.now())
  if (clearedClients.size > CLEARED_CAP) clearedClients.delete(clearedClients.keys().next().value!)
}

function cleared(key: string): boolean {
  const at = clearedClients.get(key)
  return at !== undefined && Date.now() - at < CLEARED_FOR_MS
}

export type GuardedCall<T> = {
  // Starts the call; it must stop when `signal` aborts.
  call: (signal: AbortSignal) => Promise<T>
  // Releases what a finished call holds (an unread body) when the guard refuses it.
  discard: (result: T) => Promise<void>
}

// A model call with the guard's admission around it. A Durable Object call
// costs about as much as the rest of the proxy's own work, so under the
// policy's `admission: "overlap"` (the default; the key's own policy, merged
// in the guard's object, decides) a client whose last admission on this
// isolate was an allow (observed or degraded, not throttled, not failed
// open) has its call started while the guard decides; the answer is used
// only once the guard admits the request, exactly as when it was asked
// first. A refusal aborts the call, or discards its answer, and is the
// response. Anyone else, and every client under `admission: "before"`, is
// admitted first. A call that fails has its reservation given back.
export async function guardAround<T>(c: Context<AppEnv>, input: GuardBeforeInput, guarded: GuardedCall<T>): Promise<{ ticket: GuardTicket; result: T }> {
  const key = clearanceKey(c, input.model)
  // A policy that does not parse is a 400 from guardBefore, before any call starts.
  if (!cleared(key) || !checkPolicy(input.policy).success) {
    const ticket = await guardBefore(c, { ...input, observeAfterAnswer: true }).catch((error: unknown) => {
      noteAdmission(key, null)
      throw error
    })
    noteAdmission(key, ticket)
    return { ticket, result: await settleOnFailure(c, ticket, guarded.call(new AbortController().signal)) }
  }
  const controller = new AbortController()
  const started = guarded.call(controller.signal)
  // Seen when awaited below; never an unhandled rejection while the guard decides.
  started.catch(() => undefined)
  // One turn of the event loop first, so the upstream request is on the wire before the guard's object runs.
  await new Promise((resolve) => setTimeout(resolve, 0))
  let ticket: GuardTicket
  try {
    ticket = await guardBefore(c, input)
  } catch (error) {
    noteAdmission(key, null)
    controller.abort(error)
    const finished = await started.then(
      (result) => ({ result }),
      () => null,
    )
    if (finished) await guarded.discard(finished.result).catch(() => undefined)
    throw error
  }
  noteAdmission(key, ticket)
  return { ticket, result: await settleOnFailure(c, ticket, started) }
}

async function settleOnFailure<T>(c: Context<AppEnv>, ticket: GuardTicket, call: Promise<T>): Promise<T> {
  try {
    return await call
  } catch (error) {
    await guardAfter(c, ticket, null)
    throw error
  }
}

export async function guardAfter(c: Context<AppEnv>, ticket: GuardTicket, outcome: GuardAfterInput | null): Promise<void> {
  // Failed open, or a guard the policy turns off: nothing waits for a report.
  if (ticket.failedOpen || ticket.reservation === null) return
  try {
    await guardStub(c.env, ticket.client).settle({
      client: ticket.client,
      model: ticket.model,
      policy: ticket.policy,
      reservation: ticket.reservation ?? '',
      tokens: outcome ? checkedAmount(outcome.tokens, 'tokens') : null,
      units: outcome ? checkedAmount(outcome.units, 'units') : null,
      report: outcome?.report ?? null,
    })
  } catch (cause) {
    if (cause instanceof ApiError) throw cause
    if (checkPolicy(ticket.policy).data?.fail_mode === 'closed') throw guardFailure(cause)
    console.error('guard report lost (fail-open)', cause)
  }
}
