-- PostgreSQL's migration of this name adds a function that refreshes planner statistics
-- after bulk writes. SQLite needs none: its planner does not keep row counts unless ANALYZE
-- is run, and this schema's plans do not depend on them. This file keeps the two migration
-- histories the same length.
SELECT 1;
