-- 0001: the delivery history tables.
--
-- Both tables are partitioned by the delivery's create time, one partition
-- per UTC day (deliveries_YYYYMMDD, attempts_YYYYMMDD), made on demand by
-- Append and dropped whole by Expire. An attempt is placed by its delivery's
-- create time, not its own, so one day's partitions of the two tables hold
-- the same deliveries and go together.
--
-- The indexes below are declared on the parents, so PostgreSQL builds them
-- on every partition it attaches. Lists are newest first by (created, id):
-- each list shape has an index ending in (created, id) after its equality
-- columns, scanned backwards, so a page (first or hundredth, through the
-- keyset cursor) reads only the rows it returns plus one.

CREATE TABLE deliveries (
	created     timestamptz NOT NULL, -- Delivery.create_time, microseconds
	id          text        NOT NULL,
	account_id  text        NOT NULL,
	endpoint_id text        NOT NULL,
	event_id    text        NOT NULL,
	status      smallint    NOT NULL, -- postback.v1.DeliveryStatus
	version     bigint      NOT NULL, -- Entry.Version of the state held
	delivery    bytea       NOT NULL, -- postback.v1.Delivery, protobuf
	job         bytea,                -- the rendered request; NULL: never rendered
	PRIMARY KEY (created, id)
) PARTITION BY RANGE (created);

-- List by account (the delivery log), and by account and status.
CREATE INDEX deliveries_account ON deliveries (account_id, created, id);
CREATE INDEX deliveries_account_status ON deliveries (account_id, status, created, id);
-- List by endpoint, by endpoint and status (replay), and Counts.
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created, id);
CREATE INDEX deliveries_endpoint_status ON deliveries (endpoint_id, status, created, id);
-- List by event (an event fans out to a few endpoints).
CREATE INDEX deliveries_event ON deliveries (event_id, created, id);
-- Get: only the id is known, so every day's partition is probed.
CREATE INDEX deliveries_id ON deliveries (id);

CREATE TABLE attempts (
	created     timestamptz NOT NULL, -- the delivery's create time
	delivery_id text        NOT NULL,
	number      integer     NOT NULL,
	attempt     bytea       NOT NULL, -- postback.v1.Attempt, protobuf
	PRIMARY KEY (created, delivery_id, number)
) PARTITION BY RANGE (created);

-- Attempts: by delivery id, oldest first, probing every day's partition.
CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
