-- The exchange an alert is about, as a column of its own (it was only in the text of the
-- detail, `ticket <id>: …`); earlier alerts get it from their detail.
ALTER TABLE alerts ADD COLUMN ticket_id TEXT;
UPDATE alerts
   SET ticket_id = substr(detail, 8, instr(detail, ':') - 8)
 WHERE detail LIKE 'ticket %:%' AND instr(detail, ':') > 8
   AND instr(substr(detail, 8, instr(detail, ':') - 8), ' ') = 0;
