import { describe, expect, it } from 'vitest'
import { foldPhrase, normalizeText, originalRange } from '../../../src/shared/moderation/normalize.ts'

const folded = (text: string) => normalizeText(text).folded.text

describe('normalizeText', () => {
  it('folds the evasions attackers use to the same words', () => {
    const plain = folded('kill you')
    for (const variant of [
      'KILL YOU',
      'k\u200Bi\u200Dll y\u2060ou', // zero-width characters
      '\u202Ekill you', // a bidi override
      'ｋｉｌｌ ｙｏｕ', // full-width
      'ᴋɪʟʟ ʏᴏᴜ', // small capitals
      'kіll yоu', // Cyrillic і and о
      'k1ll y0u', // leetspeak
      'kiiiiilllll youuuu', // repeated letters
      'k i l l you', // spaced letters
      'k.i.l.l you',
      '𝐤𝐢𝐥𝐥 𝐲𝐨𝐮', // mathematical bold
    ]) {
      expect(folded(variant), variant).toBe(plain)
    }
  })

  it('keeps numbers as numbers and accents off Latin letters', () => {
    expect(folded('Call 555 0100 in 2024')).toBe('cal 555 0100 in 2024')
    expect(folded('Je déteste')).toBe('je deteste')
    expect(folded('我恨女人。')).toBe('我恨女人')
  })

  it('maps every folded span back to the original text', () => {
    const text = 'Please, ｋ i l l  him now'
    const normalized = normalizeText(text)
    const at = normalized.folded.text.indexOf('kil')
    const [start, end] = originalRange(normalized.folded, at, at + 3)
    expect(text.slice(start, end)).toBe('ｋ i l l')
  })

  it('keeps case and strips invisible characters in the canonical form', () => {
    expect(normalizeText('Mail\u200B Bob@Example.com').canonical.text).toBe('Mail Bob@Example.com')
  })

  it('folds lexicon phrases exactly as it folds text', () => {
    expect(foldPhrase('Kill myself')).toBe(folded('k1lll mysélf'))
  })
})
