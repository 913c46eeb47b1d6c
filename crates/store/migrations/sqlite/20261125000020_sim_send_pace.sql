-- A simulated number's throughput as a generic cell rate: the time (microseconds since the
-- epoch) from which its next send is free; one conditional UPDATE takes a send slot, where a
-- count of the past second's sends had to hold the row to the commit.
ALTER TABLE sim_numbers ADD COLUMN send_tat_us INTEGER NOT NULL DEFAULT 0;
