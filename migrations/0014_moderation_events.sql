CREATE TABLE `moderation_events` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`key_id` text,
	`source` text NOT NULL,
	`direction` text NOT NULL,
	`action` text NOT NULL,
	`categories` text NOT NULL,
	`scores` text NOT NULL,
	`request_id` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `moderation_events_tenant_time` ON `moderation_events` (`tenant_id`,`created_at`);