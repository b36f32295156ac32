import type { MergeProgress } from './run-merge.ts'

// A one-line progress bar (tensors, bytes, rate, ETA) redrawn in place on a
// terminal; elsewhere (a pipe, a log) a plain line every few seconds.

export type ProgressBar = { update(progress: MergeProgress): void; clear(): void; finish(): void }

type Stream = { isTTY?: boolean; columns?: number; write(text: string): boolean }

const WIDTH = 24

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

export function formatProgress(progress: MergeProgress, elapsedSeconds: number): string {
  const fraction = progress.bytesTotal > 0 ? progress.bytesDone / progress.bytesTotal : progress.tensorsTotal > 0 ? progress.tensorsDone / progress.tensorsTotal : 1
  const filled = Math.round(fraction * WIDTH)
  const rate = elapsedSeconds > 0 ? progress.bytesDone / elapsedSeconds : 0
  const eta = rate > 0 ? (progress.bytesTotal - progress.bytesDone) / rate : Infinity
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${progress.tensorsDone}/${progress.tensorsTotal} tensors ` +
    `${(progress.bytesDone / 1e9).toFixed(2)}/${(progress.bytesTotal / 1e9).toFixed(2)} GB ` +
    `${(rate / 1e6).toFixed(0)} MB/s ETA ${formatSeconds(eta)}`
  )
}

export function createProgressBar(stream: Stream, now: () => number = Date.now): ProgressBar {
  const started = now()
  let lastPlain = 0
  let drawn = false
  let latest: MergeProgress | null = null
  return {
    update(progress) {
      latest = progress
      const line = formatProgress(progress, (now() - started) / 1000)
      if (stream.isTTY) {
        stream.write(`\r${line}\x1b[K`)
        drawn = true
      } else if (now() - lastPlain >= 2000 || progress.tensorsDone === progress.tensorsTotal) {
        lastPlain = now()
        stream.write(`${line}\n`)
      }
    },
    clear() {
      if (drawn) stream.write('\r\x1b[K')
      drawn = false
    },
    finish() {
      if (stream.isTTY && latest) stream.write(`\r${formatProgress(latest, (now() - started) / 1000)}\x1b[K\n`)
      drawn = false
    },
  }
}
