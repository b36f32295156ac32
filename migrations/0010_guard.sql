CREATE TABLE `guard_clients` (
	`tenant_id` text NOT NULL,
	`client_id` text NOT NULL,
	`key_id` text NOT NULL,
	`end_user` text,
	`risk_bp` integer NOT NULL,
	`action` text NOT NULL,
	`signals` text NOT NULL,
	`state_bytes` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `client_id`)
);
--> statement-breakpoint
CREATE INDEX `guard_clients_risk` ON `guard_clients` (`tenant_id`,`risk_bp`);--> statement-breakpoint
CREATE TABLE `guard_events` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`client_id` text NOT NULL,
	`key_id` text NOT NULL,
	`end_user` text,
	`model_id` text,
	`type` text NOT NULL,
	`action` text NOT NULL,
	`previous_action` text NOT NULL,
	`risk_bp` integer NOT NULL,
	`signals` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `guard_events_tenant` ON `guard_events` (`tenant_id`,`id`);