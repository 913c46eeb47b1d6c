-- Planner statistics after bulk writes. A campaign's audience snapshot adds up to hundreds of
-- thousands of recipient rows in a few seconds; until autovacuum's next pass (a minute or
-- more) the planner believes the table still holds what it held before, chooses nested loops
-- that rescan a whole number's conversations per recipient, and one enqueue step takes
-- seconds instead of milliseconds. Only a table's owner may ANALYZE it, and the application
-- role owns nothing; this function, owned by the schema owner, analyzes the tables the
-- application names from a fixed list and does nothing else.
CREATE FUNCTION frontdesk_refresh_statistics(tables TEXT[]) RETURNS VOID
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        IF t NOT IN ('campaign_recipients', 'conversations', 'contacts', 'consent_events',
                     'contact_tags', 'contact_field_values', 'contact_import_contacts') THEN
            RAISE EXCEPTION 'frontdesk_refresh_statistics: % is not on the list', t;
        END IF;
        EXECUTE format('ANALYZE public.%I', t);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION frontdesk_refresh_statistics(TEXT[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION frontdesk_refresh_statistics(TEXT[]) TO frontdesk_app;
