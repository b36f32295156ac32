import { LRUCache } from 'lru-cache'
import type { ModerationResult } from '../../shared/moderation/decide.ts'
import type { ResolvedPolicy } from '../../shared/moderation/policy.ts'

// Texts the proxy has moderated, with their results, per isolate. A chat
// client sends the whole conversation on every turn: all its messages but the
// newest were checked on earlier turns, and the answer before it on its way
// out, under the same policy. Without this a conversation of n messages
// costs n checks per turn. A result depends only on the resolved policy (its
// lists included), the engine (fixed per deployment) and the text, so those
// are the key. Results are shared: callers read them and never change them.

export type CheckedTextsOptions = {
  // What the cache may hold, in UTF-16 units: each entry counts its key
  // (policy scope and text) plus `entryOverhead` for the result.
  maxSize: number
  entryOverhead: number
  // Longer texts are checked every time: rare, and costly to hold.
  maxTextLength: number
}

export const CHECKED_TEXTS_DEFAULTS: CheckedTextsOptions = { maxSize: 4_000_000, entryOverhead: 2_000, maxTextLength: 16_384 }

export type CheckedTexts = {
  // A short name for a policy. Equal policies get the same one; a name is
  // never reused, so entries of a policy forgotten here cannot answer for
  // another.
  scope(policy: ResolvedPolicy): string
  // The remembered result of `text` under the scope's policy, else `check`'s;
  // kept for next time unless `remember` is false (a stream's partial text,
  // which will not be sent again).
  check(scope: string, text: string, check: () => ModerationResult, remember?: boolean): ModerationResult
  readonly size: number
}

export function createCheckedTexts(options: CheckedTextsOptions = CHECKED_TEXTS_DEFAULTS): CheckedTexts {
  const results = new LRUCache<string, ModerationResult>({
    maxSize: options.maxSize,
    sizeCalculation: (_result, key) => key.length + options.entryOverhead,
  })
  const scopes = new Map<string, string>()
  let nextScope = 0
  return {
    scope(policy) {
      const written = JSON.stringify(policy)
      let scope = scopes.get(written)
      if (scope === undefined) {
        // Policies are few; past the cap the names start over from empty,
        // and old entries age out of the cache unread.
        if (scopes.size >= 1000) scopes.clear()
        scope = String(nextScope++)
        scopes.set(written, scope)
      }
      return scope
    },
    check(scope, text, check, remember = true) {
      if (text.length > options.maxTextLength) return check()
      const key = `${scope}\u0000${text}`
      const known = results.get(key)
      if (known) return known
      const result = check()
      if (remember) results.set(key, result)
      return result
    },
    get size() {
      return results.size
    },
  }
}
