import { createModerationEngine } from '../src/shared/moderation/engine.ts'
import { benchTexts } from './moderation-texts.ts'

// The engine inside workerd, for bench/moderation.ts. Workers' clocks stand
// still while code runs, so the bench times each batch from outside.
const engine = createModerationEngine()
const texts = new Map<number, string[]>()

export default {
  fetch(request: Request): Response {
    const url = new URL(request.url)
    const length = Number(url.searchParams.get('length'))
    const count = Number(url.searchParams.get('count'))
    let batch = texts.get(length)
    if (!batch) texts.set(length, (batch = benchTexts(length, 64)))
    let flagged = 0
    for (let i = 0; i < count; i++) if (engine.analyze(batch[i % batch.length]!).scores.violence > 0.5) flagged++
    return new Response(String(flagged))
  },
}
