import { actionForRisk, actionRank, resolveGuardPolicy, type GuardAction, type GuardPolicy, type GuardPolicyInput } from '../../src/shared/guard/guard-policy.ts'
import { createModelSignals, observeClassifierQuery, readSignals, signalOptions, type ModelSignals, type SignalOptions } from '../../src/shared/guard/model-signals.ts'
import { riskScore, type SignalReading } from '../../src/shared/guard/risk-score.ts'
import { encodeState } from '../../src/shared/guard/state-codec.ts'

// One client as ClientGuard.settle sees it, without the Durable Object
// around it: the same detectors, the same readings, the same risk score and
// the same escalation ladder, run in-process so the bench can replay
// thousands of queries per second. (Volume anomalies are left out: the bench
// replays at machine speed, so every client would look like a burst.)

export type GuardedClient = {
  action: GuardAction
  risk: number
  signals: SignalReading[]
  queries: number
  // The query at which the action first reached each level.
  reachedAt: Partial<Record<GuardAction, number>>
  // What the signals said at the first escalation.
  firstEscalation: SignalReading[] | null
  peakRisk: number
  observe(input: Float32Array, probabilities: Float32Array): void
  stateBytes(): number
  elapsedMs: number
}

export function createGuardedClient(policyInput: GuardPolicyInput = {}, tenantSeed = 7): GuardedClient {
  const policy: GuardPolicy = resolveGuardPolicy(policyInput)
  const options: SignalOptions = signalOptions(policy, tenantSeed)
  const signals: ModelSignals = createModelSignals('classifier', options)
  const client: GuardedClient = {
    action: 'observe',
    risk: 0,
    signals: [],
    queries: 0,
    reachedAt: {},
    firstEscalation: null,
    peakRisk: 0,
    elapsedMs: 0,
    observe(input, probabilities) {
      const started = performance.now()
      client.queries++
      observeClassifierQuery(signals, options, { input, probabilities })
      const assessment = riskScore(readSignals(signals, options, policy))
      client.risk = assessment.score
      client.signals = assessment.signals
      const target = actionForRisk(policy, assessment.score)
      client.peakRisk = Math.max(client.peakRisk, assessment.score)
      if (actionRank(target) > actionRank(client.action)) {
        client.firstEscalation ??= assessment.signals
        client.action = target
        for (const level of ['degrade', 'throttle', 'block'] as const) if (actionRank(target) >= actionRank(level)) client.reachedAt[level] ??= client.queries
      }
      client.elapsedMs += performance.now() - started
    },
    stateBytes: () => encodeState(signals).length,
  }
  return client
}
