import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js'

// Personal data and secrets in a text. Each finding is checked beyond its
// shape where a check exists (Luhn for cards, mod 97 for IBANs, octet ranges
// for IPv4, libphonenumber's numbering plans for phones), so an order number
// is not a card. Offsets are in the canonical text; the engine maps them back.
export type PiiKind = 'email' | 'phone' | 'credit_card' | 'iban' | 'national_id' | 'secret' | 'ip_address'
export type PiiFinding = { kind: PiiKind; start: number; end: number; detail?: string }

export type PiiOptions = { phoneRegion?: CountryCode }

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g
const CARD = /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g
const NATIONAL_IDS: readonly [string, RegExp][] = [
  ['us_ssn', /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g],
  ['uk_nino', /\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIOQUV])[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g],
]
const SECRETS: readonly [string, RegExp][] = [
  ['aws_access_key', /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g],
  ['github_token', /\bgh[pousr]_[A-Za-z0-9]{36,}\b/g],
  ['openai_key', /\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}/g],
  ['stripe_key', /\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b/g],
  ['slack_token', /\bxox[abposr]-[A-Za-z0-9-]{10,}/g],
  ['google_api_key', /\bAIza[0-9A-Za-z_-]{35}\b/g],
  ['moat_key', /\bmoat_sk_[A-Za-z0-9_-]{16,}/g],
  ['jwt', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g],
  ['private_key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/g],
]
// Cheap first looks: the full patterns run only where these find something.
const SECRET_PREFIX = /AKIA|ASIA|gh[pousr]_|sk-|[rs]k_(?:live|test)_|xox|AIza|moat_sk_|eyJ|-----BEGIN/
const IBAN_PREFIX = /[A-Z]{2}\d{2}/
// A run that could be a phone number: seven or more digits with the
// separators people write; libphonenumber reads only these runs.
const PHONE_CANDIDATE = /\+?\(?\d[\d\s().-]{5,}\d/g
const IPV4 = /\b(?:\d{1,3}\.){3}\d{1,3}\b/g
const IPV6 = /(?<![\w:])[0-9A-Fa-f:]{3,39}(?![\w:])/g

export function passesLuhn(digits: string): boolean {
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return sum % 10 === 0
}

export function isValidIban(candidate: string): boolean {
  const iban = candidate.replace(/ /g, '')
  if (iban.length < 15 || iban.length > 34) return false
  const rearranged = iban.slice(4) + iban.slice(0, 4)
  let remainder = 0
  for (const char of rearranged) {
    const code = char.charCodeAt(0)
    const value = code >= 65 ? String(code - 55) : char
    for (const digit of value) remainder = (remainder * 10 + (digit.charCodeAt(0) - 48)) % 97
  }
  return remainder === 1
}

// Eight groups of up to four hex digits, or fewer with one "::".
function isValidIpv6(text: string): boolean {
  const halves = text.split('::')
  if (halves.length > 2) return false
  const groups = halves.flatMap((half) => (half === '' ? [] : half.split(':')))
  if (!groups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false
  return halves.length === 2 ? groups.length <= 7 : groups.length === 8
}

const validIpv4 = (text: string) => text.split('.').every((octet) => Number(octet) <= 255 && !(octet.length > 1 && octet.startsWith('0')))

function countDigits(text: string): number {
  let digits = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 48 && code <= 57) digits++
  }
  return digits
}

export function findPii(text: string, options: PiiOptions = {}): PiiFinding[] {
  const findings: PiiFinding[] = []
  const add = (kind: PiiKind, start: number, end: number, detail?: string) => {
    if (findings.some((f) => f.start < end && start < f.end)) return
    findings.push(detail ? { kind, start, end, detail } : { kind, start, end })
  }
  // Secrets first: a key can contain what looks like a phone number.
  if (SECRET_PREFIX.test(text)) for (const [name, pattern] of SECRETS) for (const m of text.matchAll(pattern)) add('secret', m.index, m.index + m[0].length, name)
  if (text.includes('@')) for (const m of text.matchAll(EMAIL)) add('email', m.index, m.index + m[0].length)
  if (IBAN_PREFIX.test(text)) for (const m of text.matchAll(IBAN)) if (isValidIban(m[0])) add('iban', m.index, m.index + m[0].length)
  const digits = countDigits(text)
  if (digits >= 7) {
    for (const [name, pattern] of NATIONAL_IDS) for (const m of text.matchAll(pattern)) add('national_id', m.index, m.index + m[0].length, name)
    if (digits >= 13) {
      for (const m of text.matchAll(CARD)) {
        const number = m[0].replace(/[ -]/g, '')
        if (number.length >= 13 && passesLuhn(number)) add('credit_card', m.index, m.index + m[0].length)
      }
    }
    for (const m of text.matchAll(IPV4)) if (validIpv4(m[0])) add('ip_address', m.index, m.index + m[0].length, 'v4')
    for (const candidate of text.matchAll(PHONE_CANDIDATE)) {
      const number = candidate[0].replace(/[\s(.-]+$/, '')
      const start = candidate.index
      if (countDigits(number) < 7 || findings.some((f) => f.start <= start && start + number.length <= f.end)) continue
      if (parsePhoneNumberFromString(number, options.phoneRegion ?? 'US')?.isValid()) add('phone', start, start + number.length)
    }
  }
  if (text.includes(':') && (text.includes('::') || /[0-9a-f]{1,4}:[0-9a-f]{1,4}:/i.test(text))) for (const m of text.matchAll(IPV6)) if (isValidIpv6(m[0])) add('ip_address', m.index, m.index + m[0].length, 'v6')
  return findings.sort((a, b) => a.start - b.start)
}
