// Digits and symbols that stand for letters inside a word ("k1ll", "a$$").
// They are read as letters only in a token that also holds a letter, so
// numbers (phone numbers, years, "mp3" aside) keep their digits.
const LEET: Record<string, string> = {
  '0': 'o',
  '1': 'i',
  '3': 'e',
  '4': 'a',
  '5': 's',
  '7': 't',
  '8': 'b',
  '9': 'g',
  '@': 'a',
  '$': 's',
  '|': 'l',
  '+': 't',
  '!': 'i',
}

export const LEET_CODES: ReadonlyMap<number, number> = new Map(
  Object.entries(LEET).map(([from, to]) => [from.charCodeAt(0), to.charCodeAt(0)]),
)
