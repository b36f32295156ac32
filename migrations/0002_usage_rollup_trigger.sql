-- Rollups follow the ledger inside the same transaction as each insert.
-- An INSERT OR IGNORE of an event already stored inserts nothing and fires
-- nothing, so a redelivered event never counts twice.
CREATE TRIGGER `usage_events_rollup` AFTER INSERT ON `usage_events`
BEGIN
  INSERT INTO `usage_rollups` (`tenant_id`, `meter`, `granularity`, `bucket_start`, `key_id`, `value`, `events`)
    VALUES (NEW.`tenant_id`, NEW.`meter`, 'hour', NEW.`timestamp` - (NEW.`timestamp` % 3600000), COALESCE(NEW.`key_id`, ''), NEW.`value`, 1)
    ON CONFLICT DO UPDATE SET `value` = `value` + excluded.`value`, `events` = `events` + 1;
  INSERT INTO `usage_rollups` (`tenant_id`, `meter`, `granularity`, `bucket_start`, `key_id`, `value`, `events`)
    VALUES (NEW.`tenant_id`, NEW.`meter`, 'day', NEW.`timestamp` - (NEW.`timestamp` % 86400000), COALESCE(NEW.`key_id`, ''), NEW.`value`, 1)
    ON CONFLICT DO UPDATE SET `value` = `value` + excluded.`value`, `events` = `events` + 1;
END;
