import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { englishDataset, englishRecommendedTransformers, RegExpMatcher } from 'obscenity'
import { createCheckedTexts } from '../src/edge/proxy/checked-texts.ts'
import { OMNI_CATEGORIES } from '../src/shared/moderation/categories.ts'
import { compileLists, decide, decisiveThresholds } from '../src/shared/moderation/decide.ts'
import { createModerationEngine } from '../src/shared/moderation/engine.ts'
import { resolvePolicy } from '../src/shared/moderation/policy.ts'
import { freePort, QUIET_WRANGLER_ENV, stopProcess, waitForHealthy } from '../scripts/local-stack.ts'
import { benchTexts } from './moderation-texts.ts'

// Microseconds per text for the whole engine (normalisation, cues, profanity,
// the learned model, PII, prompt injection, language), at 280 and 2,000
// characters, in Node and inside workerd; obscenity's own matcher on the same
// texts for scale; and what the engine adds to the Worker bundle.

const TARGET_P50_US = 50
const TEXTS = 2000
const WARMUP = 500
const ROOT = join(import.meta.dirname, '..')

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

function timeEach(texts: readonly string[], run: (text: string) => unknown): number[] {
  for (let i = 0; i < WARMUP; i++) run(texts[i % texts.length]!)
  const times = texts.map((text) => {
    const start = performance.now()
    run(text)
    return (performance.now() - start) * 1000
  })
  return times.sort((a, b) => a - b)
}

const row = (name: string, sorted: readonly number[]) =>
  `| ${name} | ${percentile(sorted, 50).toFixed(1)} | ${percentile(sorted, 95).toFixed(1)} | ${(sorted.reduce((a, b) => a + b, 0) / sorted.length).toFixed(1)} |`

const engine = createModerationEngine()
const obscenity = new RegExpMatcher({ ...englishDataset.build(), ...englishRecommendedTransformers })

console.log(`Node ${process.version}, ${TEXTS} texts per row\n`)
console.log('| what | p50 µs | p95 µs | mean µs |\n|---|---|---|---|')
const results: Record<string, number> = {}
for (const length of [280, 2000]) {
  const texts = benchTexts(length, TEXTS)
  const engineTimes = timeEach(texts, (text) => engine.analyze(text))
  results[`node-${length}`] = percentile(engineTimes, 50)
  console.log(row(`engine, Node, ${length} chars`, engineTimes))
  console.log(row(`obscenity alone, Node, ${length} chars`, timeEach(texts, (text) => obscenity.getAllMatches(text))))
}

// Inline checks of a conversation as the proxy makes them: a chat client
// sends the whole conversation every turn (a system prompt, then a question
// and an answer per turn, 280 characters each), and the answer is checked on
// its way out. Per turn of a 10-turn conversation, with the isolate's
// checked-texts cache (src/edge/proxy/checked-texts.ts) and without it.
{
  const TURNS = 10
  const CONVERSATIONS = 40
  const policy = resolvePolicy()
  const lists = compileLists(policy)
  const injectionThreshold = engine.model.thresholds.injection
  const decisiveAt = decisiveThresholds(policy, injectionThreshold)
  const check = (text: string) => decide(text, engine.analyze(text, { ...lists, language: { decisiveAt } }), policy, { categories: OMNI_CATEGORIES, injectionThreshold })
  const pool = benchTexts(280, CONVERSATIONS * (2 * TURNS + 1))
  const timeConversations = (checkText: (text: string) => unknown) => {
    const perTurn: number[] = []
    for (let c = 0; c < CONVERSATIONS; c++) {
      const texts = pool.slice(c * (2 * TURNS + 1), (c + 1) * (2 * TURNS + 1))
      const sent = [texts[0]!]
      for (let turn = 0; turn < TURNS; turn++) {
        sent.push(texts[1 + 2 * turn]!)
        const start = performance.now()
        for (const text of sent) checkText(text)
        checkText(texts[2 + 2 * turn]!)
        perTurn.push((performance.now() - start) * 1000)
        sent.push(texts[2 + 2 * turn]!)
      }
    }
    return perTurn.sort((a, b) => a - b)
  }
  timeConversations(check)
  console.log(row(`a ${TURNS}-turn conversation re-sent each turn, every message checked (per turn)`, timeConversations(check)))
  const checked = createCheckedTexts()
  const scope = checked.scope(policy)
  console.log(row(`the same, with the checked-texts cache (per turn)`, timeConversations((text) => checked.check(scope, text, () => check(text)))))
}

// workerd (under wrangler dev): batches of BATCH texts timed from outside,
// since a Worker's clock stands still while it computes, less the median
// time of an empty request (wrangler's proxy and HTTP); p50 over batches.
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-moderation-'))
try {
  const config = join(dir, 'wrangler.toml')
  const compatibilityDate = /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'))![1]
  writeFileSync(config, `name = "moat-bench-moderation"\nmain = "${join(import.meta.dirname, 'moderation-worker.ts')}"\ncompatibility_date = "${compatibilityDate}"\n`)
  const port = await freePort()
  const wrangler = spawn(
    process.execPath,
    [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort()), '--show-interactive-dev-session=false'],
    { cwd: dir, env: { ...process.env, ...QUIET_WRANGLER_ENV }, stdio: 'ignore' },
  )
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForHealthy(`${url}/?length=280&count=1`, 60_000)
    const BATCH = 200
    const timeRequest = async (length: number, count: number) => {
      const start = performance.now()
      await fetch(`${url}/?length=${length}&count=${count}`).then((res) => res.text())
      return (performance.now() - start) * 1000
    }
    for (const length of [280, 2000]) {
      await timeRequest(length, WARMUP)
      const empty: number[] = []
      for (let i = 0; i < 20; i++) empty.push(await timeRequest(length, 0))
      const overhead = percentile(empty.sort((a, b) => a - b), 50)
      const perText: number[] = []
      for (let i = 0; i < (2 * TEXTS) / BATCH; i++) perText.push((Math.max(0, (await timeRequest(length, BATCH)) - overhead)) / BATCH)
      perText.sort((a, b) => a - b)
      results[`workerd-${length}`] = percentile(perText, 50)
      console.log(row(`engine, workerd, ${length} chars (per text, batches of ${BATCH}, less ${(overhead / 1000).toFixed(1)} ms a request)`, perText))
    }
  } finally {
    await stopProcess(wrangler, 'SIGINT')
  }

  // What the engine adds to the Worker: the engine alone, bundled as wrangler
  // bundles it (esbuild, not minified).
  await build({
    entryPoints: [join(ROOT, 'src/shared/moderation/engine.ts')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    outfile: join(dir, 'engine.js'),
    logLevel: 'silent',
  })
  const engineBytes = readFileSync(join(dir, 'engine.js'))
  console.log(`\nthe engine in the Worker bundle: ${(engineBytes.length / 1e6).toFixed(2)} MB, ${(gzipSync(engineBytes).length / 1e3).toFixed(0)} KB gzipped`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log(`p50 at 280 characters / target ${TARGET_P50_US} µs: Node ${(results['node-280']! / TARGET_P50_US).toFixed(2)}, workerd ${(results['workerd-280']! / TARGET_P50_US).toFixed(2)}`)
