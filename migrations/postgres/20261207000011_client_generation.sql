-- A counter that every change to `clients` raises, in the change's own transaction. Each
-- server keeps the clients it has read in memory and reads this counter again at least
-- every 250 ms while it uses them: when it moved, the server forgets what it kept. A
-- client registered, deleted, rotated or revoked by any process (another server, the
-- `tessera client` commands) thus reaches every server within that time.
CREATE TABLE client_generation (
    id          integer PRIMARY KEY CHECK (id = 1),
    generation  bigint NOT NULL
);
INSERT INTO client_generation (id, generation) VALUES (1, 0);
CREATE FUNCTION clients_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE client_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION clients_changed();
