import type { ReceivedRunnerRegistration } from '../../shared/runner-wire.ts'
import type { Env } from '../env.ts'

export const HEARTBEAT_MS = 5000

export type RegistrationReply = {
  runner_id: string
  heartbeat_ms: number
  stale: { job_id: string; attempt: number }[]
}

// Registration and heartbeat are one call. A runner that comes back at the URL
// of an earlier process replaces it (that process is gone, and its jobs are
// requeued by the sweep). `stale` tells the runner which of its jobs are no
// longer its own (cancelled or reassigned), so it stops them.
export async function registerRunner(env: Env, registration: ReceivedRunnerRegistration, now = Date.now()): Promise<RegistrationReply> {
  await env.DB.batch([
    env.DB.prepare(`UPDATE runners SET status = 'replaced' WHERE url = ?1 AND id <> ?2 AND status IN ('active', 'draining')`).bind(
      registration.url,
      registration.runner_id,
    ),
    env.DB.prepare(
      `INSERT INTO runners (id, url, capacity, in_flight, job_types, status, registered_at, heartbeat_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6, ?6)
        ON CONFLICT (id) DO UPDATE SET url = excluded.url, capacity = excluded.capacity, in_flight = excluded.in_flight,
          job_types = excluded.job_types, status = excluded.status, heartbeat_at = excluded.heartbeat_at`,
    ).bind(
      registration.runner_id,
      registration.url,
      registration.capacity,
      registration.in_flight,
      JSON.stringify(registration.job_types),
      now,
      registration.state,
    ),
  ])
  const stale: RegistrationReply['stale'] = []
  for (const running of registration.running) {
    const owned = await env.DB.prepare(
      `SELECT 1 AS owned FROM jobs WHERE id = ?1 AND runner_id = ?2 AND attempts = ?3 AND status = 'running'`,
    )
      .bind(running.job_id, registration.runner_id, running.attempt)
      .first()
    if (!owned) stale.push(running)
  }
  return { runner_id: registration.runner_id, heartbeat_ms: HEARTBEAT_MS, stale }
}
