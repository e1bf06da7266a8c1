-- The exchange an alert is about, as a column of its own (it was only in the text of the
-- detail, `ticket <id>: …`); earlier alerts get it from their detail.
ALTER TABLE alerts ADD COLUMN ticket_id TEXT;
UPDATE alerts
   SET ticket_id = split_part(substring(detail FROM 8), ':', 1)
 WHERE detail LIKE 'ticket %:%' AND split_part(substring(detail FROM 8), ':', 1) <> ''
   AND position(' ' IN split_part(substring(detail FROM 8), ':', 1)) = 0;
