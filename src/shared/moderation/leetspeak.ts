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

// Indexed by character code (all of them ASCII): the letter, or 0.
export const LEET_CODES: Uint16Array = (() => {
  const table = new Uint16Array(128)
  for (const [from, to] of Object.entries(LEET)) table[from.charCodeAt(0)] = to.charCodeAt(0)
  return table
})()

export const leetLetter = (code: number): number => (code < 128 ? LEET_CODES[code]! : 0)
