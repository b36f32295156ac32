// Rows keep milliseconds; the API speaks Unix seconds, as OpenAI's objects do.
export function unixSeconds(ms: number): number
export function unixSeconds(ms: number | null): number | null
export function unixSeconds(ms: number | null): number | null {
  return ms === null ? null : Math.floor(ms / 1000)
}
