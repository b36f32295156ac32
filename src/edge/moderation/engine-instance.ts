import type { ModerationEngine } from '../../shared/moderation/engine.ts'

// One engine per isolate, built on first use. The import is dynamic so that
// an isolate that never moderates never evaluates the engine's modules
// (language identification tables, phone-number metadata): the bundler keeps
// them behind this import, to run on the first call.
let engine: Promise<ModerationEngine> | null = null

export function moderationEngine(): Promise<ModerationEngine> {
  engine ??= import('../../shared/moderation/engine.ts').then((module) => module.createModerationEngine())
  engine.catch(() => (engine = null))
  return engine
}
