ALTER TABLE `model_versions` ADD `io` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `probe` text;