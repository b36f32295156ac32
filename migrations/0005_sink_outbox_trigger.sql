-- Every newly recorded event is queued for each active billing sink of its
-- tenant, in the same transaction as the event itself.
CREATE TRIGGER `usage_events_sink_outbox` AFTER INSERT ON `usage_events`
BEGIN
  INSERT INTO `sink_outbox` (`sink_id`, `event_id`, `delivery_id`, `created_at`)
    SELECT `id`, NEW.`id`, NULL, NEW.`recorded_at` FROM `billing_sinks`
      WHERE `tenant_id` = NEW.`tenant_id` AND `deleted_at` IS NULL;
END;
