import type { Env } from '../env.ts'

// A message that cannot be processed (malformed) or that exhausted its
// retries is kept for an operator with its body; never silently dropped.
// Answers false when this message (by its id) was kept before: the queue is
// delivering it again after a consumer failed.
export async function recordDeadLetter(env: Pick<Env, 'DB'>, queue: string, message: Message<unknown>): Promise<boolean> {
  const { meta } = await env.DB.prepare(
    `INSERT INTO dead_letters (id, queue, body, attempts, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
      ON CONFLICT (id) DO NOTHING`,
  )
    .bind(`${queue}:${message.id}`, queue, JSON.stringify(message.body ?? null), message.attempts, Date.now())
    .run()
  return meta.changes > 0
}
