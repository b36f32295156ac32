import type { Env } from '../env.ts'

export type RunnerRow = { id: string; url: string; capacity: number; in_flight: number }

// The least loaded runner that is alive (heartbeat inside the TTL), has room
// and runs this job type. The runner itself is the authority on its capacity
// (it answers 429 when full); this only avoids asking one that is known full.
export async function pickRunner(env: Pick<Env, 'DB'>, jobType: string, ttlSeconds: number, now = Date.now()) {
  return env.DB.prepare(
    `SELECT id, url, capacity, in_flight FROM runners
      WHERE status = 'active' AND heartbeat_at >= ?1 AND in_flight < capacity
        AND EXISTS (SELECT 1 FROM json_each(runners.job_types) WHERE value = ?2)
      ORDER BY CAST(in_flight AS REAL) / capacity, heartbeat_at DESC
      LIMIT 1`,
  )
    .bind(now - ttlSeconds * 1000, jobType)
    .first<RunnerRow>()
}

export function adjustInFlight(env: Pick<Env, 'DB'>, runnerId: string, delta: number): D1PreparedStatement {
  return env.DB.prepare('UPDATE runners SET in_flight = MAX(in_flight + ?1, 0) WHERE id = ?2').bind(delta, runnerId)
}
