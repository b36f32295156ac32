import { OMNI_CATEGORIES } from '../../src/shared/moderation/categories.ts'
import { createModerationEngine } from '../../src/shared/moderation/engine.ts'
import { MODEL_HEADS } from '../../src/shared/moderation/linear-model.ts'
import { resolvePolicy } from '../../src/shared/moderation/policy.ts'
import { loadExamples, MHC_LANGUAGES, type Example } from './datasets.ts'

// `npm run eval:moderation`: the engine as shipped (committed weights,
// default policy) on the test split, which training never sees: per-head
// PR-AUC and F1 at the default thresholds, "any unsafe", false positives on
// benign text by kind, and the multilingual HateCheck cases per language.

export function averagePrecision(scores: readonly number[], labels: readonly number[]): number {
  const order = scores.map((s, i) => i).sort((a, b) => scores[b]! - scores[a]!)
  const positives = labels.filter((l) => l === 1).length
  if (positives === 0) return NaN
  let tp = 0
  let sum = 0
  order.forEach((i, rank) => {
    if (labels[i] === 1) {
      tp++
      sum += tp / (rank + 1)
    }
  })
  return sum / positives
}

function f1(predicted: readonly boolean[], labels: readonly number[]) {
  let tp = 0
  let fp = 0
  let fn = 0
  predicted.forEach((p, i) => {
    if (p && labels[i] === 1) tp++
    else if (p) fp++
    else if (labels[i] === 1) fn++
  })
  return { f1: (2 * tp) / (2 * tp + fp + fn || 1), precision: tp / (tp + fp || 1), recall: tp / (tp + fn || 1) }
}

const fmt = (n: number) => (Number.isNaN(n) ? 'n/a' : n.toFixed(3))
const pct = (n: number) => `${(100 * n).toFixed(1)} %`

function main() {
  const engine = createModerationEngine()
  const policy = resolvePolicy()
  const test = loadExamples().filter((e) => e.split === 'test')
  const started = performance.now()
  const analyses = test.map((e) => engine.analyze(e.text))
  console.log(`engine ${engine.version}: ${test.length} held-out examples in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)

  const headScore = (i: number, head: string) => (head === 'injection' ? analyses[i]!.injection : analyses[i]!.scores[head as (typeof OMNI_CATEGORIES)[number]])
  const threshold = (head: string) => (head === 'injection' ? engine.model.thresholds.injection : policy.categories[head as (typeof OMNI_CATEGORIES)[number]].threshold)
  const flagged = analyses.map((a) => OMNI_CATEGORIES.some((c) => a.scores[c] > 0 && a.scores[c] >= policy.categories[c].threshold))

  console.log('| head | positives / known | PR-AUC | F1 | precision | recall | threshold |\n|---|---|---|---|---|---|---|')
  for (const head of MODEL_HEADS) {
    const known = test.flatMap((e, i) => (e.labels[head] === undefined ? [] : [i]))
    const labels = known.map((i) => test[i]!.labels[head]!)
    const scores = known.map((i) => headScore(i, head))
    const at = f1(scores.map((s) => s > 0 && s >= threshold(head)), labels)
    console.log(`| ${head} | ${labels.filter((l) => l === 1).length} / ${labels.length} | ${fmt(averagePrecision(scores, labels))} | ${fmt(at.f1)} | ${fmt(at.precision)} | ${fmt(at.recall)} | ${threshold(head)} |`)
  }

  const judged = test.flatMap((e, i) => (e.unsafe === null ? [] : [i]))
  const unsafeLabels = judged.map((i) => (test[i]!.unsafe ? 1 : 0))
  const anyScores = judged.map((i) => Math.max(...OMNI_CATEGORIES.map((c) => analyses[i]!.scores[c])))
  const any = f1(judged.map((i) => flagged[i]!), unsafeLabels)
  console.log(`\nany unsafe: PR-AUC ${fmt(averagePrecision(anyScores, unsafeLabels))}, F1 ${fmt(any.f1)} (precision ${fmt(any.precision)}, recall ${fmt(any.recall)}) over ${judged.length} examples, ${unsafeLabels.filter((l) => l).length} unsafe`)
  const questions = test.flatMap((e, i) => (e.source === 'gptfuzz-questions' ? [flagged[i]!] : []))
  console.log(`harmful requests (GPTFuzz questions) flagged: ${pct(questions.filter(Boolean).length / questions.length)} of ${questions.length}`)

  console.log('\n| benign text | examples | flagged (false positives) |\n|---|---|---|')
  const benign = (name: string, pick: (e: Example) => boolean) => {
    const rows = test.flatMap((e, i) => (pick(e) ? [flagged[i]!] : []))
    console.log(`| ${name} | ${rows.length} | ${pct(rows.filter(Boolean).length / rows.length)} |`)
  }
  for (const kind of ['help', 'medical', 'technical', 'counter', 'everyday'] as const) benign(kind, (e) => e.benign === kind)
  benign('help + medical', (e) => e.benign === 'help' || e.benign === 'medical')
  benign('Wikipedia comments, not toxic', (e) => e.source === 'wiki' && e.unsafe === false)
  benign('tweets, neither hate nor offensive', (e) => e.source === 'davidson' && e.unsafe === false)

  console.log('\n| HateCheck language | cases | hate F1 | accuracy (hateful or not) | non-hateful flagged |\n|---|---|---|---|---|')
  for (const language of MHC_LANGUAGES) {
    const rows = test.flatMap((e, i) => (e.source === 'mhc' && e.language === language ? [i] : []))
    const labels = rows.map((i) => test[i]!.labels.hate!)
    const predicted = rows.map((i) => flagged[i]!)
    const correct = predicted.filter((p, k) => p === (labels[k] === 1)).length
    const benignRows = rows.filter((_, k) => labels[k] === 0)
    console.log(`| ${language} | ${rows.length} | ${fmt(f1(predicted, labels).f1)} | ${pct(correct / rows.length)} | ${pct(benignRows.filter((i) => flagged[i]).length / benignRows.length)} |`)
  }
}

main()
