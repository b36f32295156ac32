import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { OMNI_CATEGORIES } from '../../src/shared/moderation/categories.ts'
import { MODEL_HEADS, type ModelHead } from '../../src/shared/moderation/linear-model.ts'
import { FAMILIES, slotValues, type BenignKind } from './synthetic-examples.ts'

// The labelled examples, read from ../shared/data/moderation and the
// project's own families, each with its split. Labels are per head: 1, 0, or
// missing where the source says nothing about that head (a hate-speech set
// says nothing about sexual content), and missing heads take no part in
// training or scoring.

export const DATA_DIR = join(import.meta.dirname, '../../../shared/data/moderation')

export type Split = 'train' | 'validation' | 'test'
export type Example = {
  text: string
  source: string
  group: string
  labels: Partial<Record<ModelHead, 0 | 1>>
  // Whether anything in it is unsafe, where the source tells.
  unsafe: boolean | null
  benign?: BenignKind
  language?: string
  split: Split
}

// Mulberry32: a small seeded generator, so every run draws the same examples.
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function fnv(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

// 70 % train, 10 % validation (calibration and thresholds), 20 % test, by
// group: a template or a tweet never straddles two splits. The project's own
// families have few templates each, so they give validation 20 %.
export function splitOf(group: string): Split {
  const bucket = fnv(`moat-split:${group}`) % 100
  const train = group.startsWith('synthetic') ? 60 : 70
  return bucket < train ? 'train' : bucket < 80 ? 'validation' : 'test'
}

export function parseCsv(text: string, delimiter = ','): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"'
        i++
      } else if (char === '"') quoted = false
      else field += char
    } else if (char === '"' && field === '') quoted = true
    else if (char === delimiter) {
      row.push(field)
      field = ''
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i++
      row.push(field)
      rows.push(row)
      row = []
      field = ''
    } else field += char
  }
  if (field !== '' || row.length > 0) rows.push([...row, field])
  return rows
}

function records(file: string, delimiter = ','): Record<string, string>[] {
  const [header, ...rows] = parseCsv(readFileSync(join(DATA_DIR, file), 'utf8'), delimiter)
  return rows.filter((r) => r.length === header!.length).map((r) => Object.fromEntries(header!.map((name, i) => [name, r[i]!])))
}

const allZero = (): Example['labels'] => Object.fromEntries(MODEL_HEADS.map((head) => [head, 0]))

function example(source: string, group: string, text: string, labels: Example['labels'], unsafe: boolean | null, extra: Partial<Example> = {}): Example {
  return { text, source, group: `${source}:${group}`, labels, unsafe, split: splitOf(`${source}:${group}`), ...extra }
}

const SECOND_PERSON = /\b(you|your|youre|u|ur|ya)\b/i

function davidson(): Example[] {
  return records('davidson/labeled_data.csv').map((r) => {
    const text = r.tweet!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
    if (r.class === '0') return example('davidson', r['']!, text, { hate: 1 }, true)
    // "Offensive" tweets are mostly profanity used in passing; only those
    // addressed to someone count as harassment, the rest say nothing of it.
    if (r.class === '1') return example('davidson', r['']!, text, { ...(SECOND_PERSON.test(text) ? { harassment: 1 } : {}), hate: 0, injection: 0 }, true)
    return example('davidson', r['']!, text, allZero(), false)
  })
}

function toxigen(): Example[] {
  return records('toxigen/toxigen_prompt_sentences.tsv', '\t').map((r, i) =>
    r.label === 'hate' ? example('toxigen', String(i), r.text!, { hate: 1, injection: 0 }, true) : example('toxigen', String(i), r.text!, allZero(), false),
  )
}

function wikiToxicity(): Example[] {
  return records('wiki-toxicity/toxicity_nonfuzzed_testset.csv').map((r) =>
    r.toxic === 'True' ? example('wiki', r.rev_id!, r.comment!, { harassment: 1, injection: 0 }, true) : example('wiki', r.rev_id!, r.comment!, allZero(), false),
  )
}

export const MHC_LANGUAGES = ['arabic', 'dutch', 'french', 'german', 'hindi', 'italian', 'mandarin', 'polish', 'portuguese', 'spanish'] as const

export function multilingualHatecheck(): Example[] {
  return MHC_LANGUAGES.flatMap((language) =>
    records(`multilingual-hatecheck/hatecheck_cases_final_${language}.csv`).map((r) => {
      const hateful = r.label_gold === 'hateful'
      const threat = hateful && r.functionality!.startsWith('threat')
      // Every head but harassment is known: the cases are about groups,
      // written to be hateful or not, and threats are violent.
      const { harassment: _, ...labels } = allZero()
      if (hateful) labels.hate = 1
      if (threat) Object.assign(labels, { 'hate/threatening': 1, violence: 1 })
      return example('mhc', `${language}:${r.templ_id}`, r.test_case!, labels, hateful, { language })
    }),
  )
}

function jailbreaks(): Example[] {
  const templates = records('jailbreak/gptfuzz_templates.csv').map((r) => example('gptfuzz-templates', r.id!, r.text!, { injection: 1 }, true))
  const giskard = records('jailbreak/giskard_prompt_injections.csv').map((r) => example('giskard', r.index!, r.prompt!, { injection: 1 }, true))
  // Harmful requests across topics, with no category labels: they count
  // only in the "any unsafe" figures.
  const questions = records('jailbreak/gptfuzz_questions.csv').map((r) => ({
    ...example('gptfuzz-questions', r.index!, r.text!, {}, true),
    split: 'test' as const,
  }))
  return [...templates, ...giskard, ...questions]
}

const PER_TEMPLATE = 24

export function syntheticExamples(seed = 7): Example[] {
  const random = seededRandom(seed)
  const slots = slotValues()
  const out: Example[] = []
  for (const family of FAMILIES) {
    family.templates.forEach((template, t) => {
      const seen = new Set<string>()
      for (let attempt = 0; attempt < PER_TEMPLATE * 3 && seen.size < PER_TEMPLATE; attempt++) {
        const text = template.replace(/\{(\w+)\}/g, (_, name: string) => {
          const values = slots[name]
          if (!values) throw new Error(`family ${family.name}: no slot {${name}}`)
          return values[Math.floor(random() * values.length)]!
        }).replace(/ {2,}/g, ' ').trim()
        if (seen.has(text)) continue
        seen.add(text)
        const labels = allZero()
        for (const head of family.labels) labels[head] = 1
        const unsafe = family.labels.some((head) => head !== 'injection') ? true : family.benign ? false : null
        out.push(example(`synthetic-${family.name}`, String(t), text, labels, unsafe, family.benign ? { benign: family.benign } : {}))
      }
    })
  }
  return out
}

export function loadExamples(): Example[] {
  return [...davidson(), ...toxigen(), ...wikiToxicity(), ...multilingualHatecheck(), ...jailbreaks(), ...syntheticExamples()]
}

export const CATEGORY_HEADS: readonly ModelHead[] = OMNI_CATEGORIES
