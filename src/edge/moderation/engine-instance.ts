import { createModerationEngine, type ModerationEngine } from '../../shared/moderation/engine.ts'

// One engine per isolate, built on first use: decoding the weights takes a
// few milliseconds that a request without moderation should not pay.
let engine: ModerationEngine | null = null

export function moderationEngine(): ModerationEngine {
  engine ??= createModerationEngine()
  return engine
}
