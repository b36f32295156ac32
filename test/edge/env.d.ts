import type { D1Migration } from 'cloudflare:test'
import type { Env as MoatEnv } from '../../src/edge/env.ts'

declare global {
  namespace Cloudflare {
    interface Env extends MoatEnv {
      TEST_MIGRATIONS: D1Migration[]
      FUZZ_RUNS: string
      FUZZ_SEED: string
    }
    interface GlobalProps {
      mainModule: typeof import('../../src/edge/index.ts')
    }
  }
}
