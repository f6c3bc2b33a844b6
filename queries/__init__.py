"""The canned reports: one .sql file each, with a header (name, purpose, parameters, columns)."""
