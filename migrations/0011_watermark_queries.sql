CREATE TABLE `watermark_queries` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`model_id` text NOT NULL,
	`client_id` text NOT NULL,
	`true_label` integer NOT NULL,
	`watermark_label` integer NOT NULL,
	`classes` integer NOT NULL,
	`input_key` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `watermark_queries_model` ON `watermark_queries` (`tenant_id`,`model_id`,`id`);