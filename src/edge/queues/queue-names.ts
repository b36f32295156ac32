// Queue names as wrangler.toml declares them.
export const QUEUE_NAMES = {
  jobs: 'moat-jobs',
  results: 'moat-results',
  usage: 'moat-usage',
  jobsDeadLetters: 'moat-jobs-dlq',
  resultsDeadLetters: 'moat-results-dlq',
  usageDeadLetters: 'moat-usage-dlq',
} as const
