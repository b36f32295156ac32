CREATE TABLE `proxy_routes` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`kind` text NOT NULL,
	`targets` text NOT NULL,
	`strategy` text NOT NULL,
	`probabilities_path` text,
	`policy` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`deleted_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `proxy_routes_tenant_name` ON `proxy_routes` (`tenant_id`,`name`);