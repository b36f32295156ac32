import { describe, expect, it } from 'vitest'
import { findPii, isValidIban, passesLuhn } from '../../../src/shared/moderation/pii.ts'

const kinds = (text: string) => findPii(text).map((f) => [f.kind, text.slice(f.start, f.end), f.detail ?? null])

describe('findPii', () => {
  it('finds emails, phone numbers, cards, IBANs, national ids, secrets and IPs', () => {
    const text =
      'Mail jane.doe@example.co.uk or call +44 20 7946 0958. Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, ' +
      'SSN 123-45-6789, key AKIAIOSFODNN7EXAMPLE from 192.168.0.12 and 2001:db8::8a2e:370:7334'
    expect(kinds(text)).toEqual([
      ['email', 'jane.doe@example.co.uk', null],
      ['phone', '+44 20 7946 0958', null],
      ['credit_card', '4111 1111 1111 1111', null],
      ['iban', 'GB82 WEST 1234 5698 7654 32', null],
      ['national_id', '123-45-6789', 'us_ssn'],
      ['secret', 'AKIAIOSFODNN7EXAMPLE', 'aws_access_key'],
      ['ip_address', '192.168.0.12', 'v4'],
      ['ip_address', '2001:db8::8a2e:370:7334', 'v6'],
    ])
  })

  it('checks beyond the shape: Luhn, mod 97, octets', () => {
    expect(kinds('order 4111 1111 1111 1112 from 999.1.1.1, IBAN GB82 WEST 1234 5698 7654 33')).toEqual([])
    expect(passesLuhn('4111111111111111')).toBe(true)
    expect(passesLuhn('4111111111111112')).toBe(false)
    expect(isValidIban('DE89 3704 0044 0532 0130 00')).toBe(true)
  })

  it('finds provider keys', () => {
    expect(kinds(`token ghp_${'a'.repeat(36)} and sk-proj-${'b'.repeat(24)}`).map(([, , detail]) => detail)).toEqual(['github_token', 'openai_key'])
  })

  it('finds nothing in ordinary text', () => {
    expect(findPii('The meeting is at 10:30 in room 4, bring 2 copies.')).toEqual([])
  })
})
