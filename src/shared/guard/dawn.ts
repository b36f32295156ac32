import { binomialUpperTail } from './binomial-test.ts'

// DAWN, Dynamic Adversarial Watermarking of Neural Networks (Szyller et al.,
// ACM MM 2021): the API answers a small, secret share of queries with a
// deliberately wrong label. A thief who trains on the answers learns those
// wrong labels too; a model trained independently does not. Which queries
// are chosen, and the label they get, come from HMAC(secret, canonical
// input), so the same input always gets the same answer (asking twice
// reveals nothing) and nobody without the secret can tell which answers are
// marks.

export const DEFAULT_WATERMARK_SHARE = 0.005
export const OWNERSHIP_P_VALUE = 1e-6
// Controls: another HMAC-chosen share (this many times the marks' share)
// answered truthfully and recorded too. They cost no accuracy, and they
// measure how often a suspect model disagrees with ours at all, which is
// what bounds how often it could hit a mark by chance.
export const CONTROL_SHARE_FACTOR = 4

// CryptoKey by another name: Node's and Workers' typings disagree on where
// the global type lives.
export type WatermarkKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>

export type WatermarkChoice = { selected: false } | { selected: true; kind: 'mark' | 'control'; label: number }

// The input as bytes that do not depend on its JSON spelling: float32
// little-endian, as the model itself sees it.
export function canonicalInput(input: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  const view = new DataView(new ArrayBuffer(input.length * 4))
  for (let i = 0; i < input.length; i++) view.setFloat32(i * 4, input[i]!, true)
  return new Uint8Array(view.buffer)
}

export async function watermarkKey(secret: Uint8Array<ArrayBuffer>): Promise<WatermarkKey> {
  return crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
}

// Chooses for one input. `trueLabel` is the model's own answer; the mark
// is another label, uniform among the other classes.
export async function chooseWatermark(key: WatermarkKey, input: ArrayLike<number>, trueLabel: number, classes: number, share: number): Promise<WatermarkChoice> {
  if (classes < 2 || share <= 0) return { selected: false }
  return watermarkFromMac(new Uint8Array(await crypto.subtle.sign('HMAC', key, canonicalInput(input))), trueLabel, classes, share)
}

// The choice that HMAC-SHA256(key, canonicalInput(input)) makes: for callers
// that compute the MAC themselves (synchronously, in a simulation).
export function watermarkFromMac(macBytes: Uint8Array, trueLabel: number, classes: number, share: number): WatermarkChoice {
  if (classes < 2 || share <= 0) return { selected: false }
  const mac = new DataView(macBytes.buffer, macBytes.byteOffset, macBytes.byteLength)
  // 53 bits of the MAC as a uniform number in [0, 1).
  const uniform = (mac.getUint32(0) * 2 ** 21 + (mac.getUint32(4) >>> 11)) / 2 ** 53
  if (uniform < share) return { selected: true, kind: 'mark', label: (trueLabel + 1 + (mac.getUint32(8) % (classes - 1))) % classes }
  if (uniform < share * (1 + CONTROL_SHARE_FACTOR)) return { selected: true, kind: 'control', label: trueLabel }
  return { selected: false }
}

// Probabilities consistent with the changed label: the mark's probability and
// the true top's swap places, so the answer looks like any other.
export function watermarkProbabilities(probabilities: readonly number[], label: number): number[] {
  const top = probabilities.indexOf(Math.max(...probabilities))
  const out = [...probabilities]
  out[top] = probabilities[label]!
  out[label] = probabilities[top]!
  return out
}

export type OwnershipVerdict = {
  queries: number
  matches: number
  match_rate: number
  controls: number
  control_disagreement: number
  chance_rate: number
  p_value: number
  verdict: 'ownership_proven' | 'not_proven'
  threshold: number
}

export type SuspectAnswer = { kind: 'mark' | 'control'; label: number; suspectLabel: number }

// Tests a suspect model's answers on the recorded inputs. A model trained
// without our answers matches a mark only when it disagrees with our model
// (a mark is never our model's answer) and then picks that one of the other
// classes; so the chance rate is its disagreement rate on the controls
// (Laplace-smoothed, so few controls err high) spread over classes − 1,
// and never less conservative than the uniform 1/(classes − 1) when there
// are no controls. The p-value is the binomial tail of the matches.
export function verifyOwnership(answers: readonly SuspectAnswer[], classes: number, threshold = OWNERSHIP_P_VALUE): OwnershipVerdict {
  const marks = answers.filter((answer) => answer.kind === 'mark')
  const controls = answers.filter((answer) => answer.kind === 'control')
  const matches = marks.filter((answer) => answer.suspectLabel === answer.label).length
  const disagreements = controls.filter((answer) => answer.suspectLabel !== answer.label).length
  const disagreement = (disagreements + 1) / (controls.length + 2)
  const chance = Math.min(1, (controls.length === 0 ? 1 : disagreement) / (classes - 1))
  const p = binomialUpperTail(marks.length, matches, chance)
  return {
    queries: marks.length,
    matches,
    match_rate: marks.length === 0 ? 0 : matches / marks.length,
    controls: controls.length,
    control_disagreement: controls.length === 0 ? 0 : disagreements / controls.length,
    chance_rate: chance,
    p_value: p,
    verdict: marks.length > 0 && p < threshold ? 'ownership_proven' : 'not_proven',
    threshold,
  }
}
