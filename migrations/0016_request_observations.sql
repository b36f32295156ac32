CREATE TABLE `request_observations` (
	`request_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`key_id` text,
	`outcome` text NOT NULL,
	`latency_bucket` integer NOT NULL,
	`timestamp` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `request_observations_time` ON `request_observations` (`timestamp`);--> statement-breakpoint
CREATE TABLE `traffic_rollups` (
	`tenant_id` text NOT NULL,
	`hour_start` integer NOT NULL,
	`key_id` text NOT NULL,
	`outcome` text NOT NULL,
	`latency_bucket` integer NOT NULL,
	`requests` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `hour_start`, `key_id`, `outcome`, `latency_bucket`)
);
--> statement-breakpoint
-- The rollup follows each newly observed request in the same transaction; an
-- INSERT OR IGNORE of an observation already stored fires nothing, so a
-- redelivery never counts twice.
CREATE TRIGGER `request_observations_rollup` AFTER INSERT ON `request_observations`
BEGIN
  INSERT INTO `traffic_rollups` (`tenant_id`, `hour_start`, `key_id`, `outcome`, `latency_bucket`, `requests`)
    VALUES (NEW.`tenant_id`, NEW.`timestamp` - (NEW.`timestamp` % 3600000), COALESCE(NEW.`key_id`, ''), NEW.`outcome`, NEW.`latency_bucket`, 1)
    ON CONFLICT DO UPDATE SET `requests` = `requests` + 1;
END;
