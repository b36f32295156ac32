import { createPhraseMatcher, type PhraseMatcher } from './aho-corasick.ts'
import { OMNI_CATEGORIES, type Category, type CategoryScores } from './categories.ts'
import type { AnalyzeOptions, HeadThresholds, ModerationAnalysis } from './engine.ts'
import { HARMFUL_CUES } from './lexicon.ts'
import { foldPhrase } from './normalize.ts'
import type { ModerationAction, ResolvedPolicy } from './policy.ts'

// Turns an analysis into OpenAI's result shape under a policy, with Moat's
// extras kept apart in `moat`.

export type Decision = 'allow' | 'flag' | 'redact' | 'block'

export type ModerationResult = {
  flagged: boolean
  categories: Record<string, boolean>
  category_scores: Record<string, number>
  category_applied_input_types: Record<string, ['text']>
  moat: {
    action: Decision
    mode: ResolvedPolicy['mode']
    observed: Category[]
    language: ModerationAnalysis['language']
    matches: ModerationAnalysis['cues']
    pii: { type: string; start: number; end: number; detail?: string }[]
    prompt_injection: { score: number; detected: boolean }
    blocklist: { term: string; start: number; end: number }[]
    allowlist: { term: string; start: number; end: number }[]
    redacted?: string
  }
}

// Every category applies to text; one array serves every result (never changed).
const TEXT_ONLY: ['text'] = ['text']

const RANK: Record<Decision, number> = { allow: 0, flag: 1, redact: 2, block: 3 }
const DECISION_OF: Record<Exclude<ModerationAction, 'observe'>, Decision> = { flag: 'flag', redact: 'redact', block: 'block' }

export type ListMatchers = Required<Pick<AnalyzeOptions, 'allowlist' | 'blocklist'>>

// A tenant's lists, folded like text so that spelling tricks do not escape them.
export function compileLists(policy: ResolvedPolicy): ListMatchers {
  const compile = (terms: readonly string[]): PhraseMatcher<string> =>
    createPhraseMatcher(terms.map((term) => ({ text: foldPhrase(term), value: term })))
  return { blocklist: compile(policy.blocklist), allowlist: compile(policy.allowlist) }
}

// Every harmful cue, blocklist term and PII finding masked with asterisks.
function redact(text: string, spans: readonly { start: number; end: number }[]): string {
  const chars = Array.from(text, (char, i) => ({ char, i }))
  let out = ''
  let offset = 0
  for (const { char } of chars) {
    const inside = spans.some((s) => s.start <= offset && offset < s.end)
    out += inside && /\S/.test(char) ? '*' : char
    offset += char.length
  }
  return out
}

// The thresholds `decide` acts on under a policy, for an analysis that
// identifies the language only where it can change the decision.
export function decisiveThresholds(policy: ResolvedPolicy, injectionThreshold: number): HeadThresholds {
  const thresholds = Object.fromEntries(OMNI_CATEGORIES.map((category) => [category, policy.categories[category].threshold]))
  return { ...thresholds, injection: injectionThreshold } as HeadThresholds
}

export type DecideOptions = {
  categories: readonly Category[]
  injectionThreshold: number
}

export function decide(text: string, analysis: ModerationAnalysis, policy: ResolvedPolicy, options: DecideOptions): ModerationResult {
  const categories: Record<string, boolean> = {}
  const scores: Record<string, number> = {}
  const applied: Record<string, ['text']> = {}
  const observed: Category[] = []
  let decision = 'allow' as Decision
  const raise = (next: Decision) => {
    if (RANK[next] > RANK[decision]) decision = next
  }
  for (const category of options.categories) {
    const rule = policy.categories[category]
    const score = (analysis.scores as CategoryScores)[category]
    const crossed = score > 0 && score >= rule.threshold
    const enforced = crossed && policy.mode === 'enforce' && rule.action !== 'observe'
    categories[category] = enforced
    scores[category] = score
    applied[category] = TEXT_ONLY
    if (crossed && !enforced) observed.push(category)
    if (enforced) raise(DECISION_OF[rule.action as Exclude<ModerationAction, 'observe'>])
  }
  if (analysis.blocklist.length > 0) {
    if (policy.mode === 'enforce') raise('block')
  }
  const result: ModerationResult = {
    flagged: decision !== 'allow',
    categories,
    category_scores: scores,
    category_applied_input_types: applied,
    moat: {
      action: decision,
      mode: policy.mode,
      observed,
      language: analysis.language,
      matches: analysis.cues,
      pii: analysis.pii.map(({ kind, start, end, detail }) => ({ type: kind, start, end, ...(detail ? { detail } : {}) })),
      prompt_injection: { score: analysis.injection, detected: analysis.injection >= options.injectionThreshold },
      blocklist: analysis.blocklist.map(({ term, start, end }) => ({ term, start, end })),
      allowlist: analysis.allowlist.map(({ term, start, end }) => ({ term, start, end })),
    },
  }
  if (decision === 'redact') {
    const spans = [...analysis.cues.filter((c) => !c.negated && HARMFUL_CUES.has(c.cue)), ...analysis.blocklist, ...analysis.pii]
    result.moat.redacted = redact(text, spans)
  }
  return result
}
