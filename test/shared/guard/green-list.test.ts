import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { minimumTokens, scoreGreenList } from '../../../src/shared/guard/green-list.ts'
import { loadTokenizer, TokenizerError } from '../../../src/shared/guard/text-tokenizer.ts'

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/guard/${name}`, import.meta.url), 'utf8'))
type Case = { key: string; gamma: number; context_width: number; ignore_repeated: boolean; kind: string; ids: number[]; tokens_scored: number; green_tokens: number; z_score: number; p_value: number }
const vectors = fixture('green-list-vectors.json') as { cases: Case[]; text: Case & { text: string } }

const optionsOf = (c: Case) => ({ key: c.key, gamma: c.gamma, contextWidth: c.context_width, ignoreRepeated: c.ignore_repeated, zThreshold: 4 })

describe('green-list detection', () => {
  it('matches the vectors computed independently in Python', async () => {
    expect(vectors.cases.length).toBe(18)
    for (const c of vectors.cases) {
      const result = await scoreGreenList(c.ids, optionsOf(c))
      const label = `${c.kind} γ=${c.gamma} h=${c.context_width} ignore=${c.ignore_repeated}`
      expect(result.tokens_scored, label).toBe(c.tokens_scored)
      expect(result.green_tokens, label).toBe(c.green_tokens)
      expect(result.z_score, label).toBeCloseTo(c.z_score, 10)
      if (c.p_value > 1e-300) expect(Math.abs(result.p_value - c.p_value) / c.p_value, label).toBeLessThan(1e-6)
      expect(result.verdict, label).toBe(c.kind === 'watermarked' ? 'watermarked' : 'not_watermarked')
    }
  })

  it('scores repeated text once per (context, token) unless told otherwise', async () => {
    const repeated = vectors.cases.find((c) => c.kind === 'repeated' && c.ignore_repeated)!
    expect((await scoreGreenList(repeated.ids, optionsOf(repeated))).tokens_scored).toBe(20)
  })

  it('states the minimum length and refuses a verdict below it', async () => {
    expect(minimumTokens(0.25, 4)).toBe(6)
    expect(minimumTokens(0.5, 4)).toBe(16)
    const short = await scoreGreenList([1, 2, 3], { key: 'k', gamma: 0.5, contextWidth: 1, ignoreRepeated: true, zThreshold: 4 })
    expect(short).toMatchObject({ tokens_scored: 2, verdict: 'too_short', min_tokens: 16 })
    await expect(scoreGreenList([1, 2], { key: 'k', gamma: 1, contextWidth: 1, ignoreRepeated: true, zThreshold: 4 })).rejects.toThrow(RangeError)
  })

  it('tokenizes with an uploaded tokenizer.json exactly as the vectors expect', async () => {
    const tokenizer = loadTokenizer(fixture('tokenizer.json'))
    expect(tokenizer.encode(vectors.text.text)).toEqual(vectors.text.ids)
    const result = await scoreGreenList(tokenizer.encode(vectors.text.text), optionsOf(vectors.text))
    expect(result.green_tokens).toBe(vectors.text.green_tokens)
    expect(() => loadTokenizer({ nope: true })).toThrow(TokenizerError)
    expect(() => loadTokenizer('text')).toThrow(TokenizerError)
  })
})
