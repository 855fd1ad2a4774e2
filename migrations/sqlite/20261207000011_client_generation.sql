-- A counter that every change to `clients` raises, in the change's own transaction. Each
-- server keeps the clients it has read in memory and reads this counter again at least
-- every 250 ms while it uses them: when it moved, the server forgets what it kept. A
-- client registered, deleted, rotated or revoked by any process (another server, the
-- `tessera client` commands) thus reaches every server within that time.
CREATE TABLE client_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO client_generation (id, generation) VALUES (1, 0);
CREATE TRIGGER clients_inserted AFTER INSERT ON clients
BEGIN
    UPDATE client_generation SET generation = generation + 1;
END;
CREATE TRIGGER clients_updated AFTER UPDATE ON clients
BEGIN
    UPDATE client_generation SET generation = generation + 1;
END;
CREATE TRIGGER clients_deleted AFTER DELETE ON clients
BEGIN
    UPDATE client_generation SET generation = generation + 1;
END;
