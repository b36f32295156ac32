// OpenAI's moderation categories. `omni-moderation-*` answers all thirteen;
// `text-moderation-*` answers the eleven it always had (no `illicit*`).
export const OMNI_CATEGORIES = [
  'harassment',
  'harassment/threatening',
  'hate',
  'hate/threatening',
  'illicit',
  'illicit/violent',
  'self-harm',
  'self-harm/intent',
  'self-harm/instructions',
  'sexual',
  'sexual/minors',
  'violence',
  'violence/graphic',
] as const

export type Category = (typeof OMNI_CATEGORIES)[number]

export const TEXT_CATEGORIES: readonly Category[] = OMNI_CATEGORIES.filter((category) => !category.startsWith('illicit'))

export type CategoryScores = Record<Category, number>

export function isCategory(name: string): name is Category {
  return (OMNI_CATEGORIES as readonly string[]).includes(name)
}

export function zeroScores(): CategoryScores {
  const scores = {} as CategoryScores
  for (const category of OMNI_CATEGORIES) scores[category] = 0
  return scores
}
