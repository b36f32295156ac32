import { readFileSync, writeFileSync } from 'node:fs'
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'

// Edge tests deliver queue batches to the handler themselves
// (createMessageBatch), so that nothing is consumed behind their back: they
// run against wrangler.toml minus its [[queues.consumers]] blocks.
function wranglerConfigWithoutConsumers(): string {
  const path = './.wrangler-test.toml'
  const blocks = readFileSync('./wrangler.toml', 'utf8').split(/^(?=\[)/m)
  writeFileSync(path, blocks.filter((block) => !block.startsWith('[[queues.consumers]]')).join(''))
  return path
}

// Three projects: the edge inside workerd (Cloudflare's pool), shared code and
// the runner in Node, and end-to-end tests that start the real edge (wrangler
// dev) and real runners on loopback.
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: wranglerConfigWithoutConsumers() },
            miniflare: {
              bindings: {
                MOAT_ADMIN_TOKEN: 'test-admin-token',
                MOAT_RUNNER_SECRET: 'test-runner-secret',
                MOAT_SECRETS_KEY: 'test-secrets-key-of-at-least-32-characters',
                MOAT_OUTBOUND_ALLOW_LOOPBACK: 'true',
                TEST_MIGRATIONS: await readD1Migrations('./migrations'),
                // Fuzz properties read their count and seed from these (see test/support/fuzz-settings.ts).
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? '',
                FUZZ_SEED: process.env.FUZZ_SEED ?? '',
              },
            },
          })),
        ],
        test: {
          name: 'edge',
          include: ['test/edge/**/*.test.ts'],
          setupFiles: ['./test/edge/apply-migrations.ts'],
        },
      },
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['test/shared/**/*.test.ts', 'test/gpu-runner/**/*.test.ts', 'test/*.test.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
