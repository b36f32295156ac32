import type { GuardAction, GuardPolicyInput, MaskingMode } from '../../shared/guard/guard-policy.ts'
import type { SignalReading } from '../../shared/guard/risk-score.ts'

// What the edge and a ClientGuard object say to each other over RPC.

export type ClientIdentity = { tenantId: string; keyId: string; endUser: string | null }

export type AdmitRequest = {
  client: ClientIdentity
  model: string
  // The caller's policy (model or route); the key's own policy, set with
  // PUT /v1/guard/clients/{client}/policy, overrides it field by field.
  policy: GuardPolicyInput
  // Tokens reserved against tpm and daily_tokens before the call; the real
  // count is reconciled after it.
  tokens: number
  // Budget units reserved before the call (budget_units per day).
  units: number
  // What an LLM call sends is known before the call: observed at admission,
  // so the report after it only reconciles (and is not needed at all when the
  // policy sets no limit that reconciling could change).
  report?: LlmReport
  // The caller waits for this answer before it starts its call: the report
  // is then observed just after answering, while the call runs. Otherwise
  // (the call already runs beside the admission) before answering.
  observeAfterAnswer?: boolean
  now?: number
}

// The reservation of a call the guard does not track (its policy turns the
// guard off, or the call was observed at admission and no limit needs its
// usage): there is nothing to reconcile or observe, so no report follows.
export const UNTRACKED_RESERVATION = ''

export type Admission =
  // overlap: the client's policy lets its next proxied call start before the guard answers.
  | { outcome: 'allow'; reservation: string; action: GuardAction; masking: MaskingMode | null; risk: number; overlap: boolean }
  | { outcome: 'throttle'; limit: string; retryAfterSeconds: number; action: GuardAction; risk: number; message: string }
  | { outcome: 'block'; action: GuardAction; risk: number; message: string }

export type ClassifierReport = { kind: 'classifier'; instances: { input: number[]; probabilities?: number[]; label?: number }[] }
export type LlmReport = { kind: 'llm'; prompt: string; logitBias?: Record<string, number>; logprobs?: boolean }

export type SettleRequest = {
  client: ClientIdentity
  model: string
  policy: GuardPolicyInput
  reservation: string
  // Actual usage; null when the call failed before using anything (the
  // reservation is then given back whole).
  tokens: number | null
  units: number | null
  report: ClassifierReport | LlmReport | null
  now?: number
}

export type ClientView = {
  client_id: string
  key_id: string
  end_user: string | null
  risk: number
  action: GuardAction
  action_since: number | null
  signals: SignalReading[]
  in_flight: number
  state_bytes: number
}
