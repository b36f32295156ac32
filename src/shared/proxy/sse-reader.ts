// Reads a server-sent event stream as it arrives: events are separated by a
// blank line; each event's `data:` lines are joined. Partial input waits for
// the rest.
export type SseEvent = { raw: string; data: string | null }

export function createSseReader(): { push(text: string): SseEvent[]; rest(): SseEvent[] } {
  let buffer = ''
  const parse = (raw: string): SseEvent => {
    const data = raw
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''))
    return { raw, data: data.length > 0 ? data.join('\n') : null }
  }
  return {
    push(text) {
      buffer += text
      const events: SseEvent[] = []
      for (;;) {
        const match = /\r?\n\r?\n/.exec(buffer)
        if (!match) break
        events.push(parse(buffer.slice(0, match.index)))
        buffer = buffer.slice(match.index + match[0].length)
      }
      return events
    },
    rest() {
      const remaining = buffer.trim() ? [parse(buffer)] : []
      buffer = ''
      return remaining
    },
  }
}
