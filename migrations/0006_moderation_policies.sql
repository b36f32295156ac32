CREATE TABLE `moderation_policies` (
	`tenant_id` text PRIMARY KEY NOT NULL,
	`policy` text NOT NULL,
	`updated_at` integer NOT NULL
);
