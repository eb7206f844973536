-- Shared preamble of the pgTAP files (inside their BEGIN): the extension and
-- fixed session settings, so results do not depend on the server's defaults.
SET LOCAL client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS billing;
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL TimeZone = 'UTC';
SET LOCAL search_path = billing, public;
