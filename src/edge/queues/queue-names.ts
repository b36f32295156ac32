// Queue names as wrangler.toml declares them.
export const QUEUE_NAMES = {
  jobs: 'moat-jobs',
  results: 'moat-results',
  usage: 'moat-usage',
  webhooks: 'moat-webhooks',
  sinks: 'moat-sinks',
  jobsDeadLetters: 'moat-jobs-dlq',
  resultsDeadLetters: 'moat-results-dlq',
  usageDeadLetters: 'moat-usage-dlq',
  webhooksDeadLetters: 'moat-webhooks-dlq',
  sinksDeadLetters: 'moat-sinks-dlq',
} as const
