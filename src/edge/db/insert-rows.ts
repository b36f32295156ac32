// Many rows into one table as multi-row INSERT … ON CONFLICT DO NOTHING
// statements, for one D1 batch (one transaction). The usage consumer writes
// a few hundred rows per batch: one statement per row, built by drizzle,
// cost more CPU than the rows themselves, and the isolate could do nothing
// else meanwhile. D1 binds at most 100 parameters per statement, so each
// statement takes as many rows as fit.
export const D1_MAX_PARAMETERS = 100

export type Row = readonly (string | number | null)[]

export function insertOrIgnoreRows(db: D1Database, table: string, columns: readonly string[], rows: readonly Row[]): D1PreparedStatement[] {
  const perStatement = Math.floor(D1_MAX_PARAMETERS / columns.length)
  if (perStatement < 1) throw new Error(`${table}: ${columns.length} columns do not fit in one D1 statement`)
  const head = `INSERT INTO ${table} (${columns.join(', ')}) VALUES `
  const tuple = `(${columns.map(() => '?').join(', ')})`
  const statements: D1PreparedStatement[] = []
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement)
    for (const row of chunk) if (row.length !== columns.length) throw new Error(`${table}: a row of ${row.length} values for ${columns.length} columns`)
    statements.push(db.prepare(`${head}${chunk.map(() => tuple).join(', ')} ON CONFLICT DO NOTHING`).bind(...chunk.flat()))
  }
  return statements
}
