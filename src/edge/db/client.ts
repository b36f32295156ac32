import { drizzle } from 'drizzle-orm/d1'
import type { Env } from '../env.ts'
import * as schema from './schema.ts'

export type Database = ReturnType<typeof drizzle<typeof schema>>

// One drizzle instance per D1 binding, kept for the isolate's life: building
// one walks the whole schema (its relational config), which profiling showed
// as a few per cent of every request's CPU when it was done per call.
const instances = new WeakMap<D1Database, Database>()

export function database(env: Pick<Env, 'DB'>): Database {
  let db = instances.get(env.DB)
  if (!db) {
    db = drizzle(env.DB, { schema })
    instances.set(env.DB, db)
  }
  return db
}
