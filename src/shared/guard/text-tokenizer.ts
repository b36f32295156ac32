import { Tokenizer } from '@huggingface/tokenizers'

// A model owner's tokenizer.json (Hugging Face's format), read with the
// pure-JS Tokenizers.js, so watermark detection counts exactly the tokens the
// owner's model sampled. Special tokens are not added: the watermark lives in
// sampled text only.

export type TextTokenizer = { encode(text: string): number[] }

export class TokenizerError extends Error {}

export function loadTokenizer(json: unknown, config: Record<string, unknown> = {}): TextTokenizer {
  if (typeof json !== 'object' || json === null || typeof (json as { model?: unknown }).model !== 'object') {
    throw new TokenizerError('tokenizer.json must be an object with a "model"')
  }
  let tokenizer: Tokenizer
  try {
    tokenizer = new Tokenizer(json, config)
  } catch (cause) {
    throw new TokenizerError(`tokenizer.json cannot be read: ${(cause as Error).message}`)
  }
  return { encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids }
}
