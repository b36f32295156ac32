// Aho–Corasick over folded text: every phrase found in one pass, however many
// phrases there are. Folded text is words separated by single spaces, so a
// word boundary is a space or either end.

export type Phrase<T> = { text: string; value: T; boundaryStart?: boolean; boundaryEnd?: boolean }
export type PhraseMatch<T> = { start: number; end: number; value: T }
export type PhraseMatcher<T> = { readonly size: number; findAll(text: string): PhraseMatch<T>[] }

type Output<T> = { length: number; value: T; boundaryStart: boolean; boundaryEnd: boolean }

// Scripts written without spaces match inside words.
const UNSPACED_SCRIPT = /[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]/

const isBoundary = (text: string, index: number) => index < 0 || index >= text.length || text.charCodeAt(index) === 32

// Folded text is nearly all a-z, 0-9 and spaces: for those, every state's
// next state is precomputed in a flat table (failure links resolved ahead),
// so matching is one array read a character; anything else walks the trie.
const DENSE = 37
function denseIndex(code: number): number {
  if (code >= 97 && code <= 122) return code - 97
  if (code >= 48 && code <= 57) return code - 22
  return code === 32 ? 36 : -1
}

export function createPhraseMatcher<T>(phrases: readonly Phrase<T>[]): PhraseMatcher<T> {
  const next: Map<number, number>[] = [new Map()]
  const outputs: Output<T>[][] = [[]]
  let size = 0
  for (const phrase of phrases) {
    if (phrase.text.length === 0) continue
    let node = 0
    for (let i = 0; i < phrase.text.length; i++) {
      const code = phrase.text.charCodeAt(i)
      let child = next[node]!.get(code)
      if (child === undefined) {
        child = next.length
        next.push(new Map())
        outputs.push([])
        next[node]!.set(code, child)
      }
      node = child
    }
    const spaced = !UNSPACED_SCRIPT.test(phrase.text)
    outputs[node]!.push({
      length: phrase.text.length,
      value: phrase.value,
      boundaryStart: phrase.boundaryStart ?? spaced,
      boundaryEnd: phrase.boundaryEnd ?? spaced,
    })
    size++
  }

  // Failure links breadth first; each node inherits its failure node's outputs.
  const fail = new Int32Array(next.length)
  const queue: number[] = []
  for (const child of next[0]!.values()) queue.push(child)
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head]!
    for (const [code, child] of next[node]!) {
      let f = fail[node]!
      while (f !== 0 && !next[f]!.has(code)) f = fail[f]!
      const target = next[f]!.get(code)
      fail[child] = target !== undefined && target !== child ? target : 0
      outputs[child]!.push(...outputs[fail[child]!]!)
      queue.push(child)
    }
  }

  const step = (node: number, code: number): number => {
    let child = next[node]!.get(code)
    while (child === undefined && node !== 0) {
      node = fail[node]!
      child = next[node]!.get(code)
    }
    return child ?? 0
  }
  // Breadth-first order guarantees a node's failure state is filled first.
  const dense = new Int32Array(next.length * DENSE)
  for (const node of [0, ...queue]) {
    for (let c = 0; c < DENSE; c++) {
      const code = c < 26 ? 97 + c : c < 36 ? 22 + c : 32
      const child = next[node]!.get(code)
      dense[node * DENSE + c] = child ?? (node === 0 ? 0 : dense[fail[node]! * DENSE + c]!)
    }
  }
  const hasOutput = outputs.map((list) => list.length > 0)

  return {
    size,
    findAll(text) {
      const found: PhraseMatch<T>[] = []
      if (size === 0) return found
      let node = 0
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i)
        const c = denseIndex(code)
        node = c >= 0 ? dense[node * DENSE + c]! : step(node, code)
        if (!hasOutput[node]) continue
        for (const output of outputs[node]!) {
          const start = i + 1 - output.length
          if (output.boundaryStart && !isBoundary(text, start - 1)) continue
          if (output.boundaryEnd && !isBoundary(text, i + 1)) continue
          found.push({ start, end: i + 1, value: output.value })
        }
      }
      return found
    },
  }
}
