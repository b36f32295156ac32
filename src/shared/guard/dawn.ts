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

// CryptoKey by another name: Node's and Workers' typings disagree on where
// the global type lives.
export type WatermarkKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>

export type WatermarkChoice = { selected: false } | { selected: true; label: number }

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
  const mac = new DataView(await crypto.subtle.sign('HMAC', key, canonicalInput(input)))
  // 53 bits of the MAC as a uniform number in [0, 1).
  const uniform = (mac.getUint32(0) * 2 ** 21 + (mac.getUint32(4) >>> 11)) / 2 ** 53
  if (uniform >= share) return { selected: false }
  const offset = 1 + (mac.getUint32(8) % (classes - 1))
  return { selected: true, label: (trueLabel + offset) % classes }
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
  chance_rate: number
  p_value: number
  verdict: 'ownership_proven' | 'not_proven'
  threshold: number
}

// Tests a suspect model's answers on the recorded marked inputs. Under the
// null hypothesis (a model trained without our answers) a mark is matched
// no more often than `chance` (1/classes by default: conservative, since an
// independent model mostly answers the true label, which a mark never is).
export function verifyOwnership(answers: readonly { watermarkLabel: number; suspectLabel: number }[], classes: number, threshold = OWNERSHIP_P_VALUE): OwnershipVerdict {
  const matches = answers.filter((answer) => answer.suspectLabel === answer.watermarkLabel).length
  const chance = 1 / classes
  const p = binomialUpperTail(answers.length, matches, chance)
  return {
    queries: answers.length,
    matches,
    match_rate: answers.length === 0 ? 0 : matches / answers.length,
    chance_rate: chance,
    p_value: p,
    verdict: answers.length > 0 && p < threshold ? 'ownership_proven' : 'not_proven',
    threshold,
  }
}
