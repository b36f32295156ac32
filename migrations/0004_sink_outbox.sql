CREATE TABLE `sink_outbox` (
	`sink_id` text NOT NULL,
	`event_id` text NOT NULL,
	`delivery_id` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`sink_id`, `event_id`)
);
--> statement-breakpoint
CREATE INDEX `sink_outbox_pending` ON `sink_outbox` (`sink_id`,`delivery_id`);