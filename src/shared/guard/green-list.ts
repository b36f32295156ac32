import { normalUpperTail } from './normal-distribution.ts'

// Green-list watermark detection (Kirchenbauer et al., ICML 2023) for model
// owners who watermark their own LLM's sampling: at each step, the previous
// `contextWidth` tokens seed a pseudo-random split of the vocabulary, a
// share γ of which is "green", and sampling favours green tokens. Detection
// counts green tokens: without the watermark each is green with chance γ,
// so z = (g − γT) / √(Tγ(1 − γ)) is standard normal under the null.
//
// The split is Moat's "lefthash-hmac" scheme, stated exactly so a sampler can
// reproduce it: token t after context c₁…c_h is green iff the first 4 bytes of
// HMAC-SHA256(key, c₁ ‖ … ‖ c_h ‖ t), each id a big-endian uint32, read as a
// big-endian uint32, are below ⌊γ · 2³²⌋. As in Kirchenbauer et al.'s
// follow-up ("On the Reliability of Watermarks", 2024), each (context, token)
// pair is scored once by default, so repeated text cannot inflate z.

export const GREEN_LIST_SCHEMES = ['lefthash-hmac'] as const
export type GreenListScheme = (typeof GREEN_LIST_SCHEMES)[number]

export type GreenListOptions = {
  key: string
  gamma: number
  contextWidth: number
  ignoreRepeated: boolean
  zThreshold: number
}

export type GreenListResult = {
  tokens: number
  tokens_scored: number
  green_tokens: number
  green_fraction: number
  z_score: number
  p_value: number
  // The fewest scored tokens for which even an all-green text reaches the
  // threshold: below it no verdict of "watermarked" is possible at all.
  min_tokens: number
  verdict: 'watermarked' | 'not_watermarked' | 'too_short'
}

export function minimumTokens(gamma: number, zThreshold: number): number {
  // All T tokens green: z = √(T(1 − γ)/γ) ≥ threshold.
  return Math.max(1, Math.ceil((zThreshold * zThreshold * gamma) / (1 - gamma)))
}

export async function scoreGreenList(ids: readonly number[], options: GreenListOptions): Promise<GreenListResult> {
  const { gamma, contextWidth } = options
  if (!(gamma > 0 && gamma < 1)) throw new RangeError('gamma must be in (0, 1)')
  if (!Number.isInteger(contextWidth) || contextWidth < 1) throw new RangeError('contextWidth must be a positive integer')
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(options.key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const limit = Math.floor(gamma * 2 ** 32)
  const seen = new Set<string>()
  let scored = 0
  let green = 0
  const message = new DataView(new ArrayBuffer((contextWidth + 1) * 4))
  for (let i = contextWidth; i < ids.length; i++) {
    const window = ids.slice(i - contextWidth, i + 1)
    if (options.ignoreRepeated) {
      const id = window.join(',')
      if (seen.has(id)) continue
      seen.add(id)
    }
    window.forEach((token, j) => message.setUint32(j * 4, token >>> 0))
    const mac = new DataView(await crypto.subtle.sign('HMAC', key, message))
    scored++
    if (mac.getUint32(0) < limit) green++
  }
  const z = scored === 0 ? 0 : (green - gamma * scored) / Math.sqrt(scored * gamma * (1 - gamma))
  const minTokens = minimumTokens(gamma, options.zThreshold)
  return {
    tokens: ids.length,
    tokens_scored: scored,
    green_tokens: green,
    green_fraction: scored === 0 ? 0 : green / scored,
    z_score: z,
    p_value: scored === 0 ? 1 : normalUpperTail(z),
    min_tokens: minTokens,
    verdict: scored < minTokens ? 'too_short' : z >= options.zThreshold ? 'watermarked' : 'not_watermarked',
  }
}
