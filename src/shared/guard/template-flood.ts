import { hashString } from './seeded-random.ts'

// Rigidly templated prompt floods: distillation and membership probing send
// one template with a slot filled in thousands of times. A prompt's
// template is its shape with the variable part removed: numbers, quoted
// strings and the longest run of differing words cannot be known in
// advance, so the signature is the hash of its first and last `edge`
// characters after numbers and quoted spans are blanked. The signal is the
// share of the last `history` prompts that carry the most common signature.
//
// Bounds: `history` 32-bit signatures.

export type TemplateOptions = { history: number; edge: number }
export const DEFAULT_TEMPLATE_OPTIONS: TemplateOptions = { history: 64, edge: 48 }

export type TemplateState = { signatures: Uint32Array; prompts: number }

export function createTemplateState(options: TemplateOptions): TemplateState {
  return { signatures: new Uint32Array(options.history), prompts: 0 }
}

// The signature of a prompt already folded to NFKC and lower case
// (foldForHashing: the near-duplicate detector reads it so too, and the
// guard folds each prompt once for both).
export function templateSignature(folded: string, options: TemplateOptions): number {
  const shape = folded
    .replace(/"[^"]*"|'[^']*'|`[^`]*`|“[^”]*”/g, '"_"')
    .replace(/\d+(?:[.,]\d+)*/g, '0')
    .replace(/\s+/g, ' ')
    .trim()
  if (shape.length <= 2 * options.edge) return hashString(shape) || 1
  return hashString(`${shape.slice(0, options.edge)}\u0000${shape.slice(-options.edge)}`) || 1
}

export function observePrompt(state: TemplateState, options: TemplateOptions, folded: string): void {
  state.signatures[state.prompts % options.history] = templateSignature(folded, options)
  state.prompts++
}

// The share of remembered prompts that share the commonest signature; 0
// until `history` / 2 prompts were seen, as a short burst proves nothing.
export function dominantTemplateShare(state: TemplateState, options: TemplateOptions): number {
  const held = Math.min(state.prompts, options.history)
  if (held < options.history / 2) return 0
  const counts = new Map<number, number>()
  let best = 0
  for (let i = 0; i < held; i++) {
    const signature = state.signatures[i]!
    const count = (counts.get(signature) ?? 0) + 1
    counts.set(signature, count)
    if (count > best) best = count
  }
  return best / held
}
