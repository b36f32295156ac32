CREATE TABLE `usage_rollups` (
	`tenant_id` text NOT NULL,
	`meter` text NOT NULL,
	`granularity` text NOT NULL,
	`bucket_start` integer NOT NULL,
	`key_id` text NOT NULL,
	`value` integer NOT NULL,
	`events` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `meter`, `granularity`, `bucket_start`, `key_id`)
);
--> statement-breakpoint
ALTER TABLE `usage_events` ADD `kind` text DEFAULT 'usage' NOT NULL;--> statement-breakpoint
ALTER TABLE `usage_events` ADD `reason` text;